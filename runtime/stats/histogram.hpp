// runtime/stats/histogram.hpp: a lock-free latency histogram (log2 buckets split in sixteen,
// so a reported percentile is within 6.25% of the true value: the activation targets are in
// the 1-5 us range, where quarter-octave buckets were 256-1024 ns wide). Any thread records with one relaxed
// fetch_add; readers sum a snapshot. Used for takeover, block and hand-back latencies.
#pragma once

#include <atomic>
#include <cstdint>

namespace upcall::rt {

class LatencyHistogram {
 public:
  static constexpr int kBuckets = 640;  // exact up to ~2^43 ns (~2.4 hours), then the last bucket

  void record(std::int64_t ns) noexcept {
    buckets_[index(ns < 0 ? 0 : static_cast<std::uint64_t>(ns))].fetch_add(
        1, std::memory_order_relaxed);
  }
  std::uint64_t count() const noexcept {
    std::uint64_t n = 0;
    for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
    return n;
  }
  // Upper bound of the bucket holding the p-th percentile (0 < p <= 100); 0 when empty.
  std::uint64_t percentile(double p) const noexcept {
    std::uint64_t snap[kBuckets];
    std::uint64_t n = 0;
    for (int i = 0; i < kBuckets; ++i) n += snap[i] = buckets_[i].load(std::memory_order_relaxed);
    if (n == 0) return 0;
    std::uint64_t want = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(n));
    if (want == 0) want = 1;
    std::uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += snap[i];
      if (seen >= want) return upper(i);
    }
    return upper(kBuckets - 1);
  }
  std::uint64_t max() const noexcept {
    for (int i = kBuckets - 1; i >= 0; --i)
      if (buckets_[i].load(std::memory_order_relaxed)) return upper(i);
    return 0;
  }

 private:
  static int index(std::uint64_t v) noexcept {
    if (v < 32) return static_cast<int>(v);  // exact below 32 ns
    const int e = 63 - __builtin_clzll(v);  // >= 5
    const int sub = static_cast<int>((v >> (e - 4)) & 15);
    const int i = 32 + (e - 5) * 16 + sub;
    return i < kBuckets ? i : kBuckets - 1;
  }
  static std::uint64_t upper(int i) noexcept {
    if (i < 32) return static_cast<std::uint64_t>(i);
    const int e = (i - 32) / 16 + 5;
    const int sub = (i - 32) % 16;
    return (std::uint64_t{1} << e) + (static_cast<std::uint64_t>(sub + 1) << (e - 4)) - 1;
  }
  std::atomic<std::uint64_t> buckets_[kBuckets] = {};
};

}  // namespace upcall::rt
