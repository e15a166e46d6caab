// Tensor-core flash attention in bf16 with fp32 accumulation (the backend's bf16 mode): forward
// with online softmax, and a two-kernel backward (dq over key tiles; dk/dv over query tiles) so
// that every output element is summed by one thread in a fixed order (no atomics: deterministic).
//
// Inputs and outputs stay fp32 in device memory; tiles are rounded to bf16 as they are staged into
// shared memory. Products use mma.sync m16n8k16 (bf16 x bf16 -> fp32). A warp owns 16 rows (queries
// in the forward and dq pass, keys in the dk/dv pass); a block of 4 warps owns 64 rows. Head dims
// are zero-padded to HDP = 16 KC (KC in {1, 2, 4, 8}: hd <= 128); larger heads use the fp32 path.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with 16-bit operands), g = lane / 4, t = lane % 4:
//   A 16x16 (row): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B 16x8  (col): b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g)
//   C 16x8  (f32): c0, c1 = (g, 2t), (g, 2t+1); c2, c3 = (g+8, 2t), (g+8, 2t+1)
// so a C tile pair (keys 16c..16c+15) is directly the A fragment of the next product (P V, dS K).
#include <cuda_bf16.h>

#include <cmath>

#include "cuda/cuda_common.cuh"
#include "cuda/kernels.h"

namespace cfp {
namespace cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kFaWarps = 4, kFaRows = 16 * kFaWarps;  // rows of a block (queries or keys)
constexpr int kFaKeys = 64;                            // keys per tile (forward, dq)
constexpr int kFaQueries = 32;                         // queries per tile (dk/dv)
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ uint32_t word(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }

// A fragment of the 16x16 block at (m0, k0) of a [m][k] shared array with row stride `ld`.
__device__ __forceinline__ void frag_a(uint32_t a[4], const bf16* s, int ld, int m0, int k0) {
  const int g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
  a[0] = word(s + (m0 + g) * ld + k0 + 2 * t);
  a[1] = word(s + (m0 + g + 8) * ld + k0 + 2 * t);
  a[2] = word(s + (m0 + g) * ld + k0 + 8 + 2 * t);
  a[3] = word(s + (m0 + g + 8) * ld + k0 + 8 + 2 * t);
}

// B fragment of the 16(k)x8(n) block at (k0, n0) of a shared array stored [n][k], row stride `ld`.
__device__ __forceinline__ void frag_b(uint32_t& b0, uint32_t& b1, const bf16* s, int ld, int n0, int k0) {
  const int g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
  b0 = word(s + (n0 + g) * ld + k0 + 2 * t);
  b1 = word(s + (n0 + g) * ld + k0 + 8 + 2 * t);
}

// The A fragment of keys/queries 16c..16c+15 from a row of C tiles (two 8-column tiles per chunk).
__device__ __forceinline__ void c_to_a(uint32_t a[4], const float c0[4], const float c1[4]) {
  a[0] = pack2(c0[0], c0[1]);
  a[1] = pack2(c0[2], c0[3]);
  a[2] = pack2(c1[0], c1[1]);
  a[3] = pack2(c1[2], c1[3]);
}

// Rows [row0, row0 + rows) of one head (columns h*hd .. h*hd + hd of a [*, ld] fp32 array) into
// shared memory as bf16: `plain` [rows][HDP] with stride lp and/or `trans` [HDP][rows] with stride
// lt. Rows at or past `valid` and columns at or past hd are zero.
template <int HDP>
__device__ void stage(bf16* plain, int lp, bf16* trans, int lt, const float* src, int64_t ld, int64_t row0,
                      int64_t valid, int rows, int hd) {
  constexpr int kPairs = HDP / 2;
  for (int x = threadIdx.x; x < rows * kPairs; x += blockDim.x) {
    const int r = x / kPairs, d = 2 * (x % kPairs);
    const int64_t gr = row0 + r;
    float lo = 0.f, hi = 0.f;
    if (gr < valid) {
      const float* p = src + gr * ld + d;
      if (d < hd) lo = p[0];
      if (d + 1 < hd) hi = p[1];
    }
    if (plain) *reinterpret_cast<uint32_t*>(plain + r * lp + d) = pack2(lo, hi);
    if (trans) {
      trans[d * lt + r] = __float2bfloat16_rn(lo);
      trans[(d + 1) * lt + r] = __float2bfloat16_rn(hi);
    }
  }
}

// Per-thread view of the mask for its two rows (g and g + 8 of the warp's 16).
struct RowMask {
  Ranges r[2];
  __device__ bool any(int64_t a, int64_t b) const { return r[0].overlaps(a, b) || r[1].overlaps(a, b); }
  __device__ bool all(int64_t a, int64_t b) const { return r[0].covers(a, b) && r[1].covers(a, b); }
};

// Sets masked entries of a row of C tiles (columns col0 + 8 nt + 2t + e) to -inf.
template <int NT>
__device__ __forceinline__ void apply_mask(float (&s)[NT][4], const RowMask& rm, int64_t col0) {
  const int t = threadIdx.x % 4;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (!rm.r[e / 2].has(col0 + 8 * nt + 2 * t + (e & 1))) s[nt][e] = -INFINITY;
}

// ---- forward ---------------------------------------------------------------------------------

template <int KC>
__global__ void __launch_bounds__(32 * kFaWarps) k_fa_fwd(float* out, float* lse, const float* q, const float* k,
                                                          const float* v, AttnShape sh, AttnMask mask, float scale) {
  constexpr int HDP = 16 * KC, LD = HDP + 8, LDT = kFaKeys + 8, NO = 2 * KC, NS = kFaKeys / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);  // [64][LD]
  bf16* ks = qs + kFaRows * LD;                  // [64 keys][LD]
  bf16* vt = ks + kFaKeys * LD;                  // [HDP][LDT]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t D = sh.H * sh.hd, kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
  const int64_t i0 = int64_t(blockIdx.x) * kFaRows, wr = i0 + 16 * warp;
  const float* qb = q + b * sh.Tq * D + h * sh.hd;
  const float* kb = k + b * kvs * D + h * sh.hd;
  const float* vb = v + b * kvs * D + h * sh.hd;
  RowMask rm;
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int64_t i = wr + g + 8 * e;
    if (i < sh.Tq) rm.r[e] = key_ranges(mask, i, sh.Tk);
  }
  stage<HDP>(qs, LD, nullptr, 0, qb, D, i0, sh.Tq, kFaRows, int(sh.hd));
  __syncthreads();
  uint32_t qa[KC][4];
