// A compute device for one job: the backend every tensor of the job lives on, and the optimizer
// math over that backend's memory (core/optim.h OptimOps). Jobs (the trainer, the sampler) take a
// DeviceFactory, so the binding chooses CPU or CUDA without the core depending on CUDA.
//
// DeviceAdamW and DeviceEma are the training state of core/optim.h's AdamW and Ema kept in
// backend memory: on the CPU device they run the very same host code (results bitwise equal), on
// a GPU the moments and the shadow never leave the device (checkpoints download them).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/optim.h"

namespace cfp {

struct ComputeDevice {
  std::unique_ptr<Backend<float>> backend;
  OptimOps* optim = nullptr;            // non-owning when it points at host_optim_ops()
  std::unique_ptr<OptimOps> owned_optim;  // device optimizer ops bound to `backend` (CUDA)
  OptimOps& ops() const { return *optim; }
};

// Makes the device when the job starts (on the job's thread).
using DeviceFactory = std::function<ComputeDevice()>;

// The CPU backend with `threads` threads (0: all cores) and the host optimizer.
ComputeDevice make_cpu_device(int threads);

// AdamW with its moments in backend memory (zero-initialised).
class DeviceAdamW {
 public:
  DeviceAdamW(ComputeDevice& device, AdamWConfig config, int64_t n);
  void step(float* param, const float* grad);  // one update; steps() increments first
  int64_t steps() const { return steps_; }
  int64_t size() const { return n_; }
  // Host copies of the moments (for checkpoints).
  void download(std::vector<float>& exp_avg, std::vector<float>& exp_avg_sq);
  void restore(const float* exp_avg, const float* exp_avg_sq, int64_t steps);  // host -> backend

 private:
  ComputeDevice& dev_;
  AdamWConfig config_;
  int64_t n_;
  Tensor<float> m_, v_;
  int64_t steps_ = 0;
};

// Ema (start step, decay) with its shadow in backend memory.
class DeviceEma {
 public:
  DeviceEma(ComputeDevice& device, double decay, int64_t start_step, int64_t n);
  bool maybe_start(int64_t step, const float* param);  // param: backend memory, n values
  void update(const float* param);                     // no-op while inactive
  bool active() const { return active_; }
  float* shadow() { return shadow_.data(); }           // backend memory, n values
  void download(std::vector<float>& host);
  void restore(const float* host_shadow);               // activates the EMA

 private:
  ComputeDevice& dev_;
  double decay_;
  int64_t start_step_, n_;
  Tensor<float> shadow_;
  bool active_ = false;
};

}  // namespace cfp
