// The AVX2 float math of cpu/simd_math.h against double references (error in ulps of the correctly
// rounded float result, swept densely over each function's range), and the float CPU ops built on
// it: values against the double backend, tails of every length, accumulation into the gradient,
// and bitwise independence from the thread count.
// Tests are built with the core's -mavx2 -mfma (native/CMakeLists.txt), so the header's
// intrinsics are available here as in the library.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/simd_math.h"
#include "math_test_util.h"

using namespace cfp;

namespace {

// |got - ref| in units of the spacing of floats at the correctly rounded ref.
double ulps(float got, double ref) {
  const float rf = static_cast<float>(ref);
  const float a = std::fabs(rf);
  const double spacing = a == 0.0f ? double(std::numeric_limits<float>::denorm_min())
                                   : double(std::nextafter(a, std::numeric_limits<float>::infinity())) - double(a);
  return std::fabs(double(got) - ref) / spacing;
}

// Applies a vector function to xs in groups of 8.
std::vector<float> apply(__m256 (*fn)(__m256), const std::vector<float>& xs) {
  std::vector<float> out(xs.size());
  for (size_t i = 0; i < xs.size(); i += 8) {
    const int64_t m = std::min<int64_t>(8, int64_t(xs.size() - i));
    store_n(out.data() + i, fn(load_n(xs.data() + i, m)), m);
  }
  return out;
}

std::vector<float> sweep(float lo, float hi, size_t n) {
  std::vector<float> xs(n);
  for (size_t i = 0; i < n; ++i) xs[i] = lo + (hi - lo) * float(double(i) / double(n - 1));
  return xs;
}

// Largest ulp error of fn over xs against ref, counting only results of at least `floor` in magnitude.
double max_ulps(__m256 (*fn)(__m256), const std::function<double(double)>& ref, const std::vector<float>& xs,
                double floor, float* worst_x) {
  const std::vector<float> got = apply(fn, xs);
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double r = ref(double(xs[i]));
    if (std::fabs(r) < floor) continue;
    const double u = ulps(got[i], r);
    if (u > worst) worst = u, *worst_x = xs[i];
  }
  return worst;
}

// References in double. 0.5 (1 + tanh(u)) cancels for negative u even in double, so they use the
// identical sigmoid form s = 1 / (1 + e^-2u), 1 - s = e^-2u s; gelu_identity checks the two agree.
constexpr double kC = 0.7978845608028654, kA = 0.044715;
double gelu_sigmoid(double x) { return 1 / (1 + std::exp(-2 * kC * (x + kA * x * x * x))); }
double gelu_ref(double x) { return x * gelu_sigmoid(x); }
double gelu_grad_ref(double x) {
  const double s = gelu_sigmoid(x), one_minus_s = std::exp(-2 * kC * (x + kA * x * x * x)) * s;
  return s + x * s * one_minus_s * 2 * kC * (1 + 3 * kA * x * x);
}
double silu_ref(double x) { return x / (1 + std::exp(-x)); }
double silu_grad_ref(double x) {
  const double s = 1 / (1 + std::exp(-x));
  return s * (1 + x * (1 - s));
}

void report(const char* what, double worst, float at, double bound) {
  std::printf("  %-22s max %.2f ulp (at x = %.6g), bound %.1f\n", what, worst, double(at), bound);
  if (!(worst <= bound)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s: %.2f ulp at x = %.9g exceeds %.1f", what, worst, double(at), bound);
    cfp_test::fail(__FILE__, __LINE__, buf);
  }
}

TEST_CASE(exp_ps_within_two_ulp) {
  float at = 0;
  const double e = max_ulps(exp_ps, [](double x) { return std::exp(x); }, sweep(-87.0f, 88.0f, 2000003), 0, &at);
  report("exp", e, at, 2.0);
  // Special inputs: -inf clamps to e^-87 (callers mask such lanes), 0 gives exactly 1.
  const std::vector<float> special = apply(exp_ps, {0.0f, -std::numeric_limits<float>::infinity(), 1.0f});
  CHECK(special[0] == 1.0f);
  CHECK(special[1] > 0.0f && special[1] < 1e-37f);
}

