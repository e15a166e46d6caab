// The training driver; see trainer.h.
#include "core/trainer.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/objectives.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/schedule.h"
#include "cpu/cpu_backend.h"

namespace cfp {

const char* trainer_name(Trainer t) {
  switch (t) {
    case Trainer::diffusion: return "diffusion";
    case Trainer::ode: return "ode";
    case Trainer::consistency_distillation: return "consistency_distillation";
    case Trainer::score_distillation: return "score_distillation";
  }
  return "unknown";
}

bool parse_trainer(const std::string& name, Trainer* out) {
  for (Trainer t : {Trainer::diffusion, Trainer::ode, Trainer::consistency_distillation, Trainer::score_distillation}) {
    if (name == trainer_name(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

std::vector<float> load_model_weights(const WeightsSource& source, const ModelConfig& config, std::string* used_prefix) {
  CFP_CHECK(!source.path.empty(), "no weights file given");
  const SafetensorsFile file = SafetensorsFile::read(source.path);
  const std::vector<ParamEntry> table = model_param_table(config);
  std::vector<std::string> candidates;
  if (!source.prefix.empty()) candidates = {source.prefix};
  else candidates = {kGeneratorPrefix, kGeneratorEmaPrefix, ""};
  const std::string* prefix = nullptr;
  for (const std::string& c : candidates) {
    if (file.find(c + table.front().name)) {
      prefix = &c;
      break;
    }
  }
  if (!prefix) {
    std::string tried;
    for (const std::string& c : candidates) tried += (tried.empty() ? "\"" : ", \"") + c + table.front().name + "\"";
    CFP_THROW("%s holds no weights of this model: looked for %s", source.path.c_str(), tried.c_str());
  }
  std::vector<float> flat(static_cast<size_t>(model_param_count(config)));
  for (const ParamEntry& e : table) {
    const std::string name = *prefix + e.name;
    CFP_CHECK(file.find(name), "%s has no tensor %s (the model config and the checkpoint disagree)", source.path.c_str(),
              name.c_str());
    file.read_f32(name, e.shape, flat.data() + e.offset);
  }
  for (size_t i = 0; i < flat.size(); ++i)
    CFP_CHECK(std::isfinite(flat[i]), "%s: weight %zu (prefix \"%s\") is not finite", source.path.c_str(), i, prefix->c_str());
  if (used_prefix) *used_prefix = *prefix;
  return flat;
}

namespace {

constexpr uint64_t kTrainStream = 1;
constexpr uint64_t kDataStreamBase = 1000;

// The row order: epoch e visits every row once in a permutation drawn from Philox(seed, 1000 + e).
class DataOrder {
 public:
  DataOrder(int64_t count, uint64_t seed) : count_(count), seed_(seed) {}
  int64_t position = 0;  // rows consumed so far
  std::vector<int64_t> next_batch(int64_t batch) {
    std::vector<int64_t> rows(static_cast<size_t>(batch));
    for (int64_t& r : rows) {
      const int64_t epoch = position / count_;
      if (epoch != epoch_) shuffle(epoch);
      r = perm_[static_cast<size_t>(position % count_)];
      ++position;
    }
    return rows;
  }

 private:
  void shuffle(int64_t epoch) {
    perm_.resize(static_cast<size_t>(count_));
    for (int64_t i = 0; i < count_; ++i) perm_[static_cast<size_t>(i)] = i;
    Philox rng(seed_, kDataStreamBase + static_cast<uint64_t>(epoch), 0);
    for (int64_t i = count_ - 1; i > 0; --i) {
      const int64_t j = rng.uniform_int(static_cast<uint32_t>(i + 1));
      std::swap(perm_[static_cast<size_t>(i)], perm_[static_cast<size_t>(j)]);
    }
    epoch_ = epoch;
  }
  int64_t count_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;
};

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

int64_t frame_numel(const ModelConfig& c) { return c.channels * c.height * c.width; }

void check_finite(const std::vector<float>& v, const char* what) {
  for (size_t i = 0; i < v.size(); ++i)
    CFP_CHECK(std::isfinite(v[i]), "train: %s[%zu] is %s; inputs must be finite", what, i, std::isnan(v[i]) ? "NaN" : "infinite");
}

void validate(const TrainOptions& o, const TrainData& d) {
  o.model.validate();
  const ModelConfig& m = o.model;
  const auto ll = [](int64_t v) { return static_cast<long long>(v); };
  CFP_CHECK(m.frames % m.frames_per_block == 0, "train: %lld frames do not split into blocks of num_frame_per_block = %lld",
            ll(m.frames), ll(m.frames_per_block));
  CFP_CHECK(o.steps >= 0, "train: steps must be >= 0, got %lld", ll(o.steps));
  CFP_CHECK(o.batch >= 1 && o.batch <= 4096, "train: batch_size must be in [1, 4096], got %lld", ll(o.batch));
  CFP_CHECK(o.checkpoint_every >= 0 && o.keep_checkpoints >= 0 && o.progress_every >= 1,
            "train: checkpointEvery/keepCheckpoints must be >= 0 and progressEvery >= 1");
  CFP_CHECK(!o.resume || !o.work_dir.empty(), "train: resume needs a workDir");
  CFP_CHECK(o.checkpoint_every == 0 || !o.work_dir.empty(), "train: checkpointEvery needs a workDir");
  for (const auto* a : {&o.optim, &o.critic_optim}) {
    CFP_CHECK(std::isfinite(a->lr) && a->lr > 0, "train: the learning rate must be a finite number > 0, got %g", a->lr);
    CFP_CHECK(a->beta1 >= 0 && a->beta1 < 1 && a->beta2 >= 0 && a->beta2 < 1, "train: AdamW betas must lie in [0, 1), got (%g, %g)",
              a->beta1, a->beta2);
    CFP_CHECK(a->weight_decay >= 0 && std::isfinite(a->weight_decay), "train: weight_decay must be >= 0, got %g", a->weight_decay);
  }
  CFP_CHECK(o.max_grad_norm > 0 && o.max_grad_norm_critic > 0, "train: max grad norms must be > 0");
  CFP_CHECK(o.ema_weight >= 0 && o.ema_weight <= 1, "train: ema_weight must lie in [0, 1], got %g", o.ema_weight);
  CFP_CHECK(o.dfake_gen_update_ratio >= 1, "train: dfake_gen_update_ratio must be >= 1, got %lld", ll(o.dfake_gen_update_ratio));
  CFP_CHECK(o.timestep_shift > 0 && o.score_timestep_shift > 0 && o.dmd_timestep_shift > 0, "train: timestep shifts must be > 0");
  for (double t : o.denoising_steps) CFP_CHECK(t > 0 && t <= 1000, "train: denoising step %g is outside (0, 1000]", t);

  const int64_t L = m.text_len * m.text_dim, fr = frame_numel(m), clip = m.frames * fr;
  CFP_CHECK(d.count >= 1, "train: the dataset is empty");
  CFP_CHECK(static_cast<int64_t>(d.text.size()) == d.count * L,
            "train: text has %zu values, expected rows x textLen x textDim = %lld x %lld x %lld", d.text.size(), ll(d.count),
            ll(m.text_len), ll(m.text_dim));
  const bool cfg = o.trainer == Trainer::consistency_distillation || o.trainer == Trainer::score_distillation;
  if (cfg)
    CFP_CHECK(static_cast<int64_t>(d.text_uncond.size()) == L,
              "train: %s needs the negative prompt's embedding textUncond [textLen, textDim] = %lld values, got %zu",
              trainer_name(o.trainer), ll(L), d.text_uncond.size());
  switch (o.trainer) {
    case Trainer::diffusion:
    case Trainer::consistency_distillation:
      CFP_CHECK(d.slots == 1 && static_cast<int64_t>(d.samples.size()) == d.count * clip,
                "train: latents have %zu values, expected [N, F, C, H, W] = [%lld, %lld, %lld, %lld, %lld]", d.samples.size(),
                ll(d.count), ll(m.frames), ll(m.channels), ll(m.height), ll(m.width));
      break;
    case Trainer::ode:
      CFP_CHECK(d.slots >= 3, "train: ODE trajectories need at least 3 slots, got %lld", ll(d.slots));
      CFP_CHECK(static_cast<int64_t>(o.denoising_steps.size()) == d.slots - 2,
                "train: trajectories have %lld slots but denoising_step_list has %zu steps (slots = steps + 2)", ll(d.slots),
                o.denoising_steps.size());
      CFP_CHECK(static_cast<int64_t>(d.samples.size()) == d.count * d.slots * clip,
                "train: trajectories have %zu values, expected [N, S, F, C, H, W] = [%lld, %lld, %lld, %lld, %lld, %lld]",
                d.samples.size(), ll(d.count), ll(d.slots), ll(m.frames), ll(m.channels), ll(m.height), ll(m.width));
      CFP_CHECK(!o.init.empty(), "train: the ode trainer needs init weights (upstream generator_ckpt)");
      break;
    case Trainer::score_distillation:
      CFP_CHECK(!o.denoising_steps.empty(), "train: score_distillation needs a denoising_step_list");
      CFP_CHECK(!o.real_score.empty(), "train: score_distillation needs a real score");
      CFP_CHECK(!o.init.empty(), "train: score_distillation needs init weights for the generator");
      break;
  }
  if (o.trainer == Trainer::consistency_distillation)
    CFP_CHECK(o.cd_steps >= 2, "train: consistency_distillation needs discrete_cd_N >= 2, got %d", o.cd_steps);
  check_finite(d.samples, "data");
  check_finite(d.text, "text");
  check_finite(d.text_uncond, "textUncond");
}

// What a checkpoint must match to be resumed: everything that changes the trajectory except the
// step count, plus digests of the data and the initial weights.
std::string problem_key(const TrainOptions& o, const TrainData& d, uint64_t weights_digest) {
  std::ostringstream s;
  const ModelConfig& m = o.model;
  s << "trainer=" << trainer_name(o.trainer) << " tf=" << o.teacher_forcing << " causal=" << o.causal << " model=" << m.channels << ","
    << m.dim << "," << m.ffn_dim << "," << m.heads << "," << m.layers << "," << m.freq_dim << "," << m.text_dim << "," << m.text_len
    << "," << m.frames << "," << m.height << "," << m.width << "," << m.frames_per_block << "," << m.patch_h << "," << m.patch_w
    << " batch=" << o.batch << " seed=" << o.seed << " lr=" << num(o.optim.lr) << "," << num(o.optim.beta1) << ","
    << num(o.optim.beta2) << "," << num(o.optim.weight_decay) << " critic=" << num(o.critic_optim.lr) << ","
    << num(o.critic_optim.beta1) << "," << num(o.critic_optim.beta2) << " clip=" << num(o.max_grad_norm) << ","
    << num(o.max_grad_norm_critic) << " ema=" << num(o.ema_weight) << "@" << o.ema_start_step
    << " ratio=" << o.dfake_gen_update_ratio << " shift=" << num(o.timestep_shift) << "," << num(o.score_timestep_shift) << ","
    << num(o.dmd_timestep_shift) << " g=" << num(o.guidance_scale) << " cdN=" << o.cd_steps << " ctx=" << num(o.context_noise)
    << " bf16=" << o.bf16_timesteps << " steps=[";
  for (double t : o.denoising_steps) s << num(t) << ";";
  uint64_t h = xxhash64(d.samples.data(), d.samples.size() * sizeof(float));
  h = xxhash64(d.text.data(), d.text.size() * sizeof(float), h);
  h = xxhash64(d.text_uncond.data(), d.text_uncond.size() * sizeof(float), h);
  char buf[64];
  std::snprintf(buf, sizeof buf, "] data=%016" PRIx64 " weights=%016" PRIx64, h, weights_digest);
  s << buf;
  return s.str();
}

// Flow matching without teacher forcing: one timestep per block of k frames (k = F: one per
// sample), drawn per sample and block in order, then eps for the whole batch; forward under
// `mask`; loss = mean_{b,f} [ w(t) mean_{c,h,w} (v - (eps - x0))^2 ], the Stage 1 weighting.
double plain_diffusion_loss(Model<float>& model, ObjectiveScratch<float>& s, const FlowMatchScheduler& grid, const float* x0,
                            const float* text, int64_t B, int64_t F, MaskKind mask, bool bf16, Philox& rng) {
  Backend<float>& be = model.backend();
  const int64_t k = model.config().frames_per_block, fr = frame_numel(model.config()), rows = B * F, n = rows * fr;
  std::vector<float> t(static_cast<size_t>(rows)), keep(t.size()), sigma(t.size()), w(t.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t f0 = 0; f0 < F; f0 += k) {
      double ti = grid.timesteps()[rng.uniform_int(static_cast<uint32_t>(grid.size()))];
      if (bf16) ti = round_to_bf16(static_cast<float>(ti));
      for (int64_t f = f0; f < std::min(F, f0 + k); ++f) t[static_cast<size_t>(b * F + f)] = static_cast<float>(ti);
    }
  for (size_t r = 0; r < t.size(); ++r) {
    const double sg = grid.sigma_at(t[r]);
    sigma[r] = static_cast<float>(sg);
    keep[r] = static_cast<float>(1.0 - sg);
    w[r] = static_cast<float>(grid.weight_at(t[r]));
  }
  auto dev = [&](const char* name, const std::vector<float>& h) {
    float* p = s.get(name, static_cast<int64_t>(h.size()));
    be.upload(p, h.data(), static_cast<int64_t>(h.size()));
    return p;
  };
  float* eps = s.get("pd.eps", n);
  be.draw_normal(eps, n, rng);
  float* xt = s.get("pd.xt", n);
  float* tmp = s.get("pd.tmp", n);
  be.copy(xt, x0, n);
  be.mul_rows(xt, dev("pd.keep", keep), rows, fr);
  be.copy(tmp, eps, n);
  be.mul_rows(tmp, dev("pd.sigma", sigma), rows, fr);
  be.axpy(xt, 1.0f, tmp, n);
  float* v = s.get("pd.v", n);
  model.forward(v, xt, dev("pd.t", t), text, B, F, mask);
  float* diff = s.get("pd.diff", n);
  be.axpby(diff, 1.0f, v, -1.0f, eps, n);
  be.axpy(diff, 1.0f, x0, n);
  float* g = s.get("pd.g", n);
  be.copy(g, diff, n);
  be.mul_rows(g, dev("pd.w", w), rows, fr);
  const double loss = be.dot(diff, g, n) / double(n);
  be.scale(g, static_cast<float>(2.0 / double(n)), n);
  model.backward(g);
  return loss;
}

// The networks of one job and their training state, all in the device's memory.
struct Nets {
  ComputeDevice device;
  std::unique_ptr<Model<float>> gen, teacher, ema_target, real, fake;
  std::unique_ptr<DeviceAdamW> opt, critic_opt;
  std::unique_ptr<DeviceEma> ema;
};

void set_params(Model<float>& m, const std::vector<float>& host) {
  CFP_CHECK(static_cast<int64_t>(host.size()) == m.num_params(), "internal: %zu weights for a model of %lld", host.size(),
            static_cast<long long>(m.num_params()));
  m.backend().upload(m.params().data(), host.data(), m.num_params());
}

// A model's parameters copied to the host (checkpoints, outputs, digests).
std::vector<float> host_params(Model<float>& m) {
  std::vector<float> host(static_cast<size_t>(m.num_params()));
  m.backend().download(host.data(), m.params().data(), m.num_params());
  return host;
}

std::vector<TensorRef> weight_refs(const std::vector<ParamEntry>& table, const float* flat, const std::string& prefix) {
  std::vector<TensorRef> out;
  out.reserve(table.size());
  for (const ParamEntry& e : table) out.push_back({prefix + e.name, DType::F32, e.shape, flat + e.offset});
  return out;
}

// The batch's rows gathered into host staging and uploaded.
void gather_rows(Backend<float>& be, float* dst, const std::vector<float>& src, int64_t row_numel, const std::vector<int64_t>& rows,
                 std::vector<float>& staging) {
  staging.resize(rows.size() * static_cast<size_t>(row_numel));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(staging.data() + i * static_cast<size_t>(row_numel), src.data() + rows[i] * row_numel,
                static_cast<size_t>(row_numel) * sizeof(float));
  be.upload(dst, staging.data(), static_cast<int64_t>(staging.size()));
}

}  // namespace

TrainResult train(const TrainOptions& o, const TrainData& d, JobContext& context) {
  validate(o, d);
  const ModelConfig& mc = o.model;
  const int64_t B = o.batch, F = mc.frames, fr = frame_numel(mc), clip = F * fr, L = mc.text_len * mc.text_dim;
  const Trainer kind = o.trainer;

  Nets nets;
  nets.device = o.device ? o.device() : make_cpu_device(o.threads);
  CFP_CHECK(nets.device.backend && nets.device.optim, "train: the device factory returned no backend");
  Backend<float>& be = *nets.device.backend;
  nets.gen = std::make_unique<Model<float>>(be, mc);
  Model<float>& gen = *nets.gen;
  const int64_t P = gen.num_params();
  const std::vector<ParamEntry>& table = gen.param_table();

  // Initial weights, and a digest of every weight the run starts from (part of the problem key).
  uint64_t wdigest = 0;
  auto digest = [&](const std::vector<float>& w) { wdigest = xxhash64(w.data(), w.size() * sizeof(float), wdigest); };
  std::vector<float> init_weights;
  if (!o.init.empty()) {
    init_weights = load_model_weights(o.init, mc);
    set_params(gen, init_weights);
  } else {
    gen.init(o.seed);
    init_weights = host_params(gen);
  }
  digest(init_weights);
  // The bidirectional scores take one timestep per sample under a full mask: one block spans the clip.
  ModelConfig score_cfg = mc;
  score_cfg.frames_per_block = mc.frames;
  if (kind == Trainer::consistency_distillation) {
    nets.teacher = std::make_unique<Model<float>>(be, mc);
    const std::vector<float> tw = o.teacher.empty() ? init_weights : load_model_weights(o.teacher, mc);
    set_params(*nets.teacher, tw);
    digest(tw);
    nets.ema_target = std::make_unique<Model<float>>(be, mc);
  }
  if (kind == Trainer::score_distillation) {
    nets.real = std::make_unique<Model<float>>(be, score_cfg);
    nets.fake = std::make_unique<Model<float>>(be, score_cfg);
    const std::vector<float> rw = load_model_weights(o.real_score, score_cfg);
    const std::vector<float> fw = o.fake_score.empty() ? rw : load_model_weights(o.fake_score, score_cfg);
    set_params(*nets.real, rw);
    set_params(*nets.fake, fw);
    digest(rw);
    digest(fw);
    nets.critic_opt = std::make_unique<DeviceAdamW>(nets.device, o.critic_optim, nets.fake->num_params());
  }
  nets.opt = std::make_unique<DeviceAdamW>(nets.device, o.optim, P);
  // CD's EMA target follows the student from step 0; the others start at ema_start_step.
  nets.ema = std::make_unique<DeviceEma>(nets.device, o.ema_weight, kind == Trainer::consistency_distillation ? 0 : o.ema_start_step, P);

  const std::string key = problem_key(o, d, wdigest);
  Philox rng(o.seed, kTrainStream, 0);
  DataOrder order(d.count, o.seed);
  int64_t step = 0;
  TrainResult result;
  result.params = P;

  if (!o.work_dir.empty()) {
    if (o.resume) {
      auto c = latest_checkpoint_of_run(o.work_dir, "train.problem", key, "train");
      if (c) {
        const std::string& label = c->paths.state;
        std::vector<float> host(static_cast<size_t>(P));
        for (const ParamEntry& e : table) c->weights.read_f32(kGeneratorPrefix + e.name, e.shape, host.data() + e.offset);
        set_params(gen, host);
        std::vector<float> m1(static_cast<size_t>(P)), m2(static_cast<size_t>(P));
        c->state.read_f32("optim.generator.exp_avg", {P}, m1.data());
        c->state.read_f32("optim.generator.exp_avg_sq", {P}, m2.data());
        nets.opt->restore(m1.data(), m2.data(), meta_int(c->meta, "optim.generator.steps", label));
        if (meta_int(c->meta, "ema.active", label) != 0) {
          std::vector<float> shadow(static_cast<size_t>(P));
          for (const ParamEntry& e : table) c->weights.read_f32(kGeneratorEmaPrefix + e.name, e.shape, shadow.data() + e.offset);
          nets.ema->restore(shadow.data());
        }
        if (nets.fake) {
          Model<float>& fake = *nets.fake;
          const int64_t Pc = fake.num_params();
          std::vector<float> fw(static_cast<size_t>(Pc));
          for (const ParamEntry& e : fake.param_table()) c->weights.read_f32(kCriticPrefix + e.name, e.shape, fw.data() + e.offset);
          set_params(fake, fw);
          std::vector<float> c1(static_cast<size_t>(Pc)), c2(static_cast<size_t>(Pc));
          c->state.read_f32("optim.critic.exp_avg", {Pc}, c1.data());
          c->state.read_f32("optim.critic.exp_avg_sq", {Pc}, c2.data());
          nets.critic_opt->restore(c1.data(), c2.data(), meta_int(c->meta, "optim.critic.steps", label));
        }
        rng.set_state({o.seed, kTrainStream, meta_uint(c->meta, "rng.counter", label)});
        order.position = meta_int(c->meta, "data.position", label);
        step = c->step;
        result.resumed_from = step;
        result.checkpoint = c->paths.state;
      }
    } else {
      const std::vector<int64_t> existing = list_checkpoint_steps(o.work_dir);
      CFP_CHECK(existing.empty(), "train: %s already holds checkpoints (newest step %lld); pass resume: true or use an empty workDir",
                o.work_dir.c_str(), static_cast<long long>(existing.back()));
    }
  }

  // Host staging of everything a checkpoint holds (downloaded at each save only).
  std::vector<float> h_gen, h_ema, h_m, h_v, h_fake, h_cm, h_cv;
  auto save = [&](int64_t at) {
    CheckpointData cd;
    cd.step = at;
    h_gen = host_params(gen);
    cd.weights = weight_refs(table, h_gen.data(), kGeneratorPrefix);
    if (nets.ema->active()) {
      nets.ema->download(h_ema);
      auto ema_refs = weight_refs(table, h_ema.data(), kGeneratorEmaPrefix);
      cd.weights.insert(cd.weights.end(), ema_refs.begin(), ema_refs.end());
    }
    nets.opt->download(h_m, h_v);
    cd.state = {{"optim.generator.exp_avg", DType::F32, {P}, h_m.data()},
                {"optim.generator.exp_avg_sq", DType::F32, {P}, h_v.data()}};
    cd.meta = {{"train.problem", key},
               {"trainer", trainer_name(kind)},
               {"rng.counter", std::to_string(rng.counter())},
               {"data.position", std::to_string(order.position)},
               {"optim.generator.steps", std::to_string(nets.opt->steps())},
               {"ema.active", nets.ema->active() ? "1" : "0"}};
    if (nets.fake) {
      Model<float>& fake = *nets.fake;
      h_fake = host_params(fake);
      auto refs = weight_refs(fake.param_table(), h_fake.data(), kCriticPrefix);
      cd.weights.insert(cd.weights.end(), refs.begin(), refs.end());
      nets.critic_opt->download(h_cm, h_cv);
      cd.state.push_back({"optim.critic.exp_avg", DType::F32, {fake.num_params()}, h_cm.data()});
      cd.state.push_back({"optim.critic.exp_avg_sq", DType::F32, {fake.num_params()}, h_cv.data()});
      cd.meta["optim.critic.steps"] = std::to_string(nets.critic_opt->steps());
    }
    const CheckpointPaths p = save_checkpoint(o.work_dir, cd);
    if (o.keep_checkpoints > 0) prune_checkpoints(o.work_dir, static_cast<size_t>(o.keep_checkpoints));
    result.checkpoint = p.state;
    return p.state;
  };

  // Device buffers of one batch.
  ObjectiveScratch<float> scratch(be);
  const int64_t row_numel = d.slots * clip;
  Tensor<float> x_batch = be.empty({std::max<int64_t>(1, B * row_numel)});
  Tensor<float> text_batch = be.empty({B * L});
  Tensor<float> uncond_batch = be.empty({B * L});
  if (!d.text_uncond.empty()) {
    std::vector<float> rep(static_cast<size_t>(B * L));
    for (int64_t b = 0; b < B; ++b) std::memcpy(rep.data() + b * L, d.text_uncond.data(), static_cast<size_t>(L) * sizeof(float));
    be.upload(uncond_batch.data(), rep.data(), B * L);
  }
  std::vector<float> staging;
  auto next_batch = [&](bool with_samples) {
    const std::vector<int64_t> rows = order.next_batch(B);
    if (with_samples) gather_rows(be, x_batch.data(), d.samples, row_numel, rows, staging);
    gather_rows(be, text_batch.data(), d.text, L, rows, staging);
  };

  const FlowMatchScheduler grid = generator_training_grid(o.timestep_shift);
  const FlowMatchScheduler score_grid = generator_training_grid(o.score_timestep_shift);
  const FlowMatchScheduler cd_grid = ode_grid(o.cd_steps, o.timestep_shift);
  DmdConfig dmd;
  dmd.steps = o.denoising_steps;
  dmd.real_guidance = o.guidance_scale;
  dmd.shift = o.dmd_timestep_shift;
  dmd.context_noise = o.context_noise;
  dmd.renoise_context = true;

  // Clip + AdamW + (EMA) on one network; returns the pre-clip gradient norm.
  auto update = [&](Model<float>& m, DeviceAdamW& opt, double max_norm, const char* what) {
    const double norm = nets.device.ops().clip_grad_norm(m.grads().data(), m.num_params(), max_norm);
    CFP_CHECK(std::isfinite(norm), "train: the %s gradient norm became %s at step %lld; lower the learning rate", what,
              std::isnan(norm) ? "NaN" : "infinite", static_cast<long long>(step + 1));
    opt.step(m.params().data(), m.grads().data());
    return norm;
  };
  auto check_loss = [&](double loss, const char* what) {
    CFP_CHECK(std::isfinite(loss), "train: the %s loss became %s at step %lld; lower the learning rate", what,
              std::isnan(loss) ? "NaN" : "infinite", static_cast<long long>(step + 1));
  };

  const auto started = std::chrono::steady_clock::now();
  const int64_t first_step = step;
  int64_t last_saved = result.resumed_from;
  double gen_loss = 0.0, gen_norm = 0.0;
  while (step < o.steps) {
    if (context.cancelled()) {
      result.cancelled = true;
      break;
    }
    double loss = 0.0, norm = 0.0;
    switch (kind) {
      case Trainer::diffusion: {
        next_batch(true);
        gen.zero_grad();
        if (o.teacher_forcing)
          loss = teacher_forcing_diffusion_loss(gen, scratch, grid, x_batch.data(), text_batch.data(), B, F, rng, o.bf16_timesteps);
        else
          loss = plain_diffusion_loss(gen, scratch, grid, x_batch.data(), text_batch.data(), B, F,
                                      o.causal ? MaskKind::block_causal : MaskKind::full, o.bf16_timesteps, rng);
        check_loss(loss, "diffusion");
        nets.ema->maybe_start(step, gen.params().data());
        norm = update(gen, *nets.opt, o.max_grad_norm, "generator");
        nets.ema->update(gen.params().data());
        break;
      }
      case Trainer::ode: {
        next_batch(true);
        gen.zero_grad();
        loss = ode_regression_loss(gen, scratch, grid, o.denoising_steps, x_batch.data(), d.slots, text_batch.data(), B, F, rng);
        check_loss(loss, "ODE regression");
        nets.ema->maybe_start(step, gen.params().data());
        norm = update(gen, *nets.opt, o.max_grad_norm, "generator");
        nets.ema->update(gen.params().data());
        break;
      }
      case Trainer::consistency_distillation: {
        next_batch(true);
        nets.ema->maybe_start(step, gen.params().data());
        be.copy(nets.ema_target->params().data(), nets.ema->shadow(), P);
        gen.zero_grad();
        loss = consistency_distillation_loss(gen, *nets.teacher, *nets.ema_target, scratch, grid, cd_grid, x_batch.data(),
                                             text_batch.data(), uncond_batch.data(), B, F, o.guidance_scale, rng);
        check_loss(loss, "consistency distillation");
        norm = update(gen, *nets.opt, o.max_grad_norm, "student");
        nets.ema->update(gen.params().data());
        break;
      }
      case Trainer::score_distillation: {
        Model<float>& fake = *nets.fake;
        if (step % o.dfake_gen_update_ratio == 0) {
          next_batch(false);
          gen.zero_grad();
          gen_loss = dmd_generator_loss(gen, *nets.real, fake, scratch, grid, score_grid, dmd, text_batch.data(), uncond_batch.data(),
                                        B, F, rng);
          check_loss(gen_loss, "DMD generator");
          nets.ema->maybe_start(step, gen.params().data());
          gen_norm = update(gen, *nets.opt, o.max_grad_norm, "generator");
          nets.ema->update(gen.params().data());
        }
        next_batch(false);
        fake.zero_grad();
        loss = dmd_critic_loss(gen, fake, scratch, grid, score_grid, dmd, text_batch.data(), B, F, rng);
        check_loss(loss, "DMD critic");
        norm = update(fake, *nets.critic_opt, o.max_grad_norm_critic, "critic");
        break;
      }
    }
    ++step;
    result.loss = loss;

    JobProgress p;
    const bool checkpoint_now = o.checkpoint_every > 0 && step % o.checkpoint_every == 0;
    if (checkpoint_now) {
      p.checkpoint = save(step);
      last_saved = step;
    }
    if (checkpoint_now || step % o.progress_every == 0 || step == o.steps) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      p.step = step;
      p.total = o.steps;
      p.metrics = {{"loss", loss}, {"grad_norm", norm}, {"steps_per_s", secs > 0 ? double(step - first_step) / secs : 0.0}};
      if (kind == Trainer::score_distillation) {
        p.metrics.push_back({"generator_loss", gen_loss});
        p.metrics.push_back({"generator_grad_norm", gen_norm});
      }
      context.report(p);
    }
  }
  if (!o.work_dir.empty() && last_saved != step) save(step);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.step = step;
  result.generator_loss = gen_loss;
  result.ema_active = nets.ema->active();
  result.backend = be.name();

  if (!o.output_path.empty() && !result.cancelled) {
    h_gen = host_params(gen);
    std::vector<TensorRef> tensors = weight_refs(table, h_gen.data(), kGeneratorPrefix);
    if (nets.ema->active()) {
      nets.ema->download(h_ema);
      auto refs = weight_refs(table, h_ema.data(), kGeneratorEmaPrefix);
      tensors.insert(tensors.end(), refs.begin(), refs.end());
    }
    Metadata meta;
    for (const auto& [k, v] : o.output_metadata) meta[k] = v;
    meta["trainer"] = trainer_name(kind);
    meta["step"] = std::to_string(step);
    meta["ema"] = nets.ema->active() ? "generator_ema" : "none";
    meta["num_frame_per_block"] = std::to_string(mc.frames_per_block);
    write_checked_safetensors(o.output_path, tensors, meta, "weights", step);
    result.output_path = o.output_path;
  }
  return result;
}

}  // namespace cfp
