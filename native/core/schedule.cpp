#include "core/schedule.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace cfp {

namespace {

// numpy/torch linspace: start + i * (end - start) / (count - 1).
std::vector<double> linspace(double start, double end, int count) {
  std::vector<double> out(static_cast<size_t>(count));
  if (count == 1) {
    out[0] = start;
    return out;
  }
  const double step = (end - start) / (count - 1);
  for (int i = 0; i < count; ++i) out[static_cast<size_t>(i)] = start + i * step;
  out.back() = end;
  return out;
}

}  // namespace

// ---- Forward process and conversions ----

void flow_add_noise(const float* x0, const float* eps, double sigma, float* out, size_t n) {
  const double keep = 1.0 - sigma;
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(keep * x0[i] + sigma * eps[i]);
}

void flow_target(const float* x0, const float* eps, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = eps[i] - x0[i];
}

void flow_to_x0(const float* flow, const float* x, double sigma, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<double>(x[i]) - sigma * flow[i]);
}

void x0_to_flow(const float* x0, const float* x, double sigma, float* out, size_t n) {
  CFP_CHECK(sigma > 0.0, "x0_to_flow needs sigma > 0, got %g", sigma);
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<float>((static_cast<double>(x[i]) - static_cast<double>(x0[i])) / sigma);
}

double shift_sigma(double sigma, double shift) { return shift * sigma / (1.0 + (shift - 1.0) * sigma); }

// ---- FlowMatchScheduler ----

FlowMatchScheduler::FlowMatchScheduler(FlowMatchConfig config) : config_(config) {
  CFP_CHECK(config.num_train_timesteps > 0, "num_train_timesteps must be positive, got %d",
            config.num_train_timesteps);
  CFP_CHECK(config.shift > 0.0, "shift must be positive, got %g", config.shift);
  CFP_CHECK(config.sigma_min >= 0.0 && config.sigma_min <= config.sigma_max && config.sigma_max <= 1.0,
            "need 0 <= sigma_min <= sigma_max <= 1, got sigma_min %g, sigma_max %g", config.sigma_min,
            config.sigma_max);
}

void FlowMatchScheduler::set_timesteps(int num_steps, bool training) {
  CFP_CHECK(num_steps > 0, "set_timesteps needs a positive step count, got %d", num_steps);
  std::vector<double> raw = config_.extra_one_step ? linspace(config_.sigma_max, config_.sigma_min, num_steps + 1)
                                                   : linspace(config_.sigma_max, config_.sigma_min, num_steps);
  raw.resize(static_cast<size_t>(num_steps));
  sigmas_.resize(raw.size());
  timesteps_.resize(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    sigmas_[i] = shift_sigma(raw[i], config_.shift);
    timesteps_[i] = sigmas_[i] * config_.num_train_timesteps;
  }
  weights_.clear();
  if (training) {
    // Bell around the middle of the grid's range, floored at its minimum, normalised to mean 1.
    // The reference centres on num_steps / 2 and scales by num_steps (both 1000 in use).
    const double half = num_steps / 2.0;
    std::vector<double> y(timesteps_.size());
    for (size_t i = 0; i < y.size(); ++i) {
      const double z = (timesteps_[i] - half) / num_steps;
      y[i] = std::exp(-2.0 * z * z);
    }
    const double y_min = *std::min_element(y.begin(), y.end());
    double sum = 0.0;
    for (double& v : y) {
      v -= y_min;
      sum += v;
    }
    CFP_CHECK(sum > 0.0, "loss weights are degenerate for a %d-step grid", num_steps);
    weights_.resize(y.size());
    for (size_t i = 0; i < y.size(); ++i) weights_[i] = y[i] * (num_steps / sum);
  }
}

size_t FlowMatchScheduler::nearest_index(double t) const {
  CFP_CHECK(!timesteps_.empty(), "scheduler has no grid: call set_timesteps first");
  CFP_CHECK(std::isfinite(t), "timestep must be finite");
  size_t best = 0;
  double best_distance = std::fabs(timesteps_[0] - t);
  for (size_t i = 1; i < timesteps_.size(); ++i) {
    const double d = std::fabs(timesteps_[i] - t);
    if (d < best_distance) {
      best_distance = d;
      best = i;
    }
  }
  return best;
}

double FlowMatchScheduler::next_sigma_at(double t) const {
  const size_t i = nearest_index(t);
  return i + 1 < sigmas_.size() ? sigmas_[i + 1] : 0.0;
}

double FlowMatchScheduler::weight_at(double t) const {
  CFP_CHECK(!weights_.empty(), "loss weights exist only on a training grid (set_timesteps(N, true))");
  return weights_[nearest_index(t)];
}

