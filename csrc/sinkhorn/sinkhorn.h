// Batched log-domain Sinkhorn (DESIGN 3.2), raw-pointer kernels for CPU and CUDA.
//
// Every problem b of the batch is independent: cost C_b [n, m], log-weights log a_b [n], log b_b [m]
// (-inf for zero weights), eps_b > 0. The kernels only iterate: the cost is built once, outside,
// by the torch layer (centred GEMM / GEMM + row and column terms). Alternating updates:
//
//   it = 0, 1, ..., max_iter:
//     e      = eps_it  (eps-scaling: max(eps, eps0 * decay^it); e = eps at it = max_iter)
//     f_new  = -e * LSE_j( log b_j + (g_j - C_ij) / e )                 (row half-step)
//     err    = sum_i a_i |1 - exp((f_i - f_new_i) / e)|                  (L1 row-marginal error of
//                                                                        the state (f, g); columns
//                                                                        are exact after a g-step)
//     f      = f_new
//     stop if it == max_iter or (err < tol and eps had reached its target before this step)
//     g      = -e * LSE_i( log a_i + (f_i - C_ij) / e )                 (column half-step)
//
// iters = number of g half-steps done; value = <a, f> + <b, g> (the dual objective, whose mass term
// vanishes after any half-step since the total mass is 1). The envelope gradient dvalue/dC = P with
// P_ij = exp(log a_i + log b_j + (f_i + g_j - C_ij) / eps) (plan_*, computed in softmax form).
// The error uses |expm1(x)| = |1 - exp(x)|, exact for tiny x.
//
// All tensors are dense, contiguous, row-major. No torch headers here: the .cu is compile-checked
// with plain nvcc on CPU-only CI machines.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

struct CUstream_st;

