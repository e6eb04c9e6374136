// The eirnn_fast operator library: one schema per forward and backward entry point
// (torch.ops.eirnn_fast.*), and their CPU implementations. The CUDA implementations are
// registered in library_cuda.cpp (compiled only with CUDA); fake kernels and autograd formulas
// are registered from Python (eirnn_fast/ops/_library.py).
#include <torch/library.h>

#include "registry/ops.h"

#define EIRNN_CSR "Tensor rowptr, Tensor col, Tensor perm, Tensor rowptr_t, Tensor col_t, Tensor perm_t, "

TORCH_LIBRARY(eirnn_fast, m) {
  // rnn/: the E-I recurrence, the output rates and the counter-based state noise
  m.def("ei_rnn_scan_fwd(Tensor drive, Tensor x0, Tensor w, Tensor alpha) -> Tensor");
  m.def("ei_rnn_scan_bwd(Tensor grad, Tensor x0, Tensor w, Tensor alpha, Tensor states, bool need_w, "
        "bool need_alpha) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("ei_rates_fwd(Tensor states, Tensor x0, Tensor scale, Tensor base) -> Tensor");
  m.def("ei_rates_bwd(Tensor grad, Tensor states, Tensor x0, Tensor scale, Tensor base) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("noise_add_(Tensor(a!) drive, Tensor std, int seed) -> ()");
  m.def("noise_dot(Tensor grad, int seed) -> Tensor");
  // message_passing/: an EdgeGraph crosses as its six CSR arrays
  m.def("edge_spmm_fwd(" EIRNN_CSR "Tensor weight, Tensor x) -> Tensor");
  m.def("edge_spmm_bwd(" EIRNN_CSR "Tensor weight, Tensor x, Tensor grad, bool need_weight, bool need_x) "
        "-> (Tensor, Tensor)");
  m.def("edge_mlp_fwd(" EIRNN_CSR "Tensor weight, Tensor a, Tensor b, Tensor hw, Tensor hb, Tensor ow, "
        "Tensor ob) -> Tensor");
  m.def("edge_mlp_bwd(" EIRNN_CSR "Tensor weight, Tensor a, Tensor b, Tensor hw, Tensor hb, Tensor ow, "
        "Tensor ob, Tensor grad, bool need_weight, bool need_a, bool need_b, bool need_params) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  // sinkhorn/
  m.def("sinkhorn_solve(Tensor C, Tensor log_a, Tensor log_b, Tensor eps, Tensor eps0, float decay, "
        "int max_iter, float tol) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("sinkhorn_plan(Tensor C, Tensor log_a, Tensor log_b, Tensor g, Tensor eps) -> Tensor");
}

TORCH_LIBRARY_IMPL(eirnn_fast, CPU, m) {
  EIRNN_FAST_REGISTER_DEVICE_IMPLS(m, cpu);
  // CPU-only kernels (the Python layer runs their references on other devices)
  m.impl("ei_rates_fwd", &eirnn_fast::ei_rates_fwd);
  m.impl("ei_rates_bwd", &eirnn_fast::ei_rates_bwd);
  m.impl("noise_add_", &eirnn_fast::registry::noise_add_);
  m.impl("noise_dot", &eirnn_fast::noise_dot);
  m.impl("edge_mlp_fwd", &eirnn_fast::registry::edge_mlp_fwd);
  m.impl("edge_mlp_bwd", &eirnn_fast::registry::edge_mlp_bwd);
}
