// The training objectives (see objectives.h). Each is a short sequence of backend ops around
// model forwards; per-frame noise levels are applied with mul_rows over [B*F, C*H*W] rows.
#include "core/objectives.h"

#include <algorithm>
#include <cmath>

namespace cfp {

template <class T>
T* ObjectiveScratch<T>::get(const std::string& name, int64_t n) {
  auto it = buffers_.find(name);
  if (it == buffers_.end() || it->second.numel() < n) {
    Tensor<T> t = be_.zeros({std::max<int64_t>(n, 1)});
    buffers_[name] = t;
    return buffers_[name].data();
  }
  return it->second.data();
}

namespace {

template <class T>
T* upload_host(ObjectiveScratch<T>& s, const std::string& name, const std::vector<double>& host) {
  std::vector<T> h(host.begin(), host.end());
  T* d = s.get(name, static_cast<int64_t>(h.size()));
  s.backend().upload(d, h.data(), static_cast<int64_t>(h.size()));
  return d;
}

// n standard normals from the stream (drawn in float, as every backend draws them; a GPU backend
// draws them on the device, see Backend::philox_normal).
template <class T>
T* draw_noise(ObjectiveScratch<T>& s, const std::string& name, int64_t n, Philox& rng) {
  T* d = s.get(name, n);
  s.backend().draw_normal(d, n, rng);
  return d;
}

// out = (1 - sigma_r) x0 + sigma_r eps, per row r of `cols` values; sigma on the host.
template <class T>
void mix_noise(ObjectiveScratch<T>& s, T* out, const T* x0, const T* eps, const std::vector<double>& sigma,
               int64_t cols, const std::string& tag) {
  Backend<T>& be = s.backend();
  const int64_t rows = static_cast<int64_t>(sigma.size());
  std::vector<double> keep(sigma.size());
  for (size_t i = 0; i < sigma.size(); ++i) keep[i] = 1.0 - sigma[i];
  T* tmp = s.get(tag + ".mix", rows * cols);
  be.copy(out, x0, rows * cols);
  be.mul_rows(out, upload_host(s, tag + ".keep", keep), rows, cols);
  be.copy(tmp, eps, rows * cols);
  be.mul_rows(tmp, upload_host(s, tag + ".sigma", sigma), rows, cols);
  be.axpy(out, T(1), tmp, rows * cols);
}

// x0 = x - sigma_r v per row.
template <class T>
void flow_to_x0_rows(ObjectiveScratch<T>& s, T* x0, const T* x, const T* v, const std::vector<double>& sigma,
                     int64_t cols, const std::string& tag) {
  Backend<T>& be = s.backend();
  const int64_t rows = static_cast<int64_t>(sigma.size());
  std::vector<double> neg(sigma.size());
  for (size_t i = 0; i < sigma.size(); ++i) neg[i] = -sigma[i];
  be.copy(x0, v, rows * cols);
  be.mul_rows(x0, upload_host(s, tag + ".negsigma", neg), rows, cols);
  be.axpy(x0, T(1), x, rows * cols);
}

template <class T>
int64_t frame_numel(const Model<T>& m) {
  const ModelConfig& c = m.config();
  return c.channels * c.height * c.width;
}

// frames [f0, f0 + nf) of a [B, F, fr] clip <-> a [B, nf, fr] block.
template <class T>
void gather_frames(Backend<T>& be, T* dst, const T* src, int64_t B, int64_t F, int64_t fr, int64_t f0, int64_t nf) {
  be.copy2d(dst, nf * fr, src + f0 * fr, F * fr, B, nf * fr, false);
}
template <class T>
void scatter_frames(Backend<T>& be, T* dst, const T* src, int64_t B, int64_t F, int64_t fr, int64_t f0, int64_t nf) {
  be.copy2d(dst + f0 * fr, F * fr, src, nf * fr, B, nf * fr, false);
}

template <class T>
KVCache<T>& cache_for(ObjectiveScratch<T>& s, Model<T>& m, const std::string& role, int64_t B) {
  auto it = s.caches.find(role);
  if (it == s.caches.end() || it->second.batch != B) it = s.caches.insert_or_assign(role, m.make_cache(B)).first;
  return it->second;
}

}  // namespace

// ---- §3.5 teacher-forcing diffusion -----------------------------------------------------------

template <class T>
double teacher_forcing_diffusion_loss(Model<T>& model, ObjectiveScratch<T>& s, const FlowMatchScheduler& grid,
                                      const T* x0, const T* text, int64_t B, int64_t F, Philox& rng,
                                      bool bf16_timesteps) {
  CFP_CHECK(!grid.weights().empty(), "teacher-forcing diffusion needs a training grid with loss weights");
  Backend<T>& be = model.backend();
  const int64_t k = model.config().frames_per_block, fr = frame_numel(model), rows = B * F, n = rows * fr;
  std::vector<double> t(static_cast<size_t>(rows)), sigma(t.size()), w(t.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t f0 = 0; f0 < F; f0 += k) {
      const uint32_t i = rng.uniform_int(static_cast<uint32_t>(grid.size()));
      double ti = grid.timesteps()[i];
      if (bf16_timesteps) ti = round_to_bf16(static_cast<float>(ti));
      for (int64_t f = f0; f < std::min(F, f0 + k); ++f) t[static_cast<size_t>(b * F + f)] = ti;
    }
  for (size_t r = 0; r < t.size(); ++r) sigma[r] = grid.sigma_at(t[r]), w[r] = grid.weight_at(t[r]);
  T* eps = draw_noise(s, "tf.eps", n, rng);
  T* xt = s.get("tf.xt", n);
  mix_noise(s, xt, x0, eps, sigma, fr, "tf");
  T* v = s.get("tf.v", n);
  model.forward_teacher_forcing(v, xt, upload_host(s, "tf.t", t), x0, 0.0, text, B, F);
  // diff = v - (eps - x0); loss = sum_r w_r |diff_r|^2 / n; dv = 2 w_r diff_r / n.
  T* diff = s.get("tf.diff", n);
  be.axpby(diff, T(1), v, T(-1), eps, n);
  be.axpy(diff, T(1), x0, n);
  T* g = s.get("tf.g", n);
  be.copy(g, diff, n);
  be.mul_rows(g, upload_host(s, "tf.w", w), rows, fr);
  const double loss = be.dot(diff, g, n) / double(n);
  be.scale(g, static_cast<T>(2.0 / double(n)), n);
  model.backward(g);
  return loss;
}

// ---- §3.7 ODE regression ----------------------------------------------------------------------

template <class T>
double ode_regression_loss(Model<T>& model, ObjectiveScratch<T>& s, const FlowMatchScheduler& grid,
                           const std::vector<double>& steps, const T* traj, int64_t S, const T* text, int64_t B,
                           int64_t F, Philox& rng) {
  CFP_CHECK(S >= 3 && static_cast<int64_t>(steps.size()) == S - 2,
            "ODE trajectory has %lld slots but %zu steps (need slots = steps + 2)", static_cast<long long>(S),
            steps.size());
  Backend<T>& be = model.backend();
  const int64_t fr = frame_numel(model), clip = F * fr, n = B * clip;
  T* x = s.get("ode.x", n);
  T* gt = s.get("ode.gt", n);
  T* target = s.get("ode.target", n);
  std::vector<double> t(static_cast<size_t>(B * F)), sigma(t.size());
  for (int64_t b = 0; b < B; ++b) {
    const int64_t j = rng.uniform_int(static_cast<uint32_t>(S - 2));
    const T* row = traj + b * S * clip;
    be.copy(x + b * clip, row + j * clip, clip);
    be.copy(target + b * clip, row + (S - 2) * clip, clip);
    be.copy(gt + b * clip, row + (S - 1) * clip, clip);
    for (int64_t f = 0; f < F; ++f) t[static_cast<size_t>(b * F + f)] = steps[static_cast<size_t>(j)];
  }
  for (size_t r = 0; r < t.size(); ++r) sigma[r] = grid.sigma_at(t[r]);
  T* v = s.get("ode.v", n);
  model.forward_teacher_forcing(v, x, upload_host(s, "ode.t", t), gt, 0.0, text, B, F);
  T* diff = s.get("ode.diff", n);
  flow_to_x0_rows(s, diff, x, v, sigma, fr, "ode");
  be.axpy(diff, T(-1), target, n);
  const double loss = be.sum_squares(diff, n) / double(n);
  std::vector<double> dscale(sigma.size());
  for (size_t r = 0; r < sigma.size(); ++r) dscale[r] = -2.0 * sigma[r] / double(n);
  be.mul_rows(diff, upload_host(s, "ode.dscale", dscale), B * F, fr);
  model.backward(diff);
  return loss;
}

// ---- §3.8 causal consistency distillation ------------------------------------------------------

template <class T>
double consistency_distillation_loss(Model<T>& student, Model<T>& teacher, Model<T>& ema_target,
                                     ObjectiveScratch<T>& s, const FlowMatchScheduler& grid,
                                     const FlowMatchScheduler& cd_grid, const T* x0, const T* text,
                                     const T* text_uncond, int64_t B, int64_t F, double guidance, Philox& rng) {
  CFP_CHECK(cd_grid.size() >= 2, "consistency distillation needs a grid of at least 2 steps");
  Backend<T>& be = student.backend();
  const int64_t fr = frame_numel(student), rows = B * F, n = rows * fr;
  std::vector<double> t(static_cast<size_t>(rows)), tn(t.size()), sig(t.size()), sig_x0(t.size()),
      sig_x0n(t.size()), dt(t.size());
  for (int64_t b = 0; b < B; ++b) {
    const uint32_t i = rng.uniform_int(static_cast<uint32_t>(cd_grid.size() - 1));
    const double ta = round_to_bf16(static_cast<float>(cd_grid.timesteps()[i]));
    const double tb = round_to_bf16(static_cast<float>(cd_grid.timesteps()[i + 1]));
    for (int64_t f = 0; f < F; ++f) {
      const size_t r = static_cast<size_t>(b * F + f);
      t[r] = ta;
      tn[r] = tb;
      sig[r] = cd_grid.sigmas()[i];
      dt[r] = -(ta - tb) / 1000.0;
    }
  }
  for (size_t r = 0; r < t.size(); ++r) sig_x0[r] = grid.sigma_at(t[r]), sig_x0n[r] = grid.sigma_at(tn[r]);
  T* eps = draw_noise(s, "cd.eps", n, rng);
  T* xt = s.get("cd.xt", n);
  mix_noise(s, xt, x0, eps, sig, fr, "cd");
  T* t_dev = upload_host(s, "cd.t", t);
  // Teacher: one Euler step under standard CFG.
  T* vc = s.get("cd.vc", n);
  T* vu = s.get("cd.vu", n);
  teacher.forward_teacher_forcing(vc, xt, t_dev, x0, 0.0, text, B, F);
  teacher.forward_teacher_forcing(vu, xt, t_dev, x0, 0.0, text_uncond, B, F);
  T* vg = s.get("cd.vg", n);
  be.axpby(vg, static_cast<T>(guidance), vc, static_cast<T>(1.0 - guidance), vu, n);  // v_u + g (v_c - v_u)
  be.mul_rows(vg, upload_host(s, "cd.dt", dt), rows, fr);
  T* xtn = s.get("cd.xtn", n);
  be.add(xtn, xt, vg, n);
  // Target from the EMA model at (x_t', t').
  T* ve = s.get("cd.ve", n);
  ema_target.forward_teacher_forcing(ve, xtn, upload_host(s, "cd.tn", tn), x0, 0.0, text, B, F);
  T* tgt = s.get("cd.tgt", n);
  flow_to_x0_rows(s, tgt, xtn, ve, sig_x0n, fr, "cd.tgt");
  // Student at (x_t, t).
  T* vs = s.get("cd.vs", n);
  student.forward_teacher_forcing(vs, xt, t_dev, x0, 0.0, text, B, F);
  T* diff = s.get("cd.diff", n);
  flow_to_x0_rows(s, diff, xt, vs, sig_x0, fr, "cd.s");
  be.axpy(diff, T(-1), tgt, n);
  const double loss = be.sum_squares(diff, n) / double(n);
  std::vector<double> dscale(sig_x0.size());
  for (size_t r = 0; r < dscale.size(); ++r) dscale[r] = -2.0 * sig_x0[r] / double(n);
  be.mul_rows(diff, upload_host(s, "cd.dscale", dscale), rows, fr);
  student.backward(diff);
  return loss;
}

// ---- §3.9 DMD ---------------------------------------------------------------------------------

template <class T>
DmdRollout<T> dmd_rollout(Model<T>& gen, ObjectiveScratch<T>& s, const FlowMatchScheduler& grid,
                          const DmdConfig& cfg, const T* text, int64_t B, int64_t F, Philox& rng, T* x_gen) {
  CFP_CHECK(!cfg.steps.empty(), "DMD needs a non-empty denoising step list");
  Backend<T>& be = gen.backend();
  const int64_t k = gen.config().frames_per_block, fr = frame_numel(gen);
  DmdRollout<T> ro;
  ro.exit_index = rng.uniform_int(static_cast<uint32_t>(cfg.steps.size()));
  T* noise = draw_noise(s, "dmd.noise", B * F * fr, rng);
  KVCache<T>& cache = cache_for(s, gen, "generator", B);
  cache.reset_prompt();
  for (int64_t f0 = 0, blk = 0; f0 < F; f0 += k, ++blk) {
    const int64_t nf = std::min(k, F - f0), rows = B * nf, n = rows * fr;
    T* x = s.get("dmd.x", n);
    T* v = s.get("dmd.v", n);
    T* x0 = s.get("dmd.x0", n);
    gather_frames(be, x, noise, B, F, fr, f0, nf);
    for (int64_t j = 0; j <= ro.exit_index; ++j) {
      const double tj = cfg.steps[static_cast<size_t>(j)];
      const std::vector<double> t(static_cast<size_t>(rows), tj), sg(t.size(), grid.sigma_at(tj));
      if (j == ro.exit_index) be.copy(s.get("dmd.exit_x." + std::to_string(blk), n), x, n);  // for the backward
      gen.forward_stream(v, x, upload_host(s, "dmd.t", t), text, B, f0, nf, cache, false);
      flow_to_x0_rows(s, x0, x, v, sg, fr, "dmd.x0");
      if (j < ro.exit_index) {  // re-noise x0_hat to the next step with fresh noise
        const std::vector<double> sn(t.size(), grid.sigma_at(cfg.steps[static_cast<size_t>(j + 1)]));
        mix_noise(s, x, x0, draw_noise(s, "dmd.eps", n, rng), sn, fr, "dmd.renoise");
      }
    }
    ro.exit_t.push_back(static_cast<T>(cfg.steps[static_cast<size_t>(ro.exit_index)]));
    scatter_frames(be, x_gen, x0, B, F, fr, f0, nf);
    // Clean cache-write pass at the context timestep.
    const std::vector<double> tc(static_cast<size_t>(rows), cfg.context_noise);
    T* xc = s.get("dmd.xc", n);
    if (cfg.renoise_context) {
      const std::vector<double> sc(tc.size(), grid.sigma_at(cfg.context_noise));
      mix_noise(s, xc, x0, draw_noise(s, "dmd.eps", n, rng), sc, fr, "dmd.ctx");
    } else {
      be.copy(xc, x0, n);
    }
    gen.forward_stream(v, xc, upload_host(s, "dmd.tc", tc), text, B, f0, nf, cache, false);
  }
  return ro;
}

template <class T>
void dmd_rollout_backward(Model<T>& gen, ObjectiveScratch<T>& s, const FlowMatchScheduler& grid,
                          const DmdRollout<T>& ro, const T* text, int64_t B, int64_t F, const T* dx_gen) {
  Backend<T>& be = gen.backend();
  const int64_t k = gen.config().frames_per_block, fr = frame_numel(gen);
  KVCache<T>& cache = cache_for(s, gen, "generator", B);
  const int64_t blocks = (F + k - 1) / k;
  // Reverse block order: recomputing block b rewrites only slot b, which earlier blocks never see.
  for (int64_t blk = blocks - 1; blk >= 0; --blk) {
    const int64_t f0 = blk * k, nf = std::min(k, F - f0), rows = B * nf, n = rows * fr;
    const double te = static_cast<double>(ro.exit_t[static_cast<size_t>(blk)]);
    const std::vector<double> t(static_cast<size_t>(rows), te), neg(t.size(), -grid.sigma_at(te));
    T* v = s.get("dmd.v", n);
    gen.forward_stream(v, s.get("dmd.exit_x." + std::to_string(blk), n), upload_host(s, "dmd.t", t), text, B, f0, nf,
                       cache, true);
    T* dv = s.get("dmd.dv", n);
    gather_frames(be, dv, dx_gen, B, F, fr, f0, nf);
    be.mul_rows(dv, upload_host(s, "dmd.neg", neg), rows, fr);  // x0 = x - sigma v
    gen.backward(dv);
  }
}

namespace {
// One DMD/critic timestep per sample (spec §3.9), broadcast to its frames.
template <class T>
void draw_score_timesteps(const FlowMatchScheduler& grid, const DmdConfig& cfg, int64_t B, int64_t F, Philox& rng,
                          std::vector<double>& t, std::vector<double>& sigma) {
  t.assign(static_cast<size_t>(B * F), 0.0);
  sigma.assign(t.size(), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    const double tb = dmd_timestep(rng.uniform_int(1000), cfg.shift, cfg.t_min, cfg.t_max);
    for (int64_t f = 0; f < F; ++f) {
      t[static_cast<size_t>(b * F + f)] = tb;
      sigma[static_cast<size_t>(b * F + f)] = grid.sigma_at(tb);
    }
  }
}
}  // namespace

template <class T>
double dmd_generator_loss(Model<T>& gen, Model<T>& real_score, Model<T>& fake_score, ObjectiveScratch<T>& s,
                          const FlowMatchScheduler& grid, const FlowMatchScheduler& score_grid, const DmdConfig& cfg,
                          const T* text, const T* text_uncond, int64_t B, int64_t F, Philox& rng) {
  Backend<T>& be = gen.backend();
  const int64_t fr = frame_numel(gen), rows = B * F, n = rows * fr, clip = F * fr;
  T* x_gen = s.get("dmdg.xgen", n);
  const DmdRollout<T> ro = dmd_rollout(gen, s, grid, cfg, text, B, F, rng, x_gen);
  std::vector<double> t, sigma, sigma_s(static_cast<size_t>(rows));
  draw_score_timesteps<T>(grid, cfg, B, F, rng, t, sigma);
  for (size_t r = 0; r < sigma_s.size(); ++r) sigma_s[r] = score_grid.sigma_at(t[r]);
  T* eps = draw_noise(s, "dmdg.eps", n, rng);
  T* xt = s.get("dmdg.xt", n);
  mix_noise(s, xt, x_gen, eps, sigma, fr, "dmdg");
  T* t_dev = upload_host(s, "dmdg.t", t);
  T* v = s.get("dmdg.v", n);
  T* fake = s.get("dmdg.fake", n);
  fake_score.forward(v, xt, t_dev, text, B, F, MaskKind::full);
  flow_to_x0_rows(s, fake, xt, v, sigma_s, fr, "dmdg.f");
  T* rc = s.get("dmdg.rc", n);
  T* ru = s.get("dmdg.ru", n);
  real_score.forward(v, xt, t_dev, text, B, F, MaskKind::full);
  flow_to_x0_rows(s, rc, xt, v, sigma_s, fr, "dmdg.rc");
  real_score.forward(v, xt, t_dev, text_uncond, B, F, MaskKind::full);
  flow_to_x0_rows(s, ru, xt, v, sigma_s, fr, "dmdg.ru");
  T* real = s.get("dmdg.real", n);
  be.axpby(real, static_cast<T>(1.0 + cfg.real_guidance), rc, static_cast<T>(-cfg.real_guidance), ru, n);
  // grad = (fake - real) / mean |x_gen - real| per sample (0 where the normaliser is 0 or not finite).
  T* grad = s.get("dmdg.grad", n);
  be.axpby(grad, T(1), fake, T(-1), real, n);
  std::vector<double> inv(static_cast<size_t>(rows));
  for (int64_t b = 0; b < B; ++b) {
    const double norm = be.sum_abs_diff(x_gen + b * clip, real + b * clip, clip) / double(clip);
    const double iv = (norm > 0 && std::isfinite(norm)) ? 1.0 / norm : 0.0;
    for (int64_t f = 0; f < F; ++f) inv[static_cast<size_t>(b * F + f)] = iv;
  }
  be.mul_rows(grad, upload_host(s, "dmdg.inv", inv), rows, fr);
  const double loss = 0.5 * be.sum_squares(grad, n) / double(n);
  be.scale(grad, static_cast<T>(1.0 / double(n)), n);
  dmd_rollout_backward(gen, s, grid, ro, text, B, F, grad);
  return loss;
}

template <class T>
double dmd_critic_loss(Model<T>& gen, Model<T>& fake_score, ObjectiveScratch<T>& s, const FlowMatchScheduler& grid,
                       const FlowMatchScheduler& score_grid, const DmdConfig& cfg, const T* text, int64_t B, int64_t F,
                       Philox& rng) {
  Backend<T>& be = gen.backend();
  const int64_t fr = frame_numel(gen), rows = B * F, n = rows * fr;
  T* x_gen = s.get("dmdc.xgen", n);
  dmd_rollout(gen, s, grid, cfg, text, B, F, rng, x_gen);
  std::vector<double> t, sigma, ratio(static_cast<size_t>(rows));
  draw_score_timesteps<T>(grid, cfg, B, F, rng, t, sigma);
  for (size_t r = 0; r < ratio.size(); ++r) ratio[r] = score_grid.sigma_at(t[r]) / sigma[r];
  T* eps = draw_noise(s, "dmdc.eps", n, rng);
  T* xt = s.get("dmdc.xt", n);
  mix_noise(s, xt, x_gen, eps, sigma, fr, "dmdc");
  T* v = s.get("dmdc.v", n);
  fake_score.forward(v, xt, upload_host(s, "dmdc.t", t), text, B, F, MaskKind::full);
  // v_phi = (x_t - x0_phi) / sigma = (sigma_score / sigma) v; diff = v_phi - (eps - x_gen).
  T* diff = s.get("dmdc.diff", n);
  be.copy(diff, v, n);
  T* ratio_dev = upload_host(s, "dmdc.ratio", ratio);
  be.mul_rows(diff, ratio_dev, rows, fr);
  be.axpy(diff, T(-1), eps, n);
  be.axpy(diff, T(1), x_gen, n);
  const double loss = be.sum_squares(diff, n) / double(n);
  be.mul_rows(diff, ratio_dev, rows, fr);
  be.scale(diff, static_cast<T>(2.0 / double(n)), n);
  fake_score.backward(diff);
  return loss;
}

#define CFP_INSTANTIATE_OBJECTIVES(T)                                                                                \
  template class ObjectiveScratch<T>;                                                                                \
  template double teacher_forcing_diffusion_loss<T>(Model<T>&, ObjectiveScratch<T>&, const FlowMatchScheduler&,      \
                                                    const T*, const T*, int64_t, int64_t, Philox&, bool);            \
  template double ode_regression_loss<T>(Model<T>&, ObjectiveScratch<T>&, const FlowMatchScheduler&,                 \
                                         const std::vector<double>&, const T*, int64_t, const T*, int64_t, int64_t,  \
                                         Philox&);                                                                   \
  template double consistency_distillation_loss<T>(Model<T>&, Model<T>&, Model<T>&, ObjectiveScratch<T>&,            \
                                                   const FlowMatchScheduler&, const FlowMatchScheduler&, const T*,   \
                                                   const T*, const T*, int64_t, int64_t, double, Philox&);           \
  template DmdRollout<T> dmd_rollout<T>(Model<T>&, ObjectiveScratch<T>&, const FlowMatchScheduler&,                  \
                                        const DmdConfig&, const T*, int64_t, int64_t, Philox&, T*);                  \
  template void dmd_rollout_backward<T>(Model<T>&, ObjectiveScratch<T>&, const FlowMatchScheduler&,                  \
                                        const DmdRollout<T>&, const T*, int64_t, int64_t, const T*);                 \
  template double dmd_generator_loss<T>(Model<T>&, Model<T>&, Model<T>&, ObjectiveScratch<T>&,                       \
                                        const FlowMatchScheduler&, const FlowMatchScheduler&, const DmdConfig&,      \
                                        const T*, const T*, int64_t, int64_t, Philox&);                              \
  template double dmd_critic_loss<T>(Model<T>&, Model<T>&, ObjectiveScratch<T>&, const FlowMatchScheduler&,          \
                                     const FlowMatchScheduler&, const DmdConfig&, const T*, int64_t, int64_t,        \
                                     Philox&);

CFP_INSTANTIATE_OBJECTIVES(float)
CFP_INSTANTIATE_OBJECTIVES(double)

}  // namespace cfp
