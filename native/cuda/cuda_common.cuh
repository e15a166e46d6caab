// Helpers shared by the CUDA backend's translation units: error checks, launch shapes, warp
// reductions and the attention masks' key/query ranges. Included by .cu files only.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/backend.h"
#include "core/error.h"

#define CUDA_OK(call)                                                                     \
  do {                                                                                    \
    cudaError_t err_ = (call);                                                            \
    if (err_ != cudaSuccess) CFP_THROW("CUDA: %s (%s)", cudaGetErrorString(err_), #call); \
  } while (0)

namespace cfp {
namespace cuda {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = 8;  // row and scalar attention kernels: 8 warps, one row/query/key each

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

// Up to two contiguous key (or query) ranges [lo0, hi0) and [lo1, hi1) (same derivation as the
// CPU backend): every mask of core/backend.h is a union of at most two intervals per row.
struct Ranges {
  int64_t lo0 = 0, hi0 = 0, lo1 = 0, hi1 = 0;
  __host__ __device__ int64_t count() const { return (hi0 - lo0) + (hi1 - lo1); }
  __device__ bool has(int64_t j) const { return (j >= lo0 && j < hi0) || (j >= lo1 && j < hi1); }
  __device__ bool empty() const { return hi0 <= lo0 && hi1 <= lo1; }
  __device__ bool overlaps(int64_t a, int64_t b) const {  // [a, b)
    return (lo0 < hi0 && lo0 < b && a < hi0) || (lo1 < hi1 && lo1 < b && a < hi1);
  }
  __device__ bool covers(int64_t a, int64_t b) const {  // [a, b) lies inside one range
    return (a >= lo0 && b <= hi0) || (a >= lo1 && b <= hi1);
  }
};

__host__ __device__ inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

__host__ __device__ inline void clamp_range(int64_t lo, int64_t hi, int64_t n, int64_t& olo, int64_t& ohi) {
  olo = lo < 0 ? 0 : lo;
  ohi = hi < n ? hi : n;
  if (ohi < olo) ohi = olo;
}

// The keys query row i (of Tq) may see among Tk keys.
__host__ __device__ inline Ranges key_ranges(const AttnMask& m, int64_t i, int64_t Tk) {
  Ranges r;
  switch (m.kind) {
    case MaskKind::full:
      clamp_range(0, Tk, Tk, r.lo0, r.hi0);
      break;
    case MaskKind::block_causal:
      clamp_range(0, ((i + m.q_offset) / m.block_tokens + 1) * m.block_tokens, Tk, r.lo0, r.hi0);
      break;
    case MaskKind::teacher_forcing: {
      const int64_t L = m.half_tokens, bt = m.block_tokens;
      if (i < L) {
        clamp_range(0, imin(L, (i / bt + 1) * bt), Tk, r.lo0, r.hi0);
      } else {
        const int64_t b = (i - L) / bt;
        clamp_range(0, imin(L, b * bt), Tk, r.lo0, r.hi0);
        clamp_range(L + b * bt, L + imin(L, (b + 1) * bt), Tk, r.lo1, r.hi1);
      }
      break;
    }
  }
  return r;
}

// The queries (of Tq) that may see key j: the transpose of key_ranges (derived from
// attn_allowed), so key-side passes test no mask per (query, key) pair.
__host__ __device__ inline Ranges query_ranges(const AttnMask& m, int64_t j, int64_t Tq) {
  Ranges r;
  switch (m.kind) {
    case MaskKind::full:
      clamp_range(0, Tq, Tq, r.lo0, r.hi0);
      break;
    case MaskKind::block_causal:  // (i + q_offset) / bt >= j / bt
      clamp_range((j / m.block_tokens) * m.block_tokens - m.q_offset, Tq, Tq, r.lo0, r.hi0);
      break;
    case MaskKind::teacher_forcing: {
      const int64_t L = m.half_tokens, bt = m.block_tokens;
      if (j < L) {  // clean key: clean queries of its block and later, noisy queries of later blocks
        clamp_range((j / bt) * bt, L, Tq, r.lo0, r.hi0);
        clamp_range(L + (j / bt + 1) * bt, 2 * L, Tq, r.lo1, r.hi1);
      } else {  // noisy key: the noisy queries of its own block
        const int64_t b = (j - L) / bt;
        clamp_range(L + b * bt, imin(2 * L, L + (b + 1) * bt), Tq, r.lo0, r.hi0);
      }
      break;
    }
  }
  return r;
}

}  // namespace cuda
}  // namespace cfp
