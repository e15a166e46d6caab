// GEMM throughput of the CPU backend beside OpenBLAS on the tiny preset's shapes (and one square
// reference), same thread count, same run. Prints GFLOP/s and the ratio OpenBLAS / ours.
// Built and run by test/bench/native-gemm.sh (not a ctest).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "cpu/gemm.h"

extern "C" void openblas_set_num_threads(int);

namespace {
struct Shape {
  const char* what;
  bool ta, tb;
  int64_t M, N, K;
};

template <class Fn>
double best_seconds(Fn fn, double flops) {
  fn();  // warm-up
  const int reps = std::max(3, static_cast<int>(2e9 / flops));
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  openblas_set_num_threads(threads);
  cfp::ThreadPool pool(threads);
  // Tiny preset, teacher-forcing batch 8: 8 x 18 slots x 16 tokens = 2304 rows, D 64, FFN 256.
  const Shape shapes[] = {
      {"qkv/o forward  x W^T", false, true, 2304, 64, 64},
      {"ffn.0 forward  x W^T", false, true, 2304, 256, 64},
      {"ffn.2 forward  h W^T", false, true, 2304, 64, 256},
      {"ffn.2 dW  dout^T h", true, false, 64, 256, 2304},
      {"ffn.0 dinp  dh W", false, false, 2304, 64, 256},
      {"time proj  e W^T (S=144)", false, true, 144, 384, 64},
      {"square 512", false, false, 512, 512, 512},
      {"Wan-like 4096x1536x1536", false, true, 4096, 1536, 1536},
  };
  std::printf("threads %d\n%-28s %6s %6s %6s %10s %10s %8s\n", threads, "shape", "M", "N", "K", "ours GF/s",
              "BLAS GF/s", "ratio");
  std::mt19937 gen(1);
  std::normal_distribution<float> dist;
  double worst = 0;
  for (const Shape& s : shapes) {
    std::vector<float> A(size_t(s.M * s.K)), B(size_t(s.K * s.N)), C(size_t(s.M * s.N)), C2(C.size());
    for (auto& v : A) v = dist(gen);
    for (auto& v : B) v = dist(gen);
    const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    const double flops = 2.0 * s.M * s.N * s.K;
    const double ours = best_seconds(
        [&] { cfp::cpu_gemm<float>(pool, s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), s.N); },
        flops);
    const double blas = best_seconds(
        [&] {
          cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, int(s.M),
                      int(s.N), int(s.K), 1.0f, A.data(), int(lda), B.data(), int(ldb), 0.0f, C2.data(), int(s.N));
        },
        flops);
    double err = 0;
    for (size_t i = 0; i < C.size(); ++i) err = std::max(err, double(std::fabs(C[i] - C2[i])));
    const double ratio = ours / blas;  // > 1: we are slower
    worst = std::max(worst, ratio);
    std::printf("%-28s %6lld %6lld %6lld %10.1f %10.1f %7.2fx  (max |diff| %.1e)\n", s.what, (long long)s.M,
                (long long)s.N, (long long)s.K, flops / ours * 1e-9, flops / blas * 1e-9, ratio, err);
  }
  std::printf("worst time ratio ours/OpenBLAS: %.2fx (target <= 3x)\n", worst);
  return 0;
}
