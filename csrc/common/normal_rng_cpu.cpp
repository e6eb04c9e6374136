// CPU normal draws (common/normal_rng.h). Compiled with -ffast-math and -fopenmp-simd (see
// CMakeLists.txt): the lane loops vectorise and log/sqrt/sin map onto glibc's SIMD variants
// (libmvec, <= 4 ulp). Only the last bits of a draw depend on the vector math library.
#include "common/normal_rng.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace eirnn_fast {
namespace {

using normal_rng::kLanes;
using normal_rng::kNormalBlock;

inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

// kLanes xoshiro128++ generators advanced in lock step (one vector per state word).
struct Lanes {
  alignas(64) uint32_t s0[kLanes], s1[kLanes], s2[kLanes], s3[kLanes];

  Lanes(uint64_t seed, int64_t block) {
    const uint64_t base = normal_rng::splitmix64(seed ^ normal_rng::splitmix64(uint64_t(block)));
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t a = normal_rng::splitmix64(base + 2 * uint64_t(l));
      const uint64_t b = normal_rng::splitmix64(base + 2 * uint64_t(l) + 1);
      s0[l] = uint32_t(a);
      s1[l] = uint32_t(a >> 32);
      s2[l] = uint32_t(b);
      s3[l] = uint32_t(b >> 32) | 1u;  // never the all-zero state
    }
  }

  inline void next(uint32_t* __restrict out) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      out[l] = rotl(s0[l] + s3[l], 7) + s0[l];
      const uint32_t t = s1[l] << 9;
      s2[l] ^= s0[l];
      s3[l] ^= s1[l];
      s1[l] ^= s2[l];
      s0[l] ^= s3[l];
      s2[l] ^= t;
      s3[l] = rotl(s3[l], 11);
    }
  }
};

// cos as a shifted sin: GCC fuses sin and cos of one argument into sincos, which has no vector
// variant and would keep the loop scalar.
constexpr float kTwoPiF = 6.28318530717958647692f, kHalfPiF = 1.57079632679489661923f;
constexpr double kTwoPi = 6.28318530717958647692, kHalfPi = 1.57079632679489661923;

// All kNormalBlock draws of one block.
void block_draws(uint64_t seed, int64_t block, float* __restrict out) {
  Lanes g(seed, block);
  alignas(64) uint32_t a[kLanes], b[kLanes];
  for (int64_t i = 0; i < kNormalBlock / (2 * kLanes); ++i) {
    g.next(a);
    g.next(b);
    float* __restrict o = out + i * 2 * kLanes;
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const float r = std::sqrt(-2.0f * std::log(normal_rng::uniform24(a[l])));
      const float th = kTwoPiF * normal_rng::uniform24(b[l]);
      o[l] = r * std::sin(th + kHalfPiF);
      o[kLanes + l] = r * std::sin(th);
    }
  }
}

void block_draws(uint64_t seed, int64_t block, double* __restrict out) {
  Lanes g(seed, block);
  alignas(64) uint32_t a1[kLanes], a2[kLanes], b1[kLanes], b2[kLanes];
  for (int64_t i = 0; i < kNormalBlock / (2 * kLanes); ++i) {
    g.next(a1);
    g.next(a2);
    g.next(b1);
    g.next(b2);
    double* __restrict o = out + i * 2 * kLanes;
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const double r = std::sqrt(-2.0 * std::log(normal_rng::uniform53(a1[l], a2[l])));
      const double th = kTwoPi * normal_rng::uniform53(b1[l], b2[l]);
      o[l] = r * std::sin(th + kHalfPi);
      o[kLanes + l] = r * std::sin(th);
    }
  }
}

}  // namespace

template <typename T>
void normal_draws_cpu(uint64_t seed, int64_t first, T* out, int64_t n) {
  static_assert(kNormalBlock % (2 * kLanes) == 0, "a block is a whole number of lane steps");
  alignas(64) T buf[kNormalBlock];
  int64_t done = 0;
  while (done < n) {
    const int64_t e = first + done;
    const int64_t block = e / kNormalBlock, skip = e - block * kNormalBlock;
    const int64_t take = std::min(n - done, kNormalBlock - skip);
    if (skip == 0 && take == kNormalBlock) {
      block_draws(seed, block, out + done);
    } else {
      block_draws(seed, block, buf);
      std::memcpy(out + done, buf + skip, sizeof(T) * take);
    }
    done += take;
  }
}

template void normal_draws_cpu<float>(uint64_t, int64_t, float*, int64_t);
template void normal_draws_cpu<double>(uint64_t, int64_t, double*, int64_t);

}  // namespace eirnn_fast
