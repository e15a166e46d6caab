// Samplers on an exactly solvable flow: when the data are x0 ~ N(mu, s^2) per element, the
// flow-matching velocity is known in closed form,
//   v(x, sigma) = -mu + (sigma - (1 - sigma) s^2) (x - (1 - sigma) mu) / D,  D = (1 - sigma)^2 s^2 + sigma^2,
// and the PF-ODE from x at sigma_0 ends at mu + s z with z = (x - (1 - sigma_0) mu) / sqrt(D_0).
// This checks the solvers' accuracy and order, the CFG combination, the RNG consumption order,
// and the network-call counts of spec §3.10. (The real model's KV/TF agreement is in
// test_samplers_model.cpp.)
#include <cmath>
#include <cstring>
#include <vector>

#include "core/samplers.h"
#include "cpu/cpu_backend.h"
#include "tests/math_test_util.h"

using namespace cfp;

namespace {

struct Gaussian {
  double mu, s;
  double flow(double x, double sigma) const {
    const double d = (1 - sigma) * (1 - sigma) * s * s + sigma * sigma;
    return -mu + (sigma - (1 - sigma) * s * s) * (x - (1 - sigma) * mu) / d;
  }
  double endpoint(double x, double sigma0) const {
    const double d = (1 - sigma0) * (1 - sigma0) * s * s + sigma0 * sigma0;
    return mu + s * (x - (1 - sigma0) * mu) / std::sqrt(d);
  }
};

struct Call {
  int context;
  int64_t start, n;
  float t;
  bool teacher_forcing;
  std::vector<float> x;  // the input it saw
};

// The exact flow per element, with sigma = t / 1000 like a network reading its timestep;
// cond and uncond are two different Gaussians. Records every call.
class GaussianNet : public FlowNet {
 public:
  GaussianNet(Backend<float>& be, int64_t B, int64_t F, int64_t N, Gaussian cond, Gaussian uncond)
      : be_(be), B_(B), F_(F), N_(N), g_{cond, uncond} {}
  Backend<float>& backend() override { return be_; }
  int64_t batch() const override { return B_; }
  int64_t frames() const override { return F_; }
  int64_t frame_numel() const override { return N_; }
  void stream(int context, float* flow, const float* x, const float* t, int64_t start, int64_t n) override {
    eval(context, flow, x, t, n);
    calls.push_back({context, start, n, t[0], false, std::vector<float>(x, x + B_ * n * N_)});
  }
  void teacher_forcing(int context, float* flow, const float* x, const float* t, const float*) override {
    eval(context, flow, x, t, F_);
    calls.push_back({context, 0, F_, t[0], true, {}});
  }
  std::vector<Call> calls;

 private:
  void eval(int context, float* flow, const float* x, const float* t, int64_t n) {
    const Gaussian& g = g_[context];
    for (int64_t b = 0; b < B_; ++b)
      for (int64_t f = 0; f < n; ++f) {
        const double sigma = t[b * n + f] / 1000.0;
        for (int64_t i = 0; i < N_; ++i) {
          const int64_t at = (b * n + f) * N_ + i;
          flow[at] = static_cast<float>(g.flow(x[at], sigma));
        }
      }
  }
  Backend<float>& be_;
  int64_t B_, F_, N_;
  Gaussian g_[2];
};

const Gaussian kCondData{0.5, 0.8};
const Gaussian kUncondData{-0.4, 0.8};

std::vector<float> normals(Philox rng, size_t n) {
  std::vector<float> out(n);
  rng.fill_normal(out.data(), n);
  return out;
}

// A second UniPC, written in the reference scheduler's generic form (lists of past x0
// predictions, the rks vector, the R matrix and b vector solved by elimination), in double,
// for one scalar. Used to check UniPCSolver's closed-form order-2 coefficients.
struct RefUniPC {
  std::vector<double> sigmas;  // steps + 1, the last 0
  int steps;
  std::vector<double> outs;  // model_outputs, oldest first (at most 2)
  int lower_order_nums = 0, this_order = 0, index = 0;
  bool have_last = false;
  double last_sample = 0;

  explicit RefUniPC(const UniPCGrid& g) : sigmas(g.sigmas), steps(int(g.timesteps.size())) {}
  double lam(int i) const { return std::log(1 - sigmas[i]) - std::log(sigmas[i]); }

