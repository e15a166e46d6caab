// The CUDA backend: every op of core/backend.h on device memory (see cuda_backend.h).
//
// Layout of this file: helpers (errors, launch shapes, warp reductions), element-wise kernels
// written as device lambdas over a grid-stride loop, row kernels (one warp per row), segmented
// column sums (two passes through a double scratch buffer, fixed chunking), attention (one warp
// per query or key, K/V or Q/dO tiles in shared memory, online softmax), the GEMM (cuBLASLt or
// our tiled kernel), and the backend class that binds them to the interface.
//
// Determinism: no float atomics anywhere. Every output element and every reduction is computed
// by one thread, warp or block in an order fixed by the shapes alone, so results are bitwise
// reproducible on one GPU.
#include "cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <tuple>
#include <vector>

#ifdef CFPIPE_HAVE_CUBLASLT
#include <cublasLt.h>
#endif

#define CUDA_OK(call)                                                                         \
  do {                                                                                        \
    cudaError_t err_ = (call);                                                                \
    if (err_ != cudaSuccess) CFP_THROW("CUDA: %s (%s)", cudaGetErrorString(err_), #call);     \
  } while (0)

namespace cfp {

namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = 8;  // row and attention kernels: 8 warps, one row/query/key each

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535LL * 16)));
}

inline void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) CFP_THROW("CUDA kernel %s failed to launch: %s", what, cudaGetErrorString(e));
}

// Butterfly sum: every lane ends with the same value (a + b == b + a in IEEE arithmetic).
template <class V>
__device__ __forceinline__ V warp_sum(V v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ---- element-wise ----------------------------------------------------------------------------

template <class Fn>
__global__ void k_elems(int64_t n, Fn fn) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) fn(i);
}

// ---- one warp per row ------------------------------------------------------------------------

template <class Fn>
__global__ void k_rows(int64_t N, Fn fn) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  if (row < N) fn(row, int(threadIdx.x % 32));
}

// ---- segmented column sums -------------------------------------------------------------------
// out(s, c, sum) receives sum_{l < L} f(s * L + l, c) for s < S, c < C. Pass 1 splits each
// segment into `chunks` fixed row ranges and writes double partials; pass 2 adds them in order.

template <class Fn>
__global__ void k_segsum_partial(double* part, int64_t S, int64_t L, int64_t C, int64_t chunks, int64_t rows_per,
                                 Fn f) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t sc = blockIdx.y;  // s * chunks + chunk
  if (c >= C) return;
  const int64_t s = sc / chunks, chunk = sc % chunks;
  const int64_t l0 = chunk * rows_per, l1 = min(L, l0 + rows_per);
  double acc = 0;
  for (int64_t l = l0; l < l1; ++l) acc += f(s * L + l, c);
  part[sc * C + c] = acc;
}

template <class Out>
__global__ void k_segsum_final(const double* part, int64_t S, int64_t C, int64_t chunks, Out out) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= S * C) return;
  const int64_t s = i / C, c = i % C;
  double acc = 0;
  for (int64_t k = 0; k < chunks; ++k) acc += part[(s * chunks + k) * C + c];
  out(s, c, acc);
}

// ---- scalar reductions -----------------------------------------------------------------------

constexpr int kReduceBlocks = 256;

