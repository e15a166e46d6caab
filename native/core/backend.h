// The op interface of the native engine. Model, objective and sampler code call only these
// ops, on pointers the backend allocated, so a CUDA backend can slot in beside the CPU one.
//
// Conventions (read these before adding an op):
// * All buffers are contiguous row-major arrays in backend memory; "[N, C]" means N rows of C.
// * Forward ops OVERWRITE their outputs.
// * Backward ops ACCUMULATE (+=) into every gradient they produce (inputs and parameters), as in
//   llm.c: the caller zeroes gradient buffers once per step, and residual branches simply add.
//   A gradient pointer may be nullptr where documented ("optional"), then it is not computed.
// * Reductions run in a fixed order, so results are bitwise reproducible for the same inputs and
//   thread count (the CPU backend's results are even independent of the thread count).
// * Token layout inside the model: [S, Lf, C] where S = frame slots (batch x frames) and Lf =
//   tokens per frame. Per-frame modulation vectors live in a table row per slot with row stride
//   `mod_stride` (elements between consecutive slots), so shift/scale/gate can point straight into
//   the [S, 6, D] modulation table.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace cfp {

// Which keys a query may see (spec §3.6). Positions are token indices inside one sample.
enum class MaskKind {
  full,             // every query sees every key (bidirectional; also the KV-cache path)
  block_causal,     // query in block b sees keys of blocks 0..b
  teacher_forcing,  // sequence = [clean copy ; noisy copy], each `half_tokens` long:
                    //   clean query in block b sees clean keys of blocks 0..b;
                    //   noisy query in block b sees clean keys of blocks 0..b-1 and noisy keys of block b.
};

struct AttnMask {
  MaskKind kind = MaskKind::full;
  int64_t block_tokens = 0;  // tokens per block = frames_per_block x tokens_per_frame (block masks)
  int64_t half_tokens = 0;   // teacher_forcing: tokens of one copy (clean first, then noisy)
  int64_t q_offset = 0;      // absolute index of query row 0 among the keys (block_causal only)
};

// Shapes of one attention call. q/out: [B, Tq, H*hd]; k/v: [B, kv_rows, H*hd] of which the first
// Tk rows are used (kv_rows >= Tk lets k/v point into a KV cache); lse: [B, H, Tq].
struct AttnShape {
  int64_t B = 1, Tq = 0, Tk = 0, H = 1, hd = 0;
  int64_t kv_rows = 0;  // 0 means Tk
  int64_t kv_stride() const { return kv_rows ? kv_rows : Tk; }
};

// True when query row i (0-based among the Tq queries) may attend to key j.
inline bool attn_allowed(const AttnMask& m, int64_t i, int64_t j) {
  switch (m.kind) {
    case MaskKind::full:
      return true;
    case MaskKind::block_causal:
      return j / m.block_tokens <= (i + m.q_offset) / m.block_tokens;
    case MaskKind::teacher_forcing: {
      const int64_t L = m.half_tokens;
      if (i < L) return j < L && j / m.block_tokens <= i / m.block_tokens;
      const int64_t bq = (i - L) / m.block_tokens;
      if (j < L) return j / m.block_tokens < bq;
      return (j - L) / m.block_tokens == bq;
    }
  }
  return false;
}