#pragma unroll
  for (int c = 0; c < KC; ++c) frag_a(qa[c], qs, LD, 16 * warp, 16 * c);
  float o[NO][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const float sl2 = scale * kLog2e;
  for (int64_t j0 = 0; j0 < sh.Tk; j0 += kFaKeys) {
    const bool mine = rm.any(j0, j0 + kFaKeys);
    if (!__syncthreads_or(mine)) continue;
    stage<HDP>(ks, LD, nullptr, 0, kb, D, j0, sh.Tk, kFaKeys, int(sh.hd));
    stage<HDP>(nullptr, 0, vt, LDT, vb, D, j0, sh.Tk, kFaKeys, int(sh.hd));
    __syncthreads();
    if (__any_sync(0xffffffffu, mine)) {
      float s[NS][4] = {};
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int c = 0; c < KC; ++c) {
          uint32_t b0, b1;
          frag_b(b0, b1, ks, LD, 8 * nt, 16 * c);
          mma16816(s[nt], qa[c], b0, b1);
        }
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] *= sl2;
      if (!__all_sync(0xffffffffu, rm.all(j0, j0 + kFaKeys))) apply_mask(s, rm, j0);
      float corr[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = m[r];
#pragma unroll
        for (int nt = 0; nt < NS; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        corr[r] = mx == -INFINITY ? 1.f : exp2f(m[r] - mx);
        m[r] = mx;
        const float base = mx == -INFINITY ? 0.f : mx;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < NS; ++nt) {
          s[nt][2 * r] = exp2f(s[nt][2 * r] - base);
          s[nt][2 * r + 1] = exp2f(s[nt][2 * r + 1] - base);
          sum += s[nt][2 * r] + s[nt][2 * r + 1];
        }
        l[r] = l[r] * corr[r] + sum;  // a per-thread partial, summed over the 4 lanes at the end
      }
#pragma unroll
      for (int nt = 0; nt < NO; ++nt) {
        o[nt][0] *= corr[0], o[nt][1] *= corr[0];
        o[nt][2] *= corr[1], o[nt][3] *= corr[1];
      }
#pragma unroll
      for (int c = 0; c < kFaKeys / 16; ++c) {
        uint32_t pa[4];
        c_to_a(pa, s[2 * c], s[2 * c + 1]);
#pragma unroll
        for (int nt = 0; nt < NO; ++nt) {
          uint32_t b0, b1;
          frag_b(b0, b1, vt, LDT, 8 * nt, 16 * c);
          mma16816(o[nt], pa, b0, b1);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = wr + g + 8 * r;
    if (i >= sh.Tq) continue;
    const bool none = !(l[r] > 0.f);
    const float inv = none ? 0.f : 1.f / l[r];
    float* orow = out + (b * sh.Tq + i) * D + h * sh.hd;
#pragma unroll
    for (int nt = 0; nt < NO; ++nt) {
      const int d = 8 * nt + 2 * t;
      if (d < sh.hd) orow[d] = o[nt][2 * r] * inv;
      if (d + 1 < sh.hd) orow[d + 1] = o[nt][2 * r + 1] * inv;
    }
    if (t == 0) lse[(b * sh.H + h) * sh.Tq + i] = none ? -INFINITY : (m[r] + log2f(l[r])) / kLog2e;
  }
}

// ---- backward: dq (and D_i = dO_i . O_i, saved for the dk/dv pass) ----------------------------

template <int KC>
__global__ void __launch_bounds__(32 * kFaWarps)
    k_fa_bwd_dq(float* dq, float* dvec, const float* dout, const float* q, const float* k, const float* v,
                const float* out, const float* lse, AttnShape sh, AttnMask mask, float scale) {
  constexpr int HDP = 16 * KC, LD = HDP + 8, LDT = kFaKeys + 8, NO = 2 * KC, NS = kFaKeys / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);  // [64][LD] Q
  bf16* dos = qs + kFaRows * LD;                 // [64][LD] dO
  bf16* ks = dos + kFaRows * LD;                 // [64 keys][LD]
  bf16* vs = ks + kFaKeys * LD;                  // [64 keys][LD]
  bf16* kt = vs + kFaKeys * LD;                  // [HDP][LDT]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t D = sh.H * sh.hd, kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
  const int64_t i0 = int64_t(blockIdx.x) * kFaRows, wr = i0 + 16 * warp;
  const float* qb = q + b * sh.Tq * D + h * sh.hd;
  const float* dob = dout + b * sh.Tq * D + h * sh.hd;
  const float* ob = out + b * sh.Tq * D + h * sh.hd;
  const float* kb = k + b * kvs * D + h * sh.hd;
  const float* vb = v + b * kvs * D + h * sh.hd;
  // D_i in fp32 from the stored dO and O, one warp-wide dot per row.
  float di[2] = {0.f, 0.f}, l2[2] = {-INFINITY, -INFINITY};
  for (int r = 0; r < 16; ++r) {
    const int64_t i = wr + r;
    if (i >= sh.Tq) break;
    float part = 0.f;
    for (int64_t d = lane; d < sh.hd; d += 32) part += dob[i * D + d] * ob[i * D + d];
    const float s = warp_sum(part);
    if (lane == 0) dvec[(b * sh.H + h) * sh.Tq + i] = s;
    if (r == g) di[0] = s;
    if (r == g + 8) di[1] = s;
  }
  RowMask rm;
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int64_t i = wr + g + 8 * e;
    if (i >= sh.Tq) continue;
    const float li = lse[(b * sh.H + h) * sh.Tq + i];
    if (isinf(li)) continue;  // the query saw no key: no gradient
    l2[e] = li * kLog2e;
    rm.r[e] = key_ranges(mask, i, sh.Tk);
  }
  stage<HDP>(qs, LD, nullptr, 0, qb, D, i0, sh.Tq, kFaRows, int(sh.hd));
  stage<HDP>(dos, LD, nullptr, 0, dob, D, i0, sh.Tq, kFaRows, int(sh.hd));
  __syncthreads();
  uint32_t qa[KC][4], da[KC][4];
