// GPU benchmark of the native engine (built by native/CMakeLists.txt's CUDA block as
// cuda_bench): one training step (loss + backward; the optimizer is not included) per objective
// and few-step streaming generation (frames/s, first-block latency) on a model with Wan-1.3B
// widths (dim 1536, 12 heads, ffn 8960, text 512x4096) and fewer layers and frames, so one run
// fits a device call. Prints a human table and, last, one JSON line that
// test/bench/cuda-bench.py reads to print ratios against PyTorch at the same shapes.
//
// Options: --precision fp32|bf16 (default: the backend's default), --profile (per-op GPU times of
// one teacher-forcing step, with GEMM TFLOP/s and memory-bound ops as % of the measured
// device-to-device copy bandwidth), --gemm (every GEMM shape of that step through our call path
// against bare cuBLASLt on bf16 operands), --graphs (only this: the GPU pipeline preset's tiny
// model, where kernel launches dominate, with CUDA graphs against the same backend without:
// teacher-forcing and ODE steps and few-step streaming videos).
//
// Usage: cuda_bench [options] [layers=4] [frames=9] [height=30] [width=52]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/objectives.h"
#include "core/sampler_model.h"
#include "core/samplers.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernels.h"
#include "cuda/op_profiler.h"

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

// Median GPU time of `fn` (queued on `stream`) over `iters` runs after two warm-ups, by events.
double event_ms(cudaStream_t stream, int iters, const std::function<void()>& fn) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  fn();
  fn();
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(a, stream);
    fn();
    cudaEventRecord(b, stream);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Device-to-device copy bandwidth in GB/s, counting bytes read plus bytes written.
double copy_bandwidth_gbs(cudaStream_t stream) {
  const size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
  cudaMemsetAsync(a, 1, bytes, stream);
  const double ms = event_ms(stream, 10, [&] { cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream); });
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
}

void print_profile(const std::vector<OpStat>& ops, double copy_gbs, const char* what = "one teacher-forcing step") {
  double total = 0;
  std::map<std::string, double> by_kind_ms, by_kind_work;
  for (const OpStat& o : ops) {
    total += o.ms;
    by_kind_ms[o.kind] += o.ms;
    by_kind_work[o.kind] += o.kind == "memory" ? o.bytes : o.flops;
  }
  std::printf("\nPer-op GPU time of %s (events around each op; %.2f ms in ops):\n", what, total);
  std::printf("  %-52s %6s %9s %6s %9s %8s\n", "op", "calls", "ms", "%", "TFLOP/s", "%copyBW");
  for (const OpStat& o : ops) {
    if (o.ms < 0.004 * total) continue;
    const double rate = o.kind == "memory" ? 0 : o.flops / (o.ms * 1e-3) / 1e12;
    const double bw = o.kind == "memory" ? 100.0 * o.bytes / (o.ms * 1e-3) / 1e9 / copy_gbs : 0;
    std::printf("  %-52s %6lld %9.3f %6.1f %9.1f %8.1f\n", o.name.c_str(), (long long)o.calls, o.ms,
                100 * o.ms / total, rate, bw);
  }
  std::printf("  by kind:");
  for (auto& kv : by_kind_ms) {
    const double work = by_kind_work[kv.first];
    if (kv.first == "memory")
      std::printf("  memory %.2f ms (%.1f%%, %.0f GB/s = %.1f%% of copy BW)", kv.second, 100 * kv.second / total,
                  work / (kv.second * 1e-3) / 1e9, 100 * work / (kv.second * 1e-3) / 1e9 / copy_gbs);
    else
      std::printf("  %s %.2f ms (%.1f%%, %.1f TFLOP/s)", kv.first.c_str(), kv.second, 100 * kv.second / total,
                  work / (kv.second * 1e-3) / 1e12);
  }
  std::printf("\n");
}

