// The causal DiT (see model.h): parameter table, init, forward in three modes and the backward.
// Each layer is one readable block of op calls; the backward mirrors it in reverse.
#include "core/model.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/rng.h"

namespace cfp {

// ---- config ----------------------------------------------------------------------------------

void ModelConfig::validate() const {
  auto ll = [](int64_t v) { return static_cast<long long>(v); };
  CFP_CHECK(channels > 0 && dim > 0 && ffn_dim > 0 && heads > 0 && layers > 0 && text_dim > 0 && text_len > 0,
            "model sizes must be positive");
  CFP_CHECK(patch_t == 1, "only temporal patch 1 is supported (got %lld)", ll(patch_t));
  CFP_CHECK(patch_h > 0 && patch_w > 0, "patch size must be positive");
  CFP_CHECK(dim % heads == 0, "dim %lld is not divisible by heads %lld", ll(dim), ll(heads));
  CFP_CHECK(head_dim() % 2 == 0, "head dim %lld must be even for RoPE", ll(head_dim()));
  CFP_CHECK(freq_dim > 0 && freq_dim % 2 == 0, "freq_dim %lld must be positive and even", ll(freq_dim));
  CFP_CHECK(height % patch_h == 0 && width % patch_w == 0, "latent %lldx%lld is not divisible by patch %lldx%lld",
            ll(height), ll(width), ll(patch_h), ll(patch_w));
  CFP_CHECK(frames > 0, "frames must be positive");
  CFP_CHECK(frames_per_block > 0, "frames_per_block must be positive");
  CFP_CHECK(rope_theta > 0 && eps > 0, "rope_theta and eps must be positive");
}

ModelConfig ModelConfig::wan_1_3b(int64_t frames_per_block) {
  ModelConfig c;
  c.frames_per_block = frames_per_block;
  return c;
}

ModelConfig ModelConfig::tiny(int64_t frames_per_block) {
  // The default model_kwargs of configs/default_config.yaml: [9, 48, 8, 8] latents.
  ModelConfig c;
  c.channels = 48;
  c.dim = 64;
  c.ffn_dim = 256;
  c.heads = 4;
  c.layers = 4;
  c.freq_dim = 32;
  c.text_dim = 32;
  c.text_len = 8;
  c.frames = 9;
  c.height = 8;
  c.width = 8;
  c.frames_per_block = frames_per_block;
  return c;
}

std::vector<ParamEntry> model_param_table(const ModelConfig& c) {
  c.validate();
  std::vector<ParamEntry> t;
  int64_t off = 0;
  auto add = [&](std::string name, Shape shape) {
    t.push_back({std::move(name), shape, off});
    off += shape_numel(shape);
  };
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    add(name + ".weight", {out, in});
    add(name + ".bias", {out});
  };
  const int64_t D = c.dim;
  add("model.patch_embedding.weight", {D, c.channels, c.patch_t, c.patch_h, c.patch_w});
  add("model.patch_embedding.bias", {D});
  linear("model.text_embedding.0", D, c.text_dim);
  linear("model.text_embedding.2", D, D);
  linear("model.time_embedding.0", D, c.freq_dim);
  linear("model.time_embedding.2", D, D);
  linear("model.time_projection.1", 6 * D, D);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string b = "model.blocks." + std::to_string(l) + ".";
    add(b + "modulation", {1, 6, D});
    for (const char* p : {"q", "k", "v", "o"}) linear(b + "self_attn." + p, D, D);
    add(b + "self_attn.norm_q.weight", {D});
    add(b + "self_attn.norm_k.weight", {D});
    add(b + "norm3.weight", {D});
    add(b + "norm3.bias", {D});
    for (const char* p : {"q", "k", "v", "o"}) linear(b + "cross_attn." + p, D, D);
    add(b + "cross_attn.norm_q.weight", {D});
    add(b + "cross_attn.norm_k.weight", {D});
    linear(b + "ffn.0", c.ffn_dim, D);
    linear(b + "ffn.2", D, c.ffn_dim);
  }
  linear("model.head.head", c.patch_dim(), D);
  add("model.head.modulation", {1, 2, D});
  return t;
}

int64_t model_param_count(const ModelConfig& c) {
  const auto t = model_param_table(c);
  return t.back().offset + t.back().numel();
}

// ---- plan and workspace ----------------------------------------------------------------------

// What one forward call looks like: everything the activation sizes depend on.
template <class T>
struct Model<T>::Plan {
  enum class Mode { full, teacher_forcing, stream } mode = Mode::full;
  MaskKind mask = MaskKind::full;
  int64_t B = 1;
  int64_t F = 0;            // input frames (noisy frames for teacher forcing)
  int64_t slots = 0;        // frame slots per sample in the token sequence (2F for teacher forcing)
  int64_t start_frame = 0;  // stream: absolute frame of the first input frame
  std::string key() const {
    return std::to_string(int(mode)) + "/" + std::to_string(int(mask)) + "/" + std::to_string(B) + "/" +
           std::to_string(F);
  }
};

template <class T>
struct Model<T>::Workspace {
  struct Layer {
    Tensor<T> x_in, ln1, ln1_mean, ln1_rstd, mod, m1, q_lin, k_lin, q_rstd, k_rstd, q, k, v, att, att_lse, sa;
    Tensor<T> x1, ln3, ln3_mean, ln3_rstd, cq_lin, cq_rstd, cq, ck_lin, ck_rstd, ck, cv, catt, catt_lse;
    Tensor<T> x2, ln2, ln2_mean, ln2_rstd, m2, h, h_act, ff;
  };
  Plan plan;
  int64_t T_tok = 0, N = 0, S = 0, Nc = 0, Nh = 0, Sh = 0;  // tokens/sample, tokens, slots, text rows, head rows/slots
  int64_t rope_start = -1;                                  // start frame the RoPE tables were built for
  Tensor<T> rope_cos, rope_sin;                             // [T_tok, hd/2]
  // Stream plans move their start frame block by block (rollouts revisit the same few): the tables
  // of each start frame are built once and kept (at most kRopeKeep starts; then rebuilt).
  static constexpr size_t kRopeKeep = 64;
  std::map<int64_t, std::pair<Tensor<T>, Tensor<T>>> rope_by_start;
  Tensor<T> t_slots, tfreq, te_h, te_h_act, e, e_act, e0;   // time path
  Tensor<T> ptmp, patches;                                  // patch vectors
  Tensor<T> text_in, ctx_h, ctx_act, ctx;                   // text path (input copied for the backward)
  KVCache<T>* cache = nullptr;                              // stream: the cache the forward attended to
  std::vector<Layer> layers;
  Tensor<T> x_out, hx, head_mod, hln, hln_mean, hln_rstd, hm, hout;  // head
  // gradient scratch
  Tensor<T> dx, dy, dz, dw, dq, dk, dv, dh, dh2, dmod, de0, de, de_act, dte, dte2, dctx, dctx2, dctx3;
  Tensor<T> dck, dcv, dkc, dvc, dhead_mod, dhout, dpatch, dptmp;
  bool cross_from_cache = false;  // the last forward read cross K/V from the cache (no text grads)
};