template <class Fn>
__global__ void k_reduce_partial(double* part, int64_t n, Fn fn) {
  __shared__ double sh[kThreads];
  double acc = 0;
  for (int64_t i = blockIdx.x * int64_t(kThreads) + threadIdx.x; i < n; i += int64_t(kReduceBlocks) * kThreads)
    acc += fn(i);
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    if (int(threadIdx.x) < w) sh[threadIdx.x] += sh[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

__global__ void k_reduce_final(double* part) {
  __shared__ double sh[kReduceBlocks];
  sh[threadIdx.x] = part[threadIdx.x];
  __syncthreads();
  for (int w = kReduceBlocks / 2; w > 0; w >>= 1) {
    if (int(threadIdx.x) < w) sh[threadIdx.x] += sh[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) part[kReduceBlocks] = sh[0];
}

// ---- attention -------------------------------------------------------------------------------

// Up to two contiguous key ranges a query may see (same derivation as the CPU backend).
struct Ranges {
  int64_t lo0 = 0, hi0 = 0, lo1 = 0, hi1 = 0;
  __device__ bool has(int64_t j) const { return (j >= lo0 && j < hi0) || (j >= lo1 && j < hi1); }
  __device__ bool empty() const { return hi0 <= lo0 && hi1 <= lo1; }
  __device__ bool overlaps(int64_t a, int64_t b) const {  // [a, b)
    return (lo0 < hi0 && lo0 < b && a < hi0) || (lo1 < hi1 && lo1 < b && a < hi1);
  }
};

// Keys and values [j0, j1) of one head into shared memory (rows of hd), by the whole block; the
// forward and both backward passes walk keys in these tiles.
__device__ __forceinline__ void load_kv_tile(float* ks, float* vs, const float* kb, const float* vb, int64_t j0,
                                             int64_t j1, int64_t hd, int64_t D) {
  for (int64_t x = threadIdx.x; x < (j1 - j0) * hd; x += blockDim.x) {
    const int64_t r = x / hd, d = x % hd;
    ks[x] = kb[(j0 + r) * D + d];
    vs[x] = vb[(j0 + r) * D + d];
  }
  __syncthreads();
}

__device__ Ranges key_ranges(const AttnMask& m, int64_t i, int64_t Tk) {
  Ranges r;
  auto clampr = [&](int64_t lo, int64_t hi, int64_t& olo, int64_t& ohi) {
    olo = lo < 0 ? 0 : lo;
    ohi = min(Tk, hi);
    if (ohi < olo) ohi = olo;
  };
  switch (m.kind) {
    case MaskKind::full:
      clampr(0, Tk, r.lo0, r.hi0);
      break;
    case MaskKind::block_causal:
      clampr(0, ((i + m.q_offset) / m.block_tokens + 1) * m.block_tokens, r.lo0, r.hi0);
      break;
    case MaskKind::teacher_forcing: {
      const int64_t L = m.half_tokens, bt = m.block_tokens;
      if (i < L) {
        clampr(0, min(L, (i / bt + 1) * bt), r.lo0, r.hi0);
      } else {
        const int64_t b = (i - L) / bt;
        clampr(0, min(L, b * bt), r.lo0, r.hi0);
        clampr(L + b * bt, L + min(L, (b + 1) * bt), r.lo1, r.hi1);
      }
      break;
    }
  }
  return r;
}

// The queries that may see key j: at most two contiguous ranges, the transpose of key_ranges
// (derived from attn_allowed), so the dk/dv pass tests no mask per (query, key) pair.
__device__ Ranges query_ranges(const AttnMask& m, int64_t j, int64_t Tq) {
  Ranges r;
  auto clampr = [&](int64_t lo, int64_t hi, int64_t& olo, int64_t& ohi) {
    olo = lo < 0 ? 0 : lo;
    ohi = min(Tq, hi);
    if (ohi < olo) ohi = olo;
  };
  switch (m.kind) {
    case MaskKind::full:
      clampr(0, Tq, r.lo0, r.hi0);
      break;
    case MaskKind::block_causal:  // (i + q_offset) / bt >= j / bt
      clampr((j / m.block_tokens) * m.block_tokens - m.q_offset, Tq, r.lo0, r.hi0);
      break;
    case MaskKind::teacher_forcing: {
      const int64_t L = m.half_tokens, bt = m.block_tokens;
      if (j < L) {  // clean key: clean queries of its block and later, noisy queries of later blocks
        clampr((j / bt) * bt, L, r.lo0, r.hi0);
        clampr(L + (j / bt + 1) * bt, 2 * L, r.lo1, r.hi1);
      } else {  // noisy key: the noisy queries of its own block
        const int64_t b = (j - L) / bt;
        clampr(L + b * bt, min(2 * L, L + (b + 1) * bt), r.lo0, r.hi0);
      }
      break;
    }
  }
  return r;
}

// Forward: block = 8 warps = 8 consecutive queries of one (b, h); keys staged KT at a time.
// EPL = head-dim elements per lane (hd <= 32 * EPL); lane holds dims lane + 32 e.
template <int EPL, int KT>
__global__ void k_attn_fwd(float* out, float* lse, const float* q, const float* k, const float* v, AttnShape sh,
                           AttnMask mask, float scale) {
  extern __shared__ float smem[];
  float* ks = smem;               // [KT][hd]
  float* vs = smem + KT * sh.hd;  // [KT][hd]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t i = blockIdx.x * int64_t(kWarpsPerBlock) + warp;
  const int64_t D = sh.H * sh.hd, hd = sh.hd, kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
  const bool active = i < sh.Tq;
  Ranges rg;
  if (active) rg = key_ranges(mask, i, sh.Tk);
  float qv[EPL], acc[EPL];
  for (int e = 0; e < EPL; ++e) {
    const int64_t d = lane + 32 * e;
    qv[e] = (active && d < hd) ? q[(b * sh.Tq + i) * D + h * hd + d] : 0.f;
    acc[e] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  const float* kb = k + b * kvs * D + h * hd;
  const float* vb = v + b * kvs * D + h * hd;
  for (int64_t j0 = 0; j0 < sh.Tk; j0 += KT) {
    const int64_t j1 = min(sh.Tk, j0 + KT);
    const bool mine = active && rg.overlaps(j0, j1);
    if (!__syncthreads_or(mine)) continue;
    load_kv_tile(ks, vs, kb, vb, j0, j1, hd, D);
    if (mine) {
      for (int64_t j = j0; j < j1; ++j) {
        if (!rg.has(j)) continue;
        const float* kr = ks + (j - j0) * hd;
        float part = 0.f;
        for (int e = 0; e < EPL; ++e) {
          const int64_t d = lane + 32 * e;
          if (d < hd) part += qv[e] * kr[d];
        }
        const float s = scale * warp_sum(part);
        if (s > m) {
          const float corr = expf(m - s);
          l *= corr;
          for (int e = 0; e < EPL; ++e) acc[e] *= corr;
          m = s;
        }
        const float p = expf(s - m);
        l += p;
        const float* vr = vs + (j - j0) * hd;
        for (int e = 0; e < EPL; ++e) {
          const int64_t d = lane + 32 * e;
          if (d < hd) acc[e] += p * vr[d];
        }
      }
    }
    __syncthreads();
  }
  if (!active) return;
  const bool none = rg.empty();
  for (int e = 0; e < EPL; ++e) {
    const int64_t d = lane + 32 * e;
    if (d < hd) out[(b * sh.Tq + i) * D + h * hd + d] = none ? 0.f : acc[e] / l;
  }
  if (lane == 0) lse[(b * sh.H + h) * sh.Tq + i] = none ? -INFINITY : m + logf(l);
}

// Backward pass 1: per query warp, Di = dO_i . O_i (saved to dvec) and dq_i += sum_j ds_ij k_j.
template <int EPL, int KT>
__global__ void k_attn_bwd_dq(float* dq, float* dvec, const float* dout, const float* q, const float* k,
                              const float* v, const float* out, const float* lse, AttnShape sh, AttnMask mask,
                              float scale) {
  extern __shared__ float smem[];
  float* ks = smem;
  float* vs = smem + KT * sh.hd;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t i = blockIdx.x * int64_t(kWarpsPerBlock) + warp;
  const int64_t D = sh.H * sh.hd, hd = sh.hd, kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
  bool active = i < sh.Tq;
  float li = 0.f;
  Ranges rg;
  float qv[EPL], dov[EPL], acc[EPL];
  float Di = 0.f;
  if (active) {
    li = lse[(b * sh.H + h) * sh.Tq + i];
    float part = 0.f;
    for (int e = 0; e < EPL; ++e) {
      const int64_t d = lane + 32 * e;
      const int64_t off = (b * sh.Tq + i) * D + h * hd + d;
      qv[e] = d < hd ? q[off] : 0.f;
      dov[e] = d < hd ? dout[off] : 0.f;
      if (d < hd) part += dov[e] * out[off];
      acc[e] = 0.f;
    }
    Di = warp_sum(part);
    if (lane == 0) dvec[(b * sh.H + h) * sh.Tq + i] = Di;
    if (isinf(li)) active = false;  // the query saw no key
    else rg = key_ranges(mask, i, sh.Tk);
  }
  const float* kb = k + b * kvs * D + h * hd;
  const float* vb = v + b * kvs * D + h * hd;
  for (int64_t j0 = 0; j0 < sh.Tk; j0 += KT) {
    const int64_t j1 = min(sh.Tk, j0 + KT);
    const bool mine = active && rg.overlaps(j0, j1);
    if (!__syncthreads_or(mine)) continue;
    load_kv_tile(ks, vs, kb, vb, j0, j1, hd, D);
    if (mine) {
      for (int64_t j = j0; j < j1; ++j) {
        if (!rg.has(j)) continue;
        const float* kr = ks + (j - j0) * hd;
        const float* vr = vs + (j - j0) * hd;
        float ps = 0.f, pd = 0.f;
        for (int e = 0; e < EPL; ++e) {
          const int64_t d = lane + 32 * e;
          if (d < hd) {
            ps += qv[e] * kr[d];
            pd += dov[e] * vr[d];
          }
        }
        const float p = expf(scale * warp_sum(ps) - li);
        const float ds = p * (warp_sum(pd) - Di) * scale;
        for (int e = 0; e < EPL; ++e) {
          const int64_t d = lane + 32 * e;
          if (d < hd) acc[e] += ds * kr[d];
        }
      }
    }
    __syncthreads();
  }
  if (!active) return;
  for (int e = 0; e < EPL; ++e) {
    const int64_t d = lane + 32 * e;
    if (d < hd) dq[(b * sh.Tq + i) * D + h * hd + d] += acc[e];
  }
}

// Backward pass 2: per key warp, dv_j += sum_i p_ij dO_i and dk_j += sum_i ds_ij q_i over the
// queries that see key j; Q/dO staged QT at a time.
template <int EPL, int QT>
__global__ void k_attn_bwd_dkv(float* dk, float* dv, const float* dvec, const float* dout, const float* q,
                               const float* k, const float* v, const float* lse, AttnShape sh, AttnMask mask,
                               float scale) {
  extern __shared__ float smem[];
  float* qs = smem;               // [QT][hd]
  float* ds_ = smem + QT * sh.hd;  // [QT][hd] dO
  __shared__ float ls[QT], dd[QT];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t j = blockIdx.x * int64_t(kWarpsPerBlock) + warp;
  const int64_t D = sh.H * sh.hd, hd = sh.hd, kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
  const bool active = j < sh.Tk;
  Ranges qr_;
  if (active) qr_ = query_ranges(mask, j, sh.Tq);
  float kv_[EPL], vv[EPL], ak[EPL], av[EPL];
  for (int e = 0; e < EPL; ++e) {
    const int64_t d = lane + 32 * e;
    const int64_t off = (b * kvs + j) * D + h * hd + d;
    kv_[e] = (active && d < hd) ? k[off] : 0.f;
    vv[e] = (active && d < hd) ? v[off] : 0.f;
    ak[e] = av[e] = 0.f;
  }
  for (int64_t i0 = 0; i0 < sh.Tq; i0 += QT) {
    const int64_t i1 = min(sh.Tq, i0 + QT);
    const bool mine = active && qr_.overlaps(i0, i1);
    if (!__syncthreads_or(mine)) continue;
    for (int64_t x = threadIdx.x; x < (i1 - i0) * hd; x += blockDim.x) {
      const int64_t r = x / hd, d = x % hd;
      qs[x] = q[(b * sh.Tq + i0 + r) * D + h * hd + d];
      ds_[x] = dout[(b * sh.Tq + i0 + r) * D + h * hd + d];
    }
    for (int64_t x = threadIdx.x; x < i1 - i0; x += blockDim.x) {
      ls[x] = lse[(b * sh.H + h) * sh.Tq + i0 + x];
      dd[x] = dvec[(b * sh.H + h) * sh.Tq + i0 + x];
    }
    __syncthreads();
    if (mine) {
      for (int64_t i = i0; i < i1; ++i) {
        const float li = ls[i - i0];
        if (isinf(li) || !qr_.has(i)) continue;
        const float* qr = qs + (i - i0) * hd;
        const float* dr = ds_ + (i - i0) * hd;
        float ps = 0.f, pd = 0.f;
        for (int e = 0; e < EPL; ++e) {
          const int64_t d = lane + 32 * e;
          if (d < hd) {
            ps += qr[d] * kv_[e];
            pd += dr[d] * vv[e];
          }
        }
        const float p = expf(scale * warp_sum(ps) - li);
        const float dsv = p * (warp_sum(pd) - dd[i - i0]) * scale;
        for (int e = 0; e < EPL; ++e) {
          const int64_t d = lane + 32 * e;
          if (d < hd) {
            av[e] += p * dr[d];
            ak[e] += dsv * qr[d];
          }
        }
      }
    }
    __syncthreads();
  }
  if (!active) return;
  for (int e = 0; e < EPL; ++e) {
    const int64_t d = lane + 32 * e;
    if (d >= hd) continue;
    const int64_t off = (b * kvs + j) * D + h * hd + d;
    if (dk) dk[off] += ak[e];
    if (dv) dv[off] += av[e];
  }
}

// ---- tiled GEMM (fallback where cuBLASLt is absent) ------------------------------------------
// 64x64 output tile per block of 256 threads, 4x4 outputs per thread, K in steps of 16. Every C
// element sums its K products in ascending order: deterministic.
constexpr int kTM = 64, kTN = 64, kTK = 16;

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
      As[kk][mm] = (gm < M && gk < K) ? (ta ? A[gk * lda + gm] : A[gm * lda + gk]) : 0.f;
      const int nn = mm;
      const int64_t gn = n0 + nn;
      Bs[kk][nn] = (gn < N && gk < K) ? (tb ? B[gn * ldb + gk] : B[gk * ldb + gn]) : 0.f;
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

// ---- the backend -----------------------------------------------------------------------------

class CudaBackend final : public Backend<float> {
 public:
  explicit CudaBackend(int device) : device_(device) {
    std::string why;
    const int n = cuda_device_count(&why);
    CFP_CHECK(n > 0, "no CUDA device: %s", why.c_str());
    CFP_CHECK(device >= 0 && device < n, "CUDA device %d does not exist (%d found)", device, n);
    CUDA_OK(cudaSetDevice(device));
    CUDA_OK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_OK(cudaMalloc(&reduce_buf_, (kReduceBlocks + 1) * sizeof(double)));
#ifdef CFPIPE_HAVE_CUBLASLT
    CFP_CHECK(cublasLtCreate(&lt_) == CUBLAS_STATUS_SUCCESS, "cuBLASLt could not be initialised");
    CUDA_OK(cudaMalloc(&lt_ws_, kLtWorkspace));
#endif
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
#ifdef CFPIPE_HAVE_CUBLASLT
    for (auto& kv : lt_plans_) destroy_plan(kv.second);
    cudaFree(lt_ws_);
    cublasLtDestroy(lt_);
#endif
    cudaFree(reduce_buf_);
    cudaFree(seg_buf_);
    cudaFree(vec_buf_);
    cudaStreamDestroy(stream_);
  }
  std::string name() const override { return "cuda:" + std::to_string(device_); }
  void synchronize() { CUDA_OK(cudaStreamSynchronize(stream_)); }

  // ---- memory ----
  std::shared_ptr<float> alloc(int64_t n) override {
    CFP_CHECK(n >= 0, "cannot allocate %lld elements", static_cast<long long>(n));
    void* p = nullptr;
    const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float);
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear the sticky-free error state
      CFP_THROW("out of GPU memory allocating %zu bytes on cuda:%d (%s)", bytes, device_, cudaGetErrorString(e));
    }
    cudaStream_t s = stream_;
    return std::shared_ptr<float>(static_cast<float*>(p), [s](float* q) {
      cudaStreamSynchronize(s);  // work queued on the buffer finishes before it is freed
      cudaFree(q);
    });
  }
  void upload(float* dst, const float* src, int64_t n) override {
    if (n <= 0) return;
    CUDA_OK(cudaMemcpyAsync(dst, src, size_t(n) * 4, cudaMemcpyHostToDevice, stream_));
    synchronize();  // the host buffer may go away as soon as we return
  }
  void download(float* dst, const float* src, int64_t n) override {
    if (n <= 0) return;
    CUDA_OK(cudaMemcpyAsync(dst, src, size_t(n) * 4, cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }
  void copy(float* dst, const float* src, int64_t n) override {
    if (n <= 0 || dst == src) return;
    CUDA_OK(cudaMemcpyAsync(dst, src, size_t(n) * 4, cudaMemcpyDeviceToDevice, stream_));
  }
  void fill(float* x, float value, int64_t n) override {
    elems(n, [=] __device__(int64_t i) { x[i] = value; });
  }
  void copy2d(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols,
              bool accumulate) override {
    if (rows <= 0 || cols <= 0) return;
    if (!accumulate) {
      CUDA_OK(cudaMemcpy2DAsync(dst, size_t(ld_dst) * 4, src, size_t(ld_src) * 4, size_t(cols) * 4, size_t(rows),
                                cudaMemcpyDeviceToDevice, stream_));
      return;
    }
    elems(rows * cols, [=] __device__(int64_t i) {
      const int64_t r = i / cols, c = i % cols;
      dst[r * ld_dst + c] += src[r * ld_src + c];
    });
  }

  // ---- BLAS-like ----
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, float beta, float* C, int64_t ldc) override {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // C = beta C (beta 0 overwrites)
      elems(M * N, [=] __device__(int64_t i) {
        float* c = C + (i / N) * ldc + i % N;
        *c = beta == 0.f ? 0.f : beta * *c;
      });
      return;
    }
#ifdef CFPIPE_HAVE_CUBLASLT
    if (lt_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
#endif
    dim3 grid(unsigned((N + kTN - 1) / kTN), unsigned((M + kTM - 1) / kTM));
    k_gemm_tiled<<<grid, 256, 0, stream_>>>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    check_launch("gemm_tiled");
  }
  void add_bias(float* out, const float* bias, int64_t N, int64_t C) override {
    elems(N * C, [=] __device__(int64_t i) { out[i] += bias[i % C]; });
  }
  void bias_backward(float* dbias, const float* dout, int64_t N, int64_t C) override {
    segsum(
        1, N, C, [=] __device__(int64_t n, int64_t c) { return double(dout[n * C + c]); },
        [=] __device__(int64_t, int64_t c, double s) { dbias[c] += float(s); });
  }

  // ---- element-wise and reductions ----
  void add(float* out, const float* a, const float* b, int64_t n) override {
    elems(n, [=] __device__(int64_t i) { out[i] = a[i] + b[i]; });
  }
  void axpy(float* y, float alpha, const float* x, int64_t n) override {
    elems(n, [=] __device__(int64_t i) { y[i] += alpha * x[i]; });
  }
  void axpby(float* out, float alpha, const float* x, float beta, const float* y, int64_t n) override {
    elems(n, [=] __device__(int64_t i) { out[i] = alpha * x[i] + beta * y[i]; });
  }
  void scale(float* x, float alpha, int64_t n) override {
    elems(n, [=] __device__(int64_t i) { x[i] *= alpha; });
  }
  void mul_rows(float* x, const float* w, int64_t R, int64_t C) override {
    elems(R * C, [=] __device__(int64_t i) { x[i] *= w[i / C]; });
  }
  double sum_squares(const float* x, int64_t n) override {
    return reduce(n, [=] __device__(int64_t i) { return double(x[i]) * double(x[i]); });
  }
  double dot(const float* a, const float* b, int64_t n) override {
    return reduce(n, [=] __device__(int64_t i) { return double(a[i]) * double(b[i]); });
  }
  double sum_abs_diff(const float* a, const float* b, int64_t n) override {
    return reduce(n, [=] __device__(int64_t i) { return fabs(double(a[i]) - double(b[i])); });
  }

  // ---- activations ----
  void gelu_tanh_forward(float* out, const float* inp, int64_t n) override {
    elems(n, [=] __device__(int64_t i) {
      const float x = inp[i];
      const float u = float(kGeluC) * (x + 0.044715f * x * x * x);
      out[i] = 0.5f * x * (1.f + tanhf(u));
    });
  }
  void gelu_tanh_backward(float* dinp, const float* inp, const float* dout, int64_t n) override {
    elems(n, [=] __device__(int64_t i) {
      const float x = inp[i];
      const float u = float(kGeluC) * (x + 0.044715f * x * x * x);
      const float th = tanhf(u);
      const float du = float(kGeluC) * (1.f + float(3 * 0.044715) * x * x);
      dinp[i] += dout[i] * (0.5f * (1.f + th) + 0.5f * x * (1.f - th * th) * du);
    });
  }
  void silu_forward(float* out, const float* inp, int64_t n) override {
    elems(n, [=] __device__(int64_t i) { out[i] = inp[i] / (1.f + expf(-inp[i])); });
  }
  void silu_backward(float* dinp, const float* inp, const float* dout, int64_t n) override {
    elems(n, [=] __device__(int64_t i) {
      const float s = 1.f / (1.f + expf(-inp[i]));
      dinp[i] += dout[i] * s * (1.f + inp[i] * (1.f - s));
    });
  }
  void softmax_forward(float* out, const float* inp, int64_t N, int64_t C) override {
    rows(N, [=] __device__(int64_t n, int lane) {
      const float* x = inp + n * C;
      float* o = out + n * C;
      float mx = -INFINITY;
      for (int64_t c = lane; c < C; c += 32) mx = fmaxf(mx, x[c]);
      for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      double s = 0;
      for (int64_t c = lane; c < C; c += 32) {
        const float e = expf(x[c] - mx);
        o[c] = e;
        s += e;
      }
      const float inv = float(1.0 / warp_sum(s));
      for (int64_t c = lane; c < C; c += 32) o[c] *= inv;
    });
  }
  void softmax_backward(float* dinp, const float* out, const float* dout, int64_t N, int64_t C) override {
    rows(N, [=] __device__(int64_t n, int lane) {
      const float* y = out + n * C;
      const float* d = dout + n * C;
      double s = 0;
      for (int64_t c = lane; c < C; c += 32) s += double(y[c]) * double(d[c]);
      const float sf = float(warp_sum(s));
      for (int64_t c = lane; c < C; c += 32) dinp[n * C + c] += y[c] * (d[c] - sf);
    });
  }

  // ---- normalisation ----
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                         const float* bias, int64_t N, int64_t C, double eps) override {
    rows(N, [=] __device__(int64_t n, int lane) {
      const float* x = inp + n * C;
      double m = 0;
      for (int64_t c = lane; c < C; c += 32) m += x[c];
      m = warp_sum(m) / double(C);
      double v = 0;
      for (int64_t c = lane; c < C; c += 32) v += (x[c] - m) * (x[c] - m);
      v = warp_sum(v) / double(C);
      const float mt = float(m), rs = float(1.0 / sqrt(v + eps));
      if (lane == 0) {
        mean[n] = mt;
        rstd[n] = rs;
      }
      float* o = out + n * C;
      for (int64_t c = lane; c < C; c += 32) {
        float y = (x[c] - mt) * rs;
        if (weight) y = y * weight[c] + (bias ? bias[c] : 0.f);
        o[c] = y;
      }
    });
  }
  void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) override {
    if (dinp) {
      rows(N, [=] __device__(int64_t n, int lane) {
        const float* x = inp + n * C;
        const float* d = dout + n * C;
        double sum_d = 0, sum_dn = 0;
        for (int64_t c = lane; c < C; c += 32) {
          const double dn = weight ? double(d[c]) * weight[c] : double(d[c]);
          sum_d += dn;
          sum_dn += dn * (double(x[c]) - mean[n]) * rstd[n];
        }
        sum_d = warp_sum(sum_d);
        sum_dn = warp_sum(sum_dn);
        const float md = float(sum_d / C), mdn = float(sum_dn / C);
        for (int64_t c = lane; c < C; c += 32) {
          const float norm = (x[c] - mean[n]) * rstd[n];
          const float dn = weight ? d[c] * weight[c] : d[c];
          dinp[n * C + c] += (dn - md - norm * mdn) * rstd[n];
        }
      });
    }
    if (dweight)
      segsum(
          1, N, C,
          [=] __device__(int64_t n, int64_t c) {
            return double(dout[n * C + c]) * ((double(inp[n * C + c]) - mean[n]) * rstd[n]);
          },
          [=] __device__(int64_t, int64_t c, double s) { dweight[c] += float(s); });
    if (dbias)
      segsum(
          1, N, C, [=] __device__(int64_t n, int64_t c) { return double(dout[n * C + c]); },
          [=] __device__(int64_t, int64_t c, double s) { dbias[c] += float(s); });
  }
  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C,
                       double eps) override {
    rows(N, [=] __device__(int64_t n, int lane) {
      const float* x = inp + n * C;
      double ss = 0;
      for (int64_t c = lane; c < C; c += 32) ss += double(x[c]) * double(x[c]);
      const float rs = float(1.0 / sqrt(warp_sum(ss) / double(C) + eps));
      if (lane == 0) rstd[n] = rs;
      for (int64_t c = lane; c < C; c += 32) out[n * C + c] = x[c] * rs * weight[c];
    });
  }
  void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                        const float* rstd, int64_t N, int64_t C) override {
    if (dinp) {
      rows(N, [=] __device__(int64_t n, int lane) {
        const float* x = inp + n * C;
        const float* d = dout + n * C;
        double s = 0;
        for (int64_t c = lane; c < C; c += 32) s += double(d[c]) * weight[c] * x[c] * rstd[n];
        const float m = float(warp_sum(s) / C);
        for (int64_t c = lane; c < C; c += 32) {
          const float norm = x[c] * rstd[n];
          dinp[n * C + c] += rstd[n] * (d[c] * weight[c] - norm * m);
        }
      });
    }
    if (dweight)
      segsum(
          1, N, C,
          [=] __device__(int64_t n, int64_t c) { return double(dout[n * C + c]) * inp[n * C + c] * rstd[n]; },
          [=] __device__(int64_t, int64_t c, double s) { dweight[c] += float(s); });
  }

  // ---- modulation ----
  void modulate_forward(float* out, const float* inp, const float* shift, const float* scl, int64_t ms, int64_t S,
                        int64_t Lf, int64_t C) override {
    elems(S * Lf * C, [=] __device__(int64_t i) {
      const int64_t s = i / (Lf * C), c = i % C;
      out[i] = inp[i] * (1.f + scl[s * ms + c]) + shift[s * ms + c];
    });
  }
  void modulate_backward(float* dinp, float* dshift, float* dscale, const float* dout, const float* inp,
                         const float* scl, int64_t ms, int64_t S, int64_t Lf, int64_t C) override {
    if (dinp)
      elems(S * Lf * C, [=] __device__(int64_t i) {
        const int64_t s = i / (Lf * C), c = i % C;
        dinp[i] += dout[i] * (1.f + scl[s * ms + c]);
      });
    if (dshift)
      segsum(
          S, Lf, C, [=] __device__(int64_t r, int64_t c) { return double(dout[r * C + c]); },
          [=] __device__(int64_t s, int64_t c, double v) { dshift[s * ms + c] += float(v); });
    if (dscale)
      segsum(
          S, Lf, C, [=] __device__(int64_t r, int64_t c) { return double(dout[r * C + c]) * inp[r * C + c]; },
          [=] __device__(int64_t s, int64_t c, double v) { dscale[s * ms + c] += float(v); });
  }
  void gate_residual_forward(float* x, const float* y, const float* gate, int64_t ms, int64_t S, int64_t Lf,
                             int64_t C) override {
    elems(S * Lf * C, [=] __device__(int64_t i) {
      const int64_t s = i / (Lf * C), c = i % C;
      x[i] += gate[s * ms + c] * y[i];
    });
  }
  void gate_residual_backward(float* dy, float* dgate, const float* dx, const float* y, const float* gate,
                              int64_t ms, int64_t S, int64_t Lf, int64_t C) override {
    if (dy)
      elems(S * Lf * C, [=] __device__(int64_t i) {
        const int64_t s = i / (Lf * C), c = i % C;
        dy[i] += dx[i] * gate[s * ms + c];
      });
    if (dgate)
      segsum(
          S, Lf, C, [=] __device__(int64_t r, int64_t c) { return double(dx[r * C + c]) * y[r * C + c]; },
          [=] __device__(int64_t s, int64_t c, double v) { dgate[s * ms + c] += float(v); });
  }

  // ---- RoPE ----
  void rope_forward(float* out, const float* inp, const float* cs, const float* sn, int64_t N, int64_t H,
                    int64_t hd) override {
    const int64_t P = hd / 2;
    elems(N * H * P, [=] __device__(int64_t t) {
      const int64_t i = t % P, nh = t / P, n = nh / H;
      const int64_t o = nh * hd + 2 * i;
      const float c = cs[n * P + i], s = sn[n * P + i];
      const float x0 = inp[o], x1 = inp[o + 1];
      out[o] = x0 * c - x1 * s;
      out[o + 1] = x0 * s + x1 * c;
    });
  }
  void rope_backward(float* dinp, const float* dout, const float* cs, const float* sn, int64_t N, int64_t H,
                     int64_t hd) override {
    const int64_t P = hd / 2;
    elems(N * H * P, [=] __device__(int64_t t) {
      const int64_t i = t % P, nh = t / P, n = nh / H;
      const int64_t o = nh * hd + 2 * i;
      const float c = cs[n * P + i], s = sn[n * P + i];
      const float d0 = dout[o], d1 = dout[o + 1];
      dinp[o] += d0 * c + d1 * s;
      dinp[o + 1] += -d0 * s + d1 * c;
    });
  }

  // ---- attention ----
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnShape& sh,
                         const AttnMask& mask, double scale) override {
    check_mask(sh, mask);
    dispatch_epl(sh.hd, [&](auto epl) {
      constexpr int EPL = decltype(epl)::value, KT = EPL <= 4 ? 32 : 16;
      const size_t smem = size_t(2 * KT * sh.hd) * sizeof(float);
      dim3 grid(unsigned((sh.Tq + kWarpsPerBlock - 1) / kWarpsPerBlock), unsigned(sh.B * sh.H));
      k_attn_fwd<EPL, KT><<<grid, 32 * kWarpsPerBlock, smem, stream_>>>(out, lse, q, k, v, sh, mask, float(scale));
      check_launch("attention_forward");
    });
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const AttnShape& sh,
                          const AttnMask& mask, double scale) override {
    check_mask(sh, mask);
    float* dvec = vec_scratch(sh.B * sh.H * sh.Tq);
    dispatch_epl(sh.hd, [&](auto epl) {
      constexpr int EPL = decltype(epl)::value, KT = EPL <= 4 ? 32 : 16;
      const size_t smem = size_t(2 * KT * sh.hd) * sizeof(float);
      dim3 gq(unsigned((sh.Tq + kWarpsPerBlock - 1) / kWarpsPerBlock), unsigned(sh.B * sh.H));
      k_attn_bwd_dq<EPL, KT><<<gq, 32 * kWarpsPerBlock, smem, stream_>>>(dq, dvec, dout, q, k, v, out, lse, sh, mask,
                                                                        float(scale));
      check_launch("attention_backward dq");
      if (dk || dv) {
        dim3 gk(unsigned((sh.Tk + kWarpsPerBlock - 1) / kWarpsPerBlock), unsigned(sh.B * sh.H));
        k_attn_bwd_dkv<EPL, KT><<<gk, 32 * kWarpsPerBlock, smem, stream_>>>(dk, dv, dvec, dout, q, k, v, lse, sh,
                                                                           mask, float(scale));
        check_launch("attention_backward dk/dv");
      }
    });
  }

  // ---- embeddings and (un)patchify ----
  void timestep_embedding(float* out, const float* t, int64_t N, int64_t dim) override {
    CFP_CHECK(dim % 2 == 0, "time embedding width must be even, got %lld", static_cast<long long>(dim));
    const int64_t half = dim / 2;
    elems(N * half, [=] __device__(int64_t x) {
      const int64_t n = x / half, i = x % half;
      const double w = pow(10000.0, -double(i) / double(half));
      const double a = double(t[n]) * w;
      out[n * dim + i] = float(cos(a));
      out[n * dim + half + i] = float(sin(a));
    });
  }
  void patchify(float* tokens, const float* x, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W, int64_t ph,
                int64_t pw) override {
    patch_loop(B, F, C, H, W, ph, pw, false, [=] __device__(int64_t ti, int64_t xi) { tokens[ti] = x[xi]; });
  }
  void patchify_backward(float* dx, const float* dtokens, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W,
                         int64_t ph, int64_t pw) override {
    patch_loop(B, F, C, H, W, ph, pw, false, [=] __device__(int64_t ti, int64_t xi) { dx[xi] += dtokens[ti]; });
  }
  void unpatchify(float* x, const float* tokens, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W, int64_t ph,
                  int64_t pw) override {
    patch_loop(B, F, C, H, W, ph, pw, true, [=] __device__(int64_t ti, int64_t xi) { x[xi] = tokens[ti]; });
  }
  void unpatchify_backward(float* dtokens, const float* dx, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W,
                           int64_t ph, int64_t pw) override {
    patch_loop(B, F, C, H, W, ph, pw, true, [=] __device__(int64_t ti, int64_t xi) { dtokens[ti] += dx[xi]; });
  }

  // Launch helpers are public only because nvcc requires device lambdas to live in accessible
  // member functions; they are not part of the Backend interface.
  template <class Fn>
  void elems(int64_t n, Fn fn) {
    if (n <= 0) return;
    k_elems<<<grid_for(n), kThreads, 0, stream_>>>(n, fn);
    check_launch("elementwise");
  }
  template <class Fn>
  void rows(int64_t N, Fn fn) {
    if (N <= 0) return;
    const unsigned blocks = unsigned((N + kWarpsPerBlock - 1) / kWarpsPerBlock);
    k_rows<<<blocks, 32 * kWarpsPerBlock, 0, stream_>>>(N, fn);
    check_launch("rows");
  }
  // Chunks per segment depend on the shapes only (never on the device), so sums are reproducible.
  template <class Fn, class Out>
  void segsum(int64_t S, int64_t L, int64_t C, Fn f, Out out) {
    if (S <= 0 || C <= 0) return;
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(64, L / 64));
    const int64_t rows_per = (L + chunks - 1) / chunks;
    double* part = seg_scratch(S * chunks * C);
    dim3 g1(unsigned((C + kThreads - 1) / kThreads), unsigned(S * chunks));
    CFP_CHECK(S * chunks <= 65535, "column reduction over %lld segments is too large", static_cast<long long>(S));
    k_segsum_partial<<<g1, kThreads, 0, stream_>>>(part, S, L, C, chunks, rows_per, f);
    check_launch("segsum_partial");
    k_segsum_final<<<grid_for(S * C), kThreads, 0, stream_>>>(part, S, C, chunks, out);
    check_launch("segsum_final");
  }
  template <class Fn>
  double reduce(int64_t n, Fn fn) {
    k_reduce_partial<<<kReduceBlocks, kThreads, 0, stream_>>>(reduce_buf_, n, fn);
    check_launch("reduce_partial");
    k_reduce_final<<<1, kReduceBlocks, 0, stream_>>>(reduce_buf_);
    check_launch("reduce_final");
    double r = 0;
    CUDA_OK(cudaMemcpyAsync(&r, reduce_buf_ + kReduceBlocks, sizeof(double), cudaMemcpyDeviceToHost, stream_));
    synchronize();
    return r;
  }
  template <class Fn>
  void patch_loop(int64_t B, int64_t F, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, bool head_order,
                  Fn fn) {
    CFP_CHECK(H % ph == 0 && W % pw == 0, "latent %lldx%lld is not divisible by the patch %lldx%lld",
              static_cast<long long>(H), static_cast<long long>(W), static_cast<long long>(ph),
              static_cast<long long>(pw));
    const int64_t Hp = H / ph, Wp = W / pw, P = C * ph * pw;
    elems(B * F * Hp * Wp * P, [=] __device__(int64_t ti) {
      const int64_t tok = ti / P, e = ti % P;
      int64_t c, qh, rw;
      if (head_order) {
        qh = e / (pw * C);
        rw = (e / C) % pw;
        c = e % C;
      } else {
        c = e / (ph * pw);
        qh = (e / pw) % ph;
        rw = e % pw;
      }
      const int64_t bf = tok / (Hp * Wp), hp = (tok / Wp) % Hp, wp = tok % Wp;
      fn(ti, ((bf * C + c) * H + hp * ph + qh) * W + wp * pw + rw);
    });
  }

 private:
  static constexpr double kGeluC = 0.7978845608028654;  // sqrt(2/pi)

  template <int V>
  struct Epl {
    static constexpr int value = V;
  };
  template <class Fn>
  static void dispatch_epl(int64_t hd, Fn fn) {
    CFP_CHECK(hd > 0 && hd <= 256, "CUDA attention supports head dims up to 256, got %lld", static_cast<long long>(hd));
    if (hd <= 32) fn(Epl<1>{});
    else if (hd <= 64) fn(Epl<2>{});
    else if (hd <= 128) fn(Epl<4>{});
    else fn(Epl<8>{});
  }
  static void check_mask(const AttnShape& sh, const AttnMask& m) {
    CFP_CHECK(sh.hd > 0 && sh.H > 0 && sh.B > 0, "attention shape must be positive");
    CFP_CHECK(sh.kv_stride() >= sh.Tk, "kv_rows %lld < Tk %lld", static_cast<long long>(sh.kv_rows),
              static_cast<long long>(sh.Tk));
    CFP_CHECK(sh.B * sh.H <= 65535, "attention batch x heads %lld exceeds the grid limit",
              static_cast<long long>(sh.B * sh.H));
    if (m.kind != MaskKind::full) CFP_CHECK(m.block_tokens > 0, "block mask needs block_tokens > 0");
    if (m.kind == MaskKind::teacher_forcing)
      CFP_CHECK(m.half_tokens > 0 && sh.Tq == 2 * m.half_tokens && sh.Tk == 2 * m.half_tokens,
                "teacher-forcing attention needs Tq = Tk = 2 * half_tokens");
  }
  // Scratch buffers grow to the largest size asked for and are then reused (no allocation in the
  // step loop once every shape has been seen).
  double* seg_scratch(int64_t n) {
    if (n > seg_cap_) {
      synchronize();
      cudaFree(seg_buf_);
      seg_buf_ = nullptr;
      CUDA_OK(cudaMalloc(&seg_buf_, size_t(n) * sizeof(double)));
      seg_cap_ = n;
    }
    return seg_buf_;
  }
  float* vec_scratch(int64_t n) {
    if (n > vec_cap_) {
      synchronize();
      cudaFree(vec_buf_);
      vec_buf_ = nullptr;
      CUDA_OK(cudaMalloc(&vec_buf_, size_t(n) * sizeof(float)));
      vec_cap_ = n;
    }
    return vec_buf_;
  }

