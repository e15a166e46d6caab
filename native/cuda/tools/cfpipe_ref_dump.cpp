// Writes what test/reference/parity.py checks the PyTorch re-implementation against: the model's
// weights under their upstream names (weights.safetensors, as checkpoints store them) and, in
// io.safetensors, inputs plus the engine's outputs for every forward mode and the parameter
// gradients of sum(out * dout) for each. Runs on the CUDA backend when a GPU is present, else on
// the CPU backend (the parity test shows the two agree).
//
// Usage: cfpipe_ref_dump OUT_DIR [tiny|mid]
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "cpu/cpu_backend.h"
#include "cuda/cuda_backend.h"
#include "tests/model_test_util.h"

using namespace cfp;

namespace {

std::vector<float> seeded(size_t n, uint64_t seed) {
  Philox rng(seed, 0);
  std::vector<float> v(n);
  rng.fill_normal(v.data(), n);
  return v;
}

ModelConfig config_named(const std::string& name) { return name == "tiny" ? ModelConfig::tiny(3) : cfp_test::mid_config(); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: cfpipe_ref_dump OUT_DIR [tiny|mid]\n");
    return 2;
  }
  const std::string dir = argv[1], which = argc > 2 ? argv[2] : "mid";
  try {
    std::unique_ptr<Backend<float>> be = cuda_device_count() > 0 ? make_cuda_backend(0) : make_cpu_backend<float>(0);
    const ModelConfig c = config_named(which);
    Model<float> m(*be, c);
    m.init(42);
    const int64_t B = 2, F = c.frames, fr = c.channels * c.height * c.width, n = B * F * fr;
    std::map<std::string, std::vector<float>> io;
    io["x"] = seeded(size_t(n), 1);
    io["x_clean"] = seeded(size_t(n), 2);
    io["text"] = seeded(size_t(B * c.text_len * c.text_dim), 3);
    io["dout"] = seeded(size_t(n), 4);
    std::vector<float> t(size_t(B * F));
    for (size_t i = 0; i < t.size(); ++i) t[i] = float(1000.0 * double(i + 1) / double(t.size() + 1));
    io["t"] = t;
    auto dev = [&](const std::vector<float>& h) {
      Tensor<float> d = be->empty({int64_t(h.size())});
      be->upload(d.data(), h.data(), int64_t(h.size()));
      return d;
    };
    Tensor<float> x = dev(io["x"]), xc = dev(io["x_clean"]), text = dev(io["text"]), dout = dev(io["dout"]),
                  tt = dev(t), out = be->empty({n});
    auto host = [&](const Tensor<float>& d, int64_t count) {
      std::vector<float> h(static_cast<size_t>(count));
      be->download(h.data(), d.data(), count);
      return h;
    };
    auto record_grads = [&](const std::string& tag) {
      const auto g = host(m.grads(), m.num_params());
      for (const auto& e : m.param_table())
        io["grad." + tag + "." + e.name] = std::vector<float>(g.begin() + e.offset, g.begin() + e.offset + e.numel());
    };
    for (const auto& [tag, mask] : {std::pair{"full", MaskKind::full}, std::pair{"block_causal", MaskKind::block_causal}}) {
      m.forward(out.data(), x.data(), tt.data(), text.data(), B, F, mask);
      io[std::string("out.") + tag] = host(out, n);
      m.zero_grad();
      m.backward(dout.data());
      record_grads(tag);
    }
    m.forward_teacher_forcing(out.data(), x.data(), tt.data(), xc.data(), 0.0, text.data(), B, F);
    io["out.teacher_forcing"] = host(out, n);
    m.zero_grad();
    m.backward(dout.data());
    record_grads("teacher_forcing");
    // Streaming: block by block at the per-frame timesteps of `t`, each block's output recorded.
    KVCache<float> cache = m.make_cache(B);
    const int64_t k = c.frames_per_block, bn = B * k * fr;
    Tensor<float> xb = be->empty({bn}), tb = be->empty({B * k}), ob = be->empty({bn});
    std::vector<float> stream_out(static_cast<size_t>(n));
    for (int64_t f0 = 0; f0 < F; f0 += k) {
      be->copy2d(xb.data(), k * fr, x.data() + f0 * fr, F * fr, B, k * fr, false);
      be->copy2d(tb.data(), k, tt.data() + f0, F, B, k, false);
      m.forward_stream(ob.data(), xb.data(), tb.data(), text.data(), B, f0, k, cache, false);
      const auto h = host(ob, bn);
      for (int64_t b = 0; b < B; ++b)
        std::copy(h.begin() + b * k * fr, h.begin() + (b + 1) * k * fr, stream_out.begin() + (b * F + f0) * fr);
    }
    io["out.stream"] = stream_out;

    // Weights: upstream names and shapes.
    const auto params = host(m.params(), m.num_params());
    std::vector<TensorRef> wrefs;
    for (const auto& e : m.param_table()) wrefs.push_back({e.name, DType::F32, e.shape, params.data() + e.offset});
    Metadata meta;
    auto I = [](int64_t v) { return std::to_string(v); };
    meta = {{"channels", I(c.channels)}, {"patch_h", I(c.patch_h)}, {"patch_w", I(c.patch_w)}, {"dim", I(c.dim)},
            {"ffn_dim", I(c.ffn_dim)}, {"heads", I(c.heads)}, {"layers", I(c.layers)}, {"freq_dim", I(c.freq_dim)},
            {"text_dim", I(c.text_dim)}, {"text_len", I(c.text_len)}, {"frames", I(c.frames)},
            {"height", I(c.height)}, {"width", I(c.width)}, {"frames_per_block", I(c.frames_per_block)},
            {"rope_theta", std::to_string(c.rope_theta)}, {"eps", "1e-6"}, {"batch", I(B)},
            {"backend", be->name()}};
    write_safetensors(dir + "/weights.safetensors", wrefs, meta);
    std::vector<TensorRef> irefs;
    for (const auto& [name, v] : io) irefs.push_back({name, DType::F32, {int64_t(v.size())}, v.data()});
    write_safetensors(dir + "/io.safetensors", irefs, meta);
    std::printf("cfpipe_ref_dump: %s model (%lld parameters) on %s -> %s\n", which.c_str(),
                static_cast<long long>(m.num_params()), be->name().c_str(), dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cfpipe_ref_dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
