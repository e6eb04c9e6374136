// CUDA launch code of the batched Sinkhorn (registered for the CUDA dispatch key in
// registry/library_cuda.cpp; compiled only when the extension is built with CUDA).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include "common/alloc.h"
#include "common/checks.h"
#include "sinkhorn/sinkhorn.h"
#include "sinkhorn/sinkhorn_ops.h"

namespace eirnn_fast {
namespace {

void check_cuda(int err, const char* what) {
  TORCH_CHECK(err == 0, what, " failed: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> sinkhorn_solve_cuda(
    const at::Tensor& C_in, const at::Tensor& log_a_in, const at::Tensor& log_b_in,
    const at::Tensor& eps_in, const at::Tensor& eps0_in, double decay, int64_t max_iter,
    double tol) {
  check_problem(C_in, log_a_in, log_b_in, eps_in);
  EIRNN_CHECK_SHAPE(eps0_in, C_in.size(0));
  EIRNN_CHECK_SAME(eps0_in, C_in);
  TORCH_CHECK(max_iter >= 0, "max_iter must be >= 0, got ", max_iter);
  TORCH_CHECK(decay > 0.0 && decay <= 1.0, "decay must be in (0, 1], got ", decay);
  const at::Tensor C = C_in.contiguous(), log_a = log_a_in.contiguous(),
                   log_b = log_b_in.contiguous(), eps = eps_in.contiguous(),
                   eps0 = eps0_in.contiguous();
  const int64_t B = C.size(0), n = C.size(1), m = C.size(2);
  const at::Tensor Ct = C.transpose(1, 2).contiguous();
  // Per-problem cost spread (max C - min C): decides when the near-uniform LSE form is used.
  const auto minmax = at::aminmax(C.reshape({B, n * m}), 1);
  const at::Tensor spread = (std::get<1>(minmax) - std::get<0>(minmax)).contiguous();
  at::Tensor f = at::empty({B, n}, C.options());
  at::Tensor g = at::empty({B, m}, C.options());
  at::Tensor value = at::empty({B}, C.options());
  at::Tensor iters = at::empty({B}, C.options().dtype(at::kLong));
  at::Tensor err = at::empty({B}, C.options());

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
  check_problem(C_in, log_a_in, log_b_in, eps_in);
  const int64_t B = C_in.size(0), m = C_in.size(2);
  EIRNN_CHECK_SHAPE(g_in, B, m);
  EIRNN_CHECK_SAME(g_in, C_in);
  const at::Tensor C = C_in.contiguous(), log_a = log_a_in.contiguous(),
                   log_b = log_b_in.contiguous(), g = g_in.contiguous(), eps = eps_in.contiguous();
  const int64_t n = C.size(1);
  at::Tensor P = empty_for_kernel(C.sizes(), C.options());

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
