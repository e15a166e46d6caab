#include "core/rng.h"

#include <cmath>

#include "core/error.h"

namespace cfp {

namespace {

constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1

inline PhiloxCounter philox_round(const PhiloxCounter& c, const PhiloxKey& k) {
  const uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0];
  const uint64_t p1 = static_cast<uint64_t>(kMul1) * c[2];
  return {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
          static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
}

inline PhiloxKey key_of(uint64_t seed) { return {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}; }

inline PhiloxCounter counter_of(uint64_t counter, uint64_t stream) {
  return {static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), static_cast<uint32_t>(stream),
          static_cast<uint32_t>(stream >> 32)};
}

constexpr double kTwoPi = 6.283185307179586476925286766559;

}  // namespace

PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += kWeyl0;
      key[1] += kWeyl1;
    }
    counter = philox_round(counter, key);
  }
  return counter;
}

void box_muller(uint32_t w1, uint32_t w2, double* z0, double* z1) {
  const double r = std::sqrt(-2.0 * std::log(u32_to_open_unit(w1)));
  const double theta = kTwoPi * u32_to_open_unit(w2);
  *z0 = r * std::cos(theta);
  *z1 = r * std::sin(theta);
}

PhiloxCounter Philox::block(uint64_t counter) const {
  return philox4x32_10(counter_of(counter, state_.stream), key_of(state_.seed));
}

void philox_fill_uniform(const RngState& at, float* out, size_t n) {
  const PhiloxKey key = key_of(at.seed);
  for (size_t base = 0; base < n; base += 4) {
    const PhiloxCounter w = philox4x32_10(counter_of(at.counter + base / 4, at.stream), key);
    for (size_t j = 0; j < 4 && base + j < n; ++j) out[base + j] = u32_to_uniform(w[j]);
  }
}

void philox_fill_normal(const RngState& at, float* out, size_t n, float mean, float std) {
  const PhiloxKey key = key_of(at.seed);
  for (size_t base = 0; base < n; base += 4) {
    const PhiloxCounter w = philox4x32_10(counter_of(at.counter + base / 4, at.stream), key);
    double z[4];
    box_muller(w[0], w[1], &z[0], &z[1]);
    box_muller(w[2], w[3], &z[2], &z[3]);
    for (size_t j = 0; j < 4 && base + j < n; ++j) out[base + j] = static_cast<float>(mean + std * z[j]);
  }
}

void Philox::fill_uniform(float* out, size_t n) {
  philox_fill_uniform(state_, out, n);
  state_.counter += philox_blocks_for(n);
}

void Philox::fill_normal(float* out, size_t n, float mean, float std) {
  philox_fill_normal(state_, out, n, mean, std);
  state_.counter += philox_blocks_for(n);
}

void Philox::skip_fill(size_t n) { state_.counter += philox_blocks_for(n); }

uint32_t Philox::uniform_int(uint32_t n) {
  CFP_CHECK(n >= 1, "uniform_int needs a range of at least 1");
  const PhiloxCounter w = next_block();
  return static_cast<uint32_t>((static_cast<uint64_t>(w[0]) * n) >> 32);
}

double Philox::uniform_double() {
  const PhiloxCounter w = next_block();
  const uint64_t bits = (static_cast<uint64_t>(w[0]) << 21) | (w[1] >> 11);  // 32 + 21 = 53 bits
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);
}

}  // namespace cfp
