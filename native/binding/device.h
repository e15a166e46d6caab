// Backend selection: the `device` option of train() and sample() ("cpu", "cuda", "cuda:N",
// "auto") becomes the job's compute device. The same sources build the CPU addon
// (cfpipe_native.node) and the CUDA addon (cfpipe_cuda.node, compiled with CFPIPE_HAVE_CUDA and
// linked with the CUDA backend); only the latter can make CUDA devices.
#pragma once
#include <napi.h>

#include <string>

#include "core/device.h"

namespace cfp_binding {

struct DeviceChoice {
  bool cuda = false;
  int index = 0;      // CUDA device (within CUDA_VISIBLE_DEVICES)
  std::string label;  // "cpu" or "cuda:N"
};

// Parses and resolves `spec` on the JS thread: "auto" is the first CUDA device when this addon has
// CUDA and a device is present, else the CPU. Throws a TypeError naming `where` for a malformed
// value, a CUDA request to the CPU addon, or a device that does not exist.
DeviceChoice parse_device(Napi::Env env, const std::string& spec, const std::string& where);

// The factory the job calls on its own thread (threads: CPU threads, 0 = all cores).
cfp::DeviceFactory device_factory(const DeviceChoice& choice, int threads);

// CUDA graph counts of this process (zero in the CPU addon): a job takes them before and after it
// runs, and its result carries the difference as cudaGraphs {recorded, replayed} when there is one.
struct GraphCounts {
  double recorded = 0, replayed = 0;
};
GraphCounts graph_counts_now();
void set_graph_counts(Napi::Env env, Napi::Object& out, const GraphCounts& before, const GraphCounts& after);

// version(): backend (what "auto" resolves to), backends, cuda, and with CUDA compiled in:
// cudaDevices, cudaDevice (name of device 0), cudaGemm, cudaUnavailable (why no device).
void describe_backends(Napi::Env env, Napi::Object& info);

}  // namespace cfp_binding
