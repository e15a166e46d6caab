#include "cpu/gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace cfp {

namespace {

// Block sizes: a KC x NC panel of B (~512 KiB for float) stays in L2/L3, an MC x KC block of A in L2.
constexpr int64_t KC = 256;
constexpr int64_t MC = 96;
constexpr int64_t NC = 512;

template <class T>
struct Tile;  // micro-kernel shape per scalar type
template <>
struct Tile<float> {
  static constexpr int64_t MR = 6, NR = 16;
};
template <>
struct Tile<double> {
  static constexpr int64_t MR = 4, NR = 8;
};

// Pack rows [i0, i0+mc) x cols [p0, p0+kc) of op(A) into MR-high strips: strip s holds, for each k,
// MR consecutive values (zero-padded past mc).
template <class T>
void pack_a(T* dst, const T* A, int64_t lda, bool ta, int64_t i0, int64_t mc, int64_t p0, int64_t kc) {
  constexpr int64_t MR = Tile<T>::MR;
  for (int64_t is = 0; is < mc; is += MR) {
    const int64_t mr = std::min(MR, mc - is);
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t i = 0; i < MR; ++i) {
        T v = 0;
        if (i < mr) {
          const int64_t row = i0 + is + i, col = p0 + k;
          v = ta ? A[col * lda + row] : A[row * lda + col];
        }
        *dst++ = v;
      }
    }
  }
}

// Pack rows [p0, p0+kc) x cols [j0, j0+nc) of op(B) into NR-wide strips (zero-padded past nc).
template <class T>
void pack_b(T* dst, const T* B, int64_t ldb, bool tb, int64_t p0, int64_t kc, int64_t j0, int64_t nc) {
  constexpr int64_t NR = Tile<T>::NR;
  for (int64_t js = 0; js < nc; js += NR) {
    const int64_t nr = std::min(NR, nc - js);
    if (!tb && nr == NR) {
      for (int64_t k = 0; k < kc; ++k) {
        std::memcpy(dst, B + (p0 + k) * ldb + j0 + js, NR * sizeof(T));
        dst += NR;
      }
      continue;
    }
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t j = 0; j < NR; ++j) {
        T v = 0;
        if (j < nr) {
          const int64_t row = p0 + k, col = j0 + js + j;
          v = tb ? B[col * ldb + row] : B[row * ldb + col];
        }
        *dst++ = v;
      }
    }
  }
}

// acc[MR x NR] = packed A strip (kc x MR) times packed B strip (kc x NR).
inline void micro_kernel(int64_t kc, const float* a, const float* b, float* acc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 a0 = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(a0, b0, c00);
    c01 = _mm256_fmadd_ps(a0, b1, c01);
    a0 = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(a0, b0, c10);
    c11 = _mm256_fmadd_ps(a0, b1, c11);
    a0 = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(a0, b0, c20);
    c21 = _mm256_fmadd_ps(a0, b1, c21);
    a0 = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(a0, b0, c30);
    c31 = _mm256_fmadd_ps(a0, b1, c31);
    a0 = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(a0, b0, c40);
    c41 = _mm256_fmadd_ps(a0, b1, c41);
    a0 = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(a0, b0, c50);
    c51 = _mm256_fmadd_ps(a0, b1, c51);
    a += 6;
    b += 16;
  }
  _mm256_storeu_ps(acc + 0, c00);
  _mm256_storeu_ps(acc + 8, c01);
  _mm256_storeu_ps(acc + 16, c10);
  _mm256_storeu_ps(acc + 24, c11);
  _mm256_storeu_ps(acc + 32, c20);
  _mm256_storeu_ps(acc + 40, c21);
  _mm256_storeu_ps(acc + 48, c30);
  _mm256_storeu_ps(acc + 56, c31);
  _mm256_storeu_ps(acc + 64, c40);
  _mm256_storeu_ps(acc + 72, c41);
  _mm256_storeu_ps(acc + 80, c50);
  _mm256_storeu_ps(acc + 88, c51);
}

