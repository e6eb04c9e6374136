// Compiled with -ffast-math (see CMakeLists.txt): the loops below vectorise through libmvec.
// Thresholds follow torch.nn.functional.softplus (beta = 1, threshold = 20). NaN inputs give NaN
// outputs: every branch adds log1p(exp(-|x|)), which is NaN for NaN x.
#include "common/vmath_cpu.h"

#include <cmath>

namespace eirnn_fast {

template <typename T>
void softplus_row(const T* __restrict x, T* __restrict sp, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T s = std::fmax(v, T(0)) + std::log1p(std::exp(-std::fabs(v)));
    sp[i] = v > T(20) ? v : s;
  }
}

template <typename T>
void softplus_and_grad_row(const T* __restrict x, T* __restrict sp, T* __restrict dsp, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T e = std::exp(-std::fabs(v));
    const T s = std::fmax(v, T(0)) + std::log1p(e);
    const T inv = T(1) / (T(1) + e);
    const T g = v >= T(0) ? inv : e * inv;
    sp[i] = v > T(20) ? v : s;
    dsp[i] = v > T(20) ? T(1) : g;
  }
}

template void softplus_row<double>(const double*, double*, int64_t);
template void softplus_and_grad_row<double>(const double*, double*, double*, int64_t);

}  // namespace eirnn_fast
