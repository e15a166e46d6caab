// Checkpoint I/O: safetensors round trips, validation of corrupt and truncated files, checksums,
// checkpoint selection, and atomicity under a writer killed at random moments.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace {

int g_failures = 0;
#define EXPECT(cond)                                                       \
  do {                                                                     \
    if (!(cond)) {                                                         \
      ++g_failures;                                                        \
      std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

// Runs f, expecting a cfp::Error whose message contains `needle`.
#define EXPECT_ERROR(f, needle)                                                                                  \
  do {                                                                                                           \
    std::string what_;                                                                                           \
    try {                                                                                                        \
      f;                                                                                                         \
    } catch (const cfp::Error& e) {                                                                              \
      what_ = e.what();                                                                                          \
    }                                                                                                            \
    if (what_.find(needle) == std::string::npos) {                                                               \
      ++g_failures;                                                                                              \
      std::fprintf(stderr, "FAIL %s:%d: expected an error containing \"%s\", got \"%s\"\n", __FILE__, __LINE__, \
                   needle, what_.c_str());                                                                       \
    }                                                                                                            \
  } while (0)

std::string g_tmp;

std::string fresh_dir(const std::string& name) {
  const std::string d = g_tmp + "/" + name;
  std::string cmd = "rm -rf '" + d + "'";
  if (std::system(cmd.c_str()) != 0) std::abort();
  cfp::make_dirs(d);
  return d;
}

void write_raw(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

std::vector<uint8_t> header_file(const std::string& json, size_t data_bytes) {
  std::vector<uint8_t> out(8 + json.size() + data_bytes, 0);
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, json.data(), json.size());
  return out;
}

void test_xxhash_vectors() {
  EXPECT(cfp::xxhash64("", 0) == 0xEF46DB3751D8E999ull);
  EXPECT(cfp::xxhash64("abc", 3) == 0x44BC2CF5AD770999ull);
  const char* s = "Nobody inspects the spammish repetition";  // 39 bytes: stripes + tail
  EXPECT(cfp::xxhash64(s, std::strlen(s)) == 0xFBCEA83C8A378BF1ull);
}

void test_half_conversions() {
  EXPECT(cfp::f32_to_f16(1.0f) == 0x3c00);
  EXPECT(cfp::f32_to_f16(-2.0f) == 0xc000);
  EXPECT(cfp::f32_to_f16(65504.0f) == 0x7bff);
  EXPECT(cfp::f32_to_f16(65520.0f) == 0x7c00);  // ties to even: overflows to inf
  EXPECT(cfp::f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
  EXPECT(cfp::f32_to_f16(std::ldexp(1.0f, -26)) == 0x0000);  // below half the smallest subnormal
  EXPECT(cfp::f32_to_f16(0.1f) == 0x2e66);
  EXPECT(cfp::f32_to_bf16(1.0f) == 0x3f80);
  EXPECT(cfp::f32_to_bf16(3.14159265f) == 0x4049);
  EXPECT(std::isnan(cfp::bf16_to_f32(cfp::f32_to_bf16(NAN))));
  // Every finite f16 survives f16 -> f32 -> f16, and every non-NaN bf16 survives bf16 -> f32 -> bf16.
  int bad16 = 0, badb = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto u = static_cast<uint16_t>(h);
    if ((u & 0x7c00) != 0x7c00 || (u & 0x3ff) == 0)
      if (cfp::f32_to_f16(cfp::f16_to_f32(u)) != u) ++bad16;
    if (!std::isnan(cfp::bf16_to_f32(u)) && cfp::f32_to_bf16(cfp::bf16_to_f32(u)) != u) ++badb;
  }
  EXPECT(bad16 == 0);
  EXPECT(badb == 0);
}

void test_round_trip() {
  const std::string dir = fresh_dir("roundtrip");
  std::vector<float> a = {1.5f, -2.25f, 3.0f, 0.0f, 1e-8f, -7.0f};
  std::vector<uint16_t> h = {cfp::f32_to_f16(0.5f), cfp::f32_to_f16(-1.0f), cfp::f32_to_f16(2.0f)};
  std::vector<uint16_t> b = {cfp::f32_to_bf16(0.25f), cfp::f32_to_bf16(8.0f)};
  std::vector<uint64_t> c = {0xffffffffffffffffull, 42};
  cfp::Metadata meta = {{"note", "quote \" backslash \\ newline \n unicode é"}, {"step", "12"}};
  const std::string path = dir + "/t.safetensors";
  cfp::write_safetensors(path,
                         {{"generator.model.a", cfp::DType::F32, {2, 3}, a.data()},
                          {"h", cfp::DType::F16, {3}, h.data()},
                          {"b", cfp::DType::BF16, {1, 2}, b.data()},
                          {"rng.counters", cfp::DType::U64, {2}, c.data()},
                          {"empty", cfp::DType::F32, {0, 4}, nullptr}},
                         meta);
  const cfp::SafetensorsFile f = cfp::SafetensorsFile::read(path);
  EXPECT(f.metadata() == meta);
  EXPECT(f.tensors().size() == 5);
  EXPECT(f.data_start() % 8 == 0);
  const cfp::TensorInfo& ta = f.get("generator.model.a");
  EXPECT(ta.dtype == cfp::DType::F32 && ta.shape == (std::vector<int64_t>{2, 3}));
  EXPECT(std::memcmp(f.data(ta), a.data(), 24) == 0);
  std::vector<float> back(6);
  f.read_f32("generator.model.a", {2, 3}, back.data());
  EXPECT(back == a);
  EXPECT(f.to_f32(f.get("h")) == (std::vector<float>{0.5f, -1.0f, 2.0f}));
  EXPECT(f.to_f32(f.get("b")) == (std::vector<float>{0.25f, 8.0f}));
  EXPECT(std::memcmp(f.data(f.get("rng.counters")), c.data(), 16) == 0);
  EXPECT(f.get("empty").numel() == 0);
  EXPECT_ERROR(f.read_f32("generator.model.a", {3, 2}, back.data()), "has shape [2, 3], expected [3, 2]");
  EXPECT_ERROR(f.get("missing"), "no tensor named \"missing\"");
  EXPECT_ERROR(f.to_f32(f.get("rng.counters")), "expected a floating-point dtype");
  // Writing refuses duplicate names.
  EXPECT_ERROR(cfp::serialize_safetensors({{"x", cfp::DType::F32, {1}, a.data()}, {"x", cfp::DType::F32, {1}, a.data()}}, {}),
               "duplicate tensor name");
}

void test_validation_errors() {
  const std::string dir = fresh_dir("validation");
  const std::string p = dir + "/bad.safetensors";
  auto expect_bad = [&](const std::string& json, size_t data, const char* needle) {
    write_raw(p, header_file(json, data));
    EXPECT_ERROR(cfp::SafetensorsFile::read(p), needle);
  };
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "corrupt safetensors header");  // unclosed
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "truncated safetensors file");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12 bytes");
  expect_bad("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unsupported dtype \"Q4\"");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
             "overlaps");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "hole in the data section");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "belong to no tensor");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative integers");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{}}", 4, "duplicate key");
  expect_bad("{\"__metadata__\":{\"k\":1}}", 0, "must be a string");
  expect_bad("[1]", 0, "must start with '{'");
  std::vector<uint8_t> huge = header_file("{}", 0);
  huge[7] = 0x7f;
  write_raw(p, huge);
  EXPECT_ERROR(cfp::SafetensorsFile::read(p), "header length");
  write_raw(p, {1, 2, 3});
  EXPECT_ERROR(cfp::SafetensorsFile::read(p), "truncated");
  EXPECT_ERROR(cfp::SafetensorsFile::read(dir + "/nope.safetensors"), "cannot open");
}