TEST_CASE(gelu_identity) {
  // Where 1 + tanh does not cancel, the tanh form and its derivative equal the sigmoid form.
  for (double x = -3; x <= 6; x += 0.01) {
    const double th = std::tanh(kC * (x + kA * x * x * x));
    CHECK_NEAR(0.5 * x * (1 + th), gelu_ref(x), 1e-13);
    CHECK_NEAR(0.5 * (1 + th) + 0.5 * x * (1 - th * th) * kC * (1 + 3 * kA * x * x), gelu_grad_ref(x), 1e-13);
  }
}

// How much a relative input error of one ulp moves gelu and its derivative, in their own ulps:
// for negative x, gelu ~ x e^-2u(x) is steep in relative terms (e.g. 140 at x = -8.5), so rounding the
// argument of exp alone, like rounding x itself, costs that many ulps. Bounds scale with it.
double gelu_cond(double x) {
  const double s = gelu_sigmoid(x), v1 = 2 * kC * (1 + 3 * kA * x * x);
  return std::fabs(x * gelu_grad_ref(x) / gelu_ref(x)) + std::fabs(x * v1 * (1 - s));
}

TEST_CASE(gelu_tanh_within_few_ulp) {
  float at = 0;
  // Plain ulps where gelu is well conditioned, x >= -1 (tiny x included).
  const double e = max_ulps(gelu_tanh_ps, gelu_ref, sweep(-1.0f, 12.0f, 2000003), 0, &at);
  report("gelu_tanh x >= -1", e, at, 4.0);
  const double e0 = max_ulps(gelu_tanh_ps, gelu_ref, sweep(-1e-3f, 1e-3f, 200001), 0, &at);
  report("gelu_tanh |x| < 1e-3", e0, at, 4.0);
  // Everywhere down to -8.5 (results > 1e-30): ulps per unit of condition number.
  const std::vector<float> xs = sweep(-8.5f, 12.0f, 2000003), y = apply(gelu_tanh_ps, xs), g = apply(gelu_tanh_grad_ps, xs);
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double x = double(xs[i]);
    const double u = ulps(y[i], gelu_ref(x)) / std::max(1.0, gelu_cond(x));
    if (u > worst) worst = u, at = xs[i];
  }
  report("gelu_tanh ulp/cond", worst, at, 4.0);
  // The derivative s + x s (1 - s) v' crosses zero near x = -0.75, where its two terms cancel: errors
  // count in units of 2^-23 max(|ref|, s), an ulp of the larger of the result and its leading term,
  // per unit of condition number.
  worst = 0;
  double worst_well = 0;
  float at_well = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double x = double(xs[i]), r = gelu_grad_ref(x);
    const double e1 = std::fabs(double(g[i]) - r) / (std::max(std::fabs(r), gelu_sigmoid(x)) * std::ldexp(1.0, -23));
    if (x >= -1 && e1 > worst_well) worst_well = e1, at_well = xs[i];
    const double ec = e1 / std::max(1.0, gelu_cond(x));
    if (ec > worst) worst = ec, at = xs[i];
  }
  report("gelu_tanh grad x >= -1", worst_well, at_well, 4.0);
  report("gelu_tanh grad ulp/cond", worst, at, 4.0);
  // Far tails: +x passes through; far negative x (where exp's input clamp applies) gives finite
  // values that are zero for any practical purpose (the true ones underflow).
  const std::vector<float> tails = apply(gelu_tanh_ps, {30.0f, 1e4f, -30.0f, -1e4f});
  CHECK(tails[0] == 30.0f && tails[1] == 1e4f);
  CHECK(std::fabs(tails[2]) < 1e-30f && std::fabs(tails[3]) < 1e-30f);
  const std::vector<float> gt = apply(gelu_tanh_grad_ps, {30.0f, 1e4f, -30.0f, -1e4f});
  CHECK(gt[0] == 1.0f && gt[1] == 1.0f);
  CHECK(std::isfinite(gt[2]) && std::fabs(gt[2]) < 1e-30f && std::isfinite(gt[3]) && std::fabs(gt[3]) < 1e-20f);
}

