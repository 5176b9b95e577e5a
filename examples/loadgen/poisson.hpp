// Open-loop arrival schedule for the load generator: a Poisson process of a given rate.
//
// Owns the random number generator (xoshiro256**, seeded through splitmix64, so a seed gives the
// same schedule and payloads with any standard library) and the exponential inter-arrival gaps.
// It does not own the clock: a schedule is a sequence of intended times relative to a start that
// the caller chooses. Not thread-safe; one per connection.
#pragma once

#include <cmath>
#include <cstdint>

namespace loadgen {

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& w : s_) {  // splitmix64 expands the seed into the 256-bit state
      seed += 0x9e3779b97f4a7c15ULL;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      w = z ^ (z >> 31);
    }
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// Intended send times of a Poisson process: gaps are exponential with mean 1/rate.
class PoissonSchedule {
 public:
  // rate_per_s > 0. The first arrival is one gap after time 0 (a random phase, so that many
  // connections started together do not all send at time 0).
  PoissonSchedule(double rate_per_s, uint64_t seed)
      : mean_gap_ns_(1e9 / rate_per_s), rng_(seed) {}

  // Next exponential gap in ns (not rounded: the caller accumulates in double so that no
  // rounding bias builds up over millions of arrivals).
  double next_gap_ns() { return -std::log1p(-rng_.uniform()) * mean_gap_ns_; }
  // Advances the schedule and returns the next intended time in ns since the start.
  double next_ns() { return now_ns_ += next_gap_ns(); }

  double mean_gap_ns() const { return mean_gap_ns_; }

 private:
  double mean_gap_ns_;
  double now_ns_ = 0;
  Rng rng_;
};

}  // namespace loadgen