void test_truncation_and_fuzz() {
  // Every prefix of a valid file is rejected with a cfp::Error; random byte flips never crash.
  std::vector<float> a(40);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.5f;
  std::vector<uint8_t> full = cfp::serialize_safetensors({{"w", cfp::DType::F32, {8, 5}, a.data()}, {"v", cfp::DType::F32, {4}, a.data()}},
                                                         {{"k", "v"}});
  int not_rejected = 0;
  for (size_t n = 0; n < full.size(); ++n) {
    try {
      cfp::SafetensorsFile::parse(std::vector<uint8_t>(full.begin(), full.begin() + static_cast<long>(n)), "prefix");
      ++not_rejected;
    } catch (const cfp::Error&) {
    }
  }
  EXPECT(not_rejected == 0);
  uint64_t state = 12345;
  int parsed = 0, rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<uint8_t> bytes = full;
    for (int k = 0; k < 3; ++k) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const size_t at = static_cast<size_t>(state >> 33) % std::min<size_t>(bytes.size(), 8 + 200);
      bytes[at] = static_cast<uint8_t>(state >> 17);
    }
    try {
      cfp::SafetensorsFile::parse(std::move(bytes), "fuzz");
      ++parsed;
    } catch (const cfp::Error&) {
      ++rejected;
    }
  }
  EXPECT(parsed + rejected == 3000);
  EXPECT(rejected > 0);
}

