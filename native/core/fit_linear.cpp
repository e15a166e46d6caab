// fitLinear: see fit_linear.h.
#include "core/fit_linear.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"

namespace cfp {

namespace {

void validate(const FitLinearOptions& o) {
  CFP_CHECK(o.features >= 1 && o.features <= (1 << 20), "fitLinear: features must be an integer in [1, 1048576], got %" PRId64, o.features);
  CFP_CHECK(o.samples >= 1 && o.samples <= (1 << 24), "fitLinear: samples must be an integer in [1, 16777216], got %" PRId64, o.samples);
  CFP_CHECK(o.samples * o.features <= (int64_t{1} << 28), "fitLinear: samples x features = %" PRId64 " exceeds 2^28 values",
            o.samples * o.features);
  CFP_CHECK(o.batch >= 1 && o.batch <= o.samples, "fitLinear: batch must be in [1, samples = %" PRId64 "], got %" PRId64, o.samples, o.batch);
  CFP_CHECK(o.steps >= 0, "fitLinear: steps must be >= 0, got %" PRId64, o.steps);
  CFP_CHECK(std::isfinite(o.lr) && o.lr > 0, "fitLinear: lr must be a finite number > 0, got %g", o.lr);
  CFP_CHECK(std::isfinite(o.momentum) && o.momentum >= 0 && o.momentum < 1, "fitLinear: momentum must be in [0, 1), got %g", o.momentum);
  CFP_CHECK(o.checkpoint_every >= 0, "fitLinear: checkpointEvery must be >= 0, got %" PRId64, o.checkpoint_every);
  CFP_CHECK(o.keep_checkpoints >= 0, "fitLinear: keepCheckpoints must be >= 0, got %" PRId64, o.keep_checkpoints);
  CFP_CHECK(o.progress_every >= 1, "fitLinear: progressEvery must be >= 1, got %" PRId64, o.progress_every);
  CFP_CHECK(!o.resume || !o.work_dir.empty(), "fitLinear: resume needs a workDir");
  CFP_CHECK(o.checkpoint_every == 0 || !o.work_dir.empty(), "fitLinear: checkpointEvery needs a workDir");
  CFP_CHECK(o.x.empty() == o.y.empty(), "fitLinear: give both x and y, or neither");
  if (!o.x.empty()) {
    CFP_CHECK(static_cast<int64_t>(o.x.size()) == o.samples * o.features,
              "fitLinear: x has %zu values, expected samples x features = %" PRId64 " x %" PRId64 " = %" PRId64, o.x.size(), o.samples, o.features,
              o.samples * o.features);
    CFP_CHECK(static_cast<int64_t>(o.y.size()) == o.samples, "fitLinear: y has %zu values, expected samples = %" PRId64, o.y.size(), o.samples);
    for (size_t i = 0; i < o.x.size(); ++i)
      CFP_CHECK(std::isfinite(o.x[i]), "fitLinear: x[%zu] is %s; inputs must be finite", i, std::isnan(o.x[i]) ? "NaN" : "infinite");
    for (size_t i = 0; i < o.y.size(); ++i)
      CFP_CHECK(std::isfinite(o.y[i]), "fitLinear: y[%zu] is %s; inputs must be finite", i, std::isnan(o.y[i]) ? "NaN" : "infinite");
  }
}

// The synthetic regression problem of a seed: uniform inputs, a random true line, small noise.
void make_data(const FitLinearOptions& o, std::vector<float>& x, std::vector<float>& y) {
  const auto n = static_cast<size_t>(o.samples), d = static_cast<size_t>(o.features);
  x.resize(n * d);
  y.resize(n);
  std::vector<float> w_true(d + 1), noise(n);
  philox_fill_uniform({o.seed, 2, 0}, x.data(), x.size());
  philox_fill_normal({o.seed, 3, 0}, w_true.data(), w_true.size());
  philox_fill_normal({o.seed, 4, 0}, noise.data(), n, 0.0f, 0.01f);
  for (float& v : x) v = 2.0f * v - 1.0f;
  for (size_t i = 0; i < n; ++i) {
    double s = w_true[d];
    for (size_t j = 0; j < d; ++j) s += static_cast<double>(x[i * d + j]) * w_true[j];
    y[i] = static_cast<float>(s) + noise[i];
  }
}

// Identifies the problem a checkpoint belongs to; a resume with anything else is refused.
std::string problem_key(const FitLinearOptions& o, const std::vector<float>& x, const std::vector<float>& y) {
  char buf[256];
  const uint64_t hx = xxhash64(x.data(), x.size() * sizeof(float));
  const uint64_t hy = xxhash64(y.data(), y.size() * sizeof(float), hx);
  std::snprintf(buf, sizeof buf, "features=%" PRId64 " samples=%" PRId64 " batch=%" PRId64 " lr=%.17g momentum=%.17g seed=%" PRIu64 " data=%016" PRIx64,
                o.features, o.samples, o.batch, o.lr, o.momentum, o.seed, hy);
  return buf;
}

double full_loss(const std::vector<float>& x, const std::vector<float>& y, const std::vector<float>& w, float b) {
  const size_t d = w.size(), n = y.size();
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    double s = b;
    for (size_t j = 0; j < d; ++j) s += static_cast<double>(x[i * d + j]) * w[j];
    const double e = s - y[i];
    total += e * e;
  }
  return total / static_cast<double>(n);
}

}  // namespace

