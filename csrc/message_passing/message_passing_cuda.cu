// CUDA kernels of the sparse edge message passing (DESIGN 3.3): one warp per CSR row.
//
// Tuned for the FlyVis connectome (in-degree mean ~32, max ~200, F = 1..4 frames as columns):
//  * narrow F (1, 2, 4): the 32 lanes split the row's edges (lane l takes slots l, l+32, ...),
//    each lane keeps F partial sums in registers, and a butterfly shuffle reduces them. A row of
//    ~32 edges is one coalesced load of col/perm per lane.
//  * wide F (anything else, up to 128): lanes split the features (f = lane + 32 t); the row's
//    col/perm/weight are loaded 32 at a time, one per lane, and broadcast with __shfl_sync.
// Backward = the same row walk over the CSR by source (transposed SpMM for d_x) fused with the
// SDDMM d_w[e] = dot(g[dst e], x[src e]) (FusedMM style): one pass, every d_w entry written by
// exactly one lane, no atomics. The summation order depends only on the graph, so results are
// bitwise reproducible from run to run.
//
// Bounds: a row whose span is not 0 <= rowptr[r] <= rowptr[r+1] <= E is treated as empty, and a slot
// whose col is outside [0, num_cols) or whose perm is outside [0, E) is skipped (nothing out of
// bounds is read or written; the checks add no arithmetic, so valid graphs give the same bits).
// Unlike the CPU kernels they report nothing: that would cost a device-to-host sync per call.
//
// Raw pointers and cudaStream_t only: no torch headers, so CI compile-checks this file with nvcc.
#include <cuda_runtime.h>

#include <cstdint>

#include "message_passing/message_passing.h"

namespace eirnn_fast {
namespace mp {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;
constexpr int kThreads = kWarp * kWarpsPerBlock;
constexpr int kMaxFeatTiles = static_cast<int>(kMaxFeatures) / kWarp;  // 4
constexpr unsigned kFull = 0xffffffffu;

// The slot range of row r, or an empty one unless 0 <= rowptr[r] <= rowptr[r+1] <= E (the same
// for every lane of the warp).
template <typename I>
__device__ __forceinline__ void row_span(const I* __restrict__ rowptr, int64_t r, int64_t E,
                                         int64_t& k0, int64_t& k1) {
  k0 = __ldg(rowptr + r);
  k1 = __ldg(rowptr + r + 1);
  if (!(0 <= k0 && k0 <= k1 && k1 <= E)) k0 = k1 = 0;
}

// Whether index v lies in [0, n) (a negative v converts to a huge unsigned value).
__device__ __forceinline__ bool in_range(int64_t v, int64_t n) {
  return static_cast<uint64_t>(v) < static_cast<uint64_t>(n);
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int off = kWarp / 2; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  return v;  // every lane holds the same value, reduced in the same (fixed) order
}

// ---- narrow F: lanes over edges ------------------------------------------------------------------
template <typename T, typename I, int FC>
__global__ void __launch_bounds__(kThreads)
    spmm_narrow_kernel(const I* __restrict__ rowptr, const I* __restrict__ col,
                       const I* __restrict__ perm, const T* __restrict__ w,
                       const T* __restrict__ x, T* __restrict__ out, int64_t rows,
                       int64_t num_cols, int64_t E) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (r >= rows) return;  // whole warp exits together
  T acc[FC];
#pragma unroll
  for (int f = 0; f < FC; ++f) acc[f] = T(0);
  int64_t k0, k1;
  row_span(rowptr, r, E, k0, k1);
  for (int64_t k = k0 + lane; k < k1; k += kWarp) {
    const int64_t c = __ldg(col + k), p = __ldg(perm + k);
    if (!in_range(c, num_cols) || !in_range(p, E)) continue;  // lane-local: no shuffle in this loop
    const T wk = __ldg(w + p);
    const T* xr = x + c * FC;
#pragma unroll
    for (int f = 0; f < FC; ++f) acc[f] += wk * __ldg(xr + f);
  }
#pragma unroll
  for (int f = 0; f < FC; ++f) acc[f] = warp_sum(acc[f]);
  if (lane < FC) {
    T v = acc[0];
#pragma unroll
    for (int f = 1; f < FC; ++f)
      if (lane == f) v = acc[f];
    out[r * FC + lane] = v;
  }
}

template <typename T, typename I, int FC>
__global__ void __launch_bounds__(kThreads)
    spmm_bwd_narrow_kernel(const I* __restrict__ rowptr_t, const I* __restrict__ col_t,
                           const I* __restrict__ perm_t, const T* __restrict__ w,
                           const T* __restrict__ x, const T* __restrict__ g,
                           T* __restrict__ d_x, T* __restrict__ d_w, int64_t rows,
                           int64_t num_dst, int64_t E) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (j >= rows) return;
  T xj[FC], acc[FC];
#pragma unroll
  for (int f = 0; f < FC; ++f) {
    xj[f] = __ldg(x + j * FC + f);
    acc[f] = T(0);
  }
  int64_t k0, k1;
  row_span(rowptr_t, j, E, k0, k1);
  for (int64_t k = k0 + lane; k < k1; k += kWarp) {
    const int64_t e = __ldg(perm_t + k), c = __ldg(col_t + k);
    if (!in_range(c, num_dst) || !in_range(e, E)) continue;  // lane-local
    const T* gi = g + c * FC;
    const T we = __ldg(w + e);
    T dot = T(0);
#pragma unroll
    for (int f = 0; f < FC; ++f) {
      const T gf = __ldg(gi + f);
      acc[f] += we * gf;
      dot += gf * xj[f];
    }
    if (d_w) d_w[e] = dot;
  }
  if (d_x) {
#pragma unroll
    for (int f = 0; f < FC; ++f) acc[f] = warp_sum(acc[f]);
    if (lane < FC) {
      T v = acc[0];
#pragma unroll
      for (int f = 1; f < FC; ++f)
        if (lane == f) v = acc[f];
      d_x[j * FC + lane] = v;
    }
  }
}

