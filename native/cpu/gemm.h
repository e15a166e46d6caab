// The CPU GEMM: C[M,N] = alpha op(A) op(B) + beta C, row-major (see Backend::gemm).
// Goto-style: B panels packed into NR-wide strips, A blocks into MR-high strips, a register-blocked
// micro-kernel (AVX2/FMA intrinsics 6x16 for float, a portable 4x8 kernel for double), threads
// splitting the rows (or columns) of C. Every element of C is accumulated over K in the same fixed
// order whatever the partition, so results do not depend on the thread count.
#pragma once
#include <cstdint>

#include "cpu/thread_pool.h"

namespace cfp {

template <class T>
void cpu_gemm(ThreadPool& pool, bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
              int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// The plain triple loop (reference for tests and benchmarks), accumulating in double.
template <class T>
void naive_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace cfp
