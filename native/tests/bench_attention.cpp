// Masked attention time on the tiny preset's shapes (batch 8, 4 heads, head size 16, 16 tokens per
// frame, 9 frames): the backend's kernels (cpu/attention.cpp) beside the previous per-pair scalar
// kernel, kept here as the baseline and measured in the same run. Prints the largest difference
// between the two outputs too. Built and run by test/bench/native-attention.sh (not a ctest).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <vector>

#include "cpu/attention.h"
#include "cpu/cpu_backend.h"
#include "cpu/thread_pool.h"
#include "bench_util.h"

using namespace cfp;
using cfp_bench::best_ms;
using cfp_bench::randn;

namespace {

// ---- the baseline: the scalar kernel the CPU backend had before (one exp and one mask decision
// per query-key pair, double accumulators, backward split over batch x head only).
float dot8(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void baseline_forward(ThreadPool& pool, float* out, float* lse, const float* q, const float* k, const float* v,
                      const AttnShape& sh, const AttnMask& mask, double scale) {
  const int64_t D = sh.H * sh.hd, hd = sh.hd, Tq = sh.Tq, Tk = sh.Tk, kvs = sh.kv_stride();
  pool.parallel_for(sh.B * sh.H * Tq, 8, [&](int64_t t0, int64_t t1) {
    std::vector<float> p(static_cast<size_t>(Tk));
    std::vector<double> acc(static_cast<size_t>(hd));
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t i = task % Tq, h = (task / Tq) % sh.H, b = task / (Tq * sh.H);
      const float* qi = q + (b * Tq + i) * D + h * hd;
      const float* kb = k + b * kvs * D + h * hd;
      const float* vb = v + b * kvs * D + h * hd;
      float* oi = out + (b * Tq + i) * D + h * hd;
      const KeyIntervals kr = attn_key_intervals(mask, i, Tk);
      float mx = -std::numeric_limits<float>::infinity();
      for (int r = 0; r < kr.count; ++r)
        for (int64_t j = kr.lo[r]; j < kr.hi[r]; ++j) {
          const float s = static_cast<float>(scale) * dot8(qi, kb + j * D, hd);
          p[size_t(j)] = s;
          mx = std::max(mx, s);
        }
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int r = 0; r < kr.count; ++r)
        for (int64_t j = kr.lo[r]; j < kr.hi[r]; ++j) {
          const float e = std::exp(p[size_t(j)] - mx);
          sum += e;
          for (int64_t d = 0; d < hd; ++d) acc[size_t(d)] += double(e) * vb[j * D + d];
        }
      for (int64_t d = 0; d < hd; ++d) oi[d] = static_cast<float>(acc[size_t(d)] / sum);
      lse[(b * sh.H + h) * Tq + i] = static_cast<float>(double(mx) + std::log(sum));
    }
  });
}

void baseline_backward(ThreadPool& pool, float* dq, float* dk, float* dv, const float* dout, const float* q,
                       const float* k, const float* v, const float* out, const float* lse, const AttnShape& sh,
                       const AttnMask& mask, double scale) {
  const int64_t D = sh.H * sh.hd, hd = sh.hd, Tq = sh.Tq, Tk = sh.Tk, kvs = sh.kv_stride();
  pool.parallel_for(sh.B * sh.H, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> dqi(static_cast<size_t>(hd));
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t h = task % sh.H, b = task / sh.H;
      const float* kb = k + b * kvs * D + h * hd;
      const float* vb = v + b * kvs * D + h * hd;
      float* dkb = dk + b * kvs * D + h * hd;
      float* dvb = dv + b * kvs * D + h * hd;
      for (int64_t i = 0; i < Tq; ++i) {
        const float l = lse[(b * sh.H + h) * Tq + i];
        const float* qi = q + (b * Tq + i) * D + h * hd;
        const float* doi = dout + (b * Tq + i) * D + h * hd;
        const float* oi = out + (b * Tq + i) * D + h * hd;
        double dd = 0;
        for (int64_t d = 0; d < hd; ++d) dd += double(doi[d]) * oi[d];
        const float Di = static_cast<float>(dd);
        std::fill(dqi.begin(), dqi.end(), 0.0f);
        const KeyIntervals kr = attn_key_intervals(mask, i, Tk);
        for (int r = 0; r < kr.count; ++r)
          for (int64_t j = kr.lo[r]; j < kr.hi[r]; ++j) {
            const float pij = std::exp(static_cast<float>(scale) * dot8(qi, kb + j * D, hd) - l);
            const float dp = dot8(doi, vb + j * D, hd);
            const float ds = pij * (dp - Di) * static_cast<float>(scale);
            const float* kj = kb + j * D;
            for (int64_t d = 0; d < hd; ++d) dqi[size_t(d)] += ds * kj[d];
            for (int64_t d = 0; d < hd; ++d) dkb[j * D + d] += ds * qi[d];
            for (int64_t d = 0; d < hd; ++d) dvb[j * D + d] += pij * doi[d];
          }
        float* dqo = dq + (b * Tq + i) * D + h * hd;
        for (int64_t d = 0; d < hd; ++d) dqo[d] += dqi[size_t(d)];
      }
    }
  });
}

