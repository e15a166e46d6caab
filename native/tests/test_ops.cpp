// Every CPU op: forward against a direct reference, backward against central finite differences
// in double precision (tolerance rule in model_test_util.h), GEMM against the triple loop, and
// bitwise independence from the thread count.
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "core/backend.h"
#include "cpu/cpu_backend.h"
#include "cpu/gemm.h"
#include "model_test_util.h"

using namespace cfp;
using namespace cfp_test;
using Vec = std::vector<double>;

namespace {

struct Input {
  const char* name;
  Vec* x;
  Vec grad;
};

// Checks backward(dout = R) against d/dx sum(forward() * R) for every input.
void check_op(const std::string& op, std::vector<Input> inputs, size_t n_out, const std::function<void(Vec&)>& forward,
              const std::function<void(const Vec&, std::vector<Input>&)>& backward) {
  const Vec R = randn<double>(n_out, 977);
  Vec out(n_out);
  auto loss = [&]() {
    forward(out);
    double s = 0;
    for (size_t i = 0; i < n_out; ++i) s += out[i] * R[i];
    return s;
  };
  for (auto& in : inputs) in.grad.assign(in.x->size(), 0.0);
  forward(out);
  backward(R, inputs);
  for (auto& in : inputs) grad_check(op + " d" + in.name, in.x->data(), in.grad.data(), in.x->size(), loss);
}

void test_gemm() {
  auto be1 = make_cpu_backend<float>(1);
  auto be2 = make_cpu_backend<float>(2);
  auto bed = make_cpu_backend<double>(2);
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {13, 33, 17}, {96, 64, 64}, {100, 70, 300}, {37, 600, 45},
                               {5, 1100, 260}};
  for (auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (float beta : {0.0f, 1.0f}) {
          const int64_t lda = ta ? M : K, ldb = tb ? K : N;
          auto A = randn<float>(size_t(M * K), 1), B = randn<float>(size_t(K * N), 2), C0 = randn<float>(size_t(M * N), 3);
          std::vector<float> ref = C0, c1 = C0, c2 = C0;
          naive_gemm<float>(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, ref.data(), N);
          be1->gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, c1.data(), N);
          be2->gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, c2.data(), N);
          char what[128];
          std::snprintf(what, sizeof what, "gemm float %lldx%lldx%lld ta=%d tb=%d beta=%g", (long long)M, (long long)N,
                        (long long)K, ta, tb, beta);
          expect(tol_ratio(c1.data(), ref.data(), ref.size(), 1e-4, 1e-4) <= 1, what);
          expect(c1 == c2, std::string(what) + " bitwise equal on 1 and 2 threads");
          auto Ad = randn<double>(size_t(M * K), 4), Bd = randn<double>(size_t(K * N), 5), Cd = randn<double>(size_t(M * N), 6);
          Vec refd = Cd;
          naive_gemm<double>(ta, tb, M, N, K, 1.5, Ad.data(), lda, Bd.data(), ldb, beta, refd.data(), N);
          bed->gemm(ta, tb, M, N, K, 1.5, Ad.data(), lda, Bd.data(), ldb, beta, Cd.data(), N);
          expect(tol_ratio(Cd.data(), refd.data(), refd.size(), 1e-12, 1e-12) <= 1, std::string(what) + " (double)");
        }
  }
  // beta = 0 must ignore NaNs already in C.
  std::vector<float> A(6, 1.0f), B(6, 1.0f), C(4, std::numeric_limits<float>::quiet_NaN());
  be2->gemm(false, false, 2, 2, 3, 1.0f, A.data(), 3, B.data(), 2, 0.0f, C.data(), 2);
  expect(C[0] == 3.0f && C[3] == 3.0f, "gemm beta=0 overwrites NaN");
}

