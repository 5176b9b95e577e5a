// runtime/stats/kernel_event_log.hpp: what a runtime keeps of the kernel's message stream
// (upcall/kernel_events.hpp): counts per type, sequence gaps (messages the full ring dropped)
// and the last kSize events for Runtime::recent_kernel_events. Written only by the bpf
// backend's single consumer thread (runtime/activations/bpf_backend.cpp); the counters are
// relaxed atomics read by Runtime::stats, the ring is copied under mu_.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "upcall/kernel_events.hpp"
#include "upcall/stats.hpp"

namespace upcall::rt {

class KernelEventLog {
 public:
  static constexpr std::size_t kSize = 1024;

  // Consumer thread only.
  void add(const KernelEvent& e) {
    const auto t = static_cast<std::size_t>(e.type);
    if (t < 7) by_type_[t].fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    // Sequences are per thread and start at 1; a jump means the ring was full.
    std::uint32_t& last = last_seq_[e.tid];
    if (last != 0 && e.seq > last + 1) gaps_.fetch_add(e.seq - last - 1, std::memory_order_relaxed);
    if (e.seq > last) last = e.seq;
    if (e.type == KernelEvent::Type::task_dead) last_seq_.erase(e.tid);
    ring_[next_ % kSize] = e;
    ++next_;
  }
  std::vector<KernelEvent> snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<KernelEvent> out;
    const std::size_t n = next_ < kSize ? next_ : kSize;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) out.push_back(ring_[(next_ - n + i) % kSize]);
    return out;
  }
  void fill(KernelEventStats* s) const {
    for (std::size_t t = 0; t < 7; ++t) s->by_type[t] = by_type_[t].load(std::memory_order_relaxed);
    s->gaps = gaps_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t> by_type_[7] = {};
  std::atomic<std::uint64_t> gaps_{0};
  mutable std::mutex mu_;
  KernelEvent ring_[kSize];                                // guarded by mu_
  std::size_t next_ = 0;                                   // guarded by mu_
  std::unordered_map<std::uint32_t, std::uint32_t> last_seq_;  // guarded by mu_
};

}  // namespace upcall::rt
