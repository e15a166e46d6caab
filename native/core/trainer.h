// The training driver: one resumable job for each upstream trainer (spec §1.5, §1.8–§1.10).
//
//   diffusion                 teacher_forcing: the Stage 1 AR teacher (teacher-forcing loss, per-block
//                             tied noise levels, spec §3.5); otherwise plain flow matching with one
//                             noise level per block of k frames under a full mask (causal = false, the
//                             bidirectional base model; k = F gives one t per sample) or the
//                             block-causal mask (diffusion forcing).
//   ode                       ODE regression on trajectories [N, S, F, C, H, W] (spec §3.7).
//   consistency_distillation  causal CD with a frozen teacher and an EMA target updated every step (§3.8).
//   score_distillation        DMD: generator + critic (fake score) + frozen real score, one generator
//                             update every `dfake_gen_update_ratio` steps before that step's critic
//                             update, EMA of the generator from `ema_start_step`, separate AdamW (§3.9).
//
// Data comes in memory: latents [N, F, C, H, W] (diffusion, CD), trajectories (ode), or only the
// prompts' text embeddings (DMD); text [N, L, D] per row and one unconditional embedding [L, D].
//
// Determinism and resume: batches follow a fixed order — epoch e visits the rows in a Fisher-Yates
// permutation drawn from Philox(seed, stream 1000 + e) — so the data position is one integer (rows
// consumed). Every other random draw comes from one Philox stream (seed, stream 1), in step order.
// A checkpoint in work_dir (core/checkpoint.h) holds the weights (generator., generator_ema.,
// critic.) and the full state: AdamW moments and step counts, the RNG counter, the data position,
// the EMA flag and a key of the problem (config, data and initial weights), so a run stopped at
// any checkpoint and resumed ends byte-identical to an uninterrupted one.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/job.h"
#include "core/model.h"
#include "core/optim.h"

namespace cfp {

enum class Trainer { diffusion, ode, consistency_distillation, score_distillation };

const char* trainer_name(Trainer t);
// False when `name` is not one of the four upstream trainer names.
bool parse_trainer(const std::string& name, Trainer* out);

// A weights file and the name prefix to read (e.g. "generator."); an empty prefix tries
// "generator.", then "generator_ema.", then bare names.
struct WeightsSource {
  std::string path;
  std::string prefix;
  bool empty() const { return path.empty(); }
};

// Reads every parameter of `config`'s table from a safetensors file into a flat buffer (table
// order). Throws naming the file, the prefix and the first missing or mis-shaped tensor.
// `used_prefix` receives the prefix that matched.
std::vector<float> load_model_weights(const WeightsSource& source, const ModelConfig& config,
                                      std::string* used_prefix = nullptr);

struct TrainData {
  std::vector<float> samples;      // latents [N, F, C, H, W] or trajectories [N, S, F, C, H, W]; empty for DMD
  int64_t count = 0;               // N rows (= text rows)
  int64_t slots = 1;               // S (ode only)
  std::vector<float> text;         // [N, text_len, text_dim]
  std::vector<float> text_uncond;  // [text_len, text_dim] (CFG of the CD teacher and the DMD real score)
};

struct TrainOptions {
  Trainer trainer = Trainer::diffusion;
  ModelConfig model;             // the trained network (generator / student); frames_per_block = k
  bool teacher_forcing = true;   // diffusion only
  bool causal = true;            // diffusion without teacher forcing: block-causal (true) or full mask

  int64_t steps = 0;             // total optimizer steps (a resumed run continues up to this count)
  int64_t batch = 1;
  uint64_t seed = 0;
  AdamWConfig optim;             // generator: lr, beta1, beta2, weight_decay
  AdamWConfig critic_optim;      // DMD critic: lr_critic, beta1_critic, beta2_critic
  double max_grad_norm = 10.0;
  double max_grad_norm_critic = 10.0;
  double ema_weight = 0.99;
  int64_t ema_start_step = 2000000000;  // diffusion/DMD; CD updates its EMA target from step 0
  int64_t dfake_gen_update_ratio = 5;

  double timestep_shift = 5.0;        // model_kwargs.timestep_shift: the generator's training grid
  double score_timestep_shift = 8.0;  // DMD scores' x0 conversion grid (upstream's wrapper default)
  double dmd_timestep_shift = 5.0;    // timestep_shift: DMD/critic timestep draw
  std::vector<double> denoising_steps;  // warped few-step list (ode, DMD)
  double guidance_scale = 3.0;        // CD teacher (standard form) and DMD real score (cond + g (cond - uncond))
  int cd_steps = 48;                  // discrete_cd_N
  double context_noise = 0.0;
  bool bf16_timesteps = true;         // round sampled timesteps to bf16 as upstream (S1, CD)

  WeightsSource init;        // the trained network's initial weights; empty: seeded init
  WeightsSource teacher;     // CD teacher (default: init)
  WeightsSource real_score;  // DMD
  WeightsSource fake_score;  // DMD critic init (default: real_score)

  std::string work_dir;          // checkpoints; empty: none
  bool resume = false;           // continue from the newest valid checkpoint in work_dir
  int64_t checkpoint_every = 0;  // plus one at the end and on cancel when work_dir is set
  int64_t keep_checkpoints = 2;  // newest kept (0: all)
  int64_t progress_every = 1;
  int threads = 0;               // CPU threads (0: all cores); results do not depend on it
  DeviceFactory device;          // the compute device; empty: the CPU backend with `threads`

  std::string output_path;       // final weights (generator. and, when active, generator_ema.); empty: none
  std::vector<std::pair<std::string, std::string>> output_metadata;  // extra metadata of that file
};

struct TrainResult {
  int64_t step = 0;
  bool cancelled = false;
  double loss = 0.0;             // last reported loss (DMD: critic)
  double generator_loss = 0.0;   // DMD: last generator loss
  bool ema_active = false;
  int64_t resumed_from = -1;
  std::string checkpoint;        // state file of the last checkpoint written or resumed from
  std::string output_path;
  int64_t params = 0;            // parameters of the trained network
  double seconds = 0.0;          // wall time of this call's steps
  std::string backend;           // the backend that ran the job, e.g. "cpu" or "cuda:0"
};

// Runs the job; throws cfp::Error for invalid options or data (naming the field and what was
// expected), non-finite losses or gradients, a checkpoint of another problem, and I/O failures.
TrainResult train(const TrainOptions& options, const TrainData& data, JobContext& context);

}  // namespace cfp
