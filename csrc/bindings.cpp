// The pybind11 module eirnn_fast._C. Loading it registers the operator library eirnn_fast
// (csrc/registry/library.cpp); the ops are called as torch.ops.eirnn_fast.<name>.
#include <torch/extension.h>

#include <string>
#include <vector>

#include "message_passing/message_passing_ops.h"

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

  // The op entry points are registered operators (torch.ops.eirnn_fast.*, csrc/registry/library.cpp);
  // this module holds what is not an op: the build facts and the validating CsrGraph holder.

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
}
