// Sampling cost per video on the tiny preset: wall time and network calls of the many-step CFG
// teacher (UniPC 50, the baseline measured in the same run), the few-step student lists of the
// shipped configs, and causal ODE generation in teacher-forcing vs blockwise-KV mode.
// Built and run by test/bench/native-samplers.sh (not a ctest).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "core/sampler_model.h"
#include "cpu/cpu_backend.h"

using namespace cfp;

namespace {
// Best wall time (s) of `reps` runs after one warm-up; the stats of the last run.
double best_s(const std::function<SamplerStats()>& fn, int reps, SamplerStats* stats) {
  *stats = fn();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    *stats = fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
  const FlowMatchScheduler grid = generator_training_grid();
  for (int64_t k : {int64_t{1}, int64_t{3}}) {
    auto be = make_cpu_backend<float>(threads);
    const ModelConfig c = ModelConfig::tiny(k);
    Model<float> model(*be, c);
    model.init(1);
    const int64_t B = 1, clip = B * c.frames * c.channels * c.height * c.width;
    std::vector<float> text(B * c.text_len * c.text_dim), uncond(text.size()), clean(clip);
    Philox(3, 0).fill_normal(text.data(), text.size());
    Philox(3, 1).fill_normal(uncond.data(), uncond.size());
    Philox(3, 2).fill_normal(clean.data(), clean.size());
    std::vector<float> out(clip);
    std::printf("tiny preset, k = %lld (%lld frames), %d threads\n", static_cast<long long>(k),
                static_cast<long long>(c.frames), threads);

    SamplerStats st;
    const double teacher = best_s([&] {
      ModelFlowNet net(model, B, text.data(), uncond.data());
      Philox rng(1);
      return sample_many_step(net, ManyStepConfig{k, 50, 5.0, 3.0, ManyStepSolver::unipc, 0.0}, rng, out.data());
    }, reps, &st);
    const int64_t teacher_calls = st.calls();
    std::printf("  %-34s %8.3f s  %5lld calls  (baseline)\n", "teacher UniPC-50 + CFG", teacher,
                static_cast<long long>(teacher_calls));

    struct List { const char* name; std::vector<int> steps, first; };
    std::vector<List> lists = {{"student 4-step", {1000, 750, 500, 250}, {}}};
    if (k == 1) {
      lists.push_back({"student 2-step, 4-step first block", {1000, 500}, {1000, 750, 500, 250}});
      lists.push_back({"student 1-step, 4-step first block", {1000}, {1000, 750, 500, 250}});
    }
    for (const List& l : lists) {
      FewStepConfig fc;
      fc.frames_per_block = k;
      fc.steps = warped_step_list(l.steps, grid);
      if (!l.first.empty()) fc.first_block_steps = warped_step_list(l.first, grid);
      const double s = best_s([&] {
        ModelFlowNet net(model, B, text.data());
        Philox rng(1);
        return sample_few_step(net, fc, grid, rng, out.data());
      }, reps, &st);
      std::printf("  %-34s %8.3f s  %5lld calls  time x%.1f fewer, calls x%.1f fewer\n", l.name, s,
                  static_cast<long long>(st.calls()), teacher / s, double(teacher_calls) / double(st.calls()));
    }

    OdeConfig oc;
    oc.frames_per_block = k;
    std::vector<float> traj(ode_slots(oc) * clip);
    const double tf = best_s([&] {
      ModelFlowNet net(model, B, text.data(), uncond.data());
      Philox rng(1);
      return generate_ode_trajectory(net, oc, OdeMode::teacher_forcing, clean.data(), rng, traj.data());
    }, reps, &st);
    std::printf("  %-34s %8.3f s  %5lld calls\n", "ODE 48 steps, teacher forcing", tf, static_cast<long long>(st.calls()));
    const double kv = best_s([&] {
      ModelFlowNet net(model, B, text.data(), uncond.data());
      Philox rng(1);
      return generate_ode_trajectory(net, oc, OdeMode::blockwise_kv, clean.data(), rng, traj.data());
    }, reps, &st);
    std::printf("  %-34s %8.3f s  %5lld calls  x%.2f vs teacher forcing\n", "ODE 48 steps, blockwise KV", kv,
                static_cast<long long>(st.calls()), tf / kv);
  }
  return 0;
}
