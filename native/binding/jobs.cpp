#include "binding/jobs.h"

#include <cstring>
#include <limits>

#include "binding/args.h"
#include "binding/errors.h"
#include "binding/job_runner.h"
#include "core/fit_linear.h"

namespace cfp_binding {

namespace {

// fitLinear(options, onProgress?) -> {promise, cancel}. Options are read (and x/y copied) on the
// JS thread; the job then owns its data, so the caller may reuse its arrays immediately.
Napi::Value fit_linear(const Napi::CallbackInfo& info) {
  const std::string W = "fitLinear: options";
  const Napi::Object o = expect_object(info[0], W);
  cfp::FitLinearOptions opt;
  const int64_t big = int64_t{1} << 40;
  opt.features = opt_int(o, "features", opt.features, W, 1, big);
  opt.samples = opt_int(o, "samples", opt.samples, W, 1, big);
  opt.batch = opt_int(o, "batch", opt.batch, W, 1, big);
  opt.steps = opt_int(o, "steps", opt.steps, W, 0, big);
  opt.lr = opt_number(o, "lr", opt.lr, W);
  opt.momentum = opt_number(o, "momentum", opt.momentum, W);
  opt.seed = static_cast<uint64_t>(opt_int(o, "seed", 0, W, 0, (int64_t{1} << 53) - 1));
  opt.checkpoint_every = opt_int(o, "checkpointEvery", 0, W, 0, big);
  opt.keep_checkpoints = opt_int(o, "keepCheckpoints", opt.keep_checkpoints, W, 0, big);
  opt.progress_every = opt_int(o, "progressEvery", 1, W, 1, big);
  opt.work_dir = opt_string(o, "workDir", "", W);
  opt.resume = opt_bool(o, "resume", false, W);
  if (has(o, "x")) opt.x = copy_float32(o.Get("x"), W + ".x", opt.samples * opt.features);
  if (has(o, "y")) opt.y = copy_float32(o.Get("y"), W + ".y", opt.samples);
  const Napi::Value on_progress = info.Length() > 1 ? info[1] : info.Env().Undefined();

  return start_job(info.Env(), "fitLinear", on_progress, [opt](cfp::JobContext& context) -> ResultBuilder {
    auto r = std::make_shared<cfp::FitLinearResult>(cfp::fit_linear(opt, context));
    return [r](Napi::Env env) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("step", Napi::Number::New(env, static_cast<double>(r->step)));
      out.Set("cancelled", r->cancelled);
      out.Set("loss", r->loss);
      Napi::Float32Array w = Napi::Float32Array::New(env, r->weight.size());
      std::memcpy(w.Data(), r->weight.data(), r->weight.size() * sizeof(float));
      out.Set("weight", w);
      out.Set("bias", r->bias);
      if (!r->checkpoint.empty()) out.Set("checkpoint", r->checkpoint);
      if (r->resumed_from >= 0) out.Set("resumedFrom", Napi::Number::New(env, static_cast<double>(r->resumed_from)));
      return out;
    };
  });
}

}  // namespace

void register_jobs(Napi::Env env, Napi::Object exports) {
  exports.Set("fitLinear", Napi::Function::New<guarded<fit_linear>>(env, "fitLinear"));
}

}  // namespace cfp_binding
