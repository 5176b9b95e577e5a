// runtime/sched/timer_heap.hpp: a core's timers: a binary min-heap of (deadline, fiber,
// generation), owner-only (the core's holder). An entry whose generation no longer matches its
// fiber's timer_gen is stale (the fiber moved on) and is dropped when it surfaces, or earlier
// by a compaction: a server whose requests carry 30 s deadlines and finish in microseconds
// would otherwise keep 30 s worth of stale entries (1.5 million at 50k requests/s) and wake
// its idle wait at each of their deadlines. add() compacts when the heap has doubled since the
// last compaction (at least kCompactMin entries): O(n) work after at least n/2 adds, so O(1)
// amortized; the heap never holds more than max(kCompactMin, twice what survived the last
// compaction) entries.
// Reading a fiber's timer_gen here is the expire() read: the holder that armed an entry (or a
// later holder, ordered by the core's hand-over) wrote that generation, so a live entry never
// looks stale; a stale one that looks live stays until it surfaces.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "runtime/core/fiber.hpp"

namespace upcall::rt {

class TimerHeap {
 public:
  struct Entry {
    std::int64_t deadline_ns;
    Fiber* fiber;
    std::uint64_t gen;
    bool operator>(const Entry& o) const { return deadline_ns > o.deadline_ns; }
  };

  bool empty() const { return heap_.empty(); }
  std::size_t size() const { return heap_.size(); }
  std::int64_t next_deadline() const { return heap_.empty() ? INT64_MAX : heap_.front().deadline_ns; }

  static constexpr std::size_t kCompactMin = 1024;

  // Adds an entry; returns how many stale entries a compaction dropped meanwhile (usually 0).
  std::size_t add(std::int64_t deadline_ns, Fiber* f, std::uint64_t gen) {
    heap_.push_back({deadline_ns, f, gen});
    std::push_heap(heap_.begin(), heap_.end(), std::greater<Entry>());
    return heap_.size() >= compact_at_ ? compact() : 0;
  }

  // Drops every stale entry; returns how many.
  std::size_t compact() {
    const std::size_t before = heap_.size();
    std::erase_if(heap_, [](const Entry& e) {
      return e.fiber->timer_gen.load(std::memory_order_relaxed) != e.gen;
    });
    std::make_heap(heap_.begin(), heap_.end(), std::greater<Entry>());
    compact_at_ = std::max(kCompactMin, 2 * heap_.size());
    return before - heap_.size();
  }

  // Removes every entry due at `now_ns` and calls fire(fiber) for the live ones.
  template <class Fire>
  std::size_t expire(std::int64_t now_ns, Fire&& fire) {
    std::size_t fired = 0;
    while (!heap_.empty() && heap_.front().deadline_ns <= now_ns) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<Entry>());
      const Entry e = heap_.back();
      heap_.pop_back();
      if (e.fiber->timer_gen.load(std::memory_order_relaxed) == e.gen) {
        fire(e.fiber);
        ++fired;
      }
    }
    // A heap that shrank lowers the bar again (as if compacted at its present size).
    if (compact_at_ > kCompactMin && heap_.size() * 4 < compact_at_)
      compact_at_ = std::max(kCompactMin, 2 * heap_.size());
    return fired;
  }

 private:
  std::vector<Entry> heap_;
  std::size_t compact_at_ = kCompactMin;
};

}  // namespace upcall::rt