#ifdef CFPIPE_HAVE_CUBLASLT
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: B goes first.
  static constexpr size_t kLtWorkspace = size_t(32) << 20;
  struct LtPlan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool ok = false;
  };
  using LtKey = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;
  static void destroy_plan(LtPlan& p) {
    if (p.op) cublasLtMatmulDescDestroy(p.op);
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.c) cublasLtMatrixLayoutDestroy(p.c);
  }
  bool lt_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    const LtKey key{ta, tb, M, N, K, lda, ldb, ldc};
    auto it = lt_plans_.find(key);
    if (it == lt_plans_.end()) it = lt_plans_.emplace(key, make_plan(ta, tb, M, N, K, lda, ldb, ldc)).first;
    const LtPlan& p = it->second;
    if (!p.ok) return false;  // no algorithm for this shape: the tiled kernel takes it
    const cublasStatus_t st = cublasLtMatmul(lt_, p.op, &alpha, B, p.a, A, p.b, &beta, C, p.c, C, p.c, &p.algo,
                                             lt_ws_, kLtWorkspace, stream_);
    CFP_CHECK(st == CUBLAS_STATUS_SUCCESS, "cuBLASLt matmul failed (status %d)", int(st));
    return true;
  }
  LtPlan make_plan(bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
    LtPlan p;
    auto ok = [](cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS; };
    if (!ok(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F))) return p;
    cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa));
    cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb));
    // First operand (our B): column-major N x K (or K x N when transposed), ld = ldb.
    if (!ok(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_32F, tb ? K : N, tb ? N : K, ldb))) return p;
    if (!ok(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_32F, ta ? M : K, ta ? K : M, lda))) return p;
    if (!ok(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, N, M, ldc))) return p;
    cublasLtMatmulPreference_t pref = nullptr;
    if (!ok(cublasLtMatmulPreferenceCreate(&pref))) return p;
    size_t ws = kLtWorkspace;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    const bool got = ok(cublasLtMatmulAlgoGetHeuristic(lt_, p.op, p.a, p.b, p.c, p.c, pref, 1, &res, &found));
    cublasLtMatmulPreferenceDestroy(pref);
    if (got && found > 0) {
      p.algo = res.algo;
      p.ok = true;
    }
    return p;
  }
  cublasLtHandle_t lt_ = nullptr;
  void* lt_ws_ = nullptr;
  std::map<LtKey, LtPlan> lt_plans_;
