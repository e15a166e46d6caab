// Internal interface between the CUDA backend's translation units (attention, GEMM, the backend
// class, the op profiler). Not part of the engine's public API; included by .cu files and by the
// GPU benchmark, which links cfpipe_cuda.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "core/backend.h"

namespace cfp {
namespace cuda {

// ---- attention (attention_fp32.cu: scalar fp32, the parity reference; attention_bf16.cu:
// tensor-core bf16 with fp32 accumulation). dvec: Tq*B*H floats of scratch for the backward.
// out16 (optional): the forward also writes out's bf16 rounding there (same layout).
void attention_forward_fp32(cudaStream_t s, float* out, float* lse, const float* q, const float* k, const float* v,
                            const AttnShape& sh, const AttnMask& mask, float scale);
void attention_backward_fp32(cudaStream_t s, float* dq, float* dk, float* dv, float* dvec, const float* dout,
                             const float* q, const float* k, const float* v, const float* out, const float* lse,
                             const AttnShape& sh, const AttnMask& mask, float scale);
bool attention_bf16_supports(const AttnShape& sh);
size_t attention_bf16_workspace(const AttnShape& sh);  // bytes of `ws` the bf16 calls need
void attention_forward_bf16(cudaStream_t s, void* ws, float* out, void* out16, float* lse, const float* q, const float* k,
                            const float* v, const AttnShape& sh, const AttnMask& mask, float scale);
void attention_backward_bf16(cudaStream_t s, void* ws, float* dq, float* dk, float* dv, float* dvec, const float* dout,
                             const float* q, const float* k, const float* v, const float* out, const float* lse,
                             const AttnShape& sh, const AttnMask& mask, float scale);

// ---- GEMM (gemm.cu) ---------------------------------------------------------------------------
// How a GEMM computes: fp32 (the reference), bf16 operands rounded by our cast kernel then a bf16
// tensor-core GEMM (fp32 accumulation and output), or cuBLASLt's own fp32-in/bf16-compute mode.
enum class GemmMode { fp32, bf16_cast, bf16_fast };

// Row-major GEMMs on one stream (Backend::gemm's semantics), one algorithm per shape chosen once.
class Gemm {
 public:
  explicit Gemm(cudaStream_t stream);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;
  // a16, b16 (bf16_cast only, optional): A or B already rounded to a compact bf16 copy of the
  // stored matrix (the backend's kept copies), so that operand is not cast again. bias (optional,
  // bf16_cast only): C += bias on every row in cuBLASLt's epilogue, where it has an algorithm for
  // that; returns whether the bias was added (if not, the caller adds it).
  bool run(GemmMode mode, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const void* a16 = nullptr,
           const void* b16 = nullptr, const float* bias = nullptr);
  // Bare cuBLASLt on operands already in bf16 (the benchmark's reference); false without cuBLASLt.
  bool run_bf16_operands(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                         const void* B, int64_t ldb, float* C, int64_t ldc);
  // Rounds a [rows, cols] fp32 matrix (row stride ld) to a compact bf16 [rows, cols] array.
  void cast_bf16(void* dst, const float* src, int64_t rows, int64_t cols, int64_t ld);
  static const char* engine();  // "cublaslt" or "tiled"
  // How many times a cast scratch buffer moved (was freed for a larger one): a recorded launch
  // sequence that read the old one is stale.
  uint64_t scratch_moves() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- the backend (cuda_backend.cu) ------------------------------------------------------------
cudaStream_t stream_of(Backend<float>& cuda_backend);  // throws for a non-CUDA backend

}  // namespace cuda
}  // namespace cfp
