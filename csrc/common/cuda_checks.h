// The status check of our CUDA launches, shared by every op family's *_ops_cuda.cpp (compiled only
// with CUDA): the kernels' launch functions return a cudaError_t value (0 = success).
#pragma once

#include <ATen/ATen.h>
#include <cuda_runtime.h>

namespace eirnn_fast {

inline void check_cuda(int err, const char* what) {
  TORCH_CHECK(err == 0, what, " failed: ", cudaGetErrorString(static_cast<cudaError_t>(err)));
}

}  // namespace eirnn_fast
