// runtime/sync/wait.cpp: the out-of-line half of upcall/detail/wait.hpp: a Waiter parks and
// wakes through the permit protocol of runtime/sync/parker.hpp.
#include "upcall/detail/wait.hpp"

#include "runtime/core/runtime_impl.hpp"
#include "runtime/sync/parker.hpp"
#include "runtime/sync/sync_util.hpp"
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

void Waiter::notify() noexcept {
  const std::uintptr_t w = waker_;  // copied first: the Waiter may die once notified_ is set
  notified_.store(true, std::memory_order_release);
  rt::unpark_waker(w);
}

}  // namespace upcall::detail
