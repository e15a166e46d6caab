// Masked attention kernels of the CPU backend; see attention.h for the scheme.
#include "cpu/attention.h"
#include "cpu/simd_math.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

namespace cfp {

KeyIntervals attn_key_intervals(const AttnMask& m, int64_t i, int64_t Tk) {
  KeyIntervals r;
  auto push = [&](int64_t lo, int64_t hi) {
    lo = std::max<int64_t>(0, lo);
    hi = std::min(Tk, hi);
    if (hi > lo) {
      r.lo[r.count] = lo;
      r.hi[r.count] = hi;
      ++r.count;
    }
  };
  switch (m.kind) {
    case MaskKind::full:
      push(0, Tk);
      break;
    case MaskKind::block_causal:
      push(0, ((i + m.q_offset) / m.block_tokens + 1) * m.block_tokens);
      break;
    case MaskKind::teacher_forcing: {
      const int64_t L = m.half_tokens, bt = m.block_tokens;
      if (i < L) {
        push(0, std::min(L, (i / bt + 1) * bt));
      } else {
        const int64_t b = (i - L) / bt;
        push(0, std::min(L, b * bt));
        push(L + b * bt, L + std::min(L, (b + 1) * bt));
      }
      break;
    }
  }
  return r;
}

int64_t attn_run_end(const AttnMask& m, int64_t i, int64_t Tq) {
  int64_t e = Tq;
  switch (m.kind) {
    case MaskKind::full:
      break;
    case MaskKind::block_causal:
      e = ((i + m.q_offset) / m.block_tokens + 1) * m.block_tokens - m.q_offset;
      break;
    case MaskKind::teacher_forcing: {
      const int64_t L = m.half_tokens, bt = m.block_tokens;
      e = i < L ? std::min(L, (i / bt + 1) * bt) : L + std::min(L, ((i - L) / bt + 1) * bt);
      break;
    }
  }
  return std::min(Tq, std::max(e, i + 1));
}

namespace {

constexpr int64_t kTileRows = 8;    // query rows per tile (rows of one tile share their key intervals)
constexpr int64_t kChunkRows = 32;  // query rows per forward task

// Per-thread buffers, grown on first use and kept (the pool's threads live as long as the backend).
struct ThreadScratch {
  std::vector<float> f[8];
  std::vector<double> d[2];
};
thread_local ThreadScratch tls;

template <class T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Runs body(begin, end) over the pool's fixed chunks of [0, n). The std::function the pool takes
// holds only a reference to body, which fits its inline storage: no heap allocation per call.
template <class Fn>
void run_chunks(ThreadPool& pool, int64_t n, int64_t grain, const Fn& body) {
  auto ref = [&body](int64_t b, int64_t e) { body(b, e); };
  pool.parallel_for(n, grain, ref);
}

inline int64_t round8(int64_t n) { return (n + 7) & ~int64_t(7); }

// ---------------------------------------------------------------------------------------------
// Scalar path (double, and float head sizes that are not a multiple of 8).

template <class T>
inline double dotd(const T* a, const T* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

template <class T>
void forward_scalar(ThreadPool& pool, T* out, T* lse, const T* q, const T* k, const T* v, const AttnShape& sh,
                    const AttnMask& mask, double scale) {
  const int64_t D = sh.H * sh.hd, hd = sh.hd, Tq = sh.Tq, Tk = sh.Tk, kvs = sh.kv_stride();
  run_chunks(pool, sh.B * sh.H * Tq, 8, [&](int64_t t0, int64_t t1) {
    double* p = grow(tls.d[0], size_t(Tk) + 1);
    double* acc = grow(tls.d[1], size_t(hd));
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t i = task % Tq, h = (task / Tq) % sh.H, b = task / (Tq * sh.H);
      const T* qi = q + (b * Tq + i) * D + h * hd;
      const T* kb = k + b * kvs * D + h * hd;
      const T* vb = v + b * kvs * D + h * hd;
      T* oi = out + (b * Tq + i) * D + h * hd;
      T* lse_i = lse + (b * sh.H + h) * Tq + i;
      const KeyIntervals kr = attn_key_intervals(mask, i, Tk);
      if (kr.count == 0) {
        std::fill(oi, oi + hd, T(0));
        *lse_i = -std::numeric_limits<T>::infinity();
        continue;
      }
      double mx = -std::numeric_limits<double>::infinity();
      for (int r = 0; r < kr.count; ++r)
        for (int64_t j = kr.lo[r]; j < kr.hi[r]; ++j) {
          p[j] = double(T(scale * dotd(qi, kb + j * D, hd)));
          mx = std::max(mx, p[j]);
        }
      double sum = 0;
      std::fill(acc, acc + hd, 0.0);
      for (int r = 0; r < kr.count; ++r)
        for (int64_t j = kr.lo[r]; j < kr.hi[r]; ++j) {
          const double e = std::exp(p[j] - mx);
          sum += e;
          const T* vj = vb + j * D;
          for (int64_t d = 0; d < hd; ++d) acc[d] += e * double(vj[d]);
        }
      for (int64_t d = 0; d < hd; ++d) oi[d] = static_cast<T>(acc[d] / sum);
      *lse_i = static_cast<T>(mx + std::log(sum));
    }
  });
}

template <class T>
void backward_scalar(ThreadPool& pool, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                     const T* out, const T* lse, const AttnShape& sh, const AttnMask& mask, double scale) {
  const int64_t D = sh.H * sh.hd, hd = sh.hd, Tq = sh.Tq, Tk = sh.Tk, kvs = sh.kv_stride();
  // Tasks = (b, h): the dk/dv slices of one head are written by one task only.
  run_chunks(pool, sh.B * sh.H, 1, [&](int64_t t0, int64_t t1) {
    double* dqi = grow(tls.d[0], size_t(hd));
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t h = task % sh.H, b = task / sh.H;
      const T* kb = k + b * kvs * D + h * hd;
      const T* vb = v + b * kvs * D + h * hd;
      T* dkb = dk ? dk + b * kvs * D + h * hd : nullptr;
      T* dvb = dv ? dv + b * kvs * D + h * hd : nullptr;
      for (int64_t i = 0; i < Tq; ++i) {
        const double l = double(lse[(b * sh.H + h) * Tq + i]);
        if (std::isinf(l)) continue;  // the query saw no key
        const T* qi = q + (b * Tq + i) * D + h * hd;
        const T* doi = dout + (b * Tq + i) * D + h * hd;
        const T* oi = out + (b * Tq + i) * D + h * hd;
        const double Di = dotd(doi, oi, hd);
        std::fill(dqi, dqi + hd, 0.0);
        const KeyIntervals kr = attn_key_intervals(mask, i, Tk);
        for (int r = 0; r < kr.count; ++r)
          for (int64_t j = kr.lo[r]; j < kr.hi[r]; ++j) {
            const T* kj = kb + j * D;
            const double pij = std::exp(double(T(scale * dotd(qi, kj, hd))) - l);
            const double dp = dotd(doi, vb + j * D, hd);
            const double ds = pij * (dp - Di) * scale;
            for (int64_t d = 0; d < hd; ++d) dqi[d] += ds * double(kj[d]);
            if (dkb)
              for (int64_t d = 0; d < hd; ++d) dkb[j * D + d] += static_cast<T>(ds * double(qi[d]));
            if (dvb)
              for (int64_t d = 0; d < hd; ++d) dvb[j * D + d] += static_cast<T>(pij * double(doi[d]));
          }
        T* dqo = dq + (b * Tq + i) * D + h * hd;
        for (int64_t d = 0; d < hd; ++d) dqo[d] += static_cast<T>(dqi[d]);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// AVX2/FMA path (float, head size a multiple of 8).

// exp_ps, lane_mask, hsum and hmax live in cpu/simd_math.h.

// Key intervals of a tile with their offsets in the tile's score rows (each padded to 8).
struct TileKeys {
  KeyIntervals kr;
  int64_t off[2] = {0, 0};
  int64_t width = 0;  // padded row length in use
};
TileKeys tile_keys(const AttnMask& mask, int64_t i, int64_t Tk) {
  TileKeys t;
  t.kr = attn_key_intervals(mask, i, Tk);
  for (int r = 0; r < t.kr.count; ++r) {
    t.off[r] = t.width;
    t.width += round8(t.kr.hi[r] - t.kr.lo[r]);
  }
  return t;
}

// Bt[d * ldb + j] = X[j * ldx + d] for j < Tk, zero for Tk <= j < ldb (hd a multiple of 8):
// 8x8 blocks transposed in registers.
void transpose_keys(float* Bt, int64_t ldb, const float* X, int64_t ldx, int64_t Tk, int64_t hd) {
  int64_t j0 = 0;
  for (; j0 + 8 <= Tk; j0 += 8)
    for (int64_t d0 = 0; d0 < hd; d0 += 8) {
      const float* x = X + j0 * ldx + d0;
      const __m256 r0 = _mm256_loadu_ps(x), r1 = _mm256_loadu_ps(x + ldx), r2 = _mm256_loadu_ps(x + 2 * ldx),
                   r3 = _mm256_loadu_ps(x + 3 * ldx), r4 = _mm256_loadu_ps(x + 4 * ldx),
                   r5 = _mm256_loadu_ps(x + 5 * ldx), r6 = _mm256_loadu_ps(x + 6 * ldx),
                   r7 = _mm256_loadu_ps(x + 7 * ldx);
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                   t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                   t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                   u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                   u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                   u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* b = Bt + d0 * ldb + j0;
      _mm256_storeu_ps(b, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(b + ldb, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(b + 2 * ldb, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(b + 3 * ldb, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(b + 4 * ldb, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(b + 5 * ldb, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(b + 6 * ldb, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_storeu_ps(b + 7 * ldb, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
  for (int64_t d = 0; d < hd; ++d) {
    float* row = Bt + d * ldb;
    for (int64_t j = j0; j < Tk; ++j) row[j] = X[j * ldx + d];
    std::fill(row + Tk, row + ldb, 0.0f);
  }
}

// S[rr][off + jj] = sum_d A[rr][d] Bt[d][lo + jj] for rr < R4 (a multiple of 4), jj < round8(n).
// Reads Bt up to column lo + round8(n), which the padding of transpose_keys keeps in bounds.
void scores(const float* A, int64_t hd, const float* Bt, int64_t ldb, int64_t lo, int64_t n, float* S, int64_t lds,
            int64_t R4) {
  for (int64_t r0 = 0; r0 < R4; r0 += 4) {
    const float* a = A + r0 * hd;
    float* s = S + r0 * lds;
    int64_t jj = 0;
    for (; jj + 8 < n; jj += 16) {
      __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      const float* b = Bt + lo + jj;
      for (int64_t d = 0; d < hd; ++d) {
        const __m256 b0 = _mm256_loadu_ps(b + d * ldb), b1 = _mm256_loadu_ps(b + d * ldb + 8);
        __m256 x = _mm256_broadcast_ss(a + d);
        c00 = _mm256_fmadd_ps(x, b0, c00);
        c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + hd + d);
        c10 = _mm256_fmadd_ps(x, b0, c10);
        c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a + 2 * hd + d);
        c20 = _mm256_fmadd_ps(x, b0, c20);
        c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a + 3 * hd + d);
        c30 = _mm256_fmadd_ps(x, b0, c30);
        c31 = _mm256_fmadd_ps(x, b1, c31);
      }
      _mm256_storeu_ps(s + jj, c00);
      _mm256_storeu_ps(s + jj + 8, c01);
      _mm256_storeu_ps(s + lds + jj, c10);
      _mm256_storeu_ps(s + lds + jj + 8, c11);
      _mm256_storeu_ps(s + 2 * lds + jj, c20);
      _mm256_storeu_ps(s + 2 * lds + jj + 8, c21);
      _mm256_storeu_ps(s + 3 * lds + jj, c30);
      _mm256_storeu_ps(s + 3 * lds + jj + 8, c31);
    }
    for (; jj < n; jj += 8) {
      __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
      const float* b = Bt + lo + jj;
      for (int64_t d = 0; d < hd; ++d) {
        const __m256 b0 = _mm256_loadu_ps(b + d * ldb);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + d), b0, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + hd + d), b0, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * hd + d), b0, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3 * hd + d), b0, c3);
      }
      _mm256_storeu_ps(s + jj, c0);
      _mm256_storeu_ps(s + lds + jj, c1);
      _mm256_storeu_ps(s + 2 * lds + jj, c2);
      _mm256_storeu_ps(s + 3 * lds + jj, c3);
    }
  }
}

void tile_scores(const float* A, int64_t hd, const float* Bt, int64_t ldb, const TileKeys& tk, float* S,
                 int64_t lds, int64_t R4) {
  for (int r = 0; r < tk.kr.count; ++r)
    scores(A, hd, Bt, ldb, tk.kr.lo[r], tk.kr.hi[r] - tk.kr.lo[r], S + tk.off[r], lds, R4);
}

// Out[rr][d] = sum over allowed keys j (in order) of P[rr][pos(j)] X[j][d], rr < R4.
template <int NV>
inline void pv_cols(const float* P, int64_t lds, const TileKeys& tk, const float* X, int64_t ldx, int64_t dc,
                    float* Out, int64_t hd, int64_t r0) {
  __m256 acc[4][NV];
  for (auto& row : acc)
    for (auto& a : row) a = _mm256_setzero_ps();
  const float* p = P + r0 * lds;
  for (int r = 0; r < tk.kr.count; ++r) {
    const int64_t lo = tk.kr.lo[r], n = tk.kr.hi[r] - lo, off = tk.off[r];
    for (int64_t jj = 0; jj < n; ++jj) {
      const float* x = X + (lo + jj) * ldx + dc;
      __m256 xv[NV];
      for (int c = 0; c < NV; ++c) xv[c] = _mm256_loadu_ps(x + 8 * c);
      for (int rr = 0; rr < 4; ++rr) {
        const __m256 w = _mm256_broadcast_ss(p + rr * lds + off + jj);
        for (int c = 0; c < NV; ++c) acc[rr][c] = _mm256_fmadd_ps(w, xv[c], acc[rr][c]);
      }
    }
  }
  for (int rr = 0; rr < 4; ++rr)
    for (int c = 0; c < NV; ++c) _mm256_storeu_ps(Out + (r0 + rr) * hd + dc + 8 * c, acc[rr][c]);
}
void tile_pv(const float* P, int64_t lds, const TileKeys& tk, const float* X, int64_t ldx, int64_t hd, float* Out,
             int64_t R4) {
  for (int64_t r0 = 0; r0 < R4; r0 += 4) {
    int64_t dc = 0;
    for (; dc + 16 <= hd; dc += 16) pv_cols<2>(P, lds, tk, X, ldx, dc, Out, hd, r0);
    if (dc < hd) pv_cols<1>(P, lds, tk, X, ldx, dc, Out, hd, r0);
  }
}

// Dst[j][d] += sum_rr W[rr][pos(j)] X[rr][d] for every allowed key j; rows added in order 0..R4-1.
template <int NV>
inline void acc_t_cols(float* Dst, int64_t ldd, const TileKeys& tk, const float* W, int64_t lds, const float* X,
                       int64_t hd, int64_t dc, int64_t r0) {
  __m256 xv[4][NV];
  for (int rr = 0; rr < 4; ++rr)
    for (int c = 0; c < NV; ++c) xv[rr][c] = _mm256_loadu_ps(X + (r0 + rr) * hd + dc + 8 * c);
  const float* w = W + r0 * lds;
  for (int r = 0; r < tk.kr.count; ++r) {
    const int64_t lo = tk.kr.lo[r], n = tk.kr.hi[r] - lo, off = tk.off[r];
    for (int64_t jj = 0; jj < n; ++jj) {
      float* d = Dst + (lo + jj) * ldd + dc;
      __m256 a[NV];
      for (int c = 0; c < NV; ++c) a[c] = _mm256_loadu_ps(d + 8 * c);
      for (int rr = 0; rr < 4; ++rr) {
        const __m256 s = _mm256_broadcast_ss(w + rr * lds + off + jj);
        for (int c = 0; c < NV; ++c) a[c] = _mm256_fmadd_ps(s, xv[rr][c], a[c]);
      }
      for (int c = 0; c < NV; ++c) _mm256_storeu_ps(d + 8 * c, a[c]);
    }
  }
}
void tile_acc_t(float* Dst, int64_t ldd, const TileKeys& tk, const float* W, int64_t lds, const float* X, int64_t hd,
                int64_t R4) {
  int64_t dc = 0;
  for (; dc + 16 <= hd; dc += 16)
    for (int64_t r0 = 0; r0 < R4; r0 += 4) acc_t_cols<2>(Dst, ldd, tk, W, lds, X, hd, dc, r0);
  if (dc < hd)
    for (int64_t r0 = 0; r0 < R4; r0 += 4) acc_t_cols<1>(Dst, ldd, tk, W, lds, X, hd, dc, r0);
}

// Copies R rows of one head (row stride D) into a [R4][hd] tile, times `mul`, zero rows past R.
void load_tile(float* dst, const float* src, int64_t D, int64_t R, int64_t R4, int64_t hd, float mul) {
  for (int64_t rr = 0; rr < R4; ++rr) {
    float* o = dst + rr * hd;
    if (rr < R) {
      const float* s = src + rr * D;
      for (int64_t d = 0; d < hd; ++d) o[d] = s[d] * mul;
    } else {
      std::fill(o, o + hd, 0.0f);
    }
  }
}

void forward_avx(ThreadPool& pool, AttentionScratch& scratch, float* out, float* lse, const float* q,
                 const float* k, const float* v, const AttnShape& sh, const AttnMask& mask, double scale) {
  const int64_t H = sh.H, D = H * sh.hd, hd = sh.hd, Tq = sh.Tq, Tk = sh.Tk, kvs = sh.kv_stride();
  const int64_t ldk = round8(Tk) + 8;
  float* kt = grow(scratch.kt, size_t(sh.B * H * hd * ldk));
  run_chunks(pool, sh.B * H, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t h = t % H, b = t / H;
      transpose_keys(kt + t * hd * ldk, ldk, k + b * kvs * D + h * hd, D, Tk, hd);
    }
  });
  const float fscale = static_cast<float>(scale);
  const int64_t chunks = (Tq + kChunkRows - 1) / kChunkRows;
  run_chunks(pool, sh.B * H * chunks, 1, [&](int64_t t0, int64_t t1) {
    const int64_t lds = round8(Tk) + 16;
    float* A = grow(tls.f[0], size_t(kTileRows * hd));
    float* S = grow(tls.f[1], size_t(kTileRows * lds));
    float* O = grow(tls.f[2], size_t(kTileRows * hd));
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t c = task % chunks, h = (task / chunks) % H, b = task / (chunks * H);
      const float* ktb = kt + (b * H + h) * hd * ldk;
      const float* vb = v + b * kvs * D + h * hd;
      const int64_t row_end = std::min(Tq, (c + 1) * kChunkRows);
      for (int64_t i = c * kChunkRows; i < row_end;) {
        const int64_t e = std::min({row_end, attn_run_end(mask, i, Tq), i + kTileRows});
        const int64_t R = e - i, R4 = (R + 3) & ~int64_t(3);
        const TileKeys tk = tile_keys(mask, i, Tk);
        float* lse_t = lse + (b * H + h) * Tq + i;
        float* out_t = out + (b * Tq + i) * D + h * hd;
        if (tk.kr.count == 0) {
          for (int64_t rr = 0; rr < R; ++rr) {
            std::fill(out_t + rr * D, out_t + rr * D + hd, 0.0f);
            lse_t[rr] = -std::numeric_limits<float>::infinity();
          }
          i = e;
          continue;
        }
        load_tile(A, q + (b * Tq + i) * D + h * hd, D, R, R4, hd, fscale);
        tile_scores(A, hd, ktb, ldk, tk, S, lds, R4);
        float inv[kTileRows];
        for (int64_t rr = 0; rr < R; ++rr) {
          float* s = S + rr * lds;
          __m256 mx = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
          for (int r = 0; r < tk.kr.count; ++r) {
            const int64_t n = tk.kr.hi[r] - tk.kr.lo[r];
            for (int64_t g = 0; g < n; g += 8) {
              __m256 x = _mm256_loadu_ps(s + tk.off[r] + g);
              if (n - g < 8)
                x = _mm256_blendv_ps(_mm256_set1_ps(-std::numeric_limits<float>::infinity()), x, lane_mask(n - g));
              mx = _mm256_max_ps(mx, x);
            }
          }
          const float m = hmax(mx);
          const __m256 mv = _mm256_set1_ps(m);
          __m256 sum = _mm256_setzero_ps();
          for (int r = 0; r < tk.kr.count; ++r) {
            const int64_t n = tk.kr.hi[r] - tk.kr.lo[r];
            for (int64_t g = 0; g < n; g += 8) {
              float* sp = s + tk.off[r] + g;
              __m256 p = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(sp), mv));
              if (n - g < 8) p = _mm256_and_ps(p, lane_mask(n - g));
              _mm256_storeu_ps(sp, p);
              sum = _mm256_add_ps(sum, p);
            }
          }
          const float l = hsum(sum);
          inv[rr] = l;
          lse_t[rr] = m + std::log(l);
        }
        tile_pv(S, lds, tk, vb, D, hd, O, R4);
        for (int64_t rr = 0; rr < R; ++rr) {
          const __m256 l = _mm256_set1_ps(inv[rr]);
          float* o = out_t + rr * D;
          for (int64_t d = 0; d < hd; d += 8)
            _mm256_storeu_ps(o + d, _mm256_div_ps(_mm256_loadu_ps(O + rr * hd + d), l));
        }
        i = e;
      }
    }
  });
}

void backward_avx(ThreadPool& pool, float* dq, float* dk, float* dv, const float* dout, const float* q,
                  const float* k, const float* v, const float* out, const float* lse, const AttnShape& sh,
                  const AttnMask& mask, double scale) {
  const int64_t H = sh.H, D = H * sh.hd, hd = sh.hd, Tq = sh.Tq, Tk = sh.Tk, kvs = sh.kv_stride();
  const int64_t ldk = round8(Tk) + 8, lds = round8(Tk) + 16;
  const float fscale = static_cast<float>(scale);
  // Tasks = (b, h): the dk/dv slices of one head are written by one task only.
  run_chunks(pool, sh.B * H, 1, [&](int64_t t0, int64_t t1) {
    float* kt = grow(tls.f[0], size_t(hd * ldk));
    float* vt = grow(tls.f[1], size_t(hd * ldk));
    float* S = grow(tls.f[2], size_t(kTileRows * lds));
    float* dP = grow(tls.f[3], size_t(kTileRows * lds));
    float* A = grow(tls.f[4], size_t(kTileRows * hd));   // scale * q
    float* Q = grow(tls.f[5], size_t(kTileRows * hd));   // q
    float* G = grow(tls.f[6], size_t(kTileRows * hd));   // dout
    float* DQ = grow(tls.f[7], size_t(kTileRows * hd));  // this tile's dq
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t h = task % H, b = task / H;
      const float* kb = k + b * kvs * D + h * hd;
      const float* vb = v + b * kvs * D + h * hd;
      float* dkb = dk ? dk + b * kvs * D + h * hd : nullptr;
      float* dvb = dv ? dv + b * kvs * D + h * hd : nullptr;
      transpose_keys(kt, ldk, kb, D, Tk, hd);
      transpose_keys(vt, ldk, vb, D, Tk, hd);
      for (int64_t i = 0; i < Tq;) {
        const int64_t e = std::min(attn_run_end(mask, i, Tq), i + kTileRows);
        const int64_t R = e - i, R4 = (R + 3) & ~int64_t(3);
        const TileKeys tk = tile_keys(mask, i, Tk);
        if (tk.kr.count == 0) {  // these queries saw no key
          i = e;
          continue;
        }
        const int64_t row0 = (b * Tq + i) * D + h * hd;
        load_tile(A, q + row0, D, R, R4, hd, fscale);
        load_tile(Q, q + row0, D, R, R4, hd, 1.0f);
        load_tile(G, dout + row0, D, R, R4, hd, 1.0f);
        tile_scores(A, hd, kt, ldk, tk, S, lds, R4);
        tile_scores(G, hd, vt, ldk, tk, dP, lds, R4);
        const float* lse_t = lse + (b * H + h) * Tq + i;
        for (int64_t rr = 0; rr < R4; ++rr) {
          float* s = S + rr * lds;
          float* g = dP + rr * lds;
          if (rr >= R) {  // padding rows contribute exact zeros to dk/dv
            std::fill(s, s + tk.width, 0.0f);
            std::fill(g, g + tk.width, 0.0f);
            continue;
          }
          const float Di = static_cast<float>(dotd(dout + row0 + rr * D, out + row0 + rr * D, hd));
          const __m256 lv = _mm256_set1_ps(lse_t[rr]), dv8 = _mm256_set1_ps(Di), sc = _mm256_set1_ps(fscale);
          for (int r = 0; r < tk.kr.count; ++r) {
            const int64_t n = tk.kr.hi[r] - tk.kr.lo[r];
            for (int64_t gg = 0; gg < n; gg += 8) {
              float* sp = s + tk.off[r] + gg;
              float* gp = g + tk.off[r] + gg;
              __m256 p = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(sp), lv));
              __m256 ds = _mm256_mul_ps(_mm256_mul_ps(p, _mm256_sub_ps(_mm256_loadu_ps(gp), dv8)), sc);
              if (n - gg < 8) {
                const __m256 mk = lane_mask(n - gg);
                p = _mm256_and_ps(p, mk);
                ds = _mm256_and_ps(ds, mk);
              }
              _mm256_storeu_ps(sp, p);
              _mm256_storeu_ps(gp, ds);
            }
          }
        }
        tile_pv(dP, lds, tk, kb, D, hd, DQ, R4);
        for (int64_t rr = 0; rr < R; ++rr) {
          float* o = dq + row0 + rr * D;
          for (int64_t d = 0; d < hd; d += 8)
            _mm256_storeu_ps(o + d, _mm256_add_ps(_mm256_loadu_ps(o + d), _mm256_loadu_ps(DQ + rr * hd + d)));
        }
        if (dkb) tile_acc_t(dkb, D, tk, dP, lds, Q, hd, R4);
        if (dvb) tile_acc_t(dvb, D, tk, S, lds, G, hd, R4);
        i = e;
      }
    }
  });
}