void test_elementwise(Backend<double>& be) {
  const int64_t N = 5, C = 12;
  Vec x = randn<double>(size_t(N * C), 11), bias = randn<double>(size_t(C), 12);
  check_op("add_bias", {{"x", &x, {}}, {"bias", &bias, {}}}, x.size(),
           [&](Vec& out) { out = x; be.add_bias(out.data(), bias.data(), N, C); },
           [&](const Vec& d, std::vector<Input>& in) {
             be.axpy(in[0].grad.data(), 1.0, d.data(), N * C);
             be.bias_backward(in[1].grad.data(), d.data(), N, C);
           });
  check_op("gelu_tanh", {{"x", &x, {}}}, x.size(), [&](Vec& out) { be.gelu_tanh_forward(out.data(), x.data(), N * C); },
           [&](const Vec& d, std::vector<Input>& in) { be.gelu_tanh_backward(in[0].grad.data(), x.data(), d.data(), N * C); });
  check_op("silu", {{"x", &x, {}}}, x.size(), [&](Vec& out) { be.silu_forward(out.data(), x.data(), N * C); },
           [&](const Vec& d, std::vector<Input>& in) { be.silu_backward(in[0].grad.data(), x.data(), d.data(), N * C); });
  Vec sm(x.size());
  check_op("softmax", {{"x", &x, {}}}, x.size(), [&](Vec& out) { be.softmax_forward(out.data(), x.data(), N, C); },
           [&](const Vec& d, std::vector<Input>& in) {
             be.softmax_forward(sm.data(), x.data(), N, C);
             be.softmax_backward(in[0].grad.data(), sm.data(), d.data(), N, C);
           });
  // Forward values against the formulas.
  Vec g(x.size()), s(x.size());
  be.gelu_tanh_forward(g.data(), x.data(), N * C);
  be.softmax_forward(s.data(), x.data(), N, C);
  double rowsum = 0;
  for (int64_t c = 0; c < C; ++c) rowsum += s[size_t(c)];
  expect(std::fabs(rowsum - 1) < 1e-12, "softmax rows sum to 1");
  const double x0 = x[0];
  expect(std::fabs(g[0] - 0.5 * x0 * (1 + std::tanh(std::sqrt(2 / M_PI) * (x0 + 0.044715 * x0 * x0 * x0)))) < 1e-14,
         "gelu_tanh value");
  // Reductions and helpers.
  Vec y = randn<double>(x.size(), 13), o(x.size());
  double ss = 0, dt = 0, sad = 0;
  for (size_t i = 0; i < x.size(); ++i) ss += x[i] * x[i], dt += x[i] * y[i], sad += std::fabs(x[i] - y[i]);
  expect(std::fabs(be.sum_squares(x.data(), N * C) - ss) < 1e-12, "sum_squares");
  expect(std::fabs(be.dot(x.data(), y.data(), N * C) - dt) < 1e-12, "dot");
  expect(std::fabs(be.sum_abs_diff(x.data(), y.data(), N * C) - sad) < 1e-12, "sum_abs_diff");
  be.axpby(o.data(), 2.0, x.data(), -3.0, y.data(), N * C);
  expect(o[7] == 2 * x[7] - 3 * y[7], "axpby");
  Vec w = randn<double>(size_t(N), 14);
  o = x;
  be.mul_rows(o.data(), w.data(), N, C);
  expect(o[size_t(2 * C + 3)] == x[size_t(2 * C + 3)] * w[2], "mul_rows");
  // copy2d with and without accumulation.
  Vec dst(size_t(3 * 8), 1.0);
  be.copy2d(dst.data() + 2, 8, x.data(), C, 3, 4, false);
  be.copy2d(dst.data() + 2, 8, x.data(), C, 3, 4, true);
  expect(dst[size_t(8 + 3)] == 2 * x[size_t(C + 1)] && dst[0] == 1.0, "copy2d");
}

