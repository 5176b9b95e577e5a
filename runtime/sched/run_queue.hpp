// runtime/sched/run_queue.hpp: a core's local run queue: a bounded single-producer,
// multi-consumer ring (the shape of Go's runq). Only the core's holder pushes; the holder pops
// from the head, and thieves on other cores take half of it from the head too. It owns no
// fibers' memory and knows nothing about parking.
//
// Protocol (head and tail are free-running 32-bit counters, index = counter % kCapacity):
//  1. push (holder only): h = head.load(acquire); if tail - h < kCapacity, store the fiber in
//     slot[tail] (relaxed) and publish it with tail.store(tail + 1, release).
//  2. pop (holder): h = head.load(acquire), t = tail (own); if h == t empty; read slot[h]
//     (relaxed), then head.CAS(h, h + 1, acq_rel). Failure means a thief took it: retry.
//  3. steal (thief): h = head.load(acquire), t = tail.load(acquire) (pairs with step 1's
//     release, so slots [h, t) are visible); copy n = (t - h) - (t - h) / 2 slots out, then
//     head.CAS(h, h + n, acq_rel). The copy is valid iff the CAS succeeds: the holder only
//     overwrites a slot after head has moved past it (step 1 checks against head).
// Slots are relaxed atomics so that a thief's speculative copy racing a slot rewrite (which then
// fails its CAS) is not a data race.
#pragma once

#include <atomic>
#include <cstdint>

#include "runtime/core/check.hpp"
#include "runtime/core/fiber.hpp"

namespace upcall::rt {

class RunQueue {
 public:
  static constexpr std::uint32_t kCapacity = 256;

  // Holder only. Returns false when full (the caller moves half to the injection queue).
  bool push(Fiber* f) {
    const std::uint32_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t t = tail_.load(std::memory_order_relaxed);  // own field
    if (t - h >= kCapacity) return false;
    slots_[t % kCapacity].store(f, std::memory_order_relaxed);
    tail_.store(t + 1, std::memory_order_release);  // pairs with thieves' acquire of tail_
    return true;
  }

  // Holder only. Removes up to `max` fibers from the head into out[] (for overflow to the
  // injection queue). Returns how many.
  std::uint32_t pop_batch(Fiber** out, std::uint32_t max) {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      const std::uint32_t t = tail_.load(std::memory_order_relaxed);
      std::uint32_t n = t - h;
      if (n > max) n = max;
      if (n == 0) return 0;
      for (std::uint32_t i = 0; i < n; ++i)
        out[i] = slots_[(h + i) % kCapacity].load(std::memory_order_relaxed);
      // acq_rel: acquire orders our slot reads before a later holder rewrite is possible; the
      // release half publishes the new head to the holder's next push (its acquire load).
      if (head_.compare_exchange_weak(h, h + n,
                                      std::memory_order_acq_rel, std::memory_order_relaxed))
        return n;
    }
  }

  // Holder only.
  Fiber* pop() {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      const std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (h == t) return nullptr;
      Fiber* f = slots_[h % kCapacity].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_acq_rel,
                                      std::memory_order_relaxed))
        return f;
    }
  }

  // Thief (any thread but the holder of this queue's core): moves about half of this queue into
  // `dst`, whose holder is the caller, and returns one of them to run (not placed in dst).
  // Returns nullptr when there was nothing to take. Sets *taken to the number of fibers moved.
  Fiber* steal_into(RunQueue& dst, std::uint32_t* taken) {
    Fiber* batch[kCapacity / 2];
    std::uint32_t n;
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      const std::uint32_t t = tail_.load(std::memory_order_acquire);  // pairs with push
      n = t - h;
      n = n - n / 2;
      if (n == 0) {
        *taken = 0;
        return nullptr;
      }
      if (n > kCapacity / 2) continue;  // inconsistent snapshot (h moved past t): reload
      for (std::uint32_t i = 0; i < n; ++i)
        batch[i] = slots_[(h + i) % kCapacity].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_acq_rel,
                                      std::memory_order_relaxed))
        break;
    }
    // Precondition: dst (the caller's own queue) is empty. Only its holder (the caller) pushes
    // to it, so it stays empty until here and n <= kCapacity / 2 always fits.
    for (std::uint32_t i = 1; i < n; ++i) {
      const bool pushed = dst.push(batch[i]);
      UPCALL_CHECK(pushed, "steal_into: destination run queue was not empty");
    }
    *taken = n;
    return batch[0];
  }

  // Any thread; a hint (may be stale by the time it returns).
  std::uint32_t size_hint() const {
    const std::uint32_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t t = tail_.load(std::memory_order_acquire);
    return t - h > kCapacity ? 0 : t - h;
  }
  bool empty_hint() const { return size_hint() == 0; }
  // Any thread; the free-running counters themselves (relaxed: a congestion check compares
  // the head now with the tail at its previous check, runtime/cores/congestion.cpp).
  std::uint32_t head_hint() const { return head_.load(std::memory_order_relaxed); }
  std::uint32_t tail_hint() const { return tail_.load(std::memory_order_relaxed); }
  // Any thread; a hint: the fiber at the head (what pop would return), nullptr when empty. It
  // may be taken before the caller looks at it (los::next_task_id).
  Fiber* peek_hint() const {
    const std::uint32_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t t = tail_.load(std::memory_order_acquire);
    if (t == h || t - h > kCapacity) return nullptr;
    return slots_[h % kCapacity].load(std::memory_order_relaxed);
  }

 private:
  alignas(64) std::atomic<std::uint32_t> head_{0};  // consumers (holder and thieves) CAS it
  alignas(64) std::atomic<std::uint32_t> tail_{0};  // written by the holder only
  alignas(64) std::atomic<Fiber*> slots_[kCapacity] = {};
};

}  // namespace upcall::rt
