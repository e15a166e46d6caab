// Tensor-core flash attention in bf16 with fp32 accumulation (the backend's bf16 mode): forward
// with online softmax, and a two-kernel backward (dq over key tiles; dk/dv over query tiles) so
// that every output element is summed by one thread in a fixed order (no atomics: deterministic).
//
// Inputs and outputs stay fp32 in device memory. A pack kernel first rounds Q, K, V (and dO) to
// bf16 in a head-major workspace [B*H][T rounded up to 64][HDP] (zero rows and columns as padding),
// so each tile is one contiguous block that cp.async copies into shared memory in 16-byte pieces,
// the next tile in flight while the current one is used (two buffers). Products use mma.sync
// m16n8k16 (bf16 x bf16 -> fp32); operands needed transposed are read with ldmatrix.trans. A warp
// owns 16 rows (queries in the forward and dq pass, keys in the dk/dv pass); a block of 4 warps owns
// 64 rows. Head dims are zero-padded to HDP = 16 KC (KC in {1, 2, 4, 8}: hd <= 128); larger heads
// use the fp32 path.
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

// B fragment of the 16(k)x8(n) block at (k0, n0) of a shared array stored [k][n] (row stride ld):
// ldmatrix.trans hands each thread the (2t, 2t+1) pair along k that the mma wants.
__device__ __forceinline__ void frag_bt(uint32_t& b0, uint32_t& b1, const bf16* s, int ld, int k0, int n0) {
  const int lane = threadIdx.x % 32;
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(s + (k0 + (lane & 15)) * ld + n0));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(b0), "=r"(b1) : "r"(addr));
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// s[nt] += A x B over the 8-column tiles nt of B: A is 16 x 16 KC in registers (a[c] = columns
// 16c..16c+15), B is read from a shared array stored [n][k] (stride ld).
template <int KC, int NT>
__device__ __forceinline__ void mma_rows(float (&s)[NT][4], const uint32_t (&a)[KC][4], const bf16* b, int ld) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int c = 0; c < KC; ++c) {
      uint32_t b0, b1;
      frag_b(b0, b1, b, ld, 8 * nt, 16 * c);
      mma16816(s[nt], a[c], b0, b1);
    }
}

// The same with A read chunk by chunk from rows m0..m0+15 of a shared [m][k] array (stride lda),
// which keeps A out of the registers; each s[nt] still sums its chunks in ascending order.
template <int KC, int NT>
__device__ __forceinline__ void mma_rows_shared(float (&s)[NT][4], const bf16* a_s, int lda, int m0, const bf16* b,
                                                int ld) {
#pragma unroll
  for (int c = 0; c < KC; ++c) {
    uint32_t a[4];
    frag_a(a, a_s, lda, m0, 16 * c);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      uint32_t b0, b1;
      frag_b(b0, b1, b, ld, 8 * nt, 16 * c);
      mma16816(s[nt], a, b0, b1);
    }
  }
}

// acc[nt] += P x B: P is a row of NP C tiles (8 columns each, the k dimension) taken as A
// fragments in bf16, B is read transposed from a shared array stored [k][n] (stride ld).
template <int NP, int NO>
__device__ __forceinline__ void mma_tiles(float (&acc)[NO][4], const float (&p)[NP][4], const bf16* b, int ld) {
#pragma unroll
  for (int c = 0; c < NP / 2; ++c) {
    uint32_t a[4];
    c_to_a(a, p[2 * c], p[2 * c + 1]);
#pragma unroll
    for (int nt = 0; nt < NO; ++nt) {
      uint32_t b0, b1;
      frag_bt(b0, b1, b, ld, 16 * c, 8 * nt);
      mma16816(acc[nt], a, b0, b1);
    }
  }
}

// Starts copying `rows` packed rows (HDP bf16 each, contiguous) into shared rows of stride HDP + 8.
template <int HDP>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* src, int rows) {
  constexpr int kChunks = HDP / 8;
  for (int x = threadIdx.x; x < rows * kChunks; x += blockDim.x) {
    const int r = x / kChunks, c = x % kChunks;
    cp_async16(dst + r * (HDP + 8) + 8 * c, src + r * HDP + 8 * c);
  }
}

