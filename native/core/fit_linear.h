// fitLinear: a small, real, deterministic and resumable training job — minibatch SGD with
// momentum on a least-squares linear regression — that exercises the whole job machinery
// (progress, cooperative cancel, checkpoints with optimizer state and RNG counters, exact resume)
// without the DiT. The runner uses it as the deterministic resumable workload of its
// fault-injection tests: an interrupted run resumed from its checkpoint ends byte-identical to an
// uninterrupted one.
//
// Data: x ~ U(-1, 1)^(samples x features) and y = x.w* + b* + 0.01 n from Philox streams of the
// seed (or caller-given x, y). Step: `batch` row indices drawn with replacement from the Philox
// stream 1 of the seed (its counter is the data position saved in checkpoints), batch MSE loss,
// gradient, v = momentum v + g, p -= lr v. Every sum runs in a fixed order in double.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/job.h"

namespace cfp {

struct FitLinearOptions {
  int64_t features = 8;
  int64_t samples = 256;
  int64_t batch = 32;
  int64_t steps = 100;       // total steps (a resumed run continues up to this count)
  double lr = 0.05;
  double momentum = 0.9;
  uint64_t seed = 0;
  int64_t checkpoint_every = 0;  // also writes one at the end and on cancel when work_dir is set
  int64_t keep_checkpoints = 3;  // newest checkpoints kept in work_dir; 0 keeps all
  int64_t progress_every = 1;
  std::string work_dir;          // checkpoints go here; empty: no checkpoints
  bool resume = false;           // continue from the newest valid checkpoint in work_dir
  std::vector<float> x, y;       // optional data: samples*features and samples values
};

struct FitLinearResult {
  int64_t step = 0;            // steps completed
  bool cancelled = false;
  double loss = 0.0;           // full-data mean squared error of the final parameters
  std::vector<float> weight;   // features values
  float bias = 0.0f;
  std::string checkpoint;      // the state file of the last checkpoint written, or empty
  int64_t resumed_from = -1;   // the checkpoint step it resumed from, or -1
};

// Throws cfp::Error for invalid options or data (naming what was expected), for a loss that
// becomes non-finite, for a checkpoint written with different options, and for I/O failures.
FitLinearResult fit_linear(const FitLinearOptions& options, JobContext& context);

}  // namespace cfp
