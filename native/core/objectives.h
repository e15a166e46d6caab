// The four training objectives of Causal Forcing (spec §3.5, §3.7, §3.8, §3.9), each computing
// its loss and accumulating parameter gradients into the trained model's grads() (the caller
// zeroes grads, clips, steps the optimizer and updates EMA). All latent/text pointers are backend
// memory: latents [B, F, C, H, W], text [B, text_len, text_dim]. Random draws come from the Philox
// stream passed in, in the order documented per function, so a step is a pure function of
// (parameters, data, RNG state) and replays exactly on resume.
//
// Buffers are kept in an ObjectiveScratch, allocated on first use per size and reused after.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/rng.h"
#include "core/schedule.h"

namespace cfp {

template <class T>
class ObjectiveScratch {
 public:
  explicit ObjectiveScratch(Backend<T>& backend) : be_(backend) {}
  // A buffer of n elements named `name`, allocated once (reallocated only if n grows).
  T* get(const std::string& name, int64_t n);
  Backend<T>& backend() { return be_; }
  std::map<std::string, KVCache<T>> caches;  // streaming caches, keyed by model role

 private:
  Backend<T>& be_;
  std::map<std::string, Tensor<T>> buffers_;
};

// §3.5 Stage 1: teacher-forcing diffusion. Draws, in order: for each sample b and block j one
// index i ~ U{0..N-1} (rng.uniform_int), copied to the block's k frames; then eps ~ N(0, I) for the
// whole clip (rng.fill_normal). t = grid.timesteps[i], rounded to bf16 when `bf16_timesteps`;
// sigma and weight through the nearest-grid lookup of t. Forward in TF mode with the clean clip
// at t = 0. Loss = mean_{b,f} [ w(t_bf) * mean_{c,h,w} (v - (eps - x0))^2 ]. `grid` must carry
// training weights (generator_training_grid()).
template <class T>
double teacher_forcing_diffusion_loss(Model<T>& model, ObjectiveScratch<T>& scratch, const FlowMatchScheduler& grid,
                                      const T* x0, const T* text, int64_t B, int64_t F, Philox& rng,
                                      bool bf16_timesteps = true);

// §3.7 ODE regression. trajectory: [B, S, F, C, H, W] with slots [x at steps[0..S-3], teacher
// endpoint, GT]. Draws j ~ U{0..S-3} per sample (shared by its frames). Input x = slot j at
// t = steps[j], forward in TF mode with clean = GT; x0_hat = x - sigma(t) v (grid lookup);
// loss = mean (x0_hat - endpoint)^2.
template <class T>
double ode_regression_loss(Model<T>& model, ObjectiveScratch<T>& scratch, const FlowMatchScheduler& grid,
                           const std::vector<double>& steps, const T* trajectory, int64_t slots, const T* text,
                           int64_t B, int64_t F, Philox& rng);

// §3.8 Causal consistency distillation. Draws n ~ U{0..N-2} per sample (shared by frames), then
// eps. t = t_n, t' = t_{n+1} on `cd_grid` (48 steps, shift 5), bf16-rounded; x_t = (1 - sigma_n) x0
// + sigma_n eps. Teacher (TF mode, clean = x0) under standard CFG v = v_u + g (v_c - v_u), one Euler
// step x_t' = x_t - ((t - t')/1000) v. Target = ema_target's x0 at (x_t', t'); student x0 at (x_t, t),
// conversions through `grid` (the generator training grid). Loss = mean (x0_s - x0_tgt)^2. The EMA
// update (theta_ema <- 0.99 theta_ema + 0.01 theta) is the caller's (core/optim.h).
template <class T>
double consistency_distillation_loss(Model<T>& student, Model<T>& teacher, Model<T>& ema_target,
                                     ObjectiveScratch<T>& scratch, const FlowMatchScheduler& grid,
                                     const FlowMatchScheduler& cd_grid, const T* x0, const T* text,
                                     const T* text_uncond, int64_t B, int64_t F, double guidance, Philox& rng);

// §3.9 DMD.
struct DmdConfig {
  std::vector<double> steps;              // warped few-step list, e.g. [1000, 937.5, 833.33, 625]
  double real_guidance = 3.0;             // real = cond + g (cond - uncond)
  double shift = 5.0;                     // of the DMD/critic timestep draw
  double t_min = 20.0, t_max = 980.0;     // clamp of the shifted timestep
  double context_noise = 0.0;             // cache-write timestep after each block
  bool renoise_context = true;            // re-noise x0_hat to context_noise via the grid (sigma ~ 0.005)
};

// The self-forcing rollout of the generator (spec §3.9): block by block against a KV cache, one
// exit index e ~ U{0..len(steps)-1} shared by all blocks (drawn first), initial noise for the clip,
// then fresh noise per re-noise and per context re-noise, in block order. x_gen: [B, F, C, H, W].
// With `grad`, the exit forward of every block is recorded so dmd_rollout_backward can recompute
// it with gradients (the cache carries no gradient between blocks, as upstream).
template <class T>
struct DmdRollout {
  int64_t exit_index = 0;
  std::vector<T> exit_t;  // the exit timestep per block (host)
};
template <class T>
DmdRollout<T> dmd_rollout(Model<T>& generator, ObjectiveScratch<T>& scratch, const FlowMatchScheduler& grid,
                          const DmdConfig& config, const T* text, int64_t B, int64_t F, Philox& rng, T* x_gen);
// Accumulates generator grads given d loss / d x_gen, recomputing each block's exit forward in
// reverse block order (valid right after dmd_rollout with the same text).
template <class T>
void dmd_rollout_backward(Model<T>& generator, ObjectiveScratch<T>& scratch, const FlowMatchScheduler& grid,
                          const DmdRollout<T>& rollout, const T* text, int64_t B, int64_t F, const T* dx_gen);

// Generator loss: rollout with grad; u ~ U{0..999} per sample -> t = dmd_timestep(u) clamped,
// sigma by `grid` lookup; eps; x_t = (1 - sigma) x_gen + sigma eps; fake = F(x_t, t) x0 (full mask,
// one t per sample, no CFG); real = R_c + g (R_c - R_u); grad = (fake - real) / mean_{F,C,H,W}
// |x_gen - real| per sample; L = 0.5 mean(grad^2) with dL/dx_gen = grad / numel, back through the
// rollout into the generator. Scores convert flow to x0 with `score_grid` (upstream: shift 8).
template <class T>
double dmd_generator_loss(Model<T>& generator, Model<T>& real_score, Model<T>& fake_score,
                          ObjectiveScratch<T>& scratch, const FlowMatchScheduler& grid,
                          const FlowMatchScheduler& score_grid, const DmdConfig& config, const T* text,
                          const T* text_uncond, int64_t B, int64_t F, Philox& rng);

// Critic (fake score) loss: a no-grad rollout of the generator, fresh t and eps as above, x0_phi =
// F(x_t, t) (score_grid), v_phi = (x_t - x0_phi) / sigma (grid); L = mean (v_phi - (eps - x_gen))^2;
// grads go into fake_score.
template <class T>
double dmd_critic_loss(Model<T>& generator, Model<T>& fake_score, ObjectiveScratch<T>& scratch,
                       const FlowMatchScheduler& grid, const FlowMatchScheduler& score_grid, const DmdConfig& config,
                       const T* text, int64_t B, int64_t F, Philox& rng);

}  // namespace cfp
