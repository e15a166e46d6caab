// The training driver: for every trainer, N steps straight and N/2 steps, cancel (checkpoint),
// resume, N/2 more end with byte-identical checkpoint files (weights, EMA, critic, AdamW moments,
// RNG counter, data position) and the same loss sequence; losses fall on a learnable toy problem;
// a checkpoint of another problem is refused; bad data gives messages naming the field.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/rng.h"
#include "core/trainer.h"
#include "trainer_test_util.h"
#include "cpu/cpu_backend.h"
#include "math_test_util.h"

using namespace cfp;
using namespace cfp_test;

namespace {

ModelConfig small_config(int64_t k) {
  ModelConfig c;
  c.channels = 4;
  c.height = 4;
  c.width = 4;
  c.dim = 16;
  c.heads = 2;
  c.ffn_dim = 32;
  c.layers = 1;
  c.freq_dim = 8;
  c.text_dim = 6;
  c.text_len = 3;
  c.frames = 4;
  c.frames_per_block = k;
  return c;
}

std::vector<float> normals(uint64_t seed, size_t n, float scale = 1.0f) {
  std::vector<float> v(n);
  philox_fill_normal({seed, 0, 0}, v.data(), n, 0.0f, scale);
  return v;
}

// Records progress; cancels once `stop_after` steps were reported (0: never).
class Recorder : public JobContext {
 public:
  explicit Recorder(int64_t stop_after = 0) : stop_after_(stop_after) {}
  bool cancelled() const override { return stop_after_ > 0 && last_step_ >= stop_after_; }
  void report(const JobProgress& p) override {
    last_step_ = p.step;
    for (const auto& [name, value] : p.metrics)
      if (name == "loss") losses.push_back(value);
  }
  std::vector<double> losses;

 private:
  int64_t stop_after_;
  int64_t last_step_ = 0;
};

struct Setup {
  TrainOptions options;
  TrainData data;
};

Setup make_setup(Trainer trainer, const std::string& dir) {
  Setup s;
  TrainOptions& o = s.options;
  o.trainer = trainer;
  o.model = small_config(trainer == Trainer::diffusion ? 2 : 1);
  o.steps = 6;
  o.batch = 2;
  o.seed = 11;
  o.optim.lr = 1e-3;
  o.optim.beta1 = 0.0;
  o.critic_optim.lr = 5e-4;
  o.critic_optim.beta1 = 0.0;
  o.checkpoint_every = 3;
  o.threads = 2;
  o.keep_checkpoints = 0;
  o.denoising_steps = {1000.0, 937.5, 833.3333333333334, 625.0};
  const ModelConfig& c = o.model;
  const int64_t clip = c.frames * c.channels * c.height * c.width, L = c.text_len * c.text_dim;
  TrainData& d = s.data;
  d.count = 5;
  d.text = normals(3, static_cast<size_t>(d.count * L));
  d.text_uncond = normals(4, static_cast<size_t>(L));
  switch (trainer) {
    case Trainer::diffusion:
      d.samples = normals(5, static_cast<size_t>(d.count * clip), 0.5f);
      break;
    case Trainer::consistency_distillation:
      d.samples = normals(5, static_cast<size_t>(d.count * clip), 0.5f);
      o.cd_steps = 6;
      o.init = {write_seeded_weights(dir, c, 21), ""};
      break;
    case Trainer::ode:
      d.slots = 6;
      d.samples = normals(6, static_cast<size_t>(d.count * d.slots * clip), 0.5f);
      o.init = {write_seeded_weights(dir, c, 21), "generator."};
      break;
    case Trainer::score_distillation: {
      ModelConfig score = c;
      score.frames_per_block = c.frames;
      o.init = {write_seeded_weights(dir, c, 21), ""};
      o.real_score = {write_seeded_weights(dir, score, 22), ""};
      o.dfake_gen_update_ratio = 2;
      o.ema_start_step = 2;  // the EMA starts mid-run, before the resume point
      break;
    }
  }
  return s;
}

std::vector<uint8_t> bytes_of(const std::string& path) { return read_file_bytes(path); }

void check_resume_is_exact(Trainer trainer) {
  const std::string root = temp_dir("trainer", trainer_name(trainer));
  Setup s = make_setup(trainer, root);
  // Straight run.
  TrainOptions straight = s.options;
  straight.work_dir = root + "/straight";
  straight.output_path = root + "/straight.safetensors";
  Recorder full;
  const TrainResult a = train(straight, s.data, full);
  CHECK(a.step == 6 && !a.cancelled && a.resumed_from == -1);
  CHECK(full.losses.size() == 6);
  // Interrupted at step 3 (cancel -> checkpoint), then resumed in a fresh job.
  TrainOptions split = s.options;
  split.work_dir = root + "/split";
  split.output_path = root + "/split.safetensors";
  Recorder first(3);
  const TrainResult b1 = train(split, s.data, first);
  CHECK(b1.cancelled && b1.step == 3);
  split.resume = true;
  Recorder second;
  const TrainResult b2 = train(split, s.data, second);
  CHECK(b2.step == 6 && b2.resumed_from == 3 && !b2.cancelled);
  std::vector<double> joined = first.losses;
  joined.insert(joined.end(), second.losses.begin(), second.losses.end());
  CHECK(joined.size() == full.losses.size());
  bool same_losses = joined.size() == full.losses.size();
  for (size_t i = 0; same_losses && i < joined.size(); ++i) same_losses = joined[i] == full.losses[i];  // bitwise
  CHECK(same_losses);
  for (double l : full.losses) CHECK(std::isfinite(l) && l > 0);
  // The step-6 checkpoints (weights, EMA, critic, moments, counters) and the outputs are identical.
  const CheckpointPaths pa = checkpoint_paths(straight.work_dir, 6), pb = checkpoint_paths(split.work_dir, 6);
  CHECK(bytes_of(pa.weights) == bytes_of(pb.weights));
  CHECK(bytes_of(pa.state) == bytes_of(pb.state));
  CHECK(bytes_of(straight.output_path) == bytes_of(split.output_path));
  // The checkpoint holds what the trainer needs.
  const LoadedCheckpoint c = load_checkpoint(straight.work_dir, 6);
  const std::string first_name = model_param_table(s.options.model).front().name;
  CHECK(c.weights.find(std::string(kGeneratorPrefix) + first_name) != nullptr);
  CHECK(c.state.find("optim.generator.exp_avg_sq") != nullptr);
  const bool ema = trainer == Trainer::consistency_distillation || trainer == Trainer::score_distillation;
  CHECK((c.weights.find(std::string(kGeneratorEmaPrefix) + first_name) != nullptr) == ema);
  CHECK((c.weights.find(std::string(kCriticPrefix) + first_name) != nullptr) == (trainer == Trainer::score_distillation));
  CHECK(a.ema_active == ema);
  // Nothing left to do: a rerun resumes at 6 and returns at once with the same output.
  Recorder idle;
  const TrainResult again = train(split, s.data, idle);
  CHECK(again.step == 6 && again.resumed_from == 6 && idle.losses.empty());
  CHECK(bytes_of(straight.output_path) == bytes_of(split.output_path));
  std::printf("  %s: losses", trainer_name(trainer));
  for (double l : full.losses) std::printf(" %.5f", l);
  std::printf("\n");
}

}  // namespace

