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
// P_ij = exp(log a_i + log b_j + (f_i + g_j - C_ij) / eps) (plan_*).
//
// All tensors are dense, contiguous, row-major. No torch headers here: the .cu is compile-checked
// with plain nvcc on CPU-only CI machines.
#pragma once

#include <cstdint>

struct CUstream_st;

namespace eirnn_fast {
namespace sinkhorn {

// ---- CPU ------------------------------------------------------------------------------------
// One problem. C [n, m], Ct = C^T [m, n], log_a [n], log_b [m]; eps, eps0 > 0 and decay in (0, 1]
// (decay = 1 or eps0 <= eps: no scaling). Outputs f [n], g [m], *value, *iters, *err.
// work: scratch of 2 * (n + m) + max(n, m) elements.
template <typename T>
void solve_cpu(const T* C, const T* Ct, const T* log_a, const T* log_b, T eps, T eps0, T decay,
               int64_t n, int64_t m, int64_t max_iter, T tol, T* f, T* g, T* value,
               int64_t* iters, T* err, T* work);

// Rows [i0, i1) of one problem's plan: P [n, m] = exp(log a_i + log b_j + (f_i + g_j - C_ij) / eps).
template <typename T>
void plan_cpu(const T* C, const T* log_a, const T* log_b, const T* f, const T* g, T eps, int64_t n,
              int64_t m, int64_t i0, int64_t i1, T* P);

// ---- CUDA (sinkhorn_cuda.cu) -----------------------------------------------------------------
// All B problems in one launch, one block per problem, every iteration inside the kernel; the cost
// tile sits in shared memory when n * m fits, else it is streamed from global memory / L2 (rows
// from C, columns from Ct). Convergence is a per-block flag: no host synchronisation.
//   C, Ct [B, n, m] / [B, m, n], log_a [B, n], log_b [B, m], eps, eps0 [B]
//   -> f [B, n], g [B, m], value [B], iters [B], err [B].  Returns a cudaError_t value (0 = ok).
template <typename T>
int solve_cuda(const T* C, const T* Ct, const T* log_a, const T* log_b, const T* eps,
               const T* eps0, T decay, int64_t B, int64_t n, int64_t m, int64_t max_iter, T tol,
               T* f, T* g, T* value, int64_t* iters, T* err, CUstream_st* stream);

// P [B, n, m] from the potentials (grid-stride, one thread per entry).
template <typename T>
int plan_cuda(const T* C, const T* log_a, const T* log_b, const T* f, const T* g, const T* eps,
              int64_t B, int64_t n, int64_t m, T* P, CUstream_st* stream);

}  // namespace sinkhorn
}  // namespace eirnn_fast
