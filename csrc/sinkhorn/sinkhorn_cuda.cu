// CUDA kernels of the batched log-domain Sinkhorn: one launch for all iterations of all problems.
//
// One block per problem (8 warps). Row half-step: a warp per row of C, lanes stride over the
// columns with an online (max, sum) logsumexp, merged by warp shuffles. Column half-step: a warp per
// column, reading the padded shared tile column-wise (row stride m + 1: no bank conflicts) or, when
// the cost does not fit in shared memory, the rows of the transposed copy Ct from global memory /
// L2 (coalesced). Potentials, log-weights and the per-warp error partials live in shared memory;
// the convergence flag is a block-uniform shared variable, so problems stop independently and the
// host never synchronises. Error partials are reduced in a fixed order (deterministic stopping).
//
// Status: compile-checked with nvcc (scripts/check_cuda_compile.sh); not yet run on a GPU.
// Raw pointers and cudaStream_t only: no torch headers.
#include <cuda_runtime.h>

#include <cmath>

#include "sinkhorn/sinkhorn.h"

namespace eirnn_fast {
namespace sinkhorn {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;

template <typename T>
__device__ __forceinline__ T dev_exp(T x);
template <>
__device__ __forceinline__ float dev_exp<float>(float x) { return expf(x); }
template <>
__device__ __forceinline__ double dev_exp<double>(double x) { return exp(x); }

template <typename T>
__device__ __forceinline__ T dev_log(T x);
template <>
__device__ __forceinline__ float dev_log<float>(float x) { return logf(x); }
template <>
__device__ __forceinline__ double dev_log<double>(double x) { return log(x); }

template <typename T>
__device__ __forceinline__ T dev_expm1(T x);
template <>
__device__ __forceinline__ float dev_expm1<float>(float x) { return expm1f(x); }
template <>
__device__ __forceinline__ double dev_expm1<double>(double x) { return expm1(x); }

template <typename T>
__device__ __forceinline__ T dev_log1p(T x);
template <>
__device__ __forceinline__ float dev_log1p<float>(float x) { return log1pf(x); }
template <>
__device__ __forceinline__ double dev_log1p<double>(double x) { return log1p(x); }

template <typename T>
__device__ __forceinline__ T neg_inf() { return -static_cast<T>(INFINITY); }

// Online logsumexp state (mx, s): value = mx + log(s). Adding v = -inf is a no-op.
template <typename T>
__device__ __forceinline__ void lse_push(T& mx, T& s, T v) {
  if (v <= mx) {
    if (v != neg_inf<T>()) s += dev_exp(v - mx);
  } else {
    s = s * dev_exp(mx - v) + T(1);  // mx = -inf: s = 0 * 0 + 1
    mx = v;
  }
}

template <typename T>
__device__ __forceinline__ void lse_merge(T& mx, T& s, T mx2, T s2) {
  if (mx2 == neg_inf<T>()) return;
  if (mx == neg_inf<T>()) {
    mx = mx2;
    s = s2;
    return;
  }
  if (mx2 > mx) {
    s = s * dev_exp(mx - mx2) + s2;
    mx = mx2;
  } else {
    s += s2 * dev_exp(mx2 - mx);
  }
}

template <typename T>
__device__ __forceinline__ T warp_lse(T mx, T s) {
  for (int off = 16; off > 0; off >>= 1) {
    const T mx2 = __shfl_xor_sync(0xffffffffu, mx, off);
    const T s2 = __shfl_xor_sync(0xffffffffu, s, off);
    lse_merge(mx, s, mx2, s2);
  }
  return mx == neg_inf<T>() ? mx : mx + dev_log(s);
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
  for (int off = 16; off > 0; off >>= 1) {
    const T o = __shfl_xor_sync(0xffffffffu, v, off);
    v = o > v ? o : v;
  }
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_min(T v) {
  for (int off = 16; off > 0; off >>= 1) {
    const T o = __shfl_xor_sync(0xffffffffu, v, off);
    v = o < v ? o : v;
  }
  return v;
}

// Block-uniform near-uniform test of sinkhorn.h (near_uniform): 2 (spread + range of q over the
// support of lw) <= e. s_lo / s_hi: kWarps scratch each; every thread gets the answer.
template <typename T>
__device__ bool block_near_uniform(T spread, const T* q, const T* lw, int len, T e, T* s_lo,
                                   T* s_hi, int* s_flag) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  T lo = static_cast<T>(INFINITY), hi = neg_inf<T>();
  for (int k = threadIdx.x; k < len; k += kThreads) {
    if (!(lw[k] > neg_inf<T>())) continue;
    lo = q[k] < lo ? q[k] : lo;
    hi = q[k] > hi ? q[k] : hi;
  }
  lo = warp_min(lo);
  hi = warp_max(hi);
  if (lane == 0) {
    s_lo[warp] = lo;
    s_hi[warp] = hi;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    T l = s_lo[0], h = s_hi[0];
    for (int w = 1; w < kWarps; ++w) {
      l = s_lo[w] < l ? s_lo[w] : l;
      h = s_hi[w] > h ? s_hi[w] : h;
    }
    *s_flag = (T(2) * (spread + (h - l)) <= e) ? 1 : 0;
  }
  __syncthreads();
  return *s_flag != 0;
}

// Shared layout: f [n] | g [m] | log_a [n] | log_b [m] | warp_err [kWarps] | (tile [n, m + 1])
template <typename T, bool kSharedCost>
__global__ void __launch_bounds__(kThreads)
    solve_kernel(const T* __restrict__ C, const T* __restrict__ Ct, const T* __restrict__ log_a,
                 const T* __restrict__ log_b, const T* __restrict__ eps_p,
                 const T* __restrict__ eps0_p, const T* __restrict__ spread_p, T decay, int n,
                 int m, int max_iter, T tol,
                 T* __restrict__ f_out, T* __restrict__ g_out, T* __restrict__ value_out,
                 int64_t* __restrict__ iters_out, T* __restrict__ err_out) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* f = reinterpret_cast<T*>(smem_raw);
  T* g = f + n;
  T* la = g + m;
  T* lb = la + n;
  T* warp_err = lb + m;
  T* tile = warp_err + kWarps;
  __shared__ int s_stop;
  __shared__ int s_near;
  __shared__ T s_lo[kWarps];
  __shared__ T s_hi[kWarps];