void test_checked_files() {
  const std::string dir = fresh_dir("checked");
  const std::string p = dir + "/w.safetensors";
  std::vector<float> a(100, 1.0f);
  cfp::write_checked_safetensors(p, {{"generator.x", cfp::DType::F32, {100}, a.data()}}, {{"stage", "ode"}}, "weights", 7);
  uint64_t sum = 0;
  const cfp::SafetensorsFile f = cfp::read_checked_safetensors(p, &sum);
  EXPECT(sum != 0);
  EXPECT(f.metadata().at("stage") == "ode");
  EXPECT(f.metadata().at("cfpipe.step") == "7");
  // Flip one bit anywhere: in the data it is a checksum mismatch; in the header it is a mismatch
  // or a parse error; never accepted.
  const std::vector<uint8_t> good = cfp::read_file_bytes(p);
  int accepted = 0;
  for (size_t i = 0; i < good.size(); i += 7) {
    std::vector<uint8_t> bad = good;
    bad[i] ^= 0x10;
    write_raw(p, bad);
    if (cfp::verify_checked_safetensors(p)) ++accepted;
  }
  EXPECT(accepted == 0);
  std::vector<uint8_t> bad = good;
  bad[bad.size() - 1] ^= 1;
  write_raw(p, bad);
  EXPECT_ERROR(cfp::read_checked_safetensors(p), "checksum mismatch");
  // A plain safetensors file is not a checked one.
  cfp::write_safetensors(p, {{"x", cfp::DType::F32, {1}, a.data()}}, {});
  EXPECT_ERROR(cfp::read_checked_safetensors(p), "not a cfpipe checkpoint file");
  EXPECT_ERROR(cfp::write_checked_safetensors(p, {}, {{"cfpipe.step", "1"}}, "weights", 1), "reserved");
}

// A checkpoint whose every value is derived from its step, so a reader can check it.
cfp::CheckpointPaths save_step(const std::string& dir, int64_t step, size_t n) {
  std::vector<float> w(n), m(n);
  for (size_t i = 0; i < n; ++i) {
    w[i] = static_cast<float>(step) + static_cast<float>(i) * 1e-3f;
    m[i] = -static_cast<float>(step);
  }
  uint64_t rng[2] = {static_cast<uint64_t>(step) * 1000, 99};
  cfp::CheckpointData d;
  d.step = step;
  d.weights = {{"generator.model.w", cfp::DType::F32, {static_cast<int64_t>(n)}, w.data()},
               {"generator_ema.model.w", cfp::DType::F32, {static_cast<int64_t>(n)}, w.data()}};
  d.state = {{"optim.m", cfp::DType::F32, {static_cast<int64_t>(n)}, m.data()}, {"rng", cfp::DType::U64, {2}, rng}};
  d.meta = {{"data_position", std::to_string(step * 3)}};
  return cfp::save_checkpoint(dir, d);
}

bool consistent(const cfp::LoadedCheckpoint& c, size_t n) {
  const cfp::TensorInfo& w = c.weights.get("generator.model.w");
  if (w.numel() != n) return false;
  std::vector<float> v = c.weights.to_f32(w);
  for (size_t i = 0; i < n; ++i)
    if (v[i] != static_cast<float>(c.step) + static_cast<float>(i) * 1e-3f) return false;
  return cfp::meta_int(c.meta, "data_position", "ckpt") == c.step * 3;
}

