#include "core/sampler_model.h"

#include "core/error.h"

namespace cfp {

ModelFlowNet::ModelFlowNet(Model<float>& model, int64_t batch, const float* text_cond, const float* text_uncond)
    : model_(model), batch_(batch), text_{text_cond, text_uncond} {
  CFP_CHECK(batch > 0, "batch must be positive, got %lld", static_cast<long long>(batch));
  CFP_CHECK(text_cond != nullptr, "the conditional text is required");
}

void ModelFlowNet::set_text(int context, const float* text) {
  CFP_CHECK(context == kCond || context == kUncond, "unknown context %d", context);
  text_[context] = text;
  if (cache_[context]) cache_[context]->reset_prompt();
}

int64_t ModelFlowNet::frame_numel() const {
  const ModelConfig& c = model_.config();
  return c.channels * c.height * c.width;
}

const float* ModelFlowNet::text_of(int context) const {
  CFP_CHECK(context == kCond || context == kUncond, "unknown context %d", context);
  CFP_CHECK(text_[context] != nullptr, "%s text is missing: CFG needs a negative prompt",
            context == kCond ? "conditional" : "unconditional");
  return text_[context];
}

KVCache<float>& ModelFlowNet::cache_of(int context) {
  if (!cache_[context]) cache_[context] = std::make_unique<KVCache<float>>(model_.make_cache(batch_));
  return *cache_[context];
}

void ModelFlowNet::stream(int context, float* flow, const float* x, const float* t, int64_t start_frame,
                          int64_t n_frames) {
  const float* text = text_of(context);
  model_.forward_stream(flow, x, t, text, batch_, start_frame, n_frames, cache_of(context), false);
}

void ModelFlowNet::teacher_forcing(int context, float* flow, const float* x_noisy, const float* t,
                                   const float* x_clean) {
  const float* text = text_of(context);
  model_.forward_teacher_forcing(flow, x_noisy, t, x_clean, 0.0, text, batch_, frames());
}

}  // namespace cfp
