// sample(options, onProgress?) -> {promise, cancel}: generation from a checkpoint on a native thread.
//
//   mode "few_step"   the distilled student: per block the warped step list, fresh re-noising, a
//                     clean cache-write pass; one conditional forward per step (spec §1.11, §3.10)
//   mode "many_step"  the AR teacher: per block UniPC (or Euler) with CFG against cond/uncond caches
//   mode "ode"        causal ODE trajectories of the teacher conditioned on clean clips (spec §1.6):
//                     [N, S, F, C, H, W] with S = snapshots + 2
//
// Rows are generated in batches of `batch`; batch j starting at row r draws its noise from
// Philox(seed, stream = rowIds[r]), so a row's result depends on (seed, its id, the batch size)
// and not on which call or shard produced it — what resumable, sharded generation needs.
// Reported per batch: network calls (each processes the whole batch), seconds, and the
// first-block latency (until the first call for block 1 starts: block 0 denoised and cached).
#include <napi.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>

#include "binding/args.h"
#include "binding/device.h"
#include "binding/errors.h"
#include "binding/job_runner.h"
#include "binding/model.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/sampler_model.h"
#include "core/samplers.h"
#include "core/schedule.h"
#include "core/trainer.h"
#include "cpu/cpu_backend.h"
#ifdef CFPIPE_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace cfp_binding {

namespace {

using Clock = std::chrono::steady_clock;

enum class Mode { few_step, many_step, ode };

struct SampleOptions {
  Mode mode = Mode::few_step;
  cfp::ModelConfig model;
  cfp::WeightsSource weights;
  int64_t count = 0;
  int64_t batch = 1;
  uint64_t seed = 0;
  int threads = 0;
  cfp::DeviceFactory device;  // empty: the CPU backend with `threads`
  std::vector<double> row_ids;  // per row: its noise stream
  std::vector<float> text, text_uncond, clean;
  // few_step
  cfp::FewStepConfig few;
  double timestep_shift = 5.0;
  // many_step
  cfp::ManyStepConfig many;
  // ode
  cfp::OdeConfig ode;
  cfp::OdeMode ode_mode = cfp::OdeMode::blockwise_kv;
};

struct SampleResult {
  bool cancelled = false;
  std::vector<float> out;
  std::vector<double> calls, denoise_calls, seconds, first_block_seconds;  // per row
  double total_seconds = 0;
  std::string backend;  // e.g. "cpu", "cuda:0"
  int64_t frames = 0;
};

// Times the first call that reaches past block 0.
class TimedNet : public cfp::FlowNet {
 public:
  explicit TimedNet(cfp::FlowNet& inner) : inner_(inner), start_(Clock::now()) {}
  cfp::Backend<float>& backend() override { return inner_.backend(); }
  int64_t batch() const override { return inner_.batch(); }
  int64_t frames() const override { return inner_.frames(); }
  int64_t frame_numel() const override { return inner_.frame_numel(); }
  void stream(int context, float* flow, const float* x, const float* t, int64_t start_frame, int64_t n_frames) override {
    if (first_block_ < 0 && start_frame > 0) {
#ifdef CFPIPE_HAVE_CUDA
      cfp::cuda_synchronize(inner_.backend());  // the first block's kernels have finished, not only been queued
#endif
      first_block_ = std::chrono::duration<double>(Clock::now() - start_).count();
    }
    inner_.stream(context, flow, x, t, start_frame, n_frames);
  }
  void teacher_forcing(int context, float* flow, const float* x_noisy, const float* t, const float* x_clean) override {
    inner_.teacher_forcing(context, flow, x_noisy, t, x_clean);
  }
  double first_block(double total) const { return first_block_ < 0 ? total : first_block_; }

