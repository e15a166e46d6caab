// Tensor-core flash attention in bf16 with fp32 accumulation (the backend's bf16 mode): forward
// with online softmax, and a backward in which every output element is summed by one thread in a
// fixed order (no atomics: deterministic). Backward, stored-dS form (where the dS tiles fit in
// kDsCapBytes): D_i = dO_i . O_i first, then one pass over query tiles per key block recomputes S
// and dP once, adds dk and dv and stores dS (bf16, the operand the dq product takes anyway) tile
// by tile, then dq = dS K as a plain GEMM over the stored tiles. Otherwise (larger shapes) two
// passes that each recompute S and dP: dq over key tiles, dk/dv over query tiles.
//
// Inputs and outputs stay fp32 in device memory. A pack kernel first rounds Q, K, V (and dO) to
// bf16 in a head-major workspace [B*H][T rounded up][HDP] (zero rows and columns as padding; query
// rows to 128, key rows to 64), so each tile is one contiguous block that cp.async copies into
// shared memory in 16-byte pieces, the next tile in flight while the current one is used (two
// buffers). Products use mma.sync m16n8k16 (bf16 x bf16 -> fp32) with every operand read from
// shared memory by ldmatrix.x4 (four 8x8 matrices: one A fragment or the B fragments of two 8-wide
// column tiles per instruction; .trans where the operand is needed transposed).
//   forward: a warp owns 32 query rows (two 16-row tiles, so each K/V fragment feeds two mmas), a
//            block of 4 warps 128 rows; Q fragments are re-read from shared memory per key tile.
//   dq:      a warp owns 16 query rows (Q and dO fragments kept in registers), a block 64 rows;
//            from stored dS: 32 rows (two tiles share each K fragment), a block 128 rows.
//   dk/dv:   a warp owns 16 key rows, a block 64 keys, walking query tiles of 64.
// The mask is kept per row as two int32 ranges in shared memory (filled once per block); tiles
// no row of the block may see are skipped, tiles every row of a warp sees fully skip the masking.
// exp2 runs as ex2.approx.ftz (softmax scale folded into one FMA). Head dims are zero-padded to
// HDP = 16 KC (KC in {1, 2, 4, 8}: hd <= 128); larger heads use the fp32 path.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with 16-bit operands), g = lane / 4, t = lane % 4:
//   A 16x16 (row): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B 16x8  (col): b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g)
//   C 16x8  (f32): c0, c1 = (g, 2t), (g, 2t+1); c2, c3 = (g+8, 2t), (g+8, 2t+1)
// so a C tile pair (keys 16c..16c+15) is directly the A fragment of the next product (P V, dS K).
#include <cuda_bf16.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cuda/cuda_common.cuh"
#include "cuda/kernels.h"

namespace cfp {
namespace cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kFaWarps = 4, kFaThreads = 32 * kFaWarps;
constexpr int kBwdRows = 16 * kFaWarps;  // rows of a backward block (queries in dq, keys in dk/dv)
constexpr int kFaKeys = 64;              // keys per tile (forward, dq)
constexpr int kFaQueries = 64;           // queries per tile (dk/dv)
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

// 2^x with flush-to-zero (ex2.approx.ftz: -inf -> +0); deterministic like any single instruction.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// A fragment of the 16x16 block at (m0, k0) of a [m][k] shared array (row stride ld): lanes 0-15
// address rows m0..m0+15 at column k0, lanes 16-31 the same rows at k0 + 8.
__device__ __forceinline__ void ldsm_a(uint32_t (&a)[4], const bf16* s, int ld, int m0, int k0) {
  const int lane = threadIdx.x % 32;
  ldsm_x4(a, s + (m0 + (lane & 15)) * ld + k0 + (lane >> 4) * 8);
}

// B fragments of the two 16(k)x8(n) blocks at (k0, n0) and (k0, n0 + 8) of a shared array stored
// [n][k] (row stride ld): b[0], b[1] for columns n0.., b[2], b[3] for n0 + 8..
__device__ __forceinline__ void ldsm_b2(uint32_t (&b)[4], const bf16* s, int ld, int n0, int k0) {
  const int lane = threadIdx.x % 32;
  ldsm_x4(b, s + (n0 + ((lane >> 4) << 3) + (lane & 7)) * ld + k0 + ((lane >> 3) & 1) * 8);
}

// The same two B blocks from a shared array stored [k][n] (row stride ld), read transposed.
__device__ __forceinline__ void ldsm_bt2(uint32_t (&b)[4], const bf16* s, int ld, int k0, int n0) {
  const int lane = threadIdx.x % 32;
  ldsm_x4_trans(b, s + (k0 + (lane & 15)) * ld + n0 + (lane >> 4) * 8);
}

// The A fragment of the 16x16 block at (m0, k0) from a shared array stored [k][m] (row stride ld),
// read transposed: matrices (m0, k0), (m0 + 8, k0), (m0, k0 + 8), (m0 + 8, k0 + 8) in a0..a3 order.
__device__ __forceinline__ void ldsm_at(uint32_t (&a)[4], const bf16* s, int ld, int k0, int m0) {
  const int lane = threadIdx.x % 32;
  ldsm_x4_trans(a, s + (k0 + (lane & 7) + ((lane >> 4) << 3)) * ld + m0 + ((lane >> 3) & 1) * 8);
}

// The A fragment of keys/queries 16c..16c+15 from a row of C tiles (two 8-column tiles per chunk).
__device__ __forceinline__ void c_to_a(uint32_t a[4], const float c0[4], const float c1[4]) {
  a[0] = pack2(c0[0], c0[1]);
  a[1] = pack2(c0[2], c0[3]);
  a[2] = pack2(c1[0], c1[1]);
  a[3] = pack2(c1[2], c1[3]);
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(smem)), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// s[mt][nt] += A_mt x B over the 8-column tiles nt of B, for MT 16-row tiles of A read from rows
// m0 + 16 mt of a shared [m][k] array (stride lda); B is read from a shared array stored [n][k]
// (stride ldb). Every s[mt][nt] sums its 16-wide k chunks in ascending order.
template <int MT, int KC, int NT>
__device__ __forceinline__ void mma_ab(float (&s)[MT][NT][4], const bf16* a_s, int lda, int m0, const bf16* b_s,
                                       int ldb) {
  static_assert(NT % 2 == 0, "column tiles come in pairs");
#pragma unroll
  for (int c = 0; c < KC; ++c) {
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) ldsm_a(a[mt], a_s, lda, m0 + 16 * mt, 16 * c);
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t b[4];
      ldsm_b2(b, b_s, ldb, 16 * np, 16 * c);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma16816(s[mt][2 * np], a[mt], b[0], b[1]);
        mma16816(s[mt][2 * np + 1], a[mt], b[2], b[3]);
      }
    }
  }
}

