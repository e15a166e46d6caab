// GEMMs of the CUDA backend: cuBLASLt where the toolkit has it (one algorithm per shape and mode,
// chosen once by the heuristic, so the summation order is fixed), else our tiled kernel. Modes (see
// kernels.h): fp32; bf16_cast, where our kernel rounds both operands to compact bf16 copies and
// cuBLASLt runs a bf16 tensor-core GEMM with fp32 accumulation and fp32 output; bf16_fast, where
// cuBLASLt takes the fp32 operands with CUBLAS_COMPUTE_32F_FAST_16BF. The tiled fallback rounds its
// operands to bf16 in both bf16 modes, so the engines agree on what a bf16 GEMM means.
#include <cuda_bf16.h>

#include <map>
#include <tuple>

#include "cuda/cuda_common.cuh"
#include "cuda/kernels.h"

#ifdef CFPIPE_HAVE_CUBLASLT
#include <cublasLt.h>
#endif

namespace cfp {
namespace cuda {

namespace {

// ---- tiled GEMM (fallback where cuBLASLt is absent) ------------------------------------------
// 64x64 output tile per block of 256 threads, 4x4 outputs per thread, K in steps of 16. Every C
// element sums its K products in ascending order: deterministic.
constexpr int kTM = 64, kTN = 64, kTK = 16;

template <bool kRoundBf16>
__device__ __forceinline__ float operand(float x) {
  return kRoundBf16 ? __bfloat162float(__float2bfloat16_rn(x)) : x;
}

template <bool kRoundBf16>
__global__ void k_gemm_tiled(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                             int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  __shared__ float As[kTK][kTM + 1];
  __shared__ float Bs[kTK][kTN + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = blockIdx.y * int64_t(kTM), n0 = blockIdx.x * int64_t(kTN);
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kTK) {
    for (int x = threadIdx.x; x < kTK * kTM; x += 256) {
      const int kk = x / kTM, mm = x % kTM;
      const int64_t gm = m0 + mm, gk = k0 + kk;
      As[kk][mm] = (gm < M && gk < K) ? operand<kRoundBf16>(ta ? A[gk * lda + gm] : A[gm * lda + gk]) : 0.f;
      const int nn = mm;
      const int64_t gn = n0 + nn;
      Bs[kk][nn] = (gn < N && gk < K) ? operand<kRoundBf16>(tb ? B[gn * ldb + gk] : B[gk * ldb + gn]) : 0.f;
    }
    __syncthreads();
    for (int kk = 0; kk < kTK; ++kk) {
      float a[4], bv[4];
      for (int r = 0; r < 4; ++r) a[r] = As[kk][ty * 4 + r];
      for (int c = 0; c < 4; ++c) bv[c] = Bs[kk][tx * 4 + c];
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) acc[r][c] += a[r] * bv[c];
    }
    __syncthreads();
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) {
      const int64_t gm = m0 + ty * 4 + r, gn = n0 + tx * 4 + c;
      if (gm < M && gn < N) {
        float* cp = C + gm * ldc + gn;
        *cp = beta == 0.f ? alpha * acc[r][c] : alpha * acc[r][c] + beta * *cp;
      }
    }
}

// Compact bf16 copy of a strided fp32 matrix; 4 columns per thread where rows allow 16-byte loads.
__global__ void k_cast_bf16(__nv_bfloat16* dst, const float* src, int64_t rows, int64_t cols, int64_t ld) {
  const bool vec = cols % 4 == 0 && ld % 4 == 0 && (reinterpret_cast<uintptr_t>(src) % 16) == 0;
  const int64_t per_row = vec ? cols / 4 : cols, n = rows * per_row;
  for (int64_t x = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; x < n; x += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = x / per_row, c = x % per_row;
    if (vec) {
      const float4 f = *reinterpret_cast<const float4*>(src + r * ld + 4 * c);
      __nv_bfloat162* d = reinterpret_cast<__nv_bfloat162*>(dst + r * cols + 4 * c);
      d[0] = __floats2bfloat162_rn(f.x, f.y);
      d[1] = __floats2bfloat162_rn(f.z, f.w);
    } else {
      dst[r * cols + c] = __float2bfloat16_rn(src[r * ld + c]);
    }
  }
}

}  // namespace

struct Gemm::Impl {
  cudaStream_t stream;
  __nv_bfloat16* cast_buf[2] = {nullptr, nullptr};  // the A and B copies of bf16_cast
  int64_t cast_cap[2] = {0, 0};
  uint64_t scratch_moves = 0;