template <class T>
Model<T>::Model(Backend<T>& backend, ModelConfig config)
    : backend_(backend), config_(std::move(config)), table_(model_param_table(config_)) {
  const int64_t P = table_.back().offset + table_.back().numel();
  params_ = backend_.zeros({P});
  grads_ = backend_.zeros({P});
}

template <class T>
Model<T>::~Model() {
  backend_.forget_recordings(this);  // recordings replay into this model's weights and workspaces
}

template <class T>
const ParamEntry& Model<T>::param(const std::string& name) const {
  for (const auto& e : table_)
    if (e.name == name) return e;
  CFP_THROW("unknown parameter '%s'", name.c_str());
}

template <class T>
void Model<T>::zero_grad() {
  backend_.fill(grads_.data(), T(0), grads_.numel());
}

template <class T>
void Model<T>::init(uint64_t seed) {
  const int64_t D = config_.dim;
  std::vector<float> draw;
  std::vector<T> host;
  for (size_t i = 0; i < table_.size(); ++i) {
    const ParamEntry& p = table_[i];
    const size_t n = static_cast<size_t>(p.numel());
    Philox rng(seed, /*stream=*/i);  // one stream per tensor: values do not depend on table order
    draw.assign(n, 0.0f);
    const std::string& name = p.name;
    auto ends = [&](const char* s) {
      const size_t m = std::strlen(s);
      return name.size() >= m && name.compare(name.size() - m, m, s) == 0;
    };
    if (ends("modulation")) {
      rng.fill_normal(draw.data(), n, 0.0f, static_cast<float>(1.0 / std::sqrt(double(D))));
    } else if (ends("norm_q.weight") || ends("norm_k.weight") || ends("norm3.weight")) {
      std::fill(draw.begin(), draw.end(), 1.0f);
    } else if (ends(".bias")) {
      // zero
    } else if (name.rfind("model.text_embedding", 0) == 0 || name.rfind("model.time_embedding", 0) == 0) {
      rng.fill_normal(draw.data(), n, 0.0f, 0.02f);  // upstream: normal(std 0.02) for the embedding MLPs
    } else {
      // Xavier uniform over (fan_out, fan_in) with all trailing dims folded into fan_in.
      const double fan_out = double(p.shape[0]), fan_in = double(p.numel()) / fan_out;
      const double bound = std::sqrt(6.0 / (fan_in + fan_out));
      rng.fill_uniform(draw.data(), n);
      for (auto& v : draw) v = static_cast<float>((2.0 * v - 1.0) * bound);
    }
    host.assign(draw.begin(), draw.end());
    backend_.upload(params_.data() + p.offset, host.data(), p.numel());
  }
  zero_grad();
}

template <class T>
KVCache<T> Model<T>::make_cache(int64_t B) {
  KVCache<T> c;
  c.batch = B;
  c.max_tokens = config_.frames * config_.tokens_per_frame();
  for (int64_t l = 0; l < config_.layers; ++l) {
    c.k.push_back(backend_.zeros({B, c.max_tokens, config_.dim}));
    c.v.push_back(backend_.zeros({B, c.max_tokens, config_.dim}));
    c.cross_k.push_back(backend_.zeros({B, config_.text_len, config_.dim}));
    c.cross_v.push_back(backend_.zeros({B, config_.text_len, config_.dim}));
  }
  return c;
}

template <class T>
typename Model<T>::Workspace& Model<T>::workspace_for(const Plan& plan) {
  auto it = workspaces_.find(plan.key());
  if (it != workspaces_.end()) {
    it->second->plan = plan;
    return *it->second;
  }
  auto ws = std::make_unique<Workspace>();
  Workspace& w = *ws;
  Backend<T>& be = backend_;
  const ModelConfig& c = config_;
  const int64_t D = c.dim, Lf = c.tokens_per_frame(), B = plan.B, H = c.heads;
  w.plan = plan;
  w.T_tok = plan.slots * Lf;
  w.N = B * w.T_tok;
  w.S = B * plan.slots;
  w.Nc = B * c.text_len;
  w.Sh = B * plan.F;
  w.Nh = w.Sh * Lf;
  const int64_t N = w.N, S = w.S, Nc = w.Nc;
  w.rope_cos = be.zeros({w.T_tok, c.head_dim() / 2});
  w.rope_sin = be.zeros({w.T_tok, c.head_dim() / 2});
  w.t_slots = be.zeros({S});
  w.tfreq = be.zeros({S, c.freq_dim});
  w.te_h = be.zeros({S, D});
  w.te_h_act = be.zeros({S, D});
  w.e = be.zeros({S, D});
  w.e_act = be.zeros({S, D});
  w.e0 = be.zeros({S, 6 * D});
  w.ptmp = be.zeros({w.Nh, c.patch_dim()});
  w.patches = be.zeros({N, c.patch_dim()});
  w.text_in = be.zeros({Nc, c.text_dim});
  w.ctx_h = be.zeros({Nc, D});
  w.ctx_act = be.zeros({Nc, D});
  w.ctx = be.zeros({Nc, D});
  w.layers.resize(static_cast<size_t>(c.layers));
  for (auto& L : w.layers) {
    for (Tensor<T>* t : {&L.x_in, &L.ln1, &L.m1, &L.q_lin, &L.k_lin, &L.q, &L.k, &L.v, &L.att, &L.sa, &L.x1, &L.ln3,
                         &L.cq_lin, &L.cq, &L.catt, &L.x2, &L.ln2, &L.m2, &L.ff})
      *t = be.zeros({N, D});
    for (Tensor<T>* t : {&L.ln1_mean, &L.ln1_rstd, &L.q_rstd, &L.k_rstd, &L.ln3_mean, &L.ln3_rstd, &L.cq_rstd,
                         &L.ln2_mean, &L.ln2_rstd})
      *t = be.zeros({N});
    for (Tensor<T>* t : {&L.ck_lin, &L.ck, &L.cv}) *t = be.zeros({Nc, D});
    L.ck_rstd = be.zeros({Nc});
    L.mod = be.zeros({S, 6 * D});
    L.att_lse = be.zeros({B, H, w.T_tok});
    L.catt_lse = be.zeros({B, H, w.T_tok});
    L.h = be.zeros({N, c.ffn_dim});
    L.h_act = be.zeros({N, c.ffn_dim});
  }
  w.x_out = be.zeros({N, D});
  w.hx = be.zeros({w.Nh, D});
  w.head_mod = be.zeros({w.Sh, 2 * D});
  w.hln = be.zeros({w.Nh, D});
  w.hln_mean = be.zeros({w.Nh});
  w.hln_rstd = be.zeros({w.Nh});
  w.hm = be.zeros({w.Nh, D});
  w.hout = be.zeros({w.Nh, c.patch_dim()});
  for (Tensor<T>* t : {&w.dx, &w.dy, &w.dz, &w.dw, &w.dq, &w.dk, &w.dv}) *t = be.zeros({N, D});
  w.dh = be.zeros({N, c.ffn_dim});
  w.dh2 = be.zeros({N, c.ffn_dim});
  w.dmod = be.zeros({S, 6 * D});
  w.de0 = be.zeros({S, 6 * D});
  for (Tensor<T>* t : {&w.de, &w.de_act, &w.dte, &w.dte2}) *t = be.zeros({S, D});
  for (Tensor<T>* t : {&w.dctx, &w.dctx2, &w.dctx3, &w.dck, &w.dcv}) *t = be.zeros({Nc, D});
  if (plan.mode == Plan::Mode::stream) {
    const int64_t max_tokens = c.frames * Lf;
    w.dkc = be.zeros({B, max_tokens, D});
    w.dvc = be.zeros({B, max_tokens, D});
  }
  w.dhead_mod = be.zeros({w.Sh, 2 * D});
  w.dhout = be.zeros({w.Nh, c.patch_dim()});
  w.dpatch = be.zeros({N, c.patch_dim()});
  w.dptmp = be.zeros({w.Nh, c.patch_dim()});
  Workspace& ref = *ws;
  workspaces_.emplace(plan.key(), std::move(ws));
  return ref;
}

