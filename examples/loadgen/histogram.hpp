// Latency histogram for the load generator: HDR-style log-linear buckets over nanoseconds.
//
// Owns the bucket layout, recording, merging and percentile queries. It does not own timing
// (callers pass durations in ns) nor reporting. Layout: values below 256 ns have one bucket per
// nanosecond; above, every power-of-two range [2^k, 2^(k+1)) is cut into 128 equal buckets, so a
// bucket is at most 1/128 (0.78%) of its lower bound wide. A reported percentile is the midpoint
// of its bucket, clamped to the exact minimum and maximum, so its relative error is at most
// 1/256 (0.39%) in the trackable range 0 .. kMaxTrackableNs (10 s) and 1% is the documented bound.
// Larger values are counted in the top bucket; min, max and the mean stay exact.
// Not thread-safe: one histogram per client thread, merged after the threads are joined.
#pragma once

#include <cstdint>
#include <vector>

namespace loadgen {

class Histogram {
 public:
  static constexpr int64_t kMaxTrackableNs = 10'000'000'000;  // 10 s
  static constexpr int kSubBucketBits = 7;                     // 128 buckets per power of two

  Histogram();

  // Records one value in ns; negative values count as 0.
  void record(int64_t ns);
  // Adds every value recorded in `other`.
  void merge(const Histogram& other);
  void reset();

  uint64_t count() const { return count_; }
  int64_t min() const { return count_ ? min_ : 0; }
  int64_t max() const { return count_ ? max_ : 0; }
  double mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }
  // Nearest-rank percentile, p in [0, 100]: the value v such that at least p% of the recorded
  // values are <= v (within the precision above). 0 when empty; p=0 gives min, p=100 max.
  int64_t percentile(double p) const;

  // Bucket layout, exposed for tests: the index of a value and the bounds of a bucket.
  static int bucket_of(int64_t ns);
  static int64_t bucket_low(int index);
  static int64_t bucket_width(int index);
  static int bucket_count();

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  // Sum of values in ns; 2^63 ns is 292 years of summed latency, enough for any run.
  int64_t sum_ = 0;
};

}  // namespace loadgen
