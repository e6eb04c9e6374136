// CPU kernels of the fused E-I recurrence: the whole time loop runs inside, a work item owns a
// chunk of batch rows (the caller parallelises over chunks), and no ATen call happens per step.
//
// Rows are padded to P (a multiple of the vector width) so every inner loop is a
// remainder-free sequence of vector FMAs. The two matrix-vector products per step are written as
// sums of scaled matrix rows (forward: rows of W^T, backward: rows of W), computed by a
// register-tiled micro-kernel that keeps an R x NV accumulator tile (R rows, NV vectors of each,
// or a block of a row's vectors: see "Column blocks") in registers for the whole k loop; the
// summation order is fixed (k ascending), independent of vector width, tiling and threads.
#include "rnn/rnn.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/normal_rng.h"
#include "common/vmath_cpu.h"

namespace eirnn_fast {
namespace rnn {
namespace {

// 512-bit vectors where the build targets AVX-512 (CPUs with full-width AVX-512 units run twice
// the FMAs per cycle), 256-bit otherwise (AVX2, and a portable fallback elsewhere).
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#else
constexpr int kVectorBytes = 32;
#endif

template <typename T>
struct Simd {
  typedef T V __attribute__((vector_size(kVectorBytes)));
  static constexpr int kWidth = kVectorBytes / sizeof(T);
  static inline V load(const T* p) {
    V v;
    __builtin_memcpy(&v, p, sizeof(V));
    return v;
  }
  static inline void store(T* p, V v) { __builtin_memcpy(p, &v, sizeof(V)); }
  // x + (-0.0) == x for every x (signed zeros included), so this folds to a plain broadcast;
  // V{} + x would keep a scalar add because 0.0 + (-0.0) != -0.0.
  static inline V splat(T x) { return -V{} + x; }
};

// Keeps a loaded vector in a register: without it GCC folds the load into each of the R FMAs
// that use it (R loads instead of one), which makes the tile load-bound.
template <typename V>
inline void pin_register(V& v) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm volatile("" : "+v"(v));
#else
  (void)v;
#endif
}

// out[r, :] = sum_k vecs[r, k] * mat[k, :]       mat [K, P], vecs [R, P], out [R, P], P = NV * width
template <typename T, int NV, int R>
inline void matvec_tile(const T* __restrict mat, const T* __restrict vecs, T* __restrict out,
                        int64_t K, int64_t P) {
  using S = Simd<T>;
  typename S::V acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[r][v] = typename S::V{};
  for (int64_t k = 0; k < K; ++k) {
    const T* row = mat + k * P;
    typename S::V sk[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) sk[r] = S::splat(vecs[r * P + k]);
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      typename S::V m = S::load(row + v * S::kWidth);
      pin_register(m);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[r][v] += m * sk[r];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) S::store(out + r * P + v * S::kWidth, acc[r][v]);
}

// m[n, :] += sum_{r < rows} g[r, n] * sp[r, :]   m [N, P], g [rows, P], sp [rows, P]
// NN rows of m stay in registers (NN x NV independent accumulator chains, enough to hide the FMA
// latency) while all rows of the group are added; each sp vector loaded feeds NN FMAs.
template <typename T, int NV, int NN>
inline void outer_block(T* __restrict m, const T* __restrict g, const T* __restrict sp, int rows,
                        int64_t n0, int64_t P) {
  using S = Simd<T>;
  typename S::V acc[NN][NV];
#pragma GCC unroll 16
  for (int j = 0; j < NN; ++j)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[j][v] = S::load(m + (n0 + j) * P + v * S::kWidth);
  for (int r = 0; r < rows; ++r) {
    typename S::V gn[NN];
#pragma GCC unroll 16
    for (int j = 0; j < NN; ++j) gn[j] = S::splat(g[r * P + n0 + j]);
    const T* spr = sp + r * P;
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      typename S::V sv = S::load(spr + v * S::kWidth);
      pin_register(sv);
#pragma GCC unroll 16
      for (int j = 0; j < NN; ++j) acc[j][v] += gn[j] * sv;
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < NN; ++j)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) S::store(m + (n0 + j) * P + v * S::kWidth, acc[j][v]);
}

template <typename T, int NV, int NN>
inline void outer_rows(T* m, const T* g, const T* sp, int rows, int64_t N, int64_t P) {
  int64_t n = 0;
  for (; n + NN <= N; n += NN) outer_block<T, NV, NN>(m, g, sp, rows, n, P);
  for (; n < N; ++n) outer_block<T, NV, 1>(m, g, sp, rows, n, P);
}

// acc[:] += sum_{r < rows} a[r, :] * b[r, :] (rows ascending), each vector of acc kept in a
// register over the rows: updating acc in memory row by row made every FMA wait for the store of
// the one before (store-to-load forwarding), ~4 % of the backward at the bench shape.
template <typename T>
inline void add_row_products(T* __restrict acc, const T* __restrict a, const T* __restrict b, int rows,
                             int64_t P) {
  using S = Simd<T>;
  for (int64_t i = 0; i < P; i += S::kWidth) {
    typename S::V sum = S::load(acc + i);
    for (int r = 0; r < rows; ++r) sum += S::load(a + r * P + i) * S::load(b + r * P + i);
    S::store(acc + i, sum);
  }
}

// Generic fallbacks (any P, rows one at a time) for rows wider than the register tile allows.
template <typename T>
inline void matvec_generic(const T* mat, const T* vecs, T* out, int rows, int64_t K, int64_t P) {
  for (int r = 0; r < rows; ++r) {
    T* __restrict o = out + r * P;
    std::fill(o, o + P, T(0));
    for (int64_t k = 0; k < K; ++k) {
      const T sk = vecs[r * P + k];
      const T* __restrict row = mat + k * P;
#pragma omp simd
      for (int64_t i = 0; i < P; ++i) o[i] += row[i] * sk;
    }
  }
}

template <typename T>
inline void outer_generic(T* m, const T* g, const T* sp, int rows, int64_t N, int64_t P) {
  for (int r = 0; r < rows; ++r)
    for (int64_t n = 0; n < N; ++n) {
      const T gn = g[r * P + n];
      T* __restrict row = m + n * P;
      const T* __restrict s = sp + r * P;
#pragma omp simd
      for (int64_t i = 0; i < P; ++i) row[i] += gn * s[i];
    }
}

// Rows per register tile: the R x NV accumulators (plus R broadcasts and one matrix vector) must
// fit the vector register file: 16 ymm registers with AVX2, 32 with AVX-512.
#if defined(__AVX512F__)
constexpr int kAccRegisters = 24;
#else
constexpr int kAccRegisters = 12;
#endif
constexpr int rows_for(int nv) {
  return nv * 4 <= kAccRegisters ? 4 : nv * 3 <= kAccRegisters ? 3 : nv * 2 <= kAccRegisters ? 2 : 1;
}
constexpr int kMaxTileVectors = 12;
constexpr int kGroupRows = 12;  // batch rows advanced together through the time loop
constexpr int64_t kAhead = 4;  // prefetch distance in steps for the [B, T, N] streams

// Column blocks. rows_for(NV) keeps whole rows in registers, so a row of NV = 7 or 8 vectors
// (N = 50..64 float32 with AVX2) gets one row per tile: 7-8 accumulator chains, fewer than the
// FMA latency x issue width (5 x 2 on Zen 2) needs, and one load per FMA. A blocked tile instead
// runs kTileRows rows over a block of at most kTileCols of the row's vectors at a time (3 x 4 +
// 3 x 3 chains at NV = 7), each matrix vector loaded feeding kTileRows FMAs. Blocks split NV as
// evenly as possible; the summation order per output element (k, or r, ascending) is unchanged.
#if defined(__AVX512F__)
constexpr int kTileRows = 4;
#else
constexpr int kTileRows = 3;
#endif
constexpr int kTileCols = kAccRegisters / kTileRows;  // 4 with AVX2, 6 with AVX-512
constexpr int n_col_blocks(int nv) { return (nv + kTileCols - 1) / kTileCols; }
constexpr int col_block_start(int nv, int i) {
  return i * (nv / n_col_blocks(nv)) + (i < nv % n_col_blocks(nv) ? i : nv % n_col_blocks(nv));
}
constexpr int col_block_size(int nv, int i) { return col_block_start(nv, i + 1) - col_block_start(nv, i); }
// blocked when its smallest block still has more accumulator chains than the whole-row tile
constexpr bool use_col_blocks(int nv) {
  return kTileRows * col_block_size(nv, n_col_blocks(nv) - 1) > rows_for(nv) * nv;
}
static_assert(kTileRows != 3 || (use_col_blocks(7) && !use_col_blocks(4) && !use_col_blocks(6)),
              "AVX2: NV = 7 blocked (3 x 4 + 3 x 3), NV = 4 and 6 whole rows");

template <typename T, int NV, int R, int I>
inline void matvec_blocks(const T* mat, const T* vecs, T* out, int64_t K, int64_t P) {
  constexpr int W = Simd<T>::kWidth, v0 = col_block_start(NV, I);
  matvec_tile<T, col_block_size(NV, I), R>(mat + v0 * W, vecs, out + v0 * W, K, P);
  if constexpr (I + 1 < n_col_blocks(NV)) matvec_blocks<T, NV, R, I + 1>(mat, vecs, out, K, P);
}

template <typename T, int NV, int NN, int I>
inline void outer_blocks(T* m, const T* g, const T* sp, int rows, int64_t n0, int64_t P) {
  constexpr int W = Simd<T>::kWidth, v0 = col_block_start(NV, I);
  outer_block<T, col_block_size(NV, I), NN>(m + v0 * W, g, sp + v0 * W, rows, n0, P);
  if constexpr (I + 1 < n_col_blocks(NV)) outer_blocks<T, NV, NN, I + 1>(m, g, sp, rows, n0, P);
}

template <typename T, int NV>
struct Tiles {
  static constexpr bool kBlocked = use_col_blocks(NV);
  static constexpr int R = kBlocked ? kTileRows : rows_for(NV);
  static void matvec(const T* mat, const T* vecs, T* out, int rows, int64_t K, int64_t P) {
    int r = 0;
    for (; r + R <= rows; r += R) {
      if constexpr (kBlocked)
        matvec_blocks<T, NV, R, 0>(mat, vecs + r * P, out + r * P, K, P);
      else
        matvec_tile<T, NV, R>(mat, vecs + r * P, out + r * P, K, P);
    }
    for (; r < rows; ++r) matvec_tile<T, NV, 1>(mat, vecs + r * P, out + r * P, K, P);
  }
  static void outer(T* m, const T* g, const T* sp, int rows, int64_t N, int64_t P) {
    if constexpr (kBlocked) {
      int64_t n = 0;
      for (; n + R <= N; n += R) outer_blocks<T, NV, R, 0>(m, g, sp, rows, n, P);
      for (; n < N; ++n) outer_block<T, NV, 1>(m, g, sp, rows, n, P);
    } else {
      outer_rows<T, NV, rows_for(NV)>(m, g, sp, rows, N, P);
    }
  }
};

template <typename T>
struct Generic {
  static void matvec(const T* mat, const T* vecs, T* out, int rows, int64_t K, int64_t P) {
    matvec_generic(mat, vecs, out, rows, K, P);
  }
  static void outer(T* m, const T* g, const T* sp, int rows, int64_t N, int64_t P) {
    outer_generic(m, g, sp, rows, N, P);
  }
};

inline int64_t padded(int64_t n, int width) { return (n + width - 1) / width * width; }

template <typename T, typename K>
void forward_impl(const T* drive, const T* x0, const T* w, const T* alpha, T* states,
                  int64_t T_steps, int64_t N, int64_t P, int64_t b_begin, int64_t b_end) {
  constexpr int R = kGroupRows;
  std::vector<T> wt(N * P, T(0));  // wt[k, n] = w[n, k]
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < N; ++k) wt[k * P + n] = w[n * N + k];
  std::vector<T> a(P, T(0)), oma(P, T(0));
  for (int64_t n = 0; n < N; ++n) {
    a[n] = alpha[n];
    oma[n] = T(1) - alpha[n];
  }
  std::vector<T> x(R * P, T(0)), s(R * P, T(0)), h(R * P, T(0));

