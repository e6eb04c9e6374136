// Torch-facing launch code of the sparse edge message passing: checks, allocation, dtype and index
// dispatch, parallelisation over CSR rows (CPU) and stream selection (CUDA).
#include "message_passing/message_passing_ops.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <vector>

#include "common/alloc.h"
#include "common/checks.h"
#include "message_passing/message_passing.h"


namespace eirnn_fast {
namespace {

// Rows per at::parallel_for grain (rows have ~32 edges: a few thousand edges per task).
constexpr int64_t kRowGrain = 64;

bool all_true(const at::Tensor& t) { return t.numel() == 0 || t.all().item<bool>(); }

void check_index_array(const at::Tensor& t, const char* name, int64_t len, at::ScalarType dtype,
                       const at::Device& device) {
  TORCH_CHECK_VALUE(t.dim() == 1, "CsrGraph: ", name, " must be 1-D, got shape ", t.sizes());
  TORCH_CHECK_VALUE(t.size(0) == len, "CsrGraph: ", name, " must have ", len, " entries, got ",
                    t.size(0));
  TORCH_CHECK_TYPE(t.scalar_type() == dtype, "CsrGraph: ", name, " has dtype ", t.scalar_type(),
                   " but rowptr has ", dtype, "; all index arrays must share one dtype");
  TORCH_CHECK_VALUE(t.device() == device, "CsrGraph: ", name, " is on ", t.device(),
                    " but rowptr is on ", device);
}

// One CSR layout: rowptr [rows + 1], col [E] in [0, cols), perm [E] a permutation of [0, E).
// Returns the row of every slot ([E] int64).
at::Tensor check_layout(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& perm,
                        int64_t rows, int64_t cols, const char* rp, const char* cn, const char* pn) {
  const int64_t E = col.size(0);
  const at::Tensor r = rowptr.to(at::kLong);
  TORCH_CHECK_VALUE(r[0].item<int64_t>() == 0, "CsrGraph: ", rp, "[0] must be 0, got ",
                    r[0].item<int64_t>());
  TORCH_CHECK_VALUE(r[rows].item<int64_t>() == E, "CsrGraph: ", rp, "[-1] must be the edge count ",
                    E, ", got ", r[rows].item<int64_t>());
  const at::Tensor counts = r.slice(0, 1) - r.slice(0, 0, rows);
  TORCH_CHECK_VALUE(all_true(counts >= 0), "CsrGraph: ", rp, " must be non-decreasing");
  if (E > 0) {
    TORCH_CHECK_VALUE(all_true((col >= 0).logical_and(col < cols)), "CsrGraph: ", cn,
                      " holds indices outside [0, ", cols, ")");
    const at::Tensor p = perm.to(at::kLong);
    TORCH_CHECK_VALUE(all_true((p >= 0).logical_and(p < E)), "CsrGraph: ", pn,
                      " holds edge ids outside [0, ", E, ")");
    TORCH_CHECK_VALUE(all_true(at::bincount(p, {}, E) == 1), "CsrGraph: ", pn,
                      " must be a permutation of [0, ", E, ") (every edge id exactly once)");
  }
  return at::repeat_interleave(at::arange(rows, r.options()), counts, /*dim=*/0, /*output_size=*/E);
}

// The registered ops receive the CSR arrays as plain tensors (CsrGraph::unchecked), so the CPU
// kernels check every row span and index of their work item (message_passing.h) and report
// CsrFault bits, gathered per work item and raised after the parallel loop. Two O(1) reads come
// first: a walk from rowptr[0] = 0 to rowptr[-1] = E visits every slot.
void check_ends(const at::Tensor& rowptr, int64_t E, const char* op, const char* rp) {
  const int64_t n = rowptr.size(0);  // >= 1, contiguous, int32 or int64 (CsrGraph::unchecked)
  int64_t first, last;
  if (rowptr.scalar_type() == at::kInt) {
    const int32_t* p = rowptr.const_data_ptr<int32_t>();
    first = p[0];
    last = p[n - 1];
  } else {
    const int64_t* p = rowptr.const_data_ptr<int64_t>();
    first = p[0];
    last = p[n - 1];
  }
  TORCH_CHECK_VALUE(first == 0 && last == E, op, ": ", rp, " must run from 0 to E = ", E, ", got ",
                    rp, "[0] = ", first, " and ", rp, "[-1] = ", last);
}

// The ValueError for the CsrFault bits gathered from one walk over (rp, cn, pn); col entries must
// lie in [0, bound_name = bound).
void check_fault(int fault, const char* op, const char* rp, const char* cn, const char* pn,
                 const char* bound_name, int64_t bound, int64_t E) {
  if (fault == 0) return;
  TORCH_CHECK_VALUE(!(fault & mp::kBadRowptr), op, ": ", rp,
                    " must be non-decreasing with entries in [0, E] (E = ", E, ")");
  TORCH_CHECK_VALUE(!(fault & mp::kBadCol), op, ": ", cn, " holds an index outside [0, ", bound_name,
                    ") (", bound_name, " = ", bound, ")");
  TORCH_CHECK_VALUE(!(fault & mp::kBadPerm), op, ": ", pn, " holds an edge id outside [0, E) (E = ",
                    E, ")");
}

}  // namespace

void check_weight(const CsrGraph& g, const at::Tensor& weight) {
  EIRNN_CHECK_DIM(weight, 1, "[E]");
  EIRNN_CHECK_FLOAT(weight);
  TORCH_CHECK(weight.size(0) == g.num_edges(), "weight must have the graph's E = ", g.num_edges(),
              " entries, got ", weight.size(0));
  TORCH_CHECK(weight.device() == g.device(), "weight is on ", weight.device(),
              " but the graph is on ", g.device());
}

CsrGraph::CsrGraph(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& perm,
                   const at::Tensor& rowptr_t, const at::Tensor& col_t, const at::Tensor& perm_t,
                   int64_t num_src, int64_t num_dst) {
  TORCH_CHECK_VALUE(num_src >= 0 && num_dst >= 0, "CsrGraph: num_src and num_dst must be >= 0, got ",
                    num_src, " and ", num_dst);
  TORCH_CHECK_VALUE(rowptr.dim() == 1, "CsrGraph: rowptr must be 1-D, got shape ", rowptr.sizes());
  TORCH_CHECK_TYPE(rowptr.scalar_type() == at::kInt || rowptr.scalar_type() == at::kLong,
                   "CsrGraph: index arrays must be int32 or int64, got ", rowptr.scalar_type());
  TORCH_CHECK_VALUE(col.dim() == 1, "CsrGraph: col must be 1-D, got shape ", col.sizes());
  const int64_t E = col.size(0);
  const at::ScalarType itype = rowptr.scalar_type();
  const at::Device dev = rowptr.device();
  if (itype == at::kInt) {
    constexpr int64_t kMax = 2147483647;
    TORCH_CHECK_VALUE(E <= kMax && num_src <= kMax && num_dst <= kMax,
                      "CsrGraph: int32 index arrays cannot hold E = ", E, ", num_src = ", num_src,
                      ", num_dst = ", num_dst, "; use int64");
  }
  check_index_array(rowptr, "rowptr", num_dst + 1, itype, dev);
  check_index_array(col, "col", E, itype, dev);
  check_index_array(perm, "perm", E, itype, dev);
  check_index_array(rowptr_t, "rowptr_t", num_src + 1, itype, dev);
  check_index_array(col_t, "col_t", E, itype, dev);
  check_index_array(perm_t, "perm_t", E, itype, dev);
  const at::Tensor dst_of_slot = check_layout(rowptr, col, perm, num_dst, num_src, "rowptr", "col", "perm");
  const at::Tensor src_of_slot_t =
      check_layout(rowptr_t, col_t, perm_t, num_src, num_dst, "rowptr_t", "col_t", "perm_t");
  if (E > 0) {  // both layouts must describe the same edges: (src, dst) of every edge id
    const at::TensorOptions lo = rowptr.options().dtype(at::kLong);
    const at::Tensor p = perm.to(at::kLong), pt = perm_t.to(at::kLong);
    const at::Tensor src_a = at::empty({E}, lo).scatter_(0, p, col.to(at::kLong));
    const at::Tensor dst_a = at::empty({E}, lo).scatter_(0, p, dst_of_slot);
    const at::Tensor src_b = at::empty({E}, lo).scatter_(0, pt, src_of_slot_t);
    const at::Tensor dst_b = at::empty({E}, lo).scatter_(0, pt, col_t.to(at::kLong));
    TORCH_CHECK_VALUE(at::equal(src_a, src_b) && at::equal(dst_a, dst_b),
                      "CsrGraph: the CSR by destination and the CSR by source describe different edges");
  }
  // Private copies: the caller's tensors may change afterwards, these never do.
  rowptr_ = rowptr.clone(at::MemoryFormat::Contiguous);
  col_ = col.clone(at::MemoryFormat::Contiguous);
  perm_ = perm.clone(at::MemoryFormat::Contiguous);
  rowptr_t_ = rowptr_t.clone(at::MemoryFormat::Contiguous);
  col_t_ = col_t.clone(at::MemoryFormat::Contiguous);
  perm_t_ = perm_t.clone(at::MemoryFormat::Contiguous);
  num_src_ = num_src;
  num_dst_ = num_dst;
}

CsrGraph CsrGraph::unchecked(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& perm,
                             const at::Tensor& rowptr_t, const at::Tensor& col_t,
                             const at::Tensor& perm_t) {
  TORCH_CHECK_VALUE(rowptr.dim() == 1 && rowptr.size(0) >= 1, "CsrGraph: rowptr must be 1-D with >= 1 entry, got shape ",
                    rowptr.sizes());
  TORCH_CHECK_VALUE(rowptr_t.dim() == 1 && rowptr_t.size(0) >= 1,
                    "CsrGraph: rowptr_t must be 1-D with >= 1 entry, got shape ", rowptr_t.sizes());
  TORCH_CHECK_TYPE(rowptr.scalar_type() == at::kInt || rowptr.scalar_type() == at::kLong,
                   "CsrGraph: index arrays must be int32 or int64, got ", rowptr.scalar_type());
  TORCH_CHECK_VALUE(col.dim() == 1, "CsrGraph: col must be 1-D, got shape ", col.sizes());
  const int64_t E = col.size(0);
  const at::ScalarType itype = rowptr.scalar_type();
  const at::Device dev = rowptr.device();
  check_index_array(rowptr_t, "rowptr_t", rowptr_t.size(0), itype, dev);
  check_index_array(col, "col", E, itype, dev);
  check_index_array(perm, "perm", E, itype, dev);
  check_index_array(col_t, "col_t", E, itype, dev);
  check_index_array(perm_t, "perm_t", E, itype, dev);
  for (const at::Tensor* t : {&rowptr, &col, &perm, &rowptr_t, &col_t, &perm_t})
    TORCH_CHECK_VALUE(t->is_contiguous(), "CsrGraph: the index arrays must be contiguous");
  CsrGraph out;
  out.rowptr_ = rowptr;
  out.col_ = col;
  out.perm_ = perm;
  out.rowptr_t_ = rowptr_t;
  out.col_t_ = col_t;
  out.perm_t_ = perm_t;
  out.num_dst_ = rowptr.size(0) - 1;
  out.num_src_ = rowptr_t.size(0) - 1;
  return out;
}

CsrGraph CsrGraph::to(const at::Device& device) const {
  CsrGraph out;
  // .to() returns the same tensor when nothing changes: fine, nothing ever writes to them.
  out.rowptr_ = rowptr_.to(device);
  out.col_ = col_.to(device);
  out.perm_ = perm_.to(device);
  out.rowptr_t_ = rowptr_t_.to(device);
  out.col_t_ = col_t_.to(device);
  out.perm_t_ = perm_t_.to(device);
  out.num_src_ = num_src_;
  out.num_dst_ = num_dst_;
  return out;
}

at::Tensor edge_spmm_fwd_cpu(const CsrGraph& graph, const at::Tensor& weight_in, const at::Tensor& x_in) {
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
  const int64_t R = graph.num_dst(), E = graph.num_edges(), num_src = graph.num_src();
  check_ends(rowptr, E, "edge_spmm_fwd", "rowptr");
  at::Tensor out = empty_for_kernel({R, F}, x.options());
  if (R == 0) return out;

  std::atomic<int> fault{0};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "edge_spmm_fwd_cpu", [&] {
    EIRNN_DISPATCH_INDEX(rowptr.scalar_type(), "edge_spmm_fwd", [&] {
      const index_t* rp = rowptr.data_ptr<index_t>();
      const index_t* c = col.data_ptr<index_t>();
      const index_t* p = perm.data_ptr<index_t>();
      const scalar_t* w = weight.data_ptr<scalar_t>();
      const scalar_t* xp = x.data_ptr<scalar_t>();
      scalar_t* o = out.data_ptr<scalar_t>();
      at::parallel_for(0, R, kRowGrain, [&](int64_t r0, int64_t r1) {
        const int f = mp::spmm_rows_cpu<scalar_t, index_t>(rp, c, p, w, xp, o, F, num_src, E, r0, r1);
        if (f) fault.fetch_or(f, std::memory_order_relaxed);
      });
    });
  });
  check_fault(fault.load(), "edge_spmm_fwd", "rowptr", "col", "perm", "num_src", num_src, E);
  return out;
}