// Each GEMM shape of the profiled step: our call path in the backend's mode (bf16: cast kernels +
// cuBLASLt bf16) and cuBLASLt's fp32-in/bf16-compute mode, against bare cuBLASLt on operands
// already in bf16 (the library's own speed at that shape), and the fp32 path.
void gemm_table(const std::vector<OpStat>& ops, Backend<float>& be, std::string& json) {
  cudaStream_t st = cuda::stream_of(be);
  cuda::Gemm gemm(st);
  std::printf("\nGEMMs of the step, each timed alone (median of 10, events), TFLOP/s and %% of bare cuBLASLt bf16:\n");
  std::printf("  %-34s %6s %10s %10s %10s %10s %8s %8s\n", "shape (ta tb MxNxK)", "calls", "bare bf16", "ours cast",
              "lt fast16", "fp32", "cast %", "fast %");
  double t_bare = 0, t_cast = 0, t_fast = 0, t_fp32 = 0, flops_all = 0;
  for (const OpStat& o : ops) {
    if (o.kind != "gemm") continue;
    const int64_t ar = o.ta ? o.K : o.M, ac = o.ta ? o.M : o.K, br = o.tb ? o.N : o.K, bc = o.tb ? o.K : o.N;
    Tensor<float> A = be.empty({ar * ac}), B = be.empty({br * bc}), C = be.zeros({o.M * o.N});
    std::vector<float> h(static_cast<size_t>(std::max(ar * ac, br * bc)));
    Philox(11, 0).fill_normal(h.data(), h.size());
    be.upload(A.data(), h.data(), ar * ac);
    be.upload(B.data(), h.data(), br * bc);
    Tensor<float> A16 = be.empty({(ar * ac + 1) / 2}), B16 = be.empty({(br * bc + 1) / 2});
    gemm.cast_bf16(A16.data(), A.data(), ar, ac, ac);
    gemm.cast_bf16(B16.data(), B.data(), br, bc, bc);
    const double f = 2.0 * double(o.M) * double(o.N) * double(o.K);
    auto run = [&](cuda::GemmMode m) {
      return event_ms(st, 10, [&] { gemm.run(m, o.ta, o.tb, o.M, o.N, o.K, 1.f, A.data(), ac, B.data(), bc, 0.f, C.data(), o.N); });
    };
    const double bare = event_ms(st, 10, [&] {
      gemm.run_bf16_operands(o.ta, o.tb, o.M, o.N, o.K, A16.data(), ac, B16.data(), bc, C.data(), o.N);
    });
    const double cast = run(cuda::GemmMode::bf16_cast), fast = run(cuda::GemmMode::bf16_fast), fp = run(cuda::GemmMode::fp32);
    std::printf("  %c%c %-31s %6lld %10.1f %10.1f %10.1f %10.1f %7.1f%% %7.1f%%\n", o.ta ? 'T' : 'N', o.tb ? 'T' : 'N',
                (std::to_string(o.M) + "x" + std::to_string(o.N) + "x" + std::to_string(o.K)).c_str(), (long long)o.calls,
                f / bare / 1e9, f / cast / 1e9, f / fast / 1e9, f / fp / 1e9, 100 * bare / cast, 100 * bare / fast);
    t_bare += o.calls * bare, t_cast += o.calls * cast, t_fast += o.calls * fast, t_fp32 += o.calls * fp;
    flops_all += o.calls * f;
  }
  std::printf("  all GEMMs of the step: bare bf16 %.2f ms (%.0f TFLOP/s), ours %.2f ms = %.1f%% of bare, lt fast16 %.2f "
              "ms = %.1f%%, fp32 %.2f ms\n",
              t_bare, flops_all / t_bare / 1e9, t_cast, 100 * t_bare / t_cast, t_fast, 100 * t_bare / t_fast, t_fp32);
  char buf[256];
  std::snprintf(buf, sizeof buf, ", \"gemm_bare_ms\": %.4f, \"gemm_ours_ms\": %.4f, \"gemm_fast_ms\": %.4f, \"gemm_fp32_ms\": %.4f",
                t_bare, t_cast, t_fast, t_fp32);
  json += buf;
}

}  // namespace

