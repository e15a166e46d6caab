// GPU benchmark of the native engine (built by native/CMakeLists.txt's CUDA block as
// cuda_bench): one training step (loss + backward; the optimizer is not included) per objective
// and few-step streaming generation (frames/s, first-block latency) on a model with Wan-1.3B
// widths (dim 1536, 12 heads, ffn 8960, text 512x4096) and fewer layers and frames, so one run
// fits a device call. Prints a human table and, last, one JSON line that
// test/bench/cuda-bench.py reads to print ratios against PyTorch at the same shapes.
//
// Usage: cuda_bench [layers=4] [frames=9] [height=30] [width=52]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/objectives.h"
#include "core/sampler_model.h"
#include "core/samplers.h"
#include "cuda/cuda_backend.h"

using namespace cfp;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median of `iters` timed runs after one warm-up (the warm-up allocates the workspaces).
double time_ms(Backend<float>& be, int iters, const std::function<void()>& fn) {
  fn();
  cuda_synchronize(be);
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    const double t0 = now_ms();
    fn();
    cuda_synchronize(be);
    t.push_back(now_ms() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string why;
  if (cuda_device_count(&why) == 0) {
    std::printf("cuda_bench: no CUDA device (%s)\n", why.c_str());
    return 1;
  }
  ModelConfig c = ModelConfig::wan_1_3b(3);
  c.layers = argc > 1 ? std::atoi(argv[1]) : 4;
  c.frames = argc > 2 ? std::atoi(argv[2]) : 9;
  c.height = argc > 3 ? std::atoi(argv[3]) : 30;
  c.width = argc > 4 ? std::atoi(argv[4]) : 52;
  auto be = make_cuda_backend(0);
  const int64_t B = 1, F = c.frames, fr = c.channels * c.height * c.width;
  std::printf("cuda_bench on %s (GEMM: %s): dim %lld, heads %lld, ffn %lld, layers %lld, %lld frames of %lldx%lld "
              "latents (%lld tokens/frame), k = %lld, batch %lld, fp32\n",
              cuda_device_name(0).c_str(), cuda_gemm_engine(), (long long)c.dim, (long long)c.heads,
              (long long)c.ffn_dim, (long long)c.layers, (long long)F, (long long)c.height, (long long)c.width,
              (long long)c.tokens_per_frame(), (long long)c.frames_per_block, (long long)B);
  auto dev_rand = [&](int64_t n, uint64_t seed) {
    std::vector<float> h(static_cast<size_t>(n));
    Philox(seed, 0).fill_normal(h.data(), h.size());
    Tensor<float> t = be->empty({n});
    be->upload(t.data(), h.data(), n);
    return t;
  };
  Tensor<float> x0 = dev_rand(B * F * fr, 1), text = dev_rand(B * c.text_len * c.text_dim, 2),
                text_u = dev_rand(B * c.text_len * c.text_dim, 3);
  Model<float> gen(*be, c), teacher(*be, c), ema(*be, c);
  gen.init(1), teacher.init(2), ema.init(3);
  ObjectiveScratch<float> s(*be);
  const FlowMatchScheduler grid = generator_training_grid(), cd = ode_grid();
  const std::vector<double> steps = warped_step_list({1000, 750, 500, 250}, grid);
  Philox rng(7, 0);
  const int iters = 3;
  double loss = 0;

  const double tf_ms = time_ms(*be, iters, [&] {
    gen.zero_grad();
    loss = teacher_forcing_diffusion_loss(gen, s, grid, x0.data(), text.data(), B, F, rng);
  });
  const int64_t S = 6;
  Tensor<float> traj = dev_rand(B * S * F * fr, 4);
  const double ode_ms = time_ms(*be, iters, [&] {
    gen.zero_grad();
    loss = ode_regression_loss(gen, s, grid, steps, traj.data(), S, text.data(), B, F, rng);
  });
  const double cd_ms = time_ms(*be, iters, [&] {
    gen.zero_grad();
    loss = consistency_distillation_loss(gen, teacher, ema, s, grid, cd, x0.data(), text.data(), text_u.data(), B, F,
                                         3.0, rng);
  });
  DmdConfig dc;
  dc.steps = steps;
  FlowMatchScheduler score_grid(FlowMatchConfig{1000, 8.0, 1.0, 0.0, true});
  score_grid.set_timesteps(1000);
  const double dmdg_ms = time_ms(*be, iters, [&] {
    gen.zero_grad();
    loss = dmd_generator_loss(gen, teacher, ema, s, grid, score_grid, dc, text.data(), text_u.data(), B, F, rng);
  });
  const double dmdc_ms = time_ms(*be, iters, [&] {
    ema.zero_grad();
    loss = dmd_critic_loss(gen, ema, s, grid, score_grid, dc, text.data(), B, F, rng);
  });
  // Few-step streaming generation: 4 warped steps per block + one cache pass.
  ModelFlowNet net(gen, B, text.data());
  FewStepConfig fc;
  fc.frames_per_block = c.frames_per_block;
  fc.steps = steps;
  Tensor<float> video = be->empty({B * F * fr});
  const double gen_ms = time_ms(*be, iters, [&] { sample_few_step(net, fc, grid, rng, video.data()); });
  // First-block latency: one block's 4 denoising forwards at frame 0 (what a viewer waits for).
  Tensor<float> xb = dev_rand(B * c.frames_per_block * fr, 5), vb = be->empty({B * c.frames_per_block * fr});
  std::vector<float> th(static_cast<size_t>(B * c.frames_per_block), 1000.f);
  Tensor<float> tb = be->empty({int64_t(th.size())});
  be->upload(tb.data(), th.data(), int64_t(th.size()));
  KVCache<float> cache = gen.make_cache(B);
  const double first_ms = time_ms(*be, iters, [&] {
    cache.reset_prompt();
    for (size_t i = 0; i < steps.size(); ++i)
      gen.forward_stream(vb.data(), xb.data(), tb.data(), text.data(), B, 0, c.frames_per_block, cache, false);
  });
  const double fps = double(B * F) / (gen_ms / 1000.0);
  std::printf("  %-44s %10.2f ms\n", "teacher_forcing_diffusion step", tf_ms);
  std::printf("  %-44s %10.2f ms\n", "ode_regression step", ode_ms);
  std::printf("  %-44s %10.2f ms\n", "consistency_distillation step", cd_ms);
  std::printf("  %-44s %10.2f ms\n", "dmd_generator step", dmdg_ms);
  std::printf("  %-44s %10.2f ms\n", "dmd_critic step", dmdc_ms);
  std::printf("  %-44s %10.2f ms (%.2f latent frames/s)\n", "few-step generation (4 steps)", gen_ms, fps);
  std::printf("  %-44s %10.2f ms\n", "first-block latency (4 forwards)", first_ms);
  std::printf("  (last loss %.4f)\n", loss);
  std::printf("JSON {\"layers\": %lld, \"frames\": %lld, \"height\": %lld, \"width\": %lld, \"tf_ms\": %.4f, "
              "\"ode_ms\": %.4f, \"cd_ms\": %.4f, \"dmd_gen_ms\": %.4f, \"dmd_critic_ms\": %.4f, \"gen_ms\": %.4f, "
              "\"first_block_ms\": %.4f}\n",
              (long long)c.layers, (long long)F, (long long)c.height, (long long)c.width, tf_ms, ode_ms, cd_ms,
              dmdg_ms, dmdc_ms, gen_ms, first_ms);
  return 0;
}
