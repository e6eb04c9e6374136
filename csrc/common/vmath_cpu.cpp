// Compiled with -ffast-math (see CMakeLists.txt): the loops below vectorise through libmvec.
// Thresholds follow torch.nn.functional.softplus (beta = 1, threshold = 20).
//
// NaN must propagate exactly as in torch (softplus(NaN) = NaN and softplus'(NaN) = NaN), but
// -ffast-math includes -ffinite-math-only, under which GCC may assume no NaN and rewrite
// `v > 20 ? 1 : g` as `v <= 20 ? g : 1`: softplus'(NaN) came out as 1, so the float64 scan
// backward returned finite d_drive / d_x0 where the reference gives NaN. The pragma restores NaN
// semantics for this file while keeping the rest of fast-math (libmvec vector exp / log1p).
// Under it std::fmax is a libm call again (NaN-aware), which would block vectorisation, so the
// max is written as a select; softplus stays NaN for NaN x because log1p(exp(-|x|)) is NaN.
#include "common/vmath_cpu.h"

#include <cmath>

#pragma GCC optimize("no-finite-math-only")

namespace eirnn_fast {

template <typename T>
void softplus_row(const T* __restrict x, T* __restrict sp, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T s = (v > T(0) ? v : T(0)) + std::log1p(std::exp(-std::fabs(v)));
    sp[i] = v > T(20) ? v : s;
  }
}

template <typename T>
void softplus_and_grad_row(const T* __restrict x, T* __restrict sp, T* __restrict dsp, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T e = std::exp(-std::fabs(v));
    const T s = (v > T(0) ? v : T(0)) + std::log1p(e);
    const T inv = T(1) / (T(1) + e);
    const T g = v >= T(0) ? inv : e * inv;
    sp[i] = v > T(20) ? v : s;
    dsp[i] = v > T(20) ? T(1) : g;
  }
}

template void softplus_row<double>(const double*, double*, int64_t);
template void softplus_and_grad_row<double>(const double*, double*, double*, int64_t);

}  // namespace eirnn_fast
