// Torch-facing launch code of the fused E-I recurrence: checks, allocation, dtype dispatch,
// parallelisation over batch chunks (CPU) and stream selection (CUDA).
#include "rnn/rnn_ops.h"

#include <ATen/Parallel.h>

#include "common/alloc.h"
#include "common/checks.h"
#include "rnn/rnn.h"


namespace eirnn_fast {

void check_scan_inputs(const at::Tensor& drive, const at::Tensor& x0, const at::Tensor& w,
                  const at::Tensor& alpha) {
  EIRNN_CHECK_DIM(drive, 3, "[B, T, N]");
  EIRNN_CHECK_FLOAT(drive);
  const int64_t B = drive.size(0), N = drive.size(2);
  TORCH_CHECK(B > 0 && drive.size(1) > 0 && N > 0, "drive must have B, T, N >= 1, got shape ",
              drive.sizes());
  EIRNN_CHECK_SHAPE(x0, B, N);
  EIRNN_CHECK_SHAPE(w, N, N);
  EIRNN_CHECK_SHAPE(alpha, N);
  EIRNN_CHECK_SAME(x0, drive);
  EIRNN_CHECK_SAME(w, drive);
  EIRNN_CHECK_SAME(alpha, drive);
  TORCH_CHECK(drive.device().is_cpu() || drive.device().is_cuda(),
              "ei_rnn_scan: unsupported device ", drive.device());
}

ScanForwardArgs prepare_scan_forward(const at::Tensor& drive_in, const at::Tensor& x0_in,
                                     const at::Tensor& w_in, const at::Tensor& alpha_in) {
  check_scan_inputs(drive_in, x0_in, w_in, alpha_in);
  ScanForwardArgs a;
  a.drive = drive_in.contiguous();
  a.x0 = x0_in.contiguous();
  a.w = w_in.contiguous();
  a.alpha = alpha_in.contiguous();
  a.B = a.drive.size(0);
  a.T = a.drive.size(1);
  a.N = a.drive.size(2);
  a.states = empty_for_kernel(a.drive.sizes(), a.drive.options());
  return a;
}

ScanBackwardArgs prepare_scan_backward(const at::Tensor& grad_in, const at::Tensor& x0_in,
                                       const at::Tensor& w_in, const at::Tensor& alpha_in,
                                       const at::Tensor& states_in) {
  check_scan_inputs(states_in, x0_in, w_in, alpha_in);
  EIRNN_CHECK_SHAPE(grad_in, states_in.size(0), states_in.size(1), states_in.size(2));
  EIRNN_CHECK_SAME(grad_in, states_in);
  ScanBackwardArgs a;
  a.grad = grad_in.contiguous();
  a.x0 = x0_in.contiguous();
  a.w = w_in.contiguous();
  a.alpha = alpha_in.contiguous();
  a.states = states_in.contiguous();
  a.B = a.states.size(0);
  a.T = a.states.size(1);
  a.N = a.states.size(2);
  a.d_drive = empty_for_kernel(a.states.sizes(), a.states.options());
  a.d_x0 = at::empty_like(a.x0);
  return a;
}

at::Tensor ei_rnn_scan_fwd_cpu(const at::Tensor& drive_in, const at::Tensor& x0_in,
                           const at::Tensor& w_in, const at::Tensor& alpha_in) {
  const ScanForwardArgs in = prepare_scan_forward(drive_in, x0_in, w_in, alpha_in);
  const at::Tensor &drive = in.drive, &x0 = in.x0, &w = in.w, &alpha = in.alpha, &states = in.states;
  const int64_t B = in.B, T = in.T, N = in.N;

  const int64_t n_chunks = (B + rnn::kCpuChunkRows - 1) / rnn::kCpuChunkRows;
  AT_DISPATCH_FLOATING_TYPES(drive.scalar_type(), "ei_rnn_scan_fwd_cpu", [&] {
    const scalar_t* d = drive.data_ptr<scalar_t>();
    const scalar_t* x = x0.data_ptr<scalar_t>();
    const scalar_t* wp = w.data_ptr<scalar_t>();
    const scalar_t* a = alpha.data_ptr<scalar_t>();
    scalar_t* out = states.data_ptr<scalar_t>();
    at::parallel_for(0, n_chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b0 = c * rnn::kCpuChunkRows;
        rnn::scan_forward_cpu<scalar_t>(d, x, wp, a, out, B, T, N, b0,
                                        std::min(B, b0 + rnn::kCpuChunkRows));
      }
    });
  });
  return states;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ei_rnn_scan_bwd_cpu(
    const at::Tensor& grad_in, const at::Tensor& x0_in, const at::Tensor& w_in,
    const at::Tensor& alpha_in, const at::Tensor& states_in, bool need_w, bool need_alpha) {
  const ScanBackwardArgs in = prepare_scan_backward(grad_in, x0_in, w_in, alpha_in, states_in);
  const at::Tensor &grad = in.grad, &x0 = in.x0, &w = in.w, &alpha = in.alpha, &states = in.states;
  const at::Tensor &d_drive = in.d_drive, &d_x0 = in.d_x0;
  const int64_t B = in.B, T = in.T, N = in.N;
  at::Tensor d_w, d_alpha;
  const bool need_m = need_w || need_alpha;

  const int64_t n_chunks = (B + rnn::kCpuChunkRows - 1) / rnn::kCpuChunkRows;
  at::Tensor m_partials, gx_partials;
  if (need_m) {
    m_partials = at::empty({n_chunks, N, N}, states.options());
    gx_partials = at::empty({n_chunks, N}, states.options());
  }
  if (need_w) d_w = at::empty_like(w);
  if (need_alpha) d_alpha = at::empty_like(alpha);
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "ei_rnn_scan_bwd_cpu", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    const scalar_t* x = x0.data_ptr<scalar_t>();
    const scalar_t* wp = w.data_ptr<scalar_t>();
    const scalar_t* a = alpha.data_ptr<scalar_t>();
    const scalar_t* s = states.data_ptr<scalar_t>();
    scalar_t* dd = d_drive.data_ptr<scalar_t>();
    scalar_t* dx = d_x0.data_ptr<scalar_t>();
    scalar_t* mp = need_m ? m_partials.data_ptr<scalar_t>() : nullptr;
    scalar_t* gp = need_m ? gx_partials.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, n_chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b0 = c * rnn::kCpuChunkRows;
        rnn::scan_backward_cpu<scalar_t>(g, x, wp, a, s, dd, dx, need_m ? mp + c * N * N : nullptr,
                                         need_m ? gp + c * N : nullptr, need_m, B, T, N, b0,
                                         std::min(B, b0 + rnn::kCpuChunkRows));
      }
    });
    if (need_m)
      rnn::reduce_partials_cpu<scalar_t>(mp, gp, n_chunks, wp, a, N,
                                         need_w ? d_w.data_ptr<scalar_t>() : nullptr,
                                         need_alpha ? d_alpha.data_ptr<scalar_t>() : nullptr);
  });
  return {d_drive, d_x0, d_w, d_alpha};
}

