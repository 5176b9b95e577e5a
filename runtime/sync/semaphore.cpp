// runtime/sync/semaphore.cpp: the slow paths of upcall::counting_semaphore
// (upcall/semaphore.hpp): queueing acquirers and FIFO hand-off of released permits.
//
// Protocol (state = count * kOne | kQueued; kQueued only changes under spin_, and while it is
// set the count is 0 and only spin_ holders change the state):
//  A1. acquire_slow: lock spin_; loop: a permit and nobody queued -> take it by CAS (acquire);
//      else CAS in kQueued, link a Waiter, unlock, wait. Woken means a permit was handed over.
//  R1. release_slow (the fast CAS saw kQueued): lock spin_; if kQueued was cleared meanwhile,
//      add the permits by CAS and return. Else hand one permit to each waiter from the head
//      while permits last, store the rest (release) with kQueued = "list not empty", unlock,
//      notify the waiters served.
//  T1. Timed-out acquirer: lock spin_; still linked -> unlink, clear kQueued if the list
//      emptied, time out; already served -> wait for its notify, success.
//  C1. An acquirer woken by a delete (DESIGN.md section 14): as T1, then throw TaskDeleted; if
//      it was already served, it absorbs the notify and release(1)s the permit it was handed
//      (R1 passes it to the next waiter) before it throws: permits are conserved.
// Lifetime: a waiter returns only after its notify, which comes after R1's unlock, so the
// usual "release(); the other side acquires and destroys the semaphore" is safe.
#include "upcall/semaphore.hpp"

#include "runtime/sync/sync_util.hpp"

namespace upcall::detail {

bool SemaphoreCore::acquire_slow(bool timed, SteadyTime deadline) {
  Waiter w;
  spin_.lock();
  std::int64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (s >= kOne && !(s & kQueued)) {
      // acquire: as try_acquire.
      if (state_.compare_exchange_weak(s, s - kOne, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        spin_.unlock();
        return true;
      }
      continue;
    }
    // Here the count is 0. Relaxed: spin_ orders the list; a racing fast release makes this CAS
    // fail and we retry.
    if (state_.compare_exchange_weak(s, s | kQueued, std::memory_order_relaxed,
                                     std::memory_order_relaxed))
      break;
  }
  link_waiter(waiters_, &w);
  spin_.unlock();
  // acquire (in Waiter): pairs with the releaser's notify. Untimed: SteadyTime::max(), no timer.
  const WaitStatus st = w.wait_cancellable(timed ? deadline : SteadyTime::max());
  if (st == WaitStatus::notified) return true;
  spin_.lock();
  if (!unlink_if_linked(waiters_, &w)) {
    spin_.unlock();
    w.wait();  // served just now; its notify is on the way
    if (st == WaitStatus::timed_out) return true;
    release(1);  // C1: the permit goes on
    throw_task_deleted();
  }
  if (waiters_.empty()) state_.fetch_and(~kQueued, std::memory_order_relaxed);
  spin_.unlock();
  if (st == WaitStatus::cancelled) throw_task_deleted();
  return false;
}

void SemaphoreCore::release_slow(std::ptrdiff_t n) noexcept {
  WakeChain chain;
  spin_.lock();
  std::int64_t s = state_.load(std::memory_order_relaxed);
  while (!(s & kQueued)) {
    // release: as the fast path.
    if (state_.compare_exchange_weak(s, s + static_cast<std::int64_t>(n) * kOne,
                                     std::memory_order_release, std::memory_order_relaxed)) {
      spin_.unlock();
      return;
    }
  }
  std::int64_t count = (s / kOne) + n;
  while (count > 0) {
    Waiter* w = pop_waiter(waiters_);
    if (!w) break;
    --count;
    chain.add(w);
  }
  // release: pairs with the acquire CAS of whoever takes the remaining permits.
  state_.store(count * kOne | (waiters_.empty() ? 0 : kQueued), std::memory_order_release);
  spin_.unlock();
  chain.notify_all();
}

}  // namespace upcall::detail
