// Torch-facing launch code of the batched Sinkhorn: checks, allocation, dtype dispatch,
// parallelisation over problems (CPU) and stream selection (CUDA).
#include "sinkhorn/sinkhorn_ops.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "common/alloc.h"
#include "common/checks.h"
#include "sinkhorn/sinkhorn.h"


namespace eirnn_fast {

void check_problem(const at::Tensor& C, const at::Tensor& log_a, const at::Tensor& log_b,
                   const at::Tensor& eps) {
  EIRNN_CHECK_DIM(C, 3, "[B, n, m]");
  EIRNN_CHECK_FLOAT(C);
  const int64_t B = C.size(0), n = C.size(1), m = C.size(2);
  TORCH_CHECK(B > 0 && n > 0 && m > 0, "C must have B, n, m >= 1, got shape ", C.sizes());
  EIRNN_CHECK_SHAPE(log_a, B, n);
  EIRNN_CHECK_SHAPE(log_b, B, m);
  EIRNN_CHECK_SHAPE(eps, B);
  EIRNN_CHECK_SAME(log_a, C);
  EIRNN_CHECK_SAME(log_b, C);
  EIRNN_CHECK_SAME(eps, C);
  TORCH_CHECK(C.device().is_cpu() || C.device().is_cuda(), "sinkhorn: unsupported device ",
              C.device());
}


SolveArgs prepare_solve(const at::Tensor& C_in, const at::Tensor& log_a_in, const at::Tensor& log_b_in,
                        const at::Tensor& eps_in, const at::Tensor& eps0_in, double decay, int64_t max_iter) {
  check_problem(C_in, log_a_in, log_b_in, eps_in);
  EIRNN_CHECK_SHAPE(eps0_in, C_in.size(0));
  EIRNN_CHECK_SAME(eps0_in, C_in);
  TORCH_CHECK(max_iter >= 0, "max_iter must be >= 0, got ", max_iter);
  TORCH_CHECK(decay > 0.0 && decay <= 1.0, "decay must be in (0, 1], got ", decay);
  SolveArgs a;
  a.C = C_in.contiguous();
  a.log_a = log_a_in.contiguous();
  a.log_b = log_b_in.contiguous();
  a.eps = eps_in.contiguous();
  a.eps0 = eps0_in.contiguous();
  a.B = a.C.size(0);
  a.n = a.C.size(1);
  a.m = a.C.size(2);
  a.Ct = a.C.transpose(1, 2).contiguous();
  // Per-problem cost spread (max C - min C): decides when the near-uniform LSE form is used.
  const auto minmax = at::aminmax(a.C.reshape({a.B, a.n * a.m}), 1);
  a.spread = (std::get<1>(minmax) - std::get<0>(minmax)).contiguous();
  a.f = at::empty({a.B, a.n}, a.C.options());
  a.g = at::empty({a.B, a.m}, a.C.options());
  a.value = at::empty({a.B}, a.C.options());
  a.iters = at::empty({a.B}, a.C.options().dtype(at::kLong));
  a.err = at::empty({a.B}, a.C.options());
  return a;
}

PlanArgs prepare_plan(const at::Tensor& C_in, const at::Tensor& log_a_in, const at::Tensor& log_b_in,
                      const at::Tensor& g_in, const at::Tensor& eps_in) {
  check_problem(C_in, log_a_in, log_b_in, eps_in);
  EIRNN_CHECK_SHAPE(g_in, C_in.size(0), C_in.size(2));
  EIRNN_CHECK_SAME(g_in, C_in);
  PlanArgs a;
  a.C = C_in.contiguous();
  a.log_a = log_a_in.contiguous();
  a.log_b = log_b_in.contiguous();
  a.g = g_in.contiguous();
  a.eps = eps_in.contiguous();
  a.B = a.C.size(0);
  a.n = a.C.size(1);
  a.m = a.C.size(2);
  a.P = empty_for_kernel(a.C.sizes(), a.C.options());
  return a;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> sinkhorn_solve_cpu(
    const at::Tensor& C_in, const at::Tensor& log_a_in, const at::Tensor& log_b_in,
    const at::Tensor& eps_in, const at::Tensor& eps0_in, double decay, int64_t max_iter,
    double tol) {
  const SolveArgs in = prepare_solve(C_in, log_a_in, log_b_in, eps_in, eps0_in, decay, max_iter);
  const at::Tensor &C = in.C, &Ct = in.Ct, &log_a = in.log_a, &log_b = in.log_b, &eps = in.eps,
                   &eps0 = in.eps0, &spread = in.spread;
  const at::Tensor &f = in.f, &g = in.g, &value = in.value, &iters = in.iters, &err = in.err;
  const int64_t B = in.B, n = in.n, m = in.m;


  AT_DISPATCH_FLOATING_TYPES(C.scalar_type(), "sinkhorn_solve_cpu", [&] {
    const scalar_t* cp = C.data_ptr<scalar_t>();
    const scalar_t* ctp = Ct.data_ptr<scalar_t>();
    const scalar_t* la = log_a.data_ptr<scalar_t>();
    const scalar_t* lb = log_b.data_ptr<scalar_t>();
    const scalar_t* ep = eps.data_ptr<scalar_t>();
    const scalar_t* e0 = eps0.data_ptr<scalar_t>();
    const scalar_t* sp = spread.data_ptr<scalar_t>();
    scalar_t* fp = f.data_ptr<scalar_t>();
    scalar_t* gp = g.data_ptr<scalar_t>();
    scalar_t* vp = value.data_ptr<scalar_t>();
    int64_t* ip = iters.data_ptr<int64_t>();
    scalar_t* errp = err.data_ptr<scalar_t>();
    const int64_t row_chunks = (n + sinkhorn::kCpuRowChunk - 1) / sinkhorn::kCpuRowChunk;
    const int64_t work_len = n + m + row_chunks;
    const int64_t buf_len = std::max(n, m);
    auto solve_one = [&](int64_t b, scalar_t* work, auto&& for_chunks) {
      sinkhorn::solve_problem_cpu<scalar_t>(
          cp + b * n * m, ctp + b * n * m, la + b * n, lb + b * m, ep[b], e0[b],
          static_cast<scalar_t>(decay), sp[b], n, m, max_iter, static_cast<scalar_t>(tol), fp + b * n,
          gp + b * m, vp + b, ip + b, errp + b, work, for_chunks);
    };
    // Enough problems to occupy every thread (or problems too small to split): one problem per
    // work item. Otherwise (e.g. one 835 x 835 problem) each half-step is split over row chunks.
    const bool per_problem = B >= at::get_num_threads() || n * m < 128 * 128;
    if (per_problem) {
      at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
        std::vector<scalar_t> work(work_len), buf(buf_len);
        auto serial = [&](int64_t nc, auto&& fn) { fn(0, nc, buf.data()); };
        for (int64_t b = b0; b < b1; ++b) solve_one(b, work.data(), serial);
      });
    } else {
      std::vector<scalar_t> work(work_len);
      auto parallel = [&](int64_t nc, auto&& fn) {
        at::parallel_for(0, nc, 1, [&](int64_t c0, int64_t c1) {
          std::vector<scalar_t> buf(buf_len);
          fn(c0, c1, buf.data());
        });
      };
      for (int64_t b = 0; b < B; ++b) solve_one(b, work.data(), parallel);
    }
  });
  return {f, g, value, iters, err};
}