// The same for one 16-row tile of A held in registers (a[c] = columns 16c..16c+15).
template <int KC, int NT>
__device__ __forceinline__ void mma_rb(float (&s)[NT][4], const uint32_t (&a)[KC][4], const bf16* b_s, int ldb) {
#pragma unroll
  for (int c = 0; c < KC; ++c)
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t b[4];
      ldsm_b2(b, b_s, ldb, 16 * np, 16 * c);
      mma16816(s[2 * np], a[c], b[0], b[1]);
      mma16816(s[2 * np + 1], a[c], b[2], b[3]);
    }
}

// acc[mt][nt] += P_mt x B: P_mt is a row of NP C tiles (8 columns each, the k dimension) taken as
// A fragments in bf16, B is read transposed from a shared array stored [k][n] (stride ld).
template <int MT, int NP, int NO>
__device__ __forceinline__ void mma_pb(float (&acc)[MT][NO][4], const float (&p)[MT][NP][4], const bf16* b_s, int ld) {
  static_assert(NP % 2 == 0 && NO % 2 == 0, "tiles come in pairs");
#pragma unroll
  for (int c = 0; c < NP / 2; ++c) {
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) c_to_a(a[mt], p[mt][2 * c], p[mt][2 * c + 1]);
#pragma unroll
    for (int np = 0; np < NO / 2; ++np) {
      uint32_t b[4];
      ldsm_bt2(b, b_s, ld, 16 * c, 16 * np);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma16816(acc[mt][2 * np], a[mt], b[0], b[1]);
        mma16816(acc[mt][2 * np + 1], a[mt], b[2], b[3]);
      }
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
inline int64_t round128(int64_t n) { return (n + 127) / 128 * 128; }

// ---- masks: one row's visible columns as two int32 ranges [x, y) and [z, w) -------------------

__device__ __forceinline__ int4 to_int4(const Ranges& r) {
  return make_int4(int(r.lo0), int(r.hi0), int(r.lo1), int(r.hi1));
}
__device__ __forceinline__ bool overlaps(int4 r, int a, int b) {  // [a, b)
  return (r.x < r.y && r.x < b && a < r.y) || (r.z < r.w && r.z < b && a < r.w);
}
__device__ __forceinline__ bool covers(int4 r, int a, int b) {  // [a, b) inside one range
  return (a >= r.x && b <= r.y) || (a >= r.z && b <= r.w);
}
__device__ __forceinline__ bool has(int4 r, int j) { return (j >= r.x && j < r.y) || (j >= r.z && j < r.w); }

// The visible columns of row i (of `rows`): keys of a query row (query_rows) or the queries that
// see a key row; empty beyond the last row.
__device__ __forceinline__ int4 row_range(const AttnMask& m, int64_t i, int64_t rows, int64_t cols, bool query_rows) {
  if (i >= rows) return make_int4(0, 0, 0, 0);
  return to_int4(query_rows ? key_ranges(m, i, cols) : query_ranges(m, i, cols));
}

// The first tile start at or after `from` (stepping by `step`) that some row of the block may see,
// or `end`; a block-wide vote over each thread's row `mine`, so every thread must call it.
__device__ __forceinline__ int next_tile(int4 mine, int from, int end, int step) {
  for (int j = from; j < end; j += step)
    if (__syncthreads_or(overlaps(mine, j, j + step))) return j;
  return end;
}

// Sets masked entries of MT row tiles of C tiles to -inf: row tile mt holds the rows r0 + 16 mt + g
// (+ 8) of the block, whose ranges are rr[...]; columns col0 + 8 nt + 2t + e.
template <int MT, int NT>
__device__ __forceinline__ void apply_mask(float (&s)[MT][NT][4], const int4* rr, int r0, int col0) {
  const int g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int4 r = rr[r0 + 16 * mt + g + 8 * e];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int h = 0; h < 2; ++h)
          if (!has(r, col0 + 8 * nt + 2 * t + h)) s[mt][nt][2 * e + h] = -INFINITY;
    }
}

// ---- forward ---------------------------------------------------------------------------------

