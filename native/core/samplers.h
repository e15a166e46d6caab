// Samplers of Causal Forcing (spec §1.6, §1.11, §3.10, §3.11):
//   * few-step causal generation of the distilled student (per block: warped step list,
//     x0 = G(x, t), fresh Gaussian re-noise to the next step, then a clean cache-write pass);
//   * many-step CFG sampling of the AR teacher, per block with cond/uncond KV caches, with
//     UniPC (order 2, bh2 predictor-corrector, x0-prediction form, as FlowUniPCMultistepScheduler)
//     or plain Euler;
//   * causal ODE trajectories of the teacher (48 steps, shift 5, CFG g = 6, snapshots at
//     [0, 12, 24, 36, final, GT]) in teacher-forcing mode and in the equivalent blockwise-KV mode.
//
// The samplers see the network through FlowNet (flow output v = eps - x0), so they run on any
// backend; ModelFlowNet (sampler_model.h) adapts cfp::Model with its KV caches. All latent
// buffers are backend memory laid out [B, F, C, H, W]; noise comes from a Philox stream, so a
// sampler's output is a pure function of its inputs and the RNG state it is given. Scalar
// coefficients (sigmas, solver weights) are computed in double; the latent arithmetic runs in
// float through the backend's axpy/axpby, so a CUDA backend reproduces it op for op.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "core/rng.h"
#include "core/schedule.h"

namespace cfp {

// Conditioning contexts: each has its own text and KV cache.
enum FlowContext : int { kCond = 0, kUncond = 1 };

// The network as a sampler needs it. Pointers are backend memory; x/flow are [B, n, C, H, W],
// t is [B, n] (one timestep per frame).
class FlowNet {
 public:
  virtual ~FlowNet() = default;
  virtual Backend<float>& backend() = 0;
  virtual int64_t batch() const = 0;
  virtual int64_t frames() const = 0;       // F of a full clip
  virtual int64_t frame_numel() const = 0;  // C * H * W
  // Streaming call for frames [start_frame, start_frame + n_frames) against the context's KV cache,
  // which holds frames [0, start_frame); this call's keys/values overwrite slots of its frames.
  virtual void stream(int context, float* flow, const float* x, const float* t, int64_t start_frame,
                      int64_t n_frames) = 0;
  // Teacher-forcing call on the whole clip: the noisy clip x at per-frame t, attending to the clean
  // clip x_clean (modulated at t = 0) of earlier blocks (spec §3.6).
  virtual void teacher_forcing(int context, float* flow, const float* x_noisy, const float* t,
                               const float* x_clean) = 0;
};

// Network evaluations of one sampling call (each call processes the whole batch).
struct SamplerStats {
  int64_t denoise_calls = 0;  // forwards that predict a block (both CFG branches counted)
  int64_t cache_calls = 0;    // clean cache-write passes
  int64_t calls() const { return denoise_calls + cache_calls; }
};

// ---- Few-step causal generation (the distilled student, no CFG) ----

struct FewStepConfig {
  int64_t frames_per_block = 3;          // k
  std::vector<double> steps;             // warped timesteps, e.g. warped_step_list({1000,750,500,250}, grid)
  std::vector<double> first_block_steps; // optional list for block 0 (empty: use `steps`)
  double context_noise = 0.0;            // timestep of the cache-write pass
  // false (inference.py): the cache pass sees x0_hat as is. true (the training rollout, spec §3.9):
  // x0_hat is first re-noised to context_noise through the grid lookup (sigma ~ 0.005 for 0).
  bool renoise_context = false;
};

// Generates out [B, F, C, H, W] block by block (spec §1.11 few-step pipeline). `grid` is the
// generator's training grid (sigma lookup for x0 conversion and re-noising). The initial noise of
// the whole clip is drawn first from `rng`, then fresh noise for every re-noise, block by block.
// `initial` (optional, [B, initial_frames, C, H, W], a multiple of k frames) is copied into the
// first frames and written into the cache at t = 0 (I2V); generation continues after it.
SamplerStats sample_few_step(FlowNet& net, const FewStepConfig& config, const FlowMatchScheduler& grid, Philox& rng,
                             float* out, const float* initial = nullptr, int64_t initial_frames = 0);

// ---- UniPC (FlowUniPCMultistepScheduler: order 2, bh2, x0 prediction, lower-order final) ----

// One solver instance integrates one block. Buffers live on the backend.
class UniPCSolver {
 public:
  UniPCSolver(Backend<float>& backend, int64_t n, int num_steps = 50, double shift = 5.0, int order = 2);
  const UniPCGrid& grid() const { return grid_; }
  int64_t timestep(int i) const { return grid_.timesteps[static_cast<size_t>(i)]; }
  int num_steps() const { return static_cast<int>(grid_.timesteps.size()); }
  // Step `index` (0-based, in order): given the flow prediction at sample x (sigma_index), applies
  // the corrector to x in place (from step 1 on) and then writes the predictor's next sample into x.
  void step(int index, const float* flow, float* x);

