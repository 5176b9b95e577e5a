// runtime/sched/prio_queue.hpp: a core's ready queue for fibers whose priority is not the
// default (los::task_pri_set, SpawnOptions::priority). One intrusive FIFO per priority level
// plus a bitmap of non-empty levels, under a spin lock: the core's holder pushes (it is the
// only producer, as for the run queue), the holder and thieves pop the highest level. Default
// priority fibers never come here (they stay on the FIFO ring, whose cost is unchanged), so a
// runtime that never sets a priority never touches this queue. Owns no fiber memory.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <mutex>

#include "runtime/core/fiber.hpp"
#include "upcall/detail/wait.hpp"
#include "upcall/task_api.hpp"

namespace upcall::rt {

class PrioQueue {
 public:
  static constexpr int kLevels = los::kMaxPriority - los::kMinPriority + 1;
  static constexpr int kWords = (kLevels + 63) / 64;

  // Holder only. f->next is owned by this queue until f is popped.
  void push(Fiber* f, int prio) {
    const int lvl = level(prio);
    std::lock_guard<detail::SpinLock> lock(mu_);
    f->next = nullptr;
    List& l = lists_[lvl];
    if (l.tail)
      l.tail->next = f;
    else
      l.head = f;
    l.tail = f;
    bits_[lvl / 64] |= std::uint64_t{1} << (lvl % 64);
    count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // Any thread (holder or thief): the oldest fiber of the highest non-empty level, or nullptr.
  // With min_prio, only a fiber of priority >= min_prio.
  Fiber* pop(int min_prio = INT_MIN) {
    if (count_.load(std::memory_order_relaxed) == 0) return nullptr;
    std::lock_guard<detail::SpinLock> lock(mu_);
    const int lvl = top_level_locked();
    if (lvl < 0 || lvl + los::kMinPriority < min_prio) return nullptr;
    List& l = lists_[lvl];
    Fiber* f = l.head;
    l.head = f->next;
    if (!l.head) {
      l.tail = nullptr;
      bits_[lvl / 64] &= ~(std::uint64_t{1} << (lvl % 64));
    }
    f->next = nullptr;
    count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    return f;
  }

  // Any thread: the highest queued priority, INT_MIN when empty (a hint without the lock's
  // protection against a concurrent pop).
  int top_priority() {
    if (count_.load(std::memory_order_relaxed) == 0) return INT_MIN;
    std::lock_guard<detail::SpinLock> lock(mu_);
    const int lvl = top_level_locked();
    return lvl < 0 ? INT_MIN : lvl + los::kMinPriority;
  }
  // Any thread: the fiber pop() would return (a hint; los::next_task_id).
  Fiber* peek() {
    if (count_.load(std::memory_order_relaxed) == 0) return nullptr;
    std::lock_guard<detail::SpinLock> lock(mu_);
    const int lvl = top_level_locked();
    return lvl < 0 ? nullptr : lists_[lvl].head;
  }

  // Any thread; relaxed (count_ is changed under mu_ only; readers use it as a hint).
  std::uint32_t size_hint() const { return count_.load(std::memory_order_relaxed); }

 private:
  struct List {
    Fiber* head = nullptr;
    Fiber* tail = nullptr;
  };
  static int level(int prio) {
    if (prio < los::kMinPriority) prio = los::kMinPriority;
    if (prio > los::kMaxPriority) prio = los::kMaxPriority;
    return prio - los::kMinPriority;
  }
  int top_level_locked() const {
    for (int w = kWords - 1; w >= 0; --w)
      if (bits_[w]) return w * 64 + 63 - __builtin_clzll(bits_[w]);
    return -1;
  }

  detail::SpinLock mu_;
  std::atomic<std::uint32_t> count_{0};
  std::uint64_t bits_[kWords] = {};  // guarded by mu_
  List lists_[kLevels];              // guarded by mu_
};

}  // namespace upcall::rt
