// The CPU backend: every op of core/backend.h on host memory. Each op splits its outer loop over
// the thread pool in fixed chunks; every output element (and every reduction) is computed by one
// chunk in a fixed order, so results are bitwise identical for any thread count.
#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>
#include <type_traits>
#include <vector>

#include "cpu/attention.h"
#include "cpu/gemm.h"
#include "cpu/simd_math.h"
#include "cpu/thread_pool.h"

namespace cfp {

namespace {

constexpr int64_t kGrain = 16384;  // elements per chunk below which element-wise ops stay serial

template <class T>
inline double dotd(const T* a, const T* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

template <class T>
class CpuBackend final : public Backend<T> {
 public:
  explicit CpuBackend(int threads) : pool_(threads) {}
  std::string name() const override { return "cpu"; }

  // ---- memory ----
  std::shared_ptr<T> alloc(int64_t n) override {
    CFP_CHECK(n >= 0, "cannot allocate %lld elements", static_cast<long long>(n));
    size_t bytes = (static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    CFP_CHECK(p != nullptr, "out of host memory allocating %zu bytes", bytes);
    return std::shared_ptr<T>(static_cast<T*>(p), [](T* q) { std::free(q); });
  }
  void upload(T* dst, const T* src, int64_t n) override { copy(dst, src, n); }
  void download(T* dst, const T* src, int64_t n) override { copy(dst, src, n); }
  void copy(T* dst, const T* src, int64_t n) override {
    if (n > 0 && dst != src) std::memmove(dst, src, static_cast<size_t>(n) * sizeof(T));
  }
  void fill(T* x, T value, int64_t n) override { std::fill(x, x + n, value); }
  void copy2d(T* dst, int64_t ld_dst, const T* src, int64_t ld_src, int64_t rows, int64_t cols,
              bool accumulate) override {
    for (int64_t r = 0; r < rows; ++r) {
      T* d = dst + r * ld_dst;
      const T* s = src + r * ld_src;
      if (accumulate)
        for (int64_t c = 0; c < cols; ++c) d[c] += s[c];
      else
        std::memmove(d, s, static_cast<size_t>(cols) * sizeof(T));
    }
  }

  // ---- BLAS-like ----
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
            int64_t ldb, T beta, T* C, int64_t ldc) override {
    cpu_gemm<T>(pool_, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void add_bias(T* out, const T* bias, int64_t N, int64_t C) override {
    rows(N, C, [&](int64_t n) {
      T* o = out + n * C;
      for (int64_t c = 0; c < C; ++c) o[c] += bias[c];
    });
  }
  void bias_backward(T* dbias, const T* dout, int64_t N, int64_t C) override {
    if constexpr (kSimd) {
      column_sums(N, C, [&](int64_t n, int64_t c0, __m256d acc[4]) {
        const __m256 d = _mm256_loadu_ps(dout + n * C + c0);
        acc[0] = _mm256_add_pd(acc[0], lo_pd(d));
        acc[1] = _mm256_add_pd(acc[1], hi_pd(d));
      }, [&](int64_t c, const double* sums) { dbias[c] += static_cast<T>(sums[0]); },
      [&](int64_t n, int64_t c, double* sums) { sums[0] += dout[n * C + c]; });
      return;
    }
    // Columns split across threads; each column sums its rows in order.
    pool_.parallel_for(C, std::max<int64_t>(1, kGrain / std::max<int64_t>(N, 1)), [&](int64_t c0, int64_t c1) {
      std::vector<double> acc(static_cast<size_t>(c1 - c0), 0.0);
      for (int64_t n = 0; n < N; ++n) {
        const T* d = dout + n * C;
        for (int64_t c = c0; c < c1; ++c) acc[static_cast<size_t>(c - c0)] += d[c];
      }
      for (int64_t c = c0; c < c1; ++c) dbias[c] += static_cast<T>(acc[static_cast<size_t>(c - c0)]);
    });
  }

  // ---- element-wise ----
  void add(T* out, const T* a, const T* b, int64_t n) override {
    elems(n, [&](int64_t i) { out[i] = a[i] + b[i]; });
  }
  void axpy(T* y, T alpha, const T* x, int64_t n) override {
    elems(n, [&](int64_t i) { y[i] += alpha * x[i]; });
  }
  void axpby(T* out, T alpha, const T* x, T beta, const T* y, int64_t n) override {
    elems(n, [&](int64_t i) { out[i] = alpha * x[i] + beta * y[i]; });
  }
  void scale(T* x, T alpha, int64_t n) override {
    elems(n, [&](int64_t i) { x[i] *= alpha; });
  }
  void mul_rows(T* x, const T* w, int64_t R, int64_t C) override {
    rows(R, C, [&](int64_t r) {
      for (int64_t c = 0; c < C; ++c) x[r * C + c] *= w[r];
    });
  }
  double sum_squares(const T* x, int64_t n) override {
    return reduce(n, [&](int64_t i) { return double(x[i]) * double(x[i]); });
  }
  double dot(const T* a, const T* b, int64_t n) override {
    return reduce(n, [&](int64_t i) { return double(a[i]) * double(b[i]); });
  }
  double sum_abs_diff(const T* a, const T* b, int64_t n) override {
    return reduce(n, [&](int64_t i) { return std::fabs(double(a[i]) - double(b[i])); });
  }

  // ---- activations ----
  void gelu_tanh_forward(T* out, const T* inp, int64_t n) override {
    if constexpr (kSimd) {
      lanes8(n, [&](int64_t i, int64_t m) { store_n(out + i, gelu_tanh_ps(load_n(inp + i, m)), m); });
      return;
    }
    elems(n, [&](int64_t i) {
      const T x = inp[i];
      const T u = T(kGeluC) * (x + T(0.044715) * x * x * x);
      out[i] = T(0.5) * x * (T(1) + std::tanh(u));
    });
  }
  void gelu_tanh_backward(T* dinp, const T* inp, const T* dout, int64_t n) override {
    if constexpr (kSimd) {
      lanes8(n, [&](int64_t i, int64_t m) {
        const __m256 g = gelu_tanh_grad_ps(load_n(inp + i, m));
        store_n(dinp + i, _mm256_fmadd_ps(load_n(dout + i, m), g, load_n(dinp + i, m)), m);
      });
      return;
    }
    elems(n, [&](int64_t i) {
      const T x = inp[i];
      const T u = T(kGeluC) * (x + T(0.044715) * x * x * x);
      const T th = std::tanh(u);
      const T du = T(kGeluC) * (T(1) + T(3 * 0.044715) * x * x);
      dinp[i] += dout[i] * (T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * du);
    });
  }
  void silu_forward(T* out, const T* inp, int64_t n) override {
    if constexpr (kSimd) {
      lanes8(n, [&](int64_t i, int64_t m) { store_n(out + i, silu_ps(load_n(inp + i, m)), m); });
      return;
    }
    elems(n, [&](int64_t i) { out[i] = inp[i] / (T(1) + std::exp(-inp[i])); });
  }
  void silu_backward(T* dinp, const T* inp, const T* dout, int64_t n) override {
    if constexpr (kSimd) {
      lanes8(n, [&](int64_t i, int64_t m) {
        const __m256 g = silu_grad_ps(load_n(inp + i, m));
        store_n(dinp + i, _mm256_fmadd_ps(load_n(dout + i, m), g, load_n(dinp + i, m)), m);
      });
      return;
    }
    elems(n, [&](int64_t i) {
      const T s = T(1) / (T(1) + std::exp(-inp[i]));
      dinp[i] += dout[i] * s * (T(1) + inp[i] * (T(1) - s));
    });
  }
  void softmax_forward(T* out, const T* inp, int64_t N, int64_t C) override {
    rows(N, C, [&](int64_t n) {
      const T* x = inp + n * C;
      T* o = out + n * C;
      T mx = x[0];
      for (int64_t c = 1; c < C; ++c) mx = std::max(mx, x[c]);
      double s = 0;
      for (int64_t c = 0; c < C; ++c) {
        o[c] = std::exp(x[c] - mx);
        s += o[c];
      }
      const T inv = T(1.0 / s);
      for (int64_t c = 0; c < C; ++c) o[c] *= inv;
    });
  }
  void softmax_backward(T* dinp, const T* out, const T* dout, int64_t N, int64_t C) override {
    rows(N, C, [&](int64_t n) {
      const T* y = out + n * C;
      const T* d = dout + n * C;
      const T s = static_cast<T>(dotd(y, d, C));
      for (int64_t c = 0; c < C; ++c) dinp[n * C + c] += y[c] * (d[c] - s);
    });
  }

  // ---- normalisation ----
  void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias, int64_t N,
                         int64_t C, double eps) override {
    if constexpr (kSimd) {
      rows(N, C, [&](int64_t n) { layernorm_row(out + n * C, mean + n, rstd + n, inp + n * C, weight, bias, C, eps); });
      return;
    }
    rows(N, C, [&](int64_t n) {
      const T* x = inp + n * C;
      double m = 0;
      for (int64_t c = 0; c < C; ++c) m += x[c];
      m /= double(C);
      double v = 0;
      for (int64_t c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
      v /= double(C);
      const T mt = static_cast<T>(m), rs = static_cast<T>(1.0 / std::sqrt(v + eps));
      mean[n] = mt;
      rstd[n] = rs;
      T* o = out + n * C;
      for (int64_t c = 0; c < C; ++c) {
        T y = (x[c] - mt) * rs;
        if (weight) y = y * weight[c] + (bias ? bias[c] : T(0));
        o[c] = y;
      }
    });
  }
  void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight, const T* mean,
                          const T* rstd, int64_t N, int64_t C) override {
    if constexpr (kSimd) {
      if (dinp)
        rows(N, C, [&](int64_t n) {
          layernorm_row_backward(dinp + n * C, dout + n * C, inp + n * C, weight, mean[n], rstd[n], C);
        });
      if (dweight || dbias)
        column_sums(N, C, [&](int64_t n, int64_t c0, __m256d acc[4]) {
          const __m256 x = _mm256_loadu_ps(inp + n * C + c0), d = _mm256_loadu_ps(dout + n * C + c0);
          const __m256d mv = _mm256_set1_pd(double(mean[n])), rv = _mm256_set1_pd(double(rstd[n]));
          const __m256d d0 = lo_pd(d), d1 = hi_pd(d);
          acc[0] = _mm256_fmadd_pd(d0, _mm256_mul_pd(_mm256_sub_pd(lo_pd(x), mv), rv), acc[0]);
          acc[1] = _mm256_fmadd_pd(d1, _mm256_mul_pd(_mm256_sub_pd(hi_pd(x), mv), rv), acc[1]);
          acc[2] = _mm256_add_pd(acc[2], d0);
          acc[3] = _mm256_add_pd(acc[3], d1);
        }, [&](int64_t c, const double* sums) {
          if (dweight) dweight[c] += static_cast<T>(sums[0]);
          if (dbias) dbias[c] += static_cast<T>(sums[1]);
        }, [&](int64_t n, int64_t c, double* sums) {
          sums[0] += double(dout[n * C + c]) * ((double(inp[n * C + c]) - mean[n]) * rstd[n]);
          sums[1] += dout[n * C + c];
        });
      return;
    }
    if (dinp) {
      rows(N, C, [&](int64_t n) {
        const T* x = inp + n * C;
        const T* d = dout + n * C;
        double sum_d = 0, sum_dn = 0;
        for (int64_t c = 0; c < C; ++c) {
          const double dn = weight ? double(d[c]) * weight[c] : double(d[c]);
          sum_d += dn;
          sum_dn += dn * (double(x[c]) - mean[n]) * rstd[n];
        }
        const T md = static_cast<T>(sum_d / C), mdn = static_cast<T>(sum_dn / C);
        for (int64_t c = 0; c < C; ++c) {
          const T norm = (x[c] - mean[n]) * rstd[n];
          const T dn = weight ? d[c] * weight[c] : d[c];
          dinp[n * C + c] += (dn - md - norm * mdn) * rstd[n];
        }
      });
    }
    if (dweight || dbias) {
      columns(N, C, [&](int64_t c0, int64_t c1) {
        std::vector<double> dw(static_cast<size_t>(c1 - c0), 0.0), db(dw.size(), 0.0);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t c = c0; c < c1; ++c) {
            const double norm = (double(inp[n * C + c]) - mean[n]) * rstd[n];
            dw[static_cast<size_t>(c - c0)] += double(dout[n * C + c]) * norm;
            db[static_cast<size_t>(c - c0)] += dout[n * C + c];
          }
        for (int64_t c = c0; c < c1; ++c) {
          if (dweight) dweight[c] += static_cast<T>(dw[static_cast<size_t>(c - c0)]);
          if (dbias) dbias[c] += static_cast<T>(db[static_cast<size_t>(c - c0)]);
        }
      });
    }
  }
  void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, int64_t N, int64_t C, double eps) override {
    if constexpr (kSimd) {
      rows(N, C, [&](int64_t n) { rmsnorm_row(out + n * C, rstd + n, inp + n * C, weight, C, eps); });
      return;
    }
    rows(N, C, [&](int64_t n) {
      const T* x = inp + n * C;
      const double ms = dotd(x, x, C) / double(C);
      const T rs = static_cast<T>(1.0 / std::sqrt(ms + eps));
      rstd[n] = rs;
      for (int64_t c = 0; c < C; ++c) out[n * C + c] = x[c] * rs * weight[c];
    });
  }
  void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd, int64_t N,
                        int64_t C) override {
    if constexpr (kSimd) {
      if (dinp)
        rows(N, C, [&](int64_t n) { rmsnorm_row_backward(dinp + n * C, dout + n * C, inp + n * C, weight, rstd[n], C); });
      if (dweight)
        column_sums(N, C, [&](int64_t n, int64_t c0, __m256d acc[4]) {
          const __m256 x = _mm256_loadu_ps(inp + n * C + c0), d = _mm256_loadu_ps(dout + n * C + c0);
          const __m256d rv = _mm256_set1_pd(double(rstd[n]));
          acc[0] = _mm256_fmadd_pd(lo_pd(d), _mm256_mul_pd(lo_pd(x), rv), acc[0]);
          acc[1] = _mm256_fmadd_pd(hi_pd(d), _mm256_mul_pd(hi_pd(x), rv), acc[1]);
        }, [&](int64_t c, const double* sums) { dweight[c] += static_cast<T>(sums[0]); },
        [&](int64_t n, int64_t c, double* sums) {
          sums[0] += double(dout[n * C + c]) * (double(inp[n * C + c]) * rstd[n]);
        });
      return;
    }
    if (dinp) {
      rows(N, C, [&](int64_t n) {
        const T* x = inp + n * C;
        const T* d = dout + n * C;
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += double(d[c]) * weight[c] * x[c] * rstd[n];
        const T m = static_cast<T>(s / C);
        for (int64_t c = 0; c < C; ++c) {
          const T norm = x[c] * rstd[n];
          dinp[n * C + c] += rstd[n] * (d[c] * weight[c] - norm * m);
        }
      });
    }
    if (dweight) {
      columns(N, C, [&](int64_t c0, int64_t c1) {
        std::vector<double> dw(static_cast<size_t>(c1 - c0), 0.0);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t c = c0; c < c1; ++c)
            dw[static_cast<size_t>(c - c0)] += double(dout[n * C + c]) * inp[n * C + c] * rstd[n];
        for (int64_t c = c0; c < c1; ++c) dweight[c] += static_cast<T>(dw[static_cast<size_t>(c - c0)]);
      });
    }
  }