// RoPE angle tables for the plan's token positions (spec §4.3): pairs split temporal / height /
// width; pair j of a part with 2P dims has frequency theta^(-2j / 2P); angles in double.
template <class T>
void Model<T>::build_rope_tables(Workspace& w, const Plan& plan) {
  if (w.rope_start == plan.start_frame) return;
  const auto kept = w.rope_by_start.find(plan.start_frame);
  if (kept != w.rope_by_start.end()) {
    w.rope_cos = kept->second.first;
    w.rope_sin = kept->second.second;
    w.rope_start = plan.start_frame;
    return;
  }
  const ModelConfig& c = config_;
  const int64_t half = c.head_dim() / 2, pt = c.rope_pairs_t(), phh = c.rope_pairs_h(), pww = c.rope_pairs_w();
  const int64_t Wp = c.width / c.patch_w, Lf = c.tokens_per_frame();
  // The frequency of pair j (the same std::pow per pair as computed per token before: same angles).
  std::vector<double> freq(static_cast<size_t>(half));
  for (int64_t j = 0; j < half; ++j) {
    if (j < pt)
      freq[static_cast<size_t>(j)] = std::pow(c.rope_theta, -2.0 * double(j) / double(2 * pt));
    else if (j < pt + phh)
      freq[static_cast<size_t>(j)] = std::pow(c.rope_theta, -2.0 * double(j - pt) / double(2 * phh));
    else
      freq[static_cast<size_t>(j)] = std::pow(c.rope_theta, -2.0 * double(j - pt - phh) / double(2 * pww));
  }
  std::vector<T> cs(static_cast<size_t>(w.T_tok * half)), sn(cs.size());
  for (int64_t tok = 0; tok < w.T_tok; ++tok) {
    const int64_t slot = tok / Lf, l = tok % Lf;
    int64_t f = slot;
    if (plan.mode == Plan::Mode::teacher_forcing) f = slot % plan.F;  // clean and noisy copies share positions
    if (plan.mode == Plan::Mode::stream) f = plan.start_frame + slot;
    const int64_t pos_h = l / Wp, pos_w = l % Wp;
    for (int64_t j = 0; j < half; ++j) {
      const double pos = j < pt ? double(f) : j < pt + phh ? double(pos_h) : double(pos_w);
      const double angle = pos * freq[static_cast<size_t>(j)];
      cs[static_cast<size_t>(tok * half + j)] = static_cast<T>(std::cos(angle));
      sn[static_cast<size_t>(tok * half + j)] = static_cast<T>(std::sin(angle));
    }
  }
  if (w.rope_by_start.size() >= Workspace::kRopeKeep) w.rope_by_start.clear();
  // Fresh buffers per start frame (kept ones are never overwritten).
  w.rope_cos = backend_.empty({w.T_tok, half});
  w.rope_sin = backend_.empty({w.T_tok, half});
  backend_.upload(w.rope_cos.data(), cs.data(), static_cast<int64_t>(cs.size()));
  backend_.upload(w.rope_sin.data(), sn.data(), static_cast<int64_t>(sn.size()));
  w.rope_by_start.emplace(plan.start_frame, std::make_pair(w.rope_cos, w.rope_sin));
  w.rope_start = plan.start_frame;
}

template <class T>
std::string Model<T>::recording_key(const char* kind, const Plan& plan, const Workspace& ws, const KVCache<T>* cache,
                                    std::initializer_list<const void*> pointers, double scalar, int flags) const {
  char buf[64];
  std::string key = std::string(kind) + "/" + plan.key() + "/" + std::to_string(plan.start_frame) + "/" +
                    std::to_string(flags);
  std::snprintf(buf, sizeof buf, "/%a", scalar);
  key += buf;
  auto add = [&](const void* p) {
    std::snprintf(buf, sizeof buf, "/%p", p);
    key += buf;
  };
  for (const void* p : pointers) add(p);
  add(ws.rope_cos.data());
  add(ws.rope_sin.data());
  if (cache)
    for (size_t l = 0; l < cache->k.size(); ++l)
      for (const auto* t : {&cache->k[l], &cache->v[l], &cache->cross_k[l], &cache->cross_v[l]}) add(t->data());
  return key;
}

// ---- layer helpers ---------------------------------------------------------------------------