// Packs rows [0, T) of every (b, h) of a [B, rows_per_b, H*hd] fp32 array into bf16
// [B*H][Tp][HDP]; rows T..Tp-1 and columns hd..HDP-1 are zero. One thread writes 8 values.
template <int HDP>
__global__ void k_pack_heads(bf16* dst, const float* src, int64_t B, int64_t H, int64_t T, int64_t Tp,
                             int64_t rows_per_b, int64_t hd) {
  constexpr int kChunks = HDP / 8;
  const int64_t n = B * H * Tp * kChunks, D = H * hd;
  for (int64_t x = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; x < n; x += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = x % kChunks, r = (x / kChunks) % Tp, bh = x / (kChunks * Tp), b = bh / H, h = bh % H;
    float f[8];
    const float* row = src + (b * rows_per_b + r) * D + h * hd;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int64_t d = 8 * c + e;
      f[e] = (r < T && d < hd) ? row[d] : 0.f;
    }
    uint4 v;
    v.x = pack2(f[0], f[1]), v.y = pack2(f[2], f[3]), v.z = pack2(f[4], f[5]), v.w = pack2(f[6], f[7]);
    *reinterpret_cast<uint4*>(dst + x * 8) = v;
  }
}

inline int64_t round64(int64_t n) { return (n + 63) / 64 * 64; }

// Per-thread view of the mask for its two rows (g and g + 8 of the warp's 16).
struct RowMask {
  Ranges r[2];
  __device__ bool any(int64_t a, int64_t b) const { return r[0].overlaps(a, b) || r[1].overlaps(a, b); }
  __device__ bool all(int64_t a, int64_t b) const { return r[0].covers(a, b) && r[1].covers(a, b); }
};

// The mask of this thread's rows g and g + 8 of the warp's 16 (starting at row wr of `rows`): the
// keys each query row may see (query_rows) or the queries that may see each key row.
__device__ __forceinline__ RowMask row_mask(const AttnMask& m, int64_t wr, int64_t rows, int64_t cols,
                                            bool query_rows) {
  const int g = (threadIdx.x % 32) / 4;
  RowMask rm;
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int64_t i = wr + g + 8 * e;
    if (i < rows) rm.r[e] = query_rows ? key_ranges(m, i, cols) : query_ranges(m, i, cols);
  }
  return rm;
}

// The first tile start at or after `from` (stepping by `step`) that some row of the block may see,
// or `end`; a block-wide vote, so every thread of the block must call it.
__device__ __forceinline__ int64_t next_tile(const RowMask& rm, int64_t from, int64_t end, int step) {
  for (int64_t j = from; j < end; j += step)
    if (__syncthreads_or(rm.any(j, j + step))) return j;
  return end;
}

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

// qp/kp/vp: this call's packed heads (see k_pack_heads), Tqp/Tkp rows per head.
template <int KC>
__global__ void __launch_bounds__(32 * kFaWarps)
    k_fa_fwd(float* out, float* lse, const bf16* qp, const bf16* kp, const bf16* vp, int64_t Tqp, int64_t Tkp,
             AttnShape sh, AttnMask mask, float scale) {
  constexpr int HDP = 16 * KC, LD = HDP + 8, NO = 2 * KC, NS = kFaKeys / 8, TILE = kFaKeys * LD;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);  // [64][LD]
  bf16* ks = qs + kFaRows * LD;                  // [2][64 keys][LD]
  bf16* vs = ks + 2 * TILE;                      // [2][64 keys][LD]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t D = sh.H * sh.hd;
  const int64_t i0 = int64_t(blockIdx.x) * kFaRows, wr = i0 + 16 * warp;
  const bf16* kh = kp + bh * Tkp * HDP;
  const bf16* vh = vp + bh * Tkp * HDP;
  const RowMask rm = row_mask(mask, wr, sh.Tq, sh.Tk, true);
  load_tile<HDP>(qs, qp + (bh * Tqp + i0) * HDP, kFaRows);
  cp_async_commit();
  int64_t cur = next_tile(rm, 0, sh.Tk, kFaKeys);
  if (cur < sh.Tk) {
    load_tile<HDP>(ks, kh + cur * HDP, kFaKeys);
    load_tile<HDP>(vs, vh + cur * HDP, kFaKeys);
  }
  cp_async_commit();
  cp_async_wait<1>();  // the Q tile
  __syncthreads();
  uint32_t qa[KC][4];
