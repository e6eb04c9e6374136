// Torch-facing launch code of the sparse edge message passing: checks, allocation, dtype and index
// dispatch, parallelisation over CSR rows (CPU) and stream selection (CUDA).
#include "message_passing/message_passing_ops.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <vector>

#include "common/alloc.h"
#include "common/checks.h"
#include "message_passing/message_passing.h"

#ifdef EIRNN_FAST_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

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
namespace {

// Rows per at::parallel_for grain (rows have ~32 edges: a few thousand edges per task).
constexpr int64_t kRowGrain = 64;

void check_csr(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& perm,
               const at::Tensor& weight) {
  EIRNN_CHECK_DIM(rowptr, 1, "[R + 1]");
  EIRNN_CHECK_DIM(col, 1, "[E]");
  EIRNN_CHECK_DIM(weight, 1, "[E]");
  TORCH_CHECK(rowptr.numel() >= 1, "rowptr must have at least one entry");
  TORCH_CHECK(rowptr.scalar_type() == at::kInt || rowptr.scalar_type() == at::kLong,
              "rowptr must be int32 or int64, got ", rowptr.scalar_type());
  EIRNN_CHECK_SAME(col, rowptr);
  EIRNN_CHECK_SAME(perm, rowptr);
  EIRNN_CHECK_SHAPE(perm, col.size(0));
  EIRNN_CHECK_SHAPE(weight, col.size(0));
  EIRNN_CHECK_FLOAT(weight);
  TORCH_CHECK(weight.device() == rowptr.device(), "weight is on ", weight.device(),
              " but the graph is on ", rowptr.device());
}

#ifdef EIRNN_FAST_WITH_CUDA
void check_cuda(int err, const char* what) {
  TORCH_CHECK(err == 0, what, " failed: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
}
#endif

}  // namespace

at::Tensor edge_spmm_fwd(const at::Tensor& rowptr_in, const at::Tensor& col_in,
                         const at::Tensor& perm_in, const at::Tensor& weight_in,
                         const at::Tensor& x_in) {
  check_csr(rowptr_in, col_in, perm_in, weight_in);
  EIRNN_CHECK_DIM(x_in, 2, "[num_src, F]");
  EIRNN_CHECK_SAME(x_in, weight_in);
  const int64_t F = x_in.size(1);
  TORCH_CHECK(F >= 1 && F <= mp::kMaxFeatures, "x must have 1 <= F <= ", mp::kMaxFeatures,
              " columns, got ", F);
  const at::Tensor rowptr = rowptr_in.contiguous(), col = col_in.contiguous(),
                   perm = perm_in.contiguous(), weight = weight_in.contiguous(),
                   x = x_in.contiguous();
  const int64_t R = rowptr.size(0) - 1;
  at::Tensor out = empty_for_kernel({R, F}, x.options());
  if (R == 0) return out;

  if (x.is_cuda()) {
#ifdef EIRNN_FAST_WITH_CUDA
    const c10::cuda::CUDAGuard guard(x.device());
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "edge_spmm_fwd_cuda", [&] {
      EIRNN_DISPATCH_INDEX(rowptr.scalar_type(), "edge_spmm_fwd", [&] {
        check_cuda(mp::spmm_cuda<scalar_t, index_t>(
                       rowptr.data_ptr<index_t>(), col.data_ptr<index_t>(), perm.data_ptr<index_t>(),
                       weight.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                       out.data_ptr<scalar_t>(), R, F, stream),
                   "edge_message_passing forward kernel");
      });
    });
    return out;
#else
    TORCH_CHECK(false, "edge_message_passing: eirnn_fast was built without CUDA kernels");
#endif
  }

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "edge_spmm_fwd_cpu", [&] {
    EIRNN_DISPATCH_INDEX(rowptr.scalar_type(), "edge_spmm_fwd", [&] {
      const index_t* rp = rowptr.data_ptr<index_t>();
      const index_t* c = col.data_ptr<index_t>();
      const index_t* p = perm.data_ptr<index_t>();
      const scalar_t* w = weight.data_ptr<scalar_t>();
      const scalar_t* xp = x.data_ptr<scalar_t>();
      scalar_t* o = out.data_ptr<scalar_t>();
      at::parallel_for(0, R, kRowGrain, [&](int64_t r0, int64_t r1) {
        mp::spmm_rows_cpu<scalar_t, index_t>(rp, c, p, w, xp, o, F, r0, r1);
      });
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> edge_spmm_bwd(const at::Tensor& rowptr_t_in,
                                                 const at::Tensor& col_t_in,
                                                 const at::Tensor& perm_t_in,
                                                 const at::Tensor& weight_in,
                                                 const at::Tensor& x_in, const at::Tensor& grad_in,
                                                 int64_t num_dst, bool need_weight, bool need_x) {
  check_csr(rowptr_t_in, col_t_in, perm_t_in, weight_in);
  EIRNN_CHECK_DIM(x_in, 2, "[num_src, F]");
  EIRNN_CHECK_SAME(x_in, weight_in);
  EIRNN_CHECK_SAME(grad_in, weight_in);
  const int64_t num_src = rowptr_t_in.size(0) - 1, F = x_in.size(1);
  EIRNN_CHECK_SHAPE(x_in, num_src, F);
  EIRNN_CHECK_SHAPE(grad_in, num_dst, F);
  const at::Tensor rowptr_t = rowptr_t_in.contiguous(), col_t = col_t_in.contiguous(),
                   perm_t = perm_t_in.contiguous(), weight = weight_in.contiguous(),
                   x = x_in.contiguous(), grad = grad_in.contiguous();
  const int64_t E = col_t.size(0);
  at::Tensor d_w, d_x;
  // Edges are covered by the rows of the transposed CSR: every d_w entry is written exactly once.
  if (need_weight) d_w = at::empty({E}, weight.options());
  if (need_x) d_x = empty_for_kernel({num_src, F}, x.options());
  if (!(need_weight || need_x) || num_src == 0) return {d_w, d_x};

  if (x.is_cuda()) {
#ifdef EIRNN_FAST_WITH_CUDA
    const c10::cuda::CUDAGuard guard(x.device());
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "edge_spmm_bwd_cuda", [&] {
      EIRNN_DISPATCH_INDEX(rowptr_t.scalar_type(), "edge_spmm_bwd", [&] {
        check_cuda(mp::spmm_bwd_cuda<scalar_t, index_t>(
                       rowptr_t.data_ptr<index_t>(), col_t.data_ptr<index_t>(),
                       perm_t.data_ptr<index_t>(), weight.data_ptr<scalar_t>(),
                       x.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(),
                       need_x ? d_x.data_ptr<scalar_t>() : nullptr,
                       need_weight ? d_w.data_ptr<scalar_t>() : nullptr, num_src, F, stream),
                   "edge_message_passing backward kernel");
      });
    });
    return {d_w, d_x};
#else
    TORCH_CHECK(false, "edge_message_passing: eirnn_fast was built without CUDA kernels");
#endif
  }

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
        mp::spmm_bwd_rows_cpu<scalar_t, index_t>(rp, c, p, w, xp, g, dx, dw, F, j0, j1);
      });
    });
  });
  return {d_w, d_x};
}

