// Flow-matching math of Causal Forcing (spec §3.1–§3.4, §3.9): the forward process and its
// targets, the FlowMatchScheduler sigma grids with the shift, nearest-grid lookup t -> sigma,
// x0 <-> flow conversions, warped few-step lists, the bell-shaped loss weights, the UniPC
// inference grid and DMD's clamped shifted timestep.
//
// Conventions: sigma in [0, 1] (0 = data, 1 = noise); a "timestep" t = 1000 * sigma. Grids are
// held in double. Every array helper works on host float buffers of n elements and computes
// in double before rounding back to float, as the reference does for the x0 conversions.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cfp {

// ---- Flow matching forward process (spec §3.1), with an explicit sigma ----

// out = (1 - sigma) x0 + sigma eps. out may alias x0 or eps.
void flow_add_noise(const float* x0, const float* eps, double sigma, float* out, size_t n);
// The training target of the network's flow output: out = eps - x0.
void flow_target(const float* x0, const float* eps, float* out, size_t n);
// x0 from a flow prediction at noise level sigma: out = x - sigma * flow.
void flow_to_x0(const float* flow, const float* x, double sigma, float* out, size_t n);
// Flow from an x0 prediction: out = (x - x0) / sigma. Requires sigma > 0.
void x0_to_flow(const float* x0, const float* x, double sigma, float* out, size_t n);

// ---- FlowMatchScheduler (spec §3.2) ----

struct FlowMatchConfig {
  int num_train_timesteps = 1000;
  double shift = 3.0;
  double sigma_max = 1.0;
  double sigma_min = 0.003 / 1.002;
  bool extra_one_step = false;
};

// A shifted, descending sigma grid. set_timesteps(N):
//   raw = extra_one_step ? first N of linspace(sigma_max, sigma_min, N+1) : linspace(sigma_max, sigma_min, N)
//   sigma' = shift * raw / (1 + (shift - 1) * raw);  t = num_train_timesteps * sigma'
// With training = true it also builds the bell-shaped loss weights (spec §3.4).
class FlowMatchScheduler {
 public:
  explicit FlowMatchScheduler(FlowMatchConfig config = {});

  void set_timesteps(int num_steps, bool training = false);

  const FlowMatchConfig& config() const { return config_; }
  size_t size() const { return sigmas_.size(); }
  const std::vector<double>& sigmas() const { return sigmas_; }
  const std::vector<double>& timesteps() const { return timesteps_; }
  // Loss weight per grid point (empty unless set_timesteps(..., training = true)).
  const std::vector<double>& weights() const { return weights_; }

  // Nearest grid point: argmin_i |timesteps[i] - t|, the first index on a tie.
  size_t nearest_index(double t) const;
  // sigma of the nearest grid point; every add_noise / step / conversion goes through this.
  double sigma_at(double t) const { return sigmas_[nearest_index(t)]; }
  // sigma of the grid point after the nearest one; 0 past the end (Euler's target).
  double next_sigma_at(double t) const;
  // Loss weight w(t) = weights[nearest_index(t)] (requires a training grid).
  double weight_at(double t) const;

  // x0 / eps -> x_t at timestep t (lookup), out = (1 - sigma(t)) x0 + sigma(t) eps.
  void add_noise(const float* x0, const float* eps, double t, float* out, size_t n) const;
  // One Euler step of the flow ODE from t to the next grid point: x += flow * (sigma_next - sigma).
  void euler_step(const float* flow, double t, float* x, size_t n) const;
  // x0 = x - sigma(t) flow, flow = (x - x0) / sigma(t), with the grid lookup.
  void flow_to_x0(const float* flow, const float* x, double t, float* out, size_t n) const;
  void x0_to_flow(const float* x0, const float* x, double t, float* out, size_t n) const;

 private:
  FlowMatchConfig config_;
  std::vector<double> sigmas_;
  std::vector<double> timesteps_;
  std::vector<double> weights_;
};

// The shift map sigma' = s sigma / (1 + (s - 1) sigma).
double shift_sigma(double sigma, double shift);

// The generator's training grid: shift from model_kwargs (5), sigma_min 0, extra_one_step,
// N = 1000, with loss weights. t runs from 1000 down to about 4.98 (shift 5).
FlowMatchScheduler generator_training_grid(double shift = 5.0, int num_train_timesteps = 1000);
// The ODE-generation / consistency-distillation grid: shift 5, sigma_min 0, extra_one_step, N = 48.
FlowMatchScheduler ode_grid(int num_steps = 48, double shift = 5.0);

// ---- Warped few-step lists (spec §3.3) ----

// Maps each nominal step d_j (an integer 0..num_train_timesteps) through
// T_ext = [t_0, ..., t_{N-1}, 0] as d_j -> T_ext[N - d_j]; N = training_grid.size() must equal
// num_train_timesteps. A trailing 0 is dropped from the result (the pipelines drop it).
// With warp = false the nominal values are returned as timesteps unchanged (trailing 0 dropped).
std::vector<double> warped_step_list(const std::vector<int>& nominal, const FlowMatchScheduler& training_grid,
                                     bool warp = true);

// ---- Many-step UniPC grid (spec §3.2, FlowUniPCMultistepScheduler) ----

struct UniPCGrid {
  std::vector<double> sigmas;        // num_steps + 1 values, the last is 0
  std::vector<int64_t> timesteps;    // num_steps integer timesteps fed to the network
};
// Base sigmas 1 - linspace(1/N, 1, N) reversed (sigma_max = 1 - 1/N, sigma_min = 0);
// inference sigmas = first num_steps points of linspace(sigma_max, sigma_min, num_steps + 1),
// shifted; timesteps = trunc(N * sigma'); then a final sigma of 0.
UniPCGrid unipc_grid(int num_steps = 50, double shift = 5.0, int num_train_timesteps = 1000);

// ---- DMD timestep (spec §3.9) ----

// u in [0, num_train_timesteps) (uniform integer draw) -> t = N * s(u/N) / (1 + (s-1)(u/N)),
// clamped to [t_min, t_max]. The caller then looks sigma up on its own grid.
double dmd_timestep(uint32_t u, double shift = 5.0, double t_min = 20.0, double t_max = 980.0,
                    int num_train_timesteps = 1000);

// ---- Precision helpers ----

// Round a float to the nearest bfloat16 (ties to even) and back: the reference casts sampled
// training timesteps to bf16 (spec §3.5), which snaps e.g. [512, 1024) to multiples of 4.
float round_to_bf16(float x);

}  // namespace cfp
