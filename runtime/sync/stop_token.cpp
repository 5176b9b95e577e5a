// runtime/sync/stop_token.cpp: the shared stop state behind upcall::stop_source / stop_token /
// stop_callback (upcall/stop_token.hpp): registration, request_stop running the callbacks, and
// a callback's removal racing with its own invocation.
//
// Protocol (all list fields under spin_):
//  R1. request_stop: lock; if already requested return false; set requested_ (release) and
//      requester_ = the caller's context id. While a callback is registered: unlink it, make it
//      running_ with a `destroyed` flag on our stack, unlock, invoke it, lock; if it did not
//      destroy itself, clear its flag pointer; running_ = nullptr; pop every remover waiting
//      for it, unlock, notify them, lock again.
//  D1. remove_callback (the stop_callback's destructor): lock; linked -> unlink and return
//      (it never ran and never will). running_ == n and the caller is the requester (the
//      callback destroys itself from inside) -> set *destroyed so R1 no longer touches it,
//      return. running_ == n in another context -> link a Waiter on done_waiters_, unlock and
//      wait (a fiber suspends, a thread blocks) until R1 reports the return. Otherwise it
//      already ran: return.
// Contexts are fiber ids (plain threads get ids of their own, sync_util.hpp), so a fiber that
// migrated between kernel threads is still recognised as the requester, and two fibers on one
// kernel thread are never confused with each other (what breaks libstdc++'s version here).
#include "upcall/stop_token.hpp"

#include "runtime/sync/sync_util.hpp"

namespace upcall::detail {

StopState* StopState::create() { return new StopState(); }

void StopState::release() noexcept {
  // acq_rel: the release publishes this owner's last accesses; the acquire of the last one
  // makes all of them happen before the delete.
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

StopState::AddResult StopState::add_callback(StopCallbackNode* n) noexcept {
  spin_.lock();
  if (requested_.load(std::memory_order_relaxed)) {  // written under spin_
    spin_.unlock();
    return AddResult::already_stopped;
  }
  if (sources_.load(std::memory_order_acquire) == 0) {
    spin_.unlock();
    return AddResult::impossible;
  }
  n->prev = nullptr;
  n->next = head_;
  if (head_) head_->prev = n;
  head_ = n;
  n->linked = true;
  spin_.unlock();
  return AddResult::added;
}

bool StopState::request_stop() noexcept {
  spin_.lock();
  if (requested_.load(std::memory_order_relaxed)) {
    spin_.unlock();
    return false;
  }
  // release: pairs with stop_requested()'s acquire load.
  requested_.store(true, std::memory_order_release);
  requester_ = current_context_id();
  while (StopCallbackNode* n = head_) {
    head_ = n->next;
    if (head_) head_->prev = nullptr;
    n->next = n->prev = nullptr;
    n->linked = false;
    bool destroyed = false;
    n->destroyed = &destroyed;
    running_ = n;
    spin_.unlock();
    n->invoke(n->ctx);  // may suspend; the callback may destroy its own stop_callback
    spin_.lock();
    if (!destroyed) n->destroyed = nullptr;
    running_ = nullptr;
    if (!done_waiters_.empty()) {
      WakeChain chain;
      while (Waiter* w = pop_waiter(done_waiters_)) chain.add(w);
      spin_.unlock();
      chain.notify_all();
      spin_.lock();
    }
  }
  spin_.unlock();
  return true;
}

void StopState::remove_callback(StopCallbackNode* n) noexcept {
  Waiter w;  // before the lock: a thread's first Waiter may allocate its parker
  spin_.lock();
  if (n->linked) {
    if (n->prev)
      n->prev->next = n->next;
    else
      head_ = n->next;
    if (n->next) n->next->prev = n->prev;
    n->linked = false;
    spin_.unlock();
    return;
  }
  if (running_ != n) {
    spin_.unlock();
    return;
  }
  if (requester_ == current_context_id()) {
    if (n->destroyed) *n->destroyed = true;
    spin_.unlock();
    return;
  }
  link_waiter(done_waiters_, &w);
  spin_.unlock();
  w.wait();  // acquire (in Waiter): the callback's effects are visible
}

}  // namespace upcall::detail