std::tuple<at::Tensor, at::Tensor> edge_spmm_bwd_cpu(const CsrGraph& graph, const at::Tensor& weight_in,
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
  check_ends(rowptr_t, E, "edge_spmm_bwd", "rowptr_t");
  at::Tensor d_w, d_x;
  // Edges are covered by the rows of the transposed CSR: every d_w entry is written exactly once.
  if (need_weight) d_w = at::empty({E}, weight.options());
  if (need_x) d_x = empty_for_kernel({num_src, F}, x.options());
  if (!(need_weight || need_x) || num_src == 0) return {d_w, d_x};

  std::atomic<int> fault{0};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "edge_spmm_bwd_cpu", [&] {
    EIRNN_DISPATCH_INDEX(rowptr_t.scalar_type(), "edge_spmm_bwd", [&] {
      const index_t* rp = rowptr_t.data_ptr<index_t>();
      const index_t* c = col_t.data_ptr<index_t>();
      const index_t* p = perm_t.data_ptr<index_t>();
      const scalar_t* w = weight.data_ptr<scalar_t>();
      const scalar_t* xp = x.data_ptr<scalar_t>();
      const scalar_t* g = grad.data_ptr<scalar_t>();
      scalar_t* dx = need_x ? d_x.data_ptr<scalar_t>() : nullptr;
      scalar_t* dw = need_weight ? d_w.data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, num_src, kRowGrain, [&](int64_t j0, int64_t j1) {
        const int f =
            mp::spmm_bwd_rows_cpu<scalar_t, index_t>(rp, c, p, w, xp, g, dx, dw, F, num_dst, E, j0, j1);
        if (f) fault.fetch_or(f, std::memory_order_relaxed);
      });
    });
  });
  check_fault(fault.load(), "edge_spmm_bwd", "rowptr_t", "col_t", "perm_t", "num_dst", num_dst, E);
  return {d_w, d_x};
}

