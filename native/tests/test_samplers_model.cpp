// Samplers on the real causal DiT (tiny preset, CPU backend): the blockwise-KV causal ODE equals
// the teacher-forcing ODE, sampling is a pure function of the RNG state, and the call counts.
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/sampler_model.h"
#include "cpu/cpu_backend.h"
#include "tests/math_test_util.h"

using namespace cfp;

namespace {

struct Setup {
  std::unique_ptr<Backend<float>> be;
  ModelConfig config;
  std::unique_ptr<Model<float>> model;
  int64_t B;
  Tensor<float> text_cond, text_uncond;

  Setup(int64_t k, int64_t batch, int64_t frames, int threads = 0) : be(make_cpu_backend<float>(threads)), B(batch) {
    config = ModelConfig::tiny(k);
    config.frames = frames;
    model = std::make_unique<Model<float>>(*be, config);
    model->init(2024);
    text_cond = random_tensor({B, config.text_len, config.text_dim}, 1);
    text_uncond = random_tensor({B, config.text_len, config.text_dim}, 2);
  }
  Tensor<float> random_tensor(Shape shape, uint64_t stream) {
    Tensor<float> t = be->empty(shape);
    std::vector<float> host(static_cast<size_t>(t.numel()));
    Philox(99, stream).fill_normal(host.data(), host.size());
    be->upload(t.data(), host.data(), t.numel());
    return t;
  }
  int64_t clip_numel() const { return B * config.frames * config.channels * config.height * config.width; }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// The spec's ODE settings (48 steps, shift 5, g = 6, snapshots 0/12/24/36) on two blocks.
static void check_kv_equals_tf(int64_t k) {
  Setup s(k, /*batch=*/1, /*frames=*/2 * k);
  OdeConfig cfg;
  cfg.frames_per_block = k;
  const Tensor<float> clean = s.random_tensor({s.clip_numel()}, 3);
  const int64_t slots = ode_slots(cfg), total = slots * s.clip_numel();
  std::vector<float> tf(static_cast<size_t>(total)), kv(static_cast<size_t>(total));
  const auto t0 = std::chrono::steady_clock::now();
  {
    ModelFlowNet net(*s.model, s.B, s.text_cond.data(), s.text_uncond.data());
    Philox rng(5);
    const SamplerStats st = generate_ode_trajectory(net, cfg, OdeMode::teacher_forcing, clean.data(), rng, tf.data());
    CHECK(st.denoise_calls == 2 * 48 && st.cache_calls == 0);
  }
  const double t_tf = seconds_since(t0);
  const auto t1 = std::chrono::steady_clock::now();
  {
    ModelFlowNet net(*s.model, s.B, s.text_cond.data(), s.text_uncond.data());
    Philox rng(5);
    const SamplerStats st = generate_ode_trajectory(net, cfg, OdeMode::blockwise_kv, clean.data(), rng, kv.data());
    CHECK(st.denoise_calls == 2 * 2 * 48 && st.cache_calls == 2 * 2);
  }
  const double t_kv = seconds_since(t1);
  double worst = 0, scale = 0, moved = 0;
  const int64_t clip = s.clip_numel();
  for (int64_t i = 0; i < total; ++i) {
    worst = std::max(worst, double(std::fabs(tf[i] - kv[i])) / (1e-4 + 1e-4 * std::fabs(tf[i])));
    scale = std::max(scale, double(std::fabs(tf[i])));
  }
  for (int64_t i = 0; i < clip; ++i) moved = std::max(moved, double(std::fabs(tf[4 * clip + i] - tf[i])));
  std::printf("  k=%lld: TF ODE %.2fs, blockwise-KV ODE %.2fs; max |tf - kv| / (1e-4 + 1e-4 |tf|) = %.3g (|x| up to %.3g)\n",
              static_cast<long long>(k), t_tf, t_kv, worst, scale);
  CHECK(worst <= 1.0);
  CHECK(moved > 0.1);  // the ODE really moved the latents away from the noise
  CHECK(std::memcmp(tf.data() + 5 * clip, clean.data(), clip * sizeof(float)) == 0);

  // The agreement is not vacuous: the second block's ODE depends on the first block's GT (through
  // the TF mask, and through the cache in KV mode), while the first block's does not.
  Tensor<float> other = s.random_tensor({clip}, 4);
  s.be->copy(other.data() + clip / 2, clean.data() + clip / 2, clip / 2);  // same GT for block 1
  std::vector<float> tf2(static_cast<size_t>(total));
  ModelFlowNet net(*s.model, s.B, s.text_cond.data(), s.text_uncond.data());
  Philox rng(5);
  generate_ode_trajectory(net, cfg, OdeMode::teacher_forcing, other.data(), rng, tf2.data());
  double block0 = 0, block1 = 0;
  for (int64_t i = 0; i < clip / 2; ++i) {
    block0 = std::max(block0, double(std::fabs(tf2[4 * clip + i] - tf[4 * clip + i])));
    block1 = std::max(block1, double(std::fabs(tf2[4 * clip + clip / 2 + i] - tf[4 * clip + clip / 2 + i])));
  }
  CHECK(block0 == 0.0);
  CHECK(block1 > 1e-3);
}

TEST_CASE(blockwise_kv_ode_equals_teacher_forcing_ode) {
  check_kv_equals_tf(3);
  check_kv_equals_tf(1);
}

TEST_CASE(few_step_on_the_model_is_deterministic_and_counts_calls) {
  Setup s(/*k=*/1, /*batch=*/2, /*frames=*/3);
  const FlowMatchScheduler grid = generator_training_grid();
  FewStepConfig cfg;
  cfg.frames_per_block = 1;
  cfg.steps = warped_step_list({1000, 750, 500, 250}, grid);
  std::vector<float> a(s.clip_numel()), b(s.clip_numel()), c(s.clip_numel());
  SamplerStats st;
  {
    ModelFlowNet net(*s.model, s.B, s.text_cond.data());
    Philox rng(7, 1);
    st = sample_few_step(net, cfg, grid, rng, a.data());
  }
  {
    ModelFlowNet net(*s.model, s.B, s.text_cond.data());
    Philox rng(7, 1);
    sample_few_step(net, cfg, grid, rng, b.data());
  }
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  CHECK(st.denoise_calls == 3 * 4 && st.cache_calls == 3);
  for (float v : a) CHECK(std::isfinite(v));
  // A 1-step list: one forward per block plus the cache pass, and the result is x - 1 * G(x, 1000).
  cfg.steps = warped_step_list({1000}, grid);
  ModelFlowNet net(*s.model, s.B, s.text_cond.data());
  Philox rng(7, 1);
  st = sample_few_step(net, cfg, grid, rng, c.data());
  CHECK(st.denoise_calls == 3 && st.cache_calls == 3 && st.calls() == 6);
  CHECK(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) != 0);
}

TEST_CASE(many_step_on_the_model_is_deterministic) {
  Setup s(/*k=*/3, /*batch=*/1, /*frames=*/6);
  ManyStepConfig cfg;
  cfg.frames_per_block = 3;
  cfg.num_steps = 6;
  cfg.guidance = 3.0;
  std::vector<float> a(s.clip_numel()), b(s.clip_numel());
  SamplerStats st;
  for (std::vector<float>* out : {&a, &b}) {
    ModelFlowNet net(*s.model, s.B, s.text_cond.data(), s.text_uncond.data());
    Philox rng(31);
    st = sample_many_step(net, cfg, rng, out->data());
  }
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  CHECK(st.denoise_calls == 2 * 6 * 2 && st.cache_calls == 2 * 2);
  for (float v : a) CHECK(std::isfinite(v));
  // Without an unconditional text, CFG sampling is refused with a clear error.
  ModelFlowNet no_uncond(*s.model, s.B, s.text_cond.data());
  Philox rng(31);
  CHECK_THROWS(sample_many_step(no_uncond, cfg, rng, a.data()));
}

TEST_CASE(sampling_does_not_depend_on_the_thread_count) {
  std::vector<float> outs[2];
  int i = 0;
  for (int threads : {1, 3}) {
    Setup s(/*k=*/3, /*batch=*/1, /*frames=*/6, threads);
    ManyStepConfig cfg;
    cfg.frames_per_block = 3;
    cfg.num_steps = 4;
    outs[i].resize(static_cast<size_t>(s.clip_numel()));
    ModelFlowNet net(*s.model, s.B, s.text_cond.data(), s.text_uncond.data());
    Philox rng(77);
    sample_many_step(net, cfg, rng, outs[i].data());
    ++i;
  }
  CHECK(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * sizeof(float)) == 0);
}

TEST_MAIN()
