// Safetensors and checkpoint functions for JS (synchronous: files are small next to a training
// step, and a synchronous call lets tensor data be read from the JS arrays without a copy).
#include "binding/io.h"

#include "binding/args.h"
#include "binding/errors.h"
#include "core/checkpoint.h"
#include "core/safetensors.h"

namespace cfp_binding {

namespace {

Napi::Array tensors_to_js(Napi::Env env, const cfp::SafetensorsFile& f, bool to_f32) {
  Napi::Array out = Napi::Array::New(env, f.tensors().size());
  for (size_t i = 0; i < f.tensors().size(); ++i) out.Set(static_cast<uint32_t>(i), tensor_to_js(env, f, f.tensors()[i], to_f32));
  return out;
}

bool to_f32_option(const Napi::CallbackInfo& info, size_t index, const std::string& where) {
  if (info.Length() <= index || info[index].IsUndefined()) return false;
  return opt_bool(expect_object(info[index], where + ": options"), "toFloat32", false, where + ": options");
}

Napi::Object checkpoint_to_js(Napi::Env env, const cfp::LoadedCheckpoint& c, bool to_f32) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", Napi::Number::New(env, static_cast<double>(c.step)));
  o.Set("weightsPath", c.paths.weights);
  o.Set("statePath", c.paths.state);
  o.Set("meta", metadata_to_js(env, c.meta));
  o.Set("weights", tensors_to_js(env, c.weights, to_f32));
  o.Set("state", tensors_to_js(env, c.state, to_f32));
  return o;
}

// readSafetensors(path, {toFloat32}?) -> {metadata, tensors}
Napi::Value read_safetensors(const Napi::CallbackInfo& info) {
  const std::string path = expect_string(info[0], "readSafetensors: path");
  const bool f32 = to_f32_option(info, 1, "readSafetensors");
  const cfp::SafetensorsFile f = cfp::SafetensorsFile::read(path);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("metadata", metadata_to_js(info.Env(), f.metadata()));
  o.Set("tensors", tensors_to_js(info.Env(), f, f32));
  return o;
}

// writeSafetensors(path, tensors, metadata?)
Napi::Value write_safetensors(const Napi::CallbackInfo& info) {
  const std::string path = expect_string(info[0], "writeSafetensors: path");
  std::vector<std::vector<uint16_t>> scratch;
  const auto refs = tensor_refs(info[1], "writeSafetensors: tensors", scratch);
  const cfp::Metadata meta = metadata_from_js(info[2], "writeSafetensors: metadata");
  cfp::write_safetensors(path, refs, meta);
  return info.Env().Undefined();
}

// writeCheckedSafetensors(path, tensors, metadata, kind, step): a self-verifying file.
Napi::Value write_checked(const Napi::CallbackInfo& info) {
  const std::string path = expect_string(info[0], "writeCheckedSafetensors: path");
  std::vector<std::vector<uint16_t>> scratch;
  const auto refs = tensor_refs(info[1], "writeCheckedSafetensors: tensors", scratch);
  const cfp::Metadata meta = metadata_from_js(info[2], "writeCheckedSafetensors: metadata");
  const std::string kind = expect_string(info[3], "writeCheckedSafetensors: kind");
  const int64_t step = expect_int(info[4], "writeCheckedSafetensors: step", 0, int64_t{1} << 50);
  cfp::write_checked_safetensors(path, refs, meta, kind, step);
  return info.Env().Undefined();
}

// readCheckedSafetensors(path, {toFloat32}?) -> {metadata, tensors}; throws unless the checksum matches.
Napi::Value read_checked(const Napi::CallbackInfo& info) {
  const std::string path = expect_string(info[0], "readCheckedSafetensors: path");
  const bool f32 = to_f32_option(info, 1, "readCheckedSafetensors");
  const cfp::SafetensorsFile f = cfp::read_checked_safetensors(path);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("metadata", metadata_to_js(info.Env(), f.metadata()));
  o.Set("tensors", tensors_to_js(info.Env(), f, f32));
  return o;
}

// verifyCheckedSafetensors(path) -> {ok: true} | {ok: false, reason}
Napi::Value verify_checked(const Napi::CallbackInfo& info) {
  const std::string path = expect_string(info[0], "verifyCheckedSafetensors: path");
  std::string why;
  const bool ok = cfp::verify_checked_safetensors(path, &why);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("ok", ok);
  if (!ok) o.Set("reason", why);
  return o;
}

// saveCheckpoint(dir, {step, weights, state?, meta?}) -> {step, weightsPath, statePath}
Napi::Value save_checkpoint(const Napi::CallbackInfo& info) {
  const std::string dir = expect_string(info[0], "saveCheckpoint: dir");
  const Napi::Object c = expect_object(info[1], "saveCheckpoint: checkpoint");
  cfp::CheckpointData data;
  data.step = expect_int(c.Get("step"), "saveCheckpoint: checkpoint.step", 0, int64_t{1} << 50);
  std::vector<std::vector<uint16_t>> scratch;
  data.weights = tensor_refs(c.Get("weights"), "saveCheckpoint: checkpoint.weights", scratch);
  if (has(c, "state")) data.state = tensor_refs(c.Get("state"), "saveCheckpoint: checkpoint.state", scratch);
  data.meta = metadata_from_js(c.Get("meta"), "saveCheckpoint: checkpoint.meta");
  const cfp::CheckpointPaths p = cfp::save_checkpoint(dir, data);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("step", Napi::Number::New(info.Env(), static_cast<double>(p.step)));
  o.Set("weightsPath", p.weights);
  o.Set("statePath", p.state);
  return o;
}

// loadCheckpoint(dir, step, {toFloat32}?) -> LoadedCheckpoint
Napi::Value load_checkpoint(const Napi::CallbackInfo& info) {
  const std::string dir = expect_string(info[0], "loadCheckpoint: dir");
  const int64_t step = expect_int(info[1], "loadCheckpoint: step", 0, int64_t{1} << 50);
  const bool f32 = to_f32_option(info, 2, "loadCheckpoint");
  return checkpoint_to_js(info.Env(), cfp::load_checkpoint(dir, step), f32);
}

// latestCheckpoint(dir, {toFloat32}?) -> {checkpoint: LoadedCheckpoint | null, skipped: string[]}
Napi::Value latest_checkpoint(const Napi::CallbackInfo& info) {
  const std::string dir = expect_string(info[0], "latestCheckpoint: dir");
  const bool f32 = to_f32_option(info, 1, "latestCheckpoint");
  std::vector<std::string> skipped;
  const auto c = cfp::latest_valid_checkpoint(dir, &skipped);
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("checkpoint", c ? checkpoint_to_js(env, *c, f32).As<Napi::Value>() : env.Null());
  Napi::Array s = Napi::Array::New(env, skipped.size());
  for (size_t i = 0; i < skipped.size(); ++i) s.Set(static_cast<uint32_t>(i), skipped[i]);
  o.Set("skipped", s);
  return o;
}

// listCheckpoints(dir) -> number[]
Napi::Value list_checkpoints(const Napi::CallbackInfo& info) {
  const std::string dir = expect_string(info[0], "listCheckpoints: dir");
  const auto steps = cfp::list_checkpoint_steps(dir);
  Napi::Array a = Napi::Array::New(info.Env(), steps.size());
  for (size_t i = 0; i < steps.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(steps[i])));
  return a;
}