#pragma unroll
  for (int c = 0; c < KC; ++c) frag_a(qa[c], qs, LD, 16 * warp, 16 * c);
  float o[NO][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const float sl2 = scale * kLog2e;
  for (int buf = 0; cur < sh.Tk; buf ^= 1) {
    const int64_t nxt = next_tile(rm, cur + kFaKeys, sh.Tk, kFaKeys);
    if (nxt < sh.Tk) {
      load_tile<HDP>(ks + (buf ^ 1) * TILE, kh + nxt * HDP, kFaKeys);
      load_tile<HDP>(vs + (buf ^ 1) * TILE, vh + nxt * HDP, kFaKeys);
    }
    cp_async_commit();
    cp_async_wait<1>();  // everything but the tile just issued
    __syncthreads();
    const bf16* kb = ks + buf * TILE;
    const bf16* vb = vs + buf * TILE;
    if (__any_sync(0xffffffffu, rm.any(cur, cur + kFaKeys))) {
      float s[NS][4] = {};
      mma_rows(s, qa, kb, LD);
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] *= sl2;
      if (!__all_sync(0xffffffffu, rm.all(cur, cur + kFaKeys))) apply_mask(s, rm, cur);
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
      mma_tiles(o, s, vb, LD);
    }
    __syncthreads();  // the buffer is refilled in the next iteration
    cur = nxt;
  }
  cp_async_wait<0>();
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
    k_fa_bwd_dq(float* dq, float* dvec, const float* dout, const float* out, const float* lse, const bf16* qp,
                const bf16* kp, const bf16* vp, const bf16* dop, int64_t Tqp, int64_t Tkp, AttnShape sh,
                AttnMask mask, float scale) {
  constexpr int HDP = 16 * KC, LD = HDP + 8, NO = 2 * KC, NS = kFaKeys / 8, TILE = kFaKeys * LD;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* qs = reinterpret_cast<bf16*>(smem_raw);  // [64][LD] Q
  bf16* dos = qs + kFaRows * LD;                 // [64][LD] dO
  bf16* ks = dos + kFaRows * LD;                 // [2][64 keys][LD]
  bf16* vs = ks + 2 * TILE;                      // [2][64 keys][LD]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t D = sh.H * sh.hd;
  const int64_t i0 = int64_t(blockIdx.x) * kFaRows, wr = i0 + 16 * warp;
  const bf16* kh = kp + bh * Tkp * HDP;
  const bf16* vh = vp + bh * Tkp * HDP;
  load_tile<HDP>(qs, qp + (bh * Tqp + i0) * HDP, kFaRows);
  load_tile<HDP>(dos, dop + (bh * Tqp + i0) * HDP, kFaRows);
  cp_async_commit();
  // D_i in fp32 from the stored dO and O, one warp-wide dot per row.
  const float* dob = dout + b * sh.Tq * D + h * sh.hd;
  const float* ob = out + b * sh.Tq * D + h * sh.hd;
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
  int64_t cur = next_tile(rm, 0, sh.Tk, kFaKeys);
  if (cur < sh.Tk) {
    load_tile<HDP>(ks, kh + cur * HDP, kFaKeys);
    load_tile<HDP>(vs, vh + cur * HDP, kFaKeys);
  }
  cp_async_commit();
  cp_async_wait<1>();  // Q and dO
  __syncthreads();
  uint32_t qa[KC][4], da[KC][4];
#pragma unroll
  for (int c = 0; c < KC; ++c) {
    frag_a(qa[c], qs, LD, 16 * warp, 16 * c);
    frag_a(da[c], dos, LD, 16 * warp, 16 * c);
  }
  float acc[NO][4] = {};
  const float sl2 = scale * kLog2e;
  for (int buf = 0; cur < sh.Tk; buf ^= 1) {
    const int64_t nxt = next_tile(rm, cur + kFaKeys, sh.Tk, kFaKeys);
    if (nxt < sh.Tk) {
      load_tile<HDP>(ks + (buf ^ 1) * TILE, kh + nxt * HDP, kFaKeys);
      load_tile<HDP>(vs + (buf ^ 1) * TILE, vh + nxt * HDP, kFaKeys);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const bf16* kb = ks + buf * TILE;
    const bf16* vb = vs + buf * TILE;
    if (__any_sync(0xffffffffu, rm.any(cur, cur + kFaKeys))) {
      float s[NS][4] = {}, dp[NS][4] = {};
      mma_rows(s, qa, kb, LD);
      mma_rows(dp, da, vb, LD);
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] = s[nt][e] * sl2 - l2[e / 2];
      if (!__all_sync(0xffffffffu, rm.all(cur, cur + kFaKeys))) apply_mask(s, rm, cur);
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float p = exp2f(s[nt][e]);  // 0 where masked (and for rows that saw no key)
          s[nt][e] = p * (dp[nt][e] - di[e / 2]) * scale;  // dS
        }
      mma_tiles(acc, s, kb, LD);
    }
    __syncthreads();
    cur = nxt;
  }
  cp_async_wait<0>();
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
// Where keys are few (cross-attention: 512 text keys) the key blocks alone do not fill the GPU, so
// gridDim.z splits the queries into ranges of `qsplit`; each split writes its partial dk/dv to
// `part` ([2][splits][B][Tk][D]) and k_sum_splits adds them in split order (deterministic).

