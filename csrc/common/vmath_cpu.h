// Vectorised transcendental row helpers for the CPU kernels.
//
// float64: vmath_cpu.cpp is the one translation unit compiled with -ffast-math so that GCC maps
// exp/log1p onto glibc's SIMD variants (libmvec, <= 4 ulp); every reduction stays in strict-IEEE
// code. float32: vmath_f32_cpu.cpp, inline polynomial vector code (no libm calls, ~2e-7 relative).
#pragma once

#include <cstdint>

namespace eirnn_fast {

// sp[i] = softplus(x[i])                                   x, sp [n]
template <typename T>
void softplus_row(const T* x, T* sp, int64_t n);

// sp[i] = softplus(x[i]), dsp[i] = softplus'(x[i])         x, sp, dsp [n]
template <typename T>
void softplus_and_grad_row(const T* x, T* sp, T* dsp, int64_t n);

template <>
void softplus_row<float>(const float* x, float* sp, int64_t n);
template <>
void softplus_and_grad_row<float>(const float* x, float* sp, float* dsp, int64_t n);

}  // namespace eirnn_fast
