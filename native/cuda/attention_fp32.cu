// Scalar fp32 flash-style attention (the backend's fp32 mode and the parity reference): one warp
// per query (forward, dq) or per key (dk/dv), K/V or Q/dO tiles in shared memory, online softmax.
// Every output element is summed by one warp in a fixed order: deterministic.
#include <cmath>

#include "cuda/cuda_common.cuh"
#include "cuda/kernels.h"

namespace cfp {
namespace cuda {

namespace {

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

template <int V>
struct Epl {
  static constexpr int value = V;
};
template <class Fn>
void dispatch_epl(int64_t hd, Fn fn) {
  CFP_CHECK(hd > 0 && hd <= 256, "CUDA attention supports head dims up to 256, got %lld", static_cast<long long>(hd));
  if (hd <= 32) fn(Epl<1>{});
  else if (hd <= 64) fn(Epl<2>{});
  else if (hd <= 128) fn(Epl<4>{});
  else fn(Epl<8>{});
}

}  // namespace

void attention_forward_fp32(cudaStream_t stream, float* out, float* lse, const float* q, const float* k,
                            const float* v, const AttnShape& sh, const AttnMask& mask, float scale) {
  dispatch_epl(sh.hd, [&](auto epl) {
    constexpr int EPL = decltype(epl)::value, KT = EPL <= 4 ? 32 : 16;
    const size_t smem = size_t(2 * KT * sh.hd) * sizeof(float);
    dim3 grid(unsigned((sh.Tq + kWarpsPerBlock - 1) / kWarpsPerBlock), unsigned(sh.B * sh.H));
    k_attn_fwd<EPL, KT><<<grid, 32 * kWarpsPerBlock, smem, stream>>>(out, lse, q, k, v, sh, mask, scale);
    check_launch("attention_forward");
  });
}

void attention_backward_fp32(cudaStream_t stream, float* dq, float* dk, float* dv, float* dvec, const float* dout,
                             const float* q, const float* k, const float* v, const float* out, const float* lse,
                             const AttnShape& sh, const AttnMask& mask, float scale) {
  dispatch_epl(sh.hd, [&](auto epl) {
    constexpr int EPL = decltype(epl)::value, KT = EPL <= 4 ? 32 : 16;
    const size_t smem = size_t(2 * KT * sh.hd) * sizeof(float);
    dim3 gq(unsigned((sh.Tq + kWarpsPerBlock - 1) / kWarpsPerBlock), unsigned(sh.B * sh.H));
    k_attn_bwd_dq<EPL, KT><<<gq, 32 * kWarpsPerBlock, smem, stream>>>(dq, dvec, dout, q, k, v, out, lse, sh, mask,
                                                                     scale);
    check_launch("attention_backward dq");
    if (dk || dv) {
      dim3 gk(unsigned((sh.Tk + kWarpsPerBlock - 1) / kWarpsPerBlock), unsigned(sh.B * sh.H));
      k_attn_bwd_dkv<EPL, KT><<<gk, 32 * kWarpsPerBlock, smem, stream>>>(dk, dv, dvec, dout, q, k, v, lse, sh, mask,
                                                                        scale);
      check_launch("attention_backward dk/dv");
    }
  });
}

}  // namespace cuda
}  // namespace cfp