// ---- output rates and state noise (CPU) ----------------------------------------------------------

namespace {

void check_rates(const at::Tensor& states, const at::Tensor& x0, const at::Tensor& scale,
                 const at::Tensor& base) {
  EIRNN_CHECK_DIM(states, 3, "[B, T, N]");
  EIRNN_CHECK_FLOAT(states);
  TORCH_CHECK(states.device().is_cpu(), "ei_rates: CPU only, got ", states.device());
  TORCH_CHECK(states.size(0) > 0 && states.size(1) > 0 && states.size(2) > 0,
              "states must have B, T, N >= 1, got shape ", states.sizes());
  EIRNN_CHECK_SHAPE(x0, states.size(0), states.size(2));
  EIRNN_CHECK_SAME(x0, states);
  TORCH_CHECK(scale.numel() == 1 && base.numel() == 1, "scale and base must hold one value, got ",
              scale.sizes(), " and ", base.sizes());
}

void check_noise(const at::Tensor& x, const char* name) {
  EIRNN_CHECK_FLOAT(x);
  TORCH_CHECK(x.device().is_cpu(), name, ": CPU only, got ", x.device());
  TORCH_CHECK(x.is_contiguous(), name, ": the tensor must be contiguous");
}

}  // namespace

at::Tensor ei_rates_fwd(const at::Tensor& states_in, const at::Tensor& x0_in,
                        const at::Tensor& scale, const at::Tensor& base) {
  check_rates(states_in, x0_in, scale, base);
  const at::Tensor states = states_in.contiguous(), x0 = x0_in.contiguous();
  const int64_t B = states.size(0), T = states.size(1), N = states.size(2);
  at::Tensor rates = empty_for_kernel(states.sizes(), states.options());
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "ei_rates_fwd", [&] {
    const scalar_t sc = scale.item<scalar_t>(), bs = base.item<scalar_t>();
    const scalar_t* s = states.data_ptr<scalar_t>();
    const scalar_t* x = x0.data_ptr<scalar_t>();
    scalar_t* out = rates.data_ptr<scalar_t>();
    at::parallel_for(0, B * T, rnn::kCpuRateRows, [&](int64_t r0, int64_t r1) {
      rnn::rates_forward_cpu<scalar_t>(s, x, sc, bs, out, T, N, r0, r1);
    });
  });
  return rates;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> ei_rates_bwd(
    const at::Tensor& grad_in, const at::Tensor& states_in, const at::Tensor& x0_in,
    const at::Tensor& scale, const at::Tensor& base) {
  check_rates(states_in, x0_in, scale, base);
  EIRNN_CHECK_SHAPE(grad_in, states_in.size(0), states_in.size(1), states_in.size(2));
  EIRNN_CHECK_SAME(grad_in, states_in);
  const at::Tensor grad = grad_in.contiguous(), states = states_in.contiguous(),
                   x0 = x0_in.contiguous();
  const int64_t B = states.size(0), T = states.size(1), N = states.size(2);
  at::Tensor d_states = empty_for_kernel(states.sizes(), states.options());
  at::Tensor d_x0 = at::empty_like(x0);
  const int64_t rows = B * T, n_chunks = (rows + rnn::kCpuRateRows - 1) / rnn::kCpuRateRows;
  std::vector<double> sums(2 * n_chunks, 0.0);
  at::Tensor d_scale, d_base;
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "ei_rates_bwd", [&] {
    const scalar_t sc = scale.item<scalar_t>(), bs = base.item<scalar_t>();
    const scalar_t* g = grad.data_ptr<scalar_t>();
    const scalar_t* s = states.data_ptr<scalar_t>();
    const scalar_t* x = x0.data_ptr<scalar_t>();
    scalar_t* ds = d_states.data_ptr<scalar_t>();
    scalar_t* dx = d_x0.data_ptr<scalar_t>();
    at::parallel_for(0, n_chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t r0 = c * rnn::kCpuRateRows;
        rnn::rates_backward_cpu<scalar_t>(g, s, x, sc, bs, ds, dx, &sums[2 * c], T, N, r0,
                                          std::min(rows, r0 + rnn::kCpuRateRows));
      }
    });
  });
  double total_sp = 0.0, total_g = 0.0;  // fixed chunk order: independent of the thread count
  for (int64_t c = 0; c < n_chunks; ++c) {
    total_sp += sums[2 * c];
    total_g += sums[2 * c + 1];
  }
  d_scale = at::scalar_tensor(total_sp, states.options());
  d_base = at::scalar_tensor(total_g, states.options());
  return {d_states, d_x0, d_scale, d_base};
}