FitLinearResult fit_linear(const FitLinearOptions& o, JobContext& context) {
  validate(o);
  std::vector<float> x = o.x, y = o.y;
  if (x.empty()) make_data(o, x, y);
  const auto d = static_cast<size_t>(o.features);
  const auto B = static_cast<size_t>(o.batch);
  const std::string key = problem_key(o, x, y);

  // Parameters, momentum buffers (optimizer state) and the batch-sampling RNG.
  std::vector<float> w(d, 0.0f), vw(d, 0.0f);
  float b = 0.0f, vb = 0.0f;
  Philox sampler(o.seed, 1, 0);
  int64_t step = 0;
  FitLinearResult result;

  if (!o.work_dir.empty()) {
    if (o.resume) {
      auto c = latest_checkpoint_of_run(o.work_dir, "fit_linear.problem", key, "fitLinear");
      if (c) {
        const std::string& label = c->paths.state;
        const std::vector<int64_t> wshape = {1, o.features};
        c->weights.read_f32("generator.linear.weight", wshape, w.data());
        c->weights.read_f32("generator.linear.bias", {1}, &b);
        c->state.read_f32("optim.momentum.linear.weight", wshape, vw.data());
        c->state.read_f32("optim.momentum.linear.bias", {1}, &vb);
        sampler.set_state({o.seed, 1, meta_uint(c->meta, "data.rng_counter", label)});
        step = c->step;
        result.resumed_from = step;
        result.checkpoint = c->paths.state;
      }
    } else {
      const std::vector<int64_t> existing = list_checkpoint_steps(o.work_dir);
      CFP_CHECK(existing.empty(), "fitLinear: %s already holds checkpoints (newest step %" PRId64 "); pass resume: true or use an empty workDir",
                o.work_dir.c_str(), existing.back());
    }
  }

  auto save = [&](int64_t at) {
    CheckpointData data;
    data.step = at;
    data.weights = {{"generator.linear.weight", DType::F32, {1, o.features}, w.data()}, {"generator.linear.bias", DType::F32, {1}, &b}};
    data.state = {{"optim.momentum.linear.weight", DType::F32, {1, o.features}, vw.data()}, {"optim.momentum.linear.bias", DType::F32, {1}, &vb}};
    data.meta = {{"fit_linear.problem", key}, {"data.rng_counter", std::to_string(sampler.counter())}, {"objective", "fit_linear"}};
    const CheckpointPaths p = save_checkpoint(o.work_dir, data);
    if (o.keep_checkpoints > 0) prune_checkpoints(o.work_dir, static_cast<size_t>(o.keep_checkpoints));
    result.checkpoint = p.state;
    return p.state;
  };

  std::vector<double> grad(d);
  int64_t last_saved = result.resumed_from;
  while (step < o.steps) {
    if (context.cancelled()) {
      result.cancelled = true;
      break;
    }
    // One SGD step on a batch of rows drawn with replacement.
    double loss = 0, gb = 0;
    std::fill(grad.begin(), grad.end(), 0.0);
    for (size_t k = 0; k < B; ++k) {
      const size_t i = sampler.uniform_int(static_cast<uint32_t>(o.samples));
      const float* xi = &x[i * d];
      double s = b;
      for (size_t j = 0; j < d; ++j) s += static_cast<double>(xi[j]) * w[j];
      const double e = s - y[i];
      loss += e * e;
      for (size_t j = 0; j < d; ++j) grad[j] += e * xi[j];
      gb += e;
    }
    loss /= static_cast<double>(B);
    CFP_CHECK(std::isfinite(loss), "fitLinear: the loss became non-finite (%s) at step %" PRId64 "; lr = %g is too large for this problem",
              std::isnan(loss) ? "NaN" : "infinite", step + 1, o.lr);
    const double scale = 2.0 / static_cast<double>(B);
    for (size_t j = 0; j < d; ++j) {
      vw[j] = static_cast<float>(o.momentum * vw[j] + scale * grad[j]);
      w[j] = static_cast<float>(w[j] - o.lr * vw[j]);
    }
    vb = static_cast<float>(o.momentum * vb + scale * gb);
    b = static_cast<float>(b - o.lr * vb);
    ++step;

    JobProgress p;
    const bool checkpoint_now = o.checkpoint_every > 0 && step % o.checkpoint_every == 0;
    if (checkpoint_now) {
      p.checkpoint = save(step);
      last_saved = step;
    }
    if (checkpoint_now || step % o.progress_every == 0 || step == o.steps) {
      p.step = step;
      p.total = o.steps;
      p.metrics = {{"loss", loss}};
      context.report(p);
    }
  }
  if (!o.work_dir.empty() && last_saved != step) save(step);

  result.step = step;
  result.loss = full_loss(x, y, w, b);
  result.weight = w;
  result.bias = b;
  return result;
}

}  // namespace cfp