template <class T>
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // ---- memory -------------------------------------------------------------------------------
  // A buffer of n elements whose deleter frees it on this backend. Contents undefined.
  virtual std::shared_ptr<T> alloc(int64_t n) = 0;
  Tensor<T> empty(Shape shape) {
    std::shared_ptr<T> buffer = alloc(shape_numel(shape));  // before shape is moved from
    return Tensor<T>(std::move(buffer), std::move(shape));
  }
  Tensor<T> zeros(Shape shape) {
    Tensor<T> t = empty(std::move(shape));
    fill(t.data(), T(0), t.numel());
    return t;
  }
  virtual void upload(T* dst, const T* host_src, int64_t n) = 0;    // host -> backend
  virtual void download(T* host_dst, const T* src, int64_t n) = 0;  // backend -> host
  virtual void copy(T* dst, const T* src, int64_t n) = 0;
  virtual void fill(T* x, T value, int64_t n) = 0;
  // 2-D strided copy: rows x cols block; dst/src row strides ld_dst/ld_src (elements).
  // accumulate=true adds into dst instead of overwriting.
  virtual void copy2d(T* dst, int64_t ld_dst, const T* src, int64_t ld_src, int64_t rows, int64_t cols,
                      bool accumulate) = 0;

  // ---- recorded launch sequences ------------------------------------------------------------
  // Runs `launches`: a stretch of ops that only queues device work (no upload, download, host
  // reduction or allocation inside) and whose host code queues the same work every time for the
  // same (owner, key). `key()` names everything that work depends on apart from device memory
  // contents and the memory `owner` holds for its lifetime (its weights and workspaces): the
  // caller's pointers, shapes and by-value scalars; it is called only by a backend that records.
  // Such a backend may record the stretch and replay the recording for the same (owner, key)
  // without running the host code again (CUDA graphs, where kernel launches dominate a step).
  // The default runs it.
  virtual void run_recorded(const void* owner, const std::function<std::string()>& key,
                            const std::function<void()>& launches) {
    (void)owner, (void)key;
    launches();
  }
  // Drops the recordings of `owner`, whose memory is about to go.
  virtual void forget_recordings(const void* owner) { (void)owner; }

  // ---- random numbers -----------------------------------------------------------------------
  // dst[0, n) = the n standard normals a Philox stream at `at` draws (philox_fill_normal: floats,
  // converted to T); `at` is not advanced (draw_normal below also moves the stream). The default
  // draws on the host and uploads. A device backend may draw them itself with the same words and
  // the same double-precision Box-Muller; its log/sin/cos may differ from the host's in the last
  // bit of a double, which changes a float only when it lies that close to a rounding boundary.
  virtual void philox_normal(T* dst, int64_t n, const RngState& at) {
    if (n <= 0) return;
    std::vector<float> f(static_cast<size_t>(n));
    philox_fill_normal(at, f.data(), f.size());
    const std::vector<T> h(f.begin(), f.end());
    upload(dst, h.data(), n);
  }
  // n normals from `rng` at its position, which then moves past them: what a host fill_normal of
  // n values would draw and consume, wherever the backend draws them. Callers use this, not the
  // pair philox_normal + skip_fill, so the stream can never be left behind the draw.
  void draw_normal(T* dst, int64_t n, Philox& rng) {
    philox_normal(dst, n, rng.state());
    rng.skip_fill(static_cast<size_t>(n));
  }

  // ---- BLAS-like ----------------------------------------------------------------------------
  // C[M,N] = alpha * op(A) op(B) + beta * C, row-major; op(A) is [M,K] (A stored [K,M] when ta),
  // op(B) is [K,N] (B stored [N,K] when tb). beta == 0 overwrites C (NaNs in C are ignored);
  // beta == 1 accumulates.
  virtual void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                    const T* B, int64_t ldb, T beta, T* C, int64_t ldc) = 0;
  // C[M,N] = op(A) op(B) + bias (bias[n] added to every row; optional): gemm with alpha 1, beta 0,
  // then add_bias (the default; C contiguous, ldc == N, when there is a bias). A backend may fuse
  // the two.
  virtual void gemm_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B,
                         int64_t ldb, const T* bias, T* C, int64_t ldc) {
    CFP_CHECK(!bias || ldc == N, "gemm_bias: C must be contiguous (ldc %lld, N %lld)", static_cast<long long>(ldc),
              static_cast<long long>(N));
    gemm(ta, tb, M, N, K, T(1), A, lda, B, ldb, T(0), C, ldc);
    if (bias) add_bias(C, bias, M, N);
  }
  // out[n, c] += bias[c]
  virtual void add_bias(T* out, const T* bias, int64_t N, int64_t C) = 0;
  // dbias[c] += sum_n dout[n, c]
  virtual void bias_backward(T* dbias, const T* dout, int64_t N, int64_t C) = 0;

  // ---- element-wise and reductions ----------------------------------------------------------
  virtual void add(T* out, const T* a, const T* b, int64_t n) = 0;              // out = a + b
  virtual void axpy(T* y, T alpha, const T* x, int64_t n) = 0;                  // y += alpha x
  virtual void axpby(T* out, T alpha, const T* x, T beta, const T* y, int64_t n) = 0;  // out = a x + b y
  virtual void scale(T* x, T alpha, int64_t n) = 0;                             // x *= alpha
  virtual void mul_rows(T* x, const T* w, int64_t rows, int64_t cols) = 0;      // x[r, :] *= w[r]
  // Deterministic reductions, accumulated in double and returned to the host.
  virtual double sum_squares(const T* x, int64_t n) = 0;
  virtual double dot(const T* a, const T* b, int64_t n) = 0;
  virtual double sum_abs_diff(const T* a, const T* b, int64_t n) = 0;  // sum |a - b|

  // ---- activations --------------------------------------------------------------------------
  // GELU with the tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
  virtual void gelu_tanh_forward(T* out, const T* inp, int64_t n) = 0;
  virtual void gelu_tanh_backward(T* dinp, const T* inp, const T* dout, int64_t n) = 0;
  virtual void silu_forward(T* out, const T* inp, int64_t n) = 0;  // x * sigmoid(x)
  virtual void silu_backward(T* dinp, const T* inp, const T* dout, int64_t n) = 0;
  // Row-wise softmax over C columns; backward uses the forward output.
  virtual void softmax_forward(T* out, const T* inp, int64_t N, int64_t C) = 0;
  virtual void softmax_backward(T* dinp, const T* out, const T* dout, int64_t N, int64_t C) = 0;

  // ---- normalisation ------------------------------------------------------------------------
  // LayerNorm over C: out = (x - mean) * rstd [* weight + bias]. weight/bias optional (nullptr =
  // no affine). mean/rstd: [N], saved for the backward. dweight/dbias optional.
  virtual void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                                 int64_t N, int64_t C, double eps) = 0;
  virtual void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                                  const T* mean, const T* rstd, int64_t N, int64_t C) = 0;
  // RMSNorm over C: out = x * rstd * weight, rstd = 1/sqrt(mean(x^2) + eps).
  virtual void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, int64_t N, int64_t C,
                               double eps) = 0;
  virtual void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight,
                                const T* rstd, int64_t N, int64_t C) = 0;

  // ---- per-frame modulation (adaLN) ---------------------------------------------------------
  // out[s, l, c] = inp[s, l, c] * (1 + scale[s*mod_stride + c]) + shift[s*mod_stride + c]
  virtual void modulate_forward(T* out, const T* inp, const T* shift, const T* scale, int64_t mod_stride,
                                int64_t S, int64_t Lf, int64_t C) = 0;
  // dshift/dscale (same stride as shift/scale) and dinp accumulate; any may be nullptr.
  virtual void modulate_backward(T* dinp, T* dshift, T* dscale, const T* dout, const T* inp, const T* scale,
                                 int64_t mod_stride, int64_t S, int64_t Lf, int64_t C) = 0;
  // x[s, l, c] += gate[s*mod_stride + c] * y[s, l, c]
  virtual void gate_residual_forward(T* x, const T* y, const T* gate, int64_t mod_stride, int64_t S, int64_t Lf,
                                     int64_t C) = 0;
  // Given dx (the gradient flowing through the residual): dy += dx * gate; dgate += sum_l dx * y.
  virtual void gate_residual_backward(T* dy, T* dgate, const T* dx, const T* y, const T* gate,
                                      int64_t mod_stride, int64_t S, int64_t Lf, int64_t C) = 0;

  // ---- rotary position embedding -------------------------------------------------------------
  // x: [N, H*hd]; each head's adjacent pairs (2i, 2i+1) are rotated by the per-token angle whose
  // cos/sin are given in tables [N, hd/2] (shared by all heads). The backward is the inverse
  // rotation (accumulated into dinp). out may alias inp in the forward.
  virtual void rope_forward(T* out, const T* inp, const T* cos, const T* sin, int64_t N, int64_t H,
                            int64_t hd) = 0;
  virtual void rope_backward(T* dinp, const T* dout, const T* cos, const T* sin, int64_t N, int64_t H,
                             int64_t hd) = 0;

  // ---- attention -----------------------------------------------------------------------------
  // out = softmax(scale q k^T + mask) v per batch and head; lse [B, H, Tq] = log-sum-exp of the
  // scaled logits (saved for the backward, which recomputes the probabilities). A query that sees
  // no key gets out = 0 and lse = -inf.
  virtual void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttnShape& shape,
                                 const AttnMask& mask, double scale) = 0;
  // dq, dk, dv accumulate (dk/dv use the same kv_rows layout as k/v; dk/dv may be nullptr).
  virtual void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                                  const T* out, const T* lse, const AttnShape& shape, const AttnMask& mask,
                                  double scale) = 0;

  // ---- embeddings and (un)patchify ----------------------------------------------------------
  // Sinusoidal embedding of t (no gradient w.r.t. t): out[n, i] = cos(t[n] w_i) for i < dim/2 and
  // out[n, dim/2 + i] = sin(t[n] w_i), w_i = 10000^(-i/(dim/2)), computed in double.
  virtual void timestep_embedding(T* out, const T* t, int64_t N, int64_t dim) = 0;
  // x [B, F, C, H, W] -> tokens [B, F, H/ph, W/pw, C*ph*pw], patch vector ordered (c, q, r) with r
  // fastest (the Conv3d weight order [D, C, 1, ph, pw]).
  virtual void patchify(T* tokens, const T* x, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W,
                        int64_t ph, int64_t pw) = 0;
  virtual void patchify_backward(T* dx, const T* dtokens, int64_t B, int64_t F, int64_t C, int64_t H,
                                 int64_t W, int64_t ph, int64_t pw) = 0;
  // tokens [B, F, H/ph, W/pw, ph*pw*C] with c fastest (the head's output order, spec §4.2 step 6)
  // -> x [B, F, C, H, W].
  virtual void unpatchify(T* x, const T* tokens, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W,
                          int64_t ph, int64_t pw) = 0;
  virtual void unpatchify_backward(T* dtokens, const T* dx, int64_t B, int64_t F, int64_t C, int64_t H,
                                   int64_t W, int64_t ph, int64_t pw) = 0;
};

}  // namespace cfp
