// Torch-facing entry points of the fused E-I recurrence (registered in bindings.cpp).
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace eirnn_fast {

// drive [B, T, N], x0 [B, N], w [N, N], alpha [N] -> states [B, T, N]
at::Tensor ei_rnn_scan_fwd(const at::Tensor& drive, const at::Tensor& x0, const at::Tensor& w,
                           const at::Tensor& alpha);

// grad [B, T, N], saved inputs and states -> (d_drive [B, T, N], d_x0 [B, N], d_w [N, N], d_alpha [N])
// d_w / d_alpha are undefined tensors when not requested.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ei_rnn_scan_bwd(
    const at::Tensor& grad, const at::Tensor& x0, const at::Tensor& w, const at::Tensor& alpha,
    const at::Tensor& states, bool need_w, bool need_alpha);

}  // namespace eirnn_fast