  const int b = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const T* Cb = C + static_cast<int64_t>(b) * n * m;
  const T* Ctb = Ct + static_cast<int64_t>(b) * n * m;
  const T eps = eps_p[b], eps0 = eps0_p[b], spread = spread_p[b];
  const bool scaling = decay < T(1) && eps0 > eps;

  for (int i = threadIdx.x; i < n; i += kThreads) {
    f[i] = T(0);
    la[i] = log_a[static_cast<int64_t>(b) * n + i];
  }
  for (int j = threadIdx.x; j < m; j += kThreads) {
    g[j] = T(0);
    lb[j] = log_b[static_cast<int64_t>(b) * m + j];
  }
  if (kSharedCost) {
    for (int64_t k = threadIdx.x; k < static_cast<int64_t>(n) * m; k += kThreads) {
      const int i = static_cast<int>(k / m), j = static_cast<int>(k % m);
      tile[i * (m + 1) + j] = Cb[k];
    }
  }
  __syncthreads();

  T e_prev = eps;
  T last_err = static_cast<T>(INFINITY);
  int it = 0;
  for (;; ++it) {
    T e = eps;
    if (scaling && it < max_iter) {
      e = eps0 * pow(decay, static_cast<T>(it));
      e = e > eps ? e : eps;
    }
    if (it == 0) e_prev = e;
    const T inv = T(1) / e;

    // ---- f half-step: warp per row ----
    const bool near_f = block_near_uniform(spread, g, lb, m, e, s_lo, s_hi, &s_near);
    T my_err = T(0);
    for (int i = warp; i < n; i += kWarps) {
      T lse;
      if (near_f) {  // zmax + log1p(sum_j b_j expm1(z_j - zmax)) over the support
        T zmax = neg_inf<T>();
        for (int j = lane; j < m; j += 32) {
          if (!(lb[j] > neg_inf<T>())) continue;
          const T c = kSharedCost ? tile[i * (m + 1) + j] : Cb[static_cast<int64_t>(i) * m + j];
          const T z = (g[j] - c) * inv;
          zmax = z > zmax ? z : zmax;
        }
        zmax = warp_max(zmax);
        T t = T(0);
        for (int j = lane; j < m; j += 32) {
          if (!(lb[j] > neg_inf<T>())) continue;
          const T c = kSharedCost ? tile[i * (m + 1) + j] : Cb[static_cast<int64_t>(i) * m + j];
          t += dev_exp(lb[j]) * dev_expm1((g[j] - c) * inv - zmax);
        }
        lse = zmax + dev_log1p(warp_sum(t));
      } else {
        T mx = neg_inf<T>(), s = T(0);
        for (int j = lane; j < m; j += 32) {
          const T c = kSharedCost ? tile[i * (m + 1) + j] : Cb[static_cast<int64_t>(i) * m + j];
          lse_push(mx, s, lb[j] + (g[j] - c) * inv);
        }
        lse = warp_lse(mx, s);
      }
      const T fi = -e * lse;
      if (lane == 0) {
        my_err += dev_exp(la[i]) * fabs(dev_expm1((f[i] - fi) * inv));
        f[i] = fi;
      }
    }
    if (lane == 0) warp_err[warp] = my_err;
    __syncthreads();
    if (threadIdx.x == 0) {
      T tot = T(0);
      for (int w = 0; w < kWarps; ++w) tot += warp_err[w];
      last_err = tot;
      const bool can_stop = (it == 0 ? e : e_prev) == eps;
      s_stop = (it >= max_iter || (can_stop && tot < tol)) ? 1 : 0;
    }
    __syncthreads();
    if (s_stop) break;

    // ---- g half-step: warp per column ----
    const bool near_g = block_near_uniform(spread, f, la, n, e, s_lo, s_hi, &s_near);
    for (int j = warp; j < m; j += kWarps) {
      T lse;
      if (near_g) {
        T zmax = neg_inf<T>();
        for (int i = lane; i < n; i += 32) {
          if (!(la[i] > neg_inf<T>())) continue;
          const T c = kSharedCost ? tile[i * (m + 1) + j] : Ctb[static_cast<int64_t>(j) * n + i];
          const T z = (f[i] - c) * inv;
          zmax = z > zmax ? z : zmax;
        }
        zmax = warp_max(zmax);
        T t = T(0);
        for (int i = lane; i < n; i += 32) {
          if (!(la[i] > neg_inf<T>())) continue;
          const T c = kSharedCost ? tile[i * (m + 1) + j] : Ctb[static_cast<int64_t>(j) * n + i];
          t += dev_exp(la[i]) * dev_expm1((f[i] - c) * inv - zmax);
        }
        lse = zmax + dev_log1p(warp_sum(t));
      } else {
        T mx = neg_inf<T>(), s = T(0);
        for (int i = lane; i < n; i += 32) {
          const T c = kSharedCost ? tile[i * (m + 1) + j] : Ctb[static_cast<int64_t>(j) * n + i];
          lse_push(mx, s, la[i] + (f[i] - c) * inv);
        }
        lse = warp_lse(mx, s);
      }
      const T gj = -e * lse;
      if (lane == 0) g[j] = gj;
    }
    e_prev = e;
    __syncthreads();
  }