  // ---- modulation ----
  void modulate_forward(T* out, const T* inp, const T* shift, const T* scale, int64_t ms, int64_t S, int64_t Lf,
                        int64_t C) override {
    rows(S * Lf, C, [&](int64_t r) {
      const int64_t s = r / Lf;
      const T* sh = shift + s * ms;
      const T* sc = scale + s * ms;
      for (int64_t c = 0; c < C; ++c) out[r * C + c] = inp[r * C + c] * (T(1) + sc[c]) + sh[c];
    });
  }
  void modulate_backward(T* dinp, T* dshift, T* dscale, const T* dout, const T* inp, const T* scale, int64_t ms,
                         int64_t S, int64_t Lf, int64_t C) override {
    if constexpr (kSimd) {
      // Per sample, per group of 8 columns: the sums over its Lf rows stay in registers.
      pool_.parallel_for(S, 1, [&](int64_t s0, int64_t s1) {
        const int64_t C8 = C & ~int64_t(7);
        for (int64_t s = s0; s < s1; ++s) {
          const float* sc = scale + s * ms;
          for (int64_t c = 0; c < C8; c += 8) {
            const __m256 one_sc = _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_loadu_ps(sc + c));
            __m256d h0 = _mm256_setzero_pd(), h1 = h0, k0 = h0, k1 = h0;
            for (int64_t r = s * Lf; r < (s + 1) * Lf; ++r) {
              const __m256 d = _mm256_loadu_ps(dout + r * C + c), x = _mm256_loadu_ps(inp + r * C + c);
              if (dinp) _mm256_storeu_ps(dinp + r * C + c, _mm256_fmadd_ps(d, one_sc, _mm256_loadu_ps(dinp + r * C + c)));
              const __m256d d0 = lo_pd(d), d1 = hi_pd(d);
              h0 = _mm256_add_pd(h0, d0);
              h1 = _mm256_add_pd(h1, d1);
              k0 = _mm256_fmadd_pd(d0, lo_pd(x), k0);
              k1 = _mm256_fmadd_pd(d1, hi_pd(x), k1);
            }
            add_sums(dshift ? dshift + s * ms + c : nullptr, h0, h1);
            add_sums(dscale ? dscale + s * ms + c : nullptr, k0, k1);
          }
          for (int64_t c = C8; c < C; ++c) {
            double h = 0, k = 0;
            for (int64_t r = s * Lf; r < (s + 1) * Lf; ++r) {
              const float d = dout[r * C + c];
              if (dinp) dinp[r * C + c] = std::fma(d, 1.0f + sc[c], dinp[r * C + c]);
              h += d;
              k += double(d) * inp[r * C + c];
            }
            if (dshift) dshift[s * ms + c] += static_cast<float>(h);
            if (dscale) dscale[s * ms + c] += static_cast<float>(k);
          }
        }
      });
      return;
    }
    pool_.parallel_for(S, 1, [&](int64_t s0, int64_t s1) {
      std::vector<double> dsh(static_cast<size_t>(C)), dsc(static_cast<size_t>(C));
      for (int64_t s = s0; s < s1; ++s) {
        std::fill(dsh.begin(), dsh.end(), 0.0);
        std::fill(dsc.begin(), dsc.end(), 0.0);
        const T* sc = scale + s * ms;
        for (int64_t l = 0; l < Lf; ++l) {
          const int64_t r = s * Lf + l;
          for (int64_t c = 0; c < C; ++c) {
            const T d = dout[r * C + c];
            if (dinp) dinp[r * C + c] += d * (T(1) + sc[c]);
            dsh[static_cast<size_t>(c)] += d;
            dsc[static_cast<size_t>(c)] += double(d) * inp[r * C + c];
          }
        }
        for (int64_t c = 0; c < C; ++c) {
          if (dshift) dshift[s * ms + c] += static_cast<T>(dsh[static_cast<size_t>(c)]);
          if (dscale) dscale[s * ms + c] += static_cast<T>(dsc[static_cast<size_t>(c)]);
        }
      }
    });
  }
  void gate_residual_forward(T* x, const T* y, const T* gate, int64_t ms, int64_t S, int64_t Lf, int64_t C) override {
    rows(S * Lf, C, [&](int64_t r) {
      const T* g = gate + (r / Lf) * ms;
      for (int64_t c = 0; c < C; ++c) x[r * C + c] += g[c] * y[r * C + c];
    });
  }
  void gate_residual_backward(T* dy, T* dgate, const T* dx, const T* y, const T* gate, int64_t ms, int64_t S,
                              int64_t Lf, int64_t C) override {
    if constexpr (kSimd) {
      pool_.parallel_for(S, 1, [&](int64_t s0, int64_t s1) {
        const int64_t C8 = C & ~int64_t(7);
        for (int64_t s = s0; s < s1; ++s) {
          const float* g = gate + s * ms;
          for (int64_t c = 0; c < C8; c += 8) {
            const __m256 gv = _mm256_loadu_ps(g + c);
            __m256d a0 = _mm256_setzero_pd(), a1 = a0;
            for (int64_t r = s * Lf; r < (s + 1) * Lf; ++r) {
              const __m256 d = _mm256_loadu_ps(dx + r * C + c), yv = _mm256_loadu_ps(y + r * C + c);
              if (dy) _mm256_storeu_ps(dy + r * C + c, _mm256_fmadd_ps(d, gv, _mm256_loadu_ps(dy + r * C + c)));
              a0 = _mm256_fmadd_pd(lo_pd(d), lo_pd(yv), a0);
              a1 = _mm256_fmadd_pd(hi_pd(d), hi_pd(yv), a1);
            }
            add_sums(dgate ? dgate + s * ms + c : nullptr, a0, a1);
          }
          for (int64_t c = C8; c < C; ++c) {
            double a = 0;
            for (int64_t r = s * Lf; r < (s + 1) * Lf; ++r) {
              if (dy) dy[r * C + c] = std::fma(dx[r * C + c], g[c], dy[r * C + c]);
              a += double(dx[r * C + c]) * y[r * C + c];
            }
            if (dgate) dgate[s * ms + c] += static_cast<float>(a);
          }
        }
      });
      return;
    }
    pool_.parallel_for(S, 1, [&](int64_t s0, int64_t s1) {
      std::vector<double> dg(static_cast<size_t>(C));
      for (int64_t s = s0; s < s1; ++s) {
        std::fill(dg.begin(), dg.end(), 0.0);
        const T* g = gate + s * ms;
        for (int64_t l = 0; l < Lf; ++l) {
          const int64_t r = s * Lf + l;
          for (int64_t c = 0; c < C; ++c) {
            if (dy) dy[r * C + c] += dx[r * C + c] * g[c];
            dg[static_cast<size_t>(c)] += double(dx[r * C + c]) * y[r * C + c];
          }
        }
        if (dgate)
          for (int64_t c = 0; c < C; ++c) dgate[s * ms + c] += static_cast<T>(dg[static_cast<size_t>(c)]);
      }
    });
  }

  // ---- RoPE ----
  void rope_forward(T* out, const T* inp, const T* cs, const T* sn, int64_t N, int64_t H, int64_t hd) override {
    const int64_t P = hd / 2;
    rows(N, H * hd, [&](int64_t n) {
      for (int64_t h = 0; h < H; ++h) {
        const T* x = inp + n * H * hd + h * hd;
        T* o = out + n * H * hd + h * hd;
        for (int64_t i = 0; i < P; ++i) {
          const T c = cs[n * P + i], s = sn[n * P + i];
          const T x0 = x[2 * i], x1 = x[2 * i + 1];
          o[2 * i] = x0 * c - x1 * s;
          o[2 * i + 1] = x0 * s + x1 * c;
        }
      }
    });
  }
  void rope_backward(T* dinp, const T* dout, const T* cs, const T* sn, int64_t N, int64_t H, int64_t hd) override {
    const int64_t P = hd / 2;
    rows(N, H * hd, [&](int64_t n) {
      for (int64_t h = 0; h < H; ++h) {
        const T* d = dout + n * H * hd + h * hd;
        T* o = dinp + n * H * hd + h * hd;
        for (int64_t i = 0; i < P; ++i) {
          const T c = cs[n * P + i], s = sn[n * P + i];
          const T d0 = d[2 * i], d1 = d[2 * i + 1];
          o[2 * i] += d0 * c + d1 * s;
          o[2 * i + 1] += -d0 * s + d1 * c;
        }
      }
    });
  }

  // ---- attention (kernels in cpu/attention.cpp) ----
  void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, const AttnShape& sh,
                         const AttnMask& mask, double scale) override {
    check_mask(sh, mask);
    cpu_attention_forward<T>(pool_, attn_scratch_, out, lse, q, k, v, sh, mask, scale);
  }
  void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* out,
                          const T* lse, const AttnShape& sh, const AttnMask& mask, double scale) override {
    check_mask(sh, mask);
    cpu_attention_backward<T>(pool_, attn_scratch_, dq, dk, dv, dout, q, k, v, out, lse, sh, mask, scale);
  }

  // ---- embeddings ----
  void timestep_embedding(T* out, const T* t, int64_t N, int64_t dim) override {
    CFP_CHECK(dim % 2 == 0, "time embedding width must be even, got %lld", static_cast<long long>(dim));
    const int64_t half = dim / 2;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < half; ++i) {
        const double w = std::pow(10000.0, -double(i) / double(half));
        const double a = double(t[n]) * w;
        out[n * dim + i] = static_cast<T>(std::cos(a));
        out[n * dim + half + i] = static_cast<T>(std::sin(a));
      }
  }
  void patchify(T* tokens, const T* x, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W, int64_t ph,
                int64_t pw) override {
    patch_loop(B, F, C, H, W, ph, pw, false, [&](int64_t ti, int64_t xi) { tokens[ti] = x[xi]; });
  }
  void patchify_backward(T* dx, const T* dtokens, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W,
                         int64_t ph, int64_t pw) override {
    patch_loop(B, F, C, H, W, ph, pw, false, [&](int64_t ti, int64_t xi) { dx[xi] += dtokens[ti]; });
  }
  void unpatchify(T* x, const T* tokens, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W, int64_t ph,
                  int64_t pw) override {
    patch_loop(B, F, C, H, W, ph, pw, true, [&](int64_t ti, int64_t xi) { x[xi] = tokens[ti]; });
  }
  void unpatchify_backward(T* dtokens, const T* dx, int64_t B, int64_t F, int64_t C, int64_t H, int64_t W,
                           int64_t ph, int64_t pw) override {
    patch_loop(B, F, C, H, W, ph, pw, true, [&](int64_t ti, int64_t xi) { dtokens[ti] += dx[xi]; });
  }

 private:
  // ---- float row kernels (AVX2; sums in double, 8 columns at a time, scalar tail) ----
  static void layernorm_row(float* o, float* mean, float* rstd, const float* x, const float* w, const float* b,
                            int64_t C, double eps) {
    const int64_t C8 = C & ~int64_t(7);
    __m256d a0 = _mm256_setzero_pd(), a1 = a0;
    for (int64_t c = 0; c < C8; c += 8) {
      const __m256 v = _mm256_loadu_ps(x + c);
      a0 = _mm256_add_pd(a0, lo_pd(v));
      a1 = _mm256_add_pd(a1, hi_pd(v));
    }
    double sum = hsum_pd(_mm256_add_pd(a0, a1));
    for (int64_t c = C8; c < C; ++c) sum += x[c];
    const double m = sum / double(C);
    const __m256d mv = _mm256_set1_pd(m);
    a0 = _mm256_setzero_pd(), a1 = a0;
    for (int64_t c = 0; c < C8; c += 8) {
      const __m256 v = _mm256_loadu_ps(x + c);
      const __m256d d0 = _mm256_sub_pd(lo_pd(v), mv), d1 = _mm256_sub_pd(hi_pd(v), mv);
      a0 = _mm256_fmadd_pd(d0, d0, a0);
      a1 = _mm256_fmadd_pd(d1, d1, a1);
    }
    double var = hsum_pd(_mm256_add_pd(a0, a1));
    for (int64_t c = C8; c < C; ++c) var += (x[c] - m) * (x[c] - m);
    var /= double(C);
    const float mt = static_cast<float>(m), rs = static_cast<float>(1.0 / std::sqrt(var + eps));
    *mean = mt;
    *rstd = rs;
    const __m256 mtv = _mm256_set1_ps(mt), rsv = _mm256_set1_ps(rs);
    for (int64_t c = 0; c < C8; c += 8) {
      __m256 y = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), mtv), rsv);
      if (w) y = _mm256_fmadd_ps(y, _mm256_loadu_ps(w + c), b ? _mm256_loadu_ps(b + c) : _mm256_setzero_ps());
      _mm256_storeu_ps(o + c, y);
    }
    for (int64_t c = C8; c < C; ++c) {
      float y = (x[c] - mt) * rs;
      if (w) y = std::fma(y, w[c], b ? b[c] : 0.0f);
      o[c] = y;
    }
  }
  static void layernorm_row_backward(float* dx, const float* d, const float* x, const float* w, float mean,
                                     float rstd, int64_t C) {
    const int64_t C8 = C & ~int64_t(7);
    const __m256d mv = _mm256_set1_pd(mean), rv = _mm256_set1_pd(rstd);
    __m256d sd = _mm256_setzero_pd(), sdn = sd;
    for (int64_t c = 0; c < C8; c += 8) {
      __m256 dn = _mm256_loadu_ps(d + c);
      const __m256 xv = _mm256_loadu_ps(x + c);
      __m256d dn0 = lo_pd(dn), dn1 = hi_pd(dn);
      if (w) {
        const __m256 wv = _mm256_loadu_ps(w + c);
        dn0 = _mm256_mul_pd(dn0, lo_pd(wv));
        dn1 = _mm256_mul_pd(dn1, hi_pd(wv));
      }
      sd = _mm256_add_pd(sd, _mm256_add_pd(dn0, dn1));
      sdn = _mm256_fmadd_pd(dn0, _mm256_mul_pd(_mm256_sub_pd(lo_pd(xv), mv), rv), sdn);
      sdn = _mm256_fmadd_pd(dn1, _mm256_mul_pd(_mm256_sub_pd(hi_pd(xv), mv), rv), sdn);
    }
    double sum_d = hsum_pd(sd), sum_dn = hsum_pd(sdn);
    for (int64_t c = C8; c < C; ++c) {
      const double dn = w ? double(d[c]) * w[c] : double(d[c]);
      sum_d += dn;
      sum_dn += dn * ((double(x[c]) - mean) * rstd);
    }
    const float md = static_cast<float>(sum_d / double(C)), mdn = static_cast<float>(sum_dn / double(C));
    const __m256 mtv = _mm256_set1_ps(mean), rsv = _mm256_set1_ps(rstd), mdv = _mm256_set1_ps(md),
                 mdnv = _mm256_set1_ps(mdn);
    for (int64_t c = 0; c < C8; c += 8) {
      const __m256 norm = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), mtv), rsv);
      __m256 dn = _mm256_loadu_ps(d + c);
      if (w) dn = _mm256_mul_ps(dn, _mm256_loadu_ps(w + c));
      const __m256 g = _mm256_fnmadd_ps(norm, mdnv, _mm256_sub_ps(dn, mdv));
      _mm256_storeu_ps(dx + c, _mm256_fmadd_ps(g, rsv, _mm256_loadu_ps(dx + c)));
    }
    for (int64_t c = C8; c < C; ++c) {
      const float norm = (x[c] - mean) * rstd;
      const float dn = w ? d[c] * w[c] : d[c];
      dx[c] = std::fma(std::fma(-norm, mdn, dn - md), rstd, dx[c]);
    }
  }
  static void rmsnorm_row(float* o, float* rstd, const float* x, const float* w, int64_t C, double eps) {
    const int64_t C8 = C & ~int64_t(7);
    __m256d a0 = _mm256_setzero_pd(), a1 = a0;
    for (int64_t c = 0; c < C8; c += 8) {
      const __m256 v = _mm256_loadu_ps(x + c);
      const __m256d v0 = lo_pd(v), v1 = hi_pd(v);
      a0 = _mm256_fmadd_pd(v0, v0, a0);
      a1 = _mm256_fmadd_pd(v1, v1, a1);
    }
    double ss = hsum_pd(_mm256_add_pd(a0, a1));
    for (int64_t c = C8; c < C; ++c) ss += double(x[c]) * double(x[c]);
    const float rs = static_cast<float>(1.0 / std::sqrt(ss / double(C) + eps));
    *rstd = rs;
    const __m256 rsv = _mm256_set1_ps(rs);
    for (int64_t c = 0; c < C8; c += 8)
      _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + c), rsv), _mm256_loadu_ps(w + c)));
    for (int64_t c = C8; c < C; ++c) o[c] = x[c] * rs * w[c];
  }
  static void rmsnorm_row_backward(float* dx, const float* d, const float* x, const float* w, float rstd, int64_t C) {
    const int64_t C8 = C & ~int64_t(7);
    const __m256d rv = _mm256_set1_pd(rstd);
    __m256d a0 = _mm256_setzero_pd(), a1 = a0;
    for (int64_t c = 0; c < C8; c += 8) {
      const __m256 dw = _mm256_mul_ps(_mm256_loadu_ps(d + c), _mm256_loadu_ps(w + c));
      const __m256 xv = _mm256_loadu_ps(x + c);
      a0 = _mm256_fmadd_pd(lo_pd(dw), _mm256_mul_pd(lo_pd(xv), rv), a0);
      a1 = _mm256_fmadd_pd(hi_pd(dw), _mm256_mul_pd(hi_pd(xv), rv), a1);
    }
    double s = hsum_pd(_mm256_add_pd(a0, a1));
    for (int64_t c = C8; c < C; ++c) s += double(d[c] * w[c]) * (double(x[c]) * rstd);
    const float m = static_cast<float>(s / double(C));
    const __m256 rsv = _mm256_set1_ps(rstd), mv = _mm256_set1_ps(m);
    for (int64_t c = 0; c < C8; c += 8) {
      const __m256 norm = _mm256_mul_ps(_mm256_loadu_ps(x + c), rsv);
      const __m256 dw = _mm256_mul_ps(_mm256_loadu_ps(d + c), _mm256_loadu_ps(w + c));
      _mm256_storeu_ps(dx + c, _mm256_fmadd_ps(rsv, _mm256_fnmadd_ps(norm, mv, dw), _mm256_loadu_ps(dx + c)));
    }
    for (int64_t c = C8; c < C; ++c) dx[c] = std::fma(rstd, std::fma(-(x[c] * rstd), m, d[c] * w[c]), dx[c]);
  }
  // dst[0..8) += the 8 double sums (lo, hi), rounded to float.
  static void add_sums(float* dst, __m256d lo, __m256d hi) {
    if (!dst) return;
    const __m256 f = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
    _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), f));
  }
  // Per-column sums over N rows in double, without allocation: columns split across the pool in
  // whole groups of 8; each group keeps up to 4 double vectors (two sums of 8 columns) in
  // registers while body(n, c0, acc) adds row n in order; finish(c, sums) receives column c's sums.
  // Tail columns (C % 8) go through tail(n, c, sums) in the same row order.
  template <class Body, class Finish, class Tail>
  void column_sums(int64_t N, int64_t C, Body body, Finish finish, Tail tail) {
    const int64_t groups = C / 8;
    pool_.parallel_for(groups + (C % 8 ? 1 : 0), std::max<int64_t>(1, kGrain / 8 / std::max<int64_t>(N, 1)),
                       [&](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) {
        if (g == groups) {
          for (int64_t c = groups * 8; c < C; ++c) {
            double sums[2] = {0, 0};
            for (int64_t n = 0; n < N; ++n) tail(n, c, sums);
            finish(c, sums);
          }
          continue;
        }
        __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
        for (int64_t n = 0; n < N; ++n) body(n, g * 8, acc);
        alignas(32) double s[4][4];
        for (int k = 0; k < 4; ++k) _mm256_store_pd(s[k], acc[k]);
        for (int64_t j = 0; j < 8; ++j) {
          const double sums[2] = {s[j / 4][j % 4], s[2 + j / 4][j % 4]};
          finish(g * 8 + j, sums);
        }
      }
    });
  }

  static constexpr double kGeluC = 0.7978845608028654;  // sqrt(2/pi)

  // Float ops take the AVX2 kernels of cpu/simd_math.h; double stays on the scalar reference code
  // (the finite-difference tests run in double).
  static constexpr bool kSimd = std::is_same<T, float>::value;

  // fn(i, m) for the 8-lane groups [i, i + m) covering [0, n) (m < 8 only for the last group),
  // split across the pool in whole groups: every element goes through the same vector code
  // whatever the partition, so results do not depend on the thread count.
  template <class Fn>
  void lanes8(int64_t n, Fn fn) {
    const int64_t groups = (n + 7) / 8;
    pool_.parallel_for(groups, kGrain / 8, [&](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) fn(g * 8, std::min<int64_t>(8, n - g * 8));
    });
  }
  template <class Fn>
  void elems(int64_t n, Fn fn) {
    pool_.parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) fn(i);
    });
  }
  template <class Fn>
  void rows(int64_t N, int64_t C, Fn fn) {
    pool_.parallel_for(N, std::max<int64_t>(1, kGrain / std::max<int64_t>(C, 1)), [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) fn(n);
    });
  }
  template <class Fn>
  void columns(int64_t N, int64_t C, Fn fn) {
    pool_.parallel_for(C, std::max<int64_t>(1, kGrain / std::max<int64_t>(N, 1)), fn);
  }
  // Sum of fn(i) over [0, n) in fixed 4096-element blocks added in order: independent of threads.
  template <class Fn>
  double reduce(int64_t n, Fn fn) {
    constexpr int64_t kBlock = 4096;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    // Grows to the largest size seen, then the step allocates nothing here.
    if (reduce_parts_.size() < static_cast<size_t>(blocks)) reduce_parts_.resize(static_cast<size_t>(blocks));
    double* part = reduce_parts_.data();
    pool_.parallel_for(blocks, 4, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        double s = 0;
        for (int64_t i = b * kBlock, e = std::min(n, (b + 1) * kBlock); i < e; ++i) s += fn(i);
        part[static_cast<size_t>(b)] = s;
      }
    });
    double s = 0;
    for (int64_t b = 0; b < blocks; ++b) s += part[b];
    return s;
  }
  // Visits every (token element, x element) pair. Token vector order: (c, q, r) for patchify,
  // (q, r, c) for the head's unpatchify order.
  template <class Fn>
  void patch_loop(int64_t B, int64_t F, int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, bool head_order,
                  Fn fn) {
    CFP_CHECK(H % ph == 0 && W % pw == 0, "latent %lldx%lld is not divisible by the patch %lldx%lld",
              static_cast<long long>(H), static_cast<long long>(W), static_cast<long long>(ph),
              static_cast<long long>(pw));
    const int64_t Hp = H / ph, Wp = W / pw, P = C * ph * pw;
    pool_.parallel_for(B * F, 1, [&](int64_t f0, int64_t f1) {
      for (int64_t bf = f0; bf < f1; ++bf)
        for (int64_t hp = 0; hp < Hp; ++hp)
          for (int64_t wp = 0; wp < Wp; ++wp) {
            const int64_t tok = (bf * Hp + hp) * Wp + wp;
            for (int64_t c = 0; c < C; ++c)
              for (int64_t qh = 0; qh < ph; ++qh)
                for (int64_t rw = 0; rw < pw; ++rw) {
                  const int64_t e = head_order ? (qh * pw + rw) * C + c : (c * ph + qh) * pw + rw;
                  const int64_t xi = ((bf * C + c) * H + hp * ph + qh) * W + wp * pw + rw;
                  fn(tok * P + e, xi);
                }
          }
    });
  }
  static void check_mask(const AttnShape& sh, const AttnMask& m) {
    CFP_CHECK(sh.hd > 0 && sh.H > 0 && sh.B > 0, "attention shape must be positive");
    CFP_CHECK(sh.kv_stride() >= sh.Tk, "kv_rows %lld < Tk %lld", static_cast<long long>(sh.kv_rows),
              static_cast<long long>(sh.Tk));
    if (m.kind != MaskKind::full) CFP_CHECK(m.block_tokens > 0, "block mask needs block_tokens > 0");
    if (m.kind == MaskKind::teacher_forcing)
      CFP_CHECK(m.half_tokens > 0 && sh.Tq == 2 * m.half_tokens && sh.Tk == 2 * m.half_tokens,
                "teacher-forcing attention needs Tq = Tk = 2 * half_tokens");
  }

  ThreadPool pool_;
  AttentionScratch attn_scratch_;
  std::vector<double> reduce_parts_;  // per-block partial sums of reduce()
};

}  // namespace

template <class T>
std::unique_ptr<Backend<T>> make_cpu_backend(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_unique<CpuBackend<T>>(threads);
}

template std::unique_ptr<Backend<float>> make_cpu_backend<float>(int);
template std::unique_ptr<Backend<double>> make_cpu_backend<double>(int);

}  // namespace cfp