template <int KC>
__global__ void __launch_bounds__(32 * kFaWarps)
    k_fa_bwd_dkv(float* dk, float* dv, const float* dvec, const float* lse, const bf16* qp, const bf16* kp,
                 const bf16* vp, const bf16* dop, int64_t Tqp, int64_t Tkp, AttnShape sh, AttnMask mask, float scale,
                 int64_t qsplit, float* part) {
  constexpr int HDP = 16 * KC, LD = HDP + 8, NO = 2 * KC, NS = kFaQueries / 8, TILE = kFaQueries * LD;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* ks = reinterpret_cast<bf16*>(smem_raw);  // [64 keys][LD]
  bf16* vs = ks + kFaRows * LD;                  // [64 keys][LD]
  bf16* qs = vs + kFaRows * LD;                  // [2][32 queries][LD]
  bf16* dos = qs + 2 * TILE;                     // [2][32][LD]
  __shared__ float ls[2][kFaQueries], ds[2][kFaQueries];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t D = sh.H * sh.hd, kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
  const int64_t j0 = int64_t(blockIdx.x) * kFaRows, wr = j0 + 16 * warp;
  const bf16* qh = qp + bh * Tqp * HDP;
  const bf16* dh = dop + bh * Tqp * HDP;
  const RowMask rm = row_mask(mask, wr, sh.Tk, sh.Tq, false);
  load_tile<HDP>(ks, kp + (bh * Tkp + j0) * HDP, kFaRows);
  load_tile<HDP>(vs, vp + (bh * Tkp + j0) * HDP, kFaRows);
  cp_async_commit();
  // Starts the query tile at q0 into buffer `buf` (lse and D_i by plain loads).
  auto fetch = [&](int64_t q0, int buf) {
    load_tile<HDP>(qs + buf * TILE, qh + q0 * HDP, kFaQueries);
    load_tile<HDP>(dos + buf * TILE, dh + q0 * HDP, kFaQueries);
    for (int x = threadIdx.x; x < kFaQueries; x += blockDim.x) {
      const int64_t i = q0 + x;
      const float li = i < sh.Tq ? lse[(b * sh.H + h) * sh.Tq + i] : -INFINITY;
      ls[buf][x] = isinf(li) ? INFINITY : li * kLog2e;  // +inf: p = 0 for queries that saw no key
      ds[buf][x] = i < sh.Tq ? dvec[(b * sh.H + h) * sh.Tq + i] : 0.f;
    }
  };
  const int64_t qbeg = int64_t(blockIdx.z) * qsplit, qend = min(sh.Tq, qbeg + qsplit);
  int64_t cur = next_tile(rm, qbeg, qend, kFaQueries);
  if (cur < qend) fetch(cur, 0);
  cp_async_commit();
  float ak[NO][4] = {}, av[NO][4] = {};
  const float sl2 = scale * kLog2e;
  for (int buf = 0; cur < qend; buf ^= 1) {
    const int64_t nxt = next_tile(rm, cur + kFaQueries, qend, kFaQueries);
    if (nxt < qend) fetch(nxt, buf ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const bf16* qb = qs + buf * TILE;
    const bf16* db = dos + buf * TILE;
    if (__any_sync(0xffffffffu, rm.any(cur, cur + kFaQueries))) {
      float s[NS][4] = {}, dp[NS][4] = {};
      mma_rows_shared<KC>(s, ks, LD, 16 * warp, qb, LD);
      mma_rows_shared<KC>(dp, vs, LD, 16 * warp, db, LD);
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] = s[nt][e] * sl2 - ls[buf][8 * nt + 2 * t + (e & 1)];
      if (!__all_sync(0xffffffffu, rm.all(cur, cur + kFaQueries))) apply_mask(s, rm, cur);
      float p[NS][4];
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          p[nt][e] = exp2f(s[nt][e]);
          s[nt][e] = p[nt][e] * (dp[nt][e] - ds[buf][8 * nt + 2 * t + (e & 1)]) * scale;  // dS^T
        }
      mma_tiles(av, p, db, LD);
      mma_tiles(ak, s, qb, LD);
    }
    __syncthreads();
    cur = nxt;
  }
  cp_async_wait<0>();
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t j = wr + g + 8 * r;
    if (j >= sh.Tk) continue;
    const int64_t off = (b * kvs + j) * D + h * sh.hd;
    const int64_t poff = ((int64_t(blockIdx.z) * sh.B + b) * sh.Tk + j) * D + h * sh.hd;
    const int64_t pstride = int64_t(gridDim.z) * sh.B * sh.Tk * D;  // dk partials, then dv partials
