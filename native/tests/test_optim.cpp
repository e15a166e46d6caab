// AdamW (PyTorch semantics), grad-norm clipping and EMA against hand-computed values and a
// double-precision reference written out in the test.
#include <cmath>
#include <cstring>
#include <vector>

#include "core/optim.h"
#include "core/rng.h"
#include "tests/math_test_util.h"

using namespace cfp;

namespace {

// Textbook AdamW (Loshchilov & Hutter, as PyTorch implements it) in double.
struct RefAdamW {
  std::vector<double> p, m, v;
  void step(const std::vector<double>& g, const AdamWConfig& c, int t) {
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] -= c.lr * c.weight_decay * p[i];
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * g[i] * g[i];
      const double mhat = m[i] / (1 - std::pow(c.beta1, t));
      const double vhat_sqrt = std::sqrt(v[i]) / std::sqrt(1 - std::pow(c.beta2, t));
      p[i] -= c.lr * mhat / (vhat_sqrt + c.eps);
    }
  }
};

std::vector<float> normals(uint64_t seed, size_t n, float std = 1.0f) {
  std::vector<float> out(n);
  Philox(seed).fill_normal(out.data(), n, 0.0f, std);
  return out;
}

}  // namespace

TEST_CASE(adamw_hand_computed_first_step) {
  // p0 = 1, g = 0.5, lr 0.1, wd 0.01, betas (0.9, 0.999): decay to 0.999, m = 0.05, v = 2.5e-4,
  // m_hat = 0.5, sqrt(v_hat) = 0.5, so p1 = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.899.
  float p = 1.0f, m = 0.0f, v = 0.0f;
  const float g = 0.5f;
  adamw_update({AdamWSlot{&p, &g, &m, &v, 1}}, AdamWConfig{0.1, 0.9, 0.999, 1e-8, 0.01}, 1);
  CHECK_NEAR(p, 0.899, 1e-6);
  CHECK_NEAR(m, 0.05, 1e-8);
  CHECK_NEAR(v, 2.5e-4, 1e-10);
  // beta1 = 0 (the Causal Forcing generator/critic setting): m is exactly the gradient.
  float p2 = -2.0f, m2 = 123.0f, v2 = 0.0f;
  const float g2 = -0.375f;
  adamw_update({AdamWSlot{&p2, &g2, &m2, &v2, 1}}, AdamWConfig{2e-6, 0.0, 0.999, 1e-8, 0.01}, 1);
  CHECK(m2 == g2);
  // First step moves by about lr * sign(g) after the decoupled decay.
  CHECK_NEAR(p2, -2.0 * (1 - 2e-8) + 2e-6, 3e-7);  // float ulp at 2 is 2.4e-7
}

