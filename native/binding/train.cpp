// train(options, onProgress?) -> {promise, cancel}: the resumable training driver (core/trainer.h)
// from JS. Options are read and the data copied on the JS thread, with messages that name the
// field; the job then owns everything it needs, so the caller may drop its arrays at once.
#include <napi.h>

#include <cstring>
#include <memory>

#include "binding/args.h"
#include "binding/device.h"
#include "binding/errors.h"
#include "binding/job_runner.h"
#include "binding/model.h"
#include "core/trainer.h"

namespace cfp_binding {

namespace {

cfp::WeightsSource weights_source(const Napi::Object& o, const char* key, const std::string& where) {
  cfp::WeightsSource s;
  if (!has(o, key)) return s;
  const std::string at = where + "." + key;
  const Napi::Value v = o.Get(key);
  if (v.IsString()) {
    s.path = v.As<Napi::String>().Utf8Value();
  } else {
    const Napi::Object w = expect_object(v, at);
    s.path = expect_string(w.Get("path"), at + ".path");
    s.prefix = opt_string(w, "prefix", "", at);
  }
  if (s.path.empty()) throw_type_error(o.Env(), at + " must name a weights file");
  return s;
}

Napi::Value train(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string W = "train: options";
  const Napi::Object o = expect_object(info[0], W);
  cfp::TrainOptions opt;
  const std::string trainer = expect_string(o.Get("trainer"), W + ".trainer");
  if (!cfp::parse_trainer(trainer, &opt.trainer))
    throw_type_error(env, W + ".trainer must be one of diffusion, ode, consistency_distillation, score_distillation, got \"" + trainer + "\"");
  opt.model = model_config_from_js(o.Get("config"), W + ".config");
  const int64_t big = int64_t{1} << 40;
  opt.teacher_forcing = opt_bool(o, "teacherForcing", opt.teacher_forcing, W);
  opt.causal = opt_bool(o, "causal", opt.causal, W);
  opt.steps = expect_int(o.Get("steps"), W + ".steps", 0, big);
  opt.batch = opt_int(o, "batch", 1, W, 1, 4096);
  opt.seed = static_cast<uint64_t>(opt_int(o, "seed", 0, W, 0, (int64_t{1} << 53) - 1));
  opt.optim.lr = opt_number(o, "lr", opt.optim.lr, W);
  opt.optim.beta1 = opt_number(o, "beta1", opt.optim.beta1, W);
  opt.optim.beta2 = opt_number(o, "beta2", opt.optim.beta2, W);
  opt.optim.weight_decay = opt_number(o, "weightDecay", opt.optim.weight_decay, W);
  opt.critic_optim.lr = opt_number(o, "lrCritic", opt.optim.lr, W);
  opt.critic_optim.beta1 = opt_number(o, "beta1Critic", opt.optim.beta1, W);
  opt.critic_optim.beta2 = opt_number(o, "beta2Critic", opt.optim.beta2, W);
  opt.critic_optim.weight_decay = opt_number(o, "weightDecayCritic", opt.optim.weight_decay, W);
  opt.max_grad_norm = opt_number(o, "maxGradNorm", opt.max_grad_norm, W);
  opt.max_grad_norm_critic = opt_number(o, "maxGradNormCritic", opt.max_grad_norm_critic, W);
  opt.ema_weight = opt_number(o, "emaWeight", opt.ema_weight, W);
  opt.ema_start_step = opt_int(o, "emaStartStep", opt.ema_start_step, W, 0, int64_t{1} << 53);
  opt.dfake_gen_update_ratio = opt_int(o, "dfakeGenUpdateRatio", opt.dfake_gen_update_ratio, W, 1, big);
  opt.timestep_shift = opt_number(o, "timestepShift", opt.timestep_shift, W);
  opt.score_timestep_shift = opt_number(o, "scoreTimestepShift", opt.score_timestep_shift, W);
  opt.dmd_timestep_shift = opt_number(o, "dmdTimestepShift", opt.dmd_timestep_shift, W);
  opt.denoising_steps = number_list(o, "denoisingSteps", W);
  opt.guidance_scale = opt_number(o, "guidanceScale", opt.guidance_scale, W);
  opt.cd_steps = static_cast<int>(opt_int(o, "cdSteps", opt.cd_steps, W, 2, 100000));
  opt.context_noise = opt_number(o, "contextNoise", opt.context_noise, W);
  opt.bf16_timesteps = opt_bool(o, "bf16Timesteps", opt.bf16_timesteps, W);
  opt.init = weights_source(o, "init", W);
  opt.teacher = weights_source(o, "teacher", W);
  opt.real_score = weights_source(o, "realScore", W);
  opt.fake_score = weights_source(o, "fakeScore", W);
  opt.work_dir = opt_string(o, "workDir", "", W);
  opt.resume = opt_bool(o, "resume", false, W);
  opt.checkpoint_every = opt_int(o, "checkpointEvery", 0, W, 0, big);
  opt.keep_checkpoints = opt_int(o, "keepCheckpoints", opt.keep_checkpoints, W, 0, big);
  opt.progress_every = opt_int(o, "progressEvery", 1, W, 1, big);
  opt.threads = static_cast<int>(opt_int(o, "threads", 0, W, 0, 1024));
  const DeviceChoice device = parse_device(env, opt_string(o, "device", "cpu", W), W + ".device");
  opt.device = device_factory(device, opt.threads);
  opt.output_path = opt_string(o, "outputPath", "", W);
  for (const auto& [k, v] : metadata_from_js(has(o, "outputMetadata") ? o.Get("outputMetadata") : env.Undefined(), W + ".outputMetadata"))
    opt.output_metadata.emplace_back(k, v);

  // Data: shapes are checked here against the config so the message names the JS field.
  const std::string D = W + ".data";
  const Napi::Object d = expect_object(o.Get("data"), D);
  cfp::TrainData data;
  const cfp::ModelConfig& c = opt.model;
  const int64_t L = c.text_len * c.text_dim, clip = c.frames * c.channels * c.height * c.width;
  data.count = expect_int(d.Get("count"), D + ".count", 1, big);
  data.slots = opt_int(d, "slots", 1, D, 1, 1024);
  data.text = copy_float32(d.Get("text"), D + ".text [count, textLen, textDim] = [" + std::to_string(data.count) + ", " +
                                              std::to_string(c.text_len) + ", " + std::to_string(c.text_dim) + "]",
                           data.count * L);
  if (has(d, "textUncond"))
    data.text_uncond = copy_float32(d.Get("textUncond"), D + ".textUncond [textLen, textDim] = [" + std::to_string(c.text_len) + ", " +
                                                             std::to_string(c.text_dim) + "]",
                                    L);
  if (opt.trainer != cfp::Trainer::score_distillation) {
    const std::string shape = data.slots == 1 && opt.trainer != cfp::Trainer::ode
                                  ? "[count, frames, channels, height, width]"
                                  : "[count, slots, frames, channels, height, width]";
    data.samples = copy_float32(d.Get("samples"), D + ".samples " + shape, data.count * data.slots * clip);
  }
  const Napi::Value on_progress = info.Length() > 1 ? info[1] : env.Undefined();

  auto shared = std::make_shared<std::pair<cfp::TrainOptions, cfp::TrainData>>(std::move(opt), std::move(data));
  return start_job(env, "train", on_progress, [shared](cfp::JobContext& context) -> ResultBuilder {
    const GraphCounts graphs_before = graph_counts_now();
    auto r = std::make_shared<cfp::TrainResult>(cfp::train(shared->first, shared->second, context));
    const GraphCounts graphs_after = graph_counts_now();
    shared->second = cfp::TrainData{};  // free the data before the JS thread picks the result up
    return [r, graphs_before, graphs_after](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("step", Napi::Number::New(env, static_cast<double>(r->step)));
      out.Set("cancelled", r->cancelled);
      out.Set("loss", r->loss);
      out.Set("generatorLoss", r->generator_loss);
      out.Set("emaActive", r->ema_active);
      out.Set("params", Napi::Number::New(env, static_cast<double>(r->params)));
      out.Set("seconds", r->seconds);
      out.Set("backend", r->backend);
      if (r->resumed_from >= 0) out.Set("resumedFrom", Napi::Number::New(env, static_cast<double>(r->resumed_from)));
      if (!r->checkpoint.empty()) out.Set("checkpoint", r->checkpoint);
      if (!r->output_path.empty()) out.Set("outputPath", r->output_path);
      set_graph_counts(env, out, graphs_before, graphs_after);
      return out;
    };
  });
}

}  // namespace

void register_train(Napi::Env env, Napi::Object exports) {
  exports.Set("train", Napi::Function::New<guarded<train>>(env, "train"));
}

}  // namespace cfp_binding
