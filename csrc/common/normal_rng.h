// Counter-based standard-normal draws for the CPU kernels (state noise of the drop-in model).
//
// Draw number e of the stream `seed` is a pure function of (seed, e): the stream is cut into
// blocks of kNormalBlock draws; block k runs kLanes independent xoshiro128++ generators
// (Blackman & Vigna 2018) whose states are SplitMix64 hashes of (seed, k, lane), and their 32-bit
// words become normals by Box-Muller. Any thread can therefore generate any slice, results do not
// depend on the thread count, and a backward pass regenerates the draws of its forward instead of
// storing them. (xoshiro rather than Philox: it needs only 32-bit adds, shifts and rotations, which
// vectorise fully; Philox's 32x32->64-bit products made the CPU generator slower than torch.randn.)
//
// Layout of block k (first draw k * kNormalBlock), step i, lane l:
//   float32: words a, b          -> r = sqrt(-2 log u(a)), th = 2 pi u(b)
//   float64: words a1, a2, b1, b2 -> 53-bit uniforms u(a1, a2), u(b1, b2)
//   draw i * 2 * kLanes + l = r cos th,  draw i * 2 * kLanes + kLanes + l = r sin th
// No torch headers.
#pragma once

#include <cstdint>

namespace eirnn_fast {
namespace normal_rng {

constexpr int kLanes = 16;
constexpr int64_t kNormalBlock = 1024;  // draws per block (a multiple of 2 * kLanes)

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniforms in the open interval (0, 1): never 0, so log(u) is finite.
inline float uniform24(uint32_t x) { return (float(x >> 8) + 0.5f) * (1.0f / 16777216.0f); }
inline double uniform53(uint32_t hi, uint32_t lo) {
  const uint64_t v = (uint64_t(hi) << 21) ^ uint64_t(lo >> 11);  // 53 random bits
  return (double(v) + 0.5) * (1.0 / 9007199254740992.0);
}

}  // namespace normal_rng

// out[i] = N(0, 1) draw number `first + i` of the stream `seed`, i = 0..n-1 (any first, any n).
template <typename T>
void normal_draws_cpu(uint64_t seed, int64_t first, T* out, int64_t n);

}  // namespace eirnn_fast