namespace eirnn_fast {
namespace sinkhorn {

// ---- CPU ------------------------------------------------------------------------------------
// Rows of one problem handled by one work item of the intra-problem parallel path. Fixed, so the
// error partials (summed in chunk order) do not depend on the thread count.
constexpr int64_t kCpuRowChunk = 32;

// One half-step over rows [r0, r1) of K [rows, len] (C for the f-update with lw = log b, q = g;
// Ct for the g-update with lw = log a, q = f):
//     pot_r = -e * LSE_k(lw_k + (q_k - K_rk) / e)                  in place
// (the difference q_k - K_rk is formed before the division, as in the reference: with a tiny eps,
// q / e and K / e are each huge and their difference would cancel catastrophically).
// near_uniform: every row's z_k = (q_k - K_rk) / e lies within 1/2 of its maximum over the support
// (the caller's bound, see near_uniform()): then LSE = zmax + log1p(sum_k wl_k expm1(z_k - zmax))
// with wl = exp(lw) summing to 1, which keeps the costs' contribution when eps dwarfs them
// (lw_k + z_k would round z away and leave eps * rounding(log sum b) ~ eps * 1e-7 in the value).
// With w != nullptr returns sum_r w_r |expm1((pot_old_r - pot_new_r) / e)| (the L1 marginal error
// of the state before the step), else 0. buf: scratch of len elements.
template <typename T>
T half_step_cpu(const T* K, const T* lw, const T* wl, const T* q, bool near_uniform, const T* w,
                T e, int64_t len, int64_t r0, int64_t r1, T* pot, T* buf);

// Rows [i0, i1) of one problem's plan after the final row half-step, in softmax form:
//     P_ij = a_i * exp(v_ij - LSE_j v_ij),   v_ij = log b_j + (g_j - C_ij) / eps
// (= a_i b_j exp((f_i + g_j - C_ij) / eps) with f the row half-step from g, but the rows sum to
// a_i to rounding however large f_i and C_ij are: adding f_i + g_j - C_ij at a cost scale of 1e60
// lost every digit of the exponent).
template <typename T>
void plan_cpu(const T* C, const T* log_a, const T* log_b, const T* g, T eps, int64_t n, int64_t m,
              int64_t i0, int64_t i1, T* P);

// Whether a half-step at this e may use the near-uniform form: (spread of C + range of the other
// potential over the support) <= e / 2 bounds every row's range of z by 1/2, so sum_k wl_k
// expm1(z_k - zmax) >= expm1(-1/2) and log1p stays well conditioned. spread = max C - min C.
template <typename T>
inline bool near_uniform(T spread, const T* q, const T* lw, int64_t len, T e) {
  T lo = std::numeric_limits<T>::infinity(), hi = -std::numeric_limits<T>::infinity();
  for (int64_t k = 0; k < len; ++k) {
    if (!(lw[k] > -std::numeric_limits<T>::infinity())) continue;  // zero weight
    lo = q[k] < lo ? q[k] : lo;
    hi = q[k] > hi ? q[k] : hi;
  }
  return T(2) * (spread + (hi - lo)) <= e;  // false for NaN / inf
}

// The iteration loop of one problem. for_chunks(n_chunks, fn) must call fn(c0, c1) on chunk
// ranges covering [0, n_chunks) (serially or from several threads); chunks are kCpuRowChunk rows.
// C [n, m], Ct = C^T [m, n], log_a [n], log_b [m]; eps, eps0 > 0, decay in (0, 1] (decay = 1 or
// eps0 <= eps: no scaling); spread = max C - min C. Outputs f [n], g [m], *value, *iters, *err.
// work: n + m + ceil(n / kCpuRowChunk) elements.
template <typename T, typename ForChunks>
void solve_problem_cpu(const T* C, const T* Ct, const T* log_a, const T* log_b, T eps, T eps0,
                       T decay, T spread, int64_t n, int64_t m, int64_t max_iter, T tol, T* f,
                       T* g, T* value, int64_t* iters, T* err, T* work, ForChunks&& for_chunks) {
  T* a = work;           // [n]  a_i
  T* b = a + n;          // [m]  b_j
  T* part = b + m;       // [ceil(n / kCpuRowChunk)] row-error partials
  const int64_t row_chunks = (n + kCpuRowChunk - 1) / kCpuRowChunk;
  const int64_t col_chunks = (m + kCpuRowChunk - 1) / kCpuRowChunk;
  for (int64_t i = 0; i < n; ++i) {
    a[i] = std::exp(log_a[i]);
    f[i] = T(0);
  }
  for (int64_t j = 0; j < m; ++j) {
    b[j] = std::exp(log_b[j]);
    g[j] = T(0);
  }
  const bool scaling = decay < T(1) && eps0 > eps;
  auto sched = [&](int64_t it) -> T {
    if (!scaling || it >= max_iter) return eps;
    const T e = eps0 * std::pow(decay, T(it));
    return e > eps ? e : eps;
  };
  T e_prev = sched(0);
  T last_err = std::numeric_limits<T>::infinity();
  int64_t it = 0;
  for (;; ++it) {
    const T e = sched(it);
    const bool near_f = near_uniform(spread, g, log_b, m, e);
    for_chunks(row_chunks, [&](int64_t c0, int64_t c1, T* buf) {
      for (int64_t c = c0; c < c1; ++c)
        part[c] = half_step_cpu<T>(C, log_b, b, g, near_f, a, e, m, c * kCpuRowChunk,
                                   std::min(n, (c + 1) * kCpuRowChunk), f, buf);
    });
    T row_err = T(0);
    for (int64_t c = 0; c < row_chunks; ++c) row_err += part[c];
    last_err = row_err;
    const bool can_stop = (it == 0 ? e : e_prev) == eps;
    if (it >= max_iter || (can_stop && row_err < tol)) break;
    const bool near_g = near_uniform(spread, f, log_a, n, e);
    for_chunks(col_chunks, [&](int64_t c0, int64_t c1, T* buf) {
      for (int64_t c = c0; c < c1; ++c)
        half_step_cpu<T>(Ct, log_a, a, f, near_g, static_cast<const T*>(nullptr), e, n,
                         c * kCpuRowChunk, std::min(m, (c + 1) * kCpuRowChunk), g, buf);
    });
    e_prev = e;
  }
  T v = T(0);
  for (int64_t i = 0; i < n; ++i) v += a[i] * f[i];
  for (int64_t j = 0; j < m; ++j) v += b[j] * g[j];
  *value = v;
  *iters = it;
  *err = last_err;
}

// ---- CUDA (sinkhorn_cuda.cu) -----------------------------------------------------------------
// All B problems in one launch, one block per problem, every iteration inside the kernel; the cost
// tile sits in shared memory when n * m fits, else it is streamed from global memory / L2 (rows
// from C, columns from Ct). Convergence is a per-block flag: no host synchronisation.
// Same maths as the CPU solver (near-uniform form included).
//   C, Ct [B, n, m] / [B, m, n], log_a [B, n], log_b [B, m], eps, eps0, spread [B]
//   -> f [B, n], g [B, m], value [B], iters [B], err [B].  Returns a cudaError_t value (0 = ok).
template <typename T>
int solve_cuda(const T* C, const T* Ct, const T* log_a, const T* log_b, const T* eps,
               const T* eps0, const T* spread, T decay, int64_t B, int64_t n, int64_t m,
               int64_t max_iter, T tol, T* f, T* g, T* value, int64_t* iters, T* err,
               CUstream_st* stream);

// P [B, n, m] from the column potential, softmax form as plan_cpu (a warp per row).
template <typename T>
int plan_cuda(const T* C, const T* log_a, const T* log_b, const T* g, const T* eps, int64_t B,
              int64_t n, int64_t m, T* P, CUstream_st* stream);

}  // namespace sinkhorn
}  // namespace eirnn_fast