namespace {

struct MlpDims {
  int64_t F, num_dst, num_src, H, L;
};

MlpDims check_mlp(const CsrGraph& graph, const at::Tensor& weight, const at::Tensor& a,
                  const at::Tensor& b, const at::Tensor& hw, const at::Tensor& hb,
                  const at::Tensor& ow, const at::Tensor& ob) {
  check_weight(graph, weight);
  EIRNN_CHECK_DIM(a, 3, "[F, num_dst, H]");
  EIRNN_CHECK_DIM(b, 3, "[F, num_src, H]");
  EIRNN_CHECK_DIM(hw, 3, "[L, H, H]");
  MlpDims d{a.size(0), a.size(1), b.size(1), a.size(2), hw.size(0)};
  TORCH_CHECK(d.num_dst == graph.num_dst(), "a must have the graph's num_dst = ", graph.num_dst(),
              " rows, got shape ", a.sizes());
  TORCH_CHECK(d.H >= 1 && d.H <= mp::kMlpMaxHidden, "hidden width must be in [1, ",
              mp::kMlpMaxHidden, "], got ", d.H);
  EIRNN_CHECK_SHAPE(b, d.F, graph.num_src(), d.H);
  EIRNN_CHECK_SHAPE(hw, d.L, d.H, d.H);
  EIRNN_CHECK_SHAPE(hb, d.L, d.H);
  EIRNN_CHECK_SHAPE(ow, d.H);
  EIRNN_CHECK_SHAPE(ob, 1);
  for (const at::Tensor* t : {&a, &b, &hw, &hb, &ow, &ob}) {
    TORCH_CHECK(t->scalar_type() == weight.scalar_type() && t->device() == weight.device(),
                "edge_mlp: every tensor must share weight's dtype ", weight.scalar_type(),
                " and device ", weight.device(), ", got ", t->scalar_type(), " on ", t->device());
  }
  TORCH_CHECK(a.device().is_cpu(), "edge_mlp: only a CPU kernel exists (the Python layer falls back "
              "to the reference on other devices)");
  return d;
}

// Whether every hidden weight is finite: only then may the kernels skip the products of exact
// zeros (ReLU sparsity), since 0 * inf and 0 * NaN are NaN in the reference's matmuls.
bool all_finite(const at::Tensor& t) { return t.numel() == 0 || at::isfinite(t).all().item<bool>(); }

}  // namespace