  // Solves R rho = b for a small dense system by Gaussian elimination.
  static std::vector<double> solve(std::vector<std::vector<double>> R, std::vector<double> b) {
    const size_t n = b.size();
    for (size_t c = 0; c < n; ++c)
      for (size_t r = c + 1; r < n; ++r) {
        const double f = R[r][c] / R[c][c];
        for (size_t k = c; k < n; ++k) R[r][k] -= f * R[c][k];
        b[r] -= f * b[c];
      }
    std::vector<double> x(n);
    for (size_t i = n; i-- > 0;) {
      double acc = b[i];
      for (size_t k = i + 1; k < n; ++k) acc -= R[i][k] * x[k];
      x[i] = acc / R[i][i];
    }
    return x;
  }
  // Shared part of both updates: h, the phi terms, R and b for `order`, and D1s / rks.
  struct Terms {
    double h_phi_1, b_h;
    std::vector<double> d1s, b;
    std::vector<std::vector<double>> R;
  };
  Terms terms(int t_idx, int s0_idx, int order, int first_past_idx) const {
    Terms T;
    const double h = lam(t_idx) - lam(s0_idx);
    const double m0 = outs.back();
    std::vector<double> rks;
    for (int i = 1; i < order; ++i) {
      const int si = first_past_idx - (i - 1);
      const double mi = outs[outs.size() - 1 - i];
      const double rk = (lam(si) - lam(s0_idx)) / h;
      rks.push_back(rk);
      T.d1s.push_back((mi - m0) / rk);
    }
    rks.push_back(1.0);
    const double hh = -h;
    T.h_phi_1 = std::expm1(hh);
    double h_phi_k = T.h_phi_1 / hh - 1, factorial = 1;
    T.b_h = std::expm1(hh);
    for (int i = 1; i <= order; ++i) {
      std::vector<double> row;
      for (double r : rks) row.push_back(std::pow(r, i - 1));
      T.R.push_back(row);
      T.b.push_back(h_phi_k * factorial / T.b_h);
      factorial *= i + 1;
      h_phi_k = h_phi_k / hh - 1 / factorial;
    }
    return T;
  }
  double predict(double x, int order) const {
    const int i = index;
    const Terms T = terms(i + 1, i, order, i - 1);
    const double alpha_t = 1 - sigmas[i + 1];
    double res = 0;
    if (!T.d1s.empty()) res = 0.5 * T.d1s[0];  // rhos_p = [0.5] for order 2
    return sigmas[i + 1] / sigmas[i] * x - alpha_t * T.h_phi_1 * outs.back() - alpha_t * T.b_h * res;
  }
  double correct(double model_t, double x_last, int order) const {
    const int i = index;
    const Terms T = terms(i, i - 1, order, i - 2);
    const double alpha_t = 1 - sigmas[i];
    std::vector<double> rhos = order == 1 ? std::vector<double>{0.5} : solve(T.R, T.b);
    double corr = 0;
    for (size_t k = 0; k + 1 < rhos.size(); ++k) corr += rhos[k] * T.d1s[k];
    const double d1_t = model_t - outs.back();
    return sigmas[i] / sigmas[i - 1] * x_last - alpha_t * T.h_phi_1 * outs.back() -
           alpha_t * T.b_h * (corr + rhos.back() * d1_t);
  }
  double step(double flow, double x) {
    const double m = x - sigmas[index] * flow;
    if (index > 0 && have_last) x = correct(m, last_sample, this_order);
    outs.push_back(m);
    if (outs.size() > 2) outs.erase(outs.begin());
    this_order = std::min(std::min(2, steps - index), lower_order_nums + 1);
    last_sample = x;
    have_last = true;
    x = predict(x, this_order);
    lower_order_nums = std::min(lower_order_nums + 1, 2);
    ++index;
    return x;
  }
};

// Runs UniPCSolver (float, backend) and RefUniPC (double) on the exact flow at the solver's own
// sigmas; returns the max endpoint error against the exact ODE solution and the max solver gap.
struct UniPCRun {
  double error, gap_to_reference;
};
UniPCRun run_unipc(Backend<float>& be, int steps, int order) {
  const int64_t n = 64;
  UniPCSolver solver(be, n, steps, 5.0, order);
  const double sigma0 = solver.grid().sigmas[0];
  std::vector<float> x = normals(Philox(5), n), flow(n);
  std::vector<double> expected(n);
  std::vector<RefUniPC> refs(n, RefUniPC(solver.grid()));
  std::vector<double> xr(x.begin(), x.end());
  for (int64_t i = 0; i < n; ++i) expected[i] = kCondData.endpoint(x[i], sigma0);
  for (int k = 0; k < steps; ++k) {
    const double sigma = solver.grid().sigmas[k];
    for (int64_t i = 0; i < n; ++i) flow[i] = static_cast<float>(kCondData.flow(x[i], sigma));
    solver.step(k, flow.data(), x.data());
    if (order == 2)
      for (int64_t i = 0; i < n; ++i) xr[i] = refs[i].step(kCondData.flow(xr[i], sigma), xr[i]);
  }
  UniPCRun r{0, 0};
  for (int64_t i = 0; i < n; ++i) {
    r.error = std::max(r.error, std::fabs(x[i] - expected[i]));
    if (order == 2) r.gap_to_reference = std::max(r.gap_to_reference, std::fabs(x[i] - xr[i]));
  }
  return r;
}

// The same ODE with Euler on the shift-5 grid (sigma_min 0, extra_one_step).
double euler_error(int steps) {
  FlowMatchScheduler grid(FlowMatchConfig{1000, 5.0, 1.0, 0.0, true});
  grid.set_timesteps(steps);
  const int64_t n = 64;
  std::vector<float> x = normals(Philox(5), n);
  std::vector<double> expected(n);
  for (int64_t i = 0; i < n; ++i) expected[i] = kCondData.endpoint(x[i], grid.sigmas()[0]);
  std::vector<float> flow(n);
  for (int k = 0; k < steps; ++k) {
    for (int64_t i = 0; i < n; ++i) flow[i] = static_cast<float>(kCondData.flow(x[i], grid.sigmas()[k]));
    grid.euler_step(flow.data(), grid.timesteps()[k], x.data(), n);
  }
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(x[i] - expected[i]));
  return worst;
}

}  // namespace