inline void micro_kernel(int64_t kc, const double* a, const double* b, double* acc) {
  constexpr int64_t MR = Tile<double>::MR, NR = Tile<double>::NR;
  double c[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t i = 0; i < MR; ++i)
      for (int64_t j = 0; j < NR; ++j) c[i][j] += a[i] * b[j];
    a += MR;
    b += NR;
  }
  std::memcpy(acc, c, sizeof c);
}

// C block (mr x nr) = first ? alpha acc + beta C : C + alpha acc.
template <class T>
inline void write_tile(const T* acc, T* C, int64_t ldc, int64_t mr, int64_t nr, T alpha, T beta, bool first) {
  constexpr int64_t NR = Tile<T>::NR;
  for (int64_t i = 0; i < mr; ++i) {
    T* c = C + i * ldc;
    const T* s = acc + i * NR;
    if (!first) {
      for (int64_t j = 0; j < nr; ++j) c[j] += alpha * s[j];
    } else if (beta == T(0)) {
      for (int64_t j = 0; j < nr; ++j) c[j] = alpha * s[j];
    } else {
      for (int64_t j = 0; j < nr; ++j) c[j] = alpha * s[j] + beta * c[j];
    }
  }
}

// One thread's share: rows [m0, m1) x cols [n0, n1) of C.
template <class T>
void gemm_range(bool ta, bool tb, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  constexpr int64_t MR = Tile<T>::MR, NR = Tile<T>::NR;
  thread_local std::vector<T> pa, pb;
  pa.resize(static_cast<size_t>(MC * KC + MR * KC));
  pb.resize(static_cast<size_t>(NC * KC + NR * KC));
  alignas(32) T acc[MR * NR];
  for (int64_t jc = n0; jc < n1; jc += NC) {
    const int64_t nc = std::min(NC, n1 - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const bool first = pc == 0;
      pack_b(pb.data(), B, ldb, tb, pc, kc, jc, nc);
      for (int64_t ic = m0; ic < m1; ic += MC) {
        const int64_t mc = std::min(MC, m1 - ic);
        pack_a(pa.data(), A, lda, ta, ic, mc, pc, kc);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t nr = std::min(NR, nc - jr);
          const T* bp = pb.data() + (jr / NR) * NR * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = std::min(MR, mc - ir);
            micro_kernel(kc, pa.data() + (ir / MR) * MR * kc, bp, acc);
            write_tile(acc, C + (ic + ir) * ldc + jc + jr, ldc, mr, nr, alpha, beta, first);
          }
        }
      }
    }
  }
}

}  // namespace

template <class T>
void cpu_gemm(ThreadPool& pool, bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
              int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // op(A) op(B) is zero
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  constexpr int64_t MR = Tile<T>::MR, NR = Tile<T>::NR;
  const double flops = 2.0 * M * N * K;
  const int64_t min_work = flops < 2e5 ? std::max(M, N) : 1;  // tiny products stay on one thread
  if (M >= N) {
    // Split rows in MR-multiples so every thread runs full micro-tiles.
    const int64_t strips = (M + MR - 1) / MR;
    pool.parallel_for(strips, min_work == 1 ? 1 : strips, [&](int64_t s0, int64_t s1) {
      gemm_range<T>(ta, tb, s0 * MR, std::min(M, s1 * MR), 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    });
  } else {
    const int64_t strips = (N + NR - 1) / NR;
    pool.parallel_for(strips, min_work == 1 ? 1 : strips, [&](int64_t s0, int64_t s1) {
      gemm_range<T>(ta, tb, 0, M, s0 * NR, std::min(N, s1 * NR), K, alpha, A, lda, B, ldb, beta, C, ldc);
    });
  }
}

template <class T>
void naive_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                int64_t ldb, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = ta ? A[k * lda + i] : A[i * lda + k];
        const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
        s += a * b;
      }
      T& c = C[i * ldc + j];
      c = static_cast<T>(alpha * s + (beta == T(0) ? 0.0 : double(beta) * c));
    }
  }
}

template void cpu_gemm<float>(ThreadPool&, bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                              const float*, int64_t, float, float*, int64_t);
template void cpu_gemm<double>(ThreadPool&, bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                               const double*, int64_t, double, double*, int64_t);
template void naive_gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                int64_t, float, float*, int64_t);
template void naive_gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                 const double*, int64_t, double, double*, int64_t);

}  // namespace cfp
