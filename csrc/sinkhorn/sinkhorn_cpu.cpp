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

// LSE_j (lw_j + (q_j - c_j) * inv) over one contiguous row; buf [len] scratch (holds the terms on
// return). -inf when every lw_j = -inf.
template <typename T>
inline T lse_row(const T* __restrict c, const T* __restrict lw, const T* __restrict q, T inv,
                 int64_t len, T* __restrict buf) {
  T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < len; ++j) {
    const T v = lw[j] + (q[j] - c[j]) * inv;
    buf[j] = v;
    mx = v > mx ? v : mx;
  }
  if (!(mx > -std::numeric_limits<T>::infinity())) return mx;
  return mx + std::log(sum_exp_shift(buf, len, mx));
}

// The same LSE in near-uniform form (sinkhorn.h): zmax + log1p(sum_j wl_j expm1(z_j - zmax)),
// z_j = (q_j - c_j) * inv over the support (lw_j > -inf); sum_j wl_j = 1.
template <typename T>
inline T lse_row_near_uniform(const T* __restrict c, const T* __restrict lw, const T* __restrict wl,
                              const T* __restrict q, T inv, int64_t len) {
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  T zmax = kNegInf;
  for (int64_t j = 0; j < len; ++j) {
    if (!(lw[j] > kNegInf)) continue;
    const T z = (q[j] - c[j]) * inv;
    zmax = z > zmax ? z : zmax;
  }
  T t = T(0);
  for (int64_t j = 0; j < len; ++j) {
    if (!(lw[j] > kNegInf)) continue;
    t += wl[j] * std::expm1((q[j] - c[j]) * inv - zmax);
  }
  return zmax + std::log1p(t);
}

}  // namespace

template <typename T>
T half_step_cpu(const T* K, const T* lw, const T* wl, const T* q, bool near_uniform, const T* w,
                T e, int64_t len, int64_t r0, int64_t r1, T* pot, T* buf) {
  const T inv = T(1) / e;
  T err = T(0);
  for (int64_t r = r0; r < r1; ++r) {
    const T lse = near_uniform ? lse_row_near_uniform(K + r * len, lw, wl, q, inv, len)
                               : lse_row(K + r * len, lw, q, inv, len, buf);
    const T p = -e * lse;
    if (w != nullptr) err += w[r] * std::fabs(std::expm1((pot[r] - p) * inv));
    pot[r] = p;
  }
  return err;
}

template <typename T>
void plan_cpu(const T* C, const T* log_a, const T* log_b, const T* g, T eps, int64_t n, int64_t m,
              int64_t i0, int64_t i1, T* P) {
  const T inv = T(1) / eps;
  for (int64_t i = i0; i < i1; ++i) {
    const T* __restrict c = C + i * m;
    T* __restrict p = P + i * m;
    T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < m; ++j) {
      const T v = log_b[j] + (g[j] - c[j]) * inv;
      p[j] = v;
      mx = v > mx ? v : mx;
    }
    // P_ij = a_i exp(v_j - max v) / sum_k exp(v_k - max v): dividing by the sum (rather than
    // subtracting its log from v ~ 1e12 at a tiny eps, where log 2 is below the rounding of v)
    // keeps the row sum a_i even for near-ties.
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) p[j] -= mx;
    exp_row(p, m, p);
    T sum = T(0);
    for (int64_t j = 0; j < m; ++j) sum += p[j];
    const T scale = std::exp(log_a[i]) / sum;
#pragma omp simd
    for (int64_t j = 0; j < m; ++j) p[j] *= scale;
  }
}

#define EIRNN_SINKHORN_INSTANTIATE(T)                                                          \
  template T half_step_cpu<T>(const T*, const T*, const T*, const T*, bool, const T*, T,      \
                              int64_t, int64_t, int64_t, T*, T*);                              \
  template void plan_cpu<T>(const T*, const T*, const T*, const T*, T, int64_t, int64_t,        \
                            int64_t, int64_t, T*);
EIRNN_SINKHORN_INSTANTIATE(float)
EIRNN_SINKHORN_INSTANTIATE(double)
#undef EIRNN_SINKHORN_INSTANTIATE

}  // namespace sinkhorn
}  // namespace eirnn_fast