TEST_CASE(unipc_matches_the_reference_form_and_converges) {
  auto be = make_cpu_backend<float>(1);
  const UniPCRun r10 = run_unipc(*be, 10, 2), r20 = run_unipc(*be, 20, 2), r40 = run_unipc(*be, 40, 2);
  const UniPCRun r50 = run_unipc(*be, 50, 2);
  const double first40 = run_unipc(*be, 40, 1).error;
  const double eu48 = euler_error(48), eu96 = euler_error(96);
  std::printf("  UniPC-2 max endpoint error: 10 steps %.3g, 20 %.3g, 40 %.3g, 50 %.3g; UniPC-1 40 %.3g; "
              "Euler 48 %.3g, 96 %.3g; UniPC vs reference form %.2g\n",
              r10.error, r20.error, r40.error, r50.error, first40, eu48, eu96, r50.gap_to_reference);
  // The closed-form coefficients equal the generic R/b solve of the reference scheduler.
  for (const UniPCRun& r : {r10, r20, r40, r50}) CHECK_NEAR(r.gap_to_reference, 0.0, 2e-5);
  // Convergence: the endpoint error is dominated by the final order-1 jump to sigma = 0
  // (x = x0 prediction, as upstream), yet UniPC-2 still beats Euler and UniPC-1 by far.
  CHECK(r20.error / r40.error > 3.0);
  CHECK(r40.error < first40 / 5);
  CHECK(r50.error < eu48 / 8);
  CHECK(eu48 / eu96 > 1.6 && eu48 / eu96 < 2.5);  // Euler is first order
  CHECK_THROWS(UniPCSolver(*be, 4, 10, 5.0, 3));
}

TEST_CASE(unipc_steps_must_run_in_order) {
  auto be = make_cpu_backend<float>(1);
  UniPCSolver solver(*be, 2, 5);
  std::vector<float> x = {0.1f, 0.2f}, flow = {0.0f, 0.0f};
  solver.step(0, flow.data(), x.data());
  CHECK_THROWS(solver.step(2, flow.data(), x.data()));
}