TEST_CASE(silu_within_few_ulp) {
  float at = 0;
  const double e = max_ulps(silu_ps, silu_ref, sweep(-80.0f, 80.0f, 2000003), 1e-30, &at);
  report("silu", e, at, 4.0);
  const std::vector<float> xs = sweep(-80.0f, 80.0f, 2000003), g = apply(silu_grad_ps, xs);
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double r = silu_grad_ref(double(xs[i]));
    const double s = 1 / (1 + std::exp(-double(xs[i])));
    const double e = std::fabs(double(g[i]) - r) / (std::max(std::fabs(r), s) * std::ldexp(1.0, -23));
    if (e > worst) worst = e, at = xs[i];
  }
  report("silu grad", worst, at, 4.0);
}

// The float backend ops: every length 1..40 (all tail sizes, on both sides of a group) and one large
// odd length that splits across threads; forward and accumulated backward against the double
// backend, and bitwise equal on 1 and 2 threads.
TEST_CASE(float_activation_ops_match_double_and_threads) {
  auto f1 = make_cpu_backend<float>(1), f2 = make_cpu_backend<float>(2);
  auto d1 = make_cpu_backend<double>(1);
  std::mt19937 gen(7);
  std::normal_distribution<double> nd(0.0, 2.0);
  std::vector<int64_t> lengths;
  for (int64_t n = 1; n <= 40; ++n) lengths.push_back(n);
  lengths.push_back(3 * 16384 + 5);
  struct Op {
    const char* name;
    void (Backend<float>::*fwd)(float*, const float*, int64_t);
    void (Backend<float>::*bwd)(float*, const float*, const float*, int64_t);
    void (Backend<double>::*fwd_d)(double*, const double*, int64_t);
    void (Backend<double>::*bwd_d)(double*, const double*, const double*, int64_t);
  } ops[] = {
      {"gelu_tanh", &Backend<float>::gelu_tanh_forward, &Backend<float>::gelu_tanh_backward,
       &Backend<double>::gelu_tanh_forward, &Backend<double>::gelu_tanh_backward},
      {"silu", &Backend<float>::silu_forward, &Backend<float>::silu_backward, &Backend<double>::silu_forward,
       &Backend<double>::silu_backward},
  };
  for (const Op& op : ops)
    for (int64_t n : lengths) {
      const size_t un = static_cast<size_t>(n);
      std::vector<float> x(un), d(un), acc(un);
      for (size_t i = 0; i < x.size(); ++i) x[i] = float(nd(gen)), d[i] = float(nd(gen)), acc[i] = float(nd(gen));
      std::vector<double> xd(x.begin(), x.end()), dd(d.begin(), d.end()), accd(acc.begin(), acc.end());
      // One guard element past the end must stay untouched.
      std::vector<float> y1(un + 1, 42.0f), y2 = y1, g1 = acc, g2 = acc;
      g1.push_back(42.0f), g2.push_back(42.0f);
      std::vector<double> yd(un), gd = accd;
      ((*f1).*op.fwd)(y1.data(), x.data(), n);
      ((*f2).*op.fwd)(y2.data(), x.data(), n);
      ((*f1).*op.bwd)(g1.data(), x.data(), d.data(), n);
      ((*f2).*op.bwd)(g2.data(), x.data(), d.data(), n);
      ((*d1).*op.fwd_d)(yd.data(), xd.data(), n);
      ((*d1).*op.bwd_d)(gd.data(), xd.data(), dd.data(), n);
      CHECK(std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(float)) == 0);
      CHECK(y1[size_t(n)] == 42.0f && g1[size_t(n)] == 42.0f);
      double ey = 0, eg = 0;
      for (size_t i = 0; i < size_t(n); ++i) {
        ey = std::max(ey, std::fabs(double(y1[i]) - yd[i]) / std::max(1.0, std::fabs(yd[i])));
        eg = std::max(eg, std::fabs(double(g1[i]) - gd[i]) / std::max(1.0, std::fabs(gd[i])));
      }
      if (!(ey < 1e-6 && eg < 1e-6)) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "%s n=%lld: forward err %.3g, backward err %.3g vs double", op.name,
                      (long long)n, ey, eg);
        cfp_test::fail(__FILE__, __LINE__, buf);
      }
    }
}