void FlowMatchScheduler::add_noise(const float* x0, const float* eps, double t, float* out, size_t n) const {
  flow_add_noise(x0, eps, sigma_at(t), out, n);
}

void FlowMatchScheduler::euler_step(const float* flow, double t, float* x, size_t n) const {
  const size_t i = nearest_index(t);
  const double sigma = sigmas_[i];
  const double sigma_next = i + 1 < sigmas_.size() ? sigmas_[i + 1] : 0.0;
  const double dt = sigma_next - sigma;
  for (size_t k = 0; k < n; ++k) x[k] = static_cast<float>(x[k] + flow[k] * dt);
}

void FlowMatchScheduler::flow_to_x0(const float* flow, const float* x, double t, float* out, size_t n) const {
  cfp::flow_to_x0(flow, x, sigma_at(t), out, n);
}

void FlowMatchScheduler::x0_to_flow(const float* x0, const float* x, double t, float* out, size_t n) const {
  cfp::x0_to_flow(x0, x, sigma_at(t), out, n);
}

FlowMatchScheduler generator_training_grid(double shift, int num_train_timesteps) {
  FlowMatchScheduler s(FlowMatchConfig{num_train_timesteps, shift, 1.0, 0.0, true});
  s.set_timesteps(num_train_timesteps, /*training=*/true);
  return s;
}

FlowMatchScheduler ode_grid(int num_steps, double shift) {
  FlowMatchScheduler s(FlowMatchConfig{1000, shift, 1.0, 0.0, true});
  s.set_timesteps(num_steps);
  return s;
}

// ---- Warped few-step lists ----

std::vector<double> warped_step_list(const std::vector<int>& nominal, const FlowMatchScheduler& training_grid,
                                     bool warp) {
  CFP_CHECK(!nominal.empty(), "denoising step list is empty");
  const int n_train = training_grid.config().num_train_timesteps;
  std::vector<double> out;
  out.reserve(nominal.size());
  for (int d : nominal) {
    CFP_CHECK(d >= 0 && d <= n_train, "denoising step %d is outside [0, %d]", d, n_train);
    if (!warp) {
      out.push_back(d);
      continue;
    }
    CFP_CHECK(training_grid.size() == static_cast<size_t>(n_train),
              "warping needs the %d-point training grid, got %zu points", n_train, training_grid.size());
    const size_t index = static_cast<size_t>(n_train - d);  // T_ext[N] is the appended 0
    out.push_back(index < training_grid.size() ? training_grid.timesteps()[index] : 0.0);
  }
  if (out.size() > 1 && out.back() == 0.0) out.pop_back();
  CFP_CHECK(!(out.size() == 1 && out[0] == 0.0), "denoising step list is only [0]");
  return out;
}

// ---- UniPC grid ----

UniPCGrid unipc_grid(int num_steps, double shift, int num_train_timesteps) {
  CFP_CHECK(num_steps > 0, "UniPC needs a positive step count, got %d", num_steps);
  CFP_CHECK(num_train_timesteps > 1, "num_train_timesteps must be > 1, got %d", num_train_timesteps);
  // Base training sigmas 1 - reversed(linspace(1, 1/N, N)): from 1 - 1/N down to 0.
  const double sigma_max = 1.0 - 1.0 / num_train_timesteps;
  const double sigma_min = 0.0;
  std::vector<double> raw = linspace(sigma_max, sigma_min, num_steps + 1);
  raw.pop_back();
  UniPCGrid grid;
  grid.sigmas.reserve(raw.size() + 1);
  grid.timesteps.reserve(raw.size());
  for (double r : raw) {
    const double s = shift_sigma(r, shift);
    grid.sigmas.push_back(s);
    grid.timesteps.push_back(static_cast<int64_t>(s * num_train_timesteps));  // int64 cast truncates
  }
  grid.sigmas.push_back(0.0);
  return grid;
}

// ---- DMD timestep ----

double dmd_timestep(uint32_t u, double shift, double t_min, double t_max, int num_train_timesteps) {
  CFP_CHECK(u < static_cast<uint32_t>(num_train_timesteps), "DMD timestep draw %u is outside [0, %d)", u,
            num_train_timesteps);
  const double n = num_train_timesteps;
  const double t = n * shift_sigma(u / n, shift);
  return std::min(std::max(t, t_min), t_max);
}

// ---- bf16 rounding ----

float round_to_bf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u) {
    if (bits & 0x007fffffu) bits |= 0x00400000u;  // keep NaN a (quiet) NaN after truncation
  } else {
    bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  }
  bits &= 0xffff0000u;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

}  // namespace cfp
