// The four objectives on a tiny model in double: parameter gradients against central finite
// differences of the loss at a fixed RNG state (tolerance rule in model_test_util.h); the DMD
// rollout backward against finite differences of sum(R * x_gen) for a one-block rollout (the
// only case where x_gen depends on the parameters through the exit forward alone, as the method's
// stop-gradients intend); determinism of a float step.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/objectives.h"
#include "cpu/cpu_backend.h"
#include "model_test_util.h"

using namespace cfp;
using namespace cfp_test;

namespace {

// Compares model.grads() (from one call of `loss_and_grad`) with central differences of `loss`
// on up to 3 elements of every parameter tensor.
void check_param_grads(const std::string& tag, Model<double>& m, const std::function<double()>& loss) {
  double* p = m.params().data();
  // Snapshot: the loss evaluations below run backward again and keep accumulating into grads().
  const std::vector<double> snapshot(m.grads().data(), m.grads().data() + m.num_params());
  const double* g = snapshot.data();
  double worst = 0;
  std::string where;
  bool any = false;
  for (const auto& e : m.param_table()) {
    for (int64_t s = 0; s < std::min<int64_t>(3, e.numel()); ++s) {
      const int64_t i = e.offset + (s * 7919) % e.numel();
      const double nd = central_difference(&p[i], loss);
      any = any || std::fabs(nd) > 1e-9;
      const double r = grad_error(g[i], nd);
      if (!(r <= worst)) worst = r, where = e.name + " analytic " + std::to_string(g[i]) + " numeric " + std::to_string(nd);
    }
  }
  if (worst > 1) std::fprintf(stderr, "  %s worst: %s\n", tag.c_str(), where.c_str());
  expect(worst <= 1 && any, "objective gradients " + tag);
}

struct Data {
  std::vector<double> x0, text, text_u;
};
Data make_data(const ModelConfig& c, int64_t B, int64_t F) {
  Data d;
  d.x0 = randn<double>(size_t(B * F * c.channels * c.height * c.width), 5);
  d.text = randn<double>(size_t(B * c.text_len * c.text_dim), 6);
  d.text_u = randn<double>(d.text.size(), 7);
  return d;
}

void test_teacher_forcing(int64_t k) {
  auto be = make_cpu_backend<double>(2);
  const ModelConfig c = tiny_grad_config(k, 1);
  Model<double> m(*be, c);
  randomize(m, 1);
  ObjectiveScratch<double> s(*be);
  const FlowMatchScheduler grid = generator_training_grid();
  const int64_t B = 2, F = 6;
  Data d = make_data(c, B, F);
  const RngState at{123, 0, 0};
  auto loss = [&]() {
    Philox rng(at);
    const double l = teacher_forcing_diffusion_loss(m, s, grid, d.x0.data(), d.text.data(), B, F, rng);
    return l;
  };
  m.zero_grad();
  const double l0 = loss();
  expect(std::isfinite(l0) && l0 > 0, "teacher-forcing loss is finite and positive");
  std::vector<double> g(m.grads().data(), m.grads().data() + m.num_params());
  check_param_grads("teacher_forcing_diffusion k=" + std::to_string(k), m, loss);
  (void)g;
}

void test_ode_regression() {
  auto be = make_cpu_backend<double>(2);
  const ModelConfig c = tiny_grad_config(3, 1);
  Model<double> m(*be, c);
  randomize(m, 2);
  ObjectiveScratch<double> s(*be);
  const FlowMatchScheduler grid = generator_training_grid();
  const std::vector<double> steps = warped_step_list({1000, 750, 500, 250}, grid);
  const int64_t B = 2, F = 6, S = 6;
  auto traj = randn<double>(size_t(B * S * F * c.channels * c.height * c.width), 9);
  Data d = make_data(c, B, F);
  const RngState at{7, 1, 0};
  auto loss = [&]() {
    Philox rng(at);
    return ode_regression_loss(m, s, grid, steps, traj.data(), S, d.text.data(), B, F, rng);
  };
  m.zero_grad();
  expect(std::isfinite(loss()), "ODE regression loss is finite");
  check_param_grads("ode_regression", m, loss);
}

void test_consistency_distillation() {
  auto be = make_cpu_backend<double>(2);
  const ModelConfig c = tiny_grad_config(1, 1);
  Model<double> student(*be, c), teacher(*be, c), ema(*be, c);
  randomize(student, 3);
  randomize(teacher, 4);
  randomize(ema, 5);
  ObjectiveScratch<double> s(*be);
  const FlowMatchScheduler grid = generator_training_grid(), cd = ode_grid();
  const int64_t B = 2, F = 6;
  Data d = make_data(c, B, F);
  const RngState at{99, 2, 0};
  auto loss = [&]() {
    Philox rng(at);
    return consistency_distillation_loss(student, teacher, ema, s, grid, cd, d.x0.data(), d.text.data(),
                                         d.text_u.data(), B, F, 3.0, rng);
  };
  student.zero_grad();
  teacher.zero_grad();
  expect(std::isfinite(loss()), "CD loss is finite");
  check_param_grads("consistency_distillation", student, loss);
  bool teacher_untouched = true;
  for (int64_t i = 0; i < teacher.num_params(); ++i) teacher_untouched = teacher_untouched && teacher.grads().data()[i] == 0;
  expect(teacher_untouched, "CD leaves the teacher's gradients at zero");
}

void test_dmd(int64_t k) {
  auto be = make_cpu_backend<double>(2);
  const ModelConfig c = tiny_grad_config(k, 1);
  Model<double> gen(*be, c), real(*be, c), fake(*be, c);
  randomize(gen, 11);
  randomize(real, 12);
  randomize(fake, 13);
  ObjectiveScratch<double> s(*be);
  const FlowMatchScheduler grid = generator_training_grid();
  const int64_t B = 2;
  Data d = make_data(c, B, c.frames);
  // (1) Rollout backward: one block, one step -> x_gen = noise - sigma v(noise; theta).
  {
    DmdConfig one;
    one.steps = {1000.0};
    const int64_t F = k, n = B * F * c.channels * c.height * c.width;
    std::vector<double> xg(static_cast<size_t>(n));
    const auto R = randn<double>(size_t(n), 31);
    const RngState at{5, 5, 0};
    auto surrogate = [&]() {
      Philox rng(at);
      dmd_rollout(gen, s, grid, one, d.text.data(), B, F, rng, xg.data());
      double v = 0;
      for (int64_t i = 0; i < n; ++i) v += R[size_t(i)] * xg[size_t(i)];
      return v;
    };
    gen.zero_grad();
    Philox rng(at);
    auto ro = dmd_rollout(gen, s, grid, one, d.text.data(), B, F, rng, xg.data());
    dmd_rollout_backward(gen, s, grid, ro, d.text.data(), B, F, R.data());
    check_param_grads("dmd rollout backward k=" + std::to_string(k), gen, surrogate);
  }
  // (2) Critic loss: x_gen does not depend on the critic, so the loss is differentiated exactly.
  DmdConfig four;
  four.steps = warped_step_list({1000, 750, 500, 250}, grid);
  const FlowMatchScheduler score_grid = [] {
    FlowMatchScheduler g(FlowMatchConfig{1000, 8.0, 1.0, 0.0, true});
    g.set_timesteps(1000);
    return g;
  }();
  const RngState at{8, 3, 0};
  auto critic = [&]() {
    Philox rng(at);
    return dmd_critic_loss(gen, fake, s, grid, score_grid, four, d.text.data(), B, c.frames, rng);
  };
  fake.zero_grad();
  expect(std::isfinite(critic()), "DMD critic loss is finite");
  check_param_grads("dmd critic k=" + std::to_string(k), fake, critic);
  // (3) Generator loss: finite, deterministic, and only the generator receives gradients.
  gen.zero_grad();
  real.zero_grad();
  fake.zero_grad();
  Philox r1(RngState{4, 4, 0}), r2(RngState{4, 4, 0});
  const double g1 = dmd_generator_loss(gen, real, fake, s, grid, score_grid, four, d.text.data(), d.text_u.data(), B,
                                       c.frames, r1);
  std::vector<double> grads1(gen.grads().data(), gen.grads().data() + gen.num_params());
  gen.zero_grad();
  const double g2 = dmd_generator_loss(gen, real, fake, s, grid, score_grid, four, d.text.data(), d.text_u.data(), B,
                                       c.frames, r2);
  std::vector<double> grads2(gen.grads().data(), gen.grads().data() + gen.num_params());
  expect(std::isfinite(g1) && g1 == g2 && grads1 == grads2, "DMD generator loss is finite and replays exactly");
  double gn = 0;
  for (double v : grads1) gn += v * v;
  expect(gn > 0, "DMD generator loss gives the generator a gradient");
  bool others_zero = true;
  for (int64_t i = 0; i < real.num_params(); ++i)
    others_zero = others_zero && real.grads().data()[i] == 0 && fake.grads().data()[i] == 0;
  expect(others_zero, "DMD generator loss leaves the score models' gradients at zero");
}

void test_float_determinism() {
  const ModelConfig c = ModelConfig::tiny(3);
  const int64_t B = 2, F = c.frames;
  auto x0 = randn<float>(size_t(B * F * c.channels * c.height * c.width), 1);
  auto text = randn<float>(size_t(B * c.text_len * c.text_dim), 2);
  const FlowMatchScheduler grid = generator_training_grid();
  auto run = [&](int threads, std::vector<float>& grads) {
    auto be = make_cpu_backend<float>(threads);
    Model<float> m(*be, c);
    m.init(3);
    ObjectiveScratch<float> s(*be);
    Philox rng(77);
    const double l = teacher_forcing_diffusion_loss(m, s, grid, x0.data(), text.data(), B, F, rng);
    grads.assign(m.grads().data(), m.grads().data() + m.num_params());
    return l;
  };
  std::vector<float> a, b;
  const double la = run(2, a), lb = run(1, b);
  expect(la == lb && a == b, "a float teacher-forcing step is bitwise equal on 1 and 2 threads");
}

}  // namespace

int main() {
  for (int64_t k : {1, 3}) test_teacher_forcing(k);
  test_ode_regression();
  test_consistency_distillation();
  for (int64_t k : {1, 3}) test_dmd(k);
  test_float_determinism();
  return finish("test_objectives");
}
