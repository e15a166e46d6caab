// Shared by the CPU benchmarks (bench_attention.cpp, bench_step.cpp): best-of-N wall time and
// seeded normal inputs. Benchmarks are built by test/bench/native-*.sh, not by ctest.
#pragma once
#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <vector>

namespace cfp_bench {

// Best wall time (ms) of `reps` runs of `fn` after one warm-up run.
inline double best_ms(const std::function<void()>& fn, int reps) {
  fn();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// n standard normal floats from a 32-bit Mersenne Twister seeded with `seed`.
inline std::vector<float> randn(size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

}  // namespace cfp_bench
