// runtime/sync/shared_mutex.cpp: the slow paths of upcall::shared_mutex and
// shared_timed_mutex (upcall/shared_mutex.hpp): queueing, FIFO-phase grants on release, and
// timed-out waiters leaving the queue.
//
// Protocol (state = kWriter | kQueued | readers; kQueued only changes under spin_, and while it
// is set no fast path can change the state, so spin_ holders own it):
//  S1. lock_slow: spin briefly while nobody is queued, retrying the fast path. Then lock spin_
//      and loop: nobody queued and grantable -> take it by CAS (acquire) and return; else CAS in
//      kQueued, link a Waiter (tag = shared?), unlock, wait. Woken means granted.
//  S2. unlock_slow (the fast CAS failed, so kQueued was set; it may have been cleared by a
//      timed-out waiter since): lock spin_; if kQueued is now clear, do the fast operation by
//      CAS under the lock and return. Else drop our hold from the state and grant_locked.
//  G.  grant_locked (spin_ held, kQueued set): from the head, grant one writer if the state is
//      free, or every consecutive reader while no writer holds it; store the new state with
//      kQueued = "list not empty" (release: pairs with the fast paths' acquire CAS); after the
//      unlock, notify the granted waiters.
//  T1. Timed-out waiter: lock spin_; still linked -> unlink and re-run G (a writer leaving the
//      head may let the readers behind it in; an empty list clears kQueued); already granted
//      -> wait for the notify on its way and report success.
//  C1. A waiter woken by a delete (DESIGN.md section 14): as T1, then throw TaskDeleted; if it
//      was already granted, it absorbs the notify and releases the grant (unlock / unlock_shared:
//      S2 passes it on) before it throws.
#include "upcall/shared_mutex.hpp"

#include "runtime/sync/sync_util.hpp"

namespace upcall::detail {

namespace {
constexpr std::uintptr_t kExclusive = 0, kShared = 1;
constexpr int kSpinIterations = 40;  // as mutex.cpp; not tuned by a benchmark yet
using S = SharedMutexCore;

bool grantable(std::uint32_t s, bool shared) {
  if (shared) return !(s & S::kWriter) && (s & S::kReaders) != S::kReaders;
  return (s & (S::kWriter | S::kReaders)) == 0;
}
}  // namespace

void SharedMutexCore::grant_locked(std::uint32_t s, WakeChain& chain) noexcept {
  while (Waiter* w = waiters_.front()) {
    if (w->tag == kShared) {
      if (!grantable(s, true)) break;
      pop_waiter(waiters_);
      s += 1;
      chain.add(w);
    } else {
      if (grantable(s, false)) {
        pop_waiter(waiters_);
        s |= kWriter;
        chain.add(w);
      }
      break;
    }
  }
  s = waiters_.empty() ? (s & ~kQueued) : (s | kQueued);
  state_.store(s, std::memory_order_release);
}

bool SharedMutexCore::lock_slow(bool shared, bool timed, SteadyTime deadline) {
  const int spins = spin_can_pay_off() ? kSpinIterations : 0;
  for (int i = 0; i < spins; ++i) {
    const std::uint32_t s = state_.load(std::memory_order_relaxed);
    if (s & kQueued) break;
    if (grantable(s, shared) && (shared ? try_lock_shared() : try_lock())) return true;
    __builtin_ia32_pause();
  }
  Waiter w;
  w.tag = shared ? kShared : kExclusive;
  spin_.lock();
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (!(s & kQueued) && grantable(s, shared)) {
      const std::uint32_t next = shared ? s + 1 : (s | kWriter);
      // acquire: as the fast paths.
      if (state_.compare_exchange_weak(s, next, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        spin_.unlock();
        return true;
      }
      continue;
    }
    // Relaxed: spin_ orders the list; a racing fast path makes this CAS fail and we retry.
    if (state_.compare_exchange_weak(s, s | kQueued, std::memory_order_relaxed,
                                     std::memory_order_relaxed))
      break;
  }
  link_waiter(waiters_, &w);
  spin_.unlock();
  (void)timed;  // untimed waits pass SteadyTime::max(): no timer
  // Woken means granted; acquire (in Waiter) pairs with the granter's notify.
  const WaitStatus st = w.wait_cancellable(deadline);
  if (st == WaitStatus::notified) return true;
  WakeChain chain;
  spin_.lock();
  if (!unlink_if_linked(waiters_, &w)) {
    spin_.unlock();
    w.wait();  // granted just now; its notify is on the way
    if (st == WaitStatus::timed_out) return true;
    if (shared)  // C1: give the grant back through the normal release path
      unlock_shared();
    else
      unlock();
    throw_task_deleted();
  }
  grant_locked(state_.load(std::memory_order_relaxed), chain);
  spin_.unlock();
  chain.notify_all();
  if (st == WaitStatus::cancelled) throw_task_deleted();
  return false;
}

void SharedMutexCore::unlock_slow(bool writer) noexcept {
  WakeChain chain;
  spin_.lock();
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  while (!(s & kQueued)) {
    // The queue emptied since our fast path failed: the fast operation, under the lock.
    // release: as the fast paths.
    const std::uint32_t next = writer ? (s & ~kWriter) : s - 1;
    if (state_.compare_exchange_weak(s, next, std::memory_order_release,
                                     std::memory_order_relaxed)) {
      spin_.unlock();
      return;
    }
  }
  grant_locked(writer ? (s & ~kWriter) : s - 1, chain);
  spin_.unlock();
  chain.notify_all();
}

}  // namespace upcall::detail