// qp/kp/vp: this call's packed heads (see k_pack_heads), Tqp/Tkp rows per head. A warp owns MT
// 16-row tiles (MT = 2: each K/V fragment feeds two mmas), a block 4 warps: ROWS = 64 MT rows.
// out16 (optional): the output's bf16 rounding too, laid out as out (the backend's kept copy).
template <int KC, int MT>
__global__ void __launch_bounds__(kFaThreads, 2)
    k_fa_fwd(float* out, bf16* out16, float* lse, const bf16* qp, const bf16* kp, const bf16* vp, int64_t Tqp,
             int64_t Tkp, AttnShape sh, AttnMask mask, float scale) {
  constexpr int HDP = 16 * KC, LD = HDP + 8, NO = 2 * KC, NS = kFaKeys / 8, TILE = kFaKeys * LD;
  constexpr int ROWS = 16 * MT * kFaWarps, WROWS = 16 * MT;
  static_assert(ROWS <= kFaThreads, "one mask row per thread");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  int4* rr = reinterpret_cast<int4*>(smem_raw);  // [ROWS] key ranges of the block's rows
  bf16* qs = reinterpret_cast<bf16*>(rr + ROWS);  // [ROWS][LD]
  bf16* ks = qs + ROWS * LD;                      // [2][64 keys][LD]
  bf16* vs = ks + 2 * TILE;                            // [2][64 keys][LD]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t D = sh.H * sh.hd;
  const int Tk = int(sh.Tk);
  const int64_t i0 = int64_t(blockIdx.x) * ROWS;
  const int w0 = WROWS * warp;  // the warp's first row in the block
  const bf16* kh = kp + bh * Tkp * HDP;
  const bf16* vh = vp + bh * Tkp * HDP;
  load_tile<HDP>(qs, qp + (bh * Tqp + i0) * HDP, ROWS);
  cp_async_commit();
  // Masks stay in shared memory (read again per tile: fewer registers); other threads read them
  // after the first barrier (next_tile's vote). `mine`: a row for the block vote, `wmine`: a row of
  // this warp for the warp votes (the same row when MT = 2).
  if (threadIdx.x < ROWS) rr[threadIdx.x] = row_range(mask, i0 + threadIdx.x, sh.Tq, sh.Tk, true);
  const int4* mine = rr + threadIdx.x % ROWS;
  const int4* wmine = rr + w0 + lane % WROWS;
  int cur = next_tile(row_range(mask, i0 + threadIdx.x % ROWS, sh.Tq, sh.Tk, true), 0, Tk, kFaKeys);
  if (cur < Tk) {
    load_tile<HDP>(ks, kh + int64_t(cur) * HDP, kFaKeys);
    load_tile<HDP>(vs, vh + int64_t(cur) * HDP, kFaKeys);
  }
  cp_async_commit();
  float o[MT][NO][4] = {};
  float m[2 * MT], l[2 * MT];
#pragma unroll
  for (int r = 0; r < 2 * MT; ++r) m[r] = -INFINITY, l[r] = 0.f;
  const float sl2 = scale * kLog2e;  // > 0 (checked on the host): max of s == max of s * sl2
  for (int buf = 0; cur < Tk; buf ^= 1) {
    // next_tile's vote is also the barrier after which the other buffer may be refilled.
    const int nxt = next_tile(*mine, cur + kFaKeys, Tk, kFaKeys);
    if (nxt < Tk) {
      load_tile<HDP>(ks + (buf ^ 1) * TILE, kh + int64_t(nxt) * HDP, kFaKeys);
      load_tile<HDP>(vs + (buf ^ 1) * TILE, vh + int64_t(nxt) * HDP, kFaKeys);
    }
    cp_async_commit();
    cp_async_wait<1>();  // everything but the tile just issued
    __syncthreads();
    const bf16* kb = ks + buf * TILE;
    const bf16* vb = vs + buf * TILE;
    if (__any_sync(0xffffffffu, overlaps(*wmine, cur, cur + kFaKeys))) {
      float s[MT][NS][4] = {};
      mma_ab<MT, KC, NS>(s, qs, LD, w0, kb, LD);
      if (!__all_sync(0xffffffffu, covers(*wmine, cur, cur + kFaKeys))) apply_mask<MT, NS>(s, rr, w0, cur);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int r = 2 * mt + e;
          float mx = m[r];
#pragma unroll
          for (int nt = 0; nt < NS; ++nt) mx = fmaxf(mx, fmaxf(s[mt][nt][2 * e], s[mt][nt][2 * e + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float corr = mx == -INFINITY ? 1.f : fast_exp2((m[r] - mx) * sl2);
          m[r] = mx;
          const float base = mx == -INFINITY ? 0.f : mx * sl2;
          float sum = 0.f;
#pragma unroll
          for (int nt = 0; nt < NS; ++nt)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
              const float p = fast_exp2(fmaf(s[mt][nt][2 * e + hh], sl2, -base));
              s[mt][nt][2 * e + hh] = p;
              sum += p;
            }
          l[r] = l[r] * corr + sum;  // a per-thread partial, summed over the 4 lanes at the end
#pragma unroll
          for (int nt = 0; nt < NO; ++nt) o[mt][nt][2 * e] *= corr, o[mt][nt][2 * e + 1] *= corr;
        }
      mma_pb<MT, NS, NO>(o, s, vb, LD);
    }
    cur = nxt;
  }
  cp_async_wait<0>();
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int r = 2 * mt + e;
      float lr = l[r];
      lr += __shfl_xor_sync(0xffffffffu, lr, 1);
      lr += __shfl_xor_sync(0xffffffffu, lr, 2);
      const int64_t i = i0 + w0 + 16 * mt + g + 8 * e;
      if (i >= sh.Tq) continue;
      const bool none = !(lr > 0.f);
      const float inv = none ? 0.f : 1.f / lr;
      const int64_t ro = (b * sh.Tq + i) * D + h * sh.hd;
#pragma unroll
      for (int nt = 0; nt < NO; ++nt) {
        const int d = 8 * nt + 2 * t;
        const float v0 = o[mt][nt][2 * e] * inv, v1 = o[mt][nt][2 * e + 1] * inv;
        if (d + 1 < sh.hd) {
          *reinterpret_cast<float2*>(out + ro + d) = make_float2(v0, v1);
          if (out16) *reinterpret_cast<uint32_t*>(out16 + ro + d) = pack2(v0, v1);
        } else if (d < sh.hd) {
          out[ro + d] = v0;
          if (out16) out16[ro + d] = __float2bfloat16_rn(v0);
        }
      }
      if (t == 0) lse[(b * sh.H + h) * sh.Tq + i] = none ? -INFINITY : (m[r] * sl2 + log2f(lr)) / kLog2e;
    }
}

// ---- backward: dq (and D_i = dO_i . O_i, saved for the dk/dv pass) ----------------------------