namespace {
// out[N, O] = in[N, I] W[O, I]^T + b
template <class T>
void linear_forward(Backend<T>& be, T* out, const T* in, const T* W, const T* b, int64_t N, int64_t I, int64_t O) {
  be.gemm_bias(false, true, N, O, I, in, I, W, I, b, out, O);
}
// dW += dout^T in; db += colsum(dout); din (+)= dout W (accumulate or overwrite).
template <class T>
void linear_backward(Backend<T>& be, T* din, bool accumulate, T* dW, T* db, const T* dout, const T* in, const T* W,
                     int64_t N, int64_t I, int64_t O) {
  be.gemm(true, false, O, I, N, T(1), dout, O, in, I, T(1), dW, I);
  if (db) be.bias_backward(db, dout, N, O);
  if (din) be.gemm(false, false, N, I, O, T(1), dout, O, W, I, accumulate ? T(1) : T(0), din, I);
}
}  // namespace

// ---- forward ---------------------------------------------------------------------------------

template <class T>
void Model<T>::forward(T* out, const T* x, const T* t, const T* text, int64_t B, int64_t F, MaskKind mask) {
  CFP_CHECK(mask == MaskKind::full || mask == MaskKind::block_causal,
            "forward() takes a full or block-causal mask; use forward_teacher_forcing for teacher forcing");
  CFP_CHECK(B > 0 && F > 0 && F <= config_.frames, "forward: need 0 < F <= %lld frames, got %lld",
            static_cast<long long>(config_.frames), static_cast<long long>(F));
  Plan p;
  p.mode = Plan::Mode::full;
  p.mask = mask;
  p.B = B;
  p.F = F;
  p.slots = F;
  run_forward(p, out, x, nullptr, t, 0.0, text, nullptr, false);
}

template <class T>
void Model<T>::forward_teacher_forcing(T* out, const T* x_noisy, const T* t, const T* x_clean, double t_clean,
                                       const T* text, int64_t B, int64_t F) {
  CFP_CHECK(B > 0 && F > 0 && F <= config_.frames, "teacher forcing: need 0 < F <= %lld frames, got %lld",
            static_cast<long long>(config_.frames), static_cast<long long>(F));
  Plan p;
  p.mode = Plan::Mode::teacher_forcing;
  p.mask = MaskKind::teacher_forcing;
  p.B = B;
  p.F = F;
  p.slots = 2 * F;
  run_forward(p, out, x_noisy, x_clean, t, t_clean, text, nullptr, false);
}

template <class T>
void Model<T>::forward_stream(T* out, const T* x, const T* t, const T* text, int64_t B, int64_t start_frame,
                              int64_t n_frames, KVCache<T>& cache, bool grad) {
  CFP_CHECK(cache.batch == B && !cache.k.empty(), "KV cache was made for batch %lld, not %lld",
            static_cast<long long>(cache.batch), static_cast<long long>(B));
  CFP_CHECK(start_frame >= 0 && n_frames > 0 && start_frame + n_frames <= config_.frames,
            "stream frames [%lld, %lld) exceed the %lld-frame cache", static_cast<long long>(start_frame),
            static_cast<long long>(start_frame + n_frames), static_cast<long long>(config_.frames));
  Plan p;
  p.mode = Plan::Mode::stream;
  p.mask = MaskKind::full;
  p.B = B;
  p.F = n_frames;
  p.slots = n_frames;
  p.start_frame = start_frame;
  run_forward(p, out, x, nullptr, t, 0.0, text, &cache, !grad);
}

