// Compute devices and the backend-resident optimizer state; see device.h.
#include "core/device.h"

#include "cpu/cpu_backend.h"

namespace cfp {

ComputeDevice make_cpu_device(int threads) {
  ComputeDevice d;
  d.backend = make_cpu_backend<float>(threads);
  d.optim = &host_optim_ops();
  return d;
}

DeviceAdamW::DeviceAdamW(ComputeDevice& device, AdamWConfig config, int64_t n)
    : dev_(device), config_(config), n_(n) {
  CFP_CHECK(n >= 0, "AdamW size must be non-negative");
  m_ = dev_.backend->zeros({n});
  v_ = dev_.backend->zeros({n});
}

void DeviceAdamW::step(float* param, const float* grad) {
  ++steps_;
  dev_.ops().adamw_update(AdamWSlot{param, grad, m_.data(), v_.data(), n_}, config_, steps_);
}

void DeviceAdamW::download(std::vector<float>& exp_avg, std::vector<float>& exp_avg_sq) {
  exp_avg.resize(static_cast<size_t>(n_));
  exp_avg_sq.resize(static_cast<size_t>(n_));
  dev_.backend->download(exp_avg.data(), m_.data(), n_);
  dev_.backend->download(exp_avg_sq.data(), v_.data(), n_);
}

void DeviceAdamW::restore(const float* exp_avg, const float* exp_avg_sq, int64_t steps) {
  CFP_CHECK(steps >= 0, "AdamW step count must be non-negative");
  dev_.backend->upload(m_.data(), exp_avg, n_);
  dev_.backend->upload(v_.data(), exp_avg_sq, n_);
  steps_ = steps;
}

DeviceEma::DeviceEma(ComputeDevice& device, double decay, int64_t start_step, int64_t n)
    : dev_(device), decay_(decay), start_step_(start_step), n_(n) {
  CFP_CHECK(decay >= 0.0 && decay <= 1.0, "EMA decay must lie in [0, 1], got %g", decay);
}

bool DeviceEma::maybe_start(int64_t step, const float* param) {
  if (!active_ && step >= start_step_) {
    if (shadow_.empty()) shadow_ = dev_.backend->empty({n_});
    dev_.backend->copy(shadow_.data(), param, n_);
    active_ = true;
  }
  return active_;
}

void DeviceEma::update(const float* param) {
  if (active_) dev_.ops().ema_update(shadow_.data(), param, n_, decay_);
}

void DeviceEma::download(std::vector<float>& host) {
  host.resize(static_cast<size_t>(n_));
  if (active_) dev_.backend->download(host.data(), shadow_.data(), n_);
}

void DeviceEma::restore(const float* host_shadow) {
  if (shadow_.empty()) shadow_ = dev_.backend->empty({n_});
  dev_.backend->upload(shadow_.data(), host_shadow, n_);
  active_ = true;
}

}  // namespace cfp
