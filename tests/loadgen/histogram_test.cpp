// Histogram of the load generator (examples/loadgen/histogram.hpp): bucket layout, percentiles
// of known distributions within the documented 1% precision, merging and edge cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "histogram.hpp"
#include "poisson.hpp"

namespace loadgen {
namespace {

// Exact nearest-rank percentile of a sorted sample, the definition Histogram follows.
int64_t exact_percentile(const std::vector<int64_t>& sorted, double p) {
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void expect_within_precision(const Histogram& h, std::vector<int64_t> values) {
  std::sort(values.begin(), values.end());
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    const double exact = static_cast<double>(exact_percentile(values, p));
    const double got = static_cast<double>(h.percentile(p));
    EXPECT_NEAR(got, exact, exact * 0.01 + 0.5) << "p" << p;
  }
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.max(), values.back());
}

TEST(Histogram, BucketsCoverValuesWithinOnePercent) {
  int prev = -1;
  for (int64_t v = 0; v <= Histogram::kMaxTrackableNs; v = v < 1000 ? v + 1 : v + v / 97) {
    const int b = Histogram::bucket_of(v);
    ASSERT_GE(b, prev) << "bucket index not monotonic at " << v;
    prev = b;
    const int64_t low = Histogram::bucket_low(b), width = Histogram::bucket_width(b);
    ASSERT_LE(low, v);
    ASSERT_LT(v, low + width) << "value " << v << " outside its bucket " << b;
    ASSERT_LE(static_cast<double>(width), 0.01 * static_cast<double>(std::max<int64_t>(low, 100)))
        << "bucket " << b << " too wide for 1% at " << v;
  }
  EXPECT_EQ(Histogram::bucket_of(Histogram::kMaxTrackableNs), Histogram::bucket_count() - 1);
  EXPECT_EQ(Histogram::bucket_of(Histogram::kMaxTrackableNs * 3), Histogram::bucket_count() - 1);
  // Consecutive buckets tile the range: each starts where the previous ends.
  for (int b = 1; b < Histogram::bucket_count(); ++b)
    ASSERT_EQ(Histogram::bucket_low(b), Histogram::bucket_low(b - 1) + Histogram::bucket_width(b - 1));
}

TEST(Histogram, UniformMicrosecondsPercentiles) {
  Histogram h;
  std::vector<int64_t> values;
  for (int64_t us = 1; us <= 200'000; ++us) values.push_back(us * 1000);
  for (int64_t v : values) h.record(v);
  EXPECT_EQ(h.count(), values.size());
  EXPECT_NEAR(h.mean(), 100'000.5 * 1000, 1.0);  // the mean is exact
  expect_within_precision(h, values);
  EXPECT_NEAR(static_cast<double>(h.percentile(50)), 100e6, 1e6);
}

TEST(Histogram, ExponentialPercentiles) {
  Histogram h;
  Rng rng(42);
  std::vector<int64_t> values;
  for (int i = 0; i < 200'000; ++i) {
    const auto v = static_cast<int64_t>(-std::log1p(-rng.uniform()) * 100'000.0);  // mean 100 us
    values.push_back(v);
    h.record(v);
  }
  expect_within_precision(h, values);
}

TEST(Histogram, LogUniformOneMicrosecondToTenSeconds) {
  Histogram h;
  Rng rng(7);
  std::vector<int64_t> values;
  for (int i = 0; i < 100'000; ++i) {
    const auto v = static_cast<int64_t>(std::pow(10.0, 3.0 + 7.0 * rng.uniform()));  // 1us..10s
    values.push_back(v);
    h.record(v);
  }
  expect_within_precision(h, values);
}

TEST(Histogram, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(50), 0);
  EXPECT_EQ(h.percentile(100), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(Histogram, SingleValueIsExactAtEveryPercentile) {
  Histogram h;
  h.record(123'457);  // not a bucket boundary
  for (double p : {0.0, 1.0, 50.0, 99.9, 100.0}) EXPECT_EQ(h.percentile(p), 123'457) << p;
}

TEST(Histogram, ZeroNegativeAndOutOfRangeValues) {
  Histogram h;
  h.record(-5);  // counted as 0
  h.record(0);
  h.record(Histogram::kMaxTrackableNs * 4);  // beyond 10 s: top bucket, exact max
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.percentile(50), 0);
  EXPECT_EQ(h.max(), Histogram::kMaxTrackableNs * 4);
  EXPECT_EQ(h.percentile(100), Histogram::kMaxTrackableNs * 4);
  EXPECT_GE(h.percentile(99), Histogram::kMaxTrackableNs * 99 / 100);
}

TEST(Histogram, TailIsNotHiddenByTheBulk) {
  Histogram h;
  for (int i = 0; i < 990; ++i) h.record(50'000);  // 50 us
  for (int i = 0; i < 10; ++i) h.record(5'000'000);  // 5 ms: exactly the top 1%
  EXPECT_NEAR(static_cast<double>(h.percentile(99)), 5e4, 5e2);
  EXPECT_NEAR(static_cast<double>(h.percentile(99.1)), 5e6, 5e4);
  EXPECT_NEAR(static_cast<double>(h.percentile(99.9)), 5e6, 5e4);
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
  Histogram a, b, all;
  Rng rng(3);
  for (int i = 0; i < 10'000; ++i) {
    const auto v = static_cast<int64_t>(rng.next() % 50'000'000);
    (i % 3 ? a : b).record(v);
    all.record(v);
  }
  Histogram empty;
  a.merge(empty);  // merging nothing changes nothing
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  for (double p : {50.0, 90.0, 99.0, 99.9}) EXPECT_EQ(a.percentile(p), all.percentile(p));
  Histogram into_empty;
  into_empty.merge(all);
  EXPECT_EQ(into_empty.min(), all.min());
  EXPECT_EQ(into_empty.percentile(50), all.percentile(50));
  a.reset();
  EXPECT_EQ(a.count(), 0u);
  EXPECT_EQ(a.percentile(50), 0);
}

}  // namespace
}  // namespace loadgen
