// The registered eirnn_fast ops (torch.ops.eirnn_fast.*): one adapter per schema in library.cpp.
// The adapters turn the kernels' C++ signatures into schema-friendly ones: an EdgeGraph arrives as
// its six CSR tensors, and a gradient that was not requested comes back as an empty [0] tensor
// (a schema output cannot be undefined; the Python autograd formulas return None for it).
// Registered for CPU in library.cpp and, for the ops with a CUDA kernel, for CUDA in library_cuda.cpp.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "message_passing/message_passing_ops.h"
#include "rnn/rnn_ops.h"
#include "sinkhorn/sinkhorn_ops.h"

namespace eirnn_fast::registry {

inline at::Tensor or_empty(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() ? t : at::empty({0}, like.options());
}

using T2 = std::tuple<at::Tensor, at::Tensor>;
using T4 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using T5 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using T7 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

template <T4 (*Bwd)(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                    const at::Tensor&, bool, bool)>
T4 ei_rnn_scan_bwd(const at::Tensor& grad, const at::Tensor& x0, const at::Tensor& w, const at::Tensor& alpha,
                   const at::Tensor& states, bool need_w, bool need_alpha) {
  auto [dd, dx, dw, da] = Bwd(grad, x0, w, alpha, states, need_w, need_alpha);
  return {dd, dx, or_empty(dw, states), or_empty(da, states)};
}

// noise_add_ is declared mutating its first argument and returning nothing.
inline void noise_add_(at::Tensor drive, const at::Tensor& std, int64_t seed) {
  eirnn_fast::noise_add_(drive, std, seed);
}

#define EIRNN_CSR_ARGS                                                                          \
  const at::Tensor &rowptr, const at::Tensor &col, const at::Tensor &perm, const at::Tensor &rowptr_t, \
      const at::Tensor &col_t, const at::Tensor &perm_t
#define EIRNN_CSR_GRAPH CsrGraph::unchecked(rowptr, col, perm, rowptr_t, col_t, perm_t)

template <at::Tensor (*Fwd)(const CsrGraph&, const at::Tensor&, const at::Tensor&)>
at::Tensor edge_spmm_fwd(EIRNN_CSR_ARGS, const at::Tensor& weight, const at::Tensor& x) {
  return Fwd(EIRNN_CSR_GRAPH, weight, x);
}

template <T2 (*Bwd)(const CsrGraph&, const at::Tensor&, const at::Tensor&, const at::Tensor&, bool, bool)>
T2 edge_spmm_bwd(EIRNN_CSR_ARGS, const at::Tensor& weight, const at::Tensor& x, const at::Tensor& grad,
                 bool need_weight, bool need_x) {
  auto [dw, dx] = Bwd(EIRNN_CSR_GRAPH, weight, x, grad, need_weight, need_x);
  return {or_empty(dw, weight), or_empty(dx, weight)};
}

inline at::Tensor edge_mlp_fwd(EIRNN_CSR_ARGS, const at::Tensor& weight, const at::Tensor& a, const at::Tensor& b,
                               const at::Tensor& hw, const at::Tensor& hb, const at::Tensor& ow,
                               const at::Tensor& ob) {
  return eirnn_fast::edge_mlp_fwd(EIRNN_CSR_GRAPH, weight, a, b, hw, hb, ow, ob);
}

inline T7 edge_mlp_bwd(EIRNN_CSR_ARGS, const at::Tensor& weight, const at::Tensor& a, const at::Tensor& b,
                       const at::Tensor& hw, const at::Tensor& hb, const at::Tensor& ow, const at::Tensor& ob,
                       const at::Tensor& grad, bool need_weight, bool need_a, bool need_b, bool need_params) {
  auto [dw, da, db, dhw, dhb, dow, dob] = eirnn_fast::edge_mlp_bwd(EIRNN_CSR_GRAPH, weight, a, b, hw, hb, ow, ob,
                                                                   grad, need_weight, need_a, need_b, need_params);
  // The parameter gradients are views of one buffer: an op's outputs must not alias each other.
  const auto own = [&](const at::Tensor& t) { return t.defined() ? t.clone() : at::empty({0}, weight.options()); };
  return {or_empty(dw, weight), or_empty(da, weight), or_empty(db, weight), own(dhw), own(dhb), own(dow), own(dob)};
}

#undef EIRNN_CSR_ARGS
#undef EIRNN_CSR_GRAPH

// The ops with a kernel on both devices, registered once per dispatch key (DEVICE = cpu / cuda:
// the *_cpu / *_cuda entry points of rnn/, message_passing/, sinkhorn/).
#define EIRNN_FAST_REGISTER_DEVICE_IMPLS(m, DEVICE)                                                     \
  do {                                                                                                 \
    (m).impl("ei_rnn_scan_fwd", &eirnn_fast::ei_rnn_scan_fwd_##DEVICE);                                \
    (m).impl("ei_rnn_scan_bwd", &eirnn_fast::registry::ei_rnn_scan_bwd<&eirnn_fast::ei_rnn_scan_bwd_##DEVICE>); \
    (m).impl("edge_spmm_fwd", &eirnn_fast::registry::edge_spmm_fwd<&eirnn_fast::edge_spmm_fwd_##DEVICE>); \
    (m).impl("edge_spmm_bwd", &eirnn_fast::registry::edge_spmm_bwd<&eirnn_fast::edge_spmm_bwd_##DEVICE>); \
    (m).impl("sinkhorn_solve", &eirnn_fast::sinkhorn_solve_##DEVICE);                                  \
    (m).impl("sinkhorn_plan", &eirnn_fast::sinkhorn_plan_##DEVICE);                                    \
  } while (0)

}  // namespace eirnn_fast::registry
