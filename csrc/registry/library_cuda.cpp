// CUDA implementations of the eirnn_fast ops (schemas in library.cpp); compiled only when the
// extension is built with CUDA. The CPU-only ops (ei_rates, the noise, edge_mlp) have no CUDA
// kernel: the dispatcher refuses them on CUDA tensors, and the Python layer runs their references.
#include <torch/library.h>

#include "registry/ops.h"

TORCH_LIBRARY_IMPL(eirnn_fast, CUDA, m) { EIRNN_FAST_REGISTER_DEVICE_IMPLS(m, cuda); }