// pruneCheckpoints(dir, keep)
Napi::Value prune_checkpoints(const Napi::CallbackInfo& info) {
  const std::string dir = expect_string(info[0], "pruneCheckpoints: dir");
  const int64_t keep = expect_int(info[1], "pruneCheckpoints: keep", 0, int64_t{1} << 40);
  cfp::prune_checkpoints(dir, static_cast<size_t>(keep));
  return info.Env().Undefined();
}

}  // namespace

void register_io(Napi::Env env, Napi::Object exports) {
  exports.Set("readSafetensors", Napi::Function::New<guarded<read_safetensors>>(env, "readSafetensors"));
  exports.Set("writeSafetensors", Napi::Function::New<guarded<write_safetensors>>(env, "writeSafetensors"));
  exports.Set("writeCheckedSafetensors", Napi::Function::New<guarded<write_checked>>(env, "writeCheckedSafetensors"));
  exports.Set("readCheckedSafetensors", Napi::Function::New<guarded<read_checked>>(env, "readCheckedSafetensors"));
  exports.Set("verifyCheckedSafetensors", Napi::Function::New<guarded<verify_checked>>(env, "verifyCheckedSafetensors"));
  exports.Set("saveCheckpoint", Napi::Function::New<guarded<save_checkpoint>>(env, "saveCheckpoint"));
  exports.Set("loadCheckpoint", Napi::Function::New<guarded<load_checkpoint>>(env, "loadCheckpoint"));
  exports.Set("latestCheckpoint", Napi::Function::New<guarded<latest_checkpoint>>(env, "latestCheckpoint"));
  exports.Set("listCheckpoints", Napi::Function::New<guarded<list_checkpoints>>(env, "listCheckpoints"));
  exports.Set("pruneCheckpoints", Napi::Function::New<guarded<prune_checkpoints>>(env, "pruneCheckpoints"));
}

}  // namespace cfp_binding
