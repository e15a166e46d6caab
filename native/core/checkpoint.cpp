// Checkpoint files: checksummed safetensors written atomically; see checkpoint.h.
#include "core/checkpoint.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "core/error.h"

namespace cfp {

namespace {

constexpr const char* kChecksumKey = "cfpipe.checksum";
constexpr const char* kZeroHex = "0000000000000000";

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

// Where the checksum's 16 hex digits sit in the file: our writer emits the metadata object first
// with no whitespace, so the exact text "cfpipe.checksum":" appears once, in the header. (A tensor
// name containing it would be written with escaped quotes and cannot match.)
size_t checksum_position(const uint8_t* bytes, size_t header_end) {
  static const std::string needle = std::string("\"") + kChecksumKey + "\":\"";
  const auto* begin = reinterpret_cast<const char*>(bytes);
  const char* end = begin + header_end;
  const char* hit = std::search(begin, end, needle.begin(), needle.end());
  if (hit == end || static_cast<size_t>(end - hit) < needle.size() + 16) return 0;
  return static_cast<size_t>(hit - begin) + needle.size();
}

// XXH64 of the file with the checksum digits read as zeros.
uint64_t file_checksum(const uint8_t* bytes, size_t size, size_t digits_at) {
  std::vector<uint8_t> copy(bytes, bytes + size);
  std::memcpy(copy.data() + digits_at, kZeroHex, 16);
  return xxhash64(copy.data(), copy.size());
}

bool is_reserved(const std::string& key) { return key.rfind("cfpipe.", 0) == 0; }

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08" PRId64, step);
  return buf;
}

}  // namespace

void make_dirs(const std::string& dir) {
  if (dir.empty()) return;
  std::string path;
  size_t i = 0;
  while (i <= dir.size()) {
    const size_t slash = dir.find('/', i);
    path = dir.substr(0, slash == std::string::npos ? dir.size() : slash);
    i = slash == std::string::npos ? dir.size() + 1 : slash + 1;
    if (path.empty()) continue;
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      CFP_THROW("cannot create directory %s: %s", path.c_str(), std::strerror(errno));
    }
  }
  struct stat st;
  CFP_CHECK(::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), "%s exists and is not a directory", dir.c_str());
}

namespace {
// Serialises with the reserved cfpipe.* keys set, fills in the checksum, writes atomically.
uint64_t write_with_checksum(const std::string& path, const std::vector<TensorRef>& tensors, Metadata meta) {
  meta[kChecksumKey] = kZeroHex;
  std::vector<uint8_t> bytes = serialize_safetensors(tensors, meta);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[static_cast<size_t>(i)];
  const size_t at = checksum_position(bytes.data(), 8 + static_cast<size_t>(header_len));
  CFP_CHECK(at != 0, "internal: checksum field not found in the header written for %s", path.c_str());
  const uint64_t sum = xxhash64(bytes.data(), bytes.size());
  std::memcpy(bytes.data() + at, hex64(sum).data(), 16);
  write_file_atomic(path, bytes.data(), bytes.size());
  return sum;
}

Metadata user_meta(const Metadata& metadata, const std::string& kind, int64_t step) {
  Metadata meta;
  for (const auto& [k, v] : metadata) {
    CFP_CHECK(!is_reserved(k), "metadata key \"%s\" is reserved (keys starting with \"cfpipe.\" belong to the checkpoint format)", k.c_str());
    meta[k] = v;
  }
  meta["cfpipe.format"] = kCheckpointFormat;
  meta["cfpipe.kind"] = kind;
  meta["cfpipe.step"] = std::to_string(step);
  return meta;
}
}  // namespace

void write_checked_safetensors(const std::string& path, const std::vector<TensorRef>& tensors, const Metadata& metadata,
                               const std::string& kind, int64_t step) {
  write_with_checksum(path, tensors, user_meta(metadata, kind, step));
}

