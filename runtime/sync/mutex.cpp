// runtime/sync/mutex.cpp: the slow paths of upcall::mutex and friends (upcall/mutex.hpp): the
// brief spin, the FIFO wait list with direct hand-off on unlock, timed-out waiters leaving the
// list, and the recursion bookkeeping of the recursive mutexes. The fast paths (one CAS each)
// are inline in the header.
//
// Protocol, on top of wait.hpp's W/N steps (state = kLocked | kQueued; kQueued only under spin_):
//  L1. lock_slow: spin up to kSpinIterations while nobody is queued, retrying the fast CAS
//      (not at all where it cannot pay off: a fiber on a 1-core runtime, or with other ready
//      fibers on its core; measured: a 1-core hand-off took 4.5 us with the spin, bench/sync).
//  L2. Build a Waiter (before the lock: a thread's first Waiter may allocate its parker), lock
//      spin_, and loop on the state: 0 -> CAS to kLocked (acquire) and return; otherwise CAS
//      in kQueued, link the Waiter, unlock, wait. Woken means owned: the unlocker handed the
//      mutex over without ever making it free.
//  U1. unlock with kQueued (the fast CAS failed): lock spin_, pop the first waiter; if there is
//      one, the state stays kLocked (plus kQueued if more wait) and now belongs to it;
//      otherwise (the last waiter timed out meanwhile) store 0 (release). Unlock, then notify.
//  T1. A timed waiter whose deadline passed: lock spin_; still linked -> unlink, clear kQueued
//      if the list became empty, and report a timeout; already popped -> it owns the mutex,
//      wait for the notify on its way, report success (sync_util.hpp explains why).
//  C1. A waiter woken by a delete (a cancellation point, DESIGN.md section 14): T1, then throw
//      TaskDeleted; if it was already popped it owns the mutex: it absorbs the notify and
//      unlocks (U1 hands the mutex to the next waiter) before it throws, so the hand-off is
//      neither lost nor held by a task that is gone.
// Lifetime: after U1's unlock of spin_ the unlocker touches only the popped Waiter, and the new
// owner runs only after that notify, so an owner may destroy the mutex as soon as it holds it
// and has unlocked it (the std "unlock, then another thread locks and deletes" pattern).
#include "upcall/mutex.hpp"

#include "runtime/sync/sync_util.hpp"

namespace upcall::detail {

namespace {
// Iterations of the L1 spin (each one a state load and a pause, ~30-40 ns here), about the
// time of a short critical section on another core. Not tuned by a benchmark yet.
constexpr int kSpinIterations = 40;
}  // namespace

void MutexCore::lock_slow() { lock_slow_impl(false, SteadyTime::max()); }

bool MutexCore::lock_slow_until(SteadyTime deadline) { return lock_slow_impl(true, deadline); }

bool MutexCore::lock_slow_impl(bool timed, SteadyTime deadline) {
  // L1.
  const int spins = spin_can_pay_off() ? kSpinIterations : 0;
  for (int i = 0; i < spins; ++i) {
    const std::uint32_t s = state_.load(std::memory_order_relaxed);
    if (s & kQueued) break;  // FIFO: queued waiters come first
    if (s == 0 && try_lock()) return true;
    __builtin_ia32_pause();
  }
  // L2.
  Waiter w;
  spin_.lock();
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (s == 0) {
      // acquire: as try_lock.
      if (state_.compare_exchange_weak(s, kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        spin_.unlock();
        return true;
      }
      continue;
    }
    // Relaxed: spin_ orders the list; a racing fast unlock makes this CAS fail and we retry.
    if (state_.compare_exchange_weak(s, s | kQueued, std::memory_order_relaxed,
                                     std::memory_order_relaxed))
      break;
  }
  link_waiter(waiters_, &w);
  spin_.unlock();
  (void)timed;  // an untimed lock passes SteadyTime::max(): no timer is armed
  // acquire (in Waiter): pairs with notify's release; the hand-off is visible.
  const WaitStatus st = w.wait_cancellable(deadline);
  if (st == WaitStatus::notified) return true;
  // T1 / C1.
  spin_.lock();
  if (!unlink_if_linked(waiters_, &w)) {
    spin_.unlock();
    w.wait();  // handed over just now; its notify is on the way
    if (st == WaitStatus::timed_out) return true;
    unlock();  // C1: pass the mutex on (U1) before unwinding
    throw_task_deleted();
  }
  if (waiters_.empty()) state_.fetch_and(~kQueued, std::memory_order_relaxed);
  spin_.unlock();
  if (st == WaitStatus::cancelled) throw_task_deleted();
  return false;
}

void MutexCore::unlock_slow() noexcept {
  // U1.
  spin_.lock();
  Waiter* w = pop_waiter(waiters_);
  if (w) {
    // Still locked: ownership passes to w. Nothing else changes the state while kQueued was
    // set and we hold spin_, so a plain store is enough.
    state_.store(waiters_.empty() ? kLocked : (kLocked | kQueued), std::memory_order_relaxed);
  } else {
    // release: pairs with the next locker's acquire CAS.
    state_.store(0, std::memory_order_release);
  }
  spin_.unlock();
  if (w) w->notify();  // release (in Waiter): our critical section happens-before w's
}

// ------------------------------------------------------------------------- RecursiveCore

bool RecursiveCore::owned_by_caller(std::uint64_t me) const noexcept {
  return owner_.load(std::memory_order_relaxed) == me;
}

void RecursiveCore::lock() {
  const std::uint64_t me = current_context_id();
  if (owned_by_caller(me)) {
    ++depth_;
    return;
  }
  core_.lock();
  owner_.store(me, std::memory_order_relaxed);
  depth_ = 1;
}

bool RecursiveCore::try_lock() noexcept {
  const std::uint64_t me = current_context_id();
  if (owned_by_caller(me)) {
    ++depth_;
    return true;
  }
  if (!core_.try_lock()) return false;
  owner_.store(me, std::memory_order_relaxed);
  depth_ = 1;
  return true;
}

bool RecursiveCore::try_lock_until(SteadyTime deadline) {
  const std::uint64_t me = current_context_id();
  if (owned_by_caller(me)) {
    ++depth_;
    return true;
  }
  if (!core_.try_lock_until(deadline)) return false;
  owner_.store(me, std::memory_order_relaxed);
  depth_ = 1;
  return true;
}

void RecursiveCore::unlock() noexcept {
  if (--depth_ != 0) return;
  owner_.store(0, std::memory_order_relaxed);
  core_.unlock();
}

}  // namespace upcall::detail