#pragma unroll
  for (int c = 0; c < KC; ++c) {
    frag_a(qa[c], qs, LD, 16 * warp, 16 * c);
    frag_a(da[c], dos, LD, 16 * warp, 16 * c);
  }
  float acc[NO][4] = {};
  const float sl2 = scale * kLog2e;
  for (int64_t j0 = 0; j0 < sh.Tk; j0 += kFaKeys) {
    const bool mine = rm.any(j0, j0 + kFaKeys);
    if (!__syncthreads_or(mine)) continue;
    stage<HDP>(ks, LD, kt, LDT, kb, D, j0, sh.Tk, kFaKeys, int(sh.hd));
    stage<HDP>(vs, LD, nullptr, 0, vb, D, j0, sh.Tk, kFaKeys, int(sh.hd));
    __syncthreads();
    if (__any_sync(0xffffffffu, mine)) {
      float s[NS][4] = {}, dp[NS][4] = {};
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int c = 0; c < KC; ++c) {
          uint32_t b0, b1;
          frag_b(b0, b1, ks, LD, 8 * nt, 16 * c);
          mma16816(s[nt], qa[c], b0, b1);
          frag_b(b0, b1, vs, LD, 8 * nt, 16 * c);
          mma16816(dp[nt], da[c], b0, b1);
        }
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] = s[nt][e] * sl2 - l2[e / 2];
      if (!__all_sync(0xffffffffu, rm.all(j0, j0 + kFaKeys))) apply_mask(s, rm, j0);
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float p = exp2f(s[nt][e]);  // 0 where masked (and for rows that saw no key)
          s[nt][e] = p * (dp[nt][e] - di[e / 2]) * scale;  // dS
        }
