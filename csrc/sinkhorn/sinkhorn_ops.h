// Torch-facing entry points of the batched log-domain Sinkhorn (registered in registry/library.cpp).
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace eirnn_fast {

// C [B, n, m] (built once by the caller), log_a [B, n], log_b [B, m] (-inf = zero weight),
// eps [B] > 0, eps0 [B] (eps-scaling start; <= eps or decay >= 1: no scaling)
// -> (f [B, n], g [B, m], value [B], iters [B] int64, err [B]) as documented in sinkhorn/sinkhorn.h.
// One entry point per device (sinkhorn_ops.cpp, sinkhorn_ops_cuda.cpp), registered per dispatch key.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> sinkhorn_solve_cpu(
    const at::Tensor& C, const at::Tensor& log_a, const at::Tensor& log_b, const at::Tensor& eps,
    const at::Tensor& eps0, double decay, int64_t max_iter, double tol);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> sinkhorn_solve_cuda(
    const at::Tensor& C, const at::Tensor& log_a, const at::Tensor& log_b, const at::Tensor& eps,
    const at::Tensor& eps0, double decay, int64_t max_iter, double tol);

// Shape / dtype / device checks shared by both devices' entry points.
void check_problem(const at::Tensor& C, const at::Tensor& log_a, const at::Tensor& log_b,
                   const at::Tensor& eps);

// The checked, contiguous operands of one solve / plan call and its allocated outputs: the part of
// the entry points the CPU and CUDA files share (sinkhorn_ops.cpp).
struct SolveArgs {
  at::Tensor C, Ct, log_a, log_b, eps, eps0, spread;  // spread [B] = max C - min C per problem
  at::Tensor f, g, value, iters, err;
  int64_t B, n, m;
};
SolveArgs prepare_solve(const at::Tensor& C, const at::Tensor& log_a, const at::Tensor& log_b,
                        const at::Tensor& eps, const at::Tensor& eps0, double decay, int64_t max_iter);

struct PlanArgs {
  at::Tensor C, log_a, log_b, g, eps, P;
  int64_t B, n, m;
};
PlanArgs prepare_plan(const at::Tensor& C, const at::Tensor& log_a, const at::Tensor& log_b,
                      const at::Tensor& g, const at::Tensor& eps);

// P [B, n, m] = a_i softmax_j(log b_j + (g_j - C_ij) / eps) from the saved column potential g
// (= exp(log a_i + log b_j + (f_i + g_j - C_ij) / eps) with f the final row half-step; its rows sum
// to a to rounding).
at::Tensor sinkhorn_plan_cpu(const at::Tensor& C, const at::Tensor& log_a, const at::Tensor& log_b,
                             const at::Tensor& g, const at::Tensor& eps);
at::Tensor sinkhorn_plan_cuda(const at::Tensor& C, const at::Tensor& log_a, const at::Tensor& log_b,
                              const at::Tensor& g, const at::Tensor& eps);

}  // namespace eirnn_fast
