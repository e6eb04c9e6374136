// CPU kernels of the batched log-domain Sinkhorn: one problem per call (the torch layer runs the
// problems of a batch in parallel with at::parallel_for). Each half-step is a logsumexp over
// contiguous rows: rows of C for the f-update, rows of the transposed copy Ct for the g-update.
//
// float32: exponentials by inline 8-lane polynomial vector code (Cody-Waite reduction + the cephes
// expf polynomial, ~1 ulp, exact 0 below -87.3), no libm calls. float64: std::exp (the oracle path).
// Built without -ffast-math: -inf log-weights (zero weights) must behave as written.
#include "sinkhorn/sinkhorn.h"
#include "common/vexp_f32.h"

#include <cmath>
#include <limits>

namespace eirnn_fast {
namespace sinkhorn {
namespace {

typedef float V8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));

inline V8 load8(const float* p) {
  V8 v;
  __builtin_memcpy(&v, p, sizeof(V8));
  return v;
}
inline void store8(float* p, V8 v) { __builtin_memcpy(p, &v, sizeof(V8)); }
inline V8 splat8(float x) { return V8{} + x; }

inline V8 exp8(V8 y) { return exp_f32<V8, I8>(y); }

inline float hsum8(V8 v) {
  float s = 0.0f;
  for (int k = 0; k < 8; ++k) s += v[k];
  return s;
}

// sum_j exp(v_j - mx)
inline float sum_exp_shift(const float* v, int64_t len, float mx) {
  V8 acc = splat8(0.0f);
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) acc += exp8(load8(v + j) - mx);
  float s = hsum8(acc);
  for (; j < len; ++j) s += std::exp(v[j] - mx);
  return s;
}
inline double sum_exp_shift(const double* v, int64_t len, double mx) {
  double s = 0.0;
  for (int64_t j = 0; j < len; ++j) s += std::exp(v[j] - mx);
  return s;
}

inline void exp_row(const float* v, int64_t len, float* out) {
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) store8(out + j, exp8(load8(v + j)));
  for (; j < len; ++j) out[j] = std::exp(v[j]);
}
inline void exp_row(const double* v, int64_t len, double* out) {
  for (int64_t j = 0; j < len; ++j) out[j] = std::exp(v[j]);
}

// LSE_j (h_j - c_j * inv) over one contiguous row; buf [len] scratch. -inf when every h_j = -inf.
template <typename T>
inline T lse_row(const T* __restrict c, const T* __restrict h, T inv, int64_t len,
                 T* __restrict buf) {
  T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < len; ++j) {
    const T v = h[j] - c[j] * inv;
    buf[j] = v;
    mx = v > mx ? v : mx;
  }
  if (!(mx > -std::numeric_limits<T>::infinity())) return mx;
  return mx + std::log(sum_exp_shift(buf, len, mx));
}

}  // namespace

template <typename T>
T half_step_cpu(const T* K, const T* h, const T* w, T e, int64_t len, int64_t r0, int64_t r1,
                T* pot, T* buf) {
  const T inv = T(1) / e;
  T err = T(0);
  for (int64_t r = r0; r < r1; ++r) {
    const T p = -e * lse_row(K + r * len, h, inv, len, buf);
    if (w != nullptr) err += w[r] * std::fabs(T(1) - std::exp((pot[r] - p) * inv));
    pot[r] = p;
  }
  return err;
}

template <typename T>
void plan_cpu(const T* C, const T* log_a, const T* log_b, const T* f, const T* g, T eps, int64_t n,
              int64_t m, int64_t i0, int64_t i1, T* P) {
  const T inv = T(1) / eps;
  for (int64_t i = i0; i < i1; ++i) {
    const T base = log_a[i] + f[i] * inv;
    const T* c = C + i * m;
    T* p = P + i * m;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) p[j] = base + log_b[j] + (g[j] - c[j]) * inv;
    exp_row(p, m, p);
  }
}

#define EIRNN_SINKHORN_INSTANTIATE(T)                                                          \
  template T half_step_cpu<T>(const T*, const T*, const T*, T, int64_t, int64_t, int64_t, T*,  \
                              T*);                                                             \
  template void plan_cpu<T>(const T*, const T*, const T*, const T*, const T*, T, int64_t,       \
                            int64_t, int64_t, int64_t, T*);
EIRNN_SINKHORN_INSTANTIATE(float)
EIRNN_SINKHORN_INSTANTIATE(double)
#undef EIRNN_SINKHORN_INSTANTIATE

}  // namespace sinkhorn
}  // namespace eirnn_fast
