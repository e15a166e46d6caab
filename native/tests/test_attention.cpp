// The float attention kernels (AVX2 path, cpu/attention.cpp) against a double reference written
// straight from attn_allowed, for every mask kind, tile-unaligned block sizes, KV-cache strides and
// several head sizes; the backward against the double backend (whose gradients test_ops checks by
// finite differences); bitwise independence from the thread count; the mask intervals themselves.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "cpu/attention.h"
#include "cpu/cpu_backend.h"
#include "math_test_util.h"

using namespace cfp;
using namespace cfp_test;

// Every heap allocation of this process is counted, to check that attention calls allocate nothing
// once their scratch has grown.
static std::atomic<long> g_allocations{0};
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

struct Case {
  std::string name;
  AttnMask mask;
  int64_t B, Tq, Tk, kv_rows, H, hd;
};

std::vector<Case> cases() {
  std::vector<Case> c;
  for (int64_t hd : {8, 16, 24, 32}) {
    const std::string h = " hd=" + std::to_string(hd);
    c.push_back({"full" + h, {MaskKind::full, 0, 0, 0}, 2, 37, 37, 0, 2, hd});
    c.push_back({"cross" + h, {MaskKind::full, 0, 0, 0}, 2, 40, 8, 0, 3, hd});
    c.push_back({"block_causal bt=16" + h, {MaskKind::block_causal, 16, 0, 0}, 2, 80, 80, 0, 2, hd});
    c.push_back({"block_causal bt=6" + h, {MaskKind::block_causal, 6, 0, 0}, 1, 39, 39, 0, 2, hd});
    c.push_back({"teacher_forcing bt=16" + h, {MaskKind::teacher_forcing, 16, 48, 0}, 2, 96, 96, 0, 2, hd});
    c.push_back({"teacher_forcing bt=5" + h, {MaskKind::teacher_forcing, 5, 23, 0}, 1, 46, 46, 0, 2, hd});
    c.push_back({"cache q_offset" + h, {MaskKind::block_causal, 16, 0, 48}, 2, 16, 64, 80, 2, hd});
    c.push_back({"cache full" + h, {MaskKind::full, 0, 0, 0}, 1, 12, 27, 40, 2, hd});
  }
  return c;
}

template <class T>
std::vector<T> to(const std::vector<float>& x) {
  return std::vector<T>(x.begin(), x.end());
}

// out (double) from float inputs, straight from the mask predicate.
void reference(std::vector<double>& out, const std::vector<float>& q, const std::vector<float>& k,
               const std::vector<float>& v, const Case& c, double scale) {
  const int64_t D = c.H * c.hd, kvs = c.kv_rows ? c.kv_rows : c.Tk;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t i = 0; i < c.Tq; ++i) {
        std::vector<double> s(size_t(c.Tk), 0.0);
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.Tk; ++j) {
          if (!attn_allowed(c.mask, i, j)) continue;
          double d = 0;
          for (int64_t e = 0; e < c.hd; ++e)
            d += double(q[size_t((b * c.Tq + i) * D + h * c.hd + e)]) * k[size_t((b * kvs + j) * D + h * c.hd + e)];
          s[size_t(j)] = d * scale;
          mx = std::max(mx, s[size_t(j)]);
        }
        double z = 0;
        for (int64_t j = 0; j < c.Tk; ++j)
          z += (s[size_t(j)] = attn_allowed(c.mask, i, j) ? std::exp(s[size_t(j)] - mx) : 0.0);
        for (int64_t e = 0; e < c.hd; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < c.Tk; ++j) acc += s[size_t(j)] * v[size_t((b * kvs + j) * D + h * c.hd + e)];
          out[size_t((b * c.Tq + i) * D + h * c.hd + e)] = acc / z;
        }
      }
}

double worst_ratio(const std::vector<float>& got, const std::vector<double>& want, double atol, double rtol) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::fabs(double(got[i]) - want[i]) / (atol + rtol * std::fabs(want[i])));
  return worst;
}

struct Data {
  std::vector<float> q, k, v, dout;
};
Data make_data(const Case& c, float logit_gain, uint64_t seed) {
  const int64_t D = c.H * c.hd, kvs = c.kv_rows ? c.kv_rows : c.Tk;
  Data d{randn(size_t(c.B * c.Tq * D), seed), randn(size_t(c.B * kvs * D), seed + 1),
         randn(size_t(c.B * kvs * D), seed + 2), randn(size_t(c.B * c.Tq * D), seed + 3)};
  for (float& x : d.q) x *= logit_gain;
  return d;
}

