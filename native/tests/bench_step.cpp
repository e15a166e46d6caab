// Training-step time per objective on the tiny preset (loss + all parameter gradients), with one
// plain teacher-forcing forward measured in the same run as the baseline the ratios refer to.
// Built and run by test/bench/native-step.sh (not a ctest).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "core/objectives.h"
#include "cpu/cpu_backend.h"
#include "bench_util.h"

using namespace cfp;
using cfp_bench::best_ms;
using cfp_bench::randn;

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int64_t B = argc > 2 ? std::atoll(argv[2]) : 8;
  const int reps = 5;
  auto be = make_cpu_backend<float>(threads);
  const FlowMatchScheduler grid = generator_training_grid(), cd = ode_grid();
  const std::vector<double> steps = warped_step_list({1000, 750, 500, 250}, grid);
  std::printf("tiny preset, batch %lld, %d threads, best of %d\n", (long long)B, threads, reps);
  for (int64_t k : {1, 3}) {
    const ModelConfig c = ModelConfig::tiny(k);
    const int64_t F = c.frames, n = B * F * c.channels * c.height * c.width;
    Model<float> gen(*be, c), teacher(*be, c), ema(*be, c), real(*be, c), fake(*be, c);
    for (auto* m : {&gen, &teacher, &ema, &real, &fake}) m->init(1);
    ObjectiveScratch<float> s(*be);
    auto x0 = randn(size_t(n), 1), text = randn(size_t(B * c.text_len * c.text_dim), 2), text_u = randn(text.size(), 3);
    auto traj = randn(size_t(n * 6), 4);
    std::vector<float> out(static_cast<size_t>(n)), t(static_cast<size_t>(B * F), 500.0f);
    Philox rng(1);
    DmdConfig dmd;
    dmd.steps = steps;
    const double fwd = best_ms([&] { gen.forward_teacher_forcing(out.data(), x0.data(), t.data(), x0.data(), 0.0, text.data(), B, F); }, reps);
    struct Row {
      const char* name;
      std::function<void()> fn;
    } rows[] = {
        {"teacher-forcing diffusion", [&] { gen.zero_grad(); teacher_forcing_diffusion_loss(gen, s, grid, x0.data(), text.data(), B, F, rng); }},
        {"ODE regression", [&] { gen.zero_grad(); ode_regression_loss(gen, s, grid, steps, traj.data(), 6, text.data(), B, F, rng); }},
        {"consistency distillation", [&] { gen.zero_grad(); consistency_distillation_loss(gen, teacher, ema, s, grid, cd, x0.data(), text.data(), text_u.data(), B, F, 3.0, rng); }},
        {"DMD generator", [&] { gen.zero_grad(); dmd_generator_loss(gen, real, fake, s, grid, grid, dmd, text.data(), text_u.data(), B, F, rng); }},
        {"DMD critic", [&] { fake.zero_grad(); dmd_critic_loss(gen, fake, s, grid, grid, dmd, text.data(), B, F, rng); }},
    };
    std::printf("k=%lld  TF forward (baseline): %8.2f ms\n", (long long)k, fwd);
    for (auto& r : rows) {
      const double ms = best_ms(r.fn, reps);
      std::printf("k=%lld  %-26s %8.2f ms  (%5.2fx the TF forward)\n", (long long)k, r.name, ms, ms / fwd);
    }
  }
  return 0;
}