void test_norms(Backend<double>& be) {
  const int64_t N = 6, C = 10;
  Vec x = randn<double>(size_t(N * C), 21, 2.0), w = randn<double>(size_t(C), 22), b = randn<double>(size_t(C), 23);
  Vec mean(static_cast<size_t>(N)), rstd(static_cast<size_t>(N));
  for (int affine = 0; affine < 2; ++affine) {
    std::vector<Input> in = {{"x", &x, {}}};
    if (affine) in.push_back({"w", &w, {}}), in.push_back({"b", &b, {}});
    check_op(affine ? "layernorm(affine)" : "layernorm", in, x.size(),
             [&](Vec& out) {
               be.layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), affine ? w.data() : nullptr,
                                    affine ? b.data() : nullptr, N, C, 1e-6);
             },
             [&](const Vec& d, std::vector<Input>& g) {
               be.layernorm_backward(g[0].grad.data(), affine ? g[1].grad.data() : nullptr,
                                     affine ? g[2].grad.data() : nullptr, d.data(), x.data(), affine ? w.data() : nullptr,
                                     mean.data(), rstd.data(), N, C);
             });
  }
  Vec ln(x.size());
  be.layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), nullptr, nullptr, N, C, 1e-6);
  double m = 0, v = 0;
  for (int64_t c = 0; c < C; ++c) m += ln[size_t(c)], v += ln[size_t(c)] * ln[size_t(c)];
  expect(std::fabs(m) < 1e-10 && std::fabs(v / C - 1) < 1e-4, "layernorm output has zero mean, unit variance");
  check_op("rmsnorm", {{"x", &x, {}}, {"w", &w, {}}}, x.size(),
           [&](Vec& out) { be.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6); },
           [&](const Vec& d, std::vector<Input>& g) {
             be.rmsnorm_backward(g[0].grad.data(), g[1].grad.data(), d.data(), x.data(), w.data(), rstd.data(), N, C);
           });
}

void test_modulation(Backend<double>& be) {
  const int64_t S = 3, Lf = 4, C = 5, ms = 3 * C;  // table rows hold 3 vectors, like [S, 6, D]
  Vec x = randn<double>(size_t(S * Lf * C), 31), y = randn<double>(x.size(), 32);
  Vec table = randn<double>(size_t(S * ms), 33, 0.5);
  // shift = table[:, 0:C], scale = table[:, C:2C], gate = table[:, 2C:3C]
  check_op("modulate", {{"x", &x, {}}, {"table", &table, {}}}, x.size(),
           [&](Vec& out) { be.modulate_forward(out.data(), x.data(), table.data(), table.data() + C, ms, S, Lf, C); },
           [&](const Vec& d, std::vector<Input>& g) {
             be.modulate_backward(g[0].grad.data(), g[1].grad.data(), g[1].grad.data() + C, d.data(), x.data(),
                                  table.data() + C, ms, S, Lf, C);
           });
  check_op("gate_residual", {{"x", &x, {}}, {"y", &y, {}}, {"table", &table, {}}}, x.size(),
           [&](Vec& out) {
             out = x;
             be.gate_residual_forward(out.data(), y.data(), table.data() + 2 * C, ms, S, Lf, C);
           },
           [&](const Vec& d, std::vector<Input>& g) {
             be.axpy(g[0].grad.data(), 1.0, d.data(), S * Lf * C);
             be.gate_residual_backward(g[1].grad.data(), g[2].grad.data() + 2 * C, d.data(), y.data(),
                                       table.data() + 2 * C, ms, S, Lf, C);
           });
}

void test_rope(Backend<double>& be) {
  const int64_t N = 5, H = 2, hd = 6, P = hd / 2;
  Vec x = randn<double>(size_t(N * H * hd), 41), ang = randn<double>(size_t(N * P), 42, 3.0);
  Vec cs(ang.size()), sn(ang.size());
  for (size_t i = 0; i < ang.size(); ++i) cs[i] = std::cos(ang[i]), sn[i] = std::sin(ang[i]);
  Vec out(x.size());
  be.rope_forward(out.data(), x.data(), cs.data(), sn.data(), N, H, hd);
  double worst = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < P; ++i) {  // (x0 + i x1) * exp(i angle)
        const size_t at = size_t(n * H * hd + h * hd + 2 * i);
        const double re = x[at] * cs[size_t(n * P + i)] - x[at + 1] * sn[size_t(n * P + i)];
        const double im = x[at] * sn[size_t(n * P + i)] + x[at + 1] * cs[size_t(n * P + i)];
        worst = std::max(worst, std::fabs(out[at] - re) + std::fabs(out[at + 1] - im));
      }
  expect(worst < 1e-12, "rope forward = complex rotation of adjacent pairs");
  Vec back(x.size(), 0.0);
  be.rope_backward(back.data(), out.data(), cs.data(), sn.data(), N, H, hd);
  expect(tol_ratio(back.data(), x.data(), x.size(), 1e-12, 1e-12) <= 1, "rope backward is the inverse rotation");
  check_op("rope", {{"x", &x, {}}}, x.size(),
           [&](Vec& o) { be.rope_forward(o.data(), x.data(), cs.data(), sn.data(), N, H, hd); },
           [&](const Vec& d, std::vector<Input>& g) {
             be.rope_backward(g[0].grad.data(), d.data(), cs.data(), sn.data(), N, H, hd);
           });
}