TEST_CASE(many_step_unipc_matches_a_reference_loop) {
  auto be = make_cpu_backend<float>(1);
  const int64_t B = 2, F = 6, N = 8;
  GaussianNet net(*be, B, F, N, kCondData, kUncondData);
  ManyStepConfig cfg;
  cfg.frames_per_block = 3;
  cfg.guidance = 1.0;  // pure conditional flow
  Philox rng(11, 3);
  const std::vector<float> z = normals(rng, B * F * N);  // the sampler draws the clip's noise first
  std::vector<float> out(B * F * N);
  const SamplerStats stats = sample_many_step(net, cfg, rng, out.data());
  // Reference: RefUniPC per element, the network reading the integer timesteps.
  const UniPCGrid grid = unipc_grid(50, 5.0);
  double worst = 0, worst_exact = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    RefUniPC ref(grid);
    double x = z[i];
    for (int k = 0; k < 50; ++k) x = ref.step(kCondData.flow(x, grid.timesteps[k] / 1000.0), x);
    worst = std::max(worst, std::fabs(out[i] - x));
    worst_exact = std::max(worst_exact, std::fabs(out[i] - kCondData.endpoint(z[i], grid.sigmas[0])));
  }
  std::printf("  many-step UniPC: gap to reference %.2g, to the exact ODE endpoint %.3g\n", worst, worst_exact);
  CHECK_NEAR(worst, 0.0, 2e-5);
  CHECK(worst_exact < 0.05);
  CHECK(stats.denoise_calls == 2 * 50 && stats.cache_calls == 2);  // g = 1 skips the uncond branch
  // Block order and cache passes: block 0 steps, its cache pass at t = 0 on the result, block 1 ...
  CHECK(net.calls[50].t == 0.0f && net.calls[50].start == 0);
  CHECK(std::memcmp(net.calls[50].x.data(), out.data(), 3 * N * sizeof(float)) == 0);  // sample 0, block 0
  CHECK(net.calls[51].start == 3 && net.calls[51].t == 999.0f && net.calls[100].t == 92.0f);
}

TEST_CASE(many_step_cfg_matches_a_reference_loop) {
  auto be = make_cpu_backend<float>(1);
  const int64_t B = 1, F = 2, N = 5;
  GaussianNet net(*be, B, F, N, kCondData, kUncondData);
  ManyStepConfig cfg;
  cfg.frames_per_block = 1;
  cfg.guidance = 3.0;
  cfg.num_steps = 20;
  cfg.solver = ManyStepSolver::euler;
  Philox rng(4);
  const std::vector<float> z = normals(rng, B * F * N);
  std::vector<float> out(B * F * N);
  const SamplerStats stats = sample_many_step(net, cfg, rng, out.data());
  FlowMatchScheduler grid(FlowMatchConfig{1000, 5.0, 1.0, 0.0, true});
  grid.set_timesteps(20);
  for (size_t i = 0; i < z.size(); ++i) {
    double x = z[i];
    for (size_t k = 0; k < grid.size(); ++k) {
      const double sig = grid.timesteps()[k] / 1000.0;
      const double fc = kCondData.flow(x, sig), fu = kUncondData.flow(x, sig);
      const double next = k + 1 < grid.size() ? grid.sigmas()[k + 1] : 0.0;
      x += (fu + 3.0 * (fc - fu)) * (next - grid.sigmas()[k]);
    }
    CHECK_NEAR(out[i], x, 2e-4 * (1 + std::fabs(x)));
  }
  // Per block: 20 steps x 2 branches, then the cond and uncond cache passes.
  CHECK(stats.denoise_calls == 2 * 20 * 2 && stats.cache_calls == 2 * 2);
  CHECK(net.calls[0].context == kCond && net.calls[1].context == kUncond);
}

