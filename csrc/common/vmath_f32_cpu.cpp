// float32 softplus rows without libm calls. AVX-512 and AVX2: piecewise degree-6 polynomials of
// u = |x| picked per lane from softplus_tables.h (32 unit intervals with AVX-512, the first 8 with
// AVX2). Elsewhere, and for AVX2 vectors with a lane at |x| >= 8: exp by Cody-Waite reduction and
// the cephes expf polynomial (~1 ulp), log1p(e) for e = exp(-|x|) in (0, 1] as e * q(e) with q a
// degree-8 fit of log1p(e)/e on [0, 1] (max relative error 1.9e-7). Everything is inline vector arithmetic (GCC
// vector extensions, 16 lanes with AVX-512, 8 otherwise), about twice as fast as two libmvec calls per element.
// Built without -ffast-math: the clamp and NaN handling below must stay as written.
#include <cmath>
#include <cstdint>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "common/vexp_f32.h"
#include "common/vmath_cpu.h"

#include "common/softplus_tables.h"

namespace eirnn_fast {
namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;  // full-width AVX-512 units run these at twice the 256-bit rate
#else
constexpr int kLanes = 8;
#endif
typedef float V8 __attribute__((vector_size(4 * kLanes)));
typedef int32_t I8 __attribute__((vector_size(4 * kLanes)));

inline V8 load8(const float* p) {
  V8 v;
  __builtin_memcpy(&v, p, sizeof(V8));
  return v;
}
inline void store8(float* p, V8 v) { __builtin_memcpy(p, &v, sizeof(V8)); }
inline V8 splat8(float x) { return -V8{} + x; }

// log1p(e) for e in [0, 1]
inline V8 log1p_unit(V8 e) {
  V8 q = splat8(0.005253457929939032f);
  q = q * e - 0.02958850748836994f;
  q = q * e + 0.07836166769266129f;
  q = q * e - 0.13674770295619965f;
  q = q * e + 0.19111430644989014f;
  q = q * e - 0.24844369292259216f;
  q = q * e + 0.33319270610809326f;
  q = q * e - 0.49999502301216125f;
  q = q * e + 1.0f;
  return e * q;
}

inline V8 abs8(V8 x) { return x < 0.0f ? -x : x; }

// 1 / d for d in [1, 2]: the hardware estimate (12 bits) refined by one Newton step (~23 bits),
// several times the throughput of a vector division; plain division without AVX.
inline V8 recip(V8 d) {
#if defined(__AVX512F__)
  V8 r = (V8)_mm512_rcp14_ps((__m512)d);
  return r * (2.0f - d * r);
#elif defined(__AVX__)
  V8 r = (V8)_mm256_rcp_ps((__m256)d);
  return r * (2.0f - d * r);
#else
  return 1.0f / d;
#endif
}

// softplus (and its derivative) by exp + log1p: the path without tables, and AVX2's path for vectors
// with a lane at |x| >= 8. Matches torch: linear above 20, softplus(-inf) = 0, NaN in -> NaN out (the
// clamps inside exp_f32 would otherwise turn a NaN lane into a number).
inline void softplus8_exp(V8 x, V8* sp, V8* dsp) {
  const V8 e = exp_f32<V8, I8>(-abs8(x));
  const V8 pos = x > 0.0f ? x : splat8(0.0f);
  const V8 s = pos + log1p_unit(e);
  const auto nan = x != x;
  *sp = nan ? x : (x > 20.0f ? x : s);
  if (dsp) {
    const V8 inv = recip(1.0f + e);
    const V8 g = x >= 0.0f ? inv : e * inv;
    *dsp = nan ? x : (x > 20.0f ? splat8(1.0f) : g);
  }
}

#if defined(__AVX512F__)
// AVX-512: f(u) = log1p(exp(-u)) and g(u) = 1 / (1 + exp(u)) as degree-6 polynomials on the 32
// unit intervals of [0, 32) (tables in softplus_tables.h, coefficients picked per lane by a
// two-register permute): about half the instructions of exp + log1p. Beyond u = 32 both are
// below 1.3e-14 and return 0. Max relative error 3.7e-7 (f) and 4.1e-7 (g).
inline V8 piecewise(const float (*table)[tables::kIntervals], __m512i idx, V8 t) {
  V8 acc = (V8)_mm512_permutex2var_ps(_mm512_load_ps(table[0]), idx, _mm512_load_ps(table[0] + 16));
  for (int j = 1; j <= tables::kDegree; ++j) {
    const V8 c = (V8)_mm512_permutex2var_ps(_mm512_load_ps(table[j]), idx, _mm512_load_ps(table[j] + 16));
    acc = acc * t + c;
  }
  return acc;
}

// Matches torch: linear above 20, softplus(-inf) = 0, NaN in -> NaN out.
inline void softplus8(V8 x, V8* sp, V8* dsp) {
  const V8 u = abs8(x);
  const V8 uc = u < 31.999998f ? u : splat8(31.999998f);  // NaN lanes land on the last interval
  const I8 k = __builtin_convertvector(uc, I8);
  const V8 t = uc - __builtin_convertvector(k, V8);
  const __m512i idx = (__m512i)k;
  const auto nan = x != x;
  const auto far = u >= 32.0f;
  const V8 f = far ? splat8(0.0f) : piecewise(tables::kSoftplusNeg, idx, t);
  const V8 s = (x > 0.0f ? x : splat8(0.0f)) + f;
  *sp = nan ? x : (x > 20.0f ? x : s);
  if (dsp) {
    const V8 g = far ? splat8(0.0f) : piecewise(tables::kSigmoidNeg, idx, t);
    const V8 sig = x >= 0.0f ? 1.0f - g : g;
    *dsp = nan ? x : (x > 20.0f ? splat8(1.0f) : sig);
  }
}
#elif defined(__AVX2__)
// AVX2: on [0, 8) f(u) = log1p(exp(-u)) and g(u) = 1 / (1 + exp(u)) as the degree-6 polynomials of
// the first 8 unit intervals of softplus_tables.h (coefficients picked per lane by one in-register
// permute): about 2/3 of the instructions of exp + log1p. A vector with a lane at u >= 8 (or NaN)
// takes the exp + log1p path (softplus8_exp) for all its lanes. Max relative error 3.7e-7 (f), 4.1e-7 (g).
inline V8 piecewise8(const float (*table)[tables::kIntervals], __m256i idx, V8 t) {
  V8 acc = (V8)_mm256_permutevar8x32_ps(_mm256_load_ps(table[0]), idx);
  for (int j = 1; j <= tables::kDegree; ++j) {
    const V8 c = (V8)_mm256_permutevar8x32_ps(_mm256_load_ps(table[j]), idx);
    acc = acc * t + c;
  }
  return acc;
}

// Matches torch: linear above 20, softplus(-inf) = 0, NaN in -> NaN out.
inline void softplus8(V8 x, V8* sp, V8* dsp) {
  const V8 u = abs8(x);
  // !(u < 8) is true for NaN lanes too
  if (__builtin_expect(_mm256_movemask_ps((__m256)(V8)(~(u < 8.0f))) != 0, 0)) return softplus8_exp(x, sp, dsp);
  const I8 k = __builtin_convertvector(u, I8);
  const V8 t = u - __builtin_convertvector(k, V8);
  const __m256i idx = (__m256i)k;
  *sp = (x > 0.0f ? x : splat8(0.0f)) + piecewise8(tables::kSoftplusNeg, idx, t);
  if (dsp) {
    const V8 g = piecewise8(tables::kSigmoidNeg, idx, t);
    *dsp = x >= 0.0f ? 1.0f - g : g;
  }
}
#else
inline void softplus8(V8 x, V8* sp, V8* dsp) { softplus8_exp(x, sp, dsp); }
#endif

inline void softplus_scalar(float v, float* sp, float* dsp) {
  const float e = std::exp(-std::fabs(v));
  *sp = v > 20.0f ? v : std::fmax(v, 0.0f) + std::log1p(e);
  if (dsp) *dsp = v > 20.0f ? 1.0f : (v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e));
}

}  // namespace

template <>
void softplus_row<float>(const float* x, float* sp, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    V8 s;
    softplus8(load8(x + i), &s, nullptr);
    store8(sp + i, s);
  }
  for (; i < n; ++i) softplus_scalar(x[i], sp + i, nullptr);
}

template <>
void softplus_and_grad_row<float>(const float* x, float* sp, float* dsp, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    V8 s, d;
    softplus8(load8(x + i), &s, &d);
    store8(sp + i, s);
    store8(dsp + i, d);
  }
  for (; i < n; ++i) softplus_scalar(x[i], sp + i, dsp + i);
}

}  // namespace eirnn_fast
