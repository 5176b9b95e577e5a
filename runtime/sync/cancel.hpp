// runtime/sync/cancel.hpp: how a waiting fiber notices a los::task_delete aimed at it (the
// cancellation points of the waits, runtime/DESIGN.md section 14). Owns no state: it reads the
// fiber's request flags (written by deleters) and its own cancellation-disable depth. Private to
// the library.
#pragma once

#include <atomic>
#include <exception>

#include "runtime/core/fiber.hpp"

namespace upcall::rt {

// True when fiber f, which must be the caller, has a delete pending that it may take now: the
// cancel flag is set (acquire: pairs with task_delete's release RMW, which precedes its unpark),
// cancellation is not disabled (los_nocancel, owner-only) and f is not already unwinding (a
// second exception would terminate). Called only on wait paths, after the wait has begun.
inline bool cancel_deliverable(Fiber* f) noexcept {
  return (f->los_flags.load(std::memory_order_acquire) & kLosCancel) && f->los_nocancel == 0 &&
         std::uncaught_exceptions() == 0;
}

// Before a fiber leaves a timed wait by throwing: a new timer generation makes its pending heap
// entry stale, so it never fires into a later wait or the slot's next life (the entry leaves
// the heap at its deadline). Owner-only fields.
inline void cancel_forget_timer(Fiber* f) noexcept {
  f->timer_gen.fetch_add(1, std::memory_order_relaxed);
  f->armed_deadline = 0;
}

}  // namespace upcall::rt