  // value = <a, f> + <b, g>, outputs
  T part = T(0);
  for (int i = threadIdx.x; i < n; i += kThreads) {
    part += dev_exp(la[i]) * f[i];
    f_out[static_cast<int64_t>(b) * n + i] = f[i];
  }
  for (int j = threadIdx.x; j < m; j += kThreads) {
    part += dev_exp(lb[j]) * g[j];
    g_out[static_cast<int64_t>(b) * m + j] = g[j];
  }
  part = warp_sum(part);
  __syncthreads();
  if (lane == 0) warp_err[warp] = part;
  __syncthreads();
  if (threadIdx.x == 0) {
    T tot = T(0);
    for (int w = 0; w < kWarps; ++w) tot += warp_err[w];
    value_out[b] = tot;
    iters_out[b] = it;
    err_out[b] = last_err;
  }
}

// A warp per row (b, i): P_ij = a_i softmax_j(log b_j + (g_j - C_ij) / eps) (sinkhorn.h).
template <typename T>
__global__ void plan_kernel(const T* __restrict__ C, const T* __restrict__ log_a,
                            const T* __restrict__ log_b, const T* __restrict__ g,
                            const T* __restrict__ eps, int64_t B, int64_t n, int64_t m,
                            T* __restrict__ P) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5);
       row < B * n; row += warps) {
    const int64_t b = row / n;
    const T inv = T(1) / eps[b];
    const T* c = C + row * m;
    const T* lb = log_b + b * m;
    const T* gb = g + b * m;
    T mx = neg_inf<T>(), s = T(0);
    for (int64_t j = lane; j < m; j += 32) lse_push(mx, s, lb[j] + (gb[j] - c[j]) * inv);
    for (int off = 16; off > 0; off >>= 1) {
      const T mx2 = __shfl_xor_sync(0xffffffffu, mx, off);
      const T s2 = __shfl_xor_sync(0xffffffffu, s, off);
      lse_merge(mx, s, mx2, s2);
    }
    // a_i exp(v_j - max v) / sum: dividing by the sum keeps the row sum a_i at a tiny eps, where
    // v ~ 1e12 and log(sum) would vanish in its rounding
    const T scale = dev_exp(log_a[row]) / s;
    for (int64_t j = lane; j < m; j += 32)
      P[row * m + j] = dev_exp(lb[j] + (gb[j] - c[j]) * inv - mx) * scale;
  }
}

}  // namespace

