#include "core/optim.h"

#include <cmath>
#include <cstring>

#include "core/error.h"

namespace cfp {

namespace {

// PyTorch's lerp kernel: the two-sided form keeps weight 1 exact (beta1 = 0 gives m = g).
inline float torch_lerp(float self, float end, float weight) {
  return std::fabs(weight) < 0.5f ? self + weight * (end - self) : end - (end - self) * (1.0f - weight);
}

}  // namespace

void adamw_update(const std::vector<AdamWSlot>& slots, const AdamWConfig& config, int64_t step) {
  CFP_CHECK(step >= 1, "AdamW step count must start at 1, got %lld", static_cast<long long>(step));
  CFP_CHECK(config.beta1 >= 0.0 && config.beta1 < 1.0 && config.beta2 >= 0.0 && config.beta2 < 1.0,
            "AdamW betas must lie in [0, 1), got (%g, %g)", config.beta1, config.beta2);
  CFP_CHECK(config.eps >= 0.0 && config.lr >= 0.0 && config.weight_decay >= 0.0,
            "AdamW lr, eps and weight_decay must be non-negative");
  // Scalars as PyTorch forms them: Python floats (double), used as float multipliers.
  const double bias_correction1 = 1.0 - std::pow(config.beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(config.beta2, static_cast<double>(step));
  const float decay = static_cast<float>(1.0 - config.lr * config.weight_decay);
  const float lerp_weight = static_cast<float>(1.0 - config.beta1);
  const float beta2 = static_cast<float>(config.beta2);
  const float one_minus_beta2 = static_cast<float>(1.0 - config.beta2);
  const float step_size = static_cast<float>(config.lr / bias_correction1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float eps = static_cast<float>(config.eps);
  for (const AdamWSlot& s : slots) {
    CFP_CHECK(s.n >= 0 && (s.n == 0 || (s.param && s.grad && s.exp_avg && s.exp_avg_sq)),
              "AdamW slot has null buffers or a negative size");
    for (int64_t i = 0; i < s.n; ++i) {
      const float g = s.grad[i];
      float p = s.param[i] * decay;
      const float m = torch_lerp(s.exp_avg[i], g, lerp_weight);
      const float v = s.exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g;
      const float denom = std::sqrt(v) / bc2_sqrt + eps;
      p = p + (-step_size) * (m / denom);
      s.exp_avg[i] = m;
      s.exp_avg_sq[i] = v;
      s.param[i] = p;
    }
  }
}

AdamW::AdamW(AdamWConfig config, int64_t n)
    : config_(config), exp_avg_(static_cast<size_t>(n), 0.0f), exp_avg_sq_(static_cast<size_t>(n), 0.0f) {
  CFP_CHECK(n >= 0, "AdamW size must be non-negative");
}

void AdamW::step(float* param, const float* grad) {
  ++steps_;
  adamw_update({AdamWSlot{param, grad, exp_avg_.data(), exp_avg_sq_.data(), size()}}, config_, steps_);
}

void AdamW::restore(const float* exp_avg, const float* exp_avg_sq, int64_t steps) {
  CFP_CHECK(steps >= 0, "AdamW step count must be non-negative");
  std::memcpy(exp_avg_.data(), exp_avg, exp_avg_.size() * sizeof(float));
  std::memcpy(exp_avg_sq_.data(), exp_avg_sq, exp_avg_sq_.size() * sizeof(float));
  steps_ = steps;
}

double grad_norm(const std::vector<GradSlot>& slots) {
  double sum = 0.0;
  for (const GradSlot& s : slots) {
    CFP_CHECK(s.n >= 0 && (s.n == 0 || s.grad), "gradient slot has a null buffer or a negative size");
    // Four interleaved partial sums (fixed order) keep the loop vectorisable and deterministic.
    double part[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t i = 0;
    for (; i + 4 <= s.n; i += 4)
      for (int j = 0; j < 4; ++j) part[j] += static_cast<double>(s.grad[i + j]) * s.grad[i + j];
    for (; i < s.n; ++i) part[0] += static_cast<double>(s.grad[i]) * s.grad[i];
    sum += (part[0] + part[1]) + (part[2] + part[3]);
  }
  return std::sqrt(sum);
}

double clip_grad_norm(const std::vector<GradSlot>& slots, double max_norm) {
  CFP_CHECK(max_norm > 0.0, "max_norm must be positive, got %g", max_norm);
  const double total = grad_norm(slots);
  if (!std::isfinite(total)) return total;
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0) {
    const float c = static_cast<float>(coef);
    for (const GradSlot& s : slots)
      for (int64_t i = 0; i < s.n; ++i) s.grad[i] *= c;
  }
  return total;
}

void ema_update(float* shadow, const float* param, int64_t n, double decay) {
  CFP_CHECK(decay >= 0.0 && decay <= 1.0, "EMA decay must lie in [0, 1], got %g", decay);
  const double keep = decay, take = 1.0 - decay;
  for (int64_t i = 0; i < n; ++i) shadow[i] = static_cast<float>(keep * shadow[i] + take * param[i]);
}

Ema::Ema(double decay, int64_t start_step) : decay_(decay), start_step_(start_step) {
  CFP_CHECK(decay >= 0.0 && decay <= 1.0, "EMA decay must lie in [0, 1], got %g", decay);
}

bool Ema::maybe_start(int64_t step, const float* param, int64_t n) {
  if (!active_ && step >= start_step_) {
    shadow_.assign(param, param + n);
    active_ = true;
  }
  return active_;
}

void Ema::update(const float* param, int64_t n) {
  if (!active_) return;
  CFP_CHECK(n == static_cast<int64_t>(shadow_.size()), "EMA update of %lld values, shadow has %zu",
            static_cast<long long>(n), shadow_.size());
  ema_update(shadow_.data(), param, n, decay_);
}

void Ema::restore(const float* shadow, int64_t n) {
  shadow_.assign(shadow, shadow + n);
  active_ = true;
}

namespace {

class HostOptimOps final : public OptimOps {
 public:
  double clip_grad_norm(float* grad, int64_t n, double max_norm) override {
    return cfp::clip_grad_norm({GradSlot{grad, n}}, max_norm);
  }
  void adamw_update(const AdamWSlot& slot, const AdamWConfig& config, int64_t step) override {
    cfp::adamw_update({slot}, config, step);
  }
  void ema_update(float* shadow, const float* param, int64_t n, double decay) override {
    cfp::ema_update(shadow, param, n, decay);
  }
};

}  // namespace

OptimOps& host_optim_ops() {
  static HostOptimOps ops;
  return ops;
}

}  // namespace cfp