TEST_CASE(float_forward_matches_double_reference) {
  auto be = make_cpu_backend<float>(2);
  for (const Case& c : cases())
    for (float gain : {1.0f, 6.0f}) {  // gain 6 gives logits of a few tens: exercises the exp range
      const Data d = make_data(c, gain, 11);
      const double scale = 1.0 / std::sqrt(double(c.hd));
      AttnShape sh{c.B, c.Tq, c.Tk, c.H, c.hd, c.kv_rows};
      std::vector<float> out(d.q.size()), lse(size_t(c.B * c.H * c.Tq));
      std::vector<double> ref(d.q.size());
      be->attention_forward(out.data(), lse.data(), d.q.data(), d.k.data(), d.v.data(), sh, c.mask, scale);
      reference(ref, d.q, d.k, d.v, c, scale);
      const double r = worst_ratio(out, ref, 2e-5, 2e-5);
      if (!(r <= 1)) std::fprintf(stderr, "  %s gain %g: worst error ratio %g\n", c.name.c_str(), gain, r);
      CHECK(r <= 1);
    }
}

TEST_CASE(float_backward_matches_double_backend) {
  auto bf = make_cpu_backend<float>(2);
  auto bd = make_cpu_backend<double>(2);
  for (const Case& c : cases()) {
    const Data d = make_data(c, 2.0f, 21);
    const double scale = 1.0 / std::sqrt(double(c.hd));
    AttnShape sh{c.B, c.Tq, c.Tk, c.H, c.hd, c.kv_rows};
    const size_t nl = size_t(c.B * c.H * c.Tq);
    // float
    std::vector<float> out(d.q.size()), lse(nl), dq(d.q.size(), 0.5f), dk(d.k.size(), 0.25f), dv(d.v.size(), -1.0f);
    bf->attention_forward(out.data(), lse.data(), d.q.data(), d.k.data(), d.v.data(), sh, c.mask, scale);
    bf->attention_backward(dq.data(), dk.data(), dv.data(), d.dout.data(), d.q.data(), d.k.data(), d.v.data(),
                           out.data(), lse.data(), sh, c.mask, scale);
    // double, same float inputs
    auto q = to<double>(d.q), k = to<double>(d.k), v = to<double>(d.v), g = to<double>(d.dout);
    std::vector<double> outd(q.size()), lsed(nl), dqd(q.size(), 0.5), dkd(k.size(), 0.25), dvd(v.size(), -1.0);
    bd->attention_forward(outd.data(), lsed.data(), q.data(), k.data(), v.data(), sh, c.mask, scale);
    bd->attention_backward(dqd.data(), dkd.data(), dvd.data(), g.data(), q.data(), k.data(), v.data(), outd.data(),
                           lsed.data(), sh, c.mask, scale);
    double worst_lse = 0;
    for (size_t i = 0; i < nl; ++i) worst_lse = std::max(worst_lse, std::fabs(double(lse[i]) - lsed[i]));
    const double rq = worst_ratio(dq, dqd, 1e-4, 1e-4), rk = worst_ratio(dk, dkd, 1e-4, 1e-4),
                 rv = worst_ratio(dv, dvd, 1e-4, 1e-4);
    if (!(rq <= 1 && rk <= 1 && rv <= 1 && worst_lse < 1e-5))
      std::fprintf(stderr, "  %s: dq %g dk %g dv %g lse %g\n", c.name.c_str(), rq, rk, rv, worst_lse);
    CHECK(worst_lse < 1e-5);
    CHECK(rq <= 1);
    CHECK(rk <= 1);
    CHECK(rv <= 1);
    // Unused kv_rows slots receive no gradient.
    if (c.kv_rows > c.Tk) {
      const int64_t D = c.H * c.hd;
      bool untouched = true;
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t j = c.Tk; j < c.kv_rows; ++j)
          for (int64_t e = 0; e < D; ++e) untouched = untouched && dk[size_t((b * c.kv_rows + j) * D + e)] == 0.25f;
      CHECK(untouched);
    }
  }
}

