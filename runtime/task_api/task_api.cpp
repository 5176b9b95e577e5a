// runtime/task_api/task_api.cpp: the LiteOS-style task operations of upcall/task_api.hpp
// (delete, suspend/resume, delay, yield, scheduler lock, priorities, ids, info). The monitor
// is in monitor.cpp. Protocol: runtime/DESIGN.md "Task API".
//
// Requests between tasks go through Fiber::los_flags (kLosSuspend, kLosCancel): the requester
// sets or clears a bit with an acq_rel RMW and then unparks the target (the permit protocol of
// DESIGN.md section 3 makes the wake-up impossible to lose); the target reads the flags
// (acquire) at its cancellation points and acts there itself: the explicit ones are in this
// file, the waits of the sync objects, channels, joins and sleeps notice the flag in
// Waiter::wait_cancellable / runtime/sync/cancel.hpp and leave their wait by themselves.
// Nothing here touches another task's owner-only fields or the wait object it waits on (a
// wait that is not a point only sees a spurious wake-up, which every park loop tolerates), so
// no Waiter is ever unlinked from outside.
#include <exception>
#include <thread>

#include "runtime/activations/region.hpp"
#include "runtime/sync/parker.hpp"
#include "runtime/task_api/task_ops.hpp"
#include "upcall/this_task.hpp"

namespace upcall {

namespace los {

namespace {
class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "upcall.los"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::invalid_id: return "not a task id of this runtime";
      case errc::no_such_task: return "the task has finished and its slot was freed";
      case errc::task_exited: return "the task has finished";
      case errc::already_suspended: return "the task is already suspended";
      case errc::not_suspended: return "the task is not suspended";
      case errc::locked: return "not allowed while the caller holds the task scheduler lock";
      case errc::deadlock:
        return "the call would block while the caller holds the task scheduler lock";
      case errc::not_locked: return "task_unlock without task_lock";
      case errc::not_in_task: return "needs a calling task (a fiber) or an explicit Runtime";
      case errc::invalid_priority: return "priority outside [kMinPriority, kMaxPriority]";
      case errc::not_supported: return "not available with a custom scheduling policy";
    }
    return "unknown upcall.los error";
  }
  std::error_condition default_error_condition(int c) const noexcept override {
    if (static_cast<errc>(c) == errc::deadlock) return std::errc::resource_deadlock_would_occur;
    if (static_cast<errc>(c) == errc::invalid_id || static_cast<errc>(c) == errc::no_such_task)
      return std::errc::no_such_process;
    return {c, *this};
  }
};
}  // namespace

const std::error_category& category() noexcept {
  static const Category c;
  return c;
}

// The public wait reasons mirror the runtime's (fiber.hpp) one to one.
static_assert(static_cast<int>(WaitReason::join) == static_cast<int>(rt::WaitReason::Join) &&
              static_cast<int>(WaitReason::sync) == static_cast<int>(rt::WaitReason::Sync) &&
              static_cast<int>(WaitReason::suspend) == static_cast<int>(rt::WaitReason::Suspend) &&
              static_cast<int>(WaitReason::delay) == static_cast<int>(rt::WaitReason::Delay));

const char* to_string(WaitReason w) noexcept {
  switch (w) {
    case WaitReason::none: return "none";
    case WaitReason::join: return "join";
    case WaitReason::sleep: return "sleep";
    case WaitReason::sync: return "sync";
    case WaitReason::io: return "io";
    case WaitReason::spare: return "spare";
    case WaitReason::suspend: return "suspend";
    case WaitReason::delay: return "delay";
  }
  return "?";
}

}  // namespace los

