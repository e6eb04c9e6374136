// Scalar maths shared by the CPU and CUDA kernels (host and device).
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define EIRNN_HD __host__ __device__ __forceinline__
#else
#define EIRNN_HD inline
#endif

namespace eirnn_fast {

// torch.nn.functional.softplus with beta = 1, threshold = 20: linear above the threshold.
template <typename T>
EIRNN_HD T softplus(T x) {
  using std::exp; using std::fabs; using std::log1p;
  if (x > T(20)) return x;
  const T e = exp(-fabs(x));
  return (x > T(0) ? x : T(0)) + log1p(e);
}

// d softplus / dx with the same threshold as torch's softplus backward.
template <typename T>
EIRNN_HD T softplus_grad(T x) {
  using std::exp; using std::fabs;
  if (x > T(20)) return T(1);
  const T e = exp(-fabs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// Numerically safe log(exp(a) + exp(b)) for the log-domain kernels (-inf aware).
template <typename T>
EIRNN_HD T logaddexp(T a, T b) {
  using std::exp; using std::fabs; using std::log1p;
  const T m = a > b ? a : b;
  if (m == -INFINITY) return m;
  return m + log1p(exp(-fabs(a - b)));
}

}  // namespace eirnn_fast