  for (int64_t b = b_begin; b < b_end; b += R) {
    const int rows = static_cast<int>(std::min<int64_t>(R, b_end - b));
    for (int r = 0; r < rows; ++r) std::memcpy(&x[r * P], x0 + (b + r) * N, N * sizeof(T));
    for (int64_t t = 0; t < T_steps; ++t) {
      if (t + kAhead < T_steps) {  // the drive rows of step t + kAhead, one stream per batch row
        for (int r = 0; r < rows; ++r) {
          const char* next = reinterpret_cast<const char*>(drive + ((b + r) * T_steps + t + kAhead) * N);
          for (int64_t byte = 0; byte < N * static_cast<int64_t>(sizeof(T)); byte += 64)
            __builtin_prefetch(next + byte);
        }
      }
      softplus_row(x.data(), s.data(), rows * P);
      K::matvec(wt.data(), s.data(), h.data(), rows, N, P);
      for (int r = 0; r < rows; ++r) {
        const int64_t off = ((b + r) * T_steps + t) * N;
        const T* __restrict d = drive + off;
        T* __restrict out = states + off;
        T* __restrict xr = &x[r * P];
        const T* __restrict hr = &h[r * P];
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
          const T xn = oma[n] * xr[n] + a[n] * hr[n] + d[n];
          xr[n] = xn;
          out[n] = xn;
        }
      }
    }
  }
}

