// ModelFlowNet: cfp::Model seen as a FlowNet by the samplers. It owns one KV cache per
// conditioning context (cond, uncond) and the text of each; the cross-attention keys/values are
// recomputed when a context's text changes.
#pragma once
#include <cstdint>
#include <memory>

#include "core/model.h"
#include "core/samplers.h"

namespace cfp {

class ModelFlowNet : public FlowNet {
 public:
  // text_cond / text_uncond: backend buffers [B, text_len, text_dim]; text_uncond may be null when
  // the sampler runs without CFG (guidance 1, or the few-step student).
  ModelFlowNet(Model<float>& model, int64_t batch, const float* text_cond, const float* text_uncond = nullptr);

  // New prompt(s) for the next video; the caches' cross-attention is recomputed on the next call.
  void set_text(int context, const float* text);

  Backend<float>& backend() override { return model_.backend(); }
  int64_t batch() const override { return batch_; }
  int64_t frames() const override { return model_.config().frames; }
  int64_t frame_numel() const override;
  void stream(int context, float* flow, const float* x, const float* t, int64_t start_frame,
              int64_t n_frames) override;
  void teacher_forcing(int context, float* flow, const float* x_noisy, const float* t, const float* x_clean) override;

 private:
  const float* text_of(int context) const;
  KVCache<float>& cache_of(int context);

  Model<float>& model_;
  int64_t batch_;
  const float* text_[2];
  std::unique_ptr<KVCache<float>> cache_[2];
};

}  // namespace cfp
