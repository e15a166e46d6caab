// Backend selection; see device.h.
#include "binding/device.h"

#include <cstdlib>

#include "binding/errors.h"

#ifdef CFPIPE_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace cfp_binding {

namespace {

// Usable CUDA devices (0 in the CPU addon), with the reason when there are none.
int cuda_devices(std::string* why) {
#ifdef CFPIPE_HAVE_CUDA
  return cfp::cuda_device_count(why);
#else
  if (why) *why = "this engine was built without CUDA (cfpipe_native.node; build where nvcc exists for cfpipe_cuda.node)";
  return 0;
#endif
}

}  // namespace

DeviceChoice parse_device(Napi::Env env, const std::string& spec, const std::string& where) {
  DeviceChoice c;
  if (spec == "cpu") {
    c.label = "cpu";
    return c;
  }
  std::string why;
  if (spec == "auto") {
    if (cuda_devices(&why) > 0) {
      c.cuda = true;
      c.label = "cuda:0";
    } else {
      c.label = "cpu";
    }
    return c;
  }
  int index = -1;
  if (spec == "cuda") {
    index = 0;
  } else if (spec.rfind("cuda:", 0) == 0 && spec.size() > 5 && spec.size() <= 8) {
    char* end = nullptr;
    const long v = std::strtol(spec.c_str() + 5, &end, 10);
    if (end && *end == '\0' && v >= 0 && spec[5] != '+' && spec[5] != '-') index = static_cast<int>(v);
  }
  if (index < 0) throw_type_error(env, where + " must be \"cpu\", \"cuda\", \"cuda:N\" or \"auto\", got \"" + spec + "\"");
  const int n = cuda_devices(&why);
  if (n == 0) throw_type_error(env, where + " is \"" + spec + "\" but no CUDA device can be used: " + why);
  if (index >= n)
    throw_type_error(env, where + " is \"" + spec + "\" but only " + std::to_string(n) + " CUDA device(s) exist (cuda:0..cuda:" +
                              std::to_string(n - 1) + ")");
  c.cuda = true;
  c.index = index;
  c.label = "cuda:" + std::to_string(index);
  return c;
}

cfp::DeviceFactory device_factory(const DeviceChoice& choice, int threads) {
#ifdef CFPIPE_HAVE_CUDA
  if (choice.cuda) {
    const int index = choice.index;
    return [index] { return cfp::make_cuda_device(index); };
  }
#endif
  CFP_CHECK(!choice.cuda, "internal: a CUDA device was chosen in an addon without CUDA");
  return [threads] { return cfp::make_cpu_device(threads); };
}

GraphCounts graph_counts_now() {
#ifdef CFPIPE_HAVE_CUDA
  const cfp::CudaGraphStats g = cfp::cuda_graph_stats();
  return {static_cast<double>(g.recorded), static_cast<double>(g.replayed)};
#else
  return {};
#endif
}

void set_graph_counts(Napi::Env env, Napi::Object& out, const GraphCounts& before, const GraphCounts& after) {
  const double recorded = after.recorded - before.recorded, replayed = after.replayed - before.replayed;
  if (recorded == 0 && replayed == 0) return;
  Napi::Object g = Napi::Object::New(env);
  g.Set("recorded", recorded);
  g.Set("replayed", replayed);
  out.Set("cudaGraphs", g);
}

void describe_backends(Napi::Env env, Napi::Object& info) {
  std::string why;
  const int n = cuda_devices(&why);
#ifdef CFPIPE_HAVE_CUDA
  const bool compiled = true;
#else
  const bool compiled = false;
#endif
  info.Set("backend", n > 0 ? "cuda" : "cpu");
  Napi::Array list = Napi::Array::New(env);
  uint32_t i = 0;
  if (n > 0) list.Set(i++, "cuda");
  list.Set(i++, "cpu");
  info.Set("backends", list);
  info.Set("cuda", compiled);
  info.Set("cudaDevices", Napi::Number::New(env, n));
#ifdef CFPIPE_HAVE_CUDA
  info.Set("cudaGemm", cfp::cuda_gemm_engine());
  if (n > 0) info.Set("cudaDevice", cfp::cuda_device_name(0));
#endif
  if (n == 0) info.Set("cudaUnavailable", why);
}

}  // namespace cfp_binding
