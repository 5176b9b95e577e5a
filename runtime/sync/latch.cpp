// runtime/sync/latch.cpp: count_down and wait of upcall::latch (upcall/latch.hpp).
//
// Protocol (state = count * kOne | kQueued):
//  C1. count_down: fetch_sub(n * kOne, acq_rel). If that reached zero and kQueued was set:
//      lock spin_, pop every waiter, unlock, notify them. Otherwise the RMW was the last access.
//  W1. wait: count zero (acquire) -> return. Else lock spin_ and loop: zero -> return; CAS in
//      kQueued; link a Waiter; unlock; wait.
//  C1. A waiter woken by a delete: lock spin_, unlink itself if still linked (else absorb the
//      notify on its way), unlock, throw TaskDeleted. Its count_down, if any, stays counted.
// No lost wake-up: the waiter sets kQueued with a CAS on the same word as C1's RMW. If the CAS
// comes first, C1 sees kQueued and takes spin_ after the waiter linked itself (the waiter links
// before it unlocks, and C1 locks); if C1 comes first, the CAS fails and the waiter sees zero.
#include "upcall/latch.hpp"

#include "runtime/sync/sync_util.hpp"

namespace upcall {

void latch::count_down(std::ptrdiff_t n) {
  // acq_rel: release publishes this arriver's writes to the waiters (their acquire loads and
  // CAS pair with it); acquire orders the wake-up after all earlier arrivals.
  const std::ptrdiff_t old = state_.fetch_sub(n * kOne, std::memory_order_acq_rel);
  if (old / kOne == n && (old & kQueued)) wake_all();
}

void latch::wait() const {
  if (try_wait()) return;
  detail::Waiter w;
  spin_.lock();
  std::ptrdiff_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (s / kOne == 0) {
      spin_.unlock();
      return;
    }
    if (s & kQueued) break;
    // acquire on failure: the value read may be the zero written by the last count_down.
    if (state_.compare_exchange_weak(s, s | kQueued, std::memory_order_acquire,
                                     std::memory_order_acquire))
      break;
  }
  detail::link_waiter(waiters_, &w);
  spin_.unlock();
  // acquire (in Waiter): pairs with wake_all's notify after the last count_down.
  if (w.wait_cancellable() == detail::WaitStatus::notified) return;
  // C1: a delete (DESIGN.md section 14). Leave the list (or, if wake_all popped us meanwhile,
  // absorb its notify: nothing was consumed), then unwind.
  spin_.lock();
  const bool unlinked = detail::unlink_if_linked(waiters_, &w);
  spin_.unlock();
  if (!unlinked) w.wait();
  detail::throw_task_deleted();
}

void latch::wake_all() const noexcept {
  detail::WakeChain chain;
  spin_.lock();
  while (detail::Waiter* w = detail::pop_waiter(waiters_)) chain.add(w);
  spin_.unlock();
  chain.notify_all();
}

}  // namespace upcall
