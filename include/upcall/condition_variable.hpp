// upcall/condition_variable.hpp: drop-ins for <condition_variable>:
// upcall::condition_variable (works with upcall::unique_lock<upcall::mutex>, which is
// std::unique_lock<upcall::mutex>), upcall::condition_variable_any (any BasicLockable,
// including the C++20 stop_token overloads with upcall::stop_token), and std::cv_status. A
// waiting fiber suspends (its core runs other fibers), a waiting plain thread blocks.
//
// Waiting (detail::CvCore, runtime/sync/condition_variable.cpp): the waiter links a Waiter
// under the core's SpinLock *before* it releases the user's lock, so a notify that follows the
// release (the usual "change the predicate under the mutex, then notify") always finds it: no
// lost wake-ups, and no internal mutex as libstdc++'s condition_variable_any needs. notify_one
// pops the oldest waiter (FIFO). As std allows, a condition variable may be destroyed as soon as
// every waiter was notified, even before they returned from wait: the destructor waits (yielding)
// for the notified waiters to stop touching it.
// Not provided: std::notify_all_at_thread_exit.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>  // std::cv_status
#include <exception>
#include <mutex>

#include "upcall/deadline.hpp"
#include "upcall/detail/config.hpp"
#include "upcall/detail/wait.hpp"
#include "upcall/mutex.hpp"
#include "upcall/stop_token.hpp"

namespace upcall {

using std::cv_status;

namespace detail {

class UPCALL_API CvCore {
 public:
  constexpr CvCore() noexcept = default;
  ~CvCore();
  CvCore(const CvCore&) = delete;
  CvCore& operator=(const CvCore&) = delete;

  // W1: links w (constructed by the waiting context). Call before releasing the user's lock.
  void enqueue(Waiter& w) noexcept;
  // W2: waits until notified.
  void wait(Waiter& w) noexcept;
  // W2 with a deadline (+W3). True when notified, false when the deadline passed first.
  bool wait_until(Waiter& w, SteadyTime deadline) noexcept;
  // W2 (+W3) at a cancellation point (SteadyTime::max(): no deadline). `cancelled`: the
  // calling task was deleted; w is off the list, a notify it had already been given was passed
  // to the next waiter, and the caller must relock and then throw_task_deleted().
  WaitStatus wait_cancellable(Waiter& w, SteadyTime deadline) noexcept;
  void notify_one() noexcept;
  void notify_all() noexcept;

 private:
  SpinLock spin_;     // guards waiters_
  WaitList waiters_;  // guarded by spin_
  // Waiters between enqueue and their last access to this object. Incremented under spin_,
  // decremented (release) by each waiter as its very last access; the destructor's acquire
  // load of 0 pairs with it.
  std::atomic<int> inflight_{0};
};

// Relocks after a wait. std: if the relock fails the postcondition cannot hold: terminate.
// Not a cancellation point (std wants the lock held when wait exits, also by an exception): a
// deleted task waits for the lock here and throws TaskDeleted after.
template <class Lock>
void relock(Lock& lock) noexcept {
  NoCancelScope no_cancel;
  lock.lock();
}

// The end of every wait: relock, then unwind if the wait ended with a delete.
template <class Lock>
bool relock_after(Lock& lock, WaitStatus st) {
  relock(lock);
  if (st == WaitStatus::cancelled) throw_task_deleted();
  return st == WaitStatus::notified;
}

}  // namespace detail

// std::condition_variable.
class condition_variable {
 public:
  constexpr condition_variable() noexcept = default;
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;

  void notify_one() noexcept { core_.notify_one(); }
  void notify_all() noexcept { core_.notify_all(); }

  // Precondition (std): lock.owns_lock(). May suspend the calling fiber.
  void wait(unique_lock<mutex>& lock) {
    detail::Waiter w;
    core_.enqueue(w);
    lock.unlock();
    // A cancellation point of a deleted task: TaskDeleted leaves with the lock held again.
    detail::relock_after(lock, core_.wait_cancellable(w, detail::SteadyTime::max()));
  }
  template <class Predicate>
  void wait(unique_lock<mutex>& lock, Predicate pred) {
    while (!pred()) wait(lock);
  }

  template <class Clock, class Duration>
  cv_status wait_until(unique_lock<mutex>& lock, const std::chrono::time_point<Clock, Duration>& t) {
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
      return wait_steady(lock, detail::steady_deadline(t));
    } else {
      // One wait against the steady clock, then the verdict from Clock (std's rule).
      const auto now = Clock::now();
      if (now < t) wait_steady(lock, detail::deadline_after(t - now));
      return Clock::now() < t ? cv_status::no_timeout : cv_status::timeout;
    }
  }
  template <class Clock, class Duration, class Predicate>
  bool wait_until(unique_lock<mutex>& lock, const std::chrono::time_point<Clock, Duration>& t,
                  Predicate pred) {
    while (!pred())
      if (wait_until(lock, t) == cv_status::timeout) return pred();
    return true;
  }
  template <class Rep, class Period>
  cv_status wait_for(unique_lock<mutex>& lock, const std::chrono::duration<Rep, Period>& d) {
    return wait_steady(lock, detail::deadline_after(d));
  }
  template <class Rep, class Period, class Predicate>
  bool wait_for(unique_lock<mutex>& lock, const std::chrono::duration<Rep, Period>& d,
                Predicate pred) {
    return wait_until(lock, detail::deadline_after(d), std::move(pred));
  }

