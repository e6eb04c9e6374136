// CUDA implementations of the eirnn_fast ops (schemas in library.cpp); compiled only when the
// extension is built with CUDA. Ops without a CUDA kernel (ei_rates, noise, edge_mlp) are
// registered too and raise their "CPU only" message: the Python layer never sends them here.
#include <torch/library.h>

#include "registry/ops.h"

TORCH_LIBRARY_IMPL(eirnn_fast, CUDA, m) { EIRNN_FAST_REGISTER_IMPLS(m); }
