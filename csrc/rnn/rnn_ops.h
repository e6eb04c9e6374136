// Torch-facing entry points of the fused E-I recurrence (registered in registry/library.cpp).
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace eirnn_fast {

// Shape / dtype / device checks shared by the CPU and CUDA entry points.
void check_scan_inputs(const at::Tensor& drive, const at::Tensor& x0, const at::Tensor& w,
                       const at::Tensor& alpha);

// The checked, contiguous operands of one forward or backward call and its allocated outputs: the
// part of the entry points the CPU and CUDA files share (rnn_ops.cpp).
struct ScanForwardArgs {
  at::Tensor drive, x0, w, alpha, states;
  int64_t B, T, N;
};
ScanForwardArgs prepare_scan_forward(const at::Tensor& drive, const at::Tensor& x0, const at::Tensor& w,
                                     const at::Tensor& alpha);

struct ScanBackwardArgs {
  at::Tensor grad, x0, w, alpha, states, d_drive, d_x0;
  int64_t B, T, N;
};
ScanBackwardArgs prepare_scan_backward(const at::Tensor& grad, const at::Tensor& x0, const at::Tensor& w,
                                       const at::Tensor& alpha, const at::Tensor& states);

// drive [B, T, N], x0 [B, N], w [N, N], alpha [N] -> states [B, T, N]. One entry point per
// device (rnn_ops.cpp, rnn_ops_cuda.cpp), registered per dispatch key.
at::Tensor ei_rnn_scan_fwd_cpu(const at::Tensor& drive, const at::Tensor& x0, const at::Tensor& w,
                               const at::Tensor& alpha);
at::Tensor ei_rnn_scan_fwd_cuda(const at::Tensor& drive, const at::Tensor& x0, const at::Tensor& w,
                                const at::Tensor& alpha);

// grad [B, T, N], saved inputs and states -> (d_drive [B, T, N], d_x0 [B, N], d_w [N, N], d_alpha [N])
// d_w / d_alpha are undefined tensors when not requested.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ei_rnn_scan_bwd_cpu(
    const at::Tensor& grad, const at::Tensor& x0, const at::Tensor& w, const at::Tensor& alpha,
    const at::Tensor& states, bool need_w, bool need_alpha);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ei_rnn_scan_bwd_cuda(
    const at::Tensor& grad, const at::Tensor& x0, const at::Tensor& w, const at::Tensor& alpha,
    const at::Tensor& states, bool need_w, bool need_alpha);

// Output rates of the drop-in model (CPU): rates = max(softplus(prev) * scale + base, 0) with
// prev = [x0, states[:, :-1]]. states [B, T, N], x0 [B, N], scale / base 0-d -> rates [B, T, N]
at::Tensor ei_rates_fwd(const at::Tensor& states, const at::Tensor& x0, const at::Tensor& scale,
                        const at::Tensor& base);

// grad [B, T, N] -> (d_states [B, T, N], d_x0 [B, N], d_scale 0-d, d_base 0-d)
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ei_rates_bwd(
    const at::Tensor& grad, const at::Tensor& states, const at::Tensor& x0, const at::Tensor& scale,
    const at::Tensor& base);

// In place: drive += std * xi, xi the counter-based normals of `seed` (common/normal_rng.h) in element order (CPU,
// contiguous float32/float64). Deterministic for any thread count.
void noise_add_(at::Tensor& drive, const at::Tensor& std, int64_t seed);

// sum(grad * xi) for the draws of noise_add_ with the same seed -> 0-d tensor
at::Tensor noise_dot(const at::Tensor& grad, int64_t seed);

}  // namespace eirnn_fast