#endif

  int device_;
  cudaStream_t stream_ = nullptr;
  double* reduce_buf_ = nullptr;
  double* seg_buf_ = nullptr;
  int64_t seg_cap_ = 0;
  float* vec_buf_ = nullptr;
  int64_t vec_cap_ = 0;
};

}  // namespace

int cuda_device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = cudaGetErrorString(e);
    return 0;
  }
  if (n == 0 && why) *why = "the driver reports no CUDA device";
  return n;
}

std::unique_ptr<Backend<float>> make_cuda_backend(int device) { return std::make_unique<CudaBackend>(device); }

const char* cuda_gemm_engine() {
#ifdef CFPIPE_HAVE_CUBLASLT
  return "cublaslt";
#else
  return "tiled";
#endif
}

void cuda_synchronize(Backend<float>& backend) {
  if (auto* cb = dynamic_cast<CudaBackend*>(&backend)) cb->synchronize();
}

std::string cuda_device_name(int device) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return prop.name;
}

namespace {

// PyTorch's lerp (see core/optim.cpp), rounded op by op.
__device__ __forceinline__ float lerp_rn(float self, float end, float weight) {
  return fabsf(weight) < 0.5f ? __fadd_rn(self, __fmul_rn(weight, __fsub_rn(end, self)))
                              : __fsub_rn(end, __fmul_rn(__fsub_rn(end, self), __fsub_rn(1.0f, weight)));
}

class CudaOptimOps final : public OptimOps {
 public:
  explicit CudaOptimOps(CudaBackend& be) : be_(be) {}

