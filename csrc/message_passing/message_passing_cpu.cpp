// CPU kernels of the sparse edge message passing (DESIGN 3.3). Row ranges come from
// at::parallel_for in message_passing_ops.cpp; every output row is written by exactly one work
// item, in a fixed order, so results do not depend on the thread count.
//
// Every kernel first checks the CSR rows of its work item (check_rows: the row spans, then every
// slot's col and perm in one branch-free pass over the item's contiguous slot range) and walks
// them only when all are in range; otherwise it returns the CsrFault bits without touching the
// outputs, and the caller raises. The walks themselves are unchanged, so valid graphs give the
// same bits as without the checks.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "message_passing/message_passing.h"

namespace eirnn_fast {
namespace mp {
namespace {

// CsrFault bits of rows [r_begin, r_end) of a CSR with E slots: kBadRowptr unless
// 0 <= rowptr[r] <= rowptr[r+1] <= E for every row; then (the rows' slots being the contiguous
// range [rowptr[r_begin], rowptr[r_end])) kBadCol / kBadPerm unless every col[k] is in
// [0, num_cols) and every perm[k] in [0, E). Compared as unsigned I, so a negative index is a huge
// value and each bound is one compare; bounds beyond I's range are clamped to its largest value + 1
// (every non-negative I then passes, as it should). Both loops are branch-free reductions the
// compiler vectorises; the slot pass leaves the item's indices in cache for the walk.
template <typename I>
int check_rows(const I* __restrict rowptr, const I* __restrict col, const I* __restrict perm,
               int64_t num_cols, int64_t E, int64_t r_begin, int64_t r_end) {
  if (r_begin >= r_end) return 0;
  using U = std::make_unsigned_t<I>;
  const uint64_t lim = static_cast<uint64_t>(std::numeric_limits<I>::max()) + 1;
  const U nc = static_cast<U>(std::min<uint64_t>(static_cast<uint64_t>(num_cols), lim));
  const U ne = static_cast<U>(std::min<uint64_t>(static_cast<uint64_t>(E), lim));
  const int64_t k0 = rowptr[r_begin], k1 = rowptr[r_end];
  if (!(0 <= k0 && k1 <= E)) return kBadRowptr;
  int64_t n_down = 0;  // a count and a max: reductions gcc vectorises (a bool |= is not)
  for (int64_t r = r_begin; r < r_end; ++r) n_down += rowptr[r + 1] < rowptr[r];
  if (n_down) return kBadRowptr;
  U max_c = 0, max_p = 0;
  for (int64_t k = k0; k < k1; ++k) {
    max_c = std::max(max_c, static_cast<U>(col[k]));
    max_p = std::max(max_p, static_cast<U>(perm[k]));
  }
  return (k1 > k0 && max_c >= nc ? kBadCol : 0) | (k1 > k0 && max_p >= ne ? kBadPerm : 0);
}

// ---- plain op ------------------------------------------------------------------------------------
// F known at compile time (1, 2, 4, 8): the accumulators stay in registers.
template <typename T, typename I, int FC>
void spmm_rows_fixed(const I* __restrict rowptr, const I* __restrict col, const I* __restrict perm,
                     const T* __restrict w, const T* __restrict x, T* __restrict out,
                     int64_t r_begin, int64_t r_end) {
  for (int64_t r = r_begin; r < r_end; ++r) {
    T acc[FC];
    for (int f = 0; f < FC; ++f) acc[f] = T(0);
    const int64_t k1 = rowptr[r + 1];
    for (int64_t k = rowptr[r]; k < k1; ++k) {
      const T wk = w[perm[k]];
      const T* __restrict xr = x + static_cast<int64_t>(col[k]) * FC;
      for (int f = 0; f < FC; ++f) acc[f] += wk * xr[f];
    }
    for (int f = 0; f < FC; ++f) out[r * FC + f] = acc[f];
  }
}

template <typename T, typename I>
void spmm_rows_generic(const I* __restrict rowptr, const I* __restrict col,
                       const I* __restrict perm, const T* __restrict w, const T* __restrict x,
                       T* __restrict out, int64_t F, int64_t r_begin, int64_t r_end) {
  for (int64_t r = r_begin; r < r_end; ++r) {
    T* __restrict o = out + r * F;
    for (int64_t f = 0; f < F; ++f) o[f] = T(0);
    const int64_t k1 = rowptr[r + 1];
    for (int64_t k = rowptr[r]; k < k1; ++k) {
      const T wk = w[perm[k]];
      const T* __restrict xr = x + static_cast<int64_t>(col[k]) * F;
      for (int64_t f = 0; f < F; ++f) o[f] += wk * xr[f];
    }
  }
}

template <typename T, typename I, int FC>
void spmm_bwd_rows_fixed(const I* __restrict rowptr_t, const I* __restrict col_t,
                         const I* __restrict perm_t, const T* __restrict w,
                         const T* __restrict x, const T* __restrict g, T* __restrict d_x,
                         T* __restrict d_w, int64_t j_begin, int64_t j_end) {
  for (int64_t j = j_begin; j < j_end; ++j) {
    T xj[FC], acc[FC];
    for (int f = 0; f < FC; ++f) {
      xj[f] = x[j * FC + f];
      acc[f] = T(0);
    }
    const int64_t k1 = rowptr_t[j + 1];
    for (int64_t k = rowptr_t[j]; k < k1; ++k) {
      const int64_t e = perm_t[k];
      const T* __restrict gi = g + static_cast<int64_t>(col_t[k]) * FC;
      if (d_x) {
        const T we = w[e];
        for (int f = 0; f < FC; ++f) acc[f] += we * gi[f];
      }
      if (d_w) {
        T dot = T(0);
        for (int f = 0; f < FC; ++f) dot += gi[f] * xj[f];
        d_w[e] = dot;
      }
    }
    if (d_x)
      for (int f = 0; f < FC; ++f) d_x[j * FC + f] = acc[f];
  }
}

template <typename T, typename I>
void spmm_bwd_rows_generic(const I* __restrict rowptr_t, const I* __restrict col_t,
                           const I* __restrict perm_t, const T* __restrict w,
                           const T* __restrict x, const T* __restrict g, T* __restrict d_x,
                           T* __restrict d_w, int64_t F, int64_t j_begin, int64_t j_end) {
  for (int64_t j = j_begin; j < j_end; ++j) {
    const T* __restrict xj = x + j * F;
    T* __restrict o = d_x ? d_x + j * F : nullptr;
    if (o)
      for (int64_t f = 0; f < F; ++f) o[f] = T(0);
    const int64_t k1 = rowptr_t[j + 1];
    for (int64_t k = rowptr_t[j]; k < k1; ++k) {
      const int64_t e = perm_t[k];
      const T* __restrict gi = g + static_cast<int64_t>(col_t[k]) * F;
      if (o) {
        const T we = w[e];
        for (int64_t f = 0; f < F; ++f) o[f] += we * gi[f];
      }
      if (d_w) {
        T dot = T(0);
        for (int64_t f = 0; f < F; ++f) dot += gi[f] * xj[f];
        d_w[e] = dot;
      }
    }
  }
}

// ---- edge-MLP variant ----------------------------------------------------------------------------
// Per-edge activations of one (edge, frame): acts = [h_0 | h_1 | ... | h_L], each H wide.
// hw_finite: every hidden weight is finite, so products with an exact 0 may be skipped (0 * w = 0);
// otherwise 0 * inf = NaN must reach the result as in the reference's matmuls.
struct MlpShape {
  int64_t H, L;
  bool hw_finite;
};

// Whether h[0..H) is all finite (then 0 * h = 0 and a zero factor may be skipped).
template <typename T>
inline bool finite_row(const T* __restrict h, int64_t H) {
  T acc = T(0);
  for (int64_t k = 0; k < H; ++k) acc += h[k] * T(0);  // NaN for any inf or NaN entry
  return acc == T(0);
}

// Forward of one edge: fills acts, returns s (the scalar output before squaring).
template <typename T>
inline T edge_forward(const T* __restrict ai, const T* __restrict bj, const T* __restrict hwt,
                      const T* __restrict hb, const T* __restrict ow, T ob, T* __restrict acts,
                      MlpShape m) {
  const int64_t H = m.H;
  T* __restrict h = acts;
  for (int64_t k = 0; k < H; ++k) h[k] = std::max(ai[k] + bj[k], T(0));
  for (int64_t l = 0; l < m.L; ++l) {
    const T* __restrict prev = acts + l * H;
    T* __restrict z = acts + (l + 1) * H;
    const T* __restrict wl = hwt + l * H * H;  // [in, out]
    std::memcpy(z, hb + l * H, sizeof(T) * H);
    for (int64_t k = 0; k < H; ++k) {
      const T pk = prev[k];
      if (pk == T(0) && m.hw_finite) continue;  // ReLU sparsity: skipping exact zeros changes no value
      const T* __restrict wr = wl + k * H;
      for (int64_t o = 0; o < H; ++o) z[o] += pk * wr[o];
    }
    for (int64_t o = 0; o < H; ++o) z[o] = std::max(z[o], T(0));
  }
  const T* __restrict hl = acts + m.L * H;
  T s = T(0);
  for (int64_t k = 0; k < H; ++k) s += ow[k] * hl[k];
  return s + ob;  // the reference's order: (h . ow) + ob
}

// Backward of one edge given ds = dL/ds. Writes dz0 = dL/d(first-layer pre-activation) [H] and,
// when d_hw is non-null, adds the parameter gradients. dz, dh: scratch [H] each.
template <typename T>
inline void edge_backward(const T* __restrict acts, T ds, const T* __restrict hw,
                          const T* __restrict ow, T* __restrict dz0, T* __restrict dz,
                          T* __restrict dh, T* __restrict d_hw, T* __restrict d_hb,
                          T* __restrict d_ow, T* __restrict d_ob, MlpShape m) {
  const int64_t H = m.H;
  const T* __restrict hl = acts + m.L * H;
  if (d_ow) {
    for (int64_t k = 0; k < H; ++k) d_ow[k] += ds * hl[k];
    *d_ob += ds;
  }
  // dz = dL/dz_L (pre-activation of the last hidden layer; layer 0 when L = 0)
  T* __restrict cur = (m.L == 0) ? dz0 : dz;
  // ReLU backward as torch's threshold_backward: 0 where the output is <= 0, the gradient
  // elsewhere (NaN outputs included).
  for (int64_t k = 0; k < H; ++k) cur[k] = hl[k] <= T(0) ? T(0) : ds * ow[k];
  for (int64_t l = m.L - 1; l >= 0; --l) {
    const T* __restrict prev = acts + l * H;  // h_l, input of hidden layer l+1
    const T* __restrict wl = hw + l * H * H;  // [out, in]
    if (d_hw) {
      T* __restrict gw = d_hw + l * H * H;
      T* __restrict gb = d_hb + l * H;
      const bool prev_finite = finite_row(prev, H);
      for (int64_t o = 0; o < H; ++o) {
        const T dzo = cur[o];
        gb[o] += dzo;
        if (dzo == T(0) && prev_finite) continue;
        T* __restrict gwr = gw + o * H;
        for (int64_t k = 0; k < H; ++k) gwr[k] += dzo * prev[k];
      }
    }
    for (int64_t k = 0; k < H; ++k) dh[k] = T(0);
    for (int64_t o = 0; o < H; ++o) {
      const T dzo = cur[o];
      if (dzo == T(0) && m.hw_finite) continue;
      const T* __restrict wr = wl + o * H;
      for (int64_t k = 0; k < H; ++k) dh[k] += dzo * wr[k];
    }
    T* __restrict next = (l == 0) ? dz0 : dz;
    for (int64_t k = 0; k < H; ++k) next[k] = prev[k] <= T(0) ? T(0) : dh[k];
    cur = next;
  }
}

}  // namespace

template <typename T, typename I>
int spmm_rows_cpu(const I* rowptr, const I* col, const I* perm, const T* w, const T* x, T* out,
                  int64_t F, int64_t num_cols, int64_t E, int64_t r_begin, int64_t r_end) {
  if (const int fault = check_rows(rowptr, col, perm, num_cols, E, r_begin, r_end)) return fault;
  switch (F) {
    case 1: spmm_rows_fixed<T, I, 1>(rowptr, col, perm, w, x, out, r_begin, r_end); break;
    case 2: spmm_rows_fixed<T, I, 2>(rowptr, col, perm, w, x, out, r_begin, r_end); break;
    case 4: spmm_rows_fixed<T, I, 4>(rowptr, col, perm, w, x, out, r_begin, r_end); break;
    case 8: spmm_rows_fixed<T, I, 8>(rowptr, col, perm, w, x, out, r_begin, r_end); break;
    default: spmm_rows_generic<T, I>(rowptr, col, perm, w, x, out, F, r_begin, r_end);
  }
  return 0;
}

template <typename T, typename I>
int spmm_bwd_rows_cpu(const I* rowptr_t, const I* col_t, const I* perm_t, const T* w, const T* x,
                      const T* g, T* d_x, T* d_w, int64_t F, int64_t num_dst, int64_t E,
                      int64_t j_begin, int64_t j_end) {
  if (const int fault = check_rows(rowptr_t, col_t, perm_t, num_dst, E, j_begin, j_end)) return fault;
  switch (F) {
    case 1: spmm_bwd_rows_fixed<T, I, 1>(rowptr_t, col_t, perm_t, w, x, g, d_x, d_w, j_begin, j_end); break;
    case 2: spmm_bwd_rows_fixed<T, I, 2>(rowptr_t, col_t, perm_t, w, x, g, d_x, d_w, j_begin, j_end); break;
    case 4: spmm_bwd_rows_fixed<T, I, 4>(rowptr_t, col_t, perm_t, w, x, g, d_x, d_w, j_begin, j_end); break;
    case 8: spmm_bwd_rows_fixed<T, I, 8>(rowptr_t, col_t, perm_t, w, x, g, d_x, d_w, j_begin, j_end); break;
    default: spmm_bwd_rows_generic<T, I>(rowptr_t, col_t, perm_t, w, x, g, d_x, d_w, F, j_begin, j_end);
  }
  return 0;
}

template <typename T, typename I>
int mlp_fwd_rows_cpu(const I* rowptr, const I* col, const I* perm, const T* w, const T* a,
                     const T* b, const T* hw, const T* hwt, const T* hb, const T* ow, const T* ob,
                     T* out, int64_t F, int64_t num_dst, int64_t num_src, int64_t E, int64_t H,
                     int64_t L, bool hw_finite, int64_t i_begin, int64_t i_end) {
  if (const int fault = check_rows(rowptr, col, perm, num_src, E, i_begin, i_end)) return fault;
  const MlpShape m{H, L, hw_finite};
  std::vector<T> acts(static_cast<size_t>((L + 1) * H));
  for (int64_t i = i_begin; i < i_end; ++i) {
    for (int64_t f = 0; f < F; ++f) out[i * F + f] = T(0);
    const int64_t k1 = rowptr[i + 1];
    for (int64_t k = rowptr[i]; k < k1; ++k) {
      const int64_t j = col[k];
      const T we = w[perm[k]];
      for (int64_t f = 0; f < F; ++f) {
        const T s = edge_forward<T>(a + (f * num_dst + i) * H, b + (f * num_src + j) * H, hwt, hb,
                                    ow, ob[0], acts.data(), m);
        out[i * F + f] += (we * s) * s;  // the reference's (w * s) * s
      }
    }
  }
  return 0;
}

template <typename T, typename I>
int mlp_bwd_dst_rows_cpu(const I* rowptr, const I* col, const I* perm, const T* w, const T* a,
                         const T* b, const T* hw, const T* hwt, const T* hb, const T* ow,
                         const T* ob, const T* g, T* d_w, T* d_a, T* d_hw, T* d_hb, T* d_ow,
                         T* d_ob, int64_t F, int64_t num_dst, int64_t num_src, int64_t E, int64_t H,
                         int64_t L, bool hw_finite, int64_t i_begin, int64_t i_end) {
  if (const int fault = check_rows(rowptr, col, perm, num_src, E, i_begin, i_end)) return fault;
  const MlpShape m{H, L, hw_finite};
  std::vector<T> scratch(static_cast<size_t>((L + 4) * H));
  T* acts = scratch.data();
  T* dz0 = acts + (L + 1) * H;
  T* dz = dz0 + H;
  T* dh = dz + H;
  const bool need_back = d_a != nullptr || d_hw != nullptr;
  for (int64_t i = i_begin; i < i_end; ++i) {
    if (d_a)
      for (int64_t f = 0; f < F; ++f) std::fill_n(d_a + (f * num_dst + i) * H, H, T(0));
    const int64_t k1 = rowptr[i + 1];
    for (int64_t k = rowptr[i]; k < k1; ++k) {
      const int64_t j = col[k];
      const int64_t e = perm[k];
      const T we = w[e];
      T dwe = T(0);
      for (int64_t f = 0; f < F; ++f) {
        const T gi = g[i * F + f];
        const T s = edge_forward<T>(a + (f * num_dst + i) * H, b + (f * num_src + j) * H, hwt, hb,
                                    ow, ob[0], acts, m);
        const T gs = gi * s;
        dwe += gs * s;
        if (!need_back) continue;
        const T ds = gi * (we * s) + gs * we;  // autograd of (w * s) * s, same products
        edge_backward<T>(acts, ds, hw, ow, dz0, dz, dh, d_hw, d_hb, d_ow, d_ob, m);
        if (d_a) {
          T* __restrict da = d_a + (f * num_dst + i) * H;
          for (int64_t c = 0; c < H; ++c) da[c] += dz0[c];
        }
      }
      if (d_w) d_w[e] = dwe;
    }
  }
  return 0;
}

template <typename T, typename I>
int mlp_bwd_src_rows_cpu(const I* rowptr_t, const I* col_t, const I* perm_t, const T* w,
                         const T* a, const T* b, const T* hw, const T* hwt, const T* hb,
                         const T* ow, const T* ob, const T* g, T* d_b, int64_t F,
                         int64_t num_dst, int64_t num_src, int64_t E, int64_t H, int64_t L,
                         bool hw_finite, int64_t j_begin, int64_t j_end) {
  if (const int fault = check_rows(rowptr_t, col_t, perm_t, num_dst, E, j_begin, j_end)) return fault;
  const MlpShape m{H, L, hw_finite};
  std::vector<T> scratch(static_cast<size_t>((L + 4) * H));
  T* acts = scratch.data();
  T* dz0 = acts + (L + 1) * H;
  T* dz = dz0 + H;
  T* dh = dz + H;
  for (int64_t j = j_begin; j < j_end; ++j) {
    for (int64_t f = 0; f < F; ++f) std::fill_n(d_b + (f * num_src + j) * H, H, T(0));
    const int64_t k1 = rowptr_t[j + 1];
    for (int64_t k = rowptr_t[j]; k < k1; ++k) {
      const int64_t i = col_t[k];
      const T we = w[perm_t[k]];
      for (int64_t f = 0; f < F; ++f) {
        const T gi = g[i * F + f];
        const T s = edge_forward<T>(a + (f * num_dst + i) * H, b + (f * num_src + j) * H, hwt, hb,
                                    ow, ob[0], acts, m);
        const T ds = gi * (we * s) + (gi * s) * we;
        edge_backward<T>(acts, ds, hw, ow, dz0, dz, dh, static_cast<T*>(nullptr),
                         static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                         static_cast<T*>(nullptr), m);
        T* __restrict db = d_b + (f * num_src + j) * H;
        for (int64_t c = 0; c < H; ++c) db[c] += dz0[c];
      }
    }
  }
  return 0;
}

#define EIRNN_MP_INSTANTIATE(T, I)                                                                  \
  template int spmm_rows_cpu<T, I>(const I*, const I*, const I*, const T*, const T*, T*, int64_t,  \
                                   int64_t, int64_t, int64_t, int64_t);                             \
  template int spmm_bwd_rows_cpu<T, I>(const I*, const I*, const I*, const T*, const T*,           \
                                       const T*, T*, T*, int64_t, int64_t, int64_t, int64_t,        \
                                       int64_t);                                                    \
  template int mlp_fwd_rows_cpu<T, I>(const I*, const I*, const I*, const T*, const T*,            \
                                      const T*, const T*, const T*, const T*, const T*, const T*,  \
                                      T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,     \
                                      bool, int64_t, int64_t);                                      \
  template int mlp_bwd_dst_rows_cpu<T, I>(                                                          \
      const I*, const I*, const I*, const T*, const T*, const T*, const T*, const T*, const T*,   \
      const T*, const T*, const T*, T*, T*, T*, T*, T*, T*, int64_t, int64_t, int64_t, int64_t,   \
      int64_t, int64_t, bool, int64_t, int64_t);                                                    \
  template int mlp_bwd_src_rows_cpu<T, I>(const I*, const I*, const I*, const T*, const T*,        \
                                          const T*, const T*, const T*, const T*, const T*,        \
                                          const T*, const T*, T*, int64_t, int64_t, int64_t,       \
                                          int64_t, int64_t, int64_t, bool, int64_t, int64_t);

EIRNN_MP_INSTANTIATE(float, int32_t)
EIRNN_MP_INSTANTIATE(float, int64_t)
EIRNN_MP_INSTANTIATE(double, int32_t)
EIRNN_MP_INSTANTIATE(double, int64_t)
#undef EIRNN_MP_INSTANTIATE

}  // namespace mp
}  // namespace eirnn_fast