at::Tensor edge_mlp_fwd(const CsrGraph& graph, const at::Tensor& weight_in, const at::Tensor& a_in,
                        const at::Tensor& b_in, const at::Tensor& hw_in, const at::Tensor& hb_in,
                        const at::Tensor& ow_in, const at::Tensor& ob_in) {
  const MlpDims d = check_mlp(graph, weight_in, a_in, b_in, hw_in, hb_in, ow_in, ob_in);
  const at::Tensor &rowptr = graph.rowptr(), &col = graph.col(), &perm = graph.perm();
  const at::Tensor weight = weight_in.contiguous(), a = a_in.contiguous(), b = b_in.contiguous(),
                   hw = hw_in.contiguous(), hwt = hw_in.transpose(1, 2).contiguous(),
                   hb = hb_in.contiguous(), ow = ow_in.contiguous(), ob = ob_in.contiguous();
  const bool hw_finite = all_finite(hw);
  const int64_t E = graph.num_edges();
  check_ends(rowptr, E, "edge_mlp_fwd", "rowptr");
  at::Tensor out = at::empty({d.num_dst, d.F}, weight.options());
  if (d.num_dst == 0 || d.F == 0) return out;
  std::atomic<int> fault{0};
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "edge_mlp_fwd_cpu", [&] {
    EIRNN_DISPATCH_INDEX(rowptr.scalar_type(), "edge_mlp_fwd", [&] {
      at::parallel_for(0, d.num_dst, 16, [&](int64_t i0, int64_t i1) {
        const int f = mp::mlp_fwd_rows_cpu<scalar_t, index_t>(
            rowptr.data_ptr<index_t>(), col.data_ptr<index_t>(), perm.data_ptr<index_t>(),
            weight.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
            hw.data_ptr<scalar_t>(), hwt.data_ptr<scalar_t>(), hb.data_ptr<scalar_t>(),
            ow.data_ptr<scalar_t>(), ob.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), d.F,
            d.num_dst, d.num_src, E, d.H, d.L, hw_finite, i0, i1);
        if (f) fault.fetch_or(f, std::memory_order_relaxed);
      });
    });
  });
  check_fault(fault.load(), "edge_mlp_fwd", "rowptr", "col", "perm", "num_src", d.num_src, E);
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
edge_mlp_bwd(const CsrGraph& graph, const at::Tensor& weight_in, const at::Tensor& a_in,
             const at::Tensor& b_in, const at::Tensor& hw_in, const at::Tensor& hb_in,
             const at::Tensor& ow_in, const at::Tensor& ob_in, const at::Tensor& grad_in,
             bool need_weight, bool need_a, bool need_b, bool need_params) {
  const MlpDims d = check_mlp(graph, weight_in, a_in, b_in, hw_in, hb_in, ow_in, ob_in);
  EIRNN_CHECK_SHAPE(grad_in, d.num_dst, d.F);
  EIRNN_CHECK_SAME(grad_in, weight_in);
  const at::Tensor &rowptr = graph.rowptr(), &col = graph.col(), &perm = graph.perm(),
                   &rowptr_t = graph.rowptr_t(), &col_t = graph.col_t(), &perm_t = graph.perm_t();
  const at::Tensor weight = weight_in.contiguous(), a = a_in.contiguous(), b = b_in.contiguous(),
                   hw = hw_in.contiguous(), hwt = hw_in.transpose(1, 2).contiguous(),
                   hb = hb_in.contiguous(), ow = ow_in.contiguous(), ob = ob_in.contiguous(),
                   grad = grad_in.contiguous();
  const bool hw_finite = all_finite(hw);
  const int64_t E = col.size(0), H = d.H, L = d.L;
  const bool walk_dst = need_weight || need_a || need_params, walk_src = need_b && d.num_src > 0;
  if (walk_dst) check_ends(rowptr, E, "edge_mlp_bwd", "rowptr");
  if (walk_src) check_ends(rowptr_t, E, "edge_mlp_bwd", "rowptr_t");
  std::atomic<int> fault_dst{0}, fault_src{0};
  at::Tensor d_w, d_a, d_b, d_hw, d_hb, d_ow, d_ob;
  if (need_weight) d_w = at::empty({E}, weight.options());
  if (need_a) d_a = at::empty_like(a);
  if (need_b) d_b = at::empty_like(b);
  // Parameter gradients: one partial set per fixed chunk of destination rows, reduced in chunk
  // order afterwards (bitwise identical for any thread count).
  const int64_t P = L * H * H + L * H + H + 1;
  const int64_t n_chunks = (d.num_dst + mp::kMlpChunkRows - 1) / mp::kMlpChunkRows;
  at::Tensor partials;
  if (need_params) partials = at::zeros({std::max<int64_t>(n_chunks, 1), P}, weight.options());

  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "edge_mlp_bwd_cpu", [&] {
    EIRNN_DISPATCH_INDEX(rowptr.scalar_type(), "edge_mlp_bwd", [&] {
      const scalar_t* wp = weight.data_ptr<scalar_t>();
      const scalar_t* ap = a.data_ptr<scalar_t>();
      const scalar_t* bp = b.data_ptr<scalar_t>();
      const scalar_t* hwp = hw.data_ptr<scalar_t>();
      const scalar_t* hwtp = hwt.data_ptr<scalar_t>();
      const scalar_t* hbp = hb.data_ptr<scalar_t>();
      const scalar_t* owp = ow.data_ptr<scalar_t>();
      const scalar_t* obp = ob.data_ptr<scalar_t>();
      const scalar_t* gp = grad.data_ptr<scalar_t>();
      if (walk_dst) {
        scalar_t* dw = need_weight ? d_w.data_ptr<scalar_t>() : nullptr;
        scalar_t* da = need_a ? d_a.data_ptr<scalar_t>() : nullptr;
        scalar_t* pp = need_params ? partials.data_ptr<scalar_t>() : nullptr;
        at::parallel_for(0, n_chunks, 1, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c) {
            const int64_t i0 = c * mp::kMlpChunkRows;
            const int64_t i1 = std::min(d.num_dst, i0 + mp::kMlpChunkRows);
            scalar_t* part = pp ? pp + c * P : nullptr;
            const int f = mp::mlp_bwd_dst_rows_cpu<scalar_t, index_t>(
                rowptr.data_ptr<index_t>(), col.data_ptr<index_t>(), perm.data_ptr<index_t>(), wp,
                ap, bp, hwp, hwtp, hbp, owp, obp, gp, dw, da, part,
                part ? part + L * H * H : nullptr, part ? part + L * H * H + L * H : nullptr,
                part ? part + L * H * H + L * H + H : nullptr, d.F, d.num_dst, d.num_src, E, H, L,
                hw_finite, i0, i1);
            if (f) fault_dst.fetch_or(f, std::memory_order_relaxed);
          }
        });
      }
      if (walk_src) {
        scalar_t* db = d_b.data_ptr<scalar_t>();
        at::parallel_for(0, d.num_src, 16, [&](int64_t j0, int64_t j1) {
          const int f = mp::mlp_bwd_src_rows_cpu<scalar_t, index_t>(
              rowptr_t.data_ptr<index_t>(), col_t.data_ptr<index_t>(), perm_t.data_ptr<index_t>(),
              wp, ap, bp, hwp, hwtp, hbp, owp, obp, gp, db, d.F, d.num_dst, d.num_src, E, H, L,
              hw_finite, j0, j1);
          if (f) fault_src.fetch_or(f, std::memory_order_relaxed);
        });
      }
      check_fault(fault_dst.load(), "edge_mlp_bwd", "rowptr", "col", "perm", "num_src", d.num_src, E);
      check_fault(fault_src.load(), "edge_mlp_bwd", "rowptr_t", "col_t", "perm_t", "num_dst", d.num_dst, E);
      if (need_params) {
        // Fixed-order reduction over chunks, parallel over parameter entries.
        at::Tensor total = at::empty({P}, weight.options());
        scalar_t* tp = total.data_ptr<scalar_t>();
        const scalar_t* pp = partials.data_ptr<scalar_t>();
        const int64_t nc = partials.size(0);
        at::parallel_for(0, P, 1024, [&](int64_t p0, int64_t p1) {
          for (int64_t p = p0; p < p1; ++p) {
            scalar_t s = 0;
            for (int64_t c = 0; c < nc; ++c) s += pp[c * P + p];
            tp[p] = s;
          }
        });
        d_hw = total.narrow(0, 0, L * H * H).view({L, H, H});
        d_hb = total.narrow(0, L * H * H, L * H).view({L, H});
        d_ow = total.narrow(0, L * H * H + L * H, H);
        d_ob = total.narrow(0, L * H * H + L * H + H, 1);
      }
    });
  });
  return {d_w, d_a, d_b, d_hw, d_hb, d_ow, d_ob};
}

}  // namespace eirnn_fast
