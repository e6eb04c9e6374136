// Fused Dale's-law E-I rate recurrence (DESIGN 3.1), raw-pointer kernels for CPU and CUDA.
//
//   x_{-1} = x0,   x_t = (1 - a) * x_{t-1} + a * (W softplus(x_{t-1})) + drive_t,   t = 0..T-1
//
// All tensors are dense, contiguous, row-major. No torch headers here: the .cu is compile-checked
// with plain nvcc on CPU-only CI machines.
#pragma once

#include <cstdint>

struct CUstream_st;

namespace eirnn_fast {
namespace rnn {

// Rows of the batch handled by one CPU work item. Fixed (not derived from the thread count) so the
// per-chunk gradient partials, and hence the reduced gradients, are bitwise identical for any
// number of threads.
constexpr int64_t kCpuChunkRows = 12;

// ---- CPU ------------------------------------------------------------------------------------
// Forward for batch rows [b_begin, b_end).
//   drive [B, T, N], x0 [B, N], w [N, N], alpha [N]  ->  states [B, T, N]
template <typename T>
void scan_forward_cpu(const T* drive, const T* x0, const T* w, const T* alpha, T* states,
                      int64_t B, int64_t T_steps, int64_t N, int64_t b_begin, int64_t b_end);

// Backward (BPTT) for batch rows [b_begin, b_end), one chunk.
//   grad [B, T, N] (dL/dstates), x0 [B, N], w [N, N], alpha [N], states [B, T, N]
//   -> d_drive [B, T, N] (rows of the chunk), d_x0 [B, N] (rows of the chunk),
//      m_partial [N, N] = sum_{b in chunk, t} g_t[b, n] * softplus(x_{t-1})[b, k]   (if need_m)
//      gx_partial [N]   = sum_{b in chunk, t} g_t[b, n] * x_{t-1}[b, n]             (if need_m)
// where g_t = dL/dx_t (total). dW = diag(a) * M and da = rowsum(W .* M) - gx follow from the
// reduced partials (reduce_partials_cpu).
template <typename T>
void scan_backward_cpu(const T* grad, const T* x0, const T* w, const T* alpha, const T* states,
                       T* d_drive, T* d_x0, T* m_partial, T* gx_partial, bool need_m,
                       int64_t B, int64_t T_steps, int64_t N, int64_t b_begin, int64_t b_end);

// Fixed-order reduction of n_chunks partials into dW [N, N] and d_alpha [N] (each may be null).
template <typename T>
void reduce_partials_cpu(const T* m_partials, const T* gx_partials, int64_t n_chunks,
                         const T* w, const T* alpha, int64_t N, T* d_w, T* d_alpha);

// ---- Output rates and state noise around the scan (CPU; the CUDA path composes torch ops) -----
// Rows of the flattened [B * T] (b, t) grid per CPU work item, and elements per work item of the
// noise kernels. Fixed, so the reduced scalar gradients are bitwise identical for any thread count.
constexpr int64_t kCpuRateRows = 64;
constexpr int64_t kCpuNoiseChunk = 16384;  // a multiple of normal_rng::kNormalBlock

// Output rates of the drop-in model for rows [r_begin, r_end) of the (b, t) grid:
//   rates[b, t, n] = max(softplus(prev) * scale + base, 0),  prev = x0[b, n] (t = 0), states[b, t-1, n]
//   states [B, T, N], x0 [B, N] -> rates [B, T, N]
template <typename T>
void rates_forward_cpu(const T* states, const T* x0, T scale, T base, T* rates, int64_t T_steps,
                       int64_t N, int64_t r_begin, int64_t r_end);

// Backward of rates_forward_cpu for rows [r_begin, r_end): with m = [softplus(prev) * scale + base >= 0]
// (the clamp's subgradient, as torch's clamp_min backward),
//   d prev = grad * m * scale * softplus'(prev)  -> d_states[b, t-1] (t >= 1) or d_x0[b] (t = 0);
//   d_states[b, T-1] = 0;  sums[0] = sum grad * m * softplus(prev),  sums[1] = sum grad * m
// (sums over the rows, accumulated in double, written not added).
template <typename T>
void rates_backward_cpu(const T* grad, const T* states, const T* x0, T scale, T base, T* d_states,
                        T* d_x0, double* sums, int64_t T_steps, int64_t N, int64_t r_begin,
                        int64_t r_end);

// drive[i] += std * xi_i for i in [begin, end), xi_i = normal_draws_cpu(seed) draw i.
template <typename T>
void noise_add_cpu(T* drive, T std, uint64_t seed, int64_t begin, int64_t end);

// sum_{i in [begin, end)} grad[i] * xi_i (regenerates the draws of noise_add_cpu), in double.
template <typename T>
double noise_dot_cpu(const T* grad, uint64_t seed, int64_t begin, int64_t end);

// ---- CUDA (rnn_cuda.cu) -----------------------------------------------------------------------
// Largest N the CUDA kernels accept.
constexpr int kCudaMaxUnits = 256;

// Forward, one persistent launch for all T steps; each block owns `rows_per_block` batch rows and
// keeps W^T (when it fits in shared memory; otherwise read through L1/L2), the state tile and the
// softplus tile on chip for the whole sequence.
//   wt = W^T [N, N] (contiguous)  -> states [B, T, N]. Returns a cudaError_t value (0 = success).
template <typename T>
int scan_forward_cuda(const T* drive, const T* x0, const T* wt, const T* alpha, T* states,
                      int64_t B, int64_t T_steps, int64_t N, CUstream_st* stream);

// Backward, one persistent launch for the reverse loop: writes d_drive = g_t [B, T, N] and
// d_x0 [B, N]. The parameter gradients are one GEMM over the B*T rows afterwards (torch layer).
template <typename T>
int scan_backward_cuda(const T* grad, const T* x0, const T* w, const T* alpha, const T* states,
                       T* d_drive, T* d_x0, int64_t B, int64_t T_steps, int64_t N,
                       CUstream_st* stream);

}  // namespace rnn
}  // namespace eirnn_fast