template <class T>
bool use_avx(const AttnShape& sh) {
  return std::is_same<T, float>::value && sh.hd % 8 == 0;
}

}  // namespace

template <class T>
void cpu_attention_forward(ThreadPool& pool, AttentionScratch& scratch, T* out, T* lse, const T* q, const T* k,
                           const T* v, const AttnShape& sh, const AttnMask& mask, double scale) {
  if (sh.Tq == 0) return;
  if constexpr (std::is_same<T, float>::value) {
    if (use_avx<T>(sh)) return forward_avx(pool, scratch, out, lse, q, k, v, sh, mask, scale);
  }
  forward_scalar(pool, out, lse, q, k, v, sh, mask, scale);
}

template <class T>
void cpu_attention_backward(ThreadPool& pool, AttentionScratch&, T* dq, T* dk, T* dv, const T* dout, const T* q,
                            const T* k, const T* v, const T* out, const T* lse, const AttnShape& sh,
                            const AttnMask& mask, double scale) {
  if (sh.Tq == 0) return;
  if constexpr (std::is_same<T, float>::value) {
    if (use_avx<T>(sh)) return backward_avx(pool, dq, dk, dv, dout, q, k, v, out, lse, sh, mask, scale);
  }
  backward_scalar(pool, dq, dk, dv, dout, q, k, v, out, lse, sh, mask, scale);
}

template void cpu_attention_forward<float>(ThreadPool&, AttentionScratch&, float*, float*, const float*, const float*,
                                           const float*, const AttnShape&, const AttnMask&, double);
template void cpu_attention_forward<double>(ThreadPool&, AttentionScratch&, double*, double*, const double*,
                                            const double*, const double*, const AttnShape&, const AttnMask&, double);
template void cpu_attention_backward<float>(ThreadPool&, AttentionScratch&, float*, float*, float*, const float*,
                                            const float*, const float*, const float*, const float*, const float*,
                                            const AttnShape&, const AttnMask&, double);
template void cpu_attention_backward<double>(ThreadPool&, AttentionScratch&, double*, double*, double*,
                                             const double*, const double*, const double*, const double*,
                                             const double*, const double*, const AttnShape&, const AttnMask&, double);

}  // namespace cfp
