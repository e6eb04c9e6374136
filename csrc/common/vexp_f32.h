// float32 exp for GCC vector-extension types (any lane count): Cody-Waite reduction and the
// cephes expf polynomial (~1 ulp). Shared by the CPU softplus rows and the Sinkhorn CPU kernel.
#pragma once

#include <cstdint>

namespace eirnn_fast {

// exp(y) lane-wise; 0 for y < -87.33 (and -inf), clamped at y = 88.37 above. V: float vector,
// I: int32 vector of the same lane count.
template <typename V, typename I>
inline V exp_f32(V y) {
  const auto under = y < -87.33f;
  y = y > 88.37f ? V{} + 88.37f : y;
  y = under ? V{} - 87.0f : y;
  const V t = y * 1.44269504088896341f + 256.5f;  // floor(x + 0.5) via truncation of a positive
  const I n_i = __builtin_convertvector(t, I) - 256;
  const V n = __builtin_convertvector(n_i, V);
  V r = y - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const I scale = (n_i + 127) << 23;
  V s;
  __builtin_memcpy(&s, &scale, sizeof(V));
  return under ? V{} : p * s;
}

}  // namespace eirnn_fast