// The float row/column kernels (norms, modulation, gated residual, bias gradient) against the double
// backend on widths with and without a tail of columns, with rows enough to split across threads;
// bitwise equal on 1 and 2 threads; gradients accumulate into what is there.
struct Both {
  std::vector<float> f1, f2;
  std::vector<double> d;
  explicit Both(size_t n, std::mt19937& gen, double sd = 1.0) : f1(n), d(n) {
    std::normal_distribution<double> nd(0.0, sd);
    for (size_t i = 0; i < n; ++i) f1[i] = float(nd(gen)), d[i] = f1[i];
    f2 = f1;
  }
  void check(const char* what, int64_t C) const {
    CHECK(std::memcmp(f1.data(), f2.data(), f1.size() * sizeof(float)) == 0);
    double err = 0;
    for (size_t i = 0; i < d.size(); ++i) err = std::max(err, std::fabs(double(f1[i]) - d[i]) / std::max(1.0, std::fabs(d[i])));
    if (!(err < 2e-5)) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s C=%lld: max error %.3g vs double (or threads differ)", what, (long long)C, err);
      cfp_test::fail(__FILE__, __LINE__, buf);
    }
  }
};

TEST_CASE(float_row_ops_match_double_and_threads) {
  auto f1 = make_cpu_backend<float>(1), f2 = make_cpu_backend<float>(2);
  auto dd = make_cpu_backend<double>(1);
  std::mt19937 gen(11);
  for (int64_t C : {5, 8, 13, 64, 70}) {
    const int64_t S = 3, Lf = 200, N = S * Lf, ms = C + 3;
    const size_t nc = size_t(N * C);
    for (int affine = 0; affine < 3; ++affine) {  // none, weight only, weight and bias
      Both x(nc, gen, 2.0), w(size_t(C), gen), b(size_t(C), gen), out(nc, gen), mean(size_t(N), gen), rstd(size_t(N), gen);
      Both dout(nc, gen), dx(nc, gen), dw(size_t(C), gen), db(size_t(C), gen);
      for (auto* v : {&x}) v->f1[0] += 3.0f, v->f2[0] += 3.0f, v->d[0] += 3.0;
      const bool W = affine > 0, B = affine > 1;
      f1->layernorm_forward(out.f1.data(), mean.f1.data(), rstd.f1.data(), x.f1.data(), W ? w.f1.data() : nullptr, B ? b.f1.data() : nullptr, N, C, 1e-6);
      f2->layernorm_forward(out.f2.data(), mean.f2.data(), rstd.f2.data(), x.f2.data(), W ? w.f2.data() : nullptr, B ? b.f2.data() : nullptr, N, C, 1e-6);
      dd->layernorm_forward(out.d.data(), mean.d.data(), rstd.d.data(), x.d.data(), W ? w.d.data() : nullptr, B ? b.d.data() : nullptr, N, C, 1e-6);
      out.check("layernorm out", C), mean.check("layernorm mean", C), rstd.check("layernorm rstd", C);
      f1->layernorm_backward(dx.f1.data(), W ? dw.f1.data() : nullptr, B ? db.f1.data() : nullptr, dout.f1.data(), x.f1.data(), W ? w.f1.data() : nullptr, mean.f1.data(), rstd.f1.data(), N, C);
      f2->layernorm_backward(dx.f2.data(), W ? dw.f2.data() : nullptr, B ? db.f2.data() : nullptr, dout.f2.data(), x.f2.data(), W ? w.f2.data() : nullptr, mean.f2.data(), rstd.f2.data(), N, C);
      dd->layernorm_backward(dx.d.data(), W ? dw.d.data() : nullptr, B ? db.d.data() : nullptr, dout.d.data(), x.d.data(), W ? w.d.data() : nullptr, mean.d.data(), rstd.d.data(), N, C);
      dx.check("layernorm dx", C), dw.check("layernorm dweight", C), db.check("layernorm dbias", C);
    }
    {
      Both x(nc, gen, 2.0), w(size_t(C), gen), out(nc, gen), rstd(size_t(N), gen), dout(nc, gen), dx(nc, gen), dw(size_t(C), gen);
      f1->rmsnorm_forward(out.f1.data(), rstd.f1.data(), x.f1.data(), w.f1.data(), N, C, 1e-6);
      f2->rmsnorm_forward(out.f2.data(), rstd.f2.data(), x.f2.data(), w.f2.data(), N, C, 1e-6);
      dd->rmsnorm_forward(out.d.data(), rstd.d.data(), x.d.data(), w.d.data(), N, C, 1e-6);
      out.check("rmsnorm out", C), rstd.check("rmsnorm rstd", C);
      f1->rmsnorm_backward(dx.f1.data(), dw.f1.data(), dout.f1.data(), x.f1.data(), w.f1.data(), rstd.f1.data(), N, C);
      f2->rmsnorm_backward(dx.f2.data(), dw.f2.data(), dout.f2.data(), x.f2.data(), w.f2.data(), rstd.f2.data(), N, C);
      dd->rmsnorm_backward(dx.d.data(), dw.d.data(), dout.d.data(), x.d.data(), w.d.data(), rstd.d.data(), N, C);
      dx.check("rmsnorm dx", C), dw.check("rmsnorm dweight", C);
    }
    {
      Both x(nc, gen), sh(size_t(S * ms), gen), sc(size_t(S * ms), gen), dout(nc, gen), dx(nc, gen), dsh(size_t(S * ms), gen),
          dsc(size_t(S * ms), gen), db(size_t(C), gen), y(nc, gen), dy(nc, gen), dg(size_t(S * ms), gen);
      f1->modulate_backward(dx.f1.data(), dsh.f1.data(), dsc.f1.data(), dout.f1.data(), x.f1.data(), sc.f1.data(), ms, S, Lf, C);
      f2->modulate_backward(dx.f2.data(), dsh.f2.data(), dsc.f2.data(), dout.f2.data(), x.f2.data(), sc.f2.data(), ms, S, Lf, C);
      dd->modulate_backward(dx.d.data(), dsh.d.data(), dsc.d.data(), dout.d.data(), x.d.data(), sc.d.data(), ms, S, Lf, C);
      dx.check("modulate dx", C), dsh.check("modulate dshift", C), dsc.check("modulate dscale", C);
      f1->gate_residual_backward(dy.f1.data(), dg.f1.data(), dout.f1.data(), y.f1.data(), sc.f1.data(), ms, S, Lf, C);
      f2->gate_residual_backward(dy.f2.data(), dg.f2.data(), dout.f2.data(), y.f2.data(), sc.f2.data(), ms, S, Lf, C);
      dd->gate_residual_backward(dy.d.data(), dg.d.data(), dout.d.data(), y.d.data(), sc.d.data(), ms, S, Lf, C);
      dy.check("gate_residual dy", C), dg.check("gate_residual dgate", C);
      f1->bias_backward(db.f1.data(), dout.f1.data(), N, C);
      f2->bias_backward(db.f2.data(), dout.f2.data(), N, C);
      dd->bias_backward(db.d.data(), dout.d.data(), N, C);
      db.check("bias_backward", C);
    }
  }
}

}  // namespace

int main() { return cfp_test::run_all(); }
