// Masked multi-head attention on the CPU (the kernels behind Backend::attention_forward/backward).
//
// The masks of core/backend.h are block-structured: consecutive query rows share the same one or
// two contiguous key intervals. The kernels walk query rows in tiles of up to 8 rows that share
// their intervals and touch only the allowed keys, with AVX2/FMA inner loops for float (a
// polynomial exp, scores and P.V as small register-blocked GEMMs); double (the gradient checks)
// and float head sizes that are not a multiple of 8 take a scalar path over the same intervals.
//
// Determinism: every output element is produced by one task in a fixed order. The forward's tasks
// are (batch, head, 32-row query chunk); the backward's are (batch, head), because dk/dv of a head
// collect contributions from all of its queries. Results are bitwise independent of the thread
// count. No allocation per call: scratch lives in per-thread buffers and in AttentionScratch,
// grown on first use.
#pragma once
#include <cstdint>
#include <vector>

#include "core/backend.h"
#include "cpu/thread_pool.h"

namespace cfp {

// Scratch shared by one backend's attention calls (transposed keys for the forward).
struct AttentionScratch {
  std::vector<float> kt;
};

template <class T>
void cpu_attention_forward(ThreadPool& pool, AttentionScratch& scratch, T* out, T* lse, const T* q, const T* k,
                           const T* v, const AttnShape& shape, const AttnMask& mask, double scale);

template <class T>
void cpu_attention_backward(ThreadPool& pool, AttentionScratch& scratch, T* dq, T* dk, T* dv, const T* dout,
                            const T* q, const T* k, const T* v, const T* out, const T* lse, const AttnShape& shape,
                            const AttnMask& mask, double scale);

// The contiguous key intervals (at most two) query row i may see, and the end of the run of rows
// starting at i that share them. Exposed for the tests.
struct KeyIntervals {
  int64_t lo[2] = {0, 0}, hi[2] = {0, 0};
  int count = 0;
};
KeyIntervals attn_key_intervals(const AttnMask& mask, int64_t i, int64_t Tk);
int64_t attn_run_end(const AttnMask& mask, int64_t i, int64_t Tq);

}  // namespace cfp