TEST_CASE(few_step_matches_a_reference_with_the_documented_noise_order) {
  auto be = make_cpu_backend<float>(1);
  const int64_t B = 2, F = 4, N = 3, k = 2;
  GaussianNet net(*be, B, F, N, kCondData, kUncondData);
  const FlowMatchScheduler grid = generator_training_grid();
  FewStepConfig cfg;
  cfg.frames_per_block = k;
  cfg.steps = warped_step_list({1000, 750, 500, 250}, grid);
  Philox rng(77, 1);
  const RngState start = rng.state();
  std::vector<float> out(B * F * N);
  const SamplerStats stats = sample_few_step(net, cfg, grid, rng, out.data());

  // Reference: the clip's noise first, then one fresh [B, k, N] draw per re-noise, block by block.
  Philox ref_rng(start);
  std::vector<float> z(B * F * N);
  ref_rng.fill_normal(z.data(), z.size());
  for (int64_t s = 0; s < F; s += k) {
    std::vector<double> x(B * k * N), x0(B * k * N);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < k * N; ++i) x[b * k * N + i] = z[(b * F + s) * N + i];
    for (size_t j = 0; j < cfg.steps.size(); ++j) {
      const double sig = grid.sigma_at(cfg.steps[j]);
      for (size_t i = 0; i < x.size(); ++i) x0[i] = x[i] - sig * kCondData.flow(x[i], float(cfg.steps[j]) / 1000.0);
      if (j + 1 < cfg.steps.size()) {
        std::vector<float> eps(x.size());
        ref_rng.fill_normal(eps.data(), eps.size());
        const double sn = grid.sigma_at(cfg.steps[j + 1]);
        for (size_t i = 0; i < x.size(); ++i) x[i] = (1 - sn) * x0[i] + sn * eps[i];
      }
    }
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < k * N; ++i) CHECK_NEAR(out[(b * F + s) * N + i], x0[b * k * N + i], 1e-5);
  }
  CHECK(rng.state().counter == ref_rng.state().counter);  // the same draws, in the same order
  CHECK(stats.denoise_calls == 2 * 4 && stats.cache_calls == 2);
  // Each block ends with a clean pass at t = 0 on its x0 (no re-noise in inference).
  const Call& cache0 = net.calls[4];
  CHECK(cache0.t == 0.0f && cache0.start == 0 && cache0.n == k);
  CHECK(std::memcmp(cache0.x.data(), out.data(), k * N * sizeof(float)) == 0);
  // Steps use the warped list: 1000, 937.5, 833.33, 625.
  CHECK(net.calls[0].t == 1000.0f && net.calls[1].t == 937.5f && net.calls[3].t == 625.0f);
}

TEST_CASE(few_step_is_deterministic_given_the_rng_state) {
  auto be = make_cpu_backend<float>(1);
  const int64_t B = 1, F = 3, N = 16;
  GaussianNet net(*be, B, F, N, kCondData, kUncondData);
  const FlowMatchScheduler grid = generator_training_grid();
  FewStepConfig cfg;
  cfg.frames_per_block = 1;
  cfg.steps = warped_step_list({1000, 500}, grid);
  cfg.renoise_context = true;
  std::vector<float> a(B * F * N), b(B * F * N), c(B * F * N);
  Philox r1(9, 2, 40), r2(9, 2, 40), r3(9, 3, 40);
  sample_few_step(net, cfg, grid, r1, a.data());
  sample_few_step(net, cfg, grid, r2, b.data());
  sample_few_step(net, cfg, grid, r3, c.data());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) != 0);
  CHECK(r1.state().counter == r2.state().counter);
  // The training-style context pass re-noises x0 to sigma(0) ~ 0.005 before the cache write.
  const Call& cache0 = net.calls[2];
  CHECK(cache0.t == 0.0f);
  double diff = 0;
  for (int64_t i = 0; i < N; ++i) diff = std::max(diff, std::fabs(double(cache0.x[i]) - a[i]));
  CHECK(diff > 0 && diff < 0.05);
}

TEST_CASE(few_step_call_counts_of_the_spec) {
  // Spec §3.10 forward calls per 21-frame video.
  auto be = make_cpu_backend<float>(1);
  const FlowMatchScheduler grid = generator_training_grid();
  auto calls = [&](int64_t k, std::vector<int> steps, std::vector<int> first) {
    GaussianNet net(*be, 1, 21, 2, kCondData, kUncondData);
    FewStepConfig cfg;
    cfg.frames_per_block = k;
    cfg.steps = warped_step_list(steps, grid);
    if (!first.empty()) cfg.first_block_steps = warped_step_list(first, grid);
    Philox rng(1);
    std::vector<float> out(21 * 2);
    const SamplerStats st = sample_few_step(net, cfg, grid, rng, out.data());
    CHECK(static_cast<int64_t>(net.calls.size()) == st.calls());
    return st.calls();
  };
  CHECK(calls(3, {1000, 750, 500, 250}, {}) == 35);
  CHECK(calls(1, {1000, 750, 500, 250}, {}) == 105);
  CHECK(calls(1, {1000, 500}, {1000, 750, 500, 250}) == 65);
  CHECK(calls(1, {1000}, {1000, 750, 500, 250}) == 45);
  // A 1-step list: one forward per block plus the cache pass.
  CHECK(calls(3, {1000}, {}) == 7 * 2);
}

