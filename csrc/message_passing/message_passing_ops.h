// Torch-facing entry points of the sparse edge message passing (registered in bindings.cpp).
// The graph arrives as the CSR arrays built by eirnn_fast.ops.EdgeGraph (int32 or int64, one dtype).
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace eirnn_fast {

// CSR (rowptr [R + 1], col [E], perm [E]), weight [E] (original edge order), x [C, F] -> out [R, F]
at::Tensor edge_spmm_fwd(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& perm,
                         const at::Tensor& weight, const at::Tensor& x);

// Transposed CSR (by source), weight [E], x [num_src, F], grad [num_dst, F]
//   -> (d_weight [E] or undefined, d_x [num_src, F] or undefined)
std::tuple<at::Tensor, at::Tensor> edge_spmm_bwd(const at::Tensor& rowptr_t, const at::Tensor& col_t,
                                                 const at::Tensor& perm_t, const at::Tensor& weight,
                                                 const at::Tensor& x, const at::Tensor& grad,
                                                 int64_t num_dst, bool need_weight, bool need_x);

// Edge-MLP variant (CPU only): a [F, num_dst, H], b [F, num_src, H], hw [L, H, H], hb [L, H],
// ow [H], ob [1] -> out [num_dst, F]
at::Tensor edge_mlp_fwd(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& perm,
                        const at::Tensor& weight, const at::Tensor& a, const at::Tensor& b,
                        const at::Tensor& hw, const at::Tensor& hb, const at::Tensor& ow,
                        const at::Tensor& ob);

// -> (d_weight, d_a, d_b, d_hw, d_hb, d_ow, d_ob); undefined where not requested.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
edge_mlp_bwd(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& perm,
             const at::Tensor& rowptr_t, const at::Tensor& col_t, const at::Tensor& perm_t,
             const at::Tensor& weight, const at::Tensor& a, const at::Tensor& b,
             const at::Tensor& hw, const at::Tensor& hb, const at::Tensor& ow, const at::Tensor& ob,
             const at::Tensor& grad, bool need_weight, bool need_a, bool need_b, bool need_params);

}  // namespace eirnn_fast
