// Training checkpoints: exact-resume state in two safetensors files per step, in one directory.
//
//   <dir>/step-00000120.weights.safetensors   the weights, upstream-style names with the prefixes
//                                             "generator." / "generator_ema." / "critic."
//   <dir>/step-00000120.state.safetensors     everything else resume needs: optimizer moments, EMA
//                                             shadows, RNG counters (tensors), step, data position
//                                             and other scalars (metadata strings)
//
// Every file carries in its __metadata__ "cfpipe.format", "cfpipe.kind" (weights|state),
// "cfpipe.step" and "cfpipe.checksum": the XXH64 of the whole file with the checksum's 16 hex digits
// written as zeros. Files are written atomically (temp, fsync, rename, fsync dir), weights first;
// the state file records the weights file's checksum ("cfpipe.weights_checksum") and is the commit
// marker: a checkpoint exists once its state file does, and is valid only if both files verify and
// match. A crash at any point leaves the previous checkpoints intact, and latest_valid_checkpoint
// skips a torn or corrupt newest one.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace cfp {

// Name prefixes of the weights file (spec §1.12: upstream checkpoints are dicts keyed by these).
inline constexpr const char* kGeneratorPrefix = "generator.";
inline constexpr const char* kGeneratorEmaPrefix = "generator_ema.";
inline constexpr const char* kCriticPrefix = "critic.";

inline constexpr const char* kCheckpointFormat = "cfpipe-checkpoint/1";

// A single self-verifying safetensors file (e.g. exported weights). `kind` goes to
// "cfpipe.kind"; user metadata keys must not start with "cfpipe.".
void write_checked_safetensors(const std::string& path, const std::vector<TensorRef>& tensors, const Metadata& metadata,
                               const std::string& kind, int64_t step);
// Reads a file and verifies its checksum; throws naming the file when it is missing, truncated,
// corrupt or not a checked file. Returns the checksum through `checksum` when given.
SafetensorsFile read_checked_safetensors(const std::string& path, uint64_t* checksum = nullptr);
// True when the file holds a cfpipe checksum that matches (never throws).
bool verify_checked_safetensors(const std::string& path, std::string* why = nullptr);

struct CheckpointData {
  int64_t step = 0;
  std::vector<TensorRef> weights;  // prefixed names: generator.*, generator_ema.*, critic.*
  std::vector<TensorRef> state;    // optimizer moments, EMA, RNG counters, ...
  Metadata meta;                   // scalar training state; keys must not start with "cfpipe."
};

struct CheckpointPaths {
  int64_t step = 0;
  std::string weights;
  std::string state;
};

struct LoadedCheckpoint {
  CheckpointPaths paths;
  int64_t step = 0;
  SafetensorsFile weights;
  SafetensorsFile state;
  Metadata meta;  // the state file's metadata without the "cfpipe." keys
};

CheckpointPaths checkpoint_paths(const std::string& dir, int64_t step);
// Writes a checkpoint (creating `dir` and its parents when missing); returns its paths.
CheckpointPaths save_checkpoint(const std::string& dir, const CheckpointData& data);
// Loads and fully verifies the checkpoint of `step`; throws naming the file and the problem.
LoadedCheckpoint load_checkpoint(const std::string& dir, int64_t step);
// Steps that have a state file in `dir` (by name only, unverified), ascending. Empty when the
// directory does not exist.
std::vector<int64_t> list_checkpoint_steps(const std::string& dir);
// The newest checkpoint that verifies; invalid newer ones are skipped and described in `skipped`.
std::optional<LoadedCheckpoint> latest_valid_checkpoint(const std::string& dir, std::vector<std::string>* skipped = nullptr);
// The newest valid checkpoint in `dir`, which must have been written by the same run: its metadata
// `run_meta_key` must equal `run_key`, else a cfp::Error (prefixed `who`) says the work dir holds
// another run's checkpoints. Empty when there is none.
std::optional<LoadedCheckpoint> latest_checkpoint_of_run(const std::string& dir, const std::string& run_meta_key,
                                                         const std::string& run_key, const char* who);
// Deletes all but the newest `keep` checkpoints (by step); state files go first so a half-deleted
// checkpoint is never mistaken for a valid one.
void prune_checkpoints(const std::string& dir, size_t keep);

// Metadata helpers: integers are stored as decimal strings.
int64_t meta_int(const Metadata& meta, const std::string& key, const std::string& label);
uint64_t meta_uint(const Metadata& meta, const std::string& key, const std::string& label);

// mkdir -p; throws on failure.
void make_dirs(const std::string& dir);

}  // namespace cfp
