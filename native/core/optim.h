// Training-state math over flat float buffers: AdamW exactly as PyTorch's (decoupled weight
// decay, bias correction, the same op order), global grad-norm clipping as
// torch.nn.utils.clip_grad_norm_, and an EMA shadow with a start step (spec §1.5–§1.10).
//
// The buffers are host memory (the CPU backend's buffers, e.g. Model::params()/grads() on the
// CPU backend). All results are bitwise reproducible: element-wise updates are independent per
// element, and the norm is a double-precision sum in a fixed order.
#pragma once
#include <cstdint>
#include <vector>

namespace cfp {

struct AdamWConfig {
  double lr = 2e-6;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

// One parameter buffer with its gradient and moment buffers, n elements each.
struct AdamWSlot {
  float* param = nullptr;
  const float* grad = nullptr;
  float* exp_avg = nullptr;     // m
  float* exp_avg_sq = nullptr;  // v
  int64_t n = 0;
};

// One AdamW update of every slot; `step` is the 1-based count of this update (PyTorch's
// state['step'] after its increment), used for the bias corrections. Per element, in float:
//   p *= 1 - lr*wd;  m = lerp(m, g, 1 - beta1);  v = v*beta2 + (1 - beta2) g^2;
//   p -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
void adamw_update(const std::vector<AdamWSlot>& slots, const AdamWConfig& config, int64_t step);

// AdamW over one flat parameter buffer of n elements, owning its moments (zero-initialised, as
// PyTorch creates them lazily on the first step). step() counts updates; the moments and the
// count are what a checkpoint saves to resume exactly.
class AdamW {
 public:
  AdamW(AdamWConfig config, int64_t n);
  void step(float* param, const float* grad);  // one update; steps() increments first
  const AdamWConfig& config() const { return config_; }
  void set_lr(double lr) { config_.lr = lr; }
  int64_t size() const { return static_cast<int64_t>(exp_avg_.size()); }
  int64_t steps() const { return steps_; }
  std::vector<float>& exp_avg() { return exp_avg_; }
  std::vector<float>& exp_avg_sq() { return exp_avg_sq_; }
  // Restore from a checkpoint: the moments are copied in, n elements each.
  void restore(const float* exp_avg, const float* exp_avg_sq, int64_t steps);

 private:
  AdamWConfig config_;
  std::vector<float> exp_avg_, exp_avg_sq_;
  int64_t steps_ = 0;
};

// A gradient buffer of n elements.
struct GradSlot {
  float* grad = nullptr;
  int64_t n = 0;
};

// Global L2 norm of all gradients: sqrt of a double sum of squares over the slots in order.
double grad_norm(const std::vector<GradSlot>& slots);

// torch.nn.utils.clip_grad_norm_: with total = grad_norm(slots), when
// coef = max_norm / (total + 1e-6) < 1 every gradient is multiplied by coef. Returns the
// pre-clip norm. A non-finite norm is returned as is and the gradients are left untouched
// (PyTorch would scale them into NaNs); the caller decides whether to skip the step.
double clip_grad_norm(const std::vector<GradSlot>& slots, double max_norm);

// shadow = decay * shadow + (1 - decay) * param, per element in double, rounded to float.
void ema_update(float* shadow, const float* param, int64_t n, double decay);

// The EMA of the training loops (upstream EMA_2): the shadow is created as a copy of the
// parameters at the first step >= start_step (call maybe_start at the top of every step), and
// update() after each optimizer update of that model blends the new parameters in.
// Causal CD: decay 0.99, start 0 (updated every step); DMD: decay 0.99, start 200.
class Ema {
 public:
  Ema(double decay, int64_t start_step);
  // Creates the shadow from `param` when step >= start_step and it does not exist yet; returns
  // whether the EMA is active afterwards.
  bool maybe_start(int64_t step, const float* param, int64_t n);
  // Blend `param` into the shadow; a no-op while inactive.
  void update(const float* param, int64_t n);
  bool active() const { return active_; }
  double decay() const { return decay_; }
  int64_t start_step() const { return start_step_; }
  std::vector<float>& shadow() { return shadow_; }
  const std::vector<float>& shadow() const { return shadow_; }
  // Restore from a checkpoint (activates the EMA).
  void restore(const float* shadow, int64_t n);

 private:
  double decay_;
  int64_t start_step_;
  bool active_ = false;
  std::vector<float> shadow_;
};

// The training-state math over one backend's memory, so the optimizer runs where the weights
// live. host_optim_ops() runs the functions above on host memory (the CPU backend: results
// bitwise those of AdamW/Ema/clip_grad_norm); the CUDA backend brings device kernels with the
// same per-element arithmetic (cuda/cuda_backend.h: make_cuda_optim_ops).
class OptimOps {
 public:
  virtual ~OptimOps() = default;
  // clip_grad_norm over one buffer; returns the pre-clip norm (non-finite: gradients untouched).
  virtual double clip_grad_norm(float* grad, int64_t n, double max_norm) = 0;
  // adamw_update of one slot (all four buffers in the backend's memory).
  virtual void adamw_update(const AdamWSlot& slot, const AdamWConfig& config, int64_t step) = 0;
  // ema_update: shadow = decay * shadow + (1 - decay) * param, per element in double.
  virtual void ema_update(float* shadow, const float* param, int64_t n, double decay) = 0;
};

// The host implementation (one shared instance; stateless).
OptimOps& host_optim_ops();

}  // namespace cfp