SafetensorsFile read_checked_safetensors(const std::string& path, uint64_t* checksum) {
  SafetensorsFile f = SafetensorsFile::read(path);
  const Metadata& meta = f.metadata();
  auto fmt = meta.find("cfpipe.format");
  CFP_CHECK(fmt != meta.end(), "%s: not a cfpipe checkpoint file (no cfpipe.format in __metadata__)", path.c_str());
  CFP_CHECK(fmt->second == kCheckpointFormat, "%s: checkpoint format \"%s\", this engine reads \"%s\"", path.c_str(), fmt->second.c_str(),
            kCheckpointFormat);
  auto sum = meta.find(kChecksumKey);
  CFP_CHECK(sum != meta.end() && sum->second.size() == 16, "%s: checkpoint file without a valid %s", path.c_str(), kChecksumKey);
  const size_t at = checksum_position(f.bytes().data(), f.data_start());
  CFP_CHECK(at != 0, "%s: the checksum field is not where the writer puts it (file edited or corrupt)", path.c_str());
  const uint64_t actual = file_checksum(f.bytes().data(), f.bytes().size(), at);
  CFP_CHECK(hex64(actual) == sum->second, "%s: checksum mismatch (stored %s, computed %s): the file is corrupt", path.c_str(), sum->second.c_str(),
            hex64(actual).c_str());
  if (checksum) *checksum = actual;
  return f;
}

bool verify_checked_safetensors(const std::string& path, std::string* why) {
  try {
    read_checked_safetensors(path);
    return true;
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return false;
  }
}

CheckpointPaths checkpoint_paths(const std::string& dir, int64_t step) {
  CFP_CHECK(step >= 0, "checkpoint step must be non-negative, got %" PRId64, step);
  CheckpointPaths p;
  p.step = step;
  const std::string base = (dir.empty() ? std::string(".") : dir) + "/" + step_name(step);
  p.weights = base + ".weights.safetensors";
  p.state = base + ".state.safetensors";
  return p;
}

CheckpointPaths save_checkpoint(const std::string& dir, const CheckpointData& data) {
  const CheckpointPaths p = checkpoint_paths(dir, data.step);
  make_dirs(dir);
  // Weights first; the state file is the commit marker and pins the weights' checksum.
  Metadata meta = user_meta(data.meta, "state", data.step);
  const uint64_t weights_sum = write_with_checksum(p.weights, data.weights, user_meta({}, "weights", data.step));
  meta["cfpipe.weights_checksum"] = hex64(weights_sum);
  write_with_checksum(p.state, data.state, std::move(meta));
  return p;
}

LoadedCheckpoint load_checkpoint(const std::string& dir, int64_t step) {
  const CheckpointPaths p = checkpoint_paths(dir, step);
  uint64_t weights_sum = 0;
  SafetensorsFile state = read_checked_safetensors(p.state);
  SafetensorsFile weights = read_checked_safetensors(p.weights, &weights_sum);
  const Metadata& sm = state.metadata();
  auto kind = sm.find("cfpipe.kind");
  CFP_CHECK(kind != sm.end() && kind->second == "state", "%s: not a checkpoint state file (cfpipe.kind is not \"state\")", p.state.c_str());
  CFP_CHECK(weights.metadata().at("cfpipe.kind") == "weights", "%s: not a checkpoint weights file", p.weights.c_str());
  const int64_t s1 = meta_int(sm, "cfpipe.step", p.state);
  const int64_t s2 = meta_int(weights.metadata(), "cfpipe.step", p.weights);
  CFP_CHECK(s1 == step && s2 == step, "checkpoint %s: files say steps %" PRId64 " (state) and %" PRId64 " (weights), expected %" PRId64,
            p.state.c_str(), s1, s2, step);
  auto pinned = sm.find("cfpipe.weights_checksum");
  CFP_CHECK(pinned != sm.end(), "%s: no cfpipe.weights_checksum", p.state.c_str());
  CFP_CHECK(pinned->second == hex64(weights_sum), "%s does not belong to %s (weights checksum %s, the state file expects %s)", p.weights.c_str(),
            p.state.c_str(), hex64(weights_sum).c_str(), pinned->second.c_str());
  LoadedCheckpoint out{p, step, std::move(weights), std::move(state), {}};
  for (const auto& [k, v] : out.state.metadata())
    if (!is_reserved(k)) out.meta[k] = v;
  return out;
}

