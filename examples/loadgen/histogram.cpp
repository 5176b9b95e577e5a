// Histogram bucket arithmetic and percentile walk (layout described in histogram.hpp).
#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace loadgen {
namespace {

constexpr int kSub = 1 << Histogram::kSubBucketBits;  // 128
constexpr int kLinear = 2 * kSub;                     // values 0..255 have their own bucket

}  // namespace

int Histogram::bucket_of(int64_t ns) {
  if (ns < 0) ns = 0;
  if (ns > kMaxTrackableNs) ns = kMaxTrackableNs;
  const auto v = static_cast<uint64_t>(ns);
  if (v < static_cast<uint64_t>(kLinear)) return static_cast<int>(v);
  const int k = 63 - std::countl_zero(v);        // 2^k <= v < 2^(k+1), k >= 8
  const int shift = k - kSubBucketBits;          // bucket width 2^shift
  return shift * kSub + static_cast<int>(v >> shift);  // (v >> shift) in [128, 256)
}

int64_t Histogram::bucket_low(int index) {
  if (index < kLinear) return index;
  const int shift = index / kSub - 1;
  const int64_t mantissa = index % kSub + kSub;
  return mantissa << shift;
}

int64_t Histogram::bucket_width(int index) {
  if (index < kLinear) return 1;
  return int64_t{1} << (index / kSub - 1);
}

int Histogram::bucket_count() { return bucket_of(kMaxTrackableNs) + 1; }

Histogram::Histogram() : counts_(static_cast<size_t>(bucket_count()), 0) {}

void Histogram::record(int64_t ns) {
  if (ns < 0) ns = 0;
  ++counts_[static_cast<size_t>(bucket_of(ns))];
  if (count_ == 0 || ns < min_) min_ = ns;
  if (count_ == 0 || ns > max_) max_ = ns;
  ++count_;
  sum_ += ns;
}

void Histogram::merge(const Histogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = count_ ? std::max(max_, other.max_) : other.max_;
  count_ += other.count_;
  sum_ += other.sum_;
}

void Histogram::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = max_ = sum_ = 0;
}

int64_t Histogram::percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // Nearest rank: the smallest value with at least ceil(p/100 * n) values at or below it.
  auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  if (rank == 1) return min_;  // the extremes are tracked exactly
  if (rank == count_) return max_;
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const int idx = static_cast<int>(i);
      const int64_t mid = bucket_low(idx) + bucket_width(idx) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace loadgen
