// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11). A draw is a pure function
// of (seed, stream, counter), so any draw can be replayed from a saved counter, threads can fill
// disjoint ranges without sharing state, and a CUDA kernel can reproduce the same words.
//
// Layout: key = (seed_lo, seed_hi); counter block = (counter_lo, counter_hi, stream_lo, stream_hi).
// One counter value yields one block of four 32-bit words. Every fill consumes whole blocks:
// a fill of n values uses ceil(n / 4) blocks starting at the current counter, element i coming
// from block counter + i / 4, word i % 4 — so values never depend on how a fill is split
// among threads, and the counter after a fill is counter + ceil(n / 4).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace cfp {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// The bare Philox4x32 bijection with 10 rounds.
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

// What a checkpoint stores to replay the stream exactly.
struct RngState {
  uint64_t seed = 0;
  uint64_t stream = 0;   // independent sub-stream (e.g. one per purpose or per sample)
  uint64_t counter = 0;  // index of the next unused block
};

// Words -> numbers (exposed so other backends and tests use the same maps).
// Uniform in [0, 1) with 24 random bits (exact in float).
inline float u32_to_uniform(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }
// Uniform in (0, 1) with 32 random bits, for logs.
inline double u32_to_open_unit(uint32_t w) { return (static_cast<double>(w) + 0.5) * (1.0 / 4294967296.0); }
// Box-Muller on a pair of words, computed in double: z0 = r cos(2 pi u2), z1 = r sin(2 pi u2),
// r = sqrt(-2 ln u1).
void box_muller(uint32_t w1, uint32_t w2, double* z0, double* z1);

class Philox {
 public:
  explicit Philox(uint64_t seed = 0, uint64_t stream = 0, uint64_t counter = 0)
      : state_{seed, stream, counter} {}
  explicit Philox(RngState state) : state_(state) {}

  const RngState& state() const { return state_; }
  void set_state(const RngState& state) { state_ = state; }
  uint64_t counter() const { return state_.counter; }
  // The same seed on another stream, from counter 0.
  Philox fork(uint64_t stream) const { return Philox(state_.seed, stream, 0); }

  // The block at an absolute counter value (stateless; does not advance).
  PhiloxCounter block(uint64_t counter) const;
  // The next block; advances the counter by 1.
  PhiloxCounter next_block() { return block(state_.counter++); }

  // Uniform floats in [0, 1).
  void fill_uniform(float* out, size_t n);
  // Normal floats N(mean, std^2): element 4b + {0,1} from Box-Muller on words (0,1) of block b,
  // 4b + {2,3} from words (2,3).
  void fill_normal(float* out, size_t n, float mean = 0.0f, float std = 1.0f);
  // Moves past the blocks a fill of n values consumes, for a fill made elsewhere at state() (a
  // device drawing the same numbers, see Backend::philox_normal).
  void skip_fill(size_t n);

  // One scalar draw each (each consumes one block and uses its word 0 / words 0-1):
  // a uniform integer in [0, n) by multiply-shift (bias below n / 2^32), n >= 1;
  uint32_t uniform_int(uint32_t n);
  // a uniform double in [0, 1) with 53 random bits.
  double uniform_double();

 private:
  RngState state_;
};

// Stateless fills at an explicit state (the state is not advanced): what Philox::fill_* compute.
void philox_fill_uniform(const RngState& at, float* out, size_t n);
void philox_fill_normal(const RngState& at, float* out, size_t n, float mean = 0.0f, float std = 1.0f);
// Blocks a fill of n values consumes.
inline uint64_t philox_blocks_for(size_t n) { return (static_cast<uint64_t>(n) + 3) / 4; }

}  // namespace cfp