namespace {

struct MlpDims {
  int64_t F, num_dst, num_src, H, L;
};

MlpDims check_mlp(const at::Tensor& rowptr, const at::Tensor& col, const at::Tensor& perm,
                  const at::Tensor& weight, const at::Tensor& a, const at::Tensor& b,
                  const at::Tensor& hw, const at::Tensor& hb, const at::Tensor& ow,
                  const at::Tensor& ob) {
  check_csr(rowptr, col, perm, weight);
  EIRNN_CHECK_DIM(a, 3, "[F, num_dst, H]");
  EIRNN_CHECK_DIM(b, 3, "[F, num_src, H]");
  EIRNN_CHECK_DIM(hw, 3, "[L, H, H]");
  MlpDims d{a.size(0), a.size(1), b.size(1), a.size(2), hw.size(0)};
  TORCH_CHECK(d.num_dst == rowptr.size(0) - 1, "a must have num_dst = ", rowptr.size(0) - 1,
              " rows, got shape ", a.sizes());
  TORCH_CHECK(d.H >= 1 && d.H <= mp::kMlpMaxHidden, "hidden width must be in [1, ",
              mp::kMlpMaxHidden, "], got ", d.H);
  EIRNN_CHECK_SHAPE(b, d.F, d.num_src, d.H);
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

}  // namespace

at::Tensor edge_mlp_fwd(const at::Tensor& rowptr_in, const at::Tensor& col_in,
                        const at::Tensor& perm_in, const at::Tensor& weight_in,
                        const at::Tensor& a_in, const at::Tensor& b_in, const at::Tensor& hw_in,
                        const at::Tensor& hb_in, const at::Tensor& ow_in, const at::Tensor& ob_in) {
  const MlpDims d =
      check_mlp(rowptr_in, col_in, perm_in, weight_in, a_in, b_in, hw_in, hb_in, ow_in, ob_in);
  const at::Tensor rowptr = rowptr_in.contiguous(), col = col_in.contiguous(),
                   perm = perm_in.contiguous(), weight = weight_in.contiguous(),
                   a = a_in.contiguous(), b = b_in.contiguous(), hw = hw_in.contiguous(),
                   hwt = hw_in.transpose(1, 2).contiguous(), hb = hb_in.contiguous(),
                   ow = ow_in.contiguous(), ob = ob_in.contiguous();
  at::Tensor out = at::empty({d.num_dst, d.F}, weight.options());
  if (d.num_dst == 0 || d.F == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "edge_mlp_fwd_cpu", [&] {
    EIRNN_DISPATCH_INDEX(rowptr.scalar_type(), "edge_mlp_fwd", [&] {
      at::parallel_for(0, d.num_dst, 16, [&](int64_t i0, int64_t i1) {
        mp::mlp_fwd_rows_cpu<scalar_t, index_t>(
            rowptr.data_ptr<index_t>(), col.data_ptr<index_t>(), perm.data_ptr<index_t>(),
            weight.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
            hw.data_ptr<scalar_t>(), hwt.data_ptr<scalar_t>(), hb.data_ptr<scalar_t>(),
            ow.data_ptr<scalar_t>(), ob.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), d.F,
            d.num_dst, d.num_src, d.H, d.L, i0, i1);
      });
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
edge_mlp_bwd(const at::Tensor& rowptr_in, const at::Tensor& col_in, const at::Tensor& perm_in,
             const at::Tensor& rowptr_t_in, const at::Tensor& col_t_in,
             const at::Tensor& perm_t_in, const at::Tensor& weight_in, const at::Tensor& a_in,
             const at::Tensor& b_in, const at::Tensor& hw_in, const at::Tensor& hb_in,
             const at::Tensor& ow_in, const at::Tensor& ob_in, const at::Tensor& grad_in,
             bool need_weight, bool need_a, bool need_b, bool need_params) {
  const MlpDims d =
      check_mlp(rowptr_in, col_in, perm_in, weight_in, a_in, b_in, hw_in, hb_in, ow_in, ob_in);
  check_csr(rowptr_t_in, col_t_in, perm_t_in, weight_in);
  TORCH_CHECK(rowptr_t_in.size(0) - 1 == d.num_src, "rowptr_t must have num_src + 1 = ",
              d.num_src + 1, " entries, got ", rowptr_t_in.size(0));
  EIRNN_CHECK_SHAPE(grad_in, d.num_dst, d.F);
  EIRNN_CHECK_SAME(grad_in, weight_in);
  const at::Tensor rowptr = rowptr_in.contiguous(), col = col_in.contiguous(),
                   perm = perm_in.contiguous(), rowptr_t = rowptr_t_in.contiguous(),
                   col_t = col_t_in.contiguous(), perm_t = perm_t_in.contiguous(),
                   weight = weight_in.contiguous(), a = a_in.contiguous(), b = b_in.contiguous(),
                   hw = hw_in.contiguous(), hwt = hw_in.transpose(1, 2).contiguous(),
                   hb = hb_in.contiguous(), ow = ow_in.contiguous(), ob = ob_in.contiguous(),
                   grad = grad_in.contiguous();
  const int64_t E = col.size(0), H = d.H, L = d.L;
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
      if (need_weight || need_a || need_params) {
        scalar_t* dw = need_weight ? d_w.data_ptr<scalar_t>() : nullptr;
        scalar_t* da = need_a ? d_a.data_ptr<scalar_t>() : nullptr;
        scalar_t* pp = need_params ? partials.data_ptr<scalar_t>() : nullptr;
        at::parallel_for(0, n_chunks, 1, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c) {
            const int64_t i0 = c * mp::kMlpChunkRows;
            const int64_t i1 = std::min(d.num_dst, i0 + mp::kMlpChunkRows);
            scalar_t* part = pp ? pp + c * P : nullptr;
            mp::mlp_bwd_dst_rows_cpu<scalar_t, index_t>(
                rowptr.data_ptr<index_t>(), col.data_ptr<index_t>(), perm.data_ptr<index_t>(), wp,
                ap, bp, hwp, hwtp, hbp, owp, obp, gp, dw, da, part,
                part ? part + L * H * H : nullptr, part ? part + L * H * H + L * H : nullptr,
                part ? part + L * H * H + L * H + H : nullptr, d.F, d.num_dst, d.num_src, H, L,
                i0, i1);
          }
        });
      }
      if (need_b && d.num_src > 0) {
        scalar_t* db = d_b.data_ptr<scalar_t>();
        at::parallel_for(0, d.num_src, 16, [&](int64_t j0, int64_t j1) {
          mp::mlp_bwd_src_rows_cpu<scalar_t, index_t>(
              rowptr_t.data_ptr<index_t>(), col_t.data_ptr<index_t>(), perm_t.data_ptr<index_t>(),
              wp, ap, bp, hwp, hwtp, hbp, owp, obp, gp, db, d.F, d.num_dst, d.num_src, H, L, j0,
              j1);
        });
      }
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