template <int KC>
__global__ void __launch_bounds__(kFaThreads, 2)
    k_fa_bwd_dq(float* dq, float* dvec, const float* dout, const float* out, const float* lse, const bf16* qp,
                const bf16* kp, const bf16* vp, const bf16* dop, int64_t Tqp, int64_t Tkp, AttnShape sh,
                AttnMask mask, float scale) {
  constexpr int HDP = 16 * KC, LD = HDP + 8, NO = 2 * KC, NS = kFaKeys / 8, TILE = kFaKeys * LD;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  int4* rr = reinterpret_cast<int4*>(smem_raw);       // [64] key ranges of the block's rows
  bf16* qs = reinterpret_cast<bf16*>(rr + kBwdRows);  // [64][LD] Q
  bf16* dos = qs + kBwdRows * LD;                     // [64][LD] dO
  bf16* ks = dos + kBwdRows * LD;                     // [2][64 keys][LD]
  bf16* vs = ks + 2 * TILE;                           // [2][64 keys][LD]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t D = sh.H * sh.hd;
  const int Tk = int(sh.Tk);
  const int64_t i0 = int64_t(blockIdx.x) * kBwdRows;
  const int w0 = 16 * warp;
  const int64_t wr = i0 + w0;
  const bf16* kh = kp + bh * Tkp * HDP;
  const bf16* vh = vp + bh * Tkp * HDP;
  load_tile<HDP>(qs, qp + (bh * Tqp + i0) * HDP, kBwdRows);
  load_tile<HDP>(dos, dop + (bh * Tqp + i0) * HDP, kBwdRows);
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
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int64_t i = wr + g + 8 * e;
    if (i < sh.Tq) l2[e] = lse[(b * sh.H + h) * sh.Tq + i] * kLog2e;  // -inf: the query saw no key
  }
  // A query that saw no key (lse -inf) gets no gradient: its range is empty.
  auto range_of = [&](int x) {
    const int64_t i = i0 + x;
    if (i >= sh.Tq || isinf(lse[(b * sh.H + h) * sh.Tq + i])) return make_int4(0, 0, 0, 0);
    return row_range(mask, i, sh.Tq, sh.Tk, true);
  };
  const int4 mine = range_of(threadIdx.x % kBwdRows);  // the block vote (rows repeat per 64 threads)
  const int4 wmine = range_of(w0 + (lane & 15));       // the warp vote
  if (threadIdx.x < kBwdRows) rr[threadIdx.x] = mine;
  int cur = next_tile(mine, 0, Tk, kFaKeys);
  if (cur < Tk) {
    load_tile<HDP>(ks, kh + int64_t(cur) * HDP, kFaKeys);
    load_tile<HDP>(vs, vh + int64_t(cur) * HDP, kFaKeys);
  }
  cp_async_commit();
  cp_async_wait<1>();  // Q and dO
  __syncthreads();
  uint32_t qa[KC][4], da[KC][4];
#pragma unroll
  for (int c = 0; c < KC; ++c) {
    ldsm_a(qa[c], qs, LD, w0, 16 * c);
    ldsm_a(da[c], dos, LD, w0, 16 * c);
  }
  float acc[1][NO][4] = {};
  const float sl2 = scale * kLog2e;
  for (int buf = 0; cur < Tk; buf ^= 1) {
    const int nxt = next_tile(mine, cur + kFaKeys, Tk, kFaKeys);
    if (nxt < Tk) {
      load_tile<HDP>(ks + (buf ^ 1) * TILE, kh + int64_t(nxt) * HDP, kFaKeys);
      load_tile<HDP>(vs + (buf ^ 1) * TILE, vh + int64_t(nxt) * HDP, kFaKeys);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const bf16* kb = ks + buf * TILE;
    const bf16* vb = vs + buf * TILE;
    if (__any_sync(0xffffffffu, overlaps(wmine, cur, cur + kFaKeys))) {
      float s[1][NS][4] = {}, dp[NS][4] = {};
      mma_rb<KC, NS>(s[0], qa, kb, LD);
      mma_rb<KC, NS>(dp, da, vb, LD);
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[0][nt][e] = fmaf(s[0][nt][e], sl2, -l2[e / 2]);
      if (!__all_sync(0xffffffffu, covers(wmine, cur, cur + kFaKeys))) apply_mask<1, NS>(s, rr, w0, cur);
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float p = fast_exp2(s[0][nt][e]);  // 0 where masked (and for rows that saw no key)
          s[0][nt][e] = p * (dp[nt][e] - di[e / 2]) * scale;  // dS
        }
      mma_pb<1, NS, NO>(acc, s, kb, LD);
    }
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
      if (d < sh.hd) row[d] += acc[0][nt][2 * r];
      if (d + 1 < sh.hd) row[d + 1] += acc[0][nt][2 * r + 1];
    }
  }
}

// ---- backward: dk and dv (rows = keys, walking query tiles) ----------------------------------
// Where keys are few (cross-attention: 512 text keys) the key blocks alone do not fill the GPU, so
// gridDim.z splits the queries into ranges of `qsplit`; each split writes its partial dk/dv to
// `part` ([2][splits][B][Tk][D]) and k_sum_splits adds them in split order (deterministic).