TEST_CASE(float_results_independent_of_thread_count) {
  for (const Case& c : cases()) {
    const Data d = make_data(c, 2.0f, 31);
    const double scale = 1.0 / std::sqrt(double(c.hd));
    AttnShape sh{c.B, c.Tq, c.Tk, c.H, c.hd, c.kv_rows};
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      auto be = make_cpu_backend<float>(threads);
      std::vector<float> out(d.q.size()), lse(size_t(c.B * c.H * c.Tq)), dq(d.q.size(), 0.0f), dk(d.k.size(), 0.0f),
          dv(d.v.size(), 0.0f);
      be->attention_forward(out.data(), lse.data(), d.q.data(), d.k.data(), d.v.data(), sh, c.mask, scale);
      be->attention_backward(dq.data(), dk.data(), dv.data(), d.dout.data(), d.q.data(), d.k.data(), d.v.data(),
                             out.data(), lse.data(), sh, c.mask, scale);
      std::vector<float> all = out;
      for (auto* x : {&lse, &dq, &dk, &dv}) all.insert(all.end(), x->begin(), x->end());
      if (first.empty())
        first = all;
      else
        CHECK(all == first);
    }
  }
}

TEST_CASE(queries_without_keys_give_zero_and_no_gradient) {
  auto be = make_cpu_backend<float>(2);
  AttnShape sh{1, 9, 0, 2, 8, 4};
  std::vector<float> q = randn(9 * 16, 41), k(4 * 16, 1.0f), out(q.size(), 7.0f), lse(18, 7.0f),
                     dq(q.size(), 3.0f), dk(k.size(), 3.0f), dv(k.size(), 3.0f);
  be->attention_forward(out.data(), lse.data(), q.data(), k.data(), k.data(), sh, AttnMask{}, 0.5);
  bool zero = true, inf = true;
  for (float x : out) zero = zero && x == 0.0f;
  for (float x : lse) inf = inf && std::isinf(x) && x < 0;
  CHECK(zero);
  CHECK(inf);
  be->attention_backward(dq.data(), dk.data(), dv.data(), q.data(), q.data(), k.data(), k.data(), out.data(),
                         lse.data(), sh, AttnMask{}, 0.5);
  bool same = true;
  for (auto* x : {&dq, &dk, &dv})
    for (float y : *x) same = same && y == 3.0f;
  CHECK(same);
}

TEST_CASE(mask_intervals_and_runs_agree_with_attn_allowed) {
  for (const Case& c : cases()) {
    if (c.hd != 8) continue;
    for (int64_t i = 0; i < c.Tq; ++i) {
      const KeyIntervals kr = attn_key_intervals(c.mask, i, c.Tk);
      bool ok = true;
      for (int64_t j = 0; j < c.Tk; ++j) {
        bool in = false;
        for (int r = 0; r < kr.count; ++r) in = in || (j >= kr.lo[r] && j < kr.hi[r]);
        ok = ok && in == attn_allowed(c.mask, i, j);
      }
      CHECK(ok);
      // Every row of a run sees exactly the first row's intervals.
      const int64_t e = attn_run_end(c.mask, i, c.Tq);
      CHECK(e > i && e <= c.Tq);
      for (int64_t i2 = i + 1; i2 < e; ++i2) {
        const KeyIntervals k2 = attn_key_intervals(c.mask, i2, c.Tk);
        bool same = k2.count == kr.count;
        for (int r = 0; same && r < kr.count; ++r) same = k2.lo[r] == kr.lo[r] && k2.hi[r] == kr.hi[r];
        CHECK(same);
      }
    }
  }
}

TEST_CASE(calls_allocate_nothing_after_the_first) {
  auto be = make_cpu_backend<float>(2);
  for (const Case& c : cases()) {
    if (c.hd != 16 && c.hd != 24) continue;
    const Data d = make_data(c, 1.0f, 51);
    AttnShape sh{c.B, c.Tq, c.Tk, c.H, c.hd, c.kv_rows};
    std::vector<float> out(d.q.size()), lse(size_t(c.B * c.H * c.Tq)), dq(d.q.size()), dk(d.k.size()), dv(d.v.size());
    auto step = [&] {
      be->attention_forward(out.data(), lse.data(), d.q.data(), d.k.data(), d.v.data(), sh, c.mask, 0.25);
      be->attention_backward(dq.data(), dk.data(), dv.data(), d.dout.data(), d.q.data(), d.k.data(), d.v.data(),
                             out.data(), lse.data(), sh, c.mask, 0.25);
    };
    step();  // grows the scratch for this shape
    const long before = g_allocations.load();
    step();
    step();
    const long allocated = g_allocations.load() - before;
    if (allocated != 0) std::fprintf(stderr, "  %s: %ld allocations\n", c.name.c_str(), allocated);
    CHECK(allocated == 0);
  }
}

}  // namespace

int main() { return run_all(); }
