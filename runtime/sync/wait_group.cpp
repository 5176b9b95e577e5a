// runtime/sync/wait_group.cpp: the waiting half of upcall::WaitGroup (upcall/wait_group.hpp).
// Owns the protocol between add() bringing the counter to zero and wait(), and the lifetime
// rule that lets a waiter destroy the WaitGroup as soon as wait() returned.
//
// state_ = counter << 32 | registered waiters. Waiters queue in waiters_ under lock_.
//  A1. add(): CAS the counter part (acq_rel). If the counter became zero and the same CAS saw
//      registered waiters, release them: lock; unlink every waiter, mark it released (tag 1),
//      subtract them from the waiter count; unlock; notify them (after the unlock, so a woken
//      waiter does not spin on our lock). If it saw none, add() touches nothing more: a waiter
//      that reads zero may return and destroy the object at once.
//  W1. wait(): fast path, counter zero (acquire). Else lock; register with a CAS that fails if
//      the counter is zero (then return); link a Waiter (tag 0); unlock; wait.
//  W3. Deadline passed: lock; still linked: unregister with a CAS that fails if the counter is
//      zero; if it succeeded, unlink and report the timeout. Otherwise (counter zero, or already
//      released) a releasing add() counted us and will notify us: wait for that.
// No lost wake-up: registration and the zeroing CAS are RMWs on one word; if registration is
// first, the zeroing add() sees the waiter and releases it; if the zeroing is first,
// registration sees zero and does not wait. The releaser locks after a registration it saw,
// so it finds the Waiter linked (the registrant held lock_ across its CAS and the link).
// Lifetime: the releaser touches the object between its CAS and its unlock only; every waiter it
// counted is then still inside wait() (untimed ones wait for the notify, timed ones cannot
// unregister once the counter is zero), so the object is alive.
#include "upcall/wait_group.hpp"

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace upcall {

namespace {
constexpr std::uintptr_t kLinked = 0;
constexpr std::uintptr_t kReleased = 1;
constexpr std::uint64_t kWaiterMask = 0xffffffffull;

std::int64_t counter_of(std::uint64_t s) { return static_cast<std::int32_t>(s >> 32); }
std::uint64_t waiters_of(std::uint64_t s) { return s & kWaiterMask; }
}  // namespace

void WaitGroup::add(std::int64_t delta) {
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  std::int64_t next;
  for (;;) {
    next = counter_of(s) + delta;
    if (next < 0)
      throw std::logic_error("upcall::WaitGroup: counter would become negative (" +
                             std::to_string(counter_of(s)) + " + " + std::to_string(delta) +
                             "): done() called more often than add()");
    if (next > std::numeric_limits<std::int32_t>::max())
      throw std::logic_error("upcall::WaitGroup: counter would exceed INT32_MAX");
    const std::uint64_t ns =
        (static_cast<std::uint64_t>(static_cast<std::uint32_t>(next)) << 32) | waiters_of(s);
    // acq_rel: see state_ in wait_group.hpp.
    if (state_.compare_exchange_weak(s, ns, std::memory_order_acq_rel, std::memory_order_relaxed))
      break;
  }
  if (next == 0 && delta != 0 && waiters_of(s) != 0) release_waiters();  // A1
}

void WaitGroup::release_waiters() noexcept {
  detail::WaitList woken;
  std::uint64_t n = 0;
  lock_.lock();
  while (detail::Waiter* w = waiters_.pop_front()) {
    w->tag = kReleased;
    woken.push_back(w);  // unlinked, and not notified before the loop below
    ++n;
  }
  // relaxed: under lock_, as every registration and unregistration.
  state_.fetch_sub(n, std::memory_order_relaxed);
  lock_.unlock();  // the last touch of *this (see the file comment)
  while (detail::Waiter* w = woken.pop_front()) w->notify();  // pop first: w may die at once
}

bool WaitGroup::wait_impl(bool timed, std::chrono::steady_clock::time_point deadline) {
  // acquire: pairs with the release of the add() that brought the counter to zero.
  if (counter_of(state_.load(std::memory_order_acquire)) == 0) return true;
  detail::Waiter w;  // before the lock: a thread's first Waiter may allocate its parker
  lock_.lock();
  std::uint64_t s = state_.load(std::memory_order_acquire);
  do {
    if (counter_of(s) == 0) {
      lock_.unlock();
      return true;
    }
    // acq_rel / acquire: a failed CAS that reads zero must see the adders' work.
  } while (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel,
                                         std::memory_order_acquire));
  w.tag = kLinked;
  waiters_.push_back(&w);
  lock_.unlock();
  const detail::WaitStatus st =
      w.wait_cancellable(timed ? deadline : std::chrono::steady_clock::time_point::max());
  if (st == detail::WaitStatus::notified) return true;
  // A delete that came with the release: the releaser is done with *this (it notifies after
  // its unlock), so throw without touching the object, which another waiter may destroy now.
  // (Still open: a delete between the release and its notify takes lock_ below; README.)
  if (st == detail::WaitStatus::cancelled && w.notified()) detail::throw_task_deleted();
  // W3 (timeout, or a delete: then the same, and throw).
  lock_.lock();
  bool unregistered = false;
  if (w.tag == kLinked) {
    s = state_.load(std::memory_order_relaxed);
    while (counter_of(s) != 0) {
      if (state_.compare_exchange_weak(s, s - 1, std::memory_order_relaxed)) {
        unregistered = true;
        waiters_.remove(&w);
        break;
      }
    }
  }
  lock_.unlock();
  if (!unregistered) w.wait();  // a releaser counted us: absorb its notify before w dies
  if (st == detail::WaitStatus::cancelled) detail::throw_task_deleted();
  return !unregistered;
}

void WaitGroup::wait() { wait_impl(false, {}); }

bool WaitGroup::wait_until(std::chrono::steady_clock::time_point deadline) {
  return wait_impl(true, deadline);
}

}  // namespace upcall