#pragma unroll
      for (int c = 0; c < kFaKeys / 16; ++c) {
        uint32_t sa[4];
        c_to_a(sa, s[2 * c], s[2 * c + 1]);
#pragma unroll
        for (int nt = 0; nt < NO; ++nt) {
          uint32_t b0, b1;
          frag_b(b0, b1, kt, LDT, 8 * nt, 16 * c);
          mma16816(acc[nt], sa, b0, b1);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = wr + g + 8 * r;
    if (i >= sh.Tq || l2[r] == -INFINITY) continue;
    float* row = dq + (b * sh.Tq + i) * D + h * sh.hd;
#pragma unroll
    for (int nt = 0; nt < NO; ++nt) {
      const int d = 8 * nt + 2 * t;
      if (d < sh.hd) row[d] += acc[nt][2 * r];
      if (d + 1 < sh.hd) row[d + 1] += acc[nt][2 * r + 1];
    }
  }
}

// ---- backward: dk and dv (rows = keys, walking query tiles) ----------------------------------

template <int KC>
__global__ void __launch_bounds__(32 * kFaWarps)
    k_fa_bwd_dkv(float* dk, float* dv, const float* dvec, const float* dout, const float* q, const float* k,
                 const float* v, const float* lse, AttnShape sh, AttnMask mask, float scale) {
  constexpr int HDP = 16 * KC, LD = HDP + 8, LDT = kFaQueries + 8, NO = 2 * KC, NS = kFaQueries / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* ks = reinterpret_cast<bf16*>(smem_raw);  // [64 keys][LD]
  bf16* vs = ks + kFaRows * LD;                  // [64 keys][LD]
  bf16* qs = vs + kFaRows * LD;                  // [32 queries][LD]
  bf16* dos = qs + kFaQueries * LD;              // [32][LD]
  bf16* qt = dos + kFaQueries * LD;              // [HDP][LDT]
  bf16* dot = qt + HDP * LDT;                    // [HDP][LDT]
  __shared__ float ls[kFaQueries], ds[kFaQueries];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t D = sh.H * sh.hd, kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
  const int64_t j0 = int64_t(blockIdx.x) * kFaRows, wr = j0 + 16 * warp;
  const float* qb = q + b * sh.Tq * D + h * sh.hd;
  const float* dob = dout + b * sh.Tq * D + h * sh.hd;
  RowMask rm;
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int64_t j = wr + g + 8 * e;
    if (j < sh.Tk) rm.r[e] = query_ranges(mask, j, sh.Tq);
  }
  stage<HDP>(ks, LD, nullptr, 0, k + b * kvs * D + h * sh.hd, D, j0, sh.Tk, kFaRows, int(sh.hd));
  stage<HDP>(vs, LD, nullptr, 0, v + b * kvs * D + h * sh.hd, D, j0, sh.Tk, kFaRows, int(sh.hd));
  float ak[NO][4] = {}, av[NO][4] = {};
  const float sl2 = scale * kLog2e;
  for (int64_t q0 = 0; q0 < sh.Tq; q0 += kFaQueries) {
    const bool mine = rm.any(q0, q0 + kFaQueries);
    if (!__syncthreads_or(mine)) continue;
    stage<HDP>(qs, LD, qt, LDT, qb, D, q0, sh.Tq, kFaQueries, int(sh.hd));
    stage<HDP>(dos, LD, dot, LDT, dob, D, q0, sh.Tq, kFaQueries, int(sh.hd));
    for (int x = threadIdx.x; x < kFaQueries; x += blockDim.x) {
      const int64_t i = q0 + x;
      const float li = i < sh.Tq ? lse[(b * sh.H + h) * sh.Tq + i] : -INFINITY;
      ls[x] = isinf(li) ? INFINITY : li * kLog2e;  // +inf: p = 0 for queries that saw no key
      ds[x] = i < sh.Tq ? dvec[(b * sh.H + h) * sh.Tq + i] : 0.f;
    }
    __syncthreads();
    if (__any_sync(0xffffffffu, mine)) {
      float s[NS][4] = {}, dp[NS][4] = {};
#pragma unroll
      for (int c = 0; c < KC; ++c) {
        uint32_t ka[4], va[4];
        frag_a(ka, ks, LD, 16 * warp, 16 * c);
        frag_a(va, vs, LD, 16 * warp, 16 * c);
#pragma unroll
        for (int nt = 0; nt < NS; ++nt) {
          uint32_t b0, b1;
          frag_b(b0, b1, qs, LD, 8 * nt, 16 * c);
          mma16816(s[nt], ka, b0, b1);
          frag_b(b0, b1, dos, LD, 8 * nt, 16 * c);
          mma16816(dp[nt], va, b0, b1);
        }
      }
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] = s[nt][e] * sl2 - ls[8 * nt + 2 * t + (e & 1)];
      if (!__all_sync(0xffffffffu, rm.all(q0, q0 + kFaQueries))) apply_mask(s, rm, q0);
      float p[NS][4];
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          p[nt][e] = exp2f(s[nt][e]);
          s[nt][e] = p[nt][e] * (dp[nt][e] - ds[8 * nt + 2 * t + (e & 1)]) * scale;  // dS^T
        }
