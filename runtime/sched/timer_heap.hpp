// runtime/sched/timer_heap.hpp: a core's timers: a binary min-heap of (deadline, fiber,
// generation), owner-only (the core's holder). An entry whose generation no longer matches its
// fiber's timer_gen is stale (the fiber moved on) and is dropped when it surfaces.
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

  void add(std::int64_t deadline_ns, Fiber* f, std::uint64_t gen) {
    heap_.push_back({deadline_ns, f, gen});
    std::push_heap(heap_.begin(), heap_.end(), std::greater<Entry>());
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
    return fired;
  }

 private:
  std::vector<Entry> heap_;
};

}  // namespace upcall::rt
