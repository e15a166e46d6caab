// The DiT from JS: its config and parameter table (upstream names), seeded initial weights, and a
// full-sequence forward run as a job. Inputs are checked here (lengths against the config, finite
// values) so a mistake is a clear JS error, never a crash inside the model.
#include "binding/model.h"

#include <cmath>
#include <cstring>
#include <memory>

#include "binding/args.h"
#include "binding/errors.h"
#include "binding/job_runner.h"
#include "core/error.h"
#include "core/model.h"
#include "cpu/cpu_backend.h"

namespace cfp_binding {

namespace {

struct IntField {
  const char* js;
  int64_t cfp::ModelConfig::*field;
};
const IntField kIntFields[] = {
    {"channels", &cfp::ModelConfig::channels}, {"patchT", &cfp::ModelConfig::patch_t},   {"patchH", &cfp::ModelConfig::patch_h},
    {"patchW", &cfp::ModelConfig::patch_w},    {"dim", &cfp::ModelConfig::dim},          {"ffnDim", &cfp::ModelConfig::ffn_dim},
    {"heads", &cfp::ModelConfig::heads},       {"layers", &cfp::ModelConfig::layers},    {"freqDim", &cfp::ModelConfig::freq_dim},
    {"textDim", &cfp::ModelConfig::text_dim},  {"textLen", &cfp::ModelConfig::text_len}, {"frames", &cfp::ModelConfig::frames},
    {"height", &cfp::ModelConfig::height},     {"width", &cfp::ModelConfig::width},
};

cfp::ModelConfig config_from_js(const Napi::Value& v, const std::string& where) {
  const Napi::Object o = expect_object(v, where);
  const std::string preset = opt_string(o, "preset", "tiny", where);
  const int64_t k = opt_int(o, "framesPerBlock", 1, where, 1, 1024);
  cfp::ModelConfig c;
  if (preset == "tiny") c = cfp::ModelConfig::tiny(k);
  else if (preset == "wan_1_3b") c = cfp::ModelConfig::wan_1_3b(k);
  else throw_type_error(v.Env(), where + ".preset must be \"tiny\" or \"wan_1_3b\", got \"" + preset + "\"");
  for (const IntField& f : kIntFields) c.*(f.field) = opt_int(o, f.js, c.*(f.field), where, 1, int64_t{1} << 24);
  c.rope_theta = opt_number(o, "ropeTheta", c.rope_theta, where);
  c.eps = opt_number(o, "eps", c.eps, where);
  c.validate();  // cfp::Error naming the inconsistent field
  return c;
}

Napi::Object config_to_js(Napi::Env env, const cfp::ModelConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  for (const IntField& f : kIntFields) o.Set(f.js, Napi::Number::New(env, static_cast<double>(c.*(f.field))));
  o.Set("framesPerBlock", Napi::Number::New(env, static_cast<double>(c.frames_per_block)));
  o.Set("ropeTheta", c.rope_theta);
  o.Set("eps", c.eps);
  return o;
}

// modelParamTable(config) -> {config, count, params: [{name, shape, offset}]}
Napi::Value param_table(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cfp::ModelConfig c = config_from_js(info[0], "modelParamTable: config");
  const std::vector<cfp::ParamEntry> table = cfp::model_param_table(c);
  Napi::Array params = Napi::Array::New(env, table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", table[i].name);
    Napi::Array shape = Napi::Array::New(env, table[i].shape.size());
    for (size_t j = 0; j < table[i].shape.size(); ++j) shape.Set(static_cast<uint32_t>(j), Napi::Number::New(env, static_cast<double>(table[i].shape[j])));
    p.Set("shape", shape);
    p.Set("offset", Napi::Number::New(env, static_cast<double>(table[i].offset)));
    params.Set(static_cast<uint32_t>(i), p);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("config", config_to_js(env, c));
  o.Set("count", Napi::Number::New(env, static_cast<double>(cfp::model_param_count(c))));
  o.Set("params", params);
  return o;
}

// initModelWeights(config, seed) -> Float32Array of every parameter (flat, table order)
Napi::Value init_weights(const Napi::CallbackInfo& info) {
  const cfp::ModelConfig c = config_from_js(info[0], "initModelWeights: config");
  const auto seed = static_cast<uint64_t>(expect_int(info[1], "initModelWeights: seed", 0, (int64_t{1} << 53) - 1));
  auto backend = cfp::make_cpu_backend<float>(1);
  cfp::Model<float> model(*backend, c);
  model.init(seed);
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(model.num_params()));
  backend->download(out.Data(), model.params().data(), model.num_params());
  return out;
}

void check_finite(const std::vector<float>& v, const char* what) {
  for (size_t i = 0; i < v.size(); ++i)
    CFP_CHECK(std::isfinite(v[i]), "modelForward: %s[%zu] is %s; inputs must be finite", what, i, std::isnan(v[i]) ? "NaN" : "infinite");
}

// modelForward({config, params, x, t, text, batch, frames, mask?, threads?}) -> {promise, cancel}
Napi::Value forward(const Napi::CallbackInfo& info) {
  const std::string W = "modelForward: options";
  const Napi::Object o = expect_object(info[0], W);
  const cfp::ModelConfig c = config_from_js(o.Get("config"), W + ".config");
  const int64_t B = opt_int(o, "batch", 1, W, 1, 1 << 16);
  const int64_t F = opt_int(o, "frames", c.frames, W, 1, c.frames);
  const std::string mask_name = opt_string(o, "mask", "block_causal", W);
  cfp::MaskKind mask;
  if (mask_name == "full") mask = cfp::MaskKind::full;
  else if (mask_name == "block_causal") mask = cfp::MaskKind::block_causal;
  else throw_type_error(info.Env(), W + ".mask must be \"full\" or \"block_causal\", got \"" + mask_name + "\"");
  const int threads = static_cast<int>(opt_int(o, "threads", 0, W, 0, 1024));
  const int64_t frame = c.channels * c.height * c.width;
  auto params = copy_float32(o.Get("params"), W + ".params (model_param_count(config))", cfp::model_param_count(c));
  auto x = copy_float32(o.Get("x"), W + ".x [batch, frames, channels, height, width]", B * F * frame);
  auto t = copy_float32(o.Get("t"), W + ".t [batch, frames]", B * F);
  auto text = copy_float32(o.Get("text"), W + ".text [batch, textLen, textDim]", B * c.text_len * c.text_dim);
  const Napi::Value on_progress = info.Length() > 1 ? info[1] : info.Env().Undefined();

  return start_job(info.Env(), "modelForward", on_progress,
                   [c, B, F, mask, threads, frame, params = std::move(params), x = std::move(x), t = std::move(t),
                    text = std::move(text)](cfp::JobContext& context) -> ResultBuilder {
                     check_finite(params, "params");
                     check_finite(x, "x");
                     check_finite(text, "text");
                     for (size_t i = 0; i < t.size(); ++i)
                       CFP_CHECK(std::isfinite(t[i]) && t[i] >= 0 && t[i] <= 1000, "modelForward: t[%zu] = %g, timesteps must be in [0, 1000]", i, t[i]);
                     auto out = std::make_shared<std::vector<float>>(static_cast<size_t>(B * F * frame));
                     if (context.cancelled()) return [](Napi::Env env) -> Napi::Value { return env.Null(); };
                     auto backend = cfp::make_cpu_backend<float>(threads);
                     cfp::Model<float> model(*backend, c);
                     backend->upload(model.params().data(), params.data(), model.num_params());
                     auto dx = backend->empty({B, F, c.channels, c.height, c.width});
                     auto dt = backend->empty({B, F});
                     auto dtext = backend->empty({B, c.text_len, c.text_dim});
                     auto dout = backend->empty({B, F, c.channels, c.height, c.width});
                     backend->upload(dx.data(), x.data(), dx.numel());
                     backend->upload(dt.data(), t.data(), dt.numel());
                     backend->upload(dtext.data(), text.data(), dtext.numel());
                     model.forward(dout.data(), dx.data(), dt.data(), dtext.data(), B, F, mask);
                     backend->download(out->data(), dout.data(), dout.numel());
                     for (size_t i = 0; i < out->size(); ++i)
                       CFP_CHECK(std::isfinite((*out)[i]), "modelForward: the output became non-finite at element %zu", i);
                     context.report({1, 1, {}, ""});
                     return [out](Napi::Env env) -> Napi::Value {
                       Napi::Float32Array a = Napi::Float32Array::New(env, out->size());
                       std::memcpy(a.Data(), out->data(), out->size() * sizeof(float));
                       return a;
                     };
                   });
}

}  // namespace

cfp::ModelConfig model_config_from_js(const Napi::Value& v, const std::string& where) { return config_from_js(v, where); }

void register_model(Napi::Env env, Napi::Object exports) {
  exports.Set("modelParamTable", Napi::Function::New<guarded<param_table>>(env, "modelParamTable"));
  exports.Set("initModelWeights", Napi::Function::New<guarded<init_weights>>(env, "initModelWeights"));
  exports.Set("modelForward", Napi::Function::New<guarded<forward>>(env, "modelForward"));
}

}  // namespace cfp_binding