template <typename T, typename K>
void backward_impl(const T* grad, const T* x0, const T* w, const T* alpha, const T* states,
                   T* d_drive, T* d_x0, T* m_partial, T* gx_partial, bool need_m,
                   int64_t T_steps, int64_t N, int64_t P, int64_t b_begin, int64_t b_end) {
  constexpr int R = kGroupRows;
  std::vector<T> wp(N * P, T(0));  // rows of W, padded
  for (int64_t n = 0; n < N; ++n) std::memcpy(&wp[n * P], w + n * N, N * sizeof(T));
  std::vector<T> a(P, T(0)), oma(P, T(0));
  for (int64_t n = 0; n < N; ++n) {
    a[n] = alpha[n];
    oma[n] = T(1) - alpha[n];
  }
  const int64_t G = R * P;
  // Padding lanes (n >= N) hold scratch values: they only ever reach padded columns of m / wv,
  // which are never read back.
  std::vector<T> g(G, T(0)), c(G, T(0)), v(G, T(0)), wv(G, T(0)), xp(G, T(0)), sp(G, T(0)),
      dsp(G, T(0));
  std::vector<T> m(need_m ? N * P : 0, T(0)), gx(P, T(0));

  for (int64_t b = b_begin; b < b_end; b += R) {
    const int rows = static_cast<int>(std::min<int64_t>(R, b_end - b));
    std::fill(c.begin(), c.end(), T(0));
    for (int64_t t = T_steps - 1; t >= 0; --t) {
      for (int r = 0; r < rows; ++r) {
        const int64_t off = ((b + r) * T_steps + t) * N;
        const T* __restrict gsrc = grad + off;
        T* __restrict dd = d_drive + off;
        const T* __restrict xprev = t > 0 ? states + off - N : x0 + (b + r) * N;
        // The reverse walk defeats the hardware prefetchers on some CPUs: fetch the rows that
        // step t - kAhead will read (grad and states of this batch row) ahead of time.
        if (t >= kAhead + 1) {
          for (int64_t byte = 0; byte < N * static_cast<int64_t>(sizeof(T)); byte += 64) {
            __builtin_prefetch(reinterpret_cast<const char*>(gsrc - kAhead * N) + byte);
            __builtin_prefetch(reinterpret_cast<const char*>(xprev - kAhead * N) + byte);
          }
        }
        T* __restrict gr = &g[r * P];
        T* __restrict vr = &v[r * P];
        T* __restrict xr = &xp[r * P];
        const T* __restrict cr = &c[r * P];
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
          const T gn = gsrc[n] + cr[n];
          gr[n] = gn;
          dd[n] = gn;
          vr[n] = a[n] * gn;
          xr[n] = xprev[n];
        }
      }
      if (need_m) add_row_products(gx.data(), g.data(), xp.data(), rows, P);
      softplus_and_grad_row(xp.data(), sp.data(), dsp.data(), rows * P);
      if (need_m) K::outer(m.data(), g.data(), sp.data(), rows, N, P);
      K::matvec(wp.data(), v.data(), wv.data(), rows, N, P);
      for (int r = 0; r < rows; ++r) {
        T* __restrict cr = &c[r * P];
        const T* __restrict gr = &g[r * P];
        const T* __restrict dr = &dsp[r * P];
        const T* __restrict wvr = &wv[r * P];
#pragma omp simd
        for (int64_t k = 0; k < N; ++k) cr[k] = oma[k] * gr[k] + dr[k] * wvr[k];
      }
    }
    for (int r = 0; r < rows; ++r) std::memcpy(d_x0 + (b + r) * N, &c[r * P], N * sizeof(T));
  }
  if (need_m) {
    for (int64_t n = 0; n < N; ++n) std::memcpy(m_partial + n * N, &m[n * P], N * sizeof(T));
    std::memcpy(gx_partial, gx.data(), N * sizeof(T));
  }
}