TEST_CASE(few_step_with_initial_frames) {
  auto be = make_cpu_backend<float>(1);
  const int64_t B = 1, F = 3, N = 4;
  GaussianNet net(*be, B, F, N, kCondData, kUncondData);
  const FlowMatchScheduler grid = generator_training_grid();
  FewStepConfig cfg;
  cfg.frames_per_block = 1;
  cfg.steps = {1000.0};
  const std::vector<float> image = {1.0f, 2.0f, 3.0f, 4.0f};
  std::vector<float> out(B * F * N);
  Philox rng(3);
  const SamplerStats st = sample_few_step(net, cfg, grid, rng, out.data(), image.data(), 1);
  CHECK(std::memcmp(out.data(), image.data(), N * sizeof(float)) == 0);
  CHECK(net.calls[0].t == 0.0f && net.calls[0].start == 0);  // the image goes into the cache first
  CHECK(net.calls[1].start == 1 && net.calls[1].t == 1000.0f);
  CHECK(st.cache_calls == 3 && st.denoise_calls == 2);
  CHECK(rng.state().counter == philox_blocks_for(2 * N));  // noise only for the generated frames
  CHECK_THROWS(sample_few_step(net, cfg, grid, rng, out.data(), image.data(), 3));
}

TEST_CASE(ode_trajectory_slots_and_endpoint) {
  auto be = make_cpu_backend<float>(1);
  const int64_t B = 2, F = 4, N = 6;
  GaussianNet net(*be, B, F, N, kCondData, kUncondData);
  OdeConfig cfg;
  cfg.guidance = 1.0;
  cfg.frames_per_block = 2;
  const std::vector<float> clean = normals(Philox(123), B * F * N);
  Philox rng(8);
  const std::vector<float> z = normals(rng, B * F * N);
  const int64_t S = ode_slots(cfg), clip = F * N;
  CHECK(S == 6);
  std::vector<float> tf(B * S * clip), kv(B * S * clip);
  Philox r1(8), r2(8);
  const SamplerStats st_tf = generate_ode_trajectory(net, cfg, OdeMode::teacher_forcing, clean.data(), r1, tf.data());
  const SamplerStats st_kv = generate_ode_trajectory(net, cfg, OdeMode::blockwise_kv, clean.data(), r2, kv.data());
  CHECK(st_tf.denoise_calls == 48 && st_tf.cache_calls == 0);
  CHECK(st_kv.denoise_calls == 2 * 48 && st_kv.cache_calls == 2);
  // Reference: per element, Euler in double on the 48-step grid; x before steps 0/12/24/36, endpoint.
  const FlowMatchScheduler grid = ode_grid();
  double worst_ref = 0, worst_mode = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < clip; ++i) {
      const float* row = tf.data() + b * S * clip;
      CHECK(row[0 * clip + i] == z[b * clip + i]);      // slot 0: the noise
      CHECK(row[5 * clip + i] == clean[b * clip + i]);  // slot 5: GT
      double x = z[b * clip + i];
      std::vector<double> expect;
      for (size_t k = 0; k < grid.size(); ++k) {
        if (k == 0 || k == 12 || k == 24 || k == 36) expect.push_back(x);
        const double next = k + 1 < grid.size() ? grid.sigmas()[k + 1] : 0.0;
        x += kCondData.flow(x, float(grid.timesteps()[k]) / 1000.0) * (next - grid.sigmas()[k]);
      }
      expect.push_back(x);
      for (int64_t s = 0; s < 5; ++s) worst_ref = std::max(worst_ref, std::fabs(row[s * clip + i] - expect[s]));
      for (int64_t s = 0; s < S; ++s)
        worst_mode = std::max(worst_mode, double(std::fabs(row[s * clip + i] - kv[b * S * clip + s * clip + i])));
    }
  CHECK_NEAR(worst_ref, 0.0, 2e-5);
  CHECK(worst_mode == 0.0);  // a frame-independent flow: both modes do identical arithmetic
  cfg.snapshots = {48};
  CHECK_THROWS(generate_ode_trajectory(net, cfg, OdeMode::teacher_forcing, clean.data(), r1, tf.data()));
}

TEST_MAIN()
