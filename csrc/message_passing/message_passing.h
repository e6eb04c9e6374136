// Sparse edge message passing (DESIGN 3.3), raw-pointer kernels for CPU and CUDA.
//
//   out[i, f] = sum_{e : dst[e] = i} w[e] * x[src[e], f]
//
// The graph is held twice in CSR form (eirnn_fast.ops.EdgeGraph builds both):
//   by destination: rowptr [num_dst + 1], col [E] = src of each slot, perm [E] = original edge id
//   by source:      rowptr_t [num_src + 1], col_t [E] = dst of each slot, perm_t [E] = edge id
// Edge weights stay in the ORIGINAL edge order: kernels read w[perm[k]] for CSR slot k, and write
// per-edge gradients to d_w[perm[k]] (every edge exactly once: no atomics, deterministic).
// Within a row, slots are sorted by (other endpoint, edge id), so every sum has one fixed order.
//
// The CPU kernels trust nothing about the index arrays' contents (the registered ops hand them
// whatever tensors a Python caller passed): every row span must satisfy
// 0 <= rowptr[r] <= rowptr[r+1] <= E, every col[k] must be in [0, num_cols) and every perm[k] in
// [0, E). Each kernel checks the rows of its work item before walking them (one vectorised pass
// over the item's row pointers and slots, which stay in cache for the walk); if any is out of
// range it walks nothing (nothing out of bounds is read or written) and returns CsrFault bits,
// which the caller turns into a ValueError naming the array. The walks are unchanged, so valid
// graphs give bitwise the same results. The CUDA kernels skip bad rows and slots inside the walk
// but cannot report them without a device-to-host sync per call, so they do not (the ops feed
// them an EdgeGraph's checked arrays).
//
// All dense tensors are contiguous, row-major. No torch headers here: the .cu is compile-checked
// with plain nvcc on CPU-only CI machines. T = float | double, I = int32_t | int64_t.
#pragma once

#include <cstdint>

struct CUstream_st;