std::vector<int64_t> list_checkpoint_steps(const std::string& dir) {
  std::vector<int64_t> steps;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    CFP_CHECK(errno == ENOENT, "cannot list %s: %s", dir.c_str(), std::strerror(errno));
    return steps;
  }
  static const std::string suffix = ".state.safetensors";
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() <= 5 + suffix.size() || name.rfind("step-", 0) != 0) continue;
    if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string digits = name.substr(5, name.size() - 5 - suffix.size());
    if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    steps.push_back(std::stoll(digits));
  }
  ::closedir(d);
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::optional<LoadedCheckpoint> latest_valid_checkpoint(const std::string& dir, std::vector<std::string>* skipped) {
  const std::vector<int64_t> steps = list_checkpoint_steps(dir);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    try {
      return load_checkpoint(dir, *it);
    } catch (const std::exception& e) {
      if (skipped) skipped->push_back(e.what());
    }
  }
  return std::nullopt;
}

void prune_checkpoints(const std::string& dir, size_t keep) {
  const std::vector<int64_t> steps = list_checkpoint_steps(dir);
  if (steps.size() <= keep) return;
  for (size_t i = 0; i + keep < steps.size(); ++i) {
    const CheckpointPaths p = checkpoint_paths(dir, steps[i]);
    if (::unlink(p.state.c_str()) != 0 && errno != ENOENT) CFP_THROW("cannot delete %s: %s", p.state.c_str(), std::strerror(errno));
    if (::unlink(p.weights.c_str()) != 0 && errno != ENOENT) CFP_THROW("cannot delete %s: %s", p.weights.c_str(), std::strerror(errno));
  }
}

int64_t meta_int(const Metadata& meta, const std::string& key, const std::string& label) {
  auto it = meta.find(key);
  CFP_CHECK(it != meta.end(), "%s: metadata \"%s\" is missing", label.c_str(), key.c_str());
  const std::string& s = it->second;
  const size_t start = !s.empty() && s[0] == '-' ? 1 : 0;
  CFP_CHECK(s.size() > start && s.size() - start <= 18 && s.find_first_not_of("0123456789", start) == std::string::npos,
            "%s: metadata \"%s\" = \"%s\" is not an integer", label.c_str(), key.c_str(), s.c_str());
  return std::stoll(s);
}

uint64_t meta_uint(const Metadata& meta, const std::string& key, const std::string& label) {
  auto it = meta.find(key);
  CFP_CHECK(it != meta.end(), "%s: metadata \"%s\" is missing", label.c_str(), key.c_str());
  const std::string& s = it->second;
  CFP_CHECK(!s.empty() && s.size() <= 20 && s.find_first_not_of("0123456789") == std::string::npos, "%s: metadata \"%s\" = \"%s\" is not an unsigned integer",
            label.c_str(), key.c_str(), s.c_str());
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
  CFP_CHECK(errno == 0, "%s: metadata \"%s\" = \"%s\" is out of range", label.c_str(), key.c_str(), s.c_str());
  return v;
}

std::optional<LoadedCheckpoint> latest_checkpoint_of_run(const std::string& dir, const std::string& run_meta_key,
                                                         const std::string& run_key, const char* who) {
  std::vector<std::string> skipped;
  auto c = latest_valid_checkpoint(dir, &skipped);
  if (!c) return c;
  auto it = c->meta.find(run_meta_key);
  CFP_CHECK(it != c->meta.end() && it->second == run_key,
            "%s: checkpoint %s was written for a different run (%s); this run is (%s); use a fresh workDir", who,
            c->paths.state.c_str(), it == c->meta.end() ? "unknown" : it->second.c_str(), run_key.c_str());
  return c;
}

}  // namespace cfp
