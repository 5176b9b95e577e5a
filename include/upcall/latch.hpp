// upcall/latch.hpp: drop-in for std::latch, a single-use downward counter. wait() suspends a
// calling fiber (blocks a plain thread) until the counter reaches zero. Waiting lives in
// runtime/sync/latch.cpp.
//
// The counter and a "someone waits" bit share one atomic word, so the count_down that reaches
// zero touches the latch again (to wake waiters) only if someone is linked, and those cannot
// return before it is done: the common "latch on the waiter's stack, destroyed right after
// wait()" is safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "upcall/detail/config.hpp"
#include "upcall/detail/wait.hpp"

namespace upcall {

class UPCALL_API latch {
 public:
  static constexpr std::ptrdiff_t max() noexcept {
    return std::numeric_limits<std::ptrdiff_t>::max() / 2;
  }
  // Precondition (std): 0 <= expected <= max().
  constexpr explicit latch(std::ptrdiff_t expected) : state_(expected * kOne) {}
  ~latch() = default;
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  // Precondition (std): 0 <= n <= the counter. Never suspends.
  void count_down(std::ptrdiff_t n = 1);
  bool try_wait() const noexcept {
    // acquire: pairs with the acq_rel decrement of the count_down calls.
    return state_.load(std::memory_order_acquire) / kOne == 0;
  }
  void wait() const;
  void arrive_and_wait(std::ptrdiff_t n = 1) {
    count_down(n);
    wait();
  }

 private:
  static constexpr std::ptrdiff_t kQueued = 1;
  static constexpr std::ptrdiff_t kOne = 2;
  void wake_all() const noexcept;

  // count * kOne | kQueued. Decremented by count_down (acq_rel RMW); kQueued is set by waiters
  // under spin_ (CAS) and never cleared: once set, the zero-reaching count_down wakes the list.
  mutable std::atomic<std::ptrdiff_t> state_;
  mutable detail::SpinLock spin_;     // guards waiters_
  mutable detail::WaitList waiters_;  // guarded by spin_
};

}  // namespace upcall
