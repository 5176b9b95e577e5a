// upcall/semaphore.hpp: drop-ins for <semaphore>: upcall::counting_semaphore<N> and
// upcall::binary_semaphore. acquire() on a zero count suspends a calling fiber (blocks a plain
// thread); release(n) hands permits to the waiters in FIFO order before anyone else can take
// them, so waiters are not starved by fresh acquirers.
//
// Algorithm (detail::SemaphoreCore, slow paths in runtime/sync/semaphore.cpp): one state word,
// count * 2 | kQueued. Uncontended acquire / release are one CAS. kQueued ("someone waits")
// is set and cleared only under the core's SpinLock; while it is set the count is 0 (release
// hands permits straight to the waiters) and both fast paths fail.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "upcall/deadline.hpp"
#include "upcall/detail/config.hpp"
#include "upcall/detail/wait.hpp"

namespace upcall {

namespace detail {

class UPCALL_API SemaphoreCore {
 public:
  static constexpr std::int64_t kQueued = 1;
  static constexpr std::int64_t kOne = 2;  // one permit in the state word
  static constexpr std::ptrdiff_t kMax = std::numeric_limits<std::int64_t>::max() / 2;

  constexpr explicit SemaphoreCore(std::ptrdiff_t initial) noexcept
      : state_(static_cast<std::int64_t>(initial) * kOne) {}
  SemaphoreCore(const SemaphoreCore&) = delete;
  SemaphoreCore& operator=(const SemaphoreCore&) = delete;

  bool try_acquire() noexcept {
    std::int64_t s = state_.load(std::memory_order_relaxed);
    while (s >= kOne && !(s & kQueued)) {
      // acquire: pairs with the release of the release() that added the permit.
      if (state_.compare_exchange_weak(s, s - kOne, std::memory_order_acquire,
                                       std::memory_order_relaxed))
        return true;
    }
    return false;
  }
  // A waiting acquire is a cancellation point of a deleted task (DESIGN.md section 14).
  void acquire() {
    if (!try_acquire()) acquire_slow(false, SteadyTime{});
  }
  bool try_acquire_until(SteadyTime d) { return try_acquire() || acquire_slow(true, d); }
  void release(std::ptrdiff_t n) noexcept {
    std::int64_t s = state_.load(std::memory_order_relaxed);
    while (!(s & kQueued)) {
      // release: pairs with the acquire CAS of the acquirer that takes the permit.
      if (state_.compare_exchange_weak(s, s + static_cast<std::int64_t>(n) * kOne,
                                       std::memory_order_release, std::memory_order_relaxed))
        return;
    }
    release_slow(n);
  }

 private:
  bool acquire_slow(bool timed, SteadyTime deadline);
  void release_slow(std::ptrdiff_t n) noexcept;

  // Atomic: fast paths CAS it while kQueued is clear; kQueued only changes under spin_.
  std::atomic<std::int64_t> state_;
  SpinLock spin_;     // guards waiters_
  WaitList waiters_;  // guarded by spin_; FIFO
};

}  // namespace detail

// std::counting_semaphore. Preconditions as std: 0 <= desired <= max(), release(n) with n >= 0
// and without overflowing max(). acquire() may suspend; release() never does.
template <std::ptrdiff_t LeastMaxValue = detail::SemaphoreCore::kMax>
class counting_semaphore {
  static_assert(LeastMaxValue >= 0 && LeastMaxValue <= detail::SemaphoreCore::kMax,
                "upcall::counting_semaphore: LeastMaxValue out of range");

 public:
  static constexpr std::ptrdiff_t max() noexcept { return LeastMaxValue; }

  constexpr explicit counting_semaphore(std::ptrdiff_t desired) noexcept : core_(desired) {}
  counting_semaphore(const counting_semaphore&) = delete;
  counting_semaphore& operator=(const counting_semaphore&) = delete;

  void release(std::ptrdiff_t update = 1) { core_.release(update); }
  void acquire() { core_.acquire(); }
  bool try_acquire() noexcept { return core_.try_acquire(); }
  template <class Rep, class Period>
  bool try_acquire_for(const std::chrono::duration<Rep, Period>& d) {
    return core_.try_acquire_until(detail::deadline_after(d));
  }
  template <class Clock, class Duration>
  bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& t) {
    return detail::until_clock(t,
                               [this](detail::SteadyTime d) { return core_.try_acquire_until(d); });
  }

 private:
  detail::SemaphoreCore core_;
};

using binary_semaphore = counting_semaphore<1>;

}  // namespace upcall