// Calls f(Tiles<T, NV>{}) for the row width's vector count, or f(Generic<T>{}) beyond the tile.
template <typename T, typename F>
void dispatch_width(int64_t N, F&& f) {
  const int nv = static_cast<int>(padded(N, Simd<T>::kWidth) / Simd<T>::kWidth);
  switch (nv) {
#define EIRNN_CASE(NVV) \
  case NVV:             \
    return f(Tiles<T, NVV>{}, padded(N, Simd<T>::kWidth));
    EIRNN_CASE(1) EIRNN_CASE(2) EIRNN_CASE(3) EIRNN_CASE(4) EIRNN_CASE(5) EIRNN_CASE(6)
    EIRNN_CASE(7) EIRNN_CASE(8) EIRNN_CASE(9) EIRNN_CASE(10) EIRNN_CASE(11) EIRNN_CASE(12)
#undef EIRNN_CASE
    default:
      return f(Generic<T>{}, padded(N, Simd<T>::kWidth));
  }
}
static_assert(kMaxTileVectors == 12, "dispatch_width lists NV = 1..12");

}  // namespace

template <typename T>
void scan_forward_cpu(const T* drive, const T* x0, const T* w, const T* alpha, T* states,
                      int64_t B, int64_t T_steps, int64_t N, int64_t b_begin, int64_t b_end) {
  (void)B;
  dispatch_width<T>(N, [&](auto k, int64_t P) {
    forward_impl<T, decltype(k)>(drive, x0, w, alpha, states, T_steps, N, P, b_begin, b_end);
  });
}