template <typename T>
int solve_cuda(const T* C, const T* Ct, const T* log_a, const T* log_b, const T* eps,
               const T* eps0, const T* spread, T decay, int64_t B, int64_t n, int64_t m,
               int64_t max_iter, T tol, T* f, T* g, T* value, int64_t* iters, T* err,
               CUstream_st* stream) {
  if (B == 0) return 0;
  int dev = 0;
  cudaError_t st = cudaGetDevice(&dev);
  if (st != cudaSuccess) return st;
  int optin = 0;
  st = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (st != cudaSuccess) return st;
  const size_t base = sizeof(T) * static_cast<size_t>(2 * n + 2 * m + kWarps);
  const size_t with_tile = base + sizeof(T) * static_cast<size_t>(n) * static_cast<size_t>(m + 1);
  const int iters_cap = static_cast<int>(max_iter > 0x3fffffff ? 0x3fffffff : max_iter);
  if (base > static_cast<size_t>(optin)) return cudaErrorInvalidValue;  // n + m too large
  if (with_tile <= static_cast<size_t>(optin)) {
    st = cudaFuncSetAttribute(solve_kernel<T, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(with_tile));
    if (st != cudaSuccess) return st;
    solve_kernel<T, true><<<static_cast<unsigned>(B), kThreads, with_tile, stream>>>(
        C, Ct, log_a, log_b, eps, eps0, spread, decay, static_cast<int>(n), static_cast<int>(m),
        iters_cap, tol, f, g, value, iters, err);
  } else {
    st = cudaFuncSetAttribute(solve_kernel<T, false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(base));
    if (st != cudaSuccess) return st;
    solve_kernel<T, false><<<static_cast<unsigned>(B), kThreads, base, stream>>>(
        C, Ct, log_a, log_b, eps, eps0, spread, decay, static_cast<int>(n), static_cast<int>(m),
        iters_cap, tol, f, g, value, iters, err);
  }
  return cudaGetLastError();
}

template <typename T>
int plan_cuda(const T* C, const T* log_a, const T* log_b, const T* g, const T* eps, int64_t B,
              int64_t n, int64_t m, T* P, CUstream_st* stream) {
  const int64_t rows = B * n;
  if (rows == 0 || m == 0) return 0;
  constexpr int threads = 256;  // 8 warps, a row each
  int64_t blocks = (rows + threads / 32 - 1) / (threads / 32);
  if (blocks > 65535LL * 16) blocks = 65535LL * 16;
  plan_kernel<T><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(C, log_a, log_b, g, eps, B,
                                                                       n, m, P);
  return cudaGetLastError();
}

template int solve_cuda<float>(const float*, const float*, const float*, const float*, const float*,
                               const float*, const float*, float, int64_t, int64_t, int64_t,
                               int64_t, float, float*, float*, float*, int64_t*, float*,
                               CUstream_st*);
template int solve_cuda<double>(const double*, const double*, const double*, const double*,
                                const double*, const double*, const double*, double, int64_t,
                                int64_t, int64_t, int64_t, double, double*, double*, double*,
                                int64_t*, double*, CUstream_st*);
template int plan_cuda<float>(const float*, const float*, const float*, const float*, const float*,
                              int64_t, int64_t, int64_t, float*, CUstream_st*);
template int plan_cuda<double>(const double*, const double*, const double*, const double*,
                               const double*, int64_t, int64_t, int64_t, double*, CUstream_st*);

}  // namespace sinkhorn
}  // namespace eirnn_fast