// ---- wide F: lanes over features -----------------------------------------------------------------
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    spmm_wide_kernel(const I* __restrict__ rowptr, const I* __restrict__ col,
                     const I* __restrict__ perm, const T* __restrict__ w,
                     const T* __restrict__ x, T* __restrict__ out, int64_t rows, int F,
                     int64_t num_cols, int64_t E) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (r >= rows) return;
  T acc[kMaxFeatTiles];
#pragma unroll
  for (int t = 0; t < kMaxFeatTiles; ++t) acc[t] = T(0);
  int64_t k0, k1;
  row_span(rowptr, r, E, k0, k1);
  for (int64_t base = k0; base < k1; base += kWarp) {
    const int n = static_cast<int>(k1 - base < kWarp ? k1 - base : kWarp);
    int64_t my_col = 0;
    T my_w = T(0);
    if (lane < n) {
      my_col = __ldg(col + base + lane);
      const int64_t p = __ldg(perm + base + lane);
      if (in_range(my_col, num_cols) && in_range(p, E))
        my_w = __ldg(w + p);
      else
        my_col = -1;  // a bad slot, skipped by the whole warp below
    }
    for (int q = 0; q < n; ++q) {
      const int64_t c = __shfl_sync(kFull, my_col, q);
      const T wq = __shfl_sync(kFull, my_w, q);
      if (c < 0) continue;  // c is the same for every lane
      const T* xr = x + c * F;
#pragma unroll
      for (int t = 0; t < kMaxFeatTiles; ++t) {
        const int f = lane + t * kWarp;
        if (f < F) acc[t] += wq * __ldg(xr + f);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kMaxFeatTiles; ++t) {
    const int f = lane + t * kWarp;
    if (f < F) out[r * F + f] = acc[t];
  }
}

template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    spmm_bwd_wide_kernel(const I* __restrict__ rowptr_t, const I* __restrict__ col_t,
                         const I* __restrict__ perm_t, const T* __restrict__ w,
                         const T* __restrict__ x, const T* __restrict__ g, T* __restrict__ d_x,
                         T* __restrict__ d_w, int64_t rows, int F, int64_t num_dst, int64_t E) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (j >= rows) return;
  T xj[kMaxFeatTiles], acc[kMaxFeatTiles];
#pragma unroll
  for (int t = 0; t < kMaxFeatTiles; ++t) {
    const int f = lane + t * kWarp;
    xj[t] = f < F ? __ldg(x + j * F + f) : T(0);
    acc[t] = T(0);
  }
  int64_t k0, k1;
  row_span(rowptr_t, j, E, k0, k1);
  for (int64_t base = k0; base < k1; base += kWarp) {
    const int n = static_cast<int>(k1 - base < kWarp ? k1 - base : kWarp);
    int64_t my_col = 0, my_e = 0;
    T my_w = T(0);
    if (lane < n) {
      my_col = __ldg(col_t + base + lane);
      my_e = __ldg(perm_t + base + lane);
      if (in_range(my_col, num_dst) && in_range(my_e, E))
        my_w = __ldg(w + my_e);
      else
        my_col = -1;  // a bad slot, skipped by the whole warp below
    }
    for (int q = 0; q < n; ++q) {
      const int64_t c = __shfl_sync(kFull, my_col, q);
      const int64_t e = __shfl_sync(kFull, my_e, q);
      const T wq = __shfl_sync(kFull, my_w, q);
      if (c < 0) continue;  // c is the same for every lane
      const T* gr = g + c * F;
      T dot = T(0);
#pragma unroll
      for (int t = 0; t < kMaxFeatTiles; ++t) {
        const int f = lane + t * kWarp;
        if (f < F) {
          const T gf = __ldg(gr + f);
          acc[t] += wq * gf;
          dot += gf * xj[t];
        }
      }
      if (d_w) {
        dot = warp_sum(dot);
        if (lane == 0) d_w[e] = dot;
      }
    }
  }
  if (d_x) {
#pragma unroll
    for (int t = 0; t < kMaxFeatTiles; ++t) {
      const int f = lane + t * kWarp;
      if (f < F) d_x[j * F + f] = acc[t];
    }
  }
}

