// CUDA launch code of the batched Sinkhorn (registered for the CUDA dispatch key in
// registry/library_cuda.cpp; compiled only when the extension is built with CUDA).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include "common/alloc.h"
#include "common/checks.h"
#include "common/cuda_checks.h"
#include "sinkhorn/sinkhorn.h"
#include "sinkhorn/sinkhorn_ops.h"

namespace eirnn_fast {
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> sinkhorn_solve_cuda(
    const at::Tensor& C_in, const at::Tensor& log_a_in, const at::Tensor& log_b_in,
    const at::Tensor& eps_in, const at::Tensor& eps0_in, double decay, int64_t max_iter,
    double tol) {
  const SolveArgs in = prepare_solve(C_in, log_a_in, log_b_in, eps_in, eps0_in, decay, max_iter);
  const at::Tensor &C = in.C, &Ct = in.Ct, &log_a = in.log_a, &log_b = in.log_b, &eps = in.eps,
                   &eps0 = in.eps0, &spread = in.spread;
  const at::Tensor &f = in.f, &g = in.g, &value = in.value, &iters = in.iters, &err = in.err;
  const int64_t B = in.B, n = in.n, m = in.m;

  const c10::cuda::CUDAGuard guard(C.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(C.scalar_type(), "sinkhorn_solve_cuda", [&] {
    check_cuda(sinkhorn::solve_cuda<scalar_t>(
                   C.data_ptr<scalar_t>(), Ct.data_ptr<scalar_t>(), log_a.data_ptr<scalar_t>(),
                   log_b.data_ptr<scalar_t>(), eps.data_ptr<scalar_t>(),
                   eps0.data_ptr<scalar_t>(), spread.data_ptr<scalar_t>(),
                   static_cast<scalar_t>(decay), B, n, m, max_iter,
                   static_cast<scalar_t>(tol), f.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(),
                   value.data_ptr<scalar_t>(), iters.data_ptr<int64_t>(),
                   err.data_ptr<scalar_t>(), stream),
               "sinkhorn solve kernel");
  });
  return {f, g, value, iters, err};
}

at::Tensor sinkhorn_plan_cuda(const at::Tensor& C_in, const at::Tensor& log_a_in,
                                         const at::Tensor& log_b_in, const at::Tensor& g_in,
                                         const at::Tensor& eps_in) {
  const PlanArgs in = prepare_plan(C_in, log_a_in, log_b_in, g_in, eps_in);
  const at::Tensor &C = in.C, &log_a = in.log_a, &log_b = in.log_b, &g = in.g, &eps = in.eps, &P = in.P;
  const int64_t B = in.B, n = in.n, m = in.m;

  const c10::cuda::CUDAGuard guard(C.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(C.scalar_type(), "sinkhorn_plan_cuda", [&] {
    check_cuda(sinkhorn::plan_cuda<scalar_t>(
                   C.data_ptr<scalar_t>(), log_a.data_ptr<scalar_t>(), log_b.data_ptr<scalar_t>(),
                   g.data_ptr<scalar_t>(), eps.data_ptr<scalar_t>(), B, n, m,
                   P.data_ptr<scalar_t>(), stream),
               "sinkhorn plan kernel");
  });
  return P;
}

}  // namespace eirnn_fast
