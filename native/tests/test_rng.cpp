// Philox4x32-10: the Random123 known-answer vectors, the (seed, stream, counter) layout, replay
// from a saved counter, split invariance of fills, and the moments of the uniform/normal maps.
#include <cmath>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "tests/math_test_util.h"

using namespace cfp;

TEST_CASE(random123_known_answers) {
  // Random123 tests/kat_vectors, philox4x32 with 10 rounds.
  CHECK((philox4x32_10({0, 0, 0, 0}, {0, 0}) == PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  CHECK((philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
         PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  CHECK((philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
         PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST_CASE(seed_stream_counter_layout) {
  const uint64_t seed = 0x0123456789abcdefull, stream = 0xfedcba9876543210ull, counter = 0x1122334455667788ull;
  const Philox rng(seed, stream, counter);
  const PhiloxCounter expected =
      philox4x32_10({0x55667788u, 0x11223344u, 0x76543210u, 0xfedcba98u}, {0x89abcdefu, 0x01234567u});
  CHECK(rng.block(counter) == expected);
  // Different streams and seeds give different words for the same counter.
  CHECK(Philox(1, 0).block(0) != Philox(1, 1).block(0));
  CHECK(Philox(1, 0).block(0) != Philox(2, 0).block(0));
  CHECK(Philox(1, 0).block(0) != Philox(1, 0).block(1));
  // fork keeps the seed, switches stream and restarts the counter.
  Philox a(7, 0, 99);
  const Philox f = a.fork(3);
  CHECK(f.state().seed == 7 && f.state().stream == 3 && f.state().counter == 0);
}

TEST_CASE(fills_consume_whole_blocks_and_split_invariantly) {
  Philox whole(42, 5);
  std::vector<float> all(16), first(8), second(8);
  whole.fill_normal(all.data(), 16);
  CHECK(whole.counter() == 4);
  Philox split(42, 5);
  split.fill_normal(first.data(), 8);
  split.fill_normal(second.data(), 8);
  CHECK(std::memcmp(all.data(), first.data(), 8 * sizeof(float)) == 0);
  CHECK(std::memcmp(all.data() + 8, second.data(), 8 * sizeof(float)) == 0);
  // A partial block is discarded: 5 values take 2 blocks.
  Philox partial(42, 5);
  std::vector<float> five(5);
  partial.fill_uniform(five.data(), 5);
  CHECK(partial.counter() == 2);
  CHECK(philox_blocks_for(0) == 0 && philox_blocks_for(4) == 1 && philox_blocks_for(9) == 3);
  // Element i comes from block i / 4, word i % 4.
  const PhiloxCounter b1 = Philox(42, 5).block(1);
  CHECK(five[4] == u32_to_uniform(b1[0]));
  // The stateless fill at a state equals the stateful one.
  std::vector<float> stateless(16);
  philox_fill_normal(RngState{42, 5, 0}, stateless.data(), 16);
  CHECK(std::memcmp(all.data(), stateless.data(), 16 * sizeof(float)) == 0);
}

TEST_CASE(replay_from_saved_counter) {
  Philox rng(2024, 1);
  std::vector<float> warmup(37);
  rng.fill_normal(warmup.data(), warmup.size());
  (void)rng.uniform_int(1000);
  const RngState saved = rng.state();
  std::vector<float> a(1000), b(1000);
  rng.fill_normal(a.data(), a.size(), 0.5f, 2.0f);
  const uint32_t ia = rng.uniform_int(77);
  const double da = rng.uniform_double();
  Philox resumed(saved);
  resumed.fill_normal(b.data(), b.size(), 0.5f, 2.0f);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  CHECK(resumed.uniform_int(77) == ia);
  CHECK(resumed.uniform_double() == da);
  CHECK(resumed.state().counter == rng.state().counter);
}

TEST_CASE(normal_moments) {
  const size_t n = 1 << 20;
  std::vector<float> z(n);
  Philox rng(12345, 0);
  rng.fill_normal(z.data(), n);
  double s1 = 0, s2 = 0, s4 = 0;
  size_t beyond3 = 0;
  for (float v : z) {
    s1 += v;
    s2 += double(v) * v;
    s4 += double(v) * v * v * v;
    if (std::fabs(v) > 3.0f) ++beyond3;
    CHECK(std::isfinite(v));
  }
  const double mean = s1 / n, var = s2 / n - mean * mean, kurt = (s4 / n) / (var * var);
  CHECK_NEAR(mean, 0.0, 0.005);  // sd of the mean ~ 0.001
  CHECK_NEAR(var, 1.0, 0.01);    // sd ~ 0.0014
  CHECK_NEAR(kurt, 3.0, 0.05);
  CHECK_NEAR(double(beyond3) / n, 0.0026998, 0.0005);  // P(|z| > 3)
  // Scale and shift.
  std::vector<float> y(4096);
  Philox(12345, 0).fill_normal(y.data(), y.size(), 3.0f, 0.5f);
  for (size_t i = 0; i < y.size(); ++i) CHECK_NEAR(y[i], 3.0 + 0.5 * z[i], 1e-5);
}

TEST_CASE(uniform_ranges_and_moments) {
  const size_t n = 1 << 20;
  std::vector<float> u(n);
  Philox rng(99, 2);
  rng.fill_uniform(u.data(), n);
  double s1 = 0, s2 = 0;
  for (float v : u) {
    CHECK(v >= 0.0f && v < 1.0f);
    s1 += v;
    s2 += double(v) * v;
  }
  CHECK_NEAR(s1 / n, 0.5, 0.002);
  CHECK_NEAR(s2 / n - (s1 / n) * (s1 / n), 1.0 / 12.0, 0.001);
  CHECK(u32_to_uniform(0xffffffffu) < 1.0f);
  CHECK(u32_to_uniform(0u) == 0.0f);
  CHECK(u32_to_open_unit(0u) > 0.0 && u32_to_open_unit(0xffffffffu) < 1.0);

  // uniform_int: in range, every value hit, roughly flat (chi-square with 999 dof).
  std::vector<int> counts(1000, 0);
  const int draws = 200000;
  for (int i = 0; i < draws; ++i) {
    const uint32_t k = rng.uniform_int(1000);
    CHECK(k < 1000);
    if (k < 1000) ++counts[k];
  }
  double chi2 = 0;
  for (int c : counts) chi2 += (c - 200.0) * (c - 200.0) / 200.0;
  CHECK(chi2 < 1200.0);  // mean 999, sd ~45
  CHECK(rng.uniform_int(1) == 0);
  CHECK_THROWS(rng.uniform_int(0));
  for (int i = 0; i < 1000; ++i) {
    const double d = rng.uniform_double();
    CHECK(d >= 0.0 && d < 1.0);
  }
}

TEST_MAIN()
