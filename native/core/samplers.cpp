#include "core/samplers.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/error.h"

namespace cfp {

namespace {

// Scratch buffers, block copies and noise of one sampling call.
struct Frames {
  Backend<float>& be;
  int64_t B, F, N;  // batch, frames of the clip, elements per frame

  Tensor<float> alloc(int64_t frames) { return be.empty({B * frames * N}); }
  Tensor<float> alloc_t(int64_t frames) { return be.empty({B * frames}); }
  // dst [B, n, N] <- frames [start, start + n) of src [B, src_frames, N]
  void gather(float* dst, const float* src, int64_t src_frames, int64_t start, int64_t n) {
    be.copy2d(dst, n * N, src + start * N, src_frames * N, B, n * N, false);
  }
  // frames [start, start + n) of dst [B, dst_frames, N] <- src [B, n, N]; dst rows are
  // dst_stride elements apart (dst_frames * N for a clip, more inside a trajectory).
  void scatter(float* dst, int64_t dst_stride, const float* src, int64_t start, int64_t n) {
    be.copy2d(dst + start * N, dst_stride, src, n * N, B, n * N, false);
  }
  // A [B, n] timestep buffer filled with t.
  void set_t(Tensor<float>& buf, double t) {
    std::vector<float> host(static_cast<size_t>(buf.numel()), static_cast<float>(t));
    be.upload(buf.data(), host.data(), buf.numel());
  }
  // Fresh N(0, 1) noise for `frames` frames from rng.
  void noise(float* dst, int64_t frames, Philox& rng) {
    be.draw_normal(dst, B * frames * N, rng);
  }
};

Frames frames_of(FlowNet& net) {
  CFP_CHECK(net.batch() > 0 && net.frames() > 0 && net.frame_numel() > 0, "network reports an empty clip shape");
  return Frames{net.backend(), net.batch(), net.frames(), net.frame_numel()};
}

void check_block_size(int64_t frames, int64_t k) {
  CFP_CHECK(k > 0 && frames % k == 0, "%lld frames do not split into blocks of %lld", static_cast<long long>(frames),
            static_cast<long long>(k));
}

// Runs the network under classifier-free guidance in the standard form (spec §3.11):
// flow = f_u + g (f_c - f_u), computed as g f_c + (1 - g) f_u. With g = 1 only f_c is evaluated.
// `call(context, out)` evaluates one branch.
void guided_flow(Backend<float>& be, double guidance, float* flow, float* scratch, int64_t n,
                 const std::function<void(int, float*)>& call, SamplerStats& stats) {
  call(kCond, flow);
  ++stats.denoise_calls;
  if (guidance == 1.0) return;
  call(kUncond, scratch);
  ++stats.denoise_calls;
  be.axpby(flow, static_cast<float>(guidance), flow, static_cast<float>(1.0 - guidance), scratch, n);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Few-step causal generation (spec §1.11, §3.10)

SamplerStats sample_few_step(FlowNet& net, const FewStepConfig& config, const FlowMatchScheduler& grid, Philox& rng,
                             float* out, const float* initial, int64_t initial_frames) {
  Frames fr = frames_of(net);
  Backend<float>& be = fr.be;
  const int64_t k = config.frames_per_block;
  check_block_size(fr.F, k);
  CFP_CHECK(!config.steps.empty(), "few-step sampling needs a non-empty step list");
  CFP_CHECK(initial_frames >= 0 && initial_frames % k == 0 && initial_frames < fr.F,
            "initial frames (%lld) must be a multiple of the block size below the clip length",
            static_cast<long long>(initial_frames));
  CFP_CHECK(initial_frames == 0 || initial, "initial frames given without data");
  SamplerStats stats;
  const int64_t n = fr.B * k * fr.N;
  Tensor<float> x = fr.alloc(k), x0 = fr.alloc(k), flow = fr.alloc(k), eps = fr.alloc(k), t = fr.alloc_t(k);

  // The first frames are given (I2V): copy them and write them into the cache at t = 0.
  for (int64_t s = 0; s < initial_frames; s += k) {
    fr.gather(x.data(), initial, initial_frames, s, k);
    fr.scatter(out, fr.F * fr.N, x.data(), s, k);
    fr.set_t(t, 0.0);
    net.stream(kCond, flow.data(), x.data(), t.data(), s, k);
    ++stats.cache_calls;
  }

  const int64_t gen_frames = fr.F - initial_frames;
  Tensor<float> noise = fr.alloc(gen_frames);
  fr.noise(noise.data(), gen_frames, rng);

  for (int64_t s = initial_frames; s < fr.F; s += k) {
    const bool first = s == initial_frames;
    const std::vector<double>& steps =
        first && !config.first_block_steps.empty() ? config.first_block_steps : config.steps;
    fr.gather(x.data(), noise.data(), gen_frames, s - initial_frames, k);
    for (size_t j = 0; j < steps.size(); ++j) {
      fr.set_t(t, steps[j]);
      net.stream(kCond, flow.data(), x.data(), t.data(), s, k);
      ++stats.denoise_calls;
      // x0 = x - sigma(t_j) flow, sigma by the nearest-grid lookup.
      const double sigma = grid.sigma_at(steps[j]);
      be.axpby(x0.data(), 1.0f, x.data(), static_cast<float>(-sigma), flow.data(), n);
      if (j + 1 < steps.size()) {
        // Fresh noise to the next step (not an ODE step): x = (1 - s') x0 + s' eps.
        const double next = grid.sigma_at(steps[j + 1]);
        fr.noise(eps.data(), k, rng);
        be.axpby(x.data(), static_cast<float>(1.0 - next), x0.data(), static_cast<float>(next), eps.data(), n);
      }
    }
    fr.scatter(out, fr.F * fr.N, x0.data(), s, k);
    // The clean pass that writes the block's keys/values into the cache.
    const float* context = x0.data();
    if (config.renoise_context) {
      const double sc = grid.sigma_at(config.context_noise);
      fr.noise(eps.data(), k, rng);
      be.axpby(x.data(), static_cast<float>(1.0 - sc), x0.data(), static_cast<float>(sc), eps.data(), n);
      context = x.data();
    }
    fr.set_t(t, config.context_noise);
    net.stream(kCond, flow.data(), context, t.data(), s, k);
    ++stats.cache_calls;
  }
  return stats;
}

// ---------------------------------------------------------------------------------------------
// UniPC (FlowUniPCMultistepScheduler with solver_order 2, bh2, predict_x0, lower_order_final,
// final sigma 0). Flow model: alpha = 1 - sigma, x0 = x - sigma v, lambda = log(alpha / sigma).
// All coefficients are computed in double; the latent arithmetic is float on the backend.

UniPCSolver::UniPCSolver(Backend<float>& backend, int64_t n, int num_steps, double shift, int order)
    : be_(backend), n_(n), grid_(unipc_grid(num_steps, shift)), solver_order_(order) {
  CFP_CHECK(order == 1 || order == 2, "UniPC supports order 1 or 2, got %d", order);
  CFP_CHECK(n > 0, "UniPC needs a non-empty sample");
  m_prev_ = be_.empty({n});
  m_last_ = be_.empty({n});
  last_sample_ = be_.empty({n});
  x0_ = be_.empty({n});
}

double UniPCSolver::lambda(size_t i) const {
  const double sigma = grid_.sigmas[i];
  return std::log(1.0 - sigma) - std::log(sigma);  // +inf at sigma = 0
}

void UniPCSolver::step(int index, const float* flow, float* x) {
  CFP_CHECK(index == step_index_ && index < num_steps(), "UniPC steps must run in order: expected %d, got %d",
            step_index_, index);
  const size_t i = static_cast<size_t>(index);
  // Model output in x0 form.
  be_.axpby(x0_.data(), 1.0f, x, static_cast<float>(-grid_.sigmas[i]), flow, n_);
  if (step_index_ > 0 && have_last_) corrector(x, x0_.data(), this_order_);
  // model_outputs shift: [-2] <- [-1], [-1] <- this x0.
  std::swap(m_prev_, m_last_);
  be_.copy(m_last_.data(), x0_.data(), n_);
  int order = std::min(solver_order_, num_steps() - index);  // lower_order_final
  order = std::min(order, lower_order_nums_ + 1);            // warm-up
  this_order_ = order;
  be_.copy(last_sample_.data(), x, n_);
  have_last_ = true;
  predictor(x, order);
  lower_order_nums_ = std::min(lower_order_nums_ + 1, solver_order_);
  ++step_index_;
}

// UniP: from x at sigma_i to sigma_{i+1}.
//   x_t = (sigma_t / sigma_s0) x - alpha_t h_phi_1 m0 - alpha_t B_h rho (m1 - m0) / r1
// with h = lambda_t - lambda_s0, h_phi_1 = B_h = expm1(-h), rho = 0.5 (order 2 only),
// r1 = (lambda_{i-1} - lambda_s0) / h.
void UniPCSolver::predictor(float* x, int order) {
  const size_t i = static_cast<size_t>(step_index_);
  const double sigma_t = grid_.sigmas[i + 1], sigma_s0 = grid_.sigmas[i];
  const double alpha_t = 1.0 - sigma_t;
  const double h = lambda(i + 1) - lambda(i);
  const double h_phi_1 = std::expm1(-h);
  const double b_h = h_phi_1;  // bh2
  double c_x = sigma_t / sigma_s0, c_last = -alpha_t * h_phi_1, c_prev = 0.0;
  if (order == 2) {
    const double rk = (lambda(i - 1) - lambda(i)) / h;
    c_prev = -alpha_t * b_h * 0.5 / rk;
    c_last += alpha_t * b_h * 0.5 / rk;
  }
  be_.axpby(x, static_cast<float>(c_x), x, static_cast<float>(c_last), m_last_.data(), n_);
  if (order == 2) be_.axpy(x, static_cast<float>(c_prev), m_prev_.data(), n_);
}

// UniC: corrects the sample at sigma_i (x, just predicted from last_sample at sigma_{i-1}) with
// the new model output m_t:
//   x = (sigma_t / sigma_s0) x_last - alpha_t h_phi_1 m0 - alpha_t B_h (rho_0 D1 + rho_1 (m_t - m0))
// where m0 = x0 at i-1, D1 = (x0 at i-2 - m0) / r1 (order 2), and rho solves
// [[1, 1], [r1, 1]] rho = b (order 2) or rho_1 = 0.5 (order 1).
void UniPCSolver::corrector(float* x, const float* x0_this, int order) {
  const size_t i = static_cast<size_t>(step_index_);
  const double sigma_t = grid_.sigmas[i], sigma_s0 = grid_.sigmas[i - 1];
  const double alpha_t = 1.0 - sigma_t;
  const double h = lambda(i) - lambda(i - 1);
  const double hh = -h;
  const double h_phi_1 = std::expm1(hh);
  const double b_h = h_phi_1;  // bh2
  double rho0 = 0.0, rho1 = 0.5, rk = 1.0;
  if (order == 2) {
    rk = (lambda(i - 2) - lambda(i - 1)) / h;
    const double phi_k1 = h_phi_1 / hh - 1.0;          // h_phi_k for i = 1
    const double phi_k2 = phi_k1 / hh - 0.5;           // h_phi_k for i = 2
    const double b0 = phi_k1 * 1.0 / b_h, b1 = phi_k2 * 2.0 / b_h;
    rho0 = (b0 - b1) / (1.0 - rk);
    rho1 = b0 - rho0;
  }
  const double c_last_sample = sigma_t / sigma_s0;
  double c_m0 = -alpha_t * h_phi_1 + alpha_t * b_h * rho1;
  const double c_mt = -alpha_t * b_h * rho1;
  double c_prev = 0.0;
  if (order == 2) {
    c_prev = -alpha_t * b_h * rho0 / rk;
    c_m0 += alpha_t * b_h * rho0 / rk;
  }
  be_.axpby(x, static_cast<float>(c_last_sample), last_sample_.data(), static_cast<float>(c_m0), m_last_.data(), n_);
  be_.axpy(x, static_cast<float>(c_mt), x0_this, n_);
  if (order == 2) be_.axpy(x, static_cast<float>(c_prev), m_prev_.data(), n_);
}

// ---------------------------------------------------------------------------------------------
// Many-step CFG sampling (spec §1.11 CausalDiffusionInferencePipeline)

SamplerStats sample_many_step(FlowNet& net, const ManyStepConfig& config, Philox& rng, float* out) {
  Frames fr = frames_of(net);
  Backend<float>& be = fr.be;
  const int64_t k = config.frames_per_block;
  check_block_size(fr.F, k);
  CFP_CHECK(config.num_steps > 0, "many-step sampling needs a positive step count");
  SamplerStats stats;
  const int64_t n = fr.B * k * fr.N;
  Tensor<float> noise = fr.alloc(fr.F);
  fr.noise(noise.data(), fr.F, rng);
  Tensor<float> x = fr.alloc(k), flow = fr.alloc(k), scratch = fr.alloc(k), t = fr.alloc_t(k);

  FlowMatchScheduler euler_grid(FlowMatchConfig{1000, config.shift, 1.0, 0.0, true});
  if (config.solver == ManyStepSolver::euler) euler_grid.set_timesteps(config.num_steps);

  for (int64_t s = 0; s < fr.F; s += k) {
    fr.gather(x.data(), noise.data(), fr.F, s, k);
    auto branch = [&](int context, float* dst) { net.stream(context, dst, x.data(), t.data(), s, k); };
    if (config.solver == ManyStepSolver::unipc) {
      UniPCSolver solver(be, n, config.num_steps, config.shift);  // fresh per block
      for (int i = 0; i < solver.num_steps(); ++i) {
        fr.set_t(t, static_cast<double>(solver.timestep(i)));  // integer timesteps, as upstream
        guided_flow(be, config.guidance, flow.data(), scratch.data(), n, branch, stats);
        solver.step(i, flow.data(), x.data());
      }
    } else {
      const std::vector<double>& sig = euler_grid.sigmas();
      for (size_t i = 0; i < sig.size(); ++i) {
        fr.set_t(t, euler_grid.timesteps()[i]);
        guided_flow(be, config.guidance, flow.data(), scratch.data(), n, branch, stats);
        const double next = i + 1 < sig.size() ? sig[i + 1] : 0.0;
        be.axpy(x.data(), static_cast<float>(next - sig[i]), flow.data(), n);
      }
    }
    fr.scatter(out, fr.F * fr.N, x.data(), s, k);
    // Refresh both caches with the clean block.
    fr.set_t(t, config.context_noise);
    net.stream(kCond, flow.data(), x.data(), t.data(), s, k);
    ++stats.cache_calls;
    if (config.guidance != 1.0) {
      net.stream(kUncond, flow.data(), x.data(), t.data(), s, k);
      ++stats.cache_calls;
    }
  }
  return stats;
}

// ---------------------------------------------------------------------------------------------
// Causal ODE trajectories (spec §1.6)

SamplerStats generate_ode_trajectory(FlowNet& net, const OdeConfig& config, OdeMode mode, const float* clean,
                                     Philox& rng, float* trajectory) {
  Frames fr = frames_of(net);
  Backend<float>& be = fr.be;
  CFP_CHECK(config.num_steps > 0, "ODE generation needs a positive step count");
  for (size_t j = 0; j < config.snapshots.size(); ++j) {
    CFP_CHECK(config.snapshots[j] >= 0 && config.snapshots[j] < config.num_steps,
              "ODE snapshot step %d is outside [0, %d)", config.snapshots[j], config.num_steps);
  }
  const FlowMatchScheduler grid = ode_grid(config.num_steps, config.shift);
  const std::vector<double>& sig = grid.sigmas();
  const int64_t slots = ode_slots(config);
  const int64_t row = slots * fr.F * fr.N;  // one sample of the trajectory
  // Writes frames [start, start + n) of slot `slot` from src [B, n, N].
  auto put = [&](int64_t slot, const float* src, int64_t start, int64_t n) {
    fr.scatter(trajectory + slot * fr.F * fr.N, row, src, start, n);
  };
  SamplerStats stats;
  Tensor<float> z = fr.alloc(fr.F);
  fr.noise(z.data(), fr.F, rng);

  // Runs the Euler ODE on the frames [start, start + n) of the clip, starting from x.
  auto integrate = [&](float* x, float* flow, float* scratch, Tensor<float>& t, int64_t start, int64_t n,
                       const std::function<void(int, float*)>& branch) {
    const int64_t count = fr.B * n * fr.N;
    for (int kstep = 0; kstep < config.num_steps; ++kstep) {
      for (size_t j = 0; j < config.snapshots.size(); ++j)
        if (config.snapshots[j] == kstep) put(static_cast<int64_t>(j), x, start, n);
      fr.set_t(t, grid.timesteps()[static_cast<size_t>(kstep)]);
      guided_flow(be, config.guidance, flow, scratch, count, branch, stats);
      const size_t i = static_cast<size_t>(kstep);
      const double next = i + 1 < sig.size() ? sig[i + 1] : 0.0;
      be.axpy(x, static_cast<float>(next - sig[i]), flow, count);
    }
    put(slots - 2, x, start, n);
  };

  if (mode == OdeMode::teacher_forcing) {
    Tensor<float> x = fr.alloc(fr.F), flow = fr.alloc(fr.F), scratch = fr.alloc(fr.F), t = fr.alloc_t(fr.F);
    be.copy(x.data(), z.data(), x.numel());
    integrate(x.data(), flow.data(), scratch.data(), t, 0, fr.F, [&](int context, float* dst) {
      net.teacher_forcing(context, dst, x.data(), t.data(), clean);
    });
  } else {
    const int64_t k = config.frames_per_block;
    check_block_size(fr.F, k);
    Tensor<float> x = fr.alloc(k), flow = fr.alloc(k), scratch = fr.alloc(k), t = fr.alloc_t(k);
    for (int64_t s = 0; s < fr.F; s += k) {
      fr.gather(x.data(), z.data(), fr.F, s, k);
      integrate(x.data(), flow.data(), scratch.data(), t, s, k,
                [&](int context, float* dst) { net.stream(context, dst, x.data(), t.data(), s, k); });
      // Append the block's clean GT to both caches at t = 0.
      fr.gather(x.data(), clean, fr.F, s, k);
      fr.set_t(t, 0.0);
      net.stream(kCond, flow.data(), x.data(), t.data(), s, k);
      ++stats.cache_calls;
      if (config.guidance != 1.0) {
        net.stream(kUncond, flow.data(), x.data(), t.data(), s, k);
        ++stats.cache_calls;
      }
    }
  }
  put(slots - 1, clean, 0, fr.F);
  return stats;
}

}  // namespace cfp