#pragma unroll
    for (int nt = 0; nt < NO; ++nt) {
      const int d = 8 * nt + 2 * t;
      for (int e = 0; e < 2; ++e) {
        if (d + e >= sh.hd) continue;
        if (part) {
          part[poff + d + e] = ak[nt][2 * r + e];
          part[pstride + poff + d + e] = av[nt][2 * r + e];
          continue;
        }
        if (dk) dk[off + d + e] += ak[nt][2 * r + e];
        if (dv) dv[off + d + e] += av[nt][2 * r + e];
      }
    }
  }
}

// dk/dv += the split partials of k_fa_bwd_dkv, summed in split order.
__global__ void k_sum_splits(float* dk, float* dv, const float* part, int64_t splits, int64_t B, int64_t Tk,
                             int64_t kvs, int64_t D) {
  const int64_t n = B * Tk * D, pstride = splits * n;
  for (int64_t x = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; x < n; x += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = x / (Tk * D), j = (x / D) % Tk, c = x % D;
    float sk = 0.f, sv = 0.f;
    for (int64_t z = 0; z < splits; ++z) sk += part[z * n + x], sv += part[pstride + z * n + x];
    const int64_t off = (b * kvs + j) * D + c;
    if (dk) dk[off] += sk;
    if (dv) dv[off] += sv;
  }
}

// Query splits of the dk/dv pass: enough blocks for two per multiprocessor of a 132-SM H200
// (a constant, not read off the device, so results do not depend on the GPU), in whole tiles.
int64_t dkv_qsplit(const AttnShape& sh) {
  const int64_t blocks = (round64(sh.Tk) / kFaRows) * sh.B * sh.H, tq = round64(sh.Tq);
  const int64_t splits = std::max<int64_t>(1, std::min<int64_t>((264 + blocks - 1) / blocks, tq / 256));
  return (tq / splits + kFaQueries - 1) / kFaQueries * kFaQueries;
}

template <int KC>
constexpr size_t fwd_smem() {
  return size_t(5 * kFaRows * (16 * KC + 8)) * sizeof(bf16);  // Q + two K and two V tiles
}
template <int KC>
constexpr size_t dq_smem() {
  return size_t(6 * kFaRows * (16 * KC + 8)) * sizeof(bf16);  // Q, dO + two K and two V tiles
}
template <int KC>
constexpr size_t dkv_smem() {
  return size_t((2 * kFaRows + 4 * kFaQueries) * (16 * KC + 8)) * sizeof(bf16);  // K, V + two Q, dO tiles
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

int64_t padded_hd(int64_t hd) { return hd <= 16 ? 16 : hd <= 32 ? 32 : hd <= 64 ? 64 : 128; }

// Packs `T` rows per batch of an fp32 [B, rows_per_b, H*hd] array into dst (see k_pack_heads).
template <int HDP>
void pack(cudaStream_t stream, bf16* dst, const float* src, const AttnShape& sh, int64_t T, int64_t rows_per_b) {
  const int64_t n = sh.B * sh.H * round64(T) * (HDP / 8);
  k_pack_heads<HDP><<<grid_for(n), kThreads, 0, stream>>>(dst, src, sh.B, sh.H, T, round64(T), rows_per_b, sh.hd);
  check_launch("attention pack (bf16)");
}

}  // namespace

bool attention_bf16_supports(const AttnShape& sh) { return sh.hd > 0 && sh.hd <= 128; }

size_t attention_bf16_workspace(const AttnShape& sh) {
  const int64_t splits = (round64(sh.Tq) + dkv_qsplit(sh) - 1) / dkv_qsplit(sh);
  const size_t packed = size_t(sh.B * sh.H * padded_hd(sh.hd) * (2 * round64(sh.Tq) + 2 * round64(sh.Tk))) * sizeof(bf16);
  const size_t partials = splits > 1 ? size_t(2 * splits * sh.B * sh.Tk * sh.H * sh.hd) * sizeof(float) : 0;
  return packed + partials;
}