void test_checkpoints() {
  const std::string dir = fresh_dir("ckpt");
  EXPECT(!cfp::latest_valid_checkpoint(dir + "/absent").has_value());
  save_step(dir, 10, 64);
  save_step(dir, 20, 64);
  const cfp::CheckpointPaths p30 = save_step(dir, 30, 64);
  EXPECT((cfp::list_checkpoint_steps(dir) == std::vector<int64_t>{10, 20, 30}));
  auto latest = cfp::latest_valid_checkpoint(dir);
  EXPECT(latest.has_value() && latest->step == 30 && consistent(*latest, 64));
  EXPECT(latest->meta.count("cfpipe.checksum") == 0);
  const cfp::TensorInfo& rng = latest->state.get("rng");
  EXPECT(rng.dtype == cfp::DType::U64 && rng.shape == std::vector<int64_t>{2});

  // Truncate the newest weights: step 30 is skipped with a reason, step 20 is chosen.
  std::vector<uint8_t> w30 = cfp::read_file_bytes(p30.weights);
  std::vector<uint8_t> cut(w30.begin(), w30.begin() + static_cast<long>(w30.size() / 2));
  write_raw(p30.weights, cut);
  std::vector<std::string> skipped;
  latest = cfp::latest_valid_checkpoint(dir, &skipped);
  EXPECT(latest.has_value() && latest->step == 20 && consistent(*latest, 64));
  EXPECT(skipped.size() == 1 && skipped[0].find("truncated") != std::string::npos);
  EXPECT_ERROR(cfp::load_checkpoint(dir, 30), "truncated");

  // Weights of another checkpoint under step 30's name: both files verify alone, the pair does not.
  const cfp::CheckpointPaths p20 = cfp::checkpoint_paths(dir, 20);
  write_raw(p30.weights, cfp::read_file_bytes(p20.weights));
  EXPECT_ERROR(cfp::load_checkpoint(dir, 30), "files say steps");
  save_step(dir, 30, 64);
  EXPECT(cfp::latest_valid_checkpoint(dir)->step == 30);

  // A missing state file means the checkpoint does not exist yet.
  save_step(dir, 40, 64);
  ::unlink(cfp::checkpoint_paths(dir, 40).state.c_str());
  EXPECT(cfp::latest_valid_checkpoint(dir)->step == 30);

  cfp::prune_checkpoints(dir, 2);
  EXPECT((cfp::list_checkpoint_steps(dir) == std::vector<int64_t>{20, 30}));
  struct stat st;
  EXPECT(::stat(cfp::checkpoint_paths(dir, 10).weights.c_str(), &st) != 0);
}

void test_atomic_under_kill() {
  // A child writes checkpoints of growing steps in a loop; the parent kills it with SIGKILL at
  // varying moments. Whatever was on disk must load as a consistent checkpoint. Each round first
  // waits until the child has completed a new checkpoint (so a slow, loaded machine changes only
  // where the kill lands, never whether the test can pass), then kills after a varying delay.
  const std::string dir = fresh_dir("kill");
  const size_t n = 1 << 18;  // 1 MiB per tensor, so kills land mid-write
  int kills = 0, found = 0;
  int64_t next = 1;
  for (int round = 0; round < 12; ++round) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      for (int64_t s = next;; ++s) save_step(dir, s, n);
    }
    // Wait (up to 30 s) until the child finished at least one save in this round.
    for (int waited = 0; waited < 3000; ++waited) {
      const auto steps = cfp::list_checkpoint_steps(dir);
      if (!steps.empty() && steps.back() >= next) break;
      ::usleep(10000);
    }
    ::usleep(static_cast<useconds_t>(1000 + 3000 * round));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ++kills;
    std::vector<std::string> skipped;
    auto c = cfp::latest_valid_checkpoint(dir, &skipped);
    if (c) {
      ++found;
      EXPECT(consistent(*c, n));
      next = c->step + 1;
      cfp::prune_checkpoints(dir, 1);
    }
  }
  EXPECT(kills == 12);
  EXPECT(found == 12);
}

}  // namespace

int main() {
  char tmpl[] = "/tmp/cfpipe-test-io-XXXXXX";
  const char* t = ::mkdtemp(tmpl);
  if (!t) return 2;
  g_tmp = t;
  const std::pair<const char*, std::function<void()>> tests[] = {
      {"xxhash vectors", test_xxhash_vectors},     {"half conversions", test_half_conversions},
      {"round trip", test_round_trip},             {"validation errors", test_validation_errors},
      {"truncation and fuzz", test_truncation_and_fuzz}, {"checked files", test_checked_files},
      {"checkpoints", test_checkpoints},           {"atomic under kill", test_atomic_under_kill},
  };
  for (const auto& [name, fn] : tests) {
    const int before = g_failures;
    try {
      fn();
    } catch (const std::exception& e) {
      ++g_failures;
      std::fprintf(stderr, "FAIL %s: unexpected exception: %s\n", name, e.what());
    }
    std::printf("%s %s\n", g_failures == before ? "ok  " : "FAIL", name);
  }
  const std::string cmd = "rm -rf '" + g_tmp + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", g_tmp.c_str());
  return g_failures == 0 ? 0 : 1;
}