template <typename T>
void scan_backward_cpu(const T* grad, const T* x0, const T* w, const T* alpha, const T* states,
                       T* d_drive, T* d_x0, T* m_partial, T* gx_partial, bool need_m,
                       int64_t B, int64_t T_steps, int64_t N, int64_t b_begin, int64_t b_end) {
  (void)B;
  dispatch_width<T>(N, [&](auto k, int64_t P) {
    backward_impl<T, decltype(k)>(grad, x0, w, alpha, states, d_drive, d_x0, m_partial,
                                  gx_partial, need_m, T_steps, N, P, b_begin, b_end);
  });
}

template <typename T>
void reduce_partials_cpu(const T* m_partials, const T* gx_partials, int64_t n_chunks,
                         const T* w, const T* alpha, int64_t N, T* d_w, T* d_alpha) {
  for (int64_t n = 0; n < N; ++n) {
    double row = 0.0;  // sum_k W[n, k] M[n, k]
    for (int64_t k = 0; k < N; ++k) {
      double acc = 0.0;
      for (int64_t ch = 0; ch < n_chunks; ++ch) acc += m_partials[(ch * N + n) * N + k];
      if (d_w) d_w[n * N + k] = static_cast<T>(static_cast<double>(alpha[n]) * acc);
      row += static_cast<double>(w[n * N + k]) * acc;
    }
    if (d_alpha) {
      double gx = 0.0;
      for (int64_t ch = 0; ch < n_chunks; ++ch) gx += gx_partials[ch * N + n];
      d_alpha[n] = static_cast<T>(row - gx);
    }
  }
}