// Reference masked attention straight from attn_allowed.
void attention_reference(Vec& out, const Vec& q, const Vec& k, const Vec& v, const AttnShape& sh, const AttnMask& m,
                         double scale) {
  const int64_t D = sh.H * sh.hd;
  for (int64_t b = 0; b < sh.B; ++b)
    for (int64_t h = 0; h < sh.H; ++h)
      for (int64_t i = 0; i < sh.Tq; ++i) {
        std::vector<double> s(size_t(sh.Tk), -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < sh.Tk; ++j) {
          if (!attn_allowed(m, i, j)) continue;
          double d = 0;
          for (int64_t e = 0; e < sh.hd; ++e)
            d += q[size_t((b * sh.Tq + i) * D + h * sh.hd + e)] * k[size_t((b * sh.kv_stride() + j) * D + h * sh.hd + e)];
          s[size_t(j)] = d * scale;
          mx = std::max(mx, s[size_t(j)]);
        }
        double z = 0;
        for (auto& e : s) z += (e = std::isinf(e) ? 0 : std::exp(e - mx));
        for (int64_t e = 0; e < sh.hd; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < sh.Tk; ++j)
            acc += s[size_t(j)] * v[size_t((b * sh.kv_stride() + j) * D + h * sh.hd + e)];
          out[size_t((b * sh.Tq + i) * D + h * sh.hd + e)] = z > 0 ? acc / z : 0;
        }
      }
}

void test_attention(Backend<double>& be) {
  const int64_t B = 2, H = 2, hd = 4, D = H * hd, tpf = 2;  // 2 tokens per frame
  const double scale = 1.0 / std::sqrt(double(hd));
  for (int64_t k : {1, 3}) {
    const int64_t frames = 6, L = frames * tpf;
    struct Case {
      const char* name;
      AttnMask mask;
      int64_t Tq, Tk, kv_rows;
    };
    std::vector<Case> cases = {
        {"full", {MaskKind::full, 0, 0, 0}, L, L, 0},
        {"block_causal", {MaskKind::block_causal, k * tpf, 0, 0}, L, L, 0},
        {"teacher_forcing", {MaskKind::teacher_forcing, k * tpf, L, 0}, 2 * L, 2 * L, 0},
        // streaming: the last block's queries against a cache with spare rows
        {"cache(full)", {MaskKind::full, 0, 0, 0}, k * tpf, L, L + 4},
        {"block_causal(q_offset)", {MaskKind::block_causal, k * tpf, 0, L - k * tpf}, k * tpf, L, L + 4},
    };
    for (auto& c : cases) {
      AttnShape sh{B, c.Tq, c.Tk, H, hd, c.kv_rows};
      Vec q = randn<double>(size_t(B * c.Tq * D), 51), kk = randn<double>(size_t(B * sh.kv_stride() * D), 52),
          v = randn<double>(kk.size(), 53);
      Vec lse(size_t(B * H * c.Tq)), ref(q.size()), out(q.size());
      be.attention_forward(out.data(), lse.data(), q.data(), kk.data(), v.data(), sh, c.mask, scale);
      attention_reference(ref, q, kk, v, sh, c.mask, scale);
      const std::string name = std::string("attention ") + c.name + " k=" + std::to_string(k);
      expect(tol_ratio(out.data(), ref.data(), ref.size(), 1e-12, 1e-10) <= 1, name + " forward");
      Vec o2(q.size());
      check_op(name, {{"q", &q, {}}, {"k", &kk, {}}, {"v", &v, {}}}, q.size(),
               [&](Vec& o) { be.attention_forward(o.data(), lse.data(), q.data(), kk.data(), v.data(), sh, c.mask, scale); },
               [&](const Vec& d, std::vector<Input>& g) {
                 be.attention_forward(o2.data(), lse.data(), q.data(), kk.data(), v.data(), sh, c.mask, scale);
                 be.attention_backward(g[0].grad.data(), g[1].grad.data(), g[2].grad.data(), d.data(), q.data(),
                                       kk.data(), v.data(), o2.data(), lse.data(), sh, c.mask, scale);
               });
    }
  }
  // The teacher-forcing rule itself (spec §3.6), k = 1 frame of 1 token, 3 frames: clean 0..2, noisy 3..5.
  AttnMask tf{MaskKind::teacher_forcing, 1, 3, 0};
  expect(attn_allowed(tf, 1, 0) && attn_allowed(tf, 1, 1) && !attn_allowed(tf, 1, 2) && !attn_allowed(tf, 1, 4),
         "clean block sees clean blocks <= b only");
  expect(attn_allowed(tf, 4, 0) && !attn_allowed(tf, 4, 1) && attn_allowed(tf, 4, 4) && !attn_allowed(tf, 4, 3) &&
             !attn_allowed(tf, 4, 5),
         "noisy block b sees clean blocks < b and its own noisy block");
}

