// A minimal check harness for the model engineer's C++ tests (ops, model, objectives).
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

// Checks the analytic gradient `analytic` of loss(x) w.r.t. the n values at x by central
// differences (every element, or `max_checks` evenly spread ones). Restores x.
inline void grad_check(const std::string& name, double* x, const double* analytic, size_t n,
                       const std::function<double()>& loss, size_t max_checks = 4096) {
  const size_t stride = n > max_checks ? n / max_checks : 1;
  double worst = 0;
  size_t worst_i = 0;
  double worst_num = 0;
  for (size_t i = 0; i < n; i += stride) {
    const double keep = x[i];
    x[i] = keep + kFdStep;
    const double lp = loss();
    x[i] = keep - kFdStep;
    const double lm = loss();
    x[i] = keep;
    const double num = (lp - lm) / (2 * kFdStep);
    const double r = std::fabs(analytic[i] - num) / (kGradAtol + kGradRtol * std::fabs(num));
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

}  // namespace cfp_test