// With `dsb` (NQ = 64 only) it also stores each visited tile's dS^T, [64 keys][64 queries] in bf16,
// at tile (bh, query tile, key block) of [B*H][nqt][nkt] (zeros where a warp skips the tile).
template <int KC, int NQ>
__global__ void __launch_bounds__(kFaThreads, 2)
    k_fa_bwd_dkv(float* dk, float* dv, const float* dvec, const float* lse, const bf16* qp, const bf16* kp,
                 const bf16* vp, const bf16* dop, int64_t Tqp, int64_t Tkp, AttnShape sh, AttnMask mask, float scale,
                 int64_t qsplit, float* part, bf16* dsb, int64_t nqt, int64_t nkt) {
  constexpr int HDP = 16 * KC, LD = HDP + 8, NO = 2 * KC, NS = NQ / 8, TILE = NQ * LD;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  int4* rr = reinterpret_cast<int4*>(smem_raw);       // [64] query ranges of the block's key rows
  bf16* ks = reinterpret_cast<bf16*>(rr + kBwdRows);  // [64 keys][LD]
  bf16* vs = ks + kBwdRows * LD;                      // [64 keys][LD]
  bf16* qs = vs + kBwdRows * LD;                      // [2][NQ queries][LD]
  bf16* dos = qs + 2 * TILE;                          // [2][NQ][LD]
  __shared__ float ls[2][NQ], ds[2][NQ];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t D = sh.H * sh.hd, kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
  const int64_t j0 = int64_t(blockIdx.x) * kBwdRows;
  const int w0 = 16 * warp;
  const int64_t wr = j0 + w0;
  const bf16* qh = qp + bh * Tqp * HDP;
  const bf16* dh = dop + bh * Tqp * HDP;
  const int4 mine = row_range(mask, j0 + threadIdx.x % kBwdRows, sh.Tk, sh.Tq, false);
  const int4 wmine = row_range(mask, j0 + w0 + (lane & 15), sh.Tk, sh.Tq, false);
  if (threadIdx.x < kBwdRows) rr[threadIdx.x] = mine;
  load_tile<HDP>(ks, kp + (bh * Tkp + j0) * HDP, kBwdRows);
  load_tile<HDP>(vs, vp + (bh * Tkp + j0) * HDP, kBwdRows);
  cp_async_commit();
  // Starts the query tile at q0 into buffer `buf` (lse and D_i by plain loads).
  auto fetch = [&](int q0, int buf) {
    load_tile<HDP>(qs + buf * TILE, qh + int64_t(q0) * HDP, NQ);
    load_tile<HDP>(dos + buf * TILE, dh + int64_t(q0) * HDP, NQ);
    for (int x = threadIdx.x; x < NQ; x += blockDim.x) {
      const int64_t i = q0 + x;
      const float li = i < sh.Tq ? lse[(b * sh.H + h) * sh.Tq + i] : -INFINITY;
      ls[buf][x] = isinf(li) ? INFINITY : li * kLog2e;  // +inf: p = 0 for queries that saw no key
      ds[buf][x] = i < sh.Tq ? dvec[(b * sh.H + h) * sh.Tq + i] : 0.f;
    }
  };
  const int qbeg = int(int64_t(blockIdx.z) * qsplit), qend = int(min(sh.Tq, int64_t(qbeg) + qsplit));
  int cur = next_tile(mine, qbeg, qend, NQ);
  if (cur < qend) fetch(cur, 0);
  cp_async_commit();
  float ak[1][NO][4] = {}, av[1][NO][4] = {};
  const float sl2 = scale * kLog2e;
  for (int buf = 0; cur < qend; buf ^= 1) {
    // The vote is the barrier after which buffer buf ^ 1 (and its ls/ds) may be refilled.
    const int nxt = next_tile(mine, cur + NQ, qend, NQ);
    if (nxt < qend) fetch(nxt, buf ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const bf16* qb = qs + buf * TILE;
    const bf16* db = dos + buf * TILE;
    // This warp's 16 rows of the stored dS^T tile (when storing).
    uint32_t* dst = NQ == 64 && dsb ? reinterpret_cast<uint32_t*>(dsb + ((bh * nqt + cur / NQ) * nkt + blockIdx.x) * 4096 +
                                                                   w0 * NQ)
                                    : nullptr;
    if (__any_sync(0xffffffffu, overlaps(wmine, cur, cur + NQ))) {
      float s[1][NS][4] = {}, dp[1][NS][4] = {};
      mma_ab<1, KC, NS>(s, ks, LD, w0, qb, LD);
      mma_ab<1, KC, NS>(dp, vs, LD, w0, db, LD);
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[0][nt][e] = fmaf(s[0][nt][e], sl2, -ls[buf][8 * nt + 2 * t + (e & 1)]);
      if (!__all_sync(0xffffffffu, covers(wmine, cur, cur + NQ))) apply_mask<1, NS>(s, rr, w0, cur);
#pragma unroll
      for (int nt = 0; nt < NS; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float p = fast_exp2(s[0][nt][e]);
          s[0][nt][e] = p;
          dp[0][nt][e] = p * (dp[0][nt][e] - ds[buf][8 * nt + 2 * t + (e & 1)]) * scale;  // dS^T
        }
      if (dst)  // rows g and g + 8, queries 8 nt + 2t, +1: the bf16 pairs the dk product rounds to
#pragma unroll
        for (int nt = 0; nt < NS; ++nt) {
          dst[(g * NQ + 8 * nt + 2 * t) / 2] = pack2(dp[0][nt][0], dp[0][nt][1]);
          dst[((g + 8) * NQ + 8 * nt + 2 * t) / 2] = pack2(dp[0][nt][2], dp[0][nt][3]);
        }
      mma_pb<1, NS, NO>(av, s, db, LD);
      mma_pb<1, NS, NO>(ak, dp, qb, LD);
    } else if (dst) {
      for (int x = lane; x < 16 * NQ / 8; x += 32) reinterpret_cast<uint4*>(dst)[x] = make_uint4(0, 0, 0, 0);
    }
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
          part[poff + d + e] = ak[0][nt][2 * r + e];
          part[pstride + poff + d + e] = av[0][nt][2 * r + e];
          continue;
        }
        if (dk) dk[off + d + e] += ak[0][nt][2 * r + e];
        if (dv) dv[off + d + e] += av[0][nt][2 * r + e];
      }
    }
  }
}

// ---- backward, stored-dS form: D_i first, dq from the stored dS tiles last ----------------------

// D_i = dO_i . O_i in fp32 for every query row (read by the dk/dv pass): one warp per (b, h, i).
__global__ void k_attn_dvec(float* dvec, const float* dout, const float* out, AttnShape sh) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;  // (b * H + h) * Tq + i
  if (row >= sh.B * sh.H * sh.Tq) return;
  const int lane = threadIdx.x % 32;
  const int64_t i = row % sh.Tq, bh = row / sh.Tq, b = bh / sh.H, h = bh % sh.H;
  const int64_t off = (b * sh.Tq + i) * sh.H * sh.hd + h * sh.hd;
  float part = 0.f;
  for (int64_t d = lane; d < sh.hd; d += 32) part += dout[off + d] * out[off + d];
  const float s = warp_sum(part);
  if (lane == 0) dvec[row] = s;
}

