// The causal DiT: every parameter's and the input's gradient against central finite differences
// in double for every mask (full, block-causal, teacher forcing, streaming) and both block sizes;
// streaming with the KV cache equals the block-causal full forward; teacher-forcing causality;
// determinism. Tolerance rule: model_test_util.h.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/model.h"
#include "cpu/cpu_backend.h"
#include "model_test_util.h"

using namespace cfp;
using namespace cfp_test;

namespace {

struct Inputs {
  std::vector<double> x, xc, t, text, R;
};

Inputs make_inputs(const ModelConfig& c, int64_t B, int64_t F, uint64_t seed) {
  Inputs in;
  const size_t n = size_t(B * F * c.channels * c.height * c.width);
  in.x = randn<double>(n, seed);
  in.xc = randn<double>(n, seed + 1);
  in.t.resize(size_t(B * F));
  for (size_t i = 0; i < in.t.size(); ++i) in.t[i] = 50.0 + 900.0 * double((i * 7 + seed) % 11) / 10.0;
  in.text = randn<double>(size_t(B * c.text_len * c.text_dim), seed + 2);
  in.R = randn<double>(n, seed + 3);
  return in;
}

enum class Mode { full, block_causal, teacher_forcing, stream };

// Gradient check of loss = sum(out * R) w.r.t. a sample of every parameter tensor and the input.
void check_model_grads(Mode mode, int64_t k) {
  auto be = make_cpu_backend<double>(2);
  const ModelConfig c = tiny_grad_config(k, 2);
  Model<double> m(*be, c);
  randomize(m, 7);
  const int64_t B = 2, F = 6;
  const int64_t sF = k;  // stream: the last block, frames [F - k, F)
  const int64_t start = F - k;
  const int64_t nF = mode == Mode::stream ? sF : F;
  Inputs in = make_inputs(c, B, nF, 11);
  std::vector<double> out(in.x.size());
  KVCache<double> cache = m.make_cache(B);
  std::vector<double> prefix;
  if (mode == Mode::stream) {
    // Earlier frames go into the cache first (no grad); the checked call is the last block.
    Inputs pre = make_inputs(c, B, start, 99);
    std::vector<double> pre_out(pre.x.size());
    for (int64_t f = 0; f < start; f += k) {
      std::vector<double> xb(size_t(B * k * c.channels * c.height * c.width)), tb(size_t(B * k));
      const size_t fr = size_t(c.channels * c.height * c.width);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < k; ++j) {
          std::copy_n(pre.x.begin() + long((b * start + f + j) * long(fr)), fr, xb.begin() + long((b * k + j) * long(fr)));
          tb[size_t(b * k + j)] = pre.t[size_t(b * start + f + j)];
        }
      std::vector<double> ob(xb.size());
      m.forward_stream(ob.data(), xb.data(), tb.data(), in.text.data(), B, f, k, cache, false);
    }
  }
  auto run = [&]() {
    switch (mode) {
      case Mode::full:
        m.forward(out.data(), in.x.data(), in.t.data(), in.text.data(), B, F, MaskKind::full);
        break;
      case Mode::block_causal:
        m.forward(out.data(), in.x.data(), in.t.data(), in.text.data(), B, F, MaskKind::block_causal);
        break;
      case Mode::teacher_forcing:
        m.forward_teacher_forcing(out.data(), in.x.data(), in.t.data(), in.xc.data(), 0.0, in.text.data(), B, F);
        break;
      case Mode::stream:
        m.forward_stream(out.data(), in.x.data(), in.t.data(), in.text.data(), B, start, sF, cache, true);
        break;
    }
  };
  auto loss = [&]() {
    run();
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += out[i] * in.R[i];
    return s;
  };
  m.zero_grad();
  run();
  std::vector<double> dx(in.x.size(), 0.0);
  m.backward(in.R.data(), dx.data());
  const char* names[] = {"full", "block_causal", "teacher_forcing", "stream"};
  const std::string tag = std::string(names[int(mode)]) + " k=" + std::to_string(k);
  // A spread sample of every parameter tensor (up to 5 elements each).
  double* p = m.params().data();
  const double* g = m.grads().data();
  std::vector<double> num, ana;
  double worst = 0;
  std::string worst_name;
  int zero_tensors = 0;
  for (const auto& e : m.param_table()) {
    const int64_t n = e.numel();
    bool any_nonzero = false;
    for (int64_t s = 0; s < std::min<int64_t>(5, n); ++s) {
      const int64_t i = e.offset + (s * 7919) % n;
      const double nd = central_difference(&p[i], loss);
      const double r = grad_error(g[i], nd);
      if (std::fabs(nd) > 1e-9) any_nonzero = true;
      if (!(r <= worst)) worst = r, worst_name = e.name + " [" + std::to_string(i - e.offset) + "] analytic " +
                                                 std::to_string(g[i]) + " numeric " + std::to_string(nd);
    }
    if (!any_nonzero) ++zero_tensors, std::fprintf(stderr, "  %s: %s has zero gradient\n", tag.c_str(), e.name.c_str());
  }
  if (worst > 1) std::fprintf(stderr, "  %s worst: %s\n", tag.c_str(), worst_name.c_str());
  expect(worst <= 1, "model parameter gradients " + tag);
  expect(zero_tensors == 0, "every parameter tensor gets a gradient " + tag);
  grad_check("model input " + tag, in.x.data(), dx.data(), in.x.size(), loss, 48);
}

