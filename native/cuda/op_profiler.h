// Per-op GPU time of a CUDA backend: a Backend<float> that forwards every op to the CUDA backend
// and, while recording, brackets it with CUDA events on that backend's stream. Each op is charged
// its model FLOPs (GEMMs, attention) or the fewest bytes it must move (memory-bound ops), so a
// benchmark can print rates against the tensor-core peak and the measured copy bandwidth.
// Plain C++ header; link cfpipe_cuda.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"

namespace cfp {

struct OpStat {
  std::string name;  // op, and for GEMMs the shape: "gemm NT 7020x1536x1536"
  std::string kind;  // "gemm", "attention" or "memory"
  int64_t calls = 0;
  double ms = 0, flops = 0, bytes = 0;
  bool ta = false, tb = false;  // GEMM rows: the shape, for re-timing outside the model
  int64_t M = 0, N = 0, K = 0;
};

class OpProfiler {
 public:
  virtual ~OpProfiler() = default;
  virtual Backend<float>& backend() = 0;     // build models on this one
  virtual void start() = 0;                  // clear and start recording
  virtual std::vector<OpStat> stop() = 0;    // synchronize; per-op totals, slowest first
};

// Throws when `cuda_backend` is not a CUDA backend.
std::unique_ptr<OpProfiler> make_op_profiler(Backend<float>& cuda_backend);

}  // namespace cfp
