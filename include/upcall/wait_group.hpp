// upcall/wait_group.hpp: upcall::WaitGroup, Go's sync.WaitGroup: a counter that add() raises
// and done() lowers, and that wait() waits to see at zero, for fibers and plain threads alike.
// This header owns the interface and the counter's fast path; the waiting and waking is in
// runtime/sync/wait_group.cpp.
//
//   upcall::WaitGroup wg;
//   for (int i = 0; i < n; ++i) { wg.add(1); upcall::spawn([&] { work(); wg.done(); }).detach(); }
//   wg.wait();
//
// Semantics are Go's: a counter that would go negative is a bug, reported by std::logic_error
// (the counter is left unchanged); add() with a positive delta while the counter is zero must
// happen before the wait() it is meant to hold; a WaitGroup may be reused once every wait() of
// the previous round returned (an add() while waiters of the previous round are still being
// released is a bug, as in Go, and may release them into the new round). Neither copyable nor
// movable: share it by reference. Lifetime: a waiter may destroy the WaitGroup as soon as wait()
// returned, even while the done() that released it is still running: done() touches the object
// after its counter update only while some wait() is registered, and those cannot return before
// done() releases them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "upcall/detail/config.hpp"
#include "upcall/detail/wait.hpp"

namespace upcall {

class UPCALL_API WaitGroup {
 public:
  WaitGroup() = default;
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;

  // Adds delta (may be negative) to the counter; when it reaches zero, wakes every waiter.
  // Throws std::logic_error if the counter would become negative (or exceed INT32_MAX).
  // Never suspends.
  void add(std::int64_t delta = 1);
  // add(-1).
  void done() { add(-1); }
  // Waits until the counter is zero. May suspend.
  // Waits are cancellation points of a deleted task (los::TaskDeleted, DESIGN.md section 14).
  void wait();
  // As wait, giving up at deadline: true when the counter was seen at zero.
  bool wait_until(std::chrono::steady_clock::time_point deadline);
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(std::chrono::steady_clock::now() +
                      std::chrono::ceil<std::chrono::steady_clock::duration>(d));
  }
  // The counter now (a snapshot).
  std::int64_t count() const noexcept {
    return static_cast<std::int32_t>(state_.load(std::memory_order_acquire) >> 32);
  }

 private:
  bool wait_impl(bool timed, std::chrono::steady_clock::time_point deadline);
  void release_waiters() noexcept;

  // High 32 bits: the counter (signed); low 32 bits: registered waiters. One word, so that
  // add() learns with its own update whether anyone waits (see wait_group.cpp).
  // Writers: add() (CAS acq_rel: the release half publishes the adder's work to a waiter that
  // then sees the counter at zero with an acquire load or RMW; the acquire half orders it before
  // release_waiters()), wait() (CAS registering / unregistering a waiter, under lock_), and
  // release_waiters() (fetch_sub of the waiters it released, under lock_).
  std::atomic<std::uint64_t> state_{0};
  detail::SpinLock lock_;
  detail::WaitList waiters_;  // guarded by lock_; node.tag: 0 linked, 1 released
};

}  // namespace upcall