TEST_CASE(diffusion_teacher_forcing_resumes_exactly) { check_resume_is_exact(Trainer::diffusion); }
TEST_CASE(ode_regression_resumes_exactly) { check_resume_is_exact(Trainer::ode); }
TEST_CASE(consistency_distillation_resumes_exactly) { check_resume_is_exact(Trainer::consistency_distillation); }
TEST_CASE(dmd_resumes_exactly) { check_resume_is_exact(Trainer::score_distillation); }

TEST_CASE(bidirectional_base_learns_and_resumes) {
  const std::string root = temp_dir("trainer", "base");
  Setup s = make_setup(Trainer::diffusion, root);
  s.options.teacher_forcing = false;
  s.options.causal = false;
  s.options.model.frames_per_block = s.options.model.frames;  // one t per sample
  s.options.steps = 40;
  s.options.checkpoint_every = 0;
  s.options.optim.lr = 3e-3;
  // A learnable problem: every row is the same clip, so the flow target is predictable.
  const size_t clip = s.data.samples.size() / 5;
  for (size_t r = 1; r < 5; ++r)
    for (size_t i = 0; i < clip; ++i) s.data.samples[r * clip + i] = s.data.samples[i];
  Recorder rec;
  const TrainResult r = train(s.options, s.data, rec);
  CHECK(r.step == 40 && rec.losses.size() == 40);
  double head = 0, tail = 0;
  for (int i = 0; i < 10; ++i) head += rec.losses[size_t(i)], tail += rec.losses[rec.losses.size() - 1 - size_t(i)];
  std::printf("  base: mean loss of the first 10 steps %.4f, last 10 %.4f\n", head / 10, tail / 10);
  CHECK(tail < 0.8 * head);
}

TEST_CASE(resume_refuses_another_problem) {
  const std::string root = temp_dir("trainer", "other");
  Setup s = make_setup(Trainer::diffusion, root);
  s.options.work_dir = root + "/run";
  s.options.steps = 3;
  Recorder rec;
  train(s.options, s.data, rec);
  s.options.resume = true;
  s.options.optim.lr *= 2;
  Recorder rec2;
  bool threw = false;
  try {
    train(s.options, s.data, rec2);
  } catch (const Error& e) {
    threw = std::string(e.message()).find("different run") != std::string::npos;
  }
  CHECK(threw);
  // Without resume, a work dir with checkpoints is refused too.
  s.options.resume = false;
  CHECK_THROWS(train(s.options, s.data, rec2));
}

TEST_CASE(bad_data_is_named) {
  const std::string root = temp_dir("trainer", "bad");
  Setup s = make_setup(Trainer::diffusion, root);
  s.options.checkpoint_every = 0;
  auto message = [&](const TrainData& d, const TrainOptions& o) {
    Recorder rec;
    try {
      train(o, d, rec);
    } catch (const Error& e) {
      return e.message();
    }
    return std::string("(no error)");
  };
  TrainData short_data = s.data;
  short_data.samples.pop_back();
  CHECK(message(short_data, s.options).find("latents have") != std::string::npos);
  TrainData nan_data = s.data;
  nan_data.samples[7] = std::nanf("");
  CHECK(message(nan_data, s.options).find("data[7] is NaN") != std::string::npos);
  TrainOptions dmd = make_setup(Trainer::score_distillation, root).options;
  dmd.checkpoint_every = 0;
  TrainData no_uncond = s.data;
  no_uncond.samples.clear();
  no_uncond.text_uncond.clear();
  CHECK(message(no_uncond, dmd).find("negative prompt") != std::string::npos);
  TrainOptions bad_k = s.options;
  bad_k.model.frames_per_block = 3;
  CHECK(message(s.data, bad_k).find("do not split into blocks") != std::string::npos);
}

TEST_MAIN()
