// CUDA launch code of the fused E-I recurrence (registered for the CUDA dispatch key in
// registry/library_cuda.cpp; compiled only when the extension is built with CUDA).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include "common/alloc.h"
#include "common/checks.h"
#include "common/cuda_checks.h"
#include "rnn/rnn.h"
#include "rnn/rnn_ops.h"

namespace eirnn_fast {
at::Tensor ei_rnn_scan_fwd_cuda(const at::Tensor& drive_in, const at::Tensor& x0_in,
                                const at::Tensor& w_in, const at::Tensor& alpha_in) {
  const ScanForwardArgs in = prepare_scan_forward(drive_in, x0_in, w_in, alpha_in);
  const at::Tensor &drive = in.drive, &x0 = in.x0, &w = in.w, &alpha = in.alpha, &states = in.states;
  const int64_t B = in.B, T = in.T, N = in.N;
  TORCH_CHECK(N <= rnn::kCudaMaxUnits, "ei_rnn_scan: the CUDA kernel takes N <= ",
              rnn::kCudaMaxUnits, ", got N = ", N);
  const c10::cuda::CUDAGuard guard(drive.device());
  const at::Tensor wt = w.t().contiguous();
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(drive.scalar_type(), "ei_rnn_scan_fwd_cuda", [&] {
    check_cuda(rnn::scan_forward_cuda<scalar_t>(
                   drive.data_ptr<scalar_t>(), x0.data_ptr<scalar_t>(), wt.data_ptr<scalar_t>(),
                   alpha.data_ptr<scalar_t>(), states.data_ptr<scalar_t>(), B, T, N, stream),
               "ei_rnn_scan forward kernel");
  });
  return states;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ei_rnn_scan_bwd_cuda(
    const at::Tensor& grad_in, const at::Tensor& x0_in, const at::Tensor& w_in,
    const at::Tensor& alpha_in, const at::Tensor& states_in, bool need_w, bool need_alpha) {
  const ScanBackwardArgs in = prepare_scan_backward(grad_in, x0_in, w_in, alpha_in, states_in);
  const at::Tensor &grad = in.grad, &x0 = in.x0, &w = in.w, &alpha = in.alpha, &states = in.states;
  const at::Tensor &d_drive = in.d_drive, &d_x0 = in.d_x0;
  const int64_t B = in.B, T = in.T, N = in.N;
  at::Tensor d_w, d_alpha;
  const bool need_m = need_w || need_alpha;
  TORCH_CHECK(N <= rnn::kCudaMaxUnits, "ei_rnn_scan: the CUDA kernel takes N <= ",
              rnn::kCudaMaxUnits, ", got N = ", N);
  const c10::cuda::CUDAGuard guard(states.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "ei_rnn_scan_bwd_cuda", [&] {
    check_cuda(rnn::scan_backward_cuda<scalar_t>(
                   grad.data_ptr<scalar_t>(), x0.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                   alpha.data_ptr<scalar_t>(), states.data_ptr<scalar_t>(),
                   d_drive.data_ptr<scalar_t>(), d_x0.data_ptr<scalar_t>(), B, T, N, stream),
               "ei_rnn_scan backward kernel");
  });
  if (need_m) {
    // Parameter gradients after the reverse loop (haste-style): M = G^T softplus(X_prev) over
    // the B*T rows, dW = diag(a) M, d_alpha = rowsum(W .* M) - sum(G .* X_prev).
    const at::Tensor x_prev = at::cat({x0.unsqueeze(1), states.narrow(1, 0, T - 1)}, 1);
    const at::Tensor g2 = d_drive.reshape({B * T, N});
    const at::Tensor m = at::matmul(g2.t(), at::softplus(x_prev).reshape({B * T, N}));
    if (need_w) d_w = alpha.unsqueeze(1) * m;
    if (need_alpha) d_alpha = (w * m).sum(1) - (g2 * x_prev.reshape({B * T, N})).sum(0);
  }
  return {d_drive, d_x0, d_w, d_alpha};
}

}  // namespace eirnn_fast
