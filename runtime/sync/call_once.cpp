// runtime/sync/call_once.cpp: the waiting side of upcall::call_once (upcall/call_once.hpp).
//
// Protocol (state = kIdle | kRunning | kDone, plus kQueued; kQueued is set only under spin_):
//  B1. once_begin: CAS kIdle -> kRunning wins the right to run. Otherwise lock spin_ and loop:
//      kDone -> return false; kIdle -> CAS to kRunning, return true; kRunning -> CAS in
//      kQueued, link a Waiter, unlock, wait, lock again and re-examine (the runner may have
//      failed, in which case someone must run again).
//  F1. once_finish / once_abort: exchange the state for kDone / kIdle. Only if the old state had
//      kQueued: lock spin_, pop every waiter, unlock, notify them. Without kQueued the exchange
//      is the runner's last access, so a caller that sees kDone may destroy the flag at once.
// No lost wake-up: a waiter sets kQueued (under spin_) before it unlocks; the runner's exchange
// either sees the bit (and then takes spin_, after the waiter linked itself) or comes first, in
// which case the waiter's CAS fails and it re-reads kDone / kIdle.
#include "upcall/call_once.hpp"

#include "runtime/sync/sync_util.hpp"

namespace upcall::detail {

namespace {
void wake_all(SpinLock& spin, WaitList& waiters) noexcept {
  WakeChain chain;
  spin.lock();
  while (Waiter* w = pop_waiter(waiters)) chain.add(w);
  spin.unlock();
  chain.notify_all();
}
}  // namespace

bool once_begin(once_flag& f) noexcept {
  std::uint32_t s = once_flag::kIdle;
  // acquire on success: nothing to pair with yet, but a failure's value may be kDone, which
  // must make the runner's effects visible (pairs with once_finish's release exchange).
  if (f.state_.compare_exchange_strong(s, once_flag::kRunning, std::memory_order_acquire,
                                       std::memory_order_acquire))
    return true;
  if (s == once_flag::kDone) return false;
  for (;;) {
    Waiter w;
    f.spin_.lock();
    s = f.state_.load(std::memory_order_acquire);
    for (;;) {
      if (s == once_flag::kDone) {
        f.spin_.unlock();
        return false;
      }
      if (s == once_flag::kIdle) {
        if (f.state_.compare_exchange_weak(s, once_flag::kRunning, std::memory_order_acquire,
                                           std::memory_order_acquire)) {
          f.spin_.unlock();
          return true;
        }
        continue;
      }
      // Running (maybe already queued): make sure kQueued is set, then wait.
      if (f.state_.compare_exchange_weak(s, s | once_flag::kQueued, std::memory_order_acquire,
                                         std::memory_order_acquire))
        break;
    }
    link_waiter(f.waiters_, &w);
    f.spin_.unlock();
    w.wait();
  }
}

void once_finish(once_flag& f) noexcept {
  // release: pairs with the acquire loads of call_once's fast path and once_begin.
  const std::uint32_t old = f.state_.exchange(once_flag::kDone, std::memory_order_acq_rel);
  if (old & once_flag::kQueued) wake_all(f.spin_, f.waiters_);
}

void once_abort(once_flag& f) noexcept {
  const std::uint32_t old = f.state_.exchange(once_flag::kIdle, std::memory_order_acq_rel);
  if (old & once_flag::kQueued) wake_all(f.spin_, f.waiters_);
}

}  // namespace upcall::detail