template <class T>
void Model<T>::run_forward(const Plan& plan, T* out, const T* x, const T* x_clean, const T* t, double t_clean,
                           const T* text, KVCache<T>* cache, bool use_cross_cache) {
  Backend<T>& be = backend_;
  const ModelConfig& c = config_;
  Workspace& w = workspace_for(plan);
  build_rope_tables(w, plan);
  last_ = &w;
  const int64_t D = c.dim, Lf = c.tokens_per_frame(), B = plan.B, F = plan.F, H = c.heads, hd = c.head_dim();
  const int64_t N = w.N, S = w.S, Tt = w.T_tok, Pd = c.patch_dim(), Nc = w.Nc;
  const bool tf = plan.mode == Plan::Mode::teacher_forcing;
  const bool stream = plan.mode == Plan::Mode::stream;
  auto P = [&](const std::string& name) { return params_.data() + param(name).offset; };
  // Host state the launches depend on, settled before them (a replay skips this function's host code).
  const bool cross_cached = use_cross_cache && cache && cache->cross_ready;
  const bool fill_cross = cache && !cache->cross_ready;  // this call stores the prompt's cross K/V in the cache
  w.cross_from_cache = cross_cached;
  w.cache = cache;
  auto key = [&] {
    return recording_key("fwd", plan, w, cache, {out, x, x_clean, t, text}, t_clean, int(cross_cached) + 2 * int(fill_cross));
  };
  be.run_recorded(this, key, [&] {
    // Timesteps per frame slot: [clean slots at t_clean ; noisy slots at t] per sample for TF.
    if (tf) {
      be.fill(w.t_slots.data(), static_cast<T>(t_clean), S);
      be.copy2d(w.t_slots.data() + F, 2 * F, t, F, B, F, false);
    } else {
      be.copy(w.t_slots.data(), t, S);
    }
    // Time embedding: sinusoid -> Linear, SiLU, Linear = e; SiLU, Linear -> e0 (six vectors per slot).
    be.timestep_embedding(w.tfreq.data(), w.t_slots.data(), S, c.freq_dim);
    linear_forward(be, w.te_h.data(), w.tfreq.data(), P("model.time_embedding.0.weight"),
                   P("model.time_embedding.0.bias"), S, c.freq_dim, D);
    be.silu_forward(w.te_h_act.data(), w.te_h.data(), S * D);
    linear_forward(be, w.e.data(), w.te_h_act.data(), P("model.time_embedding.2.weight"),
                   P("model.time_embedding.2.bias"), S, D, D);
    be.silu_forward(w.e_act.data(), w.e.data(), S * D);
    linear_forward(be, w.e0.data(), w.e_act.data(), P("model.time_projection.1.weight"),
                   P("model.time_projection.1.bias"), S, D, 6 * D);

    // Patch embedding (a Conv3d with kernel = stride = patch is patchify + Linear).
    if (tf) {
      const int64_t Lh = F * Lf;  // tokens of one copy
      be.patchify(w.ptmp.data(), x_clean, B, F, c.channels, c.height, c.width, c.patch_h, c.patch_w);
      be.copy2d(w.patches.data(), 2 * Lh * Pd, w.ptmp.data(), Lh * Pd, B, Lh * Pd, false);
      be.patchify(w.ptmp.data(), x, B, F, c.channels, c.height, c.width, c.patch_h, c.patch_w);
      be.copy2d(w.patches.data() + Lh * Pd, 2 * Lh * Pd, w.ptmp.data(), Lh * Pd, B, Lh * Pd, false);
    } else {
      be.patchify(w.patches.data(), x, B, F, c.channels, c.height, c.width, c.patch_h, c.patch_w);
    }
    T* xs = w.layers[0].x_in.data();
    linear_forward(be, xs, w.patches.data(), P("model.patch_embedding.weight"), P("model.patch_embedding.bias"), N, Pd,
                   D);

    // Text MLP (skipped when the streaming cache already holds this prompt's cross K/V).
    if (!cross_cached) {
      be.copy(w.text_in.data(), text, Nc * c.text_dim);
      linear_forward(be, w.ctx_h.data(), w.text_in.data(), P("model.text_embedding.0.weight"), P("model.text_embedding.0.bias"), Nc,
                     c.text_dim, D);
      be.gelu_tanh_forward(w.ctx_act.data(), w.ctx_h.data(), Nc * D);
      linear_forward(be, w.ctx.data(), w.ctx_act.data(), P("model.text_embedding.2.weight"),
                     P("model.text_embedding.2.bias"), Nc, D, D);
    }

    const double scale = 1.0 / std::sqrt(double(hd));
    AttnMask self_mask{plan.mask, c.frames_per_block * Lf, tf ? F * Lf : 0, 0};
    const int64_t start_tok = plan.start_frame * Lf;
    for (int64_t l = 0; l < c.layers; ++l) {
      auto& L = w.layers[static_cast<size_t>(l)];
      const std::string b = "model.blocks." + std::to_string(l) + ".";
      T* mod = L.mod.data();
      // Modulation = per-slot e0 + the block's learned 6xD table.
      be.copy(mod, w.e0.data(), S * 6 * D);
      be.add_bias(mod, P(b + "modulation"), S, 6 * D);

      // Self-attention on modulated LN(x).
      be.layernorm_forward(L.ln1.data(), L.ln1_mean.data(), L.ln1_rstd.data(), L.x_in.data(), nullptr, nullptr, N, D,
                           c.eps);
      be.modulate_forward(L.m1.data(), L.ln1.data(), mod + 0 * D, mod + 1 * D, 6 * D, S, Lf, D);
      linear_forward(be, L.q_lin.data(), L.m1.data(), P(b + "self_attn.q.weight"), P(b + "self_attn.q.bias"), N, D, D);
      linear_forward(be, L.k_lin.data(), L.m1.data(), P(b + "self_attn.k.weight"), P(b + "self_attn.k.bias"), N, D, D);
      linear_forward(be, L.v.data(), L.m1.data(), P(b + "self_attn.v.weight"), P(b + "self_attn.v.bias"), N, D, D);
      be.rmsnorm_forward(L.q.data(), L.q_rstd.data(), L.q_lin.data(), P(b + "self_attn.norm_q.weight"), N, D, c.eps);
      be.rmsnorm_forward(L.k.data(), L.k_rstd.data(), L.k_lin.data(), P(b + "self_attn.norm_k.weight"), N, D, c.eps);
      for (int64_t bi = 0; bi < B; ++bi) {
        be.rope_forward(L.q.data() + bi * Tt * D, L.q.data() + bi * Tt * D, w.rope_cos.data(), w.rope_sin.data(), Tt,
                        H, hd);
        be.rope_forward(L.k.data() + bi * Tt * D, L.k.data() + bi * Tt * D, w.rope_cos.data(), w.rope_sin.data(), Tt,
                        H, hd);
      }
      if (stream) {
        // Keys (after RoPE) and values go to their own slots; attend to every slot up to this block.
        T* ck = cache->k[static_cast<size_t>(l)].data();
        T* cv = cache->v[static_cast<size_t>(l)].data();
        const int64_t M = cache->max_tokens;
        be.copy2d(ck + start_tok * D, M * D, L.k.data(), Tt * D, B, Tt * D, false);
        be.copy2d(cv + start_tok * D, M * D, L.v.data(), Tt * D, B, Tt * D, false);
        AttnShape sh{B, Tt, start_tok + Tt, H, hd, M};
        be.attention_forward(L.att.data(), L.att_lse.data(), L.q.data(), ck, cv, sh, AttnMask{}, scale);
      } else {
        AttnShape sh{B, Tt, Tt, H, hd, 0};
        be.attention_forward(L.att.data(), L.att_lse.data(), L.q.data(), L.k.data(), L.v.data(), sh, self_mask, scale);
      }
      linear_forward(be, L.sa.data(), L.att.data(), P(b + "self_attn.o.weight"), P(b + "self_attn.o.bias"), N, D, D);
      be.copy(L.x1.data(), L.x_in.data(), N * D);
      be.gate_residual_forward(L.x1.data(), L.sa.data(), mod + 2 * D, 6 * D, S, Lf, D);

      // Cross-attention on affine LN(x), no modulation, no gate.
      be.layernorm_forward(L.ln3.data(), L.ln3_mean.data(), L.ln3_rstd.data(), L.x1.data(), P(b + "norm3.weight"),
                           P(b + "norm3.bias"), N, D, c.eps);
      linear_forward(be, L.cq_lin.data(), L.ln3.data(), P(b + "cross_attn.q.weight"), P(b + "cross_attn.q.bias"), N, D,
                     D);
      be.rmsnorm_forward(L.cq.data(), L.cq_rstd.data(), L.cq_lin.data(), P(b + "cross_attn.norm_q.weight"), N, D, c.eps);
      const T* ckp = L.ck.data();
      const T* cvp = L.cv.data();
      if (cross_cached) {
        ckp = cache->cross_k[static_cast<size_t>(l)].data();
        cvp = cache->cross_v[static_cast<size_t>(l)].data();
      } else {
        linear_forward(be, L.ck_lin.data(), w.ctx.data(), P(b + "cross_attn.k.weight"), P(b + "cross_attn.k.bias"), Nc,
                       D, D);
        be.rmsnorm_forward(L.ck.data(), L.ck_rstd.data(), L.ck_lin.data(), P(b + "cross_attn.norm_k.weight"), Nc, D,
                           c.eps);
        linear_forward(be, L.cv.data(), w.ctx.data(), P(b + "cross_attn.v.weight"), P(b + "cross_attn.v.bias"), Nc, D,
                       D);
        if (fill_cross) {
          be.copy(cache->cross_k[static_cast<size_t>(l)].data(), L.ck.data(), Nc * D);
          be.copy(cache->cross_v[static_cast<size_t>(l)].data(), L.cv.data(), Nc * D);
        }
      }
      AttnShape csh{B, Tt, c.text_len, H, hd, 0};
      be.attention_forward(L.catt.data(), L.catt_lse.data(), L.cq.data(), ckp, cvp, csh, AttnMask{}, scale);
      be.copy(L.x2.data(), L.x1.data(), N * D);
      be.gemm(false, true, N, D, D, T(1), L.catt.data(), D, P(b + "cross_attn.o.weight"), D, T(1), L.x2.data(), D);
      be.add_bias(L.x2.data(), P(b + "cross_attn.o.bias"), N, D);

      // FFN on modulated LN(x), gated residual.
      be.layernorm_forward(L.ln2.data(), L.ln2_mean.data(), L.ln2_rstd.data(), L.x2.data(), nullptr, nullptr, N, D,
                           c.eps);
      be.modulate_forward(L.m2.data(), L.ln2.data(), mod + 3 * D, mod + 4 * D, 6 * D, S, Lf, D);
      linear_forward(be, L.h.data(), L.m2.data(), P(b + "ffn.0.weight"), P(b + "ffn.0.bias"), N, D, c.ffn_dim);
      be.gelu_tanh_forward(L.h_act.data(), L.h.data(), N * c.ffn_dim);
      linear_forward(be, L.ff.data(), L.h_act.data(), P(b + "ffn.2.weight"), P(b + "ffn.2.bias"), N, c.ffn_dim, D);
      T* next = l + 1 < c.layers ? w.layers[static_cast<size_t>(l + 1)].x_in.data() : w.x_out.data();
      be.copy(next, L.x2.data(), N * D);
      be.gate_residual_forward(next, L.ff.data(), mod + 5 * D, 6 * D, S, Lf, D);
    }

    // Head on the output frames (the noisy half for teacher forcing): shift/scale = table + e.
    const int64_t Sh = w.Sh, Nh = w.Nh;
    if (tf) {
      const int64_t Lh = F * Lf;
      be.copy2d(w.hx.data(), Lh * D, w.x_out.data() + Lh * D, 2 * Lh * D, B, Lh * D, false);
      for (int64_t bi = 0; bi < B; ++bi)
        for (int64_t half = 0; half < 2; ++half)
          be.copy2d(w.head_mod.data() + bi * F * 2 * D + half * D, 2 * D, w.e.data() + (bi * 2 * F + F) * D, D, F, D,
                    false);
    } else {
      be.copy(w.hx.data(), w.x_out.data(), N * D);
      for (int64_t half = 0; half < 2; ++half)
        be.copy2d(w.head_mod.data() + half * D, 2 * D, w.e.data(), D, Sh, D, false);
    }
    be.add_bias(w.head_mod.data(), P("model.head.modulation"), Sh, 2 * D);
    be.layernorm_forward(w.hln.data(), w.hln_mean.data(), w.hln_rstd.data(), w.hx.data(), nullptr, nullptr, Nh, D, c.eps);
    be.modulate_forward(w.hm.data(), w.hln.data(), w.head_mod.data(), w.head_mod.data() + D, 2 * D, Sh, Lf, D);
    linear_forward(be, w.hout.data(), w.hm.data(), P("model.head.head.weight"), P("model.head.head.bias"), Nh, D, Pd);
    be.unpatchify(out, w.hout.data(), B, F, c.channels, c.height, c.width, c.patch_h, c.patch_w);
  });
  if (fill_cross) cache->cross_ready = true;
}

