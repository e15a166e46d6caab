// The op profiler (op_profiler.h): events around each forwarded op, summed per op name at stop().
#include "cuda/op_profiler.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>

#include "cuda/cuda_common.cuh"
#include "cuda/kernels.h"

namespace cfp {

namespace {

using cuda::stream_of;

// Visible (query, key) pairs of one attention call, from the mask's per-row key ranges.
double attention_pairs(const AttnShape& sh, const AttnMask& m) {
  double pairs = 0;
  for (int64_t i = 0; i < sh.Tq; ++i) pairs += double(cuda::key_ranges(m, i, sh.Tk).count());
  return pairs * double(sh.B * sh.H);
}

class Profiler final : public OpProfiler, public Backend<float> {
 public:
  explicit Profiler(Backend<float>& inner) : in_(inner), stream_(stream_of(inner)) {}
  ~Profiler() override {
    for (auto& e : pool_) cudaEventDestroy(e);
  }
  Backend<float>& backend() override { return *this; }
  void start() override {
    records_.clear();
    used_ = 0;
    on_ = true;
  }
  std::vector<OpStat> stop() override {
    on_ = false;
    CUDA_OK(cudaStreamSynchronize(stream_));
    std::map<std::string, OpStat> by_name;
    for (const Record& r : records_) {
      float ms = 0;
      CUDA_OK(cudaEventElapsedTime(&ms, pool_[r.ev], pool_[r.ev + 1]));
      OpStat& s = by_name[r.stat.name];
      if (s.calls == 0) s = r.stat, s.calls = 0, s.ms = s.flops = s.bytes = 0;
      s.calls += 1;
      s.ms += ms;
      s.flops += r.stat.flops;
      s.bytes += r.stat.bytes;
    }
    std::vector<OpStat> out;
    for (auto& kv : by_name) out.push_back(kv.second);
    std::sort(out.begin(), out.end(), [](const OpStat& a, const OpStat& b) { return a.ms > b.ms; });
    return out;
  }