 private:
  double lambda(size_t i) const;  // log(alpha) - log(sigma) at grid point i
  void predictor(float* x, int order);
  void corrector(float* x, const float* x0_this, int order);

  Backend<float>& be_;
  int64_t n_;
  UniPCGrid grid_;
  int solver_order_;
  int step_index_ = 0;
  int lower_order_nums_ = 0;
  int this_order_ = 0;
  bool have_last_ = false;
  Tensor<float> m_prev_, m_last_;  // x0 predictions of steps i-1 and i (model_outputs[-2], [-1])
  Tensor<float> last_sample_, x0_;
};

// ---- Many-step CFG sampling of the AR teacher ----

enum class ManyStepSolver { unipc, euler };

struct ManyStepConfig {
  int64_t frames_per_block = 3;
  int num_steps = 50;
  double shift = 5.0;
  double guidance = 3.0;  // standard form: f = f_u + g (f_c - f_u)
  ManyStepSolver solver = ManyStepSolver::unipc;
  double context_noise = 0.0;
};

// Per block: fresh solver from the block's slice of the initial noise, CFG with the cond and
// uncond caches at every step, then both caches refreshed with the clean block at context_noise.
// Euler uses the FlowMatchScheduler(shift, sigma_min 0, extra_one_step) grid.
SamplerStats sample_many_step(FlowNet& net, const ManyStepConfig& config, Philox& rng, float* out);

// ---- Causal ODE trajectories (Stage 2a data) ----

struct OdeConfig {
  int num_steps = 48;
  double shift = 5.0;
  double guidance = 6.0;                     // standard CFG form
  std::vector<int> snapshots = {0, 12, 24, 36};  // "latent before step k" slots, then final, then GT
  int64_t frames_per_block = 3;              // blockwise mode only
};

enum class OdeMode { teacher_forcing, blockwise_kv };

// Slots in the trajectory: snapshots.size() + 2 (endpoint, GT).
inline int64_t ode_slots(const OdeConfig& c) { return static_cast<int64_t>(c.snapshots.size()) + 2; }

// Integrates the teacher's causal PF-ODE from noise (drawn from `rng`, [B, F, C, H, W]) with
// Euler on the ode grid, conditioned on the clean GT clip `clean` [B, F, C, H, W], and writes
// trajectory [B, slots, F, C, H, W]: x before each snapshot step, the endpoint, the GT.
// teacher_forcing: all frames at once through FlowNet::teacher_forcing (spec §1.6 full mode).
// blockwise_kv: block by block through the KV caches, then the block's GT written at t = 0.
SamplerStats generate_ode_trajectory(FlowNet& net, const OdeConfig& config, OdeMode mode, const float* clean,
                                     Philox& rng, float* trajectory);

}  // namespace cfp
