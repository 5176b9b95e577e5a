// runtime/core/slot_table.hpp: index -> Fiber* for every fiber slot a runtime ever built, so a
// task id (slot index, generation) can be resolved and the task monitor can walk every task
// without any per-spawn registration. It owns no fiber; slots are never removed (fibers are
// type-stable while the runtime lives, fiber.hpp).
//
// Shape: a fixed array of chunk pointers, chunks of kChunk entries allocated on demand, never
// moved or freed before the runtime ends, so a reader never sees an entry move.
// Writers: alloc_fiber's slab growth, under RuntimeImpl::free_mu (one writer at a time). A
// writer fills the entry, then publishes the new size with a release store; readers load the
// size with acquire (pairs with it) and read only entries below it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "runtime/core/fiber.hpp"

namespace upcall::rt {

class SlotTable {
 public:
  static constexpr std::uint32_t kChunk = 4096;
  static constexpr std::uint32_t kMaxChunks = 4096;  // 16 M slots, far above any stack budget

  ~SlotTable() {
    for (auto& c : chunks_) delete[] c.load(std::memory_order_relaxed);
  }

  // Writer only (under free_mu). Returns the new slot's index, or UINT32_MAX when full.
  std::uint32_t add(Fiber* f) {
    const std::uint32_t i = size_.load(std::memory_order_relaxed);
    if (i >= kChunk * kMaxChunks) return UINT32_MAX;
    Fiber** chunk = chunks_[i / kChunk].load(std::memory_order_relaxed);
    if (!chunk) {
      chunk = new Fiber*[kChunk]();
      chunks_[i / kChunk].store(chunk, std::memory_order_relaxed);  // published by size_ below
    }
    chunk[i % kChunk] = f;
    size_.store(i + 1, std::memory_order_release);  // pairs with size()'s acquire
    return i;
  }

  // Any thread.
  std::uint32_t size() const { return size_.load(std::memory_order_acquire); }
  // Any thread; i < a value returned by size().
  Fiber* at(std::uint32_t i) const {
    return chunks_[i / kChunk].load(std::memory_order_relaxed)[i % kChunk];
  }

 private:
  std::atomic<std::uint32_t> size_{0};
  std::atomic<Fiber**> chunks_[kMaxChunks] = {};
};

}  // namespace upcall::rt