 private:
  cv_status wait_steady(unique_lock<mutex>& lock, detail::SteadyTime deadline) {
    detail::Waiter w;
    core_.enqueue(w);
    lock.unlock();
    const bool notified = detail::relock_after(lock, core_.wait_cancellable(w, deadline));
    return notified ? cv_status::no_timeout : cv_status::timeout;
  }
  detail::CvCore core_;
};

// std::condition_variable_any: any lock with lock()/unlock() (upcall or std mutexes, locks,
// user types). A std::mutex held across the wait blocks the fiber's kernel thread only while
// it is being re-acquired, as it would anywhere else.
class condition_variable_any {
 public:
  constexpr condition_variable_any() noexcept = default;
  condition_variable_any(const condition_variable_any&) = delete;
  condition_variable_any& operator=(const condition_variable_any&) = delete;

  void notify_one() noexcept { core_.notify_one(); }
  void notify_all() noexcept { core_.notify_all(); }

  template <class Lock>
  void wait(Lock& lock) {
    detail::Waiter w;
    core_.enqueue(w);
    lock.unlock();
    // A cancellation point of a deleted task: TaskDeleted leaves with the lock held again.
    detail::relock_after(lock, core_.wait_cancellable(w, detail::SteadyTime::max()));
  }
  template <class Lock, class Predicate>
  void wait(Lock& lock, Predicate pred) {
    while (!pred()) wait(lock);
  }
  template <class Lock, class Clock, class Duration>
  cv_status wait_until(Lock& lock, const std::chrono::time_point<Clock, Duration>& t) {
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
      return wait_steady(lock, detail::steady_deadline(t));
    } else {
      const auto now = Clock::now();
      if (now < t) wait_steady(lock, detail::deadline_after(t - now));
      return Clock::now() < t ? cv_status::no_timeout : cv_status::timeout;
    }
  }
  template <class Lock, class Clock, class Duration, class Predicate>
  bool wait_until(Lock& lock, const std::chrono::time_point<Clock, Duration>& t, Predicate pred) {
    while (!pred())
      if (wait_until(lock, t) == cv_status::timeout) return pred();
    return true;
  }
  template <class Lock, class Rep, class Period>
  cv_status wait_for(Lock& lock, const std::chrono::duration<Rep, Period>& d) {
    return wait_steady(lock, detail::deadline_after(d));
  }
  template <class Lock, class Rep, class Period, class Predicate>
  bool wait_for(Lock& lock, const std::chrono::duration<Rep, Period>& d, Predicate pred) {
    return wait_until(lock, detail::deadline_after(d), std::move(pred));
  }

  // C++20 interruptible waits: return when pred() holds or a stop was requested on `st`
  // (then with pred()'s value). The stop callback only notifies this object.
  template <class Lock, class Predicate>
  bool wait(Lock& lock, stop_token st, Predicate pred) {
    return wait_stoppable(lock, st, detail::SteadyTime::max(), pred);
  }
  template <class Lock, class Clock, class Duration, class Predicate>
  bool wait_until(Lock& lock, stop_token st, const std::chrono::time_point<Clock, Duration>& t,
                  Predicate pred) {
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
      return wait_stoppable(lock, st, detail::steady_deadline(t), pred);
    } else {
      while (!pred()) {
        const auto now = Clock::now();
        if (now >= t || st.stop_requested()) return pred();
        wait_stoppable(lock, st, detail::deadline_after(t - now), pred);
      }
      return true;
    }
  }
  template <class Lock, class Rep, class Period, class Predicate>
  bool wait_for(Lock& lock, stop_token st, const std::chrono::duration<Rep, Period>& d,
                Predicate pred) {
    return wait_stoppable(lock, st, detail::deadline_after(d), pred);
  }

 private:
  template <class Lock>
  cv_status wait_steady(Lock& lock, detail::SteadyTime deadline) {
    detail::Waiter w;
    core_.enqueue(w);
    lock.unlock();
    const bool notified = detail::relock_after(lock, core_.wait_cancellable(w, deadline));
    return notified ? cv_status::no_timeout : cv_status::timeout;
  }
  template <class Lock, class Predicate>
  bool wait_stoppable(Lock& lock, const stop_token& st, detail::SteadyTime deadline,
                      Predicate& pred) {
    if (st.stop_requested()) return pred();
    stop_callback wake(st, [this]() noexcept { core_.notify_all(); });
    while (!pred()) {
      detail::Waiter w;
      core_.enqueue(w);
      // Checked after enqueue: a request from now on finds w linked and its callback wakes it.
      if (st.stop_requested()) {
        core_.wait_until(w, detail::SteadyTime::min());  // unlink (or absorb a racing notify)
        break;
      }
      lock.unlock();
      const bool notified = detail::relock_after(lock, core_.wait_cancellable(w, deadline));
      if (!notified || st.stop_requested()) break;
    }
    return pred();
  }
  detail::CvCore core_;
};

}  // namespace upcall
