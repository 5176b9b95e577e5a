// runtime/stats/block_log.hpp: the last kBlockLogSize blocks that were taken over, for
// "who blocked my worker and for how long": the fiber, the kernel's sleep state and the
// duration until the fiber was handed back. Written by returning threads (off every hot path)
// under a mutex; read by Runtime::recent_blocks.
#pragma once

#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#include "upcall/stats.hpp"

namespace upcall::rt {

class BlockLog {
 public:
  static constexpr std::size_t kBlockLogSize = 64;

  void add(const BlockRecord& r) {
    std::lock_guard<std::mutex> lock(mu_);
    ring_[next_ % kBlockLogSize] = r;
    ++next_;
  }
  std::vector<BlockRecord> snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<BlockRecord> out;
    const std::size_t n = next_ < kBlockLogSize ? next_ : kBlockLogSize;
    for (std::size_t i = 0; i < n; ++i) out.push_back(ring_[(next_ - n + i) % kBlockLogSize]);
    return out;
  }

 private:
  mutable std::mutex mu_;
  BlockRecord ring_[kBlockLogSize];  // guarded by mu_
  std::size_t next_ = 0;             // guarded by mu_
};

}  // namespace upcall::rt