// ---- output rates and state noise ---------------------------------------------------------------

// The rates read x_{t-1}: for the rows of one trial with t >= 1 these are one contiguous block of
// states, so softplus runs over up to kRateRows rows per call (one vector remainder per block
// instead of one per 65-wide row, and the call overhead amortised).
constexpr int64_t kRateRows = 64;

template <typename F>
inline void for_each_rate_block(int64_t T_steps, int64_t r_begin, int64_t r_end, F&& f) {
  for (int64_t row = r_begin; row < r_end;) {
    const int64_t b = row / T_steps, t = row - b * T_steps;
    // t == 0 reads x0: a block of its own; otherwise up to the end of this trial
    const int64_t stop = t == 0 ? row + 1 : std::min({r_end, (b + 1) * T_steps, row + kRateRows});
    f(row, stop - row, b, t);
    row = stop;
  }
}

template <typename T>
void rates_forward_cpu(const T* states, const T* x0, T scale, T base, T* rates, int64_t T_steps,
                       int64_t N, int64_t r_begin, int64_t r_end) {
  std::vector<T> sp(kRateRows * N);
  for_each_rate_block(T_steps, r_begin, r_end, [&](int64_t row, int64_t len, int64_t b, int64_t t) {
    const T* prev = t > 0 ? states + (row - 1) * N : x0 + b * N;
    const int64_t n_el = len * N;
    softplus_row(prev, sp.data(), n_el);
    T* __restrict out = rates + row * N;
    const T* __restrict s = sp.data();
#pragma omp simd
    for (int64_t i = 0; i < n_el; ++i) {
      const T v = s[i] * scale + base;
      out[i] = v < T(0) ? T(0) : v;  // NaN stays NaN, as torch.clamp
    }
  });
}

