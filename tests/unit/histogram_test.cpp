// The runtime's latency histogram (runtime/stats/histogram.hpp), white box: bucket bounds are
// monotonic and contain what they count, and a percentile is within 6.25% above the truth.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "runtime/stats/histogram.hpp"

namespace {

using upcall::rt::LatencyHistogram;

TEST(Histogram, EmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(Histogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (int v = 0; v < 32; ++v) {
    LatencyHistogram one;
    one.record(v);
    EXPECT_EQ(one.percentile(100), static_cast<std::uint64_t>(v));
  }
  h.record(-5);  // clamped to 0
  EXPECT_EQ(h.max(), 0u);
}

// Every recorded value lies at or below its bucket's reported bound, and the bound is less than
// 1/16 above it.
TEST(Histogram, BoundWithinOneSixteenth) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const std::uint64_t v = rng() >> (24 + rng() % 40);  // spread over many octaves
    LatencyHistogram h;
    h.record(static_cast<std::int64_t>(v));
    const std::uint64_t up = h.max();
    ASSERT_GE(up, v) << v;
    ASSERT_LE(static_cast<double>(up - v), static_cast<double>(v) / 16.0 + 1.0) << v;
  }
}

TEST(Histogram, PercentilesOfAKnownDistribution) {
  LatencyHistogram h;
  std::vector<std::int64_t> all;
  for (std::int64_t v = 1000; v < 11000; ++v) {  // 1.0 .. 11.0 us, uniform
    h.record(v);
    all.push_back(v);
  }
  EXPECT_EQ(h.count(), all.size());
  for (double p : {50.0, 90.0, 99.0}) {
    const double truth = static_cast<double>(all[static_cast<std::size_t>(p / 100 * all.size()) - 1]);
    const double got = static_cast<double>(h.percentile(p));
    EXPECT_GE(got, truth) << p;
    EXPECT_LE(got, truth * 1.0625 + 1) << p;
  }
}

TEST(Histogram, HugeValuesLandInTheLastBucket) {
  LatencyHistogram h;
  h.record(INT64_MAX);
  EXPECT_GT(h.max(), std::uint64_t{1} << 40);
}

}  // namespace