namespace rt {
namespace {

// The calling fiber on a held core (after a Region entry), or nullptr.
Fiber* self_fiber() noexcept { return current_fiber(); }

// The calling fiber, after a runtime entry (which hands a fiber whose thread lost its core to
// a takeover back first, so a fiber is always seen as one), or nullptr outside a task.
Fiber* enter_self() noexcept {
  Region region;
  return current_fiber();
}

// Throws TaskDeleted unless the fiber is already unwinding (a destructor that reaches a
// cancellation point during the unwinding must not throw again: that would terminate) or has
// cancellation disabled (los::NoCancelGuard); then the request stays for a later point.
void deliver_cancel(Fiber* f) {
  if (std::uncaught_exceptions() == 0 && f->los_nocancel == 0) throw los::TaskDeleted{};
}

// The caller (fiber f) parks while a suspension is requested. A cancellation point: a delete
// ends the wait and throws.
void suspend_wait(Fiber* f) {
  set_wait_reason(f, WaitReason::Suspend);
  std::uint32_t fl;
  // acquire: pairs with task_resume's / task_delete's release RMW on the flags. A delete ends
  // the suspension unless cancellation is disabled (then only a resume does).
  while (((fl = f->los_flags.load(std::memory_order_acquire)) & kLosSuspend) &&
         (!(fl & kLosCancel) || f->los_nocancel != 0))
    park_current();  // a resume or delete unparks us after changing the flags
  set_wait_reason(f, WaitReason::None);
  if (fl & kLosCancel) deliver_cancel(f);
}

// A cancellation point of the calling fiber f.
void checkpoint(Fiber* f) {
  const std::uint32_t fl = f->los_flags.load(std::memory_order_acquire);
  if (__builtin_expect(fl == 0, 1)) return;
  if (fl & kLosCancel) deliver_cancel(f);
  // A suspension waits until the scheduler lock is released (a locked task does not switch).
  if ((fl & kLosSuspend) && f->los_lock == 0) suspend_wait(f);
}

std::error_code do_delete(Runtime* r, los::TaskId id) {
  Fiber* self = nullptr;
  {
    Region region;
    RuntimeImpl* impl = los_runtime(r);
    Fiber* f = nullptr;
    if (auto ec = los_pin(impl, id, &f)) return ec;
    if (load_relaxed(f->state) == FiberState::Done) {
      impl->drop_ref(f);
      return los::errc::task_exited;
    }
    if (f != self_fiber()) {
      // release: the target's acquire at its cancellation point sees the request.
      f->los_flags.fetch_or(kLosCancel, std::memory_order_acq_rel);
      // Wakes it if it waits: a suspended, delayed or otherwise waiting task unwinds at once
      // (a wait that is not a point sees a spurious wake-up and waits on); the unpark leaves
      // a permit if it runs or is ready.
      unpark_fiber(f, false);
      impl->drop_ref(f);
      return {};
    }
    impl->drop_ref(f);  // not the last reference: the caller runs
    if (f->los_lock) return los::errc::locked;
    f->los_flags.fetch_or(kLosCancel, std::memory_order_relaxed);  // sticky (own flag)
    self = f;
  }
  // The caller itself, outside the region (throwing allocates).
  deliver_cancel(self);
  return {};  // already unwinding, or cancellation disabled: the request stays for later
}

std::error_code do_suspend(Runtime* r, los::TaskId id) {
  Fiber* f = nullptr;
  RuntimeImpl* impl = nullptr;
  {
    Region region;
    impl = los_runtime(r);
    if (auto ec = los_pin(impl, id, &f)) return ec;
    if (load_relaxed(f->state) == FiberState::Done) {
      impl->drop_ref(f);
      return los::errc::task_exited;
    }
    const bool self = f == self_fiber();
    if (self && f->los_lock) {
      impl->drop_ref(f);
      return los::errc::deadlock;
    }
    // acq_rel: release publishes the request to the target's acquire at its cancellation
    // point; acquire orders us after a racing resume.
    const std::uint32_t old = f->los_flags.fetch_or(kLosSuspend, std::memory_order_acq_rel);
    impl->drop_ref(f);
    if (!self) {
      if (old & kLosSuspend) return los::errc::already_suspended;
      return {};  // takes effect at the target's next cancellation point
    }
  }
  suspend_wait(f);  // the caller itself: parks now (outside the Region: it is a fiber wait)
  return {};
}

std::error_code do_resume(Runtime* r, los::TaskId id) {
  Region region;
  RuntimeImpl* impl = los_runtime(r);
  Fiber* f = nullptr;
  if (auto ec = los_pin(impl, id, &f)) return ec;
  if (load_relaxed(f->state) == FiberState::Done) {
    impl->drop_ref(f);
    return los::errc::task_exited;
  }
  // acq_rel: release pairs with suspend_wait's acquire load (it then leaves its loop).
  const std::uint32_t old = f->los_flags.fetch_and(~kLosSuspend, std::memory_order_acq_rel);
  if (old & kLosSuspend) unpark_fiber(f, false);  // after the clear: no lost wake-up
  impl->drop_ref(f);
  return (old & kLosSuspend) ? std::error_code{} : los::errc::not_suspended;
}

std::error_code do_pri_set(Runtime* r, los::TaskId id, int prio) {
  if (prio < los::kMinPriority || prio > los::kMaxPriority) return los::errc::invalid_priority;
  Region region;
  RuntimeImpl* impl = los_runtime(r);
  Fiber* f = nullptr;
  if (auto ec = los_pin(impl, id, &f)) return ec;
  std::error_code ec;
  if (load_relaxed(f->state) == FiberState::Done)
    ec = los::errc::task_exited;
  else
    store_relaxed(f->priority, prio);  // read at the task's next enqueue
  impl->drop_ref(f);
  return ec;
}

std::error_code do_pri_get(Runtime* r, los::TaskId id, int& prio) {
  Region region;
  RuntimeImpl* impl = los_runtime(r);
  Fiber* f = nullptr;
  if (auto ec = los_pin(impl, id, &f)) return ec;
  prio = load_relaxed(f->priority);
  impl->drop_ref(f);
  return {};
}

void fill_info(Fiber* f, los::TaskInfo& out) {
  out.id = los_id(f);
  out.fiber_id = load_relaxed(f->id);
  auto* src = reinterpret_cast<std::uint64_t*>(f->name);
  std::uint64_t words[4];
  for (int i = 0; i < 4; ++i)
    words[i] = std::atomic_ref<std::uint64_t>(src[i]).load(std::memory_order_relaxed);
  std::memcpy(out.name, words, sizeof out.name);
  out.name[sizeof out.name - 1] = 0;
  out.priority = load_relaxed(f->priority);
  // A wait reason stays set while its wait loop runs between parks: it counts only while the
  // task is actually waiting.
  const FiberState st = load_relaxed(f->state);
  const WaitReason w = st == FiberState::Waiting ? load_relaxed(f->wait_reason) : WaitReason::None;
  out.status = los_status(st, w, f->los_flags.load(std::memory_order_relaxed));
  out.wait = static_cast<los::WaitReason>(w);
  out.core = f->last_core.load(std::memory_order_relaxed);
  out.run_ns = static_cast<std::uint64_t>(
      static_cast<double>(f->run_cycles.load(std::memory_order_relaxed)) * los_ns_per_cycle());
}

std::error_code do_info(Runtime* r, los::TaskId id, los::TaskInfo& out) {
  Region region;
  RuntimeImpl* impl = los_runtime(r);
  Fiber* f = nullptr;
  if (auto ec = los_pin(impl, id, &f)) return ec;
  fill_info(f, out);
  impl->drop_ref(f);
  return {};
}

los::TaskId id_of_queued(Fiber* f) { return f ? los_id(f) : los::TaskId{}; }

}  // namespace

// Shared with monitor.cpp.
void los_fill_info(Fiber* f, los::TaskInfo& out) { fill_info(f, out); }

}  // namespace rt