  __nv_bfloat16* cast_scratch(int which, int64_t n) {
    if (n > cast_cap[which]) {
      CUDA_OK(cudaStreamSynchronize(stream));
      cudaFree(cast_buf[which]);
      cast_buf[which] = nullptr;
      CUDA_OK(cudaMalloc(&cast_buf[which], size_t(n) * sizeof(__nv_bfloat16)));
      cast_cap[which] = n;
      ++scratch_moves;
    }
    return cast_buf[which];
  }

#ifdef CFPIPE_HAVE_CUBLASLT
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: B goes first.
  static constexpr size_t kWorkspace = size_t(32) << 20;
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool ok = false;
  };
  using Key = std::tuple<int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>;
  cublasLtHandle_t lt = nullptr;
  void* ws = nullptr;
  std::map<Key, Plan> plans;

  static void destroy(Plan& p) {
    if (p.op) cublasLtMatmulDescDestroy(p.op);
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.c) cublasLtMatrixLayoutDestroy(p.c);
  }
  // mode decides the operand type (bf16_cast: bf16 operands) and the compute type; bias: the bias
  // epilogue (an fp32 vector over C's columns, i.e. over the rows of the column-major result).
  Plan make_plan(GemmMode mode, bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb,
                 int64_t ldc, bool bias) {
    Plan p;
    auto ok = [](cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; };
    const cublasComputeType_t compute = mode == GemmMode::bf16_fast ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
    const cudaDataType_t in = mode == GemmMode::bf16_cast ? CUDA_R_16BF : CUDA_R_32F;
    if (!ok(cublasLtMatmulDescCreate(&p.op, compute, CUDA_R_32F))) return p;
    cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa));
    cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb));
    if (bias) {
      const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
      if (!ok(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)))) return p;
    }
    // First operand (our B): column-major N x K (or K x N when transposed), ld = ldb.
    if (!ok(cublasLtMatrixLayoutCreate(&p.a, in, tb ? K : N, tb ? N : K, ldb))) return p;
    if (!ok(cublasLtMatrixLayoutCreate(&p.b, in, ta ? M : K, ta ? K : M, lda))) return p;
    if (!ok(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, N, M, ldc))) return p;
    cublasLtMatmulPreference_t pref = nullptr;
    if (!ok(cublasLtMatmulPreferenceCreate(&pref))) return p;
    size_t wsb = kWorkspace;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb));
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    const bool got = ok(cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.c, p.c, pref, 1, &res, &found));
    cublasLtMatmulPreferenceDestroy(pref);
    if (got && found > 0) {
      p.algo = res.algo;
      p.ok = true;
    }
    return p;
  }
  // false: no algorithm for this shape (the tiled kernel takes it), or none with the bias epilogue
  // (the caller runs it without).
  bool matmul(GemmMode mode, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
              int64_t lda, const void* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias = nullptr) {
    const Key key{int(mode), ta, tb, M, N, K, lda, ldb, ldc, bias != nullptr};
    auto it = plans.find(key);
    if (it == plans.end()) it = plans.emplace(key, make_plan(mode, ta, tb, M, N, K, lda, ldb, ldc, bias != nullptr)).first;
    Plan& p = it->second;
    if (!p.ok) return false;
    if (bias && !ok(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)))) {
      p.ok = false;
      return false;
    }
    const cublasStatus_t st =
        cublasLtMatmul(lt, p.op, &alpha, B, p.a, A, p.b, &beta, C, p.c, C, p.c, &p.algo, ws, kWorkspace, stream);
    if (bias && st != CUBLAS_STATUS_SUCCESS) {  // refused before running: never try this shape with a bias again
      p.ok = false;
      return false;
    }
    CFP_CHECK(st == CUBLAS_STATUS_SUCCESS, "cuBLASLt matmul failed (status %d)", int(st));
    return true;
  }
  static bool ok(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; }