at::Tensor sinkhorn_plan_cpu(const at::Tensor& C_in, const at::Tensor& log_a_in,
                                         const at::Tensor& log_b_in, const at::Tensor& g_in,
                                         const at::Tensor& eps_in) {
  const PlanArgs in = prepare_plan(C_in, log_a_in, log_b_in, g_in, eps_in);
  const at::Tensor &C = in.C, &log_a = in.log_a, &log_b = in.log_b, &g = in.g, &eps = in.eps, &P = in.P;
  const int64_t B = in.B, n = in.n, m = in.m;


  // Work items: (problem, block of rows), so one large problem still uses every thread.
  constexpr int64_t kRows = 32;
  const int64_t row_blocks = (n + kRows - 1) / kRows;
  AT_DISPATCH_FLOATING_TYPES(C.scalar_type(), "sinkhorn_plan_cpu", [&] {
    const scalar_t* cp = C.data_ptr<scalar_t>();
    const scalar_t* la = log_a.data_ptr<scalar_t>();
    const scalar_t* lb = log_b.data_ptr<scalar_t>();
    const scalar_t* gp = g.data_ptr<scalar_t>();
    const scalar_t* ep = eps.data_ptr<scalar_t>();
    scalar_t* pp = P.data_ptr<scalar_t>();
    at::parallel_for(0, B * row_blocks, 1, [&](int64_t w0, int64_t w1) {
      for (int64_t w = w0; w < w1; ++w) {
        const int64_t b = w / row_blocks, r = w % row_blocks;
        sinkhorn::plan_cpu<scalar_t>(cp + b * n * m, la + b * n, lb + b * m, gp + b * m, ep[b],
                                     n, m, r * kRows,
                                     std::min(n, (r + 1) * kRows), pp + b * n * m);
      }
    });
  });
  return P;
}

}  // namespace eirnn_fast