void noise_add_(at::Tensor& drive, const at::Tensor& std, int64_t seed) {
  check_noise(drive, "noise_add_");
  TORCH_CHECK(std.numel() == 1, "std must hold one value, got ", std.sizes());
  const int64_t n = drive.numel();
  AT_DISPATCH_FLOATING_TYPES(drive.scalar_type(), "noise_add_", [&] {
    const scalar_t sd = std.item<scalar_t>();
    scalar_t* d = drive.data_ptr<scalar_t>();
    const int64_t n_chunks = (n + rnn::kCpuNoiseChunk - 1) / rnn::kCpuNoiseChunk;
    at::parallel_for(0, n_chunks, 1, [&](int64_t c0, int64_t c1) {
      rnn::noise_add_cpu<scalar_t>(d, sd, static_cast<uint64_t>(seed), c0 * rnn::kCpuNoiseChunk,
                                   std::min(n, c1 * rnn::kCpuNoiseChunk));
    });
  });
}

at::Tensor noise_dot(const at::Tensor& grad_in, int64_t seed) {
  const at::Tensor grad = grad_in.contiguous();
  check_noise(grad, "noise_dot");
  const int64_t n = grad.numel(), n_chunks = (n + rnn::kCpuNoiseChunk - 1) / rnn::kCpuNoiseChunk;
  std::vector<double> partial(n_chunks, 0.0);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "noise_dot", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    at::parallel_for(0, n_chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t i0 = c * rnn::kCpuNoiseChunk;
        partial[c] = rnn::noise_dot_cpu<scalar_t>(g, static_cast<uint64_t>(seed), i0,
                                                  std::min(n, i0 + rnn::kCpuNoiseChunk));
      }
    });
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return at::scalar_tensor(total, grad.options());
}

}  // namespace eirnn_fast