// n standard normals from Philox(seed) in a new buffer of `be`.
Tensor<float> device_normals(Backend<float>& be, int64_t n, uint64_t seed) {
  std::vector<float> h(static_cast<size_t>(n));
  Philox(seed, 0).fill_normal(h.data(), h.size());
  Tensor<float> t = be.empty({n});
  be.upload(t.data(), h.data(), n);
  return t;
}

// --graphs: the GPU preset's model (tiny widths, patch 1, batch 8) with recording off, then on.
int graphs_bench(CudaPrecision precision) {
  ModelConfig c = ModelConfig::tiny(1);
  c.patch_h = c.patch_w = 1;
  const int64_t B = 8, F = c.frames, fr = c.channels * c.height * c.width, S = 6;
  const int iters = 200;
  std::printf("CUDA graphs (%s): tiny preset with patch 1 (%lld tokens/frame), batch %lld, median of %d steps\n",
              cuda_precision_name(precision), (long long)c.tokens_per_frame(), (long long)B, iters);
  double ms[2][4] = {};
  for (int graphs = 0; graphs < 2; ++graphs) {
    auto be = make_cuda_backend(0, precision, graphs == 1);
    auto dev_rand = [&](int64_t n, uint64_t seed) { return device_normals(*be, n, seed); };
    Tensor<float> x0 = dev_rand(B * F * fr, 1), text = dev_rand(B * c.text_len * c.text_dim, 2),
                  traj = dev_rand(B * S * F * fr, 4), video = be->empty({B * F * fr});
    Model<float> gen(*be, c);
    gen.init(1);
    ObjectiveScratch<float> s(*be);
    const FlowMatchScheduler grid = generator_training_grid();
    const std::vector<double> steps = warped_step_list({1000, 750, 500, 250}, grid);
    Philox rng(7, 0);
    auto warm = [&](const std::function<void()>& fn) {  // past the warm-up, timed and recording runs
      for (int i = 0; i < 4; ++i) fn();
      return fn;
    };
    ms[graphs][0] = time_ms(*be, iters, warm([&] {
      gen.zero_grad();
      teacher_forcing_diffusion_loss(gen, s, grid, x0.data(), text.data(), B, F, rng);
    }));
    ms[graphs][1] = time_ms(*be, iters, warm([&] {
      gen.zero_grad();
      ode_regression_loss(gen, s, grid, steps, traj.data(), S, text.data(), B, F, rng);
    }));
    ModelFlowNet net(gen, B, text.data());
    FewStepConfig fc;
    fc.frames_per_block = c.frames_per_block;
    fc.steps = steps;
    ms[graphs][2] = time_ms(*be, 20, warm([&] { sample_few_step(net, fc, grid, rng, video.data()); }));
    // The model alone (what the recordings cover): a teacher-forcing forward and its backward on
    // fixed inputs, so the rest of a step (noise, uploads, loss read back) shows as the difference.
    Tensor<float> t = be->empty({B * F}), v = be->empty({B * F * fr});
    be->fill(t.data(), 500.0f, B * F);
    ms[graphs][3] = time_ms(*be, iters, warm([&] {
      gen.forward_teacher_forcing(v.data(), x0.data(), t.data(), x0.data(), 0.0, text.data(), B, F);
      gen.backward(v.data());
    }));
  }
  const CudaGraphStats g = cuda_graph_stats();
  const char* what[4] = {"teacher-forcing step (loss + grads)", "ODE regression step", "few-step video (4 steps, 9 blocks)",
                         "TF forward + backward alone"};
  std::printf("%-38s %12s %12s %8s\n", "", "eager ms", "graphs ms", "speedup");
  for (int i = 0; i < 4; ++i)
    std::printf("%-38s %12.3f %12.3f %7.2fx\n", what[i], ms[0][i], ms[1][i], ms[0][i] / ms[1][i]);
  std::printf("graphs: %llu recorded, %llu replays, %llu left eager (device-bound), %llu failed\n",
              (unsigned long long)g.recorded, (unsigned long long)g.replayed, (unsigned long long)g.declined,
              (unsigned long long)g.failed);
  return g.failed == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  std::string why;
  if (cuda_device_count(&why) == 0) {
    std::printf("cuda_bench: no CUDA device (%s)\n", why.c_str());
    return 1;
  }
  CudaPrecision precision = default_cuda_precision();
  bool profile = false, gemms = false, graphs_only = false;
  std::vector<int> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--precision" && i + 1 < argc) precision = std::string(argv[++i]) == "fp32" ? CudaPrecision::fp32 : CudaPrecision::bf16;
    else if (a == "--profile") profile = true;
    else if (a == "--gemm") gemms = profile = true;
    else if (a == "--graphs") graphs_only = true;
    else pos.push_back(std::atoi(argv[i]));
  }
  if (graphs_only) return graphs_bench(precision);
  ModelConfig c = ModelConfig::wan_1_3b(3);
  c.layers = pos.size() > 0 ? pos[0] : 4;
  c.frames = pos.size() > 1 ? pos[1] : 9;
  c.height = pos.size() > 2 ? pos[2] : 30;
  c.width = pos.size() > 3 ? pos[3] : 52;
  auto cuda_be = make_cuda_backend(0, precision);
  auto prof = make_op_profiler(*cuda_be);
  Backend<float>* be = &prof->backend();  // forwards to cuda_be; records only between start/stop
  const int64_t B = 1, F = c.frames, fr = c.channels * c.height * c.width;
  std::printf("cuda_bench on %s (GEMM: %s): dim %lld, heads %lld, ffn %lld, layers %lld, %lld frames of %lldx%lld "
              "latents (%lld tokens/frame), k = %lld, batch %lld, %s (GEMM mode %s)\n",
              cuda_device_name(0).c_str(), cuda_gemm_engine(), (long long)c.dim, (long long)c.heads,
              (long long)c.ffn_dim, (long long)c.layers, (long long)F, (long long)c.height, (long long)c.width,
              (long long)c.tokens_per_frame(), (long long)c.frames_per_block, (long long)B, cuda_precision_name(precision),
              precision == CudaPrecision::fp32 ? "fp32" : (std::getenv("CFPIPE_CUDA_BF16_GEMM") ? std::getenv("CFPIPE_CUDA_BF16_GEMM") : "cast"));
  auto dev_rand = [&](int64_t n, uint64_t seed) { return device_normals(*be, n, seed); };
  {  // one step's noise drawn on the host, as the objectives did before the backend drew it on the GPU
    std::vector<float> h(static_cast<size_t>(B * F * fr));
    const double t0 = now_ms();
    Philox(9, 0).fill_normal(h.data(), h.size());
    std::printf("host Philox normals (%lld values, one step's noise): %.2f ms\n", (long long)h.size(), now_ms() - t0);
  }
  Tensor<float> x0 = dev_rand(B * F * fr, 1), text = dev_rand(B * c.text_len * c.text_dim, 2),
                text_u = dev_rand(B * c.text_len * c.text_dim, 3);
  Model<float> gen(*be, c), teacher(*be, c), ema(*be, c);
  gen.init(1), teacher.init(2), ema.init(3);
  ObjectiveScratch<float> s(*be);
  const FlowMatchScheduler grid = generator_training_grid(), cd = ode_grid();
  const std::vector<double> steps = warped_step_list({1000, 750, 500, 250}, grid);
  Philox rng(7, 0);
  const int iters = 5;
  double loss = 0;

  const double tf_ms = time_ms(*cuda_be, iters, [&] {
    gen.zero_grad();
    loss = teacher_forcing_diffusion_loss(gen, s, grid, x0.data(), text.data(), B, F, rng);
  });
  const int64_t S = 6;
  Tensor<float> traj = dev_rand(B * S * F * fr, 4);
  const double ode_ms = time_ms(*cuda_be, iters, [&] {
    gen.zero_grad();
    loss = ode_regression_loss(gen, s, grid, steps, traj.data(), S, text.data(), B, F, rng);
  });
  const double cd_ms = time_ms(*cuda_be, iters, [&] {
    gen.zero_grad();
    loss = consistency_distillation_loss(gen, teacher, ema, s, grid, cd, x0.data(), text.data(), text_u.data(), B, F,
                                         3.0, rng);
  });
  // DMD steps draw their rollout exit index e ~ U{0..3} first (1 + e denoising forwards per block),
  // so their cost depends on the draws. The PyTorch reference's timed draws (random.Random(7)) are
  // e = [0, 2, 0] (generator) and [0, 0, 3] (critic): its medians are exit-0 steps. The compared
  // figures (dmd_gen_ms, dmd_critic_ms) therefore fix e = 0 (a one-step list with the same first
  // timestep); the engine's own random draws are timed too (dmd_*_random_ms) with the exits printed.
  DmdConfig dc;
  dc.steps = steps;
  DmdConfig dc0 = dc;
  dc0.steps = {steps[0]};
  FlowMatchScheduler score_grid(FlowMatchConfig{1000, 8.0, 1.0, 0.0, true});
  score_grid.set_timesteps(1000);
  std::string exits_g, exits_c;
  auto peek_exit = [&](std::string& log) {  // the exit index the next rollout draws (its first draw)
    Philox peek(rng.state());
    log += std::to_string(peek.uniform_int(static_cast<uint32_t>(dc.steps.size()))) + " ";
  };
  const double dmdg_rand_ms = time_ms(*cuda_be, iters, [&] {
    gen.zero_grad();
    peek_exit(exits_g);
    loss = dmd_generator_loss(gen, teacher, ema, s, grid, score_grid, dc, text.data(), text_u.data(), B, F, rng);
  });
  const double dmdc_rand_ms = time_ms(*cuda_be, iters, [&] {
    ema.zero_grad();
    peek_exit(exits_c);
    loss = dmd_critic_loss(gen, ema, s, grid, score_grid, dc, text.data(), B, F, rng);
  });
  const double dmdg_ms = time_ms(*cuda_be, iters, [&] {
    gen.zero_grad();
    loss = dmd_generator_loss(gen, teacher, ema, s, grid, score_grid, dc0, text.data(), text_u.data(), B, F, rng);
  });
  const double dmdc_ms = time_ms(*cuda_be, iters, [&] {
    ema.zero_grad();
    loss = dmd_critic_loss(gen, ema, s, grid, score_grid, dc0, text.data(), B, F, rng);
  });
  // Few-step streaming generation: 4 warped steps per block + one cache pass.
  ModelFlowNet net(gen, B, text.data());
  FewStepConfig fc;
  fc.frames_per_block = c.frames_per_block;
  fc.steps = steps;
  Tensor<float> video = be->empty({B * F * fr});
  const double gen_ms = time_ms(*cuda_be, iters, [&] { sample_few_step(net, fc, grid, rng, video.data()); });
  // First-block latency: one block's 4 denoising forwards at frame 0 (what a viewer waits for).
  Tensor<float> xb = dev_rand(B * c.frames_per_block * fr, 5), vb = be->empty({B * c.frames_per_block * fr});
  std::vector<float> th(static_cast<size_t>(B * c.frames_per_block), 1000.f);
  Tensor<float> tb = be->empty({int64_t(th.size())});
  be->upload(tb.data(), th.data(), int64_t(th.size()));
  KVCache<float> cache = gen.make_cache(B);
  const double first_ms = time_ms(*cuda_be, iters, [&] {
    cache.reset_prompt();
    for (size_t i = 0; i < steps.size(); ++i)
      gen.forward_stream(vb.data(), xb.data(), tb.data(), text.data(), B, 0, c.frames_per_block, cache, false);
  });
  const double fps = double(B * F) / (gen_ms / 1000.0);
  std::string extra;
  if (profile) {
    const double bw = copy_bandwidth_gbs(cuda::stream_of(*cuda_be));
    std::printf("device-to-device copy: %.0f GB/s (bytes read + written)\n", bw);
    prof->start();
    gen.zero_grad();
    teacher_forcing_diffusion_loss(gen, s, grid, x0.data(), text.data(), B, F, rng);
    const std::vector<OpStat> ops = prof->stop();
    print_profile(ops, bw);
    char buf[64];
    std::snprintf(buf, sizeof buf, ", \"copy_gbs\": %.1f", bw);
    extra += buf;
    if (gemms) gemm_table(ops, *cuda_be, extra);
    // The DMD critic step (exit 0): per-op GPU time against the step's wall time.
    ema.zero_grad();
    cuda_synchronize(*cuda_be);
    const double w0 = now_ms();
    prof->start();
    dmd_critic_loss(gen, ema, s, grid, score_grid, dc0, text.data(), B, F, rng);
    const std::vector<OpStat> cops = prof->stop();
    cuda_synchronize(*cuda_be);
    const double wall = now_ms() - w0;
    double in_ops = 0;
    for (const OpStat& o : cops) in_ops += o.ms;
    std::printf("\nDMD critic step (exit 0), profiled: wall %.2f ms (with event overhead), %.2f ms in ops\n", wall, in_ops);
    print_profile(cops, bw, "one DMD critic step (exit 0)");
  }
  std::printf("  %-44s %10.2f ms\n", "teacher_forcing_diffusion step", tf_ms);
  std::printf("  %-44s %10.2f ms\n", "ode_regression step", ode_ms);
  std::printf("  %-44s %10.2f ms\n", "consistency_distillation step", cd_ms);
  std::printf("  %-44s %10.2f ms\n", "dmd_generator step (exit 0)", dmdg_ms);
  std::printf("  %-44s %10.2f ms\n", "dmd_critic step (exit 0)", dmdc_ms);
  std::printf("  %-44s %10.2f ms (exits drawn: %s)\n", "dmd_generator step (random exit)", dmdg_rand_ms, exits_g.c_str());
  std::printf("  %-44s %10.2f ms (exits drawn: %s)\n", "dmd_critic step (random exit)", dmdc_rand_ms, exits_c.c_str());
  std::printf("  %-44s %10.2f ms (%.2f latent frames/s)\n", "few-step generation (4 steps)", gen_ms, fps);
  std::printf("  %-44s %10.2f ms\n", "first-block latency (4 forwards)", first_ms);
  std::printf("  (last loss %.4f)\n", loss);
  std::printf("JSON {\"layers\": %lld, \"frames\": %lld, \"height\": %lld, \"width\": %lld, \"tf_ms\": %.4f, "
              "\"ode_ms\": %.4f, \"cd_ms\": %.4f, \"dmd_gen_ms\": %.4f, \"dmd_critic_ms\": %.4f, \"gen_ms\": %.4f, "
              "\"first_block_ms\": %.4f, \"dmd_gen_random_ms\": %.4f, \"dmd_critic_random_ms\": %.4f, "
              "\"precision\": \"%s\"%s}\n",
              (long long)c.layers, (long long)F, (long long)c.height, (long long)c.width, tf_ms, ode_ms, cd_ms,
              dmdg_ms, dmdc_ms, gen_ms, first_ms, dmdg_rand_ms, dmdc_rand_ms, cuda_precision_name(precision),
              extra.c_str());
  return 0;
}
