// runtime/sync/condition_variable.cpp: the wait queue of upcall::condition_variable and
// condition_variable_any (upcall/condition_variable.hpp).
//
// Protocol (wait.hpp's W/N steps with the dequeued mark of sync_util.hpp):
//  W1. enqueue (the caller still holds its own lock): lock spin_, link, ++inflight_, unlock.
//  W2. wait / wait_until; W3 on timeout: lock spin_; still linked -> unlink, timed out;
//      already popped -> a notify is on the way: wait for it, report notified.
//  W4. The waiter's last access: inflight_ decrement (release).
//  C1. A waiter woken by a delete (wait_cancellable; DESIGN.md section 14): as W3; if a notify
//      had already popped it, it absorbs that notify and passes it on with notify_one (before
//      W4, so the object is still alive): a notify_one is never swallowed by a task that leaves,
//      and the extra wake-up it may cause is a spurious one, which std allows. The caller then
//      relocks the user's lock (not a cancellation point) and throws TaskDeleted.
//  N.  notify_one / notify_all: lock spin_, pop one / all, unlock, notify them.
// Destruction: std lets a condition variable die once every waiter was notified, possibly
// before they returned. Those waiters may still be in W3 or W4, so ~CvCore yields until
// inflight_ is 0 (acquire, pairs with W4). Waiters that were never notified make that UB in
// std; here it would wait for them.
#include "upcall/condition_variable.hpp"

#include "runtime/sync/sync_util.hpp"
#include "upcall/this_task.hpp"

namespace upcall::detail {

CvCore::~CvCore() {
  while (inflight_.load(std::memory_order_acquire) != 0) this_task::yield();
}

void CvCore::enqueue(Waiter& w) noexcept {
  spin_.lock();
  link_waiter(waiters_, &w);
  inflight_.fetch_add(1, std::memory_order_relaxed);  // under spin_; W4 pairs on the way down
  spin_.unlock();
}

void CvCore::wait(Waiter& w) noexcept {
  w.wait();
  inflight_.fetch_sub(1, std::memory_order_release);  // W4
}

bool CvCore::wait_until(Waiter& w, SteadyTime deadline) noexcept {
  bool notified = wait_until_or_forever(w, deadline);
  if (!notified) {
    spin_.lock();
    const bool timed_out = unlink_if_linked(waiters_, &w);
    spin_.unlock();
    if (!timed_out) {
      w.wait();  // popped just before the deadline: absorb its notify
      notified = true;
    }
  }
  inflight_.fetch_sub(1, std::memory_order_release);  // W4
  return notified;
}

WaitStatus CvCore::wait_cancellable(Waiter& w, SteadyTime deadline) noexcept {
  WaitStatus st = w.wait_cancellable(deadline);
  if (st != WaitStatus::notified) {
    spin_.lock();
    const bool unlinked = unlink_if_linked(waiters_, &w);
    spin_.unlock();
    if (!unlinked) {
      w.wait();  // popped just now: absorb its notify
      if (st == WaitStatus::timed_out)
        st = WaitStatus::notified;
      else
        notify_one();  // C1: hand the notification on
    }
  }
  inflight_.fetch_sub(1, std::memory_order_release);  // W4
  return st;
}

void CvCore::notify_one() noexcept {
  spin_.lock();
  Waiter* w = pop_waiter(waiters_);
  spin_.unlock();
  if (w) w->notify();
}

void CvCore::notify_all() noexcept {
  WakeChain chain;
  spin_.lock();
  while (Waiter* w = pop_waiter(waiters_)) chain.add(w);
  spin_.unlock();
  chain.notify_all();
}

}  // namespace upcall::detail
