// upcall/detail/wait.hpp: the building blocks of every blocking sync object (mutex, condition
// variable, semaphore, future, channel, ...), exported so that header-only templates can use
// them: a short spin lock that guards an object's state, and an intrusive FIFO of Waiters whose
// nodes live on the waiting context's own stack. The same code serves fibers (which suspend)
// and plain threads (which sleep on a futex). Not a user API: it may change without notice.
//
// Wait protocol (W = waiter, N = notifier; `lock` is the object's SpinLock):
//  W1. lock; check the condition; if it must wait: construct a Waiter, list.push_back(&w);
//      unlock.
//  W2. w.wait() (or w.wait_until(deadline)).
//  W3. On timeout: lock; if (w.linked) list.remove(&w) -> timed out; else N already dequeued
//      it (and gave it the lock / value / permit), so the wake-up is consumed, not lost; unlock.
//      Decide on `linked`, never on notified(): a notifier wakes after it unlocks (N2), so a
//      dequeued Waiter can still read notified() == false, and removing it then would unlink
//      whatever list neighbours it had (the bug a channel test caught in an earlier version).
//  N1. lock; Waiter* w = list.pop_front() (clears w->linked); update the object's state for
//      that waiter (hand it the lock / the value / the permit); unlock (or not).
//  N2. w->notify(). After notify() the waiter may return at once and its Waiter dies: touch
//      nothing of it afterwards.
// A notify that reaches a waiter after it returned is harmless (the waker is type-stable and
// the wake-up is spurious), so N never needs the waiter to still exist after N2.
//
// Cancellation (los::task_delete of a waiting task, runtime/DESIGN.md section 14): the deleter
// only sets the task's cancel flag and unparks it. A wait that is a cancellation point uses
// Waiter::wait_cancellable, which returns `cancelled` when the woken fiber sees the flag; the
// waiter then does W3 exactly as on a timeout (still linked -> unlink itself; already popped ->
// absorb the notify with wait() and hand on what N gave it: the lock, the permit, the value),
// and throws with throw_task_deleted(). Nobody but the waiter ever unlinks its Waiter.
#pragma once

#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "upcall/detail/config.hpp"

namespace upcall::detail {

UPCALL_API void spin_backoff() noexcept;

// Throws los::TaskDeleted (declared here so that headers need not include task_api.hpp).
[[noreturn]] UPCALL_API void throw_task_deleted();

// Cancellation disabled for the calling fiber while a scope lives (nestable; nothing outside a
// fiber): its waits finish normally and a pending delete waits for the next cancellation point
// after the scope. For waits inside noexcept code: a condition variable's relock, a jthread's
// join from its destructor. Public form: los::NoCancelGuard.
UPCALL_API void nocancel_enter() noexcept;
UPCALL_API void nocancel_exit() noexcept;
class NoCancelScope {
 public:
  NoCancelScope() noexcept { nocancel_enter(); }
  ~NoCancelScope() { nocancel_exit(); }
  NoCancelScope(const NoCancelScope&) = delete;
  NoCancelScope& operator=(const NoCancelScope&) = delete;
};

// Outcome of a cancellable wait.
enum class WaitStatus : std::uint8_t { notified, timed_out, cancelled };

// A test-and-test-and-set lock for short critical sections (no allocation, no syscall and no
// suspension while held). A holder may still lose its CPU: to the kernel (preempted, or blocked
// in a fault, which a scheduler activation turns into a takeover), and then, if it is a fiber,
// the thread that comes back from the kernel hands it back at its next runtime entry and it
// waits in a run queue. So after a short spin a waiter calls spin_backoff(): a fiber yields to
// the ready fibers of its core (the holder may be one of them: on a 1-core runtime nothing else
// would ever run it), then the thread yields the CPU (the holder's thread may be preempted
// here).
class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned i = 0;; ++i) {
      // acquire: pairs with unlock's release; the protected state is visible.
      if (!locked_.load(std::memory_order_relaxed) &&
          !locked_.exchange(true, std::memory_order_acquire))
        return;
      if (i < 64)
        __builtin_ia32_pause();
      else
        spin_backoff();
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

// One waiting context (a fiber or a thread), on its own stack.
class UPCALL_API Waiter {
 public:
  Waiter() noexcept;  // captures the calling context's waker
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  // W2: suspends until notify() (spurious returns are absorbed here).
  void wait() noexcept;
  // W2 with a deadline: true when notified, false when the deadline passed first (then do W3).
  bool wait_until(std::chrono::steady_clock::time_point deadline) noexcept;
  // W2 at a cancellation point: as wait_until (time_point::max(): no deadline, no timer), and
  // also returns `cancelled` when the calling context is a fiber with a pending los delete it
  // may take now (not inside a NoCancelScope, not already unwinding), even if it was notified
  // meanwhile (then the caller must hand on what it was given). Plain threads and other fibers
  // see exactly wait / wait_until. The flag is read only once the wait has begun (a Waiter
  // already notified on entry returns at once; the objects' uncontended paths never get here)
  // and again after every park.
  WaitStatus wait_cancellable(
      std::chrono::steady_clock::time_point deadline =
          std::chrono::steady_clock::time_point::max()) noexcept;
  // N2.
  void notify() noexcept;
  bool notified() const noexcept { return notified_.load(std::memory_order_acquire); }

  // Guarded by the owning object's lock.
  Waiter* next = nullptr;
  Waiter* prev = nullptr;
  bool linked = false;     // on a WaitList (set by push_back, cleared by remove/pop_front)
  std::uintptr_t tag = 0;  // free for the object: e.g. reader/writer kind, a count
  void* data = nullptr;    // free for the object: e.g. a slot a value is handed over in

 private:
  std::uintptr_t waker_;
  // Set by the notifier after it unlinked this Waiter (release); read by the waiter (acquire).
  std::atomic<bool> notified_{false};
};

// Intrusive FIFO of Waiters. Not thread-safe: guarded by the owning object's lock.
class WaitList {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  Waiter* front() const noexcept { return head_; }
  void push_back(Waiter* n) noexcept {
    n->linked = true;
    n->next = nullptr;
    n->prev = tail_;
    if (tail_)
      tail_->next = n;
    else
      head_ = n;
    tail_ = n;
  }
  Waiter* pop_front() noexcept {
    Waiter* n = head_;
    if (n) remove(n);
    return n;
  }
  void remove(Waiter* n) noexcept {
    if (n->prev)
      n->prev->next = n->next;
    else
      head_ = n->next;
    if (n->next)
      n->next->prev = n->prev;
    else
      tail_ = n->prev;
    n->next = n->prev = nullptr;
    n->linked = false;
  }

 private:
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

}  // namespace upcall::detail