inline unsigned blocks_for(int64_t rows) {
  return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

}  // namespace

template <typename T, typename I>
int spmm_cuda(const I* rowptr, const I* col, const I* perm, const T* w, const T* x, T* out,
              int64_t rows, int64_t F, int64_t num_cols, int64_t E, CUstream_st* stream) {
  if (rows == 0) return 0;
  const dim3 grid(blocks_for(rows)), block(kThreads);
  const int64_t nc = num_cols;
  switch (F) {
    case 1: spmm_narrow_kernel<T, I, 1><<<grid, block, 0, stream>>>(rowptr, col, perm, w, x, out, rows, nc, E); break;
    case 2: spmm_narrow_kernel<T, I, 2><<<grid, block, 0, stream>>>(rowptr, col, perm, w, x, out, rows, nc, E); break;
    case 4: spmm_narrow_kernel<T, I, 4><<<grid, block, 0, stream>>>(rowptr, col, perm, w, x, out, rows, nc, E); break;
    default:
      spmm_wide_kernel<T, I><<<grid, block, 0, stream>>>(rowptr, col, perm, w, x, out, rows,
                                                         static_cast<int>(F), nc, E);
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename T, typename I>
int spmm_bwd_cuda(const I* rowptr_t, const I* col_t, const I* perm_t, const T* w, const T* x,
                  const T* g, T* d_x, T* d_w, int64_t num_src, int64_t F, int64_t num_dst,
                  int64_t E, CUstream_st* stream) {
  if (num_src == 0) return 0;
  const dim3 grid(blocks_for(num_src)), block(kThreads);
  const int64_t nd = num_dst;
  switch (F) {
    case 1: spmm_bwd_narrow_kernel<T, I, 1><<<grid, block, 0, stream>>>(rowptr_t, col_t, perm_t, w, x, g, d_x, d_w, num_src, nd, E); break;
    case 2: spmm_bwd_narrow_kernel<T, I, 2><<<grid, block, 0, stream>>>(rowptr_t, col_t, perm_t, w, x, g, d_x, d_w, num_src, nd, E); break;
    case 4: spmm_bwd_narrow_kernel<T, I, 4><<<grid, block, 0, stream>>>(rowptr_t, col_t, perm_t, w, x, g, d_x, d_w, num_src, nd, E); break;
    default:
      spmm_bwd_wide_kernel<T, I><<<grid, block, 0, stream>>>(rowptr_t, col_t, perm_t, w, x, g, d_x,
                                                             d_w, num_src, static_cast<int>(F), nd, E);
  }
  return static_cast<int>(cudaGetLastError());
}

#define EIRNN_MP_CUDA_INSTANTIATE(T, I)                                                              \
  template int spmm_cuda<T, I>(const I*, const I*, const I*, const T*, const T*, T*, int64_t,      \
                               int64_t, int64_t, int64_t, CUstream_st*);                           \
  template int spmm_bwd_cuda<T, I>(const I*, const I*, const I*, const T*, const T*, const T*, T*, \
                                   T*, int64_t, int64_t, int64_t, int64_t, CUstream_st*);

EIRNN_MP_CUDA_INSTANTIATE(float, int32_t)
EIRNN_MP_CUDA_INSTANTIATE(float, int64_t)
EIRNN_MP_CUDA_INSTANTIATE(double, int32_t)
EIRNN_MP_CUDA_INSTANTIATE(double, int64_t)
#undef EIRNN_MP_CUDA_INSTANTIATE

}  // namespace mp
}  // namespace eirnn_fast