// Extract frames [f0, f0 + n) of a [B, F, ...] clip.
std::vector<float> frames_of(const std::vector<float>& x, int64_t B, int64_t F, int64_t per_frame, int64_t f0,
                             int64_t n) {
  std::vector<float> out(size_t(B * n * per_frame));
  for (int64_t b = 0; b < B; ++b)
    std::copy_n(x.begin() + long((b * F + f0) * per_frame), n * per_frame, out.begin() + long(b * n * per_frame));
  return out;
}

void check_stream_equals_block_causal(int64_t k) {
  auto be = make_cpu_backend<float>(2);
  ModelConfig c = tiny_grad_config(k, 2);
  c.dim = 16, c.heads = 2, c.frames = 6;
  Model<float> m(*be, c);
  randomize(m, 3);
  const int64_t B = 2, F = 6, pf = c.channels * c.height * c.width;
  auto x = randn<float>(size_t(B * F * pf), 5), text = randn<float>(size_t(B * c.text_len * c.text_dim), 6);
  std::vector<float> t(size_t(B * F));
  for (size_t i = 0; i < t.size(); ++i) t[i] = float(100 + 37 * i);
  std::vector<float> full(x.size());
  m.forward(full.data(), x.data(), t.data(), text.data(), B, F, MaskKind::block_causal);
  KVCache<float> cache = m.make_cache(B);
  double worst = 0;
  for (int64_t f = 0; f < F; f += k) {
    auto xb = frames_of(x, B, F, pf, f, k);
    auto tb = frames_of(t, B, F, 1, f, k);
    std::vector<float> ob(xb.size());
    // A first pass with other content in the same slots, then the real one: same-slot overwrite.
    auto junk = randn<float>(xb.size(), 100 + uint64_t(f));
    m.forward_stream(ob.data(), junk.data(), tb.data(), text.data(), B, f, k, cache, false);
    m.forward_stream(ob.data(), xb.data(), tb.data(), text.data(), B, f, k, cache, false);
    auto ref = frames_of(full, B, F, pf, f, k);
    worst = std::max(worst, tol_ratio(ob.data(), ref.data(), ref.size(), 1e-4, 1e-4));
  }
  expect(worst <= 1, "streaming with the KV cache equals the block-causal forward k=" + std::to_string(k));
}

// Teacher forcing: noisy block b depends on clean blocks < b and noisy block b only, and equals
// streaming with a cache of the clean blocks written at t = 0.
void check_teacher_forcing_causality(int64_t k) {
  auto be = make_cpu_backend<float>(2);
  ModelConfig c = tiny_grad_config(k, 2);
  Model<float> m(*be, c);
  randomize(m, 4);
  const int64_t B = 1, F = 6, pf = c.channels * c.height * c.width;
  auto x = randn<float>(size_t(B * F * pf), 15), xc = randn<float>(x.size(), 16);
  auto text = randn<float>(size_t(B * c.text_len * c.text_dim), 17);
  std::vector<float> t(size_t(B * F));
  for (size_t i = 0; i < t.size(); ++i) t[i] = float(900 - 120 * i);
  std::vector<float> base(x.size()), other(x.size());
  m.forward_teacher_forcing(base.data(), x.data(), t.data(), xc.data(), 0.0, text.data(), B, F);
  const int64_t b = 1, lo = b * k * pf, hi = (b + 1) * k * pf;  // block 1 (frames [k, 2k))
  auto same_block = [&](const std::vector<float>& o) {
    double md = 0;
    for (int64_t i = lo; i < hi; ++i) md = std::max(md, double(std::fabs(o[size_t(i)] - base[size_t(i)])));
    return md == 0.0;
  };
  // Later noisy blocks change -> block b unchanged (bitwise).
  auto x2 = x;
  for (int64_t i = hi; i < int64_t(x2.size()); ++i) x2[size_t(i)] += 1.0f;
  auto t2 = t;
  for (int64_t f = (b + 1) * k; f < F; ++f) t2[size_t(f)] = 3.0f;
  m.forward_teacher_forcing(other.data(), x2.data(), t2.data(), xc.data(), 0.0, text.data(), B, F);
  expect(same_block(other), "TF noisy block b ignores later noisy blocks k=" + std::to_string(k));
  // Clean blocks >= b change -> unchanged; a clean block < b changes -> changed.
  auto xc2 = xc;
  for (int64_t i = lo; i < int64_t(xc2.size()); ++i) xc2[size_t(i)] -= 0.5f;
  m.forward_teacher_forcing(other.data(), x.data(), t.data(), xc2.data(), 0.0, text.data(), B, F);
  expect(same_block(other), "TF noisy block b ignores its own and later clean blocks k=" + std::to_string(k));
  xc2 = xc;
  xc2[0] += 1.0f;
  m.forward_teacher_forcing(other.data(), x.data(), t.data(), xc2.data(), 0.0, text.data(), B, F);
  expect(!same_block(other), "TF noisy block b sees earlier clean blocks k=" + std::to_string(k));
  // Equivalence with streaming: clean blocks < b written at t = 0, then noisy block b.
  KVCache<float> cache = m.make_cache(B);
  std::vector<float> zeros_t(size_t(B * k), 0.0f);
  for (int64_t f = 0; f < b * k; f += k) {
    auto cb = frames_of(xc, B, F, pf, f, k);
    std::vector<float> ob(cb.size());
    m.forward_stream(ob.data(), cb.data(), zeros_t.data(), text.data(), B, f, k, cache, false);
  }
  auto xb = frames_of(x, B, F, pf, b * k, k);
  auto tb = frames_of(t, B, F, 1, b * k, k);
  std::vector<float> ob(xb.size());
  m.forward_stream(ob.data(), xb.data(), tb.data(), text.data(), B, b * k, k, cache, false);
  expect(tol_ratio(ob.data(), base.data() + lo, ob.size(), 1e-4, 1e-4) <= 1,
         "TF noisy block equals streaming over the clean cache k=" + std::to_string(k));
}

