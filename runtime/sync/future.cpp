// runtime/sync/future.cpp: the synchronisation of a future's shared state
// (detail::FutureStateBase in upcall/future.hpp): satisfying it once, waiting for it, running
// a deferred function, and the std error codes.
//
// Protocol (status_: kEmpty -> kSatisfying -> kReady):
//  P1. begin_satisfy: CAS kEmpty -> kSatisfying (acquire), or future_error
//      (promise_already_satisfied). The winner alone writes the value / error_.
//  P2. finish_satisfy: lock spin_; status_ = kReady (release: pairs with ready()'s and the
//      waiters' acquire loads, publishing the value); pop every waiter; unlock; notify them.
//  W1. wait: lock spin_; a deferred state whose function nobody took yet -> take it, unlock,
//      run it here (it does P1-P2). kReady -> return. Else link a Waiter, unlock, wait.
//  W3. Timed wait whose deadline passed: lock; still linked -> unlink, timed out; already
//      popped -> wait for the notify on its way (sync_util.hpp).
//  C1. A waiter woken by a delete (DESIGN.md section 14): W3, then throw TaskDeleted (a wait
//      consumes nothing, so there is nothing to hand on; the state stays for the next get).
// Lifetime: the state is reference counted; every party (waiter, satisfier) holds a reference
// while it touches it.
#include "upcall/future.hpp"

#include "runtime/sync/sync_util.hpp"

namespace upcall::detail {

void throw_future_error(future_errc code) { throw future_error(code); }

FutureStateBase::~FutureStateBase() = default;

void FutureStateBase::mark_retrieved() {
  if (retrieved_.exchange(true, std::memory_order_relaxed))
    throw_future_error(future_errc::future_already_retrieved);
}

void FutureStateBase::begin_satisfy() {
  std::uint32_t s = kEmpty;
  if (!status_.compare_exchange_strong(s, kSatisfying, std::memory_order_acquire,
                                       std::memory_order_relaxed))
    throw_future_error(future_errc::promise_already_satisfied);
}

void FutureStateBase::cancel_satisfy() noexcept {
  status_.store(kEmpty, std::memory_order_release);
}

void FutureStateBase::finish_satisfy() noexcept {
  WakeChain chain;
  spin_.lock();
  // release: pairs with ready()'s acquire; the value or error_ written before is visible.
  status_.store(kReady, std::memory_order_release);
  while (Waiter* w = pop_waiter(waiters_)) chain.add(w);
  spin_.unlock();
  chain.notify_all();
}

void FutureStateBase::set_exception(std::exception_ptr e) {
  begin_satisfy();
  error_ = std::move(e);
  finish_satisfy();
}

void FutureStateBase::abandon() noexcept {
  std::uint32_t s = kEmpty;
  if (!status_.compare_exchange_strong(s, kSatisfying, std::memory_order_acquire,
                                       std::memory_order_relaxed))
    return;  // satisfied (or being satisfied by the abandoning party itself: impossible)
  error_ = std::make_exception_ptr(future_error(future_errc::broken_promise));
  finish_satisfy();
}

void FutureStateBase::wait() {
  if (ready()) return;
  Waiter w;
  spin_.lock();
  if (deferred_ && !deferred_taken_) {
    deferred_taken_ = true;
    spin_.unlock();
    run_deferred();
    return;
  }
  if (status_.load(std::memory_order_acquire) == kReady) {
    spin_.unlock();
    return;
  }
  link_waiter(waiters_, &w);
  spin_.unlock();
  // acquire (in Waiter): pairs with finish_satisfy's notify.
  if (w.wait_cancellable() == WaitStatus::notified) return;
  spin_.lock();  // C1
  const bool unlinked = unlink_if_linked(waiters_, &w);
  spin_.unlock();
  if (!unlinked) w.wait();  // made ready just now: absorb the notify (nothing was consumed)
  throw_task_deleted();
}

bool FutureStateBase::wait_until(SteadyTime deadline) {
  if (ready()) return true;
  Waiter w;
  spin_.lock();
  if (status_.load(std::memory_order_acquire) == kReady) {
    spin_.unlock();
    return true;
  }
  link_waiter(waiters_, &w);
  spin_.unlock();
  const WaitStatus st = w.wait_cancellable(deadline);
  if (st == WaitStatus::notified) return true;
  spin_.lock();
  const bool unlinked = unlink_if_linked(waiters_, &w);
  spin_.unlock();
  if (!unlinked) w.wait();  // made ready just now: absorb the notify
  if (st == WaitStatus::cancelled) throw_task_deleted();
  return !unlinked;
}

}  // namespace upcall::detail