namespace los {

using rt::Fiber;
using rt::Region;

namespace detail {
void start_gate() {
  Fiber* f = rt::current_fiber();
  if (f) rt::checkpoint(f);
}
TaskId id_of(upcall::detail::FiberHandle* h) noexcept { return rt::los_id(rt::from_handle(h)); }
void mark_suspended(upcall::detail::FiberHandle* h) noexcept {
  // Before fiber_start: nobody else sees the fiber yet.
  rt::from_handle(h)->los_flags.fetch_or(rt::kLosSuspend, std::memory_order_relaxed);
}
}  // namespace detail

std::error_code task_delete(TaskId id) { return rt::do_delete(nullptr, id); }
std::error_code task_delete(Runtime& r, TaskId id) { return rt::do_delete(&r, id); }
std::error_code task_suspend(TaskId id) { return rt::do_suspend(nullptr, id); }
std::error_code task_suspend(Runtime& r, TaskId id) { return rt::do_suspend(&r, id); }
std::error_code task_resume(TaskId id) { return rt::do_resume(nullptr, id); }
std::error_code task_resume(Runtime& r, TaskId id) { return rt::do_resume(&r, id); }

std::error_code task_yield() {
  Fiber* f = rt::enter_self();
  if (!f) return errc::not_in_task;
  if (f->los_lock) return errc::locked;
  rt::checkpoint(f);
  this_task::yield();  // the non-throwing switch of switch.cpp
  rt::checkpoint(rt::enter_self());
  return {};
}

std::error_code task_delay(std::chrono::nanoseconds d) {
  Fiber* f = rt::enter_self();
  if (!f) return errc::not_in_task;
  if (f->los_lock) return errc::deadlock;
  if (d.count() <= 0) return task_yield();
  rt::checkpoint(f);
  const std::int64_t deadline = rt::now_ns() + d.count();
  rt::set_wait_reason(f, rt::WaitReason::Delay);
  for (;;) {
    f = rt::enter_self();  // the fiber may have moved to another thread
    if ((f->los_flags.load(std::memory_order_acquire) & rt::kLosCancel) &&
        f->los_nocancel == 0) {
      // Unlink from the timer: a new generation makes the pending heap entry stale (owner's
      // own fields). The entry itself leaves the heap when its deadline passes.
      f->timer_gen.fetch_add(1, std::memory_order_relaxed);
      f->armed_deadline = 0;
      rt::set_wait_reason(f, rt::WaitReason::None);
      rt::deliver_cancel(f);
      return {};
    }
    if (rt::now_ns() >= deadline) break;
    rt::park_current_until(deadline);
  }
  rt::set_wait_reason(f, rt::WaitReason::None);
  rt::checkpoint(f);  // a suspension requested meanwhile takes effect now
  return {};
}

std::error_code test_cancel() {
  Fiber* f = rt::enter_self();
  if (!f) return errc::not_in_task;
  rt::checkpoint(f);
  return {};
}

std::error_code task_lock() {
  // Hold one region level for the whole lock: a kernel block inside is never taken over
  // (region.hpp), and the fiber's yields and parks do not switch (switch.cpp), so it neither
  // migrates nor lets another task of its core run. (region_enter first: it hands a fiber
  // whose thread lost its core back before we look at it.)
  rt::Core* c = rt::region_enter();
  Fiber* f = rt::current_fiber();
  if (!c || !f) {
    if (c) rt::region_exit();
    return errc::not_in_task;
  }
  if (f->los_lock++ != 0) rt::region_exit();  // nested: the outermost level holds the region
  return {};
}

std::error_code task_unlock() {
  Fiber* f = rt::current_fiber();
  if (!f || f->los_lock == 0) return errc::not_locked;
  if (--f->los_lock == 0) rt::region_exit();
  return {};
}

unsigned task_lock_depth() noexcept {
  Fiber* f = rt::current_fiber();
  return f ? f->los_lock : 0;
}

std::error_code task_pri_set(TaskId id, int p) { return rt::do_pri_set(nullptr, id, p); }
std::error_code task_pri_set(Runtime& r, TaskId id, int p) { return rt::do_pri_set(&r, id, p); }
std::error_code cur_task_pri_set(int p) {
  Fiber* f = rt::enter_self();
  if (!f) return errc::not_in_task;
  return rt::do_pri_set(nullptr, rt::los_id(f), p);
}
std::error_code task_pri_get(TaskId id, int& p) { return rt::do_pri_get(nullptr, id, p); }
std::error_code task_pri_get(Runtime& r, TaskId id, int& p) { return rt::do_pri_get(&r, id, p); }

TaskId cur_task_id() noexcept {
  Fiber* f = rt::enter_self();
  return f ? rt::los_id(f) : TaskId{};
}

std::error_code task_info_get(TaskId id, TaskInfo& out) { return rt::do_info(nullptr, id, out); }
std::error_code task_info_get(Runtime& r, TaskId id, TaskInfo& out) {
  return rt::do_info(&r, id, out);
}
namespace {
// One field of a task's info row: the status and name getters are do_info plus a projection.
template <class T, class Field>
std::error_code info_field(Runtime* r, TaskId id, T& out, Field field) {
  TaskInfo i;
  auto ec = rt::do_info(r, id, i);
  if (!ec) out = field(i);
  return ec;
}
constexpr auto kStatus = [](const TaskInfo& i) { return i.status; };
constexpr auto kName = [](const TaskInfo& i) { return std::string(i.name); };
}  // namespace

std::error_code task_status_get(TaskId id, std::uint32_t& s) {
  return info_field(nullptr, id, s, kStatus);
}
std::error_code task_status_get(Runtime& r, TaskId id, std::uint32_t& s) {
  return info_field(&r, id, s, kStatus);
}
std::error_code task_name_get(TaskId id, std::string& name) {
  return info_field(nullptr, id, name, kName);
}
std::error_code task_name_get(Runtime& r, TaskId id, std::string& name) {
  return info_field(&r, id, name, kName);
}

namespace {
// What core c would run next (next_local_prio's order): a fiber above the default priority,
// its LIFO slot, the head of its ring, then the rest of its priority queue. A hint.
TaskId next_on(rt::Core* c) {
  if (c->prio.top_priority() > 0) return rt::id_of_queued(c->prio.peek());
  if (Fiber* f = c->lifo.load(std::memory_order_acquire)) return rt::id_of_queued(f);
  if (Fiber* f = c->rq.peek_hint()) return rt::id_of_queued(f);
  return rt::id_of_queued(c->prio.peek());
}
}  // namespace

TaskId next_task_id() noexcept {
  Region region;
  rt::Core* c = region.core();
  if (!c || !rt::current_fiber() || c->rt->policy) return TaskId{};
  return next_on(c);
}

TaskId next_task_id(Runtime& r, int core) noexcept {
  rt::RuntimeImpl* impl = r.impl();
  if (core < 0 || static_cast<std::size_t>(core) >= impl->cores.size() || impl->policy)
    return TaskId{};
  return next_on(impl->cores[static_cast<std::size_t>(core)].get());
}

}  // namespace los
}  // namespace upcall