void check_determinism() {
  const ModelConfig c = ModelConfig::tiny(3);
  const int64_t B = 2, F = c.frames, pf = c.channels * c.height * c.width;
  auto x = randn<float>(size_t(B * F * pf), 21), xc = randn<float>(x.size(), 22), R = randn<float>(x.size(), 23);
  auto text = randn<float>(size_t(B * c.text_len * c.text_dim), 24);
  std::vector<float> t(size_t(B * F), 500.0f);
  auto run = [&](int threads, std::vector<float>& out, std::vector<float>& grads) {
    auto be = make_cpu_backend<float>(threads);
    Model<float> m(*be, c);
    m.init(42);
    m.forward_teacher_forcing(out.data(), x.data(), t.data(), xc.data(), 0.0, text.data(), B, F);
    m.backward(R.data());
    grads.assign(m.grads().data(), m.grads().data() + m.num_params());
  };
  std::vector<float> o1(x.size()), o2(x.size()), o3(x.size()), g1, g2, g3;
  run(2, o1, g1);
  run(2, o2, g2);
  run(1, o3, g3);
  expect(o1 == o2 && g1 == g2, "two runs are bitwise equal");
  expect(o1 == o3 && g1 == g3, "1 and 2 threads are bitwise equal");
  bool finite = true;
  for (float v : g1) finite = finite && std::isfinite(v);
  expect(finite, "tiny preset gradients are finite");
}

void check_table_and_init() {
  const ModelConfig wan = ModelConfig::wan_1_3b(3);
  expect(wan.rope_pairs_t() == 22 && wan.rope_pairs_h() == 21 && wan.rope_pairs_w() == 21,
         "RoPE split of head dim 128 is 22/21/21 pairs");
  // Wan2.1-1.3B has ~1.3B parameters (1,418,996,800 with the text/time MLPs and head).
  const int64_t n = model_param_count(wan);
  expect(n > 1'300'000'000 && n < 1'500'000'000, "the 1.3B config has ~1.4B parameters: " + std::to_string(n));
  auto be = make_cpu_backend<float>(1);
  Model<float> a(*be, ModelConfig::tiny(1)), b(*be, ModelConfig::tiny(1)), d(*be, ModelConfig::tiny(1));
  const ParamEntry& q = a.param("model.blocks.3.self_attn.q.weight");
  expect(q.shape == Shape({64, 64}), "q weight shape");
  expect(a.param("model.patch_embedding.weight").shape == Shape({64, 48, 1, 2, 2}), "patch embedding Conv3d shape");
  expect(a.param("model.head.modulation").shape == Shape({1, 2, 64}), "head modulation shape");
  a.init(1);
  b.init(1);
  d.init(2);
  const size_t P = size_t(a.num_params());
  expect(std::equal(a.params().data(), a.params().data() + P, b.params().data()), "init is deterministic per seed");
  expect(!std::equal(a.params().data(), a.params().data() + P, d.params().data()), "init differs across seeds");
  bool threw = false;
  try {
    std::vector<float> buf(1 << 16);
    a.forward(buf.data(), buf.data(), buf.data(), buf.data(), 1, 10, MaskKind::full);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("model.cpp:") != std::string::npos;
  }
  expect(threw, "too many frames throws cfp::Error with file:line");
  ModelConfig bad = ModelConfig::tiny(1);
  bad.heads = 5;
  threw = false;
  try {
    bad.validate();
  } catch (const Error&) {
    threw = true;
  }
  expect(threw, "dim not divisible by heads is rejected");
}

}  // namespace

int main() {
  check_table_and_init();
  for (int64_t k : {1, 3}) {
    for (Mode mode : {Mode::full, Mode::block_causal, Mode::teacher_forcing, Mode::stream}) check_model_grads(mode, k);
    check_stream_equals_block_causal(k);
    check_teacher_forcing_causality(k);
  }
  check_determinism();
  return finish("test_model");
}