  double clip_grad_norm(float* grad, int64_t n, double max_norm) override {
    CFP_CHECK(max_norm > 0.0, "max_norm must be positive, got %g", max_norm);
    const double total = std::sqrt(be_.sum_squares(grad, n));
    if (!std::isfinite(total)) return total;
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1.0) {
      const float c = static_cast<float>(coef);
      be_.elems(n, [=] __device__(int64_t i) { grad[i] = __fmul_rn(grad[i], c); });
    }
    return total;
  }

  void adamw_update(const AdamWSlot& s, const AdamWConfig& config, int64_t step) override {
    CFP_CHECK(step >= 1, "AdamW step count must start at 1, got %lld", static_cast<long long>(step));
    CFP_CHECK(s.n >= 0 && (s.n == 0 || (s.param && s.grad && s.exp_avg && s.exp_avg_sq)),
              "AdamW slot has null buffers or a negative size");
    const double bias_correction1 = 1.0 - std::pow(config.beta1, static_cast<double>(step));
    const double bias_correction2 = 1.0 - std::pow(config.beta2, static_cast<double>(step));
    const float decay = static_cast<float>(1.0 - config.lr * config.weight_decay);
    const float lerp_weight = static_cast<float>(1.0 - config.beta1);
    const float beta2 = static_cast<float>(config.beta2);
    const float one_minus_beta2 = static_cast<float>(1.0 - config.beta2);
    const float neg_step_size = -static_cast<float>(config.lr / bias_correction1);
    const float bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
    const float eps = static_cast<float>(config.eps);
    float* param = s.param;
    const float* grad = s.grad;
    float* m_buf = s.exp_avg;
    float* v_buf = s.exp_avg_sq;
    be_.elems(s.n, [=] __device__(int64_t i) {
      const float g = grad[i];
      float p = __fmul_rn(param[i], decay);
      const float m = lerp_rn(m_buf[i], g, lerp_weight);
      const float v = __fadd_rn(__fmul_rn(v_buf[i], beta2), __fmul_rn(__fmul_rn(one_minus_beta2, g), g));
      const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bc2_sqrt), eps);
      p = __fadd_rn(p, __fmul_rn(neg_step_size, __fdiv_rn(m, denom)));
      m_buf[i] = m;
      v_buf[i] = v;
      param[i] = p;
    });
  }

  void ema_update(float* shadow, const float* param, int64_t n, double decay) override {
    CFP_CHECK(decay >= 0.0 && decay <= 1.0, "EMA decay must lie in [0, 1], got %g", decay);
    const double keep = decay, take = 1.0 - decay;
    be_.elems(n, [=] __device__(int64_t i) {
      shadow[i] = static_cast<float>(__dadd_rn(__dmul_rn(keep, double(shadow[i])), __dmul_rn(take, double(param[i]))));
    });
  }

 private:
  CudaBackend& be_;
};

}  // namespace

std::unique_ptr<OptimOps> make_cuda_optim_ops(Backend<float>& cuda_backend) {
  auto* cb = dynamic_cast<CudaBackend*>(&cuda_backend);
  CFP_CHECK(cb != nullptr, "make_cuda_optim_ops needs a CUDA backend, got %s", cuda_backend.name().c_str());
  return std::make_unique<CudaOptimOps>(*cb);
}

ComputeDevice make_cuda_device(int device) {
  ComputeDevice d;
  d.backend = make_cuda_backend(device);
  d.owned_optim = make_cuda_optim_ops(*d.backend);
  d.optim = d.owned_optim.get();
  return d;
}

}  // namespace cfp