// ---- backward --------------------------------------------------------------------------------

template <class T>
void Model<T>::backward(const T* dout, T* dx_in) {
  CFP_CHECK(last_ != nullptr, "backward() called before any forward");
  Workspace& w = *last_;
  CFP_CHECK(!w.cross_from_cache, "backward() after a no-grad streaming forward; call forward_stream(..., grad=true)");
  const Plan& plan = w.plan;
  Backend<T>& be = backend_;
  const ModelConfig& c = config_;
  const int64_t D = c.dim, Lf = c.tokens_per_frame(), B = plan.B, F = plan.F, H = c.heads, hd = c.head_dim();
  const int64_t N = w.N, S = w.S, Tt = w.T_tok, Pd = c.patch_dim(), Nc = w.Nc, Sh = w.Sh, Nh = w.Nh, Ff = c.ffn_dim;
  const bool tf = plan.mode == Plan::Mode::teacher_forcing;
  const bool stream = plan.mode == Plan::Mode::stream;
  auto P = [&](const std::string& name) { return params_.data() + param(name).offset; };
  auto G = [&](const std::string& name) { return grads_.data() + param(name).offset; };
  const double scale = 1.0 / std::sqrt(double(hd));
  auto key = [&] { return recording_key("bwd", plan, w, w.cache, {dout, dx_in}, 0.0, int(w.cross_from_cache)); };
  be.run_recorded(this, key, [&] {
    // Head.
    be.fill(w.dhout.data(), T(0), Nh * Pd);
    be.unpatchify_backward(w.dhout.data(), dout, B, F, c.channels, c.height, c.width, c.patch_h, c.patch_w);
    linear_backward(be, w.dy.data(), false, G("model.head.head.weight"), G("model.head.head.bias"), w.dhout.data(),
                    w.hm.data(), P("model.head.head.weight"), Nh, D, Pd);
    be.fill(w.dz.data(), T(0), Nh * D);
    be.fill(w.dhead_mod.data(), T(0), Sh * 2 * D);
    be.modulate_backward(w.dz.data(), w.dhead_mod.data(), w.dhead_mod.data() + D, w.dy.data(), w.hln.data(),
                         w.head_mod.data() + D, 2 * D, Sh, Lf, D);
    be.bias_backward(G("model.head.modulation"), w.dhead_mod.data(), Sh, 2 * D);
    be.fill(w.de.data(), T(0), S * D);
    be.fill(w.dx.data(), T(0), N * D);
    if (tf) {
      const int64_t Lh = F * Lf;
      // dx of the noisy half from the head LN; head_mod rows feed de of the noisy slots.
      be.fill(w.dw.data(), T(0), Nh * D);
      be.layernorm_backward(w.dw.data(), nullptr, nullptr, w.dz.data(), w.hx.data(), nullptr, w.hln_mean.data(),
                            w.hln_rstd.data(), Nh, D);
      be.copy2d(w.dx.data() + Lh * D, 2 * Lh * D, w.dw.data(), Lh * D, B, Lh * D, false);
      for (int64_t bi = 0; bi < B; ++bi)
        for (int64_t half = 0; half < 2; ++half)
          be.copy2d(w.de.data() + (bi * 2 * F + F) * D, D, w.dhead_mod.data() + bi * F * 2 * D + half * D, 2 * D, F, D,
                    true);
    } else {
      be.layernorm_backward(w.dx.data(), nullptr, nullptr, w.dz.data(), w.hx.data(), nullptr, w.hln_mean.data(),
                            w.hln_rstd.data(), Nh, D);
      for (int64_t half = 0; half < 2; ++half) be.copy2d(w.de.data(), D, w.dhead_mod.data() + half * D, 2 * D, Sh, D, true);
    }
    be.fill(w.de0.data(), T(0), S * 6 * D);
    be.fill(w.dctx.data(), T(0), Nc * D);

    for (int64_t l = c.layers - 1; l >= 0; --l) {
      auto& L = w.layers[static_cast<size_t>(l)];
      const std::string b = "model.blocks." + std::to_string(l) + ".";
      const T* mod = L.mod.data();
      T* dmod = w.dmod.data();
      be.fill(dmod, T(0), S * 6 * D);

      // FFN: x_out = x2 + gate5 * ff(modulate(LN(x2))).
      be.fill(w.dy.data(), T(0), N * D);
      be.gate_residual_backward(w.dy.data(), dmod + 5 * D, w.dx.data(), L.ff.data(), mod + 5 * D, 6 * D, S, Lf, D);
      linear_backward(be, w.dh2.data(), false, G(b + "ffn.2.weight"), G(b + "ffn.2.bias"), w.dy.data(), L.h_act.data(),
                      P(b + "ffn.2.weight"), N, Ff, D);
      be.fill(w.dh.data(), T(0), N * Ff);
      be.gelu_tanh_backward(w.dh.data(), L.h.data(), w.dh2.data(), N * Ff);
      linear_backward(be, w.dz.data(), false, G(b + "ffn.0.weight"), G(b + "ffn.0.bias"), w.dh.data(), L.m2.data(),
                      P(b + "ffn.0.weight"), N, D, Ff);
      be.fill(w.dw.data(), T(0), N * D);
      be.modulate_backward(w.dw.data(), dmod + 3 * D, dmod + 4 * D, w.dz.data(), L.ln2.data(), mod + 4 * D, 6 * D, S, Lf,
                           D);
      be.layernorm_backward(w.dx.data(), nullptr, nullptr, w.dw.data(), L.x2.data(), nullptr, L.ln2_mean.data(),
                            L.ln2_rstd.data(), N, D);

      // Cross-attention: x2 = x1 + o(attn(rms(q(LN3(x1))), rms(k(ctx)), v(ctx))).
      linear_backward(be, w.dy.data(), false, G(b + "cross_attn.o.weight"), G(b + "cross_attn.o.bias"), w.dx.data(),
                      L.catt.data(), P(b + "cross_attn.o.weight"), N, D, D);
      be.fill(w.dq.data(), T(0), N * D);
      be.fill(w.dck.data(), T(0), Nc * D);
      be.fill(w.dcv.data(), T(0), Nc * D);
      AttnShape csh{B, Tt, c.text_len, H, hd, 0};
      be.attention_backward(w.dq.data(), w.dck.data(), w.dcv.data(), w.dy.data(), L.cq.data(), L.ck.data(), L.cv.data(),
                            L.catt.data(), L.catt_lse.data(), csh, AttnMask{}, scale);
      be.fill(w.dz.data(), T(0), N * D);
      be.rmsnorm_backward(w.dz.data(), G(b + "cross_attn.norm_q.weight"), w.dq.data(), L.cq_lin.data(),
                          P(b + "cross_attn.norm_q.weight"), L.cq_rstd.data(), N, D);
      linear_backward(be, w.dw.data(), false, G(b + "cross_attn.q.weight"), G(b + "cross_attn.q.bias"), w.dz.data(),
                      L.ln3.data(), P(b + "cross_attn.q.weight"), N, D, D);
      be.layernorm_backward(w.dx.data(), G(b + "norm3.weight"), G(b + "norm3.bias"), w.dw.data(), L.x1.data(),
                            P(b + "norm3.weight"), L.ln3_mean.data(), L.ln3_rstd.data(), N, D);
      be.fill(w.dctx2.data(), T(0), Nc * D);
      be.rmsnorm_backward(w.dctx2.data(), G(b + "cross_attn.norm_k.weight"), w.dck.data(), L.ck_lin.data(),
                          P(b + "cross_attn.norm_k.weight"), L.ck_rstd.data(), Nc, D);
      linear_backward(be, w.dctx.data(), true, G(b + "cross_attn.k.weight"), G(b + "cross_attn.k.bias"), w.dctx2.data(),
                      w.ctx.data(), P(b + "cross_attn.k.weight"), Nc, D, D);
      linear_backward(be, w.dctx.data(), true, G(b + "cross_attn.v.weight"), G(b + "cross_attn.v.bias"), w.dcv.data(),
                      w.ctx.data(), P(b + "cross_attn.v.weight"), Nc, D, D);

      // Self-attention: x1 = x_in + gate2 * o(attn(rope(rms(q)), rope(rms(k)), v)) on modulate(LN(x_in)).
      be.fill(w.dy.data(), T(0), N * D);
      be.gate_residual_backward(w.dy.data(), dmod + 2 * D, w.dx.data(), L.sa.data(), mod + 2 * D, 6 * D, S, Lf, D);
      linear_backward(be, w.dz.data(), false, G(b + "self_attn.o.weight"), G(b + "self_attn.o.bias"), w.dy.data(),
                      L.att.data(), P(b + "self_attn.o.weight"), N, D, D);
      be.fill(w.dq.data(), T(0), N * D);
      be.fill(w.dk.data(), T(0), N * D);
      be.fill(w.dv.data(), T(0), N * D);
      if (stream) {
        // Cached keys of earlier frames are constants; only this call's own slots carry gradient.
        const int64_t M = c.frames * Lf, start_tok = plan.start_frame * Lf;
        be.fill(w.dkc.data(), T(0), B * M * D);
        be.fill(w.dvc.data(), T(0), B * M * D);
        AttnShape sh{B, Tt, start_tok + Tt, H, hd, M};
        be.attention_backward(w.dq.data(), w.dkc.data(), w.dvc.data(), w.dz.data(), L.q.data(),
                              w.cache->k[static_cast<size_t>(l)].data(), w.cache->v[static_cast<size_t>(l)].data(),
                              L.att.data(), L.att_lse.data(), sh, AttnMask{}, scale);
        be.copy2d(w.dk.data(), Tt * D, w.dkc.data() + start_tok * D, M * D, B, Tt * D, true);
        be.copy2d(w.dv.data(), Tt * D, w.dvc.data() + start_tok * D, M * D, B, Tt * D, true);
      } else {
        AttnShape sh{B, Tt, Tt, H, hd, 0};
        AttnMask self_mask{plan.mask, c.frames_per_block * Lf, tf ? F * Lf : 0, 0};
        be.attention_backward(w.dq.data(), w.dk.data(), w.dv.data(), w.dz.data(), L.q.data(), L.k.data(), L.v.data(),
                              L.att.data(), L.att_lse.data(), sh, self_mask, scale);
      }
      // Undo RoPE (dq/dk -> dz/dw), then RMSNorm -> dq_lin (dy) / dk_lin (dq reused).
      be.fill(w.dz.data(), T(0), N * D);
      be.fill(w.dw.data(), T(0), N * D);
      for (int64_t bi = 0; bi < B; ++bi) {
        be.rope_backward(w.dz.data() + bi * Tt * D, w.dq.data() + bi * Tt * D, w.rope_cos.data(), w.rope_sin.data(), Tt,
                         H, hd);
        be.rope_backward(w.dw.data() + bi * Tt * D, w.dk.data() + bi * Tt * D, w.rope_cos.data(), w.rope_sin.data(), Tt,
                         H, hd);
      }
      be.fill(w.dy.data(), T(0), N * D);
      be.rmsnorm_backward(w.dy.data(), G(b + "self_attn.norm_q.weight"), w.dz.data(), L.q_lin.data(),
                          P(b + "self_attn.norm_q.weight"), L.q_rstd.data(), N, D);
      be.fill(w.dq.data(), T(0), N * D);
      be.rmsnorm_backward(w.dq.data(), G(b + "self_attn.norm_k.weight"), w.dw.data(), L.k_lin.data(),
                          P(b + "self_attn.norm_k.weight"), L.k_rstd.data(), N, D);
      // dm1 = dq_lin Wq + dk_lin Wk + dv Wv (into dz).
      linear_backward(be, w.dz.data(), false, G(b + "self_attn.q.weight"), G(b + "self_attn.q.bias"), w.dy.data(),
                      L.m1.data(), P(b + "self_attn.q.weight"), N, D, D);
      linear_backward(be, w.dz.data(), true, G(b + "self_attn.k.weight"), G(b + "self_attn.k.bias"), w.dq.data(),
                      L.m1.data(), P(b + "self_attn.k.weight"), N, D, D);
      linear_backward(be, w.dz.data(), true, G(b + "self_attn.v.weight"), G(b + "self_attn.v.bias"), w.dv.data(),
                      L.m1.data(), P(b + "self_attn.v.weight"), N, D, D);
      be.fill(w.dw.data(), T(0), N * D);
      be.modulate_backward(w.dw.data(), dmod + 0 * D, dmod + 1 * D, w.dz.data(), L.ln1.data(), mod + 1 * D, 6 * D, S, Lf,
                           D);
      be.layernorm_backward(w.dx.data(), nullptr, nullptr, w.dw.data(), L.x_in.data(), nullptr, L.ln1_mean.data(),
                            L.ln1_rstd.data(), N, D);

      // Modulation = e0 + table.
      be.bias_backward(G(b + "modulation"), dmod, S, 6 * D);
      be.axpy(w.de0.data(), T(1), dmod, S * 6 * D);
    }

    // Patch embedding (and, if asked, d loss / d x through patchify).
    const bool want_dx = dx_in != nullptr;
    linear_backward(be, want_dx ? w.dpatch.data() : nullptr, false, G("model.patch_embedding.weight"),
                    G("model.patch_embedding.bias"), w.dx.data(), w.patches.data(), P("model.patch_embedding.weight"), N,
                    Pd, D);
    if (want_dx) {
      if (tf) {
        const int64_t Lh = F * Lf;
        be.copy2d(w.dptmp.data(), Lh * Pd, w.dpatch.data() + Lh * Pd, 2 * Lh * Pd, B, Lh * Pd, false);
        be.patchify_backward(dx_in, w.dptmp.data(), B, F, c.channels, c.height, c.width, c.patch_h, c.patch_w);
      } else {
        be.patchify_backward(dx_in, w.dpatch.data(), B, F, c.channels, c.height, c.width, c.patch_h, c.patch_w);
      }
    }

    // Time path: e0 = Linear(SiLU(e)); e = Linear(SiLU(Linear(sinusoid))).
    linear_backward(be, w.de_act.data(), false, G("model.time_projection.1.weight"), G("model.time_projection.1.bias"),
                    w.de0.data(), w.e_act.data(), P("model.time_projection.1.weight"), S, D, 6 * D);
    be.silu_backward(w.de.data(), w.e.data(), w.de_act.data(), S * D);
    linear_backward(be, w.dte.data(), false, G("model.time_embedding.2.weight"), G("model.time_embedding.2.bias"),
                    w.de.data(), w.te_h_act.data(), P("model.time_embedding.2.weight"), S, D, D);
    be.fill(w.dte2.data(), T(0), S * D);
    be.silu_backward(w.dte2.data(), w.te_h.data(), w.dte.data(), S * D);
    linear_backward<T>(be, nullptr, false, G("model.time_embedding.0.weight"), G("model.time_embedding.0.bias"),
                       w.dte2.data(), w.tfreq.data(), P("model.time_embedding.0.weight"), S, c.freq_dim, D);

    // Text MLP: ctx = Linear(GELU(Linear(text))).
    linear_backward(be, w.dctx2.data(), false, G("model.text_embedding.2.weight"), G("model.text_embedding.2.bias"),
                    w.dctx.data(), w.ctx_act.data(), P("model.text_embedding.2.weight"), Nc, D, D);
    be.fill(w.dctx3.data(), T(0), Nc * D);
    be.gelu_tanh_backward(w.dctx3.data(), w.ctx_h.data(), w.dctx2.data(), Nc * D);
    linear_backward<T>(be, nullptr, false, G("model.text_embedding.0.weight"), G("model.text_embedding.0.bias"),
                       w.dctx3.data(), w.text_in.data(), P("model.text_embedding.0.weight"), Nc, c.text_dim, D);
  });
}

template class Model<float>;
template class Model<double>;

}  // namespace cfp
