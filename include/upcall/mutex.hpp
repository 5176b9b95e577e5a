// upcall/mutex.hpp: drop-ins for <mutex>: upcall::mutex, timed_mutex, recursive_mutex,
// recursive_timed_mutex, plus the std lock helpers under upcall:: names (unique_lock,
// lock_guard, scoped_lock, lock, try_lock, defer_lock, ...) so that code ported by replacing
// `std::` with `upcall::` keeps compiling; once_flag/call_once come from upcall/call_once.hpp,
// as <mutex> provides them. A contended lock suspends a calling fiber (its core runs other
// fibers) and blocks a calling plain thread; the two can share one mutex.
//
// Algorithm (detail::MutexCore, slow paths in runtime/sync/mutex.cpp). One state word:
// kLocked | kQueued. Uncontended lock and unlock are one CAS each (0 <-> kLocked). A contended
// locker spins briefly (the owner may be about to unlock on another core), then links a Waiter
// in FIFO order and parks. Unlock with waiters hands the mutex to the first waiter directly
// (the state stays locked, so nobody can barge in): no thundering herd and no starvation, at
// the price of one wake-up per contended hand-off (a lock convoy under heavy contention, as in
// any FIFO lock). kQueued changes only under the core's SpinLock and means "the wait list is
// not empty"; both fast paths fail while it is set, which routes every operation into the
// locked slow path whenever someone waits.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>  // the std lock helpers re-exported below

#include "upcall/call_once.hpp"
#include "upcall/deadline.hpp"
#include "upcall/detail/config.hpp"
#include "upcall/detail/wait.hpp"

namespace upcall {

// The lock helpers are std's own: they only call lock()/unlock()/try_lock*() on the mutex.
using std::adopt_lock;
using std::adopt_lock_t;
using std::defer_lock;
using std::defer_lock_t;
using std::lock;
using std::lock_guard;
using std::scoped_lock;
using std::try_lock;
using std::try_to_lock;
using std::try_to_lock_t;
using std::unique_lock;

namespace detail {

class UPCALL_API MutexCore {
 public:
  static constexpr std::uint32_t kLocked = 1;
  static constexpr std::uint32_t kQueued = 2;

  constexpr MutexCore() noexcept = default;
  MutexCore(const MutexCore&) = delete;
  MutexCore& operator=(const MutexCore&) = delete;

  bool try_lock() noexcept {
    std::uint32_t expected = 0;
    // acquire: pairs with the release of the unlock (fast CAS or unlock_slow's store) that
    // made the state 0, so the previous owner's writes are visible.
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  // A contended lock is a cancellation point of a deleted task (throws los::TaskDeleted,
  // runtime/DESIGN.md section 14); the uncontended CAS never looks.
  void lock() {
    if (!try_lock()) lock_slow();
  }
  // False when `deadline` passed before the mutex could be had.
  bool try_lock_until(SteadyTime deadline) {
    return try_lock() || lock_slow_until(deadline);
  }
  void unlock() noexcept {
    std::uint32_t expected = kLocked;
    // release: pairs with the acquire CAS of the next locker.
    if (!state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                        std::memory_order_relaxed))
      unlock_slow();
  }

 private:
  void lock_slow();
  bool lock_slow_until(SteadyTime deadline);
  bool lock_slow_impl(bool timed, SteadyTime deadline);
  void unlock_slow() noexcept;

  // Atomic: fast paths CAS it without the lock; kQueued is set and cleared only under spin_.
  std::atomic<std::uint32_t> state_{0};
  SpinLock spin_;     // guards waiters_ and every change of kQueued
  WaitList waiters_;  // guarded by spin_; FIFO of contended lockers
};

// Recursion bookkeeping shared by the recursive mutexes (runtime/sync/mutex.cpp).
class UPCALL_API RecursiveCore {
 public:
  constexpr RecursiveCore() noexcept = default;
  void lock();
  bool try_lock() noexcept;
  bool try_lock_until(SteadyTime deadline);
  void unlock() noexcept;

 private:
  bool owned_by_caller(std::uint64_t me) const noexcept;
  MutexCore core_;
  // The owner's context id (0: none). Written by the owner only, right after it acquired core_
  // and right before it releases it (relaxed); read by other contexts, which only compare it
  // with their own id: a stale value is never equal to it.
  std::atomic<std::uint64_t> owner_{0};
  std::uint64_t depth_ = 0;  // owner-only
};

}  // namespace detail

// std::mutex. Contract as std: lock() by the owner, or unlock() by a non-owner, is undefined.
// lock() may suspend the calling fiber; try_lock() and unlock() never suspend.
class mutex {
 public:
  constexpr mutex() noexcept = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;
  void lock() { core_.lock(); }
  bool try_lock() noexcept { return core_.try_lock(); }
  void unlock() { core_.unlock(); }

 private:
  detail::MutexCore core_;
};

// std::timed_mutex.
class timed_mutex {
 public:
  constexpr timed_mutex() noexcept = default;
  timed_mutex(const timed_mutex&) = delete;
  timed_mutex& operator=(const timed_mutex&) = delete;
  void lock() { core_.lock(); }
  bool try_lock() noexcept { return core_.try_lock(); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& d) {
    return core_.try_lock_until(detail::deadline_after(d));
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t) {
    return detail::until_clock(t, [this](detail::SteadyTime d) { return core_.try_lock_until(d); });
  }
  void unlock() { core_.unlock(); }

 private:
  detail::MutexCore core_;
};

// std::recursive_mutex: the owner (a fiber, or a plain thread) may lock it again; it is
// released after as many unlocks. Ownership follows the fiber across kernel threads.
class recursive_mutex {
 public:
  constexpr recursive_mutex() noexcept = default;
  recursive_mutex(const recursive_mutex&) = delete;
  recursive_mutex& operator=(const recursive_mutex&) = delete;
  void lock() { core_.lock(); }
  bool try_lock() noexcept { return core_.try_lock(); }
  void unlock() { core_.unlock(); }

 private:
  detail::RecursiveCore core_;
};

// std::recursive_timed_mutex.
class recursive_timed_mutex {
 public:
  constexpr recursive_timed_mutex() noexcept = default;
  recursive_timed_mutex(const recursive_timed_mutex&) = delete;
  recursive_timed_mutex& operator=(const recursive_timed_mutex&) = delete;
  void lock() { core_.lock(); }
  bool try_lock() noexcept { return core_.try_lock(); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& d) {
    return core_.try_lock_until(detail::deadline_after(d));
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t) {
    return detail::until_clock(t, [this](detail::SteadyTime d) { return core_.try_lock_until(d); });
  }
  void unlock() { core_.unlock(); }

 private:
  detail::RecursiveCore core_;
};

}  // namespace upcall