// dq += dS K over the key tiles some row of the block sees (dS already holds the softmax scale and
// zeros wherever the mask hides a pair, so no mask is applied here). A warp owns 32 query rows (two
// 16-row tiles share each K fragment), a block 128 rows = query tiles 2x, 2x + 1 of the stored dS
// ([64 keys][64 queries] each, read transposed as A fragments). A warp none of whose rows sees the
// key tile skips it: exactly the tiles the dk/dv pass never visited, so unwritten tiles are never
// used.
template <int KC>
__global__ void __launch_bounds__(kFaThreads, 2)
    k_fa_bwd_dq_ds(float* dq, const bf16* dsb, const bf16* kp, int64_t Tkp, int64_t nqt, int64_t nkt, AttnShape sh,
                   AttnMask mask) {
  constexpr int HDP = 16 * KC, LD = HDP + 8, NO = 2 * KC, DLD = kFaQueries + 8;
  constexpr int KTILE = kFaKeys * LD, DTILE = 2 * kFaKeys * DLD, ROWS = 2 * kFaQueries;
  static_assert(ROWS == kFaThreads, "one mask row per thread");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* ks = reinterpret_cast<bf16*>(smem_raw);  // [2][64 keys][LD]
  bf16* dss = ks + 2 * KTILE;                    // [2][2 query tiles][64 keys][DLD]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / sh.H, h = bh % sh.H;
  const int64_t D = sh.H * sh.hd;
  const int Tk = int(sh.Tk);
  const int64_t i0 = int64_t(blockIdx.x) * ROWS;
  const int w0 = 32 * warp;
  const bf16* kh = kp + bh * Tkp * HDP;
  const bf16* dsh = dsb + (bh * nqt + 2 * int64_t(blockIdx.x)) * nkt * 4096;  // query tile 2x; 2x + 1 follows
  const int4 mine = row_range(mask, i0 + threadIdx.x, sh.Tq, sh.Tk, true);  // the block vote
  const int4 wmine = row_range(mask, i0 + w0 + lane, sh.Tq, sh.Tk, true);   // the warp vote
  auto fetch = [&](int k0, int buf) {
    load_tile<HDP>(ks + buf * KTILE, kh + int64_t(k0) * HDP, kFaKeys);
    const bf16* src = dsh + int64_t(k0 / kFaKeys) * 4096;
    for (int x = threadIdx.x; x < 2 * kFaKeys * (kFaQueries / 8); x += blockDim.x) {
      const int half = x / (kFaKeys * kFaQueries / 8), r = (x / (kFaQueries / 8)) % kFaKeys, c = x % (kFaQueries / 8);
      cp_async16(dss + buf * DTILE + (half * kFaKeys + r) * DLD + 8 * c, src + half * nkt * 4096 + r * kFaQueries + 8 * c);
    }
  };
  int cur = next_tile(mine, 0, Tk, kFaKeys);
  if (cur < Tk) fetch(cur, 0);
  cp_async_commit();
  float acc[2][NO][4] = {};
  for (int buf = 0; cur < Tk; buf ^= 1) {
    const int nxt = next_tile(mine, cur + kFaKeys, Tk, kFaKeys);  // also the barrier before refilling buf ^ 1
    if (nxt < Tk) fetch(nxt, buf ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    if (__any_sync(0xffffffffu, overlaps(wmine, cur, cur + kFaKeys))) {
      const bf16* kb = ks + buf * KTILE;
      const bf16* db = dss + buf * DTILE + (warp / 2) * kFaKeys * DLD;  // the warp's query tile
#pragma unroll
      for (int c = 0; c < kFaKeys / 16; ++c) {
        uint32_t a[2][4];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) ldsm_at(a[mt], db, DLD, 16 * c, w0 % kFaQueries + 16 * mt);
#pragma unroll
        for (int np = 0; np < NO / 2; ++np) {
          uint32_t bb[4];
          ldsm_bt2(bb, kb, LD, 16 * c, 16 * np);
#pragma unroll
          for (int mt = 0; mt < 2; ++mt) {
            mma16816(acc[mt][2 * np], a[mt], bb[0], bb[1]);
            mma16816(acc[mt][2 * np + 1], a[mt], bb[2], bb[3]);
          }
        }
      }
    }
    cur = nxt;
  }
  cp_async_wait<0>();
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int64_t i = i0 + w0 + 16 * mt + g + 8 * e;
      if (i >= sh.Tq) continue;
      float* row = dq + (b * sh.Tq + i) * D + h * sh.hd;
#pragma unroll
      for (int nt = 0; nt < NO; ++nt) {
        const int d = 8 * nt + 2 * t;
        if (d < sh.hd) row[d] += acc[mt][nt][2 * e];
        if (d + 1 < sh.hd) row[d + 1] += acc[mt][nt][2 * e + 1];
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

// Query splits of the dk/dv pass, in whole tiles, where the key blocks alone do not fill the 264
// block slots (two per multiprocessor) of a 132-SM H200 (a constant, not read off the device, so
// results do not depend on the GPU): enough splits for one full wave, and more while the last wave
// would be under 90% full (cross-attention's 96 key blocks: 5 splits, 480 blocks, instead of 3,
// whose 288 blocks left a second wave of 24).
int64_t dkv_qsplit(const AttnShape& sh) {
  constexpr int64_t kSlots = 264;
  const int64_t blocks = (round64(sh.Tk) / kBwdRows) * sh.B * sh.H, tq = round64(sh.Tq);
  const int64_t most = std::max<int64_t>(1, tq / 256);
  int64_t splits = std::max<int64_t>(1, std::min<int64_t>((kSlots + blocks - 1) / blocks, most));
  auto full = [&](int64_t s) { return 10 * s * blocks >= 9 * kSlots * ((s * blocks + kSlots - 1) / kSlots); };
  while (blocks < kSlots && splits < most && !full(splits)) ++splits;
  return (tq / splits + kFaQueries - 1) / kFaQueries * kFaQueries;
}

template <int KC>
constexpr size_t dq_ds_smem() {  // two K tiles + two pairs of dS tiles
  return size_t(2 * kFaKeys * (16 * KC + 8) + 4 * kFaKeys * (kFaQueries + 8)) * sizeof(bf16);
}
template <int KC, int MT>
constexpr size_t fwd_smem() {  // row ranges, Q + two K and two V tiles
  return 64 * MT * sizeof(int4) + size_t(64 * MT + 4 * kFaKeys) * (16 * KC + 8) * sizeof(bf16);
}
template <int KC>
constexpr size_t dq_smem() {  // row ranges, Q, dO + two K and two V tiles
  return kBwdRows * sizeof(int4) + size_t(2 * kBwdRows + 4 * kFaKeys) * (16 * KC + 8) * sizeof(bf16);
}
template <int KC, int NQ>
constexpr size_t dkv_smem() {  // row ranges, K, V + two Q, dO tiles
  return kBwdRows * sizeof(int4) + size_t(2 * kBwdRows + 4 * NQ) * (16 * KC + 8) * sizeof(bf16);
}

// Tile shapes: the forward takes 128-row blocks (two row tiles per warp) where they still give two
// blocks per multiprocessor of a 132-SM H200 (a constant, so the choice depends on the shapes
// only), else 64-row blocks (measured: 1170 queries x 12 heads run faster in 64-row blocks, 3510 or
// more in 128-row ones). Every output element sums the same products in the same order either
// way. Overrides (read once): CFPIPE_ATTN_FWD_MT = 1 or 2 row tiles per warp, CFPIPE_ATTN_DKV_Q =
// 32 or 64 queries per dk/dv tile (default 64).
int env_choice(const char* name, int fallback, int other) {
  const char* v = std::getenv(name);
  return v && std::atoi(v) == other ? other : fallback;
}
int fwd_mt(const AttnShape& sh) {
  static const char* forced = std::getenv("CFPIPE_ATTN_FWD_MT");
  if (forced && (std::atoi(forced) == 1 || std::atoi(forced) == 2)) return std::atoi(forced);
  return round128(sh.Tq) / 128 * sh.B * sh.H >= 264 ? 2 : 1;
}
int dkv_q() {
  static const int nq = env_choice("CFPIPE_ATTN_DKV_Q", 64, 32);
  return nq;
}

// The stored-dS backward where its tiles (dense over query x key tiles) fit in kDsCapBytes, the
// 64-query dk/dv tiles are in use and CFPIPE_ATTN_BWD is not "recompute" (the two-pass form, for
// comparisons); the choice depends on the shapes only.
constexpr size_t kDsCapBytes = size_t(2) << 30;
size_t ds_bytes(const AttnShape& sh) {
  return size_t(sh.B * sh.H) * size_t(round128(sh.Tq) / 64) * size_t(round64(sh.Tk) / 64) * 4096 * sizeof(bf16);
}
bool stored_ds(const AttnShape& sh) {
  static const char* forced = std::getenv("CFPIPE_ATTN_BWD");
  static const bool recompute = forced && std::strcmp(forced, "recompute") == 0;
  return !recompute && dkv_q() == 64 && ds_bytes(sh) <= kDsCapBytes;
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

// Packs `T` rows per batch of an fp32 [B, rows_per_b, H*hd] array into dst as Tp rows per head
// (see k_pack_heads).
template <int HDP>
void pack(cudaStream_t stream, bf16* dst, const float* src, const AttnShape& sh, int64_t T, int64_t Tp,
          int64_t rows_per_b) {
  const int64_t n = sh.B * sh.H * Tp * (HDP / 8);
  k_pack_heads<HDP><<<grid_for(n), kThreads, 0, stream>>>(dst, src, sh.B, sh.H, T, Tp, rows_per_b, sh.hd);
  check_launch("attention pack (bf16)");
}

// Rows are indexed in int32 inside the kernels; the softmax scale must be positive (the forward
// takes the row maximum before scaling).
void check_bf16_shape(const AttnShape& sh, float scale) {
  CFP_CHECK(sh.Tq < (int64_t(1) << 30) && sh.Tk < (int64_t(1) << 30), "bf16 attention: sequence too long");
  CFP_CHECK(scale > 0.f, "bf16 attention needs a positive scale, got %g", double(scale));
}

}  // namespace

bool attention_bf16_supports(const AttnShape& sh) { return sh.hd > 0 && sh.hd <= 128; }

// Layout: packed Q, dO, K, V; the dS tiles (stored-dS backward); the dk/dv split partials.
size_t attention_bf16_workspace(const AttnShape& sh) {
  const int64_t splits = (round64(sh.Tq) + dkv_qsplit(sh) - 1) / dkv_qsplit(sh);
  const size_t packed = size_t(sh.B * sh.H * padded_hd(sh.hd) * (2 * round128(sh.Tq) + 2 * round64(sh.Tk))) * sizeof(bf16);
  const size_t partials = splits > 1 ? size_t(2 * splits * sh.B * sh.Tk * sh.H * sh.hd) * sizeof(float) : 0;
  return packed + (stored_ds(sh) ? ds_bytes(sh) : 0) + partials;
}

void attention_forward_bf16(cudaStream_t stream, void* ws, float* out, void* out16, float* lse, const float* q,
                            const float* k, const float* v, const AttnShape& sh, const AttnMask& mask, float scale) {
  dispatch_kc(sh.hd, [&](auto kc) {
    constexpr int KC = decltype(kc)::value, HDP = 16 * KC;
    static bool ready = (allow_smem(k_fa_fwd<KC, 1>, fwd_smem<KC, 1>()), allow_smem(k_fa_fwd<KC, 2>, fwd_smem<KC, 2>()), true);
    (void)ready;
    check_bf16_shape(sh, scale);
    const int64_t Tqp = round128(sh.Tq), Tkp = round64(sh.Tk), kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
    bf16* qp = static_cast<bf16*>(ws);
    bf16* kp = qp + sh.B * sh.H * Tqp * HDP;
    bf16* vp = kp + sh.B * sh.H * Tkp * HDP;
    pack<HDP>(stream, qp, q, sh, sh.Tq, Tqp, sh.Tq);
    pack<HDP>(stream, kp, k, sh, sh.Tk, Tkp, kvs);
    pack<HDP>(stream, vp, v, sh, sh.Tk, Tkp, kvs);
    if (fwd_mt(sh) == 2) {
      dim3 grid(unsigned(Tqp / 128), unsigned(sh.B * sh.H));
      k_fa_fwd<KC, 2><<<grid, kFaThreads, fwd_smem<KC, 2>(), stream>>>(out, static_cast<bf16*>(out16), lse, qp, kp, vp,
                                                                        Tqp, Tkp, sh, mask, scale);
    } else {
      dim3 grid(unsigned(round64(sh.Tq) / 64), unsigned(sh.B * sh.H));
      k_fa_fwd<KC, 1><<<grid, kFaThreads, fwd_smem<KC, 1>(), stream>>>(out, static_cast<bf16*>(out16), lse, qp, kp, vp,
                                                                        Tqp, Tkp, sh, mask, scale);
    }
    check_launch("attention_forward (bf16)");
  });
}

void attention_backward_bf16(cudaStream_t stream, void* ws, float* dq, float* dk, float* dv, float* dvec,
                             const float* dout, const float* q, const float* k, const float* v, const float* out,
                             const float* lse, const AttnShape& sh, const AttnMask& mask, float scale) {
  dispatch_kc(sh.hd, [&](auto kc) {
    constexpr int KC = decltype(kc)::value, HDP = 16 * KC;
    static bool ready = (allow_smem(k_fa_bwd_dq<KC>, dq_smem<KC>()), allow_smem(k_fa_bwd_dkv<KC, 32>, dkv_smem<KC, 32>()),
                         allow_smem(k_fa_bwd_dkv<KC, 64>, dkv_smem<KC, 64>()),
                         allow_smem(k_fa_bwd_dq_ds<KC>, dq_ds_smem<KC>()), true);
    (void)ready;
    check_bf16_shape(sh, scale);
    const int64_t Tqp = round128(sh.Tq), Tkp = round64(sh.Tk), kvs = sh.kv_rows ? sh.kv_rows : sh.Tk;
    const bool with_ds = stored_ds(sh) && (dk || dv);
    bf16* qp = static_cast<bf16*>(ws);
    bf16* dop = qp + sh.B * sh.H * Tqp * HDP;
    bf16* kp = dop + sh.B * sh.H * Tqp * HDP;
    bf16* vp = kp + sh.B * sh.H * Tkp * HDP;
    bf16* dsb = vp + sh.B * sh.H * Tkp * HDP;  // the dS tiles (with_ds), then the split partials
    const int64_t nqt = Tqp / 64, nkt = Tkp / 64;
    pack<HDP>(stream, qp, q, sh, sh.Tq, Tqp, sh.Tq);
    pack<HDP>(stream, dop, dout, sh, sh.Tq, Tqp, sh.Tq);
    pack<HDP>(stream, kp, k, sh, sh.Tk, Tkp, kvs);
    pack<HDP>(stream, vp, v, sh, sh.Tk, Tkp, kvs);
    if (with_ds) {
      k_attn_dvec<<<unsigned((sh.B * sh.H * sh.Tq + kWarpsPerBlock - 1) / kWarpsPerBlock), 32 * kWarpsPerBlock, 0,
                    stream>>>(dvec, dout, out, sh);
      check_launch("attention_backward D (bf16)");
    } else {
      dim3 gq(unsigned(round64(sh.Tq) / kBwdRows), unsigned(sh.B * sh.H));
      k_fa_bwd_dq<KC><<<gq, kFaThreads, dq_smem<KC>(), stream>>>(dq, dvec, dout, out, lse, qp, kp, vp, dop, Tqp, Tkp,
                                                                    sh, mask, scale);
      check_launch("attention_backward dq (bf16)");
    }
    if (dk || dv) {
      const int64_t qsplit = dkv_qsplit(sh), splits = (round64(sh.Tq) + qsplit - 1) / qsplit;
      bf16* ds_out = with_ds ? dsb : nullptr;
      float* part = splits > 1 ? reinterpret_cast<float*>(with_ds ? dsb + ds_bytes(sh) / sizeof(bf16) : dsb) : nullptr;
      dim3 gk(unsigned(Tkp / kBwdRows), unsigned(sh.B * sh.H), unsigned(splits));
      if (dkv_q() == 64)
        k_fa_bwd_dkv<KC, 64><<<gk, kFaThreads, dkv_smem<KC, 64>(), stream>>>(
            dk, dv, dvec, lse, qp, kp, vp, dop, Tqp, Tkp, sh, mask, scale, qsplit, part, ds_out, nqt, nkt);
      else
        k_fa_bwd_dkv<KC, 32><<<gk, kFaThreads, dkv_smem<KC, 32>(), stream>>>(
            dk, dv, dvec, lse, qp, kp, vp, dop, Tqp, Tkp, sh, mask, scale, qsplit, part, nullptr, nqt, nkt);
      check_launch("attention_backward dk/dv (bf16)");
      if (part) {
        k_sum_splits<<<grid_for(sh.B * sh.Tk * sh.H * sh.hd), kThreads, 0, stream>>>(
            dk, dv, part, splits, sh.B, sh.Tk, sh.kv_rows ? sh.kv_rows : sh.Tk, sh.H * sh.hd);
        check_launch("attention_backward split sum (bf16)");
      }
    }
    if (with_ds) {
      dim3 gq(unsigned(Tqp / 128), unsigned(sh.B * sh.H));
      k_fa_bwd_dq_ds<KC><<<gq, kFaThreads, dq_ds_smem<KC>(), stream>>>(dq, dsb, kp, Tkp, nqt, nkt, sh, mask);
      check_launch("attention_backward dq from dS (bf16)");
    }
  });
}

}  // namespace cuda
}  // namespace cfp