  std::string name() const override { return in_.name(); }
  std::shared_ptr<float> alloc(int64_t n) override { return in_.alloc(n); }
  void upload(float* d, const float* s, int64_t n) override { in_.upload(d, s, n); }
  void download(float* d, const float* s, int64_t n) override { in_.download(d, s, n); }
  void copy(float* d, const float* s, int64_t n) override {
    mem("copy", 2 * n, [&] { in_.copy(d, s, n); });
  }
  void fill(float* x, float v, int64_t n) override {
    mem("fill", n, [&] { in_.fill(x, v, n); });
  }
  void copy2d(float* d, int64_t ldd, const float* s, int64_t lds, int64_t r, int64_t c, bool acc) override {
    mem(acc ? "copy2d_accumulate" : "copy2d", (acc ? 3 : 2) * r * c, [&] { in_.copy2d(d, ldd, s, lds, r, c, acc); });
  }
  void philox_normal(float* d, int64_t n, const RngState& at) override {
    mem("philox_normal", n, [&] { in_.philox_normal(d, n, at); });
  }
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, float beta, float* C, int64_t ldc) override {
    char nm[96];
    std::snprintf(nm, sizeof nm, "gemm %c%c %lldx%lldx%lld%s", ta ? 'T' : 'N', tb ? 'T' : 'N', (long long)M,
                  (long long)N, (long long)K, beta != 0.f ? " +C" : "");
    OpStat s;
    s.name = nm, s.kind = "gemm", s.flops = 2.0 * double(M) * double(N) * double(K);
    s.ta = ta, s.tb = tb, s.M = M, s.N = N, s.K = K;
    timed(s, [&] { in_.gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); });
  }
  void gemm_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                 int64_t ldb, const float* bias, float* C, int64_t ldc) override {
    char nm[96];
    std::snprintf(nm, sizeof nm, "gemm %c%c %lldx%lldx%lld%s", ta ? 'T' : 'N', tb ? 'T' : 'N', (long long)M,
                  (long long)N, (long long)K, bias ? " +bias" : "");
    OpStat s;
    s.name = nm, s.kind = "gemm", s.flops = 2.0 * double(M) * double(N) * double(K);
    s.ta = ta, s.tb = tb, s.M = M, s.N = N, s.K = K;
    timed(s, [&] { in_.gemm_bias(ta, tb, M, N, K, A, lda, B, ldb, bias, C, ldc); });
  }
  void add_bias(float* o, const float* b, int64_t N, int64_t C) override {
    mem("add_bias", 2 * N * C, [&] { in_.add_bias(o, b, N, C); });
  }
  void bias_backward(float* db, const float* d, int64_t N, int64_t C) override {
    mem("bias_backward", N * C, [&] { in_.bias_backward(db, d, N, C); });
  }
  void add(float* o, const float* a, const float* b, int64_t n) override {
    mem("add", 3 * n, [&] { in_.add(o, a, b, n); });
  }
  void axpy(float* y, float a, const float* x, int64_t n) override {
    mem("axpy", 3 * n, [&] { in_.axpy(y, a, x, n); });
  }
  void axpby(float* o, float a, const float* x, float b, const float* y, int64_t n) override {
    mem("axpby", 3 * n, [&] { in_.axpby(o, a, x, b, y, n); });
  }
  void scale(float* x, float a, int64_t n) override {
    mem("scale", 2 * n, [&] { in_.scale(x, a, n); });
  }
  void mul_rows(float* x, const float* w, int64_t R, int64_t C) override {
    mem("mul_rows", 2 * R * C, [&] { in_.mul_rows(x, w, R, C); });
  }
  double sum_squares(const float* x, int64_t n) override {
    double r = 0;
    mem("sum_squares", n, [&] { r = in_.sum_squares(x, n); });
    return r;
  }
  double dot(const float* a, const float* b, int64_t n) override {
    double r = 0;
    mem("dot", 2 * n, [&] { r = in_.dot(a, b, n); });
    return r;
  }
  double sum_abs_diff(const float* a, const float* b, int64_t n) override {
    double r = 0;
    mem("sum_abs_diff", 2 * n, [&] { r = in_.sum_abs_diff(a, b, n); });
    return r;
  }
  void gelu_tanh_forward(float* o, const float* x, int64_t n) override {
    mem("gelu_forward", 2 * n, [&] { in_.gelu_tanh_forward(o, x, n); });
  }
  void gelu_tanh_backward(float* dx, const float* x, const float* d, int64_t n) override {
    mem("gelu_backward", 4 * n, [&] { in_.gelu_tanh_backward(dx, x, d, n); });
  }
  void silu_forward(float* o, const float* x, int64_t n) override {
    mem("silu_forward", 2 * n, [&] { in_.silu_forward(o, x, n); });
  }
  void silu_backward(float* dx, const float* x, const float* d, int64_t n) override {
    mem("silu_backward", 4 * n, [&] { in_.silu_backward(dx, x, d, n); });
  }
  void softmax_forward(float* o, const float* x, int64_t N, int64_t C) override {
    mem("softmax_forward", 2 * N * C, [&] { in_.softmax_forward(o, x, N, C); });
  }
  void softmax_backward(float* dx, const float* o, const float* d, int64_t N, int64_t C) override {
    mem("softmax_backward", 4 * N * C, [&] { in_.softmax_backward(dx, o, d, N, C); });
  }
  void layernorm_forward(float* o, float* mean, float* rstd, const float* x, const float* w, const float* b, int64_t N,
                         int64_t C, double eps) override {
    mem("layernorm_forward", 2 * N * C, [&] { in_.layernorm_forward(o, mean, rstd, x, w, b, N, C, eps); });
  }
  void layernorm_backward(float* dx, float* dw, float* db, const float* d, const float* x, const float* w,
                          const float* mean, const float* rstd, int64_t N, int64_t C) override {
    const int64_t passes = (dx ? 4 : 0) + (dw ? 2 : 0) + (db ? 1 : 0);
    mem("layernorm_backward", passes * N * C, [&] { in_.layernorm_backward(dx, dw, db, d, x, w, mean, rstd, N, C); });
  }
  void rmsnorm_forward(float* o, float* rstd, const float* x, const float* w, int64_t N, int64_t C,
                       double eps) override {
    mem("rmsnorm_forward", 2 * N * C, [&] { in_.rmsnorm_forward(o, rstd, x, w, N, C, eps); });
  }
  void rmsnorm_backward(float* dx, float* dw, const float* d, const float* x, const float* w, const float* rstd,
                        int64_t N, int64_t C) override {
    const int64_t passes = (dx ? 4 : 0) + (dw ? 2 : 0);
    mem("rmsnorm_backward", passes * N * C, [&] { in_.rmsnorm_backward(dx, dw, d, x, w, rstd, N, C); });
  }
  void modulate_forward(float* o, const float* x, const float* sh, const float* sc, int64_t ms, int64_t S,
                        int64_t Lf, int64_t C) override {
    mem("modulate_forward", 2 * S * Lf * C, [&] { in_.modulate_forward(o, x, sh, sc, ms, S, Lf, C); });
  }
  void modulate_backward(float* dx, float* dsh, float* dsc, const float* d, const float* x, const float* sc,
                         int64_t ms, int64_t S, int64_t Lf, int64_t C) override {
    const int64_t passes = (dx ? 3 : 0) + (dsh ? 1 : 0) + (dsc ? 2 : 0);
    mem("modulate_backward", passes * S * Lf * C, [&] { in_.modulate_backward(dx, dsh, dsc, d, x, sc, ms, S, Lf, C); });
  }
  void gate_residual_forward(float* x, const float* y, const float* g, int64_t ms, int64_t S, int64_t Lf,
                             int64_t C) override {
    mem("gate_residual_forward", 3 * S * Lf * C, [&] { in_.gate_residual_forward(x, y, g, ms, S, Lf, C); });
  }
  void gate_residual_backward(float* dy, float* dg, const float* dx, const float* y, const float* g, int64_t ms,
                              int64_t S, int64_t Lf, int64_t C) override {
    const int64_t passes = (dy ? 3 : 0) + (dg ? 2 : 0);
    mem("gate_residual_backward", passes * S * Lf * C, [&] { in_.gate_residual_backward(dy, dg, dx, y, g, ms, S, Lf, C); });
  }
  void rope_forward(float* o, const float* x, const float* c, const float* s, int64_t N, int64_t H,
                    int64_t hd) override {
    mem("rope_forward", 2 * N * H * hd, [&] { in_.rope_forward(o, x, c, s, N, H, hd); });
  }
  void rope_backward(float* dx, const float* d, const float* c, const float* s, int64_t N, int64_t H,
                     int64_t hd) override {
    mem("rope_backward", 3 * N * H * hd, [&] { in_.rope_backward(dx, d, c, s, N, H, hd); });
  }
  void attention_forward(float* o, float* lse, const float* q, const float* k, const float* v, const AttnShape& sh,
                         const AttnMask& m, double scale) override {
    OpStat s;
    s.name = attn_name("attention_forward", sh, m), s.kind = "attention";
    s.flops = on_ ? 4.0 * attention_pairs(sh, m) * double(sh.hd) : 0;  // QK^T and PV
    timed(s, [&] { in_.attention_forward(o, lse, q, k, v, sh, m, scale); });
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* d, const float* q, const float* k,
                          const float* v, const float* o, const float* lse, const AttnShape& sh, const AttnMask& m,
                          double scale) override {
    OpStat s;
    s.name = attn_name("attention_backward", sh, m), s.kind = "attention";
    s.flops = on_ ? 10.0 * attention_pairs(sh, m) * double(sh.hd) : 0;  // QK^T, dO V^T, dV, dK, dQ
    timed(s, [&] { in_.attention_backward(dq, dk, dv, d, q, k, v, o, lse, sh, m, scale); });
  }
  void timestep_embedding(float* o, const float* t, int64_t N, int64_t dim) override {
    mem("timestep_embedding", N * dim, [&] { in_.timestep_embedding(o, t, N, dim); });
  }
  void patchify(float* t, const float* x, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W, int64_t ph,
                int64_t pw) override {
    mem("patchify", 2 * B * F * C * H * W, [&] { in_.patchify(t, x, B, F, C, H, W, ph, pw); });
  }
  void patchify_backward(float* dx, const float* dt, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W,
                         int64_t ph, int64_t pw) override {
    mem("patchify_backward", 3 * B * F * C * H * W, [&] { in_.patchify_backward(dx, dt, B, F, C, H, W, ph, pw); });
  }
  void unpatchify(float* x, const float* t, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W, int64_t ph,
                  int64_t pw) override {
    mem("unpatchify", 2 * B * F * C * H * W, [&] { in_.unpatchify(x, t, B, F, C, H, W, ph, pw); });
  }
  void unpatchify_backward(float* dt, const float* dx, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W,
                           int64_t ph, int64_t pw) override {
    mem("unpatchify_backward", 3 * B * F * C * H * W, [&] { in_.unpatchify_backward(dt, dx, B, F, C, H, W, ph, pw); });
  }

 private:
  struct Record {
    OpStat stat;
    size_t ev;  // pool_[ev] before the op, pool_[ev + 1] after
  };
  static std::string attn_name(const char* op, const AttnShape& sh, const AttnMask& m) {
    static const char* kinds[] = {"full", "block_causal", "teacher_forcing"};
    char nm[128];
    std::snprintf(nm, sizeof nm, "%s %s %lldx%lld", op, kinds[int(m.kind)], (long long)sh.Tq, (long long)sh.Tk);
    return nm;
  }
  void mem(const char* op, int64_t elems, const std::function<void()>& fn) {
    OpStat s;
    s.name = op, s.kind = "memory", s.bytes = 4.0 * double(elems);
    timed(s, fn);
  }
  void timed(const OpStat& s, const std::function<void()>& fn) {
    if (!on_) return fn();
    while (pool_.size() < used_ + 2) {
      cudaEvent_t e;
      CUDA_OK(cudaEventCreate(&e));
      pool_.push_back(e);
    }
    const size_t ev = used_;
    used_ += 2;
    CUDA_OK(cudaEventRecord(pool_[ev], stream_));
    fn();
    CUDA_OK(cudaEventRecord(pool_[ev + 1], stream_));
    records_.push_back({s, ev});
  }

  Backend<float>& in_;
  cudaStream_t stream_;
  bool on_ = false;
  std::vector<cudaEvent_t> pool_;
  size_t used_ = 0;
  std::vector<Record> records_;
};

}  // namespace

std::unique_ptr<OpProfiler> make_op_profiler(Backend<float>& cuda_backend) {
  return std::make_unique<Profiler>(cuda_backend);
}

}  // namespace cfp