struct BenchShape {
  const char* name;
  AttnMask mask;
  int64_t Tq, Tk, kv_rows;
};

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int64_t B = argc > 2 ? std::atoll(argv[2]) : 8;
  const int reps = 7;
  const int64_t H = 4, hd = 16, D = H * hd, Lf = 16, F = 9, L = F * Lf;
  const double scale = 1.0 / std::sqrt(double(hd));
  auto be = make_cpu_backend<float>(threads);
  ThreadPool pool(threads);
  std::printf("attention on the tiny preset's shapes: batch %lld, %lld heads x %lld, %d threads, best of %d\n",
              (long long)B, (long long)H, (long long)hd, threads, reps);
  std::printf("%-30s %10s %10s %7s   %10s %10s %7s   %9s\n", "shape", "fwd base", "fwd new", "speedup", "f+b base",
              "f+b new", "speedup", "max|diff|");
  const BenchShape shapes[] = {
      {"self TF k=1 (288x288)", {MaskKind::teacher_forcing, Lf, L, 0}, 2 * L, 2 * L, 0},
      {"self TF k=3 (288x288)", {MaskKind::teacher_forcing, 3 * Lf, L, 0}, 2 * L, 2 * L, 0},
      {"self block-causal k=3 (144)", {MaskKind::block_causal, 3 * Lf, 0, 0}, L, L, 0},
      {"self full (144)", {MaskKind::full, 0, 0, 0}, L, L, 0},
      {"cross TF (288x8)", {MaskKind::full, 0, 0, 0}, 2 * L, 8, 0},
      {"stream last block k=3 (48x144)", {MaskKind::full, 0, 0, 0}, 3 * Lf, L, L},
  };
  double tot_base = 0, tot_new = 0;
  for (const BenchShape& s : shapes) {
    AttnShape sh{B, s.Tq, s.Tk, H, hd, s.kv_rows};
    const int64_t kvs = sh.kv_stride();
    auto q = randn(size_t(B * s.Tq * D), 1), k = randn(size_t(B * kvs * D), 2), v = randn(size_t(B * kvs * D), 3),
         g = randn(size_t(B * s.Tq * D), 4);
    std::vector<float> o1(q.size()), o2(q.size()), l1(size_t(B * H * s.Tq)), l2(l1.size()), dq(q.size()),
        dk(k.size()), dv(v.size()), dq2(q.size()), dk2(k.size()), dv2(v.size());
    const double fb = best_ms([&] { baseline_forward(pool, o1.data(), l1.data(), q.data(), k.data(), v.data(), sh, s.mask, scale); }, reps);
    const double fn = best_ms([&] { be->attention_forward(o2.data(), l2.data(), q.data(), k.data(), v.data(), sh, s.mask, scale); }, reps);
    const double bb = best_ms([&] {
      baseline_forward(pool, o1.data(), l1.data(), q.data(), k.data(), v.data(), sh, s.mask, scale);
      std::fill(dq.begin(), dq.end(), 0.0f), std::fill(dk.begin(), dk.end(), 0.0f), std::fill(dv.begin(), dv.end(), 0.0f);
      baseline_backward(pool, dq.data(), dk.data(), dv.data(), g.data(), q.data(), k.data(), v.data(), o1.data(), l1.data(), sh, s.mask, scale);
    }, reps);
    const double bn = best_ms([&] {
      be->attention_forward(o2.data(), l2.data(), q.data(), k.data(), v.data(), sh, s.mask, scale);
      std::fill(dq2.begin(), dq2.end(), 0.0f), std::fill(dk2.begin(), dk2.end(), 0.0f), std::fill(dv2.begin(), dv2.end(), 0.0f);
      be->attention_backward(dq2.data(), dk2.data(), dv2.data(), g.data(), q.data(), k.data(), v.data(), o2.data(), l2.data(), sh, s.mask, scale);
    }, reps);
    double diff = 0;
    for (size_t i = 0; i < o1.size(); ++i) diff = std::max(diff, double(std::fabs(o1[i] - o2[i])));
    for (size_t i = 0; i < dq.size(); ++i) diff = std::max(diff, double(std::fabs(dq[i] - dq2[i])));
    for (size_t i = 0; i < dk.size(); ++i) diff = std::max({diff, double(std::fabs(dk[i] - dk2[i])), double(std::fabs(dv[i] - dv2[i]))});
    std::printf("%-30s %8.3fms %8.3fms %6.1fx   %8.3fms %8.3fms %6.1fx   %9.2e\n", s.name, fb, fn, fb / fn, bb, bn, bb / bn, diff);
    tot_base += bb;
    tot_new += bn;
  }
  std::printf("%-30s %43s %8.3fms %8.3fms %6.1fx\n", "all shapes, fwd+bwd", "", tot_base, tot_new, tot_base / tot_new);
  return 0;
}
