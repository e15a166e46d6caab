// AVX2/FMA float math shared by the CPU kernels (attention, activations, norms). Every function
// evaluates in a fixed order with no data-dependent branches, so a lane's result depends only on
// its input: kernels that run all elements (tails included) through these functions give the same
// bits for any chunking of the work, hence for any thread count.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace cfp {

// e^x for x <= ~88 with a fixed evaluation order: x = n ln2 + r (Cody-Waite), |r| <= ln2/2,
// e^r by its degree-7 Taylor polynomial (truncation < 6e-9 relative, under 0.1 ulp), times 2^n.
// Inputs below -87 (and -inf) give ~1e-38 instead of 0; callers zero masked lanes themselves.
inline __m256 exp_ps(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// Lanes < n set (n in 1..8).
inline __m256 lane_mask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), idx));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Float lanes widened to double: the low and high four of eight.
inline __m256d lo_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
inline __m256d hi_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
inline double hsum_pd(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// Loads/stores of the first n lanes (n in 1..8); the other lanes read as 0 and are not written.
inline __m256 load_n(const float* p, int64_t n) {
  return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, _mm256_castps_si256(lane_mask(n)));
}
inline void store_n(float* p, __m256 v, int64_t n) {
  if (n >= 8)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, _mm256_castps_si256(lane_mask(n)), v);
}

// e^-v and the logistic sigmoid 1 / (1 + e^-v) from it. Written this way, 1 - sigmoid(v) =
// e^-v * sigmoid(v) has no cancellation, and both stay accurate to a few ulp over the whole range.
inline __m256 sigmoid_from_exp_neg(__m256 e) { return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e)); }

// tanh-approximated GELU, 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3), evaluated as
// x * sigmoid(2u) (the same function: 0.5 (1 + tanh(u)) = sigmoid(2u)), which needs one exp and has
// no cancellation for negative x. Accurate to a few ulp wherever the result is a normal float;
// below x ~ -8.5 exp's input clamp leaves results of magnitude < 1e-36 instead of smaller ones.
constexpr float kGeluScaleF = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluCubicF = 0.044715f;

inline __m256 gelu_tanh_ps(__m256 x) {
  const __m256 x2 = _mm256_mul_ps(x, x);
  // -2u = x * (-2c) * (1 + a x^2)
  const __m256 inner = _mm256_fmadd_ps(x2, _mm256_set1_ps(kGeluCubicF), _mm256_set1_ps(1.0f));
  const __m256 m2u = _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(-2.0f * kGeluScaleF)), inner);
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_ps(m2u)));
}

// d gelu / dx = s + x s (1 - s) dv/dx with s = sigmoid(v), v = 2u, dv/dx = 2c (1 + 3a x^2),
// and 1 - s = e^-v s.
inline __m256 gelu_tanh_grad_ps(__m256 x) {
  const __m256 x2 = _mm256_mul_ps(x, x);
  const __m256 inner = _mm256_fmadd_ps(x2, _mm256_set1_ps(kGeluCubicF), _mm256_set1_ps(1.0f));
  const __m256 m2u = _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(-2.0f * kGeluScaleF)), inner);
  const __m256 e = exp_ps(m2u);
  const __m256 s = sigmoid_from_exp_neg(e);
  const __m256 one_minus_s = _mm256_mul_ps(e, s);
  const __m256 dv = _mm256_mul_ps(_mm256_set1_ps(2.0f * kGeluScaleF),
                                  _mm256_fmadd_ps(x2, _mm256_set1_ps(3.0f * kGeluCubicF), _mm256_set1_ps(1.0f)));
  // s * (1 + x (1 - s) dv)
  return _mm256_mul_ps(s, _mm256_fmadd_ps(_mm256_mul_ps(x, one_minus_s), dv, _mm256_set1_ps(1.0f)));
}

// SiLU x * sigmoid(x) and its derivative s (1 + x (1 - s)).
inline __m256 silu_ps(__m256 x) {
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}
inline __m256 silu_grad_ps(__m256 x) {
  const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x));
  const __m256 s = sigmoid_from_exp_neg(e);
  return _mm256_mul_ps(s, _mm256_fmadd_ps(x, _mm256_mul_ps(e, s), _mm256_set1_ps(1.0f)));
}

}  // namespace cfp
