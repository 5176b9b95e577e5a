// runtime/sync/wait.cpp: the out-of-line half of upcall/detail/wait.hpp: a Waiter parks and
// wakes through the permit protocol of runtime/sync/parker.hpp.
#include "upcall/detail/wait.hpp"

#include "runtime/core/runtime_impl.hpp"
#include "runtime/sync/cancel.hpp"
#include "runtime/sync/parker.hpp"
#include "runtime/sync/sync_util.hpp"
#include "upcall/task_api.hpp"
#include "upcall/this_task.hpp"

#include <sched.h>

namespace upcall::detail {

void spin_backoff() noexcept {
  rt::Activation* a = rt::current_activation();
  rt::Fiber* f = a ? a->current : nullptr;
  // Inside a runtime region a switch is not allowed (the region owns the core's state).
  if (f && f->region_depth == 0) this_task::yield();
  sched_yield();
}

bool spin_can_pay_off() noexcept {
  rt::Core* c = rt::current_core();
  if (!c || !rt::current_fiber()) return true;  // a plain thread (or inside blocking())
  if (c->rt->cores.size() == 1) return false;
  return c->rq.empty_hint() && c->lifo.load(std::memory_order_relaxed) == nullptr;
}

Waiter::Waiter() noexcept : waker_(rt::current_waker()) {}

void Waiter::wait() noexcept {
  if (notified_.load(std::memory_order_acquire)) return;
  // The wait reason is for monitors (los::task_monitor); the fiber object stays ours wherever
  // it resumes, so its owner-only field is written by its owner.
  rt::Fiber* f = rt::current_fiber();
  if (f) rt::set_wait_reason(f, rt::WaitReason::Sync);
  while (!notified_.load(std::memory_order_acquire)) rt::park_current();
  if (f) rt::set_wait_reason(f, rt::WaitReason::None);
}

bool Waiter::wait_until(std::chrono::steady_clock::time_point deadline) noexcept {
  // steady_clock is CLOCK_MONOTONIC on Linux, the clock of rt::now_ns().
  const std::int64_t d =
      std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  rt::Fiber* f = rt::current_fiber();
  if (f) rt::set_wait_reason(f, rt::WaitReason::Sync);
  bool r;
  for (;;) {
    if (notified_.load(std::memory_order_acquire)) {
      r = true;
      break;
    }
    if (rt::now_ns() >= d) {
      r = notified_.load(std::memory_order_acquire);
      break;
    }
    rt::park_current_until(d);
  }
  if (f) rt::set_wait_reason(f, rt::WaitReason::None);
  return r;
}

WaitStatus Waiter::wait_cancellable(std::chrono::steady_clock::time_point deadline) noexcept {
  if (notified_.load(std::memory_order_acquire)) return WaitStatus::notified;
  // The waiting fiber is the one this Waiter wakes (captured at construction); a plain thread,
  // or a fiber inside upcall::blocking, waits on a thread parker and is never cancelled here.
  rt::Fiber* f = (waker_ & 1u) ? nullptr : reinterpret_cast<rt::Fiber*>(waker_);
  const bool forever = deadline == std::chrono::steady_clock::time_point::max();
  const std::int64_t d =
      forever ? 0
              : std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch())
                    .count();
  if (f) rt::set_wait_reason(f, rt::WaitReason::Sync);
  WaitStatus r;
  for (;;) {
    // The delete first, then the notify: a task with a pending delete does not come back from
    // a wait that is a point, even if it was served in the same instant (the caller hands the
    // grant on). Checked before the first park too: a delete that came while we ran left only
    // a permit, which an earlier park may already have consumed.
    if (f && rt::cancel_deliverable(f)) {
      if (!forever) rt::cancel_forget_timer(f);
      r = WaitStatus::cancelled;
      break;
    }
    if (notified_.load(std::memory_order_acquire)) {
      r = WaitStatus::notified;
      break;
    }
    if (forever) {
      rt::park_current();
    } else {
      if (rt::now_ns() >= d) {
        r = notified_.load(std::memory_order_acquire) ? WaitStatus::notified
                                                      : WaitStatus::timed_out;
        break;
      }
      rt::park_current_until(d);
    }
  }
  if (f) rt::set_wait_reason(f, rt::WaitReason::None);
  return r;
}

void throw_task_deleted() { throw los::TaskDeleted{}; }

namespace {
// The fiber the calling thread runs (also inside upcall::blocking), or nullptr.
rt::Fiber* running_fiber_any() noexcept {
  rt::Activation* a = rt::current_activation();
  return a ? a->current : nullptr;
}
}  // namespace

void nocancel_enter() noexcept {
  if (rt::Fiber* f = running_fiber_any()) ++f->los_nocancel;
}
void nocancel_exit() noexcept {
  if (rt::Fiber* f = running_fiber_any()) --f->los_nocancel;
}

void Waiter::notify() noexcept {
  const std::uintptr_t w = waker_;  // copied first: the Waiter may die once notified_ is set
  notified_.store(true, std::memory_order_release);
  rt::unpark_waker(w);
}

}  // namespace upcall::detail