#pragma unroll
      for (int c = 0; c < kFaQueries / 16; ++c) {
        uint32_t pa[4], sa[4];
        c_to_a(pa, p[2 * c], p[2 * c + 1]);
        c_to_a(sa, s[2 * c], s[2 * c + 1]);
#pragma unroll
        for (int nt = 0; nt < NO; ++nt) {
          uint32_t b0, b1;
          frag_b(b0, b1, dot, LDT, 8 * nt, 16 * c);
          mma16816(av[nt], pa, b0, b1);
          frag_b(b0, b1, qt, LDT, 8 * nt, 16 * c);
          mma16816(ak[nt], sa, b0, b1);
        }
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t j = wr + g + 8 * r;
    if (j >= sh.Tk) continue;
    const int64_t off = (b * kvs + j) * D + h * sh.hd;
#pragma unroll
    for (int nt = 0; nt < NO; ++nt) {
      const int d = 8 * nt + 2 * t;
      for (int e = 0; e < 2; ++e) {
        if (d + e >= sh.hd) continue;
        if (dk) dk[off + d + e] += ak[nt][2 * r + e];
        if (dv) dv[off + d + e] += av[nt][2 * r + e];
      }
    }
  }
}

template <int KC>
constexpr size_t fwd_smem() {
  return size_t(2 * kFaRows * (16 * KC + 8) + 16 * KC * (kFaKeys + 8)) * sizeof(bf16);
}
template <int KC>
constexpr size_t dq_smem() {
  return size_t(4 * kFaRows * (16 * KC + 8) + 16 * KC * (kFaKeys + 8)) * sizeof(bf16);
}
template <int KC>
constexpr size_t dkv_smem() {
  return size_t((2 * kFaRows + 2 * kFaQueries) * (16 * KC + 8) + 2 * 16 * KC * (kFaQueries + 8)) * sizeof(bf16);
}

