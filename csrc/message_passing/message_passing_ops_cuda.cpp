// CUDA launch code of the sparse edge message passing (registered for the CUDA dispatch key in
// registry/library_cuda.cpp; compiled only when the extension is built with CUDA). The kernels skip
// out-of-range CSR entries but do not report them (no device-to-host sync per call): unlike the CPU
// ops, these trust the arrays to be an EdgeGraph's checked ones for a meaningful result.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include "common/alloc.h"
#include "common/checks.h"
#include "common/cuda_checks.h"
#include "message_passing/message_passing.h"
#include "message_passing/message_passing_ops.h"

namespace eirnn_fast {
at::Tensor edge_spmm_fwd_cuda(const CsrGraph& graph, const at::Tensor& weight_in, const at::Tensor& x_in) {
  check_weight(graph, weight_in);
  EIRNN_CHECK_DIM(x_in, 2, "[num_src, F]");
  EIRNN_CHECK_SAME(x_in, weight_in);
  TORCH_CHECK(x_in.size(0) == graph.num_src(), "x must have the graph's num_src = ", graph.num_src(),
              " rows, got shape ", x_in.sizes());
  const int64_t F = x_in.size(1);
  TORCH_CHECK(F >= 1 && F <= mp::kMaxFeatures, "x must have 1 <= F <= ", mp::kMaxFeatures,
              " columns, got ", F);
  const at::Tensor &rowptr = graph.rowptr(), &col = graph.col(), &perm = graph.perm();
  const at::Tensor weight = weight_in.contiguous(), x = x_in.contiguous();
  const int64_t R = graph.num_dst();
  at::Tensor out = empty_for_kernel({R, F}, x.options());
  if (R == 0) return out;

  const c10::cuda::CUDAGuard guard(x.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "edge_spmm_fwd_cuda", [&] {
    EIRNN_DISPATCH_INDEX(rowptr.scalar_type(), "edge_spmm_fwd", [&] {
      check_cuda(mp::spmm_cuda<scalar_t, index_t>(
                     rowptr.data_ptr<index_t>(), col.data_ptr<index_t>(), perm.data_ptr<index_t>(),
                     weight.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                     out.data_ptr<scalar_t>(), R, F, graph.num_src(), graph.num_edges(), stream),
                 "edge_message_passing forward kernel");
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> edge_spmm_bwd_cuda(const CsrGraph& graph, const at::Tensor& weight_in,
                                                  const at::Tensor& x_in, const at::Tensor& grad_in,
                                                  bool need_weight, bool need_x) {
  check_weight(graph, weight_in);
  EIRNN_CHECK_DIM(x_in, 2, "[num_src, F]");
  EIRNN_CHECK_SAME(x_in, weight_in);
  EIRNN_CHECK_SAME(grad_in, weight_in);
  const int64_t num_src = graph.num_src(), num_dst = graph.num_dst(), F = x_in.size(1);
  EIRNN_CHECK_SHAPE(x_in, num_src, F);
  EIRNN_CHECK_SHAPE(grad_in, num_dst, F);
  const at::Tensor &rowptr_t = graph.rowptr_t(), &col_t = graph.col_t(), &perm_t = graph.perm_t();
  const at::Tensor weight = weight_in.contiguous(), x = x_in.contiguous(), grad = grad_in.contiguous();
  const int64_t E = graph.num_edges();
  at::Tensor d_w, d_x;
  // Edges are covered by the rows of the transposed CSR: every d_w entry is written exactly once.
  if (need_weight) d_w = at::empty({E}, weight.options());
  if (need_x) d_x = empty_for_kernel({num_src, F}, x.options());
  if (!(need_weight || need_x) || num_src == 0) return {d_w, d_x};

  const c10::cuda::CUDAGuard guard(x.device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "edge_spmm_bwd_cuda", [&] {
    EIRNN_DISPATCH_INDEX(rowptr_t.scalar_type(), "edge_spmm_bwd", [&] {
      check_cuda(mp::spmm_bwd_cuda<scalar_t, index_t>(
                     rowptr_t.data_ptr<index_t>(), col_t.data_ptr<index_t>(),
                     perm_t.data_ptr<index_t>(), weight.data_ptr<scalar_t>(),
                     x.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(),
                     need_x ? d_x.data_ptr<scalar_t>() : nullptr,
                     need_weight ? d_w.data_ptr<scalar_t>() : nullptr, num_src, F, num_dst, E,
                     stream),
                 "edge_message_passing backward kernel");
    });
  });
  return {d_w, d_x};
}

}  // namespace eirnn_fast