namespace eirnn_fast {
namespace mp {

// Rows of the MLP variant's backward handled by one CPU work item. Fixed (not derived from the
// thread count) so the per-chunk parameter-gradient partials, and their fixed-order reduction, are
// bitwise identical for any number of threads.
constexpr int64_t kMlpChunkRows = 128;
// Largest hidden width of the MLP variant (per-edge activations live on the stack).
constexpr int64_t kMlpMaxHidden = 256;
// Largest feature count F (frames as columns) of the plain op.
constexpr int64_t kMaxFeatures = 128;

// Bits of a CPU kernel's return value: which array of the walked CSR held an entry out of range.
enum CsrFault : int { kBadRowptr = 1, kBadCol = 2, kBadPerm = 4 };

// ---- plain op, CPU ---------------------------------------------------------------------------
// SpMM over rows [r_begin, r_end) of a CSR (by destination for the forward):
//   out[r, :] = sum_{k in row r} w[perm[k]] * x[col[k], :]          x [num_cols, F], out [R, F]
// E = len(col) = len(perm). Returns CsrFault bits (0 for a valid graph).
template <typename T, typename I>
int spmm_rows_cpu(const I* rowptr, const I* col, const I* perm, const T* w, const T* x, T* out,
                  int64_t F, int64_t num_cols, int64_t E, int64_t r_begin, int64_t r_end);

// Fused backward over rows [j_begin, j_end) of the CSR BY SOURCE (one pass, FusedMM-style):
//   d_x[j, :]      = sum_{k in row j} w[perm_t[k]] * g[col_t[k], :]     (transposed SpMM)
//   d_w[perm_t[k]] = dot(g[col_t[k], :], x[j, :])                        (SDDMM)
// g [num_dst, F] = dL/dout. Either output may be null (not requested). Returns CsrFault bits of
// rowptr_t / col_t (against num_dst) / perm_t (against E).
template <typename T, typename I>
int spmm_bwd_rows_cpu(const I* rowptr_t, const I* col_t, const I* perm_t, const T* w, const T* x,
                      const T* g, T* d_x, T* d_w, int64_t F, int64_t num_dst, int64_t E,
                      int64_t j_begin, int64_t j_end);

// ---- edge-MLP variant (FlyVis model "B"), CPU --------------------------------------------------
// Per edge e = (j -> i) and frame f, with the first layer factorised per node:
//   h_0 = relu(a[f, i, :] + b[f, j, :])                               a [F, num_dst, H], b [F, num_src, H]
//   h_l = relu(hw[l] h_{l-1} + hb[l]),  l = 1..L                      hw [L, H, H], hb [L, H]
//     (hw[l] is [out, in] like nn.Linear.weight; hwt = hw transposed per layer, [L, in, out], so
//      both the forward matvec and the backward use contiguous axpy rows)
//   s   = dot(ow, h_L) + ob                                           ow [H], ob [1]
//   out[i, f] = sum_{e : dst[e] = i} w[e] * s^2                        out [num_dst, F]
// Forward for destination rows [i_begin, i_end). The MLP kernels take E = len(col) and return
// CsrFault bits like the plain ones (col against num_src, col_t against num_dst).
//
// NaN / inf follow the reference (per-edge torch ops) exactly: products of exact zeros are skipped
// (ReLU sparsity) only when that changes nothing, i.e. when the other factor is finite
// (hw_finite: every hidden weight is finite, checked once per call by the caller), and the ReLU
// backward passes the gradient where its output is not <= 0 (NaN included), as torch's
// threshold_backward does.
template <typename T, typename I>
int mlp_fwd_rows_cpu(const I* rowptr, const I* col, const I* perm, const T* w, const T* a,
                     const T* b, const T* hw, const T* hwt, const T* hb, const T* ow, const T* ob, T* out,
                     int64_t F, int64_t num_dst, int64_t num_src, int64_t E, int64_t H, int64_t L,
                     bool hw_finite, int64_t i_begin, int64_t i_end);

// Backward pass 1, over destination rows [i_begin, i_end) (one chunk): recomputes every edge and
// writes d_w[perm[k]] = sum_f g[i, f] * s^2, d_a[f, i, :] (sum over the row's edges), and adds the
// chunk's parameter gradients into the partials d_hw [L, H, H], d_hb [L, H], d_ow [H], d_ob [1]
// (zeroed by the caller; one partial set per chunk). Null outputs are skipped.
template <typename T, typename I>
int mlp_bwd_dst_rows_cpu(const I* rowptr, const I* col, const I* perm, const T* w, const T* a,
                         const T* b, const T* hw, const T* hwt, const T* hb, const T* ow, const T* ob,
                         const T* g, T* d_w, T* d_a, T* d_hw, T* d_hb, T* d_ow, T* d_ob,
                         int64_t F, int64_t num_dst, int64_t num_src, int64_t E, int64_t H, int64_t L,
                         bool hw_finite, int64_t i_begin, int64_t i_end);

// Backward pass 2, over source rows [j_begin, j_end) of the CSR by source: recomputes every edge
// and writes d_b[f, j, :] = sum over the row's edges of dL/d(first-layer pre-activation).
template <typename T, typename I>
int mlp_bwd_src_rows_cpu(const I* rowptr_t, const I* col_t, const I* perm_t, const T* w,
                         const T* a, const T* b, const T* hw, const T* hwt, const T* hb, const T* ow,
                         const T* ob, const T* g, T* d_b, int64_t F, int64_t num_dst,
                         int64_t num_src, int64_t E, int64_t H, int64_t L, bool hw_finite,
                         int64_t j_begin, int64_t j_end);

// ---- plain op, CUDA (message_passing_cuda.cu) ---------------------------------------------------
// Same maths as the CPU kernels, one launch each, on `stream`. Deterministic: a row is reduced by
// one warp in a fixed lane/shuffle order (no atomics). Returns a cudaError_t value (0 = success).
// Out-of-range rows and slots (see the top of this file) are skipped, not reported.
template <typename T, typename I>
int spmm_cuda(const I* rowptr, const I* col, const I* perm, const T* w, const T* x, T* out,
              int64_t rows, int64_t F, int64_t num_cols, int64_t E, CUstream_st* stream);

template <typename T, typename I>
int spmm_bwd_cuda(const I* rowptr_t, const I* col_t, const I* perm_t, const T* w, const T* x,
                  const T* g, T* d_x, T* d_w, int64_t num_src, int64_t F, int64_t num_dst,
                  int64_t E, CUstream_st* stream);

}  // namespace mp
}  // namespace eirnn_fast
