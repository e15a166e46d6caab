// The small causal video DiT of Causal Forcing (spec §4), with every dimension a parameter.
//
// Forward pass (per sample, spec §4.2): patchify + Linear patch embedding; per-frame sinusoidal
// time embedding -> MLP -> six modulation vectors per frame and block (+ a learned 6xD table per
// block); per block: modulated LN -> self-attention (q/k RMSNorm over D, 3-D RoPE, masked) ->
// gated residual; affine LN -> cross-attention to the text MLP output; modulated LN -> FFN (GELU
// tanh) -> gated residual; head with its own 2xD modulation; unpatchify. Output = the flow v.
//
// Every layer has a hand-written backward. All parameters live in one flat buffer described by a
// name table with upstream-style names (`model.blocks.0.self_attn.q.weight`, spec §4), so the
// optimizer, EMA and safetensors code work over one pointer and one table.
//
// Activation memory is allocated once per distinct input shape and reused; backward() uses the
// activations of the most recent forward call on this Model (only one forward is kept; objectives
// that need gradients through several forwards recompute them).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"

namespace cfp {

struct ModelConfig {
  int64_t channels = 16;          // latent channels in = out
  int64_t patch_t = 1, patch_h = 2, patch_w = 2;
  int64_t dim = 1536;
  int64_t ffn_dim = 8960;
  int64_t heads = 12;
  int64_t layers = 30;
  int64_t freq_dim = 256;         // sinusoidal time-embedding width
  int64_t text_dim = 4096;
  int64_t text_len = 512;
  int64_t frames = 21;            // latent frames of a full clip (= maximum KV-cache frames)
  int64_t height = 60, width = 104;  // latent height and width
  int64_t frames_per_block = 3;   // k: 1 = frame-wise, 3 = chunk-wise
  double rope_theta = 10000.0;
  double eps = 1e-6;              // all norms

  int64_t head_dim() const { return dim / heads; }
  int64_t tokens_per_frame() const { return (height / patch_h) * (width / patch_w); }
  int64_t patch_dim() const { return channels * patch_t * patch_h * patch_w; }
  // RoPE split of the head's hd/2 complex pairs (spec §7): temporal, height, width.
  int64_t rope_pairs_h() const { return head_dim() / 6; }
  int64_t rope_pairs_w() const { return head_dim() / 6; }
  int64_t rope_pairs_t() const { return head_dim() / 2 - 2 * (head_dim() / 6); }

  // Throws cfp::Error naming the first inconsistent field.
  void validate() const;

  // Wan2.1-T2V-1.3B dimensions (spec §4.1).
  static ModelConfig wan_1_3b(int64_t frames_per_block);
  // The tiny preset of the built-in video domain: fits a whole pipeline on 2 CPU cores.
  static ModelConfig tiny(int64_t frames_per_block);
};

struct ParamEntry {
  std::string name;  // e.g. "model.blocks.0.self_attn.q.weight"
  Shape shape;       // upstream shape, e.g. [D, C, 1, 2, 2] for the patch embedding
  int64_t offset = 0;  // element offset in the flat buffer
  int64_t numel() const { return shape_numel(shape); }
};

// The parameter name table of a config, in a fixed order; offsets are contiguous.
std::vector<ParamEntry> model_param_table(const ModelConfig& config);
int64_t model_param_count(const ModelConfig& config);

// Streaming state (spec §4.4): per layer, self-attention keys (after RoPE) and values for every
// token position of the clip, plus the cross-attention keys/values of the current prompt.
// A forward_stream call for frames [start, start + n) writes its keys/values into exactly those
// slots (so re-running a block overwrites the same slots) and attends to slots [0, start + n).
template <class T>
struct KVCache {
  int64_t batch = 0;
  int64_t max_tokens = 0;
  std::vector<Tensor<T>> k, v;              // per layer [B, max_tokens, D]
  std::vector<Tensor<T>> cross_k, cross_v;  // per layer [B, text_len, D]
  bool cross_ready = false;                 // cross K/V computed for the current prompt
  void reset_prompt() { cross_ready = false; }  // call when the text changes
};

template <class T>
class Model {
 public:
  Model(Backend<T>& backend, ModelConfig config);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  Backend<T>& backend() { return backend_; }
  const std::vector<ParamEntry>& param_table() const { return table_; }
  const ParamEntry& param(const std::string& name) const;  // throws if unknown
  Tensor<T>& params() { return params_; }  // flat [P]
  Tensor<T>& grads() { return grads_; }    // flat [P], accumulated by backward()
  int64_t num_params() const { return params_.numel(); }

  // Deterministic initialisation from a seed: Xavier-uniform linear weights, zero biases, unit
  // norm weights, modulation tables ~ N(0, 1/D). Unlike upstream, the head weight is not zero (a
  // zero head would block every gradient into the trunk when training from scratch).
  void init(uint64_t seed);
  void zero_grad();

  // Full-sequence forward. x: [B, F, C, H, W], t: [B, F] timesteps (0..1000), text:
  // [B, text_len, text_dim]; out: [B, F, C, H, W] flow prediction. mask: full or block_causal.
  void forward(T* out, const T* x, const T* t, const T* text, int64_t B, int64_t F, MaskKind mask);

  // Teacher-forcing forward (spec §3.5/§3.6): the sequence is [clean copy ; noisy copy] with
  // shared RoPE positions; the clean copy is modulated with t_clean (0: the clean-context
  // augmentation timestep); only the noisy half goes through the head.
  void forward_teacher_forcing(T* out, const T* x_noisy, const T* t, const T* x_clean, double t_clean,
                               const T* text, int64_t B, int64_t F);

  // Streaming forward with a KV cache (spec §4.4) for frames [start_frame, start_frame + n_frames).
  // x: [B, n, C, H, W], t: [B, n]. With grad = true the call keeps activations for backward()
  // (cached keys of earlier frames act as constants) and recomputes the cross-attention K/V from
  // the text so the text path gets gradients, as upstream does under gradient checkpointing.
  void forward_stream(T* out, const T* x, const T* t, const T* text, int64_t B, int64_t start_frame,
                      int64_t n_frames, KVCache<T>& cache, bool grad = false);

  // Backward of the most recent forward: dout has the shape of that forward's out. Accumulates
  // parameter gradients into grads(); if dx is not null, also accumulates d loss / d x (the noisy
  // input for teacher forcing).
  void backward(const T* dout, T* dx = nullptr);

  KVCache<T> make_cache(int64_t B);

 private:
  struct Workspace;
  struct Plan;
  Workspace& workspace_for(const Plan& plan);
  void run_forward(const Plan& plan, T* out, const T* x, const T* x_clean, const T* t, double t_clean,
                   const T* text, KVCache<T>* cache, bool use_cross_cache);
  void build_rope_tables(Workspace& ws, const Plan& plan);
  // The Backend::run_recorded key of a forward or backward: the plan, the workspace's RoPE tables,
  // the cache's buffers and every pointer and scalar the launches read.
  std::string recording_key(const char* kind, const Plan& plan, const Workspace& ws, const KVCache<T>* cache,
                            std::initializer_list<const void*> pointers, double scalar, int flags) const;

  Backend<T>& backend_;
  ModelConfig config_;
  std::vector<ParamEntry> table_;
  Tensor<T> params_, grads_;
  std::map<std::string, std::unique_ptr<Workspace>> workspaces_;
  Workspace* last_ = nullptr;  // workspace of the most recent forward
};

}  // namespace cfp