// Raises a kernel's dynamic shared-memory limit once (above 48 KB needs the opt-in).
template <class K>
void allow_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024) CUDA_OK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

template <class Fn>
void dispatch_kc(int64_t hd, Fn fn) {
  if (hd <= 16) fn(std::integral_constant<int, 1>{});
  else if (hd <= 32) fn(std::integral_constant<int, 2>{});
  else if (hd <= 64) fn(std::integral_constant<int, 4>{});
  else fn(std::integral_constant<int, 8>{});
}

}  // namespace

bool attention_bf16_supports(const AttnShape& sh) { return sh.hd > 0 && sh.hd <= 128; }

void attention_forward_bf16(cudaStream_t stream, float* out, float* lse, const float* q, const float* k,
                            const float* v, const AttnShape& sh, const AttnMask& mask, float scale) {
  dispatch_kc(sh.hd, [&](auto kc) {
    constexpr int KC = decltype(kc)::value;
    static bool ready = (allow_smem(k_fa_fwd<KC>, fwd_smem<KC>()), true);
    (void)ready;
    dim3 grid(unsigned((sh.Tq + kFaRows - 1) / kFaRows), unsigned(sh.B * sh.H));
    k_fa_fwd<KC><<<grid, 32 * kFaWarps, fwd_smem<KC>(), stream>>>(out, lse, q, k, v, sh, mask, scale);
    check_launch("attention_forward (bf16)");
  });
}

void attention_backward_bf16(cudaStream_t stream, float* dq, float* dk, float* dv, float* dvec, const float* dout,
                             const float* q, const float* k, const float* v, const float* out, const float* lse,
                             const AttnShape& sh, const AttnMask& mask, float scale) {
  dispatch_kc(sh.hd, [&](auto kc) {
    constexpr int KC = decltype(kc)::value;
    static bool ready = (allow_smem(k_fa_bwd_dq<KC>, dq_smem<KC>()), allow_smem(k_fa_bwd_dkv<KC>, dkv_smem<KC>()), true);
    (void)ready;
    dim3 gq(unsigned((sh.Tq + kFaRows - 1) / kFaRows), unsigned(sh.B * sh.H));
    k_fa_bwd_dq<KC><<<gq, 32 * kFaWarps, dq_smem<KC>(), stream>>>(dq, dvec, dout, q, k, v, out, lse, sh, mask, scale);
    check_launch("attention_backward dq (bf16)");
    if (dk || dv) {
      dim3 gk(unsigned((sh.Tk + kFaRows - 1) / kFaRows), unsigned(sh.B * sh.H));
      k_fa_bwd_dkv<KC><<<gk, 32 * kFaWarps, dkv_smem<KC>(), stream>>>(dk, dv, dvec, dout, q, k, v, lse, sh, mask,
                                                                      scale);
      check_launch("attention_backward dk/dv (bf16)");
    }
  });
}

}  // namespace cuda
}  // namespace cfp