void test_embeddings(Backend<double>& be) {
  const int64_t dim = 8;
  Vec t = {0.0, 1.0, 937.5}, out(size_t(3 * dim));
  be.timestep_embedding(out.data(), t.data(), 3, dim);
  expect(out[0] == 1.0 && out[4] == 0.0, "time embedding of t=0 is cos=1, sin=0");
  expect(std::fabs(out[size_t(2 * dim + 1)] - std::cos(937.5 * std::pow(10000.0, -0.25))) < 1e-12 &&
             std::fabs(out[size_t(2 * dim + 5)] - std::sin(937.5 * std::pow(10000.0, -0.25))) < 1e-12,
         "time embedding: first half cos, second half sin, w_i = 10000^(-i/half)");
  const int64_t B = 1, F = 2, C = 3, H = 4, W = 6, ph = 2, pw = 2, P = C * ph * pw;
  Vec x = randn<double>(size_t(B * F * C * H * W), 61), tok(size_t(B * F * (H / ph) * (W / pw) * P));
  be.patchify(tok.data(), x.data(), B, F, C, H, W, ph, pw);
  // token (f=1, hp=1, wp=2), channel c=2, q=1, r=0 -> x[f=1, c=2, h=3, w=4]
  const size_t tok_i = size_t((1 * 2 + 1) * 3 + 2);
  expect(tok[tok_i * P + (2 * ph + 1) * pw + 0] == x[size_t(((1 * C + 2) * H + 3) * W + 4)],
         "patchify orders the patch vector (c, q, r) like the Conv3d weight");
  Vec back(x.size());
  be.unpatchify(back.data(), tok.data(), B, F, C, H, W, ph, pw);
  expect(back[size_t(((1 * C + 0) * H + 3) * W + 4)] == tok[tok_i * P + (1 * pw + 0) * C + 0],
         "unpatchify reads the head's (q, r, c) order");
  check_op("patchify", {{"x", &x, {}}}, tok.size(),
           [&](Vec& o) { be.patchify(o.data(), x.data(), B, F, C, H, W, ph, pw); },
           [&](const Vec& d, std::vector<Input>& g) { be.patchify_backward(g[0].grad.data(), d.data(), B, F, C, H, W, ph, pw); });
  check_op("unpatchify", {{"tokens", &tok, {}}}, x.size(),
           [&](Vec& o) { be.unpatchify(o.data(), tok.data(), B, F, C, H, W, ph, pw); },
           [&](const Vec& d, std::vector<Input>& g) {
             be.unpatchify_backward(g[0].grad.data(), d.data(), B, F, C, H, W, ph, pw);
           });
}

void test_errors() {
  auto be = make_cpu_backend<float>(1);
  bool threw = false;
  try {
    AttnShape sh{1, 4, 4, 1, 2, 0};
    AttnMask m{MaskKind::block_causal, 0, 0, 0};
    std::vector<float> buf(16);
    be->attention_forward(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), sh, m, 1.0);
  } catch (const Error& e) {
    threw = std::string(e.what()).find("cpu_backend.cpp:") != std::string::npos;
  }
  expect(threw, "invalid mask throws cfp::Error with file:line");
}

}  // namespace

int main() {
  auto be = make_cpu_backend<double>(2);
  test_gemm();
  test_elementwise(*be);
  test_norms(*be);
  test_modulation(*be);
  test_rope(*be);
  test_attention(*be);
  test_embeddings(*be);
  test_errors();
  return finish("test_ops");
}
