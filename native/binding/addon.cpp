// The cfpipe native addon: version/build information, safetensors and checkpoint I/O, and
// long-running jobs. TypeScript types and the loader live in native/index.ts.
#include <napi.h>

#include <thread>

#include "binding/device.h"
#include "binding/io.h"
#include "binding/jobs.h"
#include "binding/model.h"

namespace cfp_binding {
void register_train(Napi::Env env, Napi::Object exports);   // binding/train.cpp
void register_sample(Napi::Env env, Napi::Object exports);  // binding/sample.cpp
}  // namespace cfp_binding

namespace {

Napi::Value version(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("engine", "0.1.0");
  o.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  cfp_binding::describe_backends(env, o);  // backend, backends, cuda, cudaDevices, ...
#if defined(__clang__)
  o.Set("compiler", std::string("clang ") + __clang_version__);
#elif defined(__GNUC__)
  o.Set("compiler", std::string("gcc ") + __VERSION__);
#else
  o.Set("compiler", "unknown");
#endif
#ifdef __OPTIMIZE__
  o.Set("buildType", "Release");
#else
  o.Set("buildType", "Debug");
#endif
  o.Set("hardwareThreads", Napi::Number::New(env, std::thread::hardware_concurrency()));
  return o;
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("version", Napi::Function::New(env, version, "version"));
  cfp_binding::register_io(env, exports);
  cfp_binding::register_jobs(env, exports);
  cfp_binding::register_model(env, exports);
  cfp_binding::register_train(env, exports);
  cfp_binding::register_sample(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(cfpipe_native, init)