void attention_forward_bf16(cudaStream_t stream, void* ws, float* out, float* lse, const float* q, const float* k,
                            const float* v, const AttnShape& sh, const AttnMask& mask, float scale) {
  dispatch_kc(sh.hd, [&](auto kc) {
    constexpr int KC = decltype(kc)::value, HDP = 16 * KC;
    static bool ready = (allow_smem(k_fa_fwd<KC>, fwd_smem<KC>()), true);
    (void)ready;
    const int64_t Tqp = round64(sh.Tq), Tkp = round64(sh.Tk), kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
    bf16* qp = static_cast<bf16*>(ws);
    bf16* kp = qp + sh.B * sh.H * Tqp * HDP;
    bf16* vp = kp + sh.B * sh.H * Tkp * HDP;
    pack<HDP>(stream, qp, q, sh, sh.Tq, sh.Tq);
    pack<HDP>(stream, kp, k, sh, sh.Tk, kvs);
    pack<HDP>(stream, vp, v, sh, sh.Tk, kvs);
    dim3 grid(unsigned(Tqp / kFaRows), unsigned(sh.B * sh.H));
    k_fa_fwd<KC><<<grid, 32 * kFaWarps, fwd_smem<KC>(), stream>>>(out, lse, qp, kp, vp, Tqp, Tkp, sh, mask, scale);
    check_launch("attention_forward (bf16)");
  });
}

void attention_backward_bf16(cudaStream_t stream, void* ws, float* dq, float* dk, float* dv, float* dvec,
                             const float* dout, const float* q, const float* k, const float* v, const float* out,
                             const float* lse, const AttnShape& sh, const AttnMask& mask, float scale) {
  dispatch_kc(sh.hd, [&](auto kc) {
    constexpr int KC = decltype(kc)::value, HDP = 16 * KC;
    static bool ready = (allow_smem(k_fa_bwd_dq<KC>, dq_smem<KC>()), allow_smem(k_fa_bwd_dkv<KC>, dkv_smem<KC>()), true);
    (void)ready;
    const int64_t Tqp = round64(sh.Tq), Tkp = round64(sh.Tk), kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
    bf16* qp = static_cast<bf16*>(ws);
    bf16* dop = qp + sh.B * sh.H * Tqp * HDP;
    bf16* kp = dop + sh.B * sh.H * Tqp * HDP;
    bf16* vp = kp + sh.B * sh.H * Tkp * HDP;
    pack<HDP>(stream, qp, q, sh, sh.Tq, sh.Tq);
    pack<HDP>(stream, dop, dout, sh, sh.Tq, sh.Tq);
    pack<HDP>(stream, kp, k, sh, sh.Tk, kvs);
    pack<HDP>(stream, vp, v, sh, sh.Tk, kvs);
    dim3 gq(unsigned(Tqp / kFaRows), unsigned(sh.B * sh.H));
    k_fa_bwd_dq<KC><<<gq, 32 * kFaWarps, dq_smem<KC>(), stream>>>(dq, dvec, dout, out, lse, qp, kp, vp, dop, Tqp, Tkp,
                                                                  sh, mask, scale);
    check_launch("attention_backward dq (bf16)");
    if (dk || dv) {
      const int64_t qsplit = dkv_qsplit(sh), splits = (Tqp + qsplit - 1) / qsplit;
      float* part = splits > 1 ? reinterpret_cast<float*>(vp + sh.B * sh.H * Tkp * HDP) : nullptr;
      dim3 gk(unsigned(Tkp / kFaRows), unsigned(sh.B * sh.H), unsigned(splits));
      k_fa_bwd_dkv<KC><<<gk, 32 * kFaWarps, dkv_smem<KC>(), stream>>>(dk, dv, dvec, lse, qp, kp, vp, dop, Tqp, Tkp, sh,
                                                                      mask, scale, qsplit, part);
      check_launch("attention_backward dk/dv (bf16)");
      if (part) {
        k_sum_splits<<<grid_for(sh.B * sh.Tk * sh.H * sh.hd), kThreads, 0, stream>>>(
            dk, dv, part, splits, sh.B, sh.Tk, sh.kv_rows ? sh.kv_rows : sh.Tk, sh.H * sh.hd);
        check_launch("attention_backward split sum (bf16)");
      }
    }
  });
}

}  // namespace cuda
}  // namespace cfp
