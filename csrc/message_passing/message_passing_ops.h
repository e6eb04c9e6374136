// Torch-facing entry points of the sparse edge message passing (registered in registry/library.cpp).
//
// The graph arrives as a CsrGraph: the two CSR layouts built by eirnn_fast.ops.EdgeGraph, checked
// once when the CsrGraph is made (O(E)) and then held as private copies that no Python code can
// reach (its accessors return clones): an EdgeGraph whose public fields are edited after
// construction only edits copies. The registered ops take the six arrays as tensors, though, so
// the CPU kernels also check what they read (row spans, col, perm; message_passing.h) and the
// entry points raise a ValueError naming the op and the array; the CUDA kernels skip out-of-range
// entries without reporting them.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

// Index-type dispatch: int32 or int64 CSR arrays, exposed as index_t.
#define EIRNN_DISPATCH_INDEX(type, name, ...)                                              \
  [&] {                                                                                    \
    if ((type) == at::kInt) {                                                              \
      using index_t = int32_t;                                                             \
      return __VA_ARGS__();                                                                \
    }                                                                                      \
    TORCH_CHECK((type) == at::kLong, name, ": CSR arrays must be int32 or int64, got ", type); \
    using index_t = int64_t;                                                               \
    return __VA_ARGS__();                                                                  \
  }()

namespace eirnn_fast {

class CsrGraph {
 public:
  // By destination: rowptr [num_dst + 1], col [E] (source of each slot), perm [E] (edge id);
  // by source: rowptr_t [num_src + 1], col_t [E] (destination), perm_t [E]. One int32/int64
  // dtype, one device. Checks (ValueError-style messages naming the array): 1-D, sizes, rowptr[0]
  // = 0, non-decreasing, rowptr[-1] = E; col / col_t in range; perm / perm_t permutations of
  // [0, E); both layouts list the same (src, dst) pair for every edge id.
  CsrGraph(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& perm,
           const at::Tensor& rowptr_t, const at::Tensor& col_t, const at::Tensor& perm_t,
           int64_t num_src, int64_t num_dst);

  // A copy on `device` (already validated: no checks again).
  CsrGraph to(const at::Device& device) const;

  // The six arrays of an already validated CsrGraph, as the registered ops receive them
  // (torch.ops.eirnn_fast.*: eirnn_fast.ops.EdgeGraph passes the private copies it got from a
  // validated CsrGraph). O(1) checks only (1-D, lengths, one dtype and device); the contents are
  // checked by the CPU kernels as they read them (not whether perm is a permutation, nor that the
  // two layouts agree). num_dst / num_src are rowptr.size(0) - 1 / rowptr_t.size(0) - 1. No
  // copies are made.
  static CsrGraph unchecked(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& perm,
                            const at::Tensor& rowptr_t, const at::Tensor& col_t,
                            const at::Tensor& perm_t);

  const at::Tensor& rowptr() const { return rowptr_; }
  const at::Tensor& col() const { return col_; }
  const at::Tensor& perm() const { return perm_; }
  const at::Tensor& rowptr_t() const { return rowptr_t_; }
  const at::Tensor& col_t() const { return col_t_; }
  const at::Tensor& perm_t() const { return perm_t_; }
  int64_t num_src() const { return num_src_; }
  int64_t num_dst() const { return num_dst_; }
  int64_t num_edges() const { return col_.size(0); }
  at::Device device() const { return col_.device(); }

 private:
  CsrGraph() = default;
  at::Tensor rowptr_, col_, perm_, rowptr_t_, col_t_, perm_t_;
  int64_t num_src_ = 0, num_dst_ = 0;
};

// weight: [E], float, on the graph's device (shared by the CPU and CUDA entry points)
void check_weight(const CsrGraph& g, const at::Tensor& weight);

// weight [E] (original edge order), x [num_src, F] -> out [num_dst, F]. One entry point per device
// (message_passing_ops.cpp, message_passing_ops_cuda.cpp), registered per dispatch key.
at::Tensor edge_spmm_fwd_cpu(const CsrGraph& graph, const at::Tensor& weight, const at::Tensor& x);
at::Tensor edge_spmm_fwd_cuda(const CsrGraph& graph, const at::Tensor& weight, const at::Tensor& x);

// weight [E], x [num_src, F], grad [num_dst, F]
//   -> (d_weight [E] or undefined, d_x [num_src, F] or undefined)
std::tuple<at::Tensor, at::Tensor> edge_spmm_bwd_cpu(const CsrGraph& graph, const at::Tensor& weight,
                                                     const at::Tensor& x, const at::Tensor& grad,
                                                     bool need_weight, bool need_x);
std::tuple<at::Tensor, at::Tensor> edge_spmm_bwd_cuda(const CsrGraph& graph, const at::Tensor& weight,
                                                      const at::Tensor& x, const at::Tensor& grad,
                                                      bool need_weight, bool need_x);

// Edge-MLP variant (CPU only): a [F, num_dst, H], b [F, num_src, H], hw [L, H, H], hb [L, H],
// ow [H], ob [1] -> out [num_dst, F]
at::Tensor edge_mlp_fwd(const CsrGraph& graph, const at::Tensor& weight, const at::Tensor& a,
                        const at::Tensor& b, const at::Tensor& hw, const at::Tensor& hb,
                        const at::Tensor& ow, const at::Tensor& ob);

// -> (d_weight, d_a, d_b, d_hw, d_hb, d_ow, d_ob); undefined where not requested.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
edge_mlp_bwd(const CsrGraph& graph, const at::Tensor& weight, const at::Tensor& a,
             const at::Tensor& b, const at::Tensor& hw, const at::Tensor& hb, const at::Tensor& ow,
             const at::Tensor& ob, const at::Tensor& grad, bool need_weight, bool need_a,
             bool need_b, bool need_params);

}  // namespace eirnn_fast
