// The one pybind11 module eirnn_fast._C: every op entry point is listed here.
#include <torch/extension.h>

#include <string>
#include <vector>

#include "message_passing/message_passing_ops.h"
#include "rnn/rnn_ops.h"
#include "sinkhorn/sinkhorn_ops.h"

namespace {

bool has_cuda() {
#ifdef EIRNN_FAST_WITH_CUDA
  return true;
#else
  return false;
#endif
}

std::vector<std::string> cuda_archs() {
  std::vector<std::string> out;
#ifdef EIRNN_FAST_CUDA_ARCHS
  std::string s = EIRNN_FAST_CUDA_ARCHS;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = s.find(',', start);
    const std::string item = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!item.empty()) out.push_back(item);
    if (end == std::string::npos) break;
    start = end + 1;
  }
#endif
  return out;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "eirnn_fast fused kernels (CPU always; CUDA when built with it)";
  m.def("has_cuda", &has_cuda, "whether CUDA kernels were compiled in");
  m.def("cuda_archs", &cuda_archs, "CUDA architectures compiled for");

  // rnn/: fused E-I rate recurrence (DESIGN 3.1)
  m.def("ei_rnn_scan_fwd", &eirnn_fast::ei_rnn_scan_fwd, "drive [B,T,N], x0 [B,N], w [N,N], alpha [N] -> states [B,T,N]",
        py::arg("drive"), py::arg("x0"), py::arg("w"), py::arg("alpha"),
        py::call_guard<py::gil_scoped_release>());
  m.def("ei_rnn_scan_bwd", &eirnn_fast::ei_rnn_scan_bwd,
        "grad [B,T,N], x0, w, alpha, states, need_w, need_alpha -> (d_drive, d_x0, d_w, d_alpha)",
        py::arg("grad"), py::arg("x0"), py::arg("w"), py::arg("alpha"), py::arg("states"),
        py::arg("need_w"), py::arg("need_alpha"), py::call_guard<py::gil_scoped_release>());

  m.def("ei_rates_fwd", &eirnn_fast::ei_rates_fwd,
        "states [B,T,N], x0 [B,N], scale, base -> rates = max(softplus([x0, states[:, :-1]]) * scale + base, 0) (CPU)",
        py::arg("states"), py::arg("x0"), py::arg("scale"), py::arg("base"),
        py::call_guard<py::gil_scoped_release>());
  m.def("ei_rates_bwd", &eirnn_fast::ei_rates_bwd, "grad, states, x0, scale, base -> (d_states, d_x0, d_scale, d_base)",
        py::arg("grad"), py::arg("states"), py::arg("x0"), py::arg("scale"), py::arg("base"),
        py::call_guard<py::gil_scoped_release>());
  m.def("noise_add_", &eirnn_fast::noise_add_,
        "drive += std * xi (counter-based normals of seed, element order; CPU, contiguous)",
        py::arg("drive"), py::arg("std"), py::arg("seed"), py::call_guard<py::gil_scoped_release>());
  m.def("noise_dot", &eirnn_fast::noise_dot, "sum(grad * xi) for the draws of seed",
        py::arg("grad"), py::arg("seed"), py::call_guard<py::gil_scoped_release>());

  // message_passing/: sparse edge message passing (DESIGN 3.3)
  using eirnn_fast::CsrGraph;
  py::class_<CsrGraph>(m, "CsrGraph",
                       "The two CSR layouts of an EdgeGraph, validated once (O(E)) and held as private "
                       "copies: the accessors return clones, so no Python code can change what the "
                       "kernels index with")
      .def(py::init<const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                    const at::Tensor&, const at::Tensor&, int64_t, int64_t>(),
           py::arg("rowptr"), py::arg("col"), py::arg("perm"), py::arg("rowptr_t"), py::arg("col_t"),
           py::arg("perm_t"), py::arg("num_src"), py::arg("num_dst"))
      .def("to", &CsrGraph::to, py::arg("device"))
      .def_property_readonly("rowptr", [](const CsrGraph& g) { return g.rowptr().clone(); })
      .def_property_readonly("col", [](const CsrGraph& g) { return g.col().clone(); })
      .def_property_readonly("perm", [](const CsrGraph& g) { return g.perm().clone(); })
      .def_property_readonly("rowptr_t", [](const CsrGraph& g) { return g.rowptr_t().clone(); })
      .def_property_readonly("col_t", [](const CsrGraph& g) { return g.col_t().clone(); })
      .def_property_readonly("perm_t", [](const CsrGraph& g) { return g.perm_t().clone(); })
      .def_property_readonly("num_src", &CsrGraph::num_src)
      .def_property_readonly("num_dst", &CsrGraph::num_dst)
      .def_property_readonly("num_edges", &CsrGraph::num_edges);
  m.def("edge_spmm_fwd", &eirnn_fast::edge_spmm_fwd,
        "graph (CsrGraph), weight [E] (edge order), x [num_src, F] -> out [num_dst, F]",
        py::arg("graph"), py::arg("weight"), py::arg("x"), py::call_guard<py::gil_scoped_release>());
  m.def("edge_spmm_bwd", &eirnn_fast::edge_spmm_bwd,
        "graph, weight, x, grad [num_dst, F], need_weight, need_x -> (d_weight, d_x)",
        py::arg("graph"), py::arg("weight"), py::arg("x"), py::arg("grad"), py::arg("need_weight"),
        py::arg("need_x"), py::call_guard<py::gil_scoped_release>());
  m.def("edge_mlp_fwd", &eirnn_fast::edge_mlp_fwd,
        "edge-MLP messages (CPU): graph, weight [E], a [F,num_dst,H], b [F,num_src,H], hw [L,H,H], hb [L,H], ow [H], ob [1] -> [num_dst, F]",
        py::arg("graph"), py::arg("weight"), py::arg("a"), py::arg("b"), py::arg("hw"), py::arg("hb"),
        py::arg("ow"), py::arg("ob"), py::call_guard<py::gil_scoped_release>());
  m.def("edge_mlp_bwd", &eirnn_fast::edge_mlp_bwd,
        "-> (d_weight, d_a, d_b, d_hw, d_hb, d_ow, d_ob)", py::arg("graph"), py::arg("weight"),
        py::arg("a"), py::arg("b"), py::arg("hw"), py::arg("hb"), py::arg("ow"), py::arg("ob"),
        py::arg("grad"), py::arg("need_weight"), py::arg("need_a"), py::arg("need_b"),
        py::arg("need_params"), py::call_guard<py::gil_scoped_release>());

  // sinkhorn/: batched log-domain Sinkhorn (DESIGN 3.2)
  m.def("sinkhorn_solve", &eirnn_fast::sinkhorn_solve,
        "C [B,n,m], log_a [B,n], log_b [B,m], eps [B], eps0 [B], decay, max_iter, tol -> (f, g, value, iters, err)",
        py::arg("C"), py::arg("log_a"), py::arg("log_b"), py::arg("eps"), py::arg("eps0"),
        py::arg("decay"), py::arg("max_iter"), py::arg("tol"), py::call_guard<py::gil_scoped_release>());
  m.def("sinkhorn_plan", &eirnn_fast::sinkhorn_plan_from_potentials,
        "C [B,n,m], log_a [B,n], log_b [B,m], g [B,m], eps [B] -> P [B,n,m] = a_i softmax_j(log b_j + (g_j - C_ij) / eps)",
        py::arg("C"), py::arg("log_a"), py::arg("log_b"), py::arg("g"), py::arg("eps"),
        py::call_guard<py::gil_scoped_release>());
}
