// A minimal check harness for the model engineer's C++ tests (ops, model, objectives), with the
// tiny model, its random parameters and the finite differences the gradient tests share.
//
// Tolerance rule for gradient checks (as llm.c writes its thresholds down):
//   Everything runs in double. Central differences with step h = 1e-5 have truncation error
//   O(h^2 |f'''|) ~ 1e-10 and rounding error O(eps |f| / h) ~ 1e-11 on our O(1) losses, so an
//   analytic gradient g matches the numeric one n when |g - n| <= 1e-6 + 1e-5 |n|. A wrong
//   backward is off by O(|n|), many orders above that bound.
//   Float-vs-reference checks (GEMM, streaming vs full) use |a - b| <= 1e-4 + 1e-4 |b| per element:
//   float32 keeps ~7 digits and our reductions are at most a few thousand terms long.
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/model.h"

namespace cfp_test {

inline int& failures() {
  static int n = 0;
  return n;
}

inline void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures();
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

template <class T>
std::vector<T> randn(size_t n, uint64_t seed, double stddev = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> dist(0.0, stddev);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

// Max over elements of |a - b| / (atol + rtol |b|); <= 1 means within tolerance.
template <class A, class B>
double tol_ratio(const A* a, const B* b, size_t n, double atol, double rtol) {
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i])) / (atol + rtol * std::fabs(double(b[i])));
    if (!(d <= worst)) worst = d;  // NaN propagates as a failure
  }
  return worst;
}

constexpr double kGradAtol = 1e-6, kGradRtol = 1e-5, kFdStep = 1e-5;

// The central difference (loss(x + h) - loss(x - h)) / 2h at one element; restores *x.
inline double central_difference(double* x, const std::function<double()>& loss) {
  const double keep = *x;
  *x = keep + kFdStep;
  const double lp = loss();
  *x = keep - kFdStep;
  const double lm = loss();
  *x = keep;
  return (lp - lm) / (2 * kFdStep);
}

// |analytic - numeric| against the gradient tolerance; <= 1 means they match.
inline double grad_error(double analytic, double numeric) {
  return std::fabs(analytic - numeric) / (kGradAtol + kGradRtol * std::fabs(numeric));
}

// The tiny model the gradient tests differentiate in double: 2 channels of 4x4 latents (4 tokens
// per frame), width 12 with 2 heads (head dim 6: RoPE pairs 1 temporal, 1 height, 1 width),
// 6 frames in blocks of k.
inline cfp::ModelConfig tiny_grad_config(int64_t k, int64_t layers) {
  cfp::ModelConfig c;
  c.channels = 2;
  c.height = 4;
  c.width = 4;
  c.dim = 12;
  c.heads = 2;
  c.ffn_dim = 16;
  c.layers = layers;
  c.freq_dim = 8;
  c.text_dim = 5;
  c.text_len = 3;
  c.frames = 6;
  c.frames_per_block = k;
  return c;
}

// Seeded init plus normal noise (stddev 0.3) on every parameter, biases and norm weights too, so
// every path carries signal.
template <class T>
void randomize(cfp::Model<T>& m, uint64_t seed) {
  m.init(seed);
  auto noise = randn<T>(size_t(m.num_params()), seed + 1, 0.3);
  T* p = m.params().data();
  for (int64_t i = 0; i < m.num_params(); ++i) p[i] += noise[size_t(i)];
}

// Checks the analytic gradient `analytic` of loss(x) w.r.t. the n values at x by central
// differences (every element, or `max_checks` evenly spread ones). Restores x.
inline void grad_check(const std::string& name, double* x, const double* analytic, size_t n,
                       const std::function<double()>& loss, size_t max_checks = 4096) {
  const size_t stride = n > max_checks ? n / max_checks : 1;
  double worst = 0;
  size_t worst_i = 0;
  double worst_num = 0;
  for (size_t i = 0; i < n; i += stride) {
    const double num = central_difference(&x[i], loss);
    const double r = grad_error(analytic[i], num);
    if (!(r <= worst)) {
      worst = r;
      worst_i = i;
      worst_num = num;
    }
  }
  const bool ok = worst <= 1.0;
  if (!ok)
    std::fprintf(stderr, "  %s: element %zu analytic %.10g numeric %.10g\n", name.c_str(), worst_i, analytic[worst_i],
                 worst_num);
  expect(ok, "gradient check " + name);
}

inline int finish(const char* suite) {
  if (failures()) {
    std::fprintf(stderr, "%s: %d failure(s)\n", suite, failures());
    return 1;
  }
  std::printf("%s: all checks passed\n", suite);
  return 0;
}

/** Wan's head dim 128 at a size that runs in seconds (GEMMs of a few hundred): the "mid" model of
 *  the GPU parity test and of the PyTorch reference's weight dump (cuda/tools/cfpipe_ref_dump). */
inline cfp::ModelConfig mid_config() {
  cfp::ModelConfig c;
  c.channels = 16;
  c.dim = 256;
  c.heads = 2;
  c.ffn_dim = 512;
  c.layers = 2;
  c.freq_dim = 64;
  c.text_dim = 64;
  c.text_len = 16;
  c.frames = 6;
  c.height = 16;
  c.width = 16;
  c.frames_per_block = 3;
  return c;
}

}  // namespace cfp_test