 private:
  cfp::FlowNet& inner_;
  Clock::time_point start_;
  double first_block_ = -1;
};

SampleResult run_sampling(const SampleOptions& o, cfp::JobContext& context) {
  const cfp::ModelConfig& c = o.model;
  for (size_t i = 0; i < o.text.size(); ++i) CFP_CHECK(std::isfinite(o.text[i]), "sample: text[%zu] is not finite", i);
  for (size_t i = 0; i < o.text_uncond.size(); ++i) CFP_CHECK(std::isfinite(o.text_uncond[i]), "sample: textUncond[%zu] is not finite", i);
  for (size_t i = 0; i < o.clean.size(); ++i) CFP_CHECK(std::isfinite(o.clean[i]), "sample: clean[%zu] is not finite", i);
  cfp::ComputeDevice device = o.device ? o.device() : cfp::make_cpu_device(o.threads);
  cfp::Backend<float>& be = *device.backend;
  cfp::Model<float> model(be, c);
  const std::vector<float> w = cfp::load_model_weights(o.weights, c);
  be.upload(model.params().data(), w.data(), model.num_params());

  const int64_t L = c.text_len * c.text_dim, clip = c.frames * c.channels * c.height * c.width;
  const int64_t slots = o.mode == Mode::ode ? cfp::ode_slots(o.ode) : 1;
  const int64_t row = slots * clip;
  const cfp::FlowMatchScheduler grid = cfp::generator_training_grid(o.timestep_shift);
  SampleResult r;
  r.backend = be.name();
  r.out.resize(static_cast<size_t>(o.count * row));
  r.frames = c.frames;
  const auto all_start = Clock::now();
  for (int64_t r0 = 0; r0 < o.count; r0 += o.batch) {
    if (context.cancelled()) {
      r.cancelled = true;
      return r;
    }
    const int64_t B = std::min(o.batch, o.count - r0);
    auto text = be.empty({B * L});
    be.upload(text.data(), o.text.data() + r0 * L, B * L);
    cfp::Tensor<float> uncond;
    if (!o.text_uncond.empty()) {
      uncond = be.empty({B * L});
      for (int64_t b = 0; b < B; ++b) be.upload(uncond.data() + b * L, o.text_uncond.data(), L);
    }
    cfp::ModelFlowNet inner(model, B, text.data(), uncond.empty() ? nullptr : uncond.data());
    TimedNet net(inner);
    cfp::Philox rng(o.seed, static_cast<uint64_t>(o.row_ids[static_cast<size_t>(r0)]), 0);
    auto out = be.empty({B * row});
    const auto start = Clock::now();
    cfp::SamplerStats stats;
    switch (o.mode) {
      case Mode::few_step:
        stats = cfp::sample_few_step(net, o.few, grid, rng, out.data());
        break;
      case Mode::many_step:
        stats = cfp::sample_many_step(net, o.many, rng, out.data());
        break;
      case Mode::ode: {
        auto clean = be.empty({B * clip});
        be.upload(clean.data(), o.clean.data() + r0 * clip, B * clip);
        stats = cfp::generate_ode_trajectory(net, o.ode, o.ode_mode, clean.data(), rng, out.data());
        break;
      }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    be.download(r.out.data() + r0 * row, out.data(), B * row);
    for (int64_t b = 0; b < B; ++b) {
      r.calls.push_back(static_cast<double>(stats.calls()));
      r.denoise_calls.push_back(static_cast<double>(stats.denoise_calls));
      r.seconds.push_back(secs / static_cast<double>(B));
      r.first_block_seconds.push_back(net.first_block(secs));
    }
    for (int64_t i = r0 * row; i < (r0 + B) * row; ++i)
      CFP_CHECK(std::isfinite(r.out[static_cast<size_t>(i)]), "sample: the output of row %lld became non-finite",
                static_cast<long long>(r0 + (i - r0 * row) / row));
    const double elapsed = std::chrono::duration<double>(Clock::now() - all_start).count();
    context.report({r0 + B, o.count, {{"calls_per_video", static_cast<double>(stats.calls())}, {"videos_per_s", double(r0 + B) / elapsed}}, ""});
  }
  r.total_seconds = std::chrono::duration<double>(Clock::now() - all_start).count();
  return r;
}

Napi::Float32Array to_js(Napi::Env env, const std::vector<double>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = static_cast<float>(v[i]);
  return a;
}

Napi::Value sample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string W = "sample: options";
  const Napi::Object o = expect_object(info[0], W);
  SampleOptions opt;
  const std::string mode = opt_string(o, "mode", "few_step", W);
  if (mode == "few_step") opt.mode = Mode::few_step;
  else if (mode == "many_step") opt.mode = Mode::many_step;
  else if (mode == "ode") opt.mode = Mode::ode;
  else throw_type_error(env, W + ".mode must be \"few_step\", \"many_step\" or \"ode\", got \"" + mode + "\"");
  opt.model = model_config_from_js(o.Get("config"), W + ".config");
  const cfp::ModelConfig& c = opt.model;
  const Napi::Value wv = o.Get("weights");
  if (wv.IsString()) {
    opt.weights.path = wv.As<Napi::String>().Utf8Value();
  } else {
    const Napi::Object wo = expect_object(wv, W + ".weights");
    opt.weights.path = expect_string(wo.Get("path"), W + ".weights.path");
    opt.weights.prefix = opt_string(wo, "prefix", "", W + ".weights");
  }
  const int64_t big = int64_t{1} << 40;
  opt.count = expect_int(o.Get("count"), W + ".count", 1, big);
  opt.batch = opt_int(o, "batch", 1, W, 1, 4096);
  opt.seed = static_cast<uint64_t>(opt_int(o, "seed", 0, W, 0, (int64_t{1} << 53) - 1));
  opt.threads = static_cast<int>(opt_int(o, "threads", 0, W, 0, 1024));
  opt.device = device_factory(parse_device(env, opt_string(o, "device", "cpu", W), W + ".device"), opt.threads);
  opt.row_ids = number_list(o, "rowIds", W);
  if (opt.row_ids.empty())
    for (int64_t i = 0; i < opt.count; ++i) opt.row_ids.push_back(static_cast<double>(i));
  if (static_cast<int64_t>(opt.row_ids.size()) != opt.count)
    throw_type_error(env, W + ".rowIds has " + std::to_string(opt.row_ids.size()) + " entries, expected count = " + std::to_string(opt.count));
  for (double id : opt.row_ids)
    if (id < 0 || id != std::floor(id)) throw_type_error(env, W + ".rowIds must hold non-negative integers");
  const int64_t L = c.text_len * c.text_dim, clip = c.frames * c.channels * c.height * c.width;
  opt.text = copy_float32(o.Get("text"), W + ".text [count, textLen, textDim] = [" + std::to_string(opt.count) + ", " + std::to_string(c.text_len) +
                                             ", " + std::to_string(c.text_dim) + "]",
                          opt.count * L);
  if (has(o, "textUncond"))
    opt.text_uncond = copy_float32(o.Get("textUncond"), W + ".textUncond [textLen, textDim]", L);
  const int64_t k = c.frames_per_block;
  opt.timestep_shift = opt_number(o, "timestepShift", 5.0, W);
  switch (opt.mode) {
    case Mode::few_step:
      opt.few.frames_per_block = k;
      opt.few.steps = number_list(o, "steps", W);
      opt.few.first_block_steps = number_list(o, "firstBlockSteps", W);
      opt.few.context_noise = opt_number(o, "contextNoise", 0.0, W);
      if (opt.few.steps.empty()) throw_type_error(env, W + ".steps (the warped denoising step list) is required for few_step sampling");
      break;
    case Mode::many_step:
      opt.many.frames_per_block = k;
      opt.many.num_steps = static_cast<int>(opt_int(o, "numSteps", 50, W, 1, 100000));
      opt.many.shift = opt_number(o, "shift", opt.timestep_shift, W);
      opt.many.guidance = opt_number(o, "guidance", 3.0, W);
      {
        const std::string solver = opt_string(o, "solver", "unipc", W);
        if (solver == "unipc") opt.many.solver = cfp::ManyStepSolver::unipc;
        else if (solver == "euler") opt.many.solver = cfp::ManyStepSolver::euler;
        else throw_type_error(env, W + ".solver must be \"unipc\" or \"euler\", got \"" + solver + "\"");
      }
      if (opt.many.guidance != 1.0 && opt.text_uncond.empty())
        throw_type_error(env, W + ".textUncond (the negative prompt's embedding) is required for CFG (guidance != 1)");
      break;
    case Mode::ode: {
      opt.ode.frames_per_block = k;
      opt.ode.num_steps = static_cast<int>(opt_int(o, "numSteps", 48, W, 1, 100000));
      opt.ode.shift = opt_number(o, "shift", 5.0, W);
      opt.ode.guidance = opt_number(o, "guidance", 6.0, W);
      if (has(o, "snapshots")) {
        opt.ode.snapshots.clear();
        for (double s : number_list(o, "snapshots", W)) opt.ode.snapshots.push_back(static_cast<int>(s));
      }
      const std::string m = opt_string(o, "odeMode", "blockwise_kv", W);
      if (m == "blockwise_kv") opt.ode_mode = cfp::OdeMode::blockwise_kv;
      else if (m == "teacher_forcing" || m == "full") opt.ode_mode = cfp::OdeMode::teacher_forcing;
      else throw_type_error(env, W + ".odeMode must be \"blockwise_kv\" or \"full\", got \"" + m + "\"");
      opt.clean = copy_float32(o.Get("clean"), W + ".clean [count, frames, channels, height, width]", opt.count * clip);
      if (opt.ode.guidance != 1.0 && opt.text_uncond.empty())
        throw_type_error(env, W + ".textUncond (the negative prompt's embedding) is required for CFG (guidance != 1)");
      break;
    }
  }
  const Napi::Value on_progress = info.Length() > 1 ? info[1] : env.Undefined();
  auto shared = std::make_shared<SampleOptions>(std::move(opt));
  return start_job(env, "sample", on_progress, [shared](cfp::JobContext& context) -> ResultBuilder {
    const GraphCounts graphs_before = graph_counts_now();
    auto r = std::make_shared<SampleResult>(run_sampling(*shared, context));
    const GraphCounts graphs_after = graph_counts_now();
    return [r, graphs_before, graphs_after](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("cancelled", r->cancelled);
      if (r->cancelled) return out;
      Napi::Float32Array a = Napi::Float32Array::New(env, r->out.size());
      if (!r->out.empty()) std::memcpy(a.Data(), r->out.data(), r->out.size() * sizeof(float));
      out.Set("output", a);
      out.Set("calls", to_js(env, r->calls));
      out.Set("denoiseCalls", to_js(env, r->denoise_calls));
      out.Set("seconds", to_js(env, r->seconds));
      out.Set("firstBlockSeconds", to_js(env, r->first_block_seconds));
      out.Set("totalSeconds", r->total_seconds);
      out.Set("backend", r->backend);
      const double frames = static_cast<double>(r->frames) * static_cast<double>(r->calls.size());
      out.Set("framesPerSecond", r->total_seconds > 0 ? frames / r->total_seconds : 0.0);
      set_graph_counts(env, out, graphs_before, graphs_after);
      return out;
    };
  });
}

}  // namespace

void register_sample(Napi::Env env, Napi::Object exports) {
  exports.Set("sample", Napi::Function::New<guarded<sample>>(env, "sample"));
}

}  // namespace cfp_binding
