// runtime/sched/inject_queue.hpp: the runtime-wide injection queue: fibers made ready by
// threads that hold no core (plain threads, upcall::blocking returns) and run-queue overflow.
// An intrusive FIFO through Fiber::next under a mutex, with an atomic length so that the
// scheduler's frequent "anything here?" check takes no lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>

#include "runtime/core/fiber.hpp"

namespace upcall::rt {

class InjectQueue {
 public:
  // Any thread. Appends the chain first..last (linked through next) of n fibers.
  void push_chain(Fiber* first, Fiber* last, std::size_t n) {
    last->next = nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    if (tail_)
      tail_->next = first;
    else
      head_ = first;
    tail_ = last;
    // Release under the lock; readers of len_ that see it non-zero then take the lock, which
    // orders the list itself. seq_cst so a waker's push is ordered before its idle-core check
    // (the Dekker pairing in runtime/sched/idle.cpp).
    len_.fetch_add(n, std::memory_order_seq_cst);
    // Free-running totals for the congestion check (runtime/cores): a fiber pushed before
    // the previous check is still queued iff popped < pushed-at-that-check. Written under mu_.
    pushed_.store(pushed_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void push(Fiber* f) { push_chain(f, f, 1); }

  // Any thread. Takes up to `max` fibers; returns the first, chain through next, count in *n.
  Fiber* pop_batch(std::size_t max, std::size_t* n) {
    *n = 0;
    if (len_.load(std::memory_order_relaxed) == 0) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    Fiber* first = head_;
    Fiber* last = nullptr;
    Fiber* f = head_;
    while (f && *n < max) {
      last = f;
      f = f->next;
      ++*n;
    }
    if (*n == 0) return nullptr;
    head_ = f;
    if (!head_) tail_ = nullptr;
    last->next = nullptr;
    len_.fetch_sub(*n, std::memory_order_relaxed);
    popped_.store(popped_.load(std::memory_order_relaxed) + *n, std::memory_order_relaxed);
    return first;
  }

  // Any thread; seq_cst so an idle core's re-check after announcing itself sees a racing push.
  std::size_t size() const { return len_.load(std::memory_order_seq_cst); }
  std::size_t size_relaxed() const { return len_.load(std::memory_order_relaxed); }
  // Any thread; totals since start (hints, relaxed).
  std::uint64_t pushed_total() const { return pushed_.load(std::memory_order_relaxed); }
  std::uint64_t popped_total() const { return popped_.load(std::memory_order_relaxed); }

 private:
  std::mutex mu_;
  Fiber* head_ = nullptr;  // guarded by mu_
  Fiber* tail_ = nullptr;  // guarded by mu_
  std::atomic<std::size_t> len_{0};
  std::atomic<std::uint64_t> pushed_{0}, popped_{0};  // written under mu_, read by anyone
};

}  // namespace upcall::rt