TEST_CASE(adamw_matches_double_reference_over_steps) {
  const size_t n = 1000;
  for (const AdamWConfig& cfg : {AdamWConfig{1e-3, 0.9, 0.999, 1e-8, 0.01}, AdamWConfig{2e-2, 0.0, 0.999, 1e-8, 0.1}}) {
    std::vector<float> p = normals(1, n), m(n, 0.0f), v(n, 0.0f);
    RefAdamW ref{std::vector<double>(p.begin(), p.end()), std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
    for (int t = 1; t <= 20; ++t) {
      const std::vector<float> g = normals(100 + t, n, 0.1f);
      // Two slots over halves of the same buffers: the split must not matter.
      adamw_update({AdamWSlot{p.data(), g.data(), m.data(), v.data(), 400},
                    AdamWSlot{p.data() + 400, g.data() + 400, m.data() + 400, v.data() + 400, 600}},
                   cfg, t);
      ref.step(std::vector<double>(g.begin(), g.end()), cfg, t);
    }
    // Float rounding of p each step: allow about one ulp of |p| per step (20 steps), while the
    // updates themselves move p by ~lr per step.
    double worst = 0.0;
    for (size_t i = 0; i < n; ++i)
      worst = std::max(worst, std::fabs(p[i] - ref.p[i]) / (20 * 1.1920929e-7 * std::max(1.0, std::fabs(ref.p[i]))));
    CHECK_NEAR(worst, 0.0, 1.0);
  }
}

TEST_CASE(adamw_resume_is_bitwise) {
  const int64_t n = 257;
  const AdamWConfig cfg{1e-2, 0.9, 0.999, 1e-8, 0.01};
  std::vector<float> p_full = normals(7, n);
  std::vector<float> p_resumed = p_full;
  AdamW full(cfg, n);
  AdamW first(cfg, n);
  for (int t = 0; t < 3; ++t) {
    const std::vector<float> g = normals(50 + t, n);
    full.step(p_full.data(), g.data());
    first.step(p_resumed.data(), g.data());
  }
  // "Checkpoint": copy the moments and the count into a fresh optimizer.
  AdamW second(cfg, n);
  second.restore(first.exp_avg().data(), first.exp_avg_sq().data(), first.steps());
  for (int t = 3; t < 6; ++t) {
    const std::vector<float> g = normals(50 + t, n);
    full.step(p_full.data(), g.data());
    second.step(p_resumed.data(), g.data());
  }
  CHECK(full.steps() == 6 && second.steps() == 6);
  CHECK(std::memcmp(p_full.data(), p_resumed.data(), n * sizeof(float)) == 0);
  CHECK(std::memcmp(full.exp_avg_sq().data(), second.exp_avg_sq().data(), n * sizeof(float)) == 0);
  CHECK_THROWS(adamw_update({}, cfg, 0));
}

TEST_CASE(grad_norm_and_clip) {
  std::vector<float> a = {3.0f, 4.0f}, b = {12.0f};
  CHECK_NEAR(grad_norm({GradSlot{a.data(), 2}, GradSlot{b.data(), 1}}), 13.0, 1e-12);
  // Below max_norm: untouched, bitwise.
  const double n1 = clip_grad_norm({GradSlot{a.data(), 2}, GradSlot{b.data(), 1}}, 100.0);
  CHECK(n1 == 13.0 && a[0] == 3.0f && a[1] == 4.0f && b[0] == 12.0f);
  // Above: scaled by max_norm / (total + 1e-6); the pre-clip norm is returned.
  const double n2 = clip_grad_norm({GradSlot{a.data(), 2}, GradSlot{b.data(), 1}}, 1.0);
  CHECK(n2 == 13.0);
  const double coef = 1.0 / (13.0 + 1e-6);
  CHECK_NEAR(a[0], 3.0 * coef, 1e-7);
  CHECK_NEAR(b[0], 12.0 * coef, 1e-7);
  CHECK_NEAR(grad_norm({GradSlot{a.data(), 2}, GradSlot{b.data(), 1}}), 1.0, 1e-6);
  // A large random buffer against a double reference.
  std::vector<float> g = normals(3, 100003, 0.5f);
  double ref = 0.0;
  for (float x : g) ref += double(x) * x;
  CHECK_NEAR(grad_norm({GradSlot{g.data(), (int64_t)g.size()}}), std::sqrt(ref), 1e-9 * std::sqrt(ref));
  // Non-finite norms leave the gradients alone.
  std::vector<float> bad = {1.0f, INFINITY};
  CHECK(std::isinf(clip_grad_norm({GradSlot{bad.data(), 2}}, 1.0)));
  CHECK(bad[0] == 1.0f);
  CHECK_THROWS(clip_grad_norm({GradSlot{a.data(), 2}}, 0.0));
}

TEST_CASE(ema_update_and_start_step) {
  float s = 1.0f;
  const float p = 0.0f;
  ema_update(&s, &p, 1, 0.99);
  CHECK_NEAR(s, 0.99, 1e-7);
  // DMD: created at step >= 200 as a copy, then blended after each generator update.
  Ema ema(0.99, 200);
  std::vector<float> params = {2.0f, -4.0f};
  CHECK(!ema.maybe_start(199, params.data(), 2));
  ema.update(params.data(), 2);  // inactive: no-op
  CHECK(ema.shadow().empty());
  CHECK(ema.maybe_start(200, params.data(), 2));
  CHECK(ema.shadow()[0] == 2.0f && ema.shadow()[1] == -4.0f);
  params = {3.0f, -2.0f};
  CHECK(ema.maybe_start(201, params.data(), 2));  // already active: the shadow is kept
  CHECK(ema.shadow()[0] == 2.0f);
  ema.update(params.data(), 2);
  CHECK_NEAR(ema.shadow()[0], 0.99 * 2.0 + 0.01 * 3.0, 1e-6);
  CHECK_NEAR(ema.shadow()[1], 0.99 * -4.0 + 0.01 * -2.0, 1e-6);
  // Causal CD: start 0, so a 0.99 shadow after k updates toward a constant c is c + (s0 - c) 0.99^k.
  Ema cd(0.99, 0);
  const float zero = 0.0f, one = 1.0f;
  cd.maybe_start(0, &one, 1);
  for (int k = 0; k < 50; ++k) cd.update(&zero, 1);
  CHECK_NEAR(cd.shadow()[0], std::pow(0.99, 50), 1e-5);
  Ema restored(0.99, 200);
  restored.restore(ema.shadow().data(), 2);
  CHECK(restored.active() && restored.shadow() == ema.shadow());
  CHECK_THROWS(Ema(1.5, 0));
}

TEST_MAIN()
