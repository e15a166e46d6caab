// A long-running native job (training, sampling, the fitLinear test workload) sees the outside
// world only through a JobContext: it asks cancelled() between steps and stops cooperatively
// (writing a checkpoint first), and it reports progress. The Node binding implements the context
// with an atomic flag set from an AbortSignal and a thread-safe function; C++ tests implement it
// with plain members. No Node dependency here.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cfp {

struct JobProgress {
  int64_t step = 0;   // steps completed so far (absolute, counting steps before a resume)
  int64_t total = 0;  // steps the job will have completed when it finishes
  std::vector<std::pair<std::string, double>> metrics;  // e.g. {"loss", 0.12}
  std::string checkpoint;  // path of a checkpoint written at this step, or empty
};

class JobContext {
 public:
  virtual ~JobContext() = default;
  // True once cancellation was requested; the job stops at its next step boundary.
  virtual bool cancelled() const = 0;
  // Called from the job's thread; may block briefly (back-pressure) but never throws.
  virtual void report(const JobProgress& progress) = 0;
};

// A context that never cancels and drops progress (for direct C++ callers).
class NullJobContext : public JobContext {
 public:
  bool cancelled() const override { return false; }
  void report(const JobProgress&) override {}
};

}  // namespace cfp