template <typename T>
void rates_backward_cpu(const T* grad, const T* states, const T* x0, T scale, T base, T* d_states,
                        T* d_x0, double* sums, int64_t T_steps, int64_t N, int64_t r_begin,
                        int64_t r_end) {
  std::vector<T> sp(kRateRows * N), dsp(kRateRows * N);
  double sum_sp = 0.0, sum_g = 0.0;
  for_each_rate_block(T_steps, r_begin, r_end, [&](int64_t row, int64_t len, int64_t b, int64_t t) {
    const T* prev = t > 0 ? states + (row - 1) * N : x0 + b * N;
    T* __restrict dprev = t > 0 ? d_states + (row - 1) * N : d_x0 + b * N;
    const int64_t last = row + len - 1;  // the block's last row; x_{T-1} feeds no rate
    if (last - b * T_steps == T_steps - 1) std::fill(d_states + last * N, d_states + (last + 1) * N, T(0));
    softplus_and_grad_row(prev, sp.data(), dsp.data(), len * N);
    for (int64_t r = 0; r < len; ++r) {  // per row: the partial sums keep their order, as before
      const T* __restrict g = grad + (row + r) * N;
      const T* __restrict s = sp.data() + r * N;
      const T* __restrict ds = dsp.data() + r * N;
      T* __restrict dp = dprev + r * N;
      T acc_sp = T(0), acc_g = T(0);
#pragma omp simd reduction(+ : acc_sp, acc_g)
      for (int64_t n = 0; n < N; ++n) {
        const T gm = s[n] * scale + base >= T(0) ? g[n] : T(0);
        dp[n] = gm * scale * ds[n];
        acc_sp += gm * s[n];
        acc_g += gm;
      }
      sum_sp += static_cast<double>(acc_sp);
      sum_g += static_cast<double>(acc_g);
    }
  });
  sums[0] = sum_sp;
  sums[1] = sum_g;
}

// Pieces of [begin, end) cut at the generator's block boundaries, so each block is drawn once.
template <typename F>
inline void for_each_draw_block(int64_t begin, int64_t end, F&& f) {
  for (int64_t i = begin; i < end;) {
    const int64_t stop = std::min(end, (i / normal_rng::kNormalBlock + 1) * normal_rng::kNormalBlock);
    f(i, stop - i);
    i = stop;
  }
}

template <typename T>
void noise_add_cpu(T* drive, T std, uint64_t seed, int64_t begin, int64_t end) {
  alignas(64) T xi[normal_rng::kNormalBlock];
  for_each_draw_block(begin, end, [&](int64_t i, int64_t len) {
    normal_draws_cpu<T>(seed, i, xi, len);
    T* __restrict d = drive + i;
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) d[j] += std * xi[j];
  });
}

template <typename T>
double noise_dot_cpu(const T* grad, uint64_t seed, int64_t begin, int64_t end) {
  alignas(64) T xi[normal_rng::kNormalBlock];
  double total = 0.0;
  for_each_draw_block(begin, end, [&](int64_t i, int64_t len) {
    normal_draws_cpu<T>(seed, i, xi, len);
    const T* __restrict g = grad + i;
    T acc = T(0);
#pragma omp simd reduction(+ : acc)
    for (int64_t j = 0; j < len; ++j) acc += g[j] * xi[j];
    total += static_cast<double>(acc);
  });
  return total;
}

#define EIRNN_INSTANTIATE(T)                                                                     \
  template void scan_forward_cpu<T>(const T*, const T*, const T*, const T*, T*, int64_t,        \
                                    int64_t, int64_t, int64_t, int64_t);                        \
  template void scan_backward_cpu<T>(const T*, const T*, const T*, const T*, const T*, T*, T*,  \
                                     T*, T*, bool, int64_t, int64_t, int64_t, int64_t,          \
                                     int64_t);                                                  \
  template void reduce_partials_cpu<T>(const T*, const T*, int64_t, const T*, const T*,         \
                                       int64_t, T*, T*);                                          \
  template void rates_forward_cpu<T>(const T*, const T*, T, T, T*, int64_t, int64_t, int64_t,   \
                                     int64_t);                                                  \
  template void rates_backward_cpu<T>(const T*, const T*, const T*, T, T, T*, T*, double*,      \
                                      int64_t, int64_t, int64_t, int64_t);                      \
  template void noise_add_cpu<T>(T*, T, uint64_t, int64_t, int64_t);                            \
  template double noise_dot_cpu<T>(const T*, uint64_t, int64_t, int64_t);
EIRNN_INSTANTIATE(float)
EIRNN_INSTANTIATE(double)
#undef EIRNN_INSTANTIATE

}  // namespace rnn
}  // namespace eirnn_fast
