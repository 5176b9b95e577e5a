// upcall/shared_mutex.hpp: drop-ins for <shared_mutex>: upcall::shared_mutex,
// upcall::shared_timed_mutex and upcall::shared_lock (std::shared_lock, which works with any
// shared mutex). A waiting fiber suspends, a waiting plain thread blocks.
//
// Policy: FIFO phases. Uncontended operations are one CAS on one state word (writer bit,
// queued bit, reader count). Once anyone waits (queued bit set), new readers queue too instead
// of joining the readers in, so a waiting writer is never starved; when the lock is released,
// the head of the queue is granted: one writer, or every consecutive reader at the head (they
// share the next phase). Grants are hand-offs: the state is updated for the woken contexts
// before they run. Slow paths in runtime/sync/shared_mutex.cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <shared_mutex>  // std::shared_lock

#include "upcall/deadline.hpp"
#include "upcall/detail/config.hpp"
#include "upcall/detail/wait.hpp"

namespace upcall {

using std::shared_lock;

namespace detail {

class WakeChain;  // runtime/sync/sync_util.hpp

class UPCALL_API SharedMutexCore {
 public:
  static constexpr std::uint32_t kWriter = 1u << 31;
  static constexpr std::uint32_t kQueued = 1u << 30;
  static constexpr std::uint32_t kReaders = kQueued - 1;  // mask of the reader count

  constexpr SharedMutexCore() noexcept = default;
  SharedMutexCore(const SharedMutexCore&) = delete;
  SharedMutexCore& operator=(const SharedMutexCore&) = delete;

  bool try_lock() noexcept {
    std::uint32_t s = 0;
    // acquire: pairs with the release of the unlock / unlock_shared that made the state 0.
    return state_.compare_exchange_strong(s, kWriter, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  // Contended locks are cancellation points of a deleted task (DESIGN.md section 14).
  void lock() {
    if (!try_lock()) lock_slow(false, false, SteadyTime::max());
  }
  bool try_lock_until(SteadyTime d) { return try_lock() || lock_slow(false, true, d); }
  void unlock() noexcept {
    std::uint32_t s = kWriter;
    // release: pairs with the acquire CAS of the next locker (shared or exclusive).
    if (!state_.compare_exchange_strong(s, 0, std::memory_order_release,
                                        std::memory_order_relaxed))
      unlock_slow(true);
  }

  bool try_lock_shared() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while (!(s & (kWriter | kQueued)) && (s & kReaders) != kReaders) {
      // acquire: pairs with the last writer's release.
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                       std::memory_order_relaxed))
        return true;
    }
    return false;
  }
  void lock_shared() {
    if (!try_lock_shared()) lock_slow(true, false, SteadyTime::max());
  }
  bool try_lock_shared_until(SteadyTime d) {
    return try_lock_shared() || lock_slow(true, true, d);
  }
  void unlock_shared() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while (!(s & kQueued)) {
      // release: pairs with the acquire CAS of a later writer.
      if (state_.compare_exchange_weak(s, s - 1, std::memory_order_release,
                                       std::memory_order_relaxed))
        return;
    }
    unlock_slow(false);
  }

 private:
  bool lock_slow(bool shared, bool timed, SteadyTime deadline);
  void unlock_slow(bool writer) noexcept;
  void grant_locked(std::uint32_t s, WakeChain& chain) noexcept;

  // Atomic: the fast paths CAS it while kQueued is clear; kQueued is set and cleared only
  // under spin_, and while it is set every change of the state happens under spin_.
  std::atomic<std::uint32_t> state_{0};
  SpinLock spin_;     // guards waiters_
  WaitList waiters_;  // guarded by spin_; Waiter::tag: 1 = shared, 0 = exclusive
};

}  // namespace detail

// std::shared_mutex.
class shared_mutex {
 public:
  constexpr shared_mutex() noexcept = default;
  shared_mutex(const shared_mutex&) = delete;
  shared_mutex& operator=(const shared_mutex&) = delete;
  void lock() { core_.lock(); }
  bool try_lock() noexcept { return core_.try_lock(); }
  void unlock() { core_.unlock(); }
  void lock_shared() { core_.lock_shared(); }
  bool try_lock_shared() noexcept { return core_.try_lock_shared(); }
  void unlock_shared() { core_.unlock_shared(); }

 private:
  detail::SharedMutexCore core_;
};

// std::shared_timed_mutex.
class shared_timed_mutex {
 public:
  constexpr shared_timed_mutex() noexcept = default;
  shared_timed_mutex(const shared_timed_mutex&) = delete;
  shared_timed_mutex& operator=(const shared_timed_mutex&) = delete;
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
  void lock_shared() { core_.lock_shared(); }
  bool try_lock_shared() noexcept { return core_.try_lock_shared(); }
  template <class Rep, class Period>
  bool try_lock_shared_for(const std::chrono::duration<Rep, Period>& d) {
    return core_.try_lock_shared_until(detail::deadline_after(d));
  }
  template <class Clock, class Duration>
  bool try_lock_shared_until(const std::chrono::time_point<Clock, Duration>& t) {
    return detail::until_clock(
        t, [this](detail::SteadyTime d) { return core_.try_lock_shared_until(d); });
  }
  void unlock_shared() { core_.unlock_shared(); }

 private:
  detail::SharedMutexCore core_;
};

}  // namespace upcall