#endif
};

Gemm::Gemm(cudaStream_t stream) : impl_(new Impl) {
  impl_->stream = stream;
#ifdef CFPIPE_HAVE_CUBLASLT
  CFP_CHECK(cublasLtCreate(&impl_->lt) == CUBLAS_STATUS_SUCCESS, "cuBLASLt could not be initialised");
  CUDA_OK(cudaMalloc(&impl_->ws, Impl::kWorkspace));
#endif
}

uint64_t Gemm::scratch_moves() const { return impl_->scratch_moves; }

Gemm::~Gemm() {
  cudaStreamSynchronize(impl_->stream);
#ifdef CFPIPE_HAVE_CUBLASLT
  for (auto& kv : impl_->plans) Impl::destroy(kv.second);
  cudaFree(impl_->ws);
  cublasLtDestroy(impl_->lt);
#endif
  cudaFree(impl_->cast_buf[0]);
  cudaFree(impl_->cast_buf[1]);
}

const char* Gemm::engine() {
#ifdef CFPIPE_HAVE_CUBLASLT
  return "cublaslt";
#else
  return "tiled";
#endif
}

void Gemm::cast_bf16(void* dst, const float* src, int64_t rows, int64_t cols, int64_t ld) {
  if (rows <= 0 || cols <= 0) return;
  k_cast_bf16<<<grid_for(rows * cols / 4 + 1), kThreads, 0, impl_->stream>>>(static_cast<__nv_bfloat16*>(dst), src,
                                                                            rows, cols, ld);
  check_launch("cast_bf16");
}

bool Gemm::run(GemmMode mode, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const void* a16in,
               const void* b16in, const float* bias) {
#ifdef CFPIPE_HAVE_CUBLASLT
  if (mode == GemmMode::bf16_cast) {
    // The stored matrices (A is [K, M] when ta, B is [N, K] when tb) become compact bf16 copies.
    const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    const void* a16 = a16in;
    if (!a16) {
      __nv_bfloat16* a = impl_->cast_scratch(0, ar * ac);
      cast_bf16(a, A, ar, ac, lda);
      a16 = a;
    }
    const void* b16 = b16in;
    if (!b16) {
      __nv_bfloat16* b = impl_->cast_scratch(1, br * bc);
      cast_bf16(b, B, br, bc, ldb);
      b16 = b;
    }
    if (bias && impl_->matmul(mode, ta, tb, M, N, K, alpha, a16, ac, b16, bc, beta, C, ldc, bias)) return true;
    if (impl_->matmul(mode, ta, tb, M, N, K, alpha, a16, ac, b16, bc, beta, C, ldc)) return false;
  } else if (impl_->matmul(mode, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) {
    return false;
  }
#endif
  (void)a16in, (void)b16in, (void)bias;  // the tiled kernel rounds its operands itself
  dim3 grid(unsigned((N + kTN - 1) / kTN), unsigned((M + kTM - 1) / kTM));
  if (mode == GemmMode::fp32)
    k_gemm_tiled<false><<<grid, 256, 0, impl_->stream>>>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    k_gemm_tiled<true><<<grid, 256, 0, impl_->stream>>>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  check_launch("gemm_tiled");
  return false;
}

bool Gemm::run_bf16_operands(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda,
                             const void* B, int64_t ldb, float* C, int64_t ldc) {
#ifdef CFPIPE_HAVE_CUBLASLT
  return impl_->matmul(GemmMode::bf16_cast, ta, tb, M, N, K, 1.f, A, lda, B, ldb, 0.f, C, ldc);
#else
  (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)C, (void)ldc;
  return false;
#endif
}

}  // namespace cuda
}  // namespace cfp
