// runtime/core/switch.cpp: every context switch of the runtime, and the operations that are
// nothing but a switch with a post-action: yield, park, fiber exit, the start of a fiber.
//
// The switch protocol (a fiber's context is only ever published after it was saved):
//  1. The switching context fills its activation's SwitchRecord {from, action}, announces the
//     switch to the sanitizers and calls jump_context(target, &record).
//  2. The resumed context (a fiber, or the activation's loop) calls finish_switch(transfer)
//     first: it stores transfer.fctx, the suspended context, into `from` (or the loop slot).
//  3. Only then does it run `action` for `from`: requeue it (yield), commit its park, drop its
//     reference (exit), or reinject it (blocking return). So no other thread can resume `from`
//     before its context is complete.
// The record lives in the activation of the thread that jumped; the resumed side runs on that
// same thread, so it reads the record without any synchronisation.
#include <sched.h>

#include <cstring>

#include "runtime/activations/region.hpp"
#include "runtime/core/check.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "runtime/core/signals.hpp"
#include "runtime/sync/parker.hpp"
#include "upcall/this_task.hpp"

namespace upcall::rt {

namespace {

__attribute__((noinline)) void run_post_action(SwitchRecord& sw) {
  Fiber* from = sw.from;
  const PostAction act = sw.action;
  sw.action = PostAction::none;
  switch (act) {
    case PostAction::none:
      return;
    case PostAction::requeue:
      set_state(from, FiberState::Ready);
      if (__builtin_expect(from->rt->policy == nullptr, 1))
        from->rt->push_local(sw.self->core, from);  // yield: behind the core's ready fibers
      else
        from->rt->make_ready(from, TaskEvent::task_yield, sw.self->core);
      return;
    case PostAction::commit_park: {
      // The policy hears TASK_BLOCKED before the park is committed: once it is, an unparker on
      // another core may enqueue TASK_WAKEUP at once, and the per-task order must hold.
      if (from->rt->policy) from->rt->policy->on_blocked(sw.self->core->index, TaskRef(from));
      std::uint32_t expected = kParkRunning;
      // acq_rel: release publishes the saved context to the unparker that will see Parked
      // (its CAS Parked -> Running acquires); acquire pairs with a permit's release.
      if (from->park_state.compare_exchange_strong(expected, kParkParked,
                                                   std::memory_order_acq_rel))
        return;
      // A permit arrived between the decision to park and now: consume it and stay ready.
      UPCALL_DCHECK(expected == kParkNotified, "commit_park: unexpected park state");
      from->park_state.store(kParkRunning, std::memory_order_relaxed);
      set_state(from, FiberState::Ready);
      from->rt->make_ready(from, TaskEvent::task_wakeup, sw.self->core);
      return;
    }
    case PostAction::release:
      from->rt->drop_ref(from);
      return;
    case PostAction::reinject:
      set_state(from, FiberState::Ready);
      from->rt->make_ready(from, TaskEvent::task_wakeup, nullptr);
      from->rt->blocking_inflight.fetch_sub(1, std::memory_order_release);
      return;
  }
}

inline void finish_switch(Transfer t) {
  auto* sw = static_cast<SwitchRecord*>(t.data);
  if (sw->from)
    sw->from->ctx = t.fctx;
  else
    sw->self->loop_ctx = t.fctx;
  // The yield fast path inline; everything else out of line.
  if (sw->action == PostAction::requeue && sw->self->core->fast_policy) {
    sw->action = PostAction::none;
    set_state(sw->from, FiberState::Ready);
    sw->self->core->rt->push_local(sw->self->core, sw->from);
    return;
  }
  if (sw->action != PostAction::none) run_post_action(*sw);
}

// Charges `from` the cycles since it was switched in and stamps `to`. Owner-only fields
// (the thread switching both); run_cycles is read by the monitor (relaxed).
__attribute__((noinline)) void account_switch(Fiber* from, Fiber* to) {
  const std::uint64_t now = __builtin_ia32_rdtsc();
  if (from && from->in_tsc && now > from->in_tsc)
    from->run_cycles.store(from->run_cycles.load(std::memory_order_relaxed) + (now - from->in_tsc),
                           std::memory_order_relaxed);
  if (to) to->in_tsc = now;
}

// Switches from the running context of `a` (fiber `from`, or the loop when from == nullptr) to
// fiber `to` (or the loop when to == nullptr). Returns when `from` is resumed, possibly on
// another thread.
inline void switch_context(Activation* a, Fiber* from, Fiber* to, PostAction act) {
  a->sw.self = a;
  a->sw.from = from;
  a->sw.action = act;
  a->current = to;
  SanitizerIdentity& from_san = from ? from->san : a->loop_san;
  SanitizerIdentity& to_san = to ? to->san : a->loop_san;
  RawContext target = to ? to->ctx : a->loop_ctx;
  if (to) {
    set_state(to, FiberState::Running);
    to->last_core.store(a->core->index, std::memory_order_relaxed);
    bump(a->core->counters.switches);
  }
  // Run-time accounting for the task monitor, only while enabled (DESIGN.md "Task API").
  if (__builtin_expect(a->core->account_run_time.load(std::memory_order_relaxed), 0))
    account_switch(from, to);
  eh_swap(a->eh, from ? from->eh : a->loop_eh, to ? to->eh : a->loop_eh);
  sanitizer_before_switch(from_san, to_san, act == PostAction::release);
  // Safety: `target` was saved by finish_switch (or made by make_context) and was taken from a
  // run queue / the loop slot by this thread alone, so nobody else resumes it.
  Transfer t = jump_context(target, &a->sw);
  // Resumed. `from` may now run on another thread: re-read the activation through the record.
  sanitizer_after_switch(from_san);
  finish_switch(t);
}

[[noreturn]] void fiber_entry_finish(Fiber* self);

void fiber_entry(Transfer t) {
  auto* sw = static_cast<SwitchRecord*>(t.data);
  Fiber* self = sw->self->current;
  sanitizer_after_switch(self->san);
  finish_switch(t);
  region_clear_for_user();  // the switcher was in a region; user code runs outside one
  self->vtable->run(self->storage);
  fiber_entry_finish(self);
}

// Gives the core of `a` to the next ready fiber, or to the loop.
void switch_away(Activation* a, Fiber* self, PostAction act) {
  Fiber* next = a->core->rt->next_local(a->core);
  switch_context(a, self, next, act);
}

[[noreturn]] void fiber_entry_finish(Fiber* self) {
  // Enter the runtime for good (a returning thread hands the fiber back first, so the exit
  // below runs on a thread that holds a core).
  region_enter();
  set_state(self, FiberState::Done);
  RuntimeImpl* rt = self->rt;
  Activation* a = current_activation();
  UPCALL_CHECK(a && a->current == self, "fiber exit off its thread");
  bump(a->core->counters.finished);  // before the join word's release: a joiner sees it
  // acq_rel: release publishes the result to the joiner (which acquires join_word == 1);
  // acquire pairs with the joiner's registration CAS so its waker is complete.
  const std::uintptr_t joiner = self->join_word.exchange(1, std::memory_order_acq_rel);
  if (joiner > 1) unpark_waker(joiner);
  if (rt->policy) rt->policy->on_dead(a->core->index, TaskRef(self));
  switch_away(a, self, PostAction::release);
  __builtin_unreachable();
}

}  // namespace

RawContext make_fiber_context(Fiber* /*f*/, void* sp, std::size_t size) {
  return make_context(sp, size, &fiber_entry);
}

void run_fiber_from_loop(Activation* a, Fiber* f) { switch_context(a, nullptr, f, PostAction::none); }

void enter_fiber_thread(Activation* a) {
  sanitizer_identity_of_thread(a->loop_san);
  a->eh = thread_eh_globals();
}

inline void yield_current() {
  Region region;
  Core* c = region.core();
  Activation* a = current_activation();
  Fiber* self = a ? a->current : nullptr;
  if (!c || !self) {
    sched_yield();
    return;
  }
  if (__builtin_expect(self->los_lock != 0, 0)) return;  // task scheduler lock: no switch
  // Priorities (the caller's, or queued on this core): keep running when nothing of at least
  // the caller's priority is ready here. One load of a hot field on the default path.
  if (__builtin_expect((load_relaxed(self->priority) != 0) | !c->fast_policy, 0) &&
      !c->rt->yield_should_switch(c, self))
    return;
  Fiber* next = c->rt->next_local(c);
  if (!next) {
    // Nothing else ready here: keep running, unless the core left the budget (runtime/cores):
    // then to the loop, which moves this fiber to the other cores.
    if (__builtin_expect(!c->enabled.load(std::memory_order_relaxed), 0))
      switch_context(a, self, nullptr, PostAction::requeue);
    return;
  }
  switch_context(a, self, next, PostAction::requeue);
}

void park_locked(Fiber* self, std::int64_t deadline_ns) {
  // A wait inside the task scheduler lock (los::task_lock) must not switch: the fiber waits
  // for its permit on its kernel thread, holding its core (other cores keep running). The task
  // API's own waits return EDEADLK instead; this is for the waits that cannot fail (sync
  // objects). A deadlock if the waker needs this core: announced once.
  announce_once("los-lock-wait",
                "upcall: a fiber waited on a sync object while holding the task scheduler lock "
                "(los::task_lock); it waits without switching and keeps its core until woken");
  for (unsigned i = 0;; ++i) {
    std::uint32_t s = kParkNotified;
    // acquire: pairs with the unparker's release.
    if (self->park_state.load(std::memory_order_relaxed) == kParkNotified &&
        self->park_state.compare_exchange_strong(s, kParkRunning, std::memory_order_acquire))
      return;
    if (deadline_ns != INT64_MAX && now_ns() >= deadline_ns) return;
    if (i < 64)
      __builtin_ia32_pause();
    else
      sched_yield();
  }
}

void park_current_fiber(Activation* a, Fiber* self) {
  std::uint32_t s = kParkNotified;
  // Fast path: a permit is already there. acquire pairs with the unparker's release. The plain
  // load first keeps the common no-permit case free of a locked instruction.
  if (self->park_state.load(std::memory_order_relaxed) == kParkNotified &&
      self->park_state.compare_exchange_strong(s, kParkRunning, std::memory_order_acquire))
    return;
  set_state(self, FiberState::Waiting);
  switch_away(a, self, PostAction::commit_park);
}

void unpark_fiber(Fiber* f, bool lifo) {
  std::uint32_t s = f->park_state.load(std::memory_order_relaxed);
  for (;;) {
    if (s == kParkParked) {
      // acquire pairs with commit_park's release: f's context is saved and complete.
      if (f->park_state.compare_exchange_weak(s, kParkRunning, std::memory_order_acquire)) {
        set_state(f, FiberState::Ready);
        // The waker's core only if it belongs to f's runtime (a fiber may unpark a fiber of
        // another runtime, e.g. when joining across runtimes).
        Core* here = current_core();
        f->rt->make_ready(f, TaskEvent::task_wakeup, here && here->rt == f->rt ? here : nullptr,
                          lifo);
        return;
      }
    } else if (s == kParkRunning) {
      // Leave a permit; the parker's commit (or its fast path) consumes it.
      if (f->park_state.compare_exchange_weak(s, kParkNotified, std::memory_order_release))
        return;
    } else {
      // Already notified: still a release RMW, so the writes this waker made before unparking
      // are visible to the parker that consumes the permit (a plain load here lost a wake-up:
      // the parker read the waker's flag before the waker's store left its store buffer).
      if (f->park_state.compare_exchange_weak(s, kParkNotified, std::memory_order_release))
        return;
    }
  }
}

void blocking_return(Activation* a, Fiber* self) {
  // The thread holds no core: switch to its own loop, which will park it as a spare; the
  // post-action (run there, after the context is saved) hands the fiber to a core.
  switch_context(a, self, nullptr, PostAction::reinject);
}

}  // namespace upcall::rt

namespace upcall::this_task {
void yield() { rt::yield_current(); }
}  // namespace upcall::this_task
