// Allocation helpers for the torch-facing CPU paths.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace eirnn_fast {

// at::empty for large CPU outputs that are written once, in full, by a kernel. Fresh multi-MB
// buffers are mmap-ed by glibc and first-touched page by page (~11 ms per 40 MB on the 2-core CI
// machines, a third of a fused forward); asking for transparent huge pages before the first touch
// cuts that ~6x. Advice only: nothing changes where THP is disabled or unsupported.
inline at::Tensor empty_for_kernel(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr int64_t kMinBytes = int64_t(4) << 20;
  const int64_t nbytes = out.numel() * static_cast<int64_t>(out.element_size());
  if (out.device().is_cpu() && nbytes >= kMinBytes) {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t begin = reinterpret_cast<uintptr_t>(out.data_ptr());
    const uintptr_t first = (begin + page - 1) / page * page;
    const uintptr_t end = (begin + static_cast<uintptr_t>(nbytes)) / page * page;
    if (end > first) madvise(reinterpret_cast<void*>(first), end - first, MADV_HUGEPAGE);
  }
#endif
  return out;
}

}  // namespace eirnn_fast
