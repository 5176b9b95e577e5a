// upcall/task_api.hpp: a LiteOS-style task API (Huawei LiteOS task management: LOS_TaskCreate,
// LOS_TaskDelete, LOS_TaskSuspend, ...) over upcall fibers, in namespace upcall::los. Every
// fiber of a runtime is a task here, whether it was made by los::create or upcall::spawn.
// Operations return a std::error_code (los::errc) instead of crashing on bad or stale ids;
// task ids carry a generation, so an id of a finished task never names a reused slot.
//
// Semantics in one place (README "LiteOS-style task API", runtime/DESIGN.md "Task API"):
// - Cancellation points: task_delay, task_yield, task_suspend of the caller, task_delete of the
//   caller, test_cancel, the start of a task made by los::create / create_only, and every wait
//   that can throw: this_task::sleep_* (and this_thread::sleep_*), JoinHandle::join and
//   thread::join, the mutexes' lock / try_lock_for / _until (all kinds, shared too), the
//   condition variables' waits (the lock is re-acquired before TaskDeleted leaves them),
//   counting_semaphore::acquire / try_acquire_for / _until, latch::wait / arrive_and_wait,
//   barrier::wait / arrive_and_wait, future / shared_future wait, wait_for, wait_until and get,
//   Channel send / recv (and their timed forms, iteration) and select, WaitGroup::wait. Those
//   waits are points only when they actually wait (an uncontended lock, a ready future, ... do
//   not look at the request). A deleted task throws los::TaskDeleted there (not derived from
//   std::exception); the exception unwinds the task (destructors run), the task ends, its stack
//   returns to the pool and a joiner's join() rethrows TaskDeleted. A catch (...) that swallows
//   it is the user's responsibility: the request stays, and the next point throws again.
//   A waiter that a notifier served in the same instant hands on what it got (the mutex to the
//   next waiter, the permit, a received value back to the channel) before it throws; a channel
//   send whose value was already taken counts as delivered and still throws (so does a select
//   whose send case or closed-channel case completed). Only a received value with nowhere to go
//   back to (a rendezvous channel, a full buffer, a select's receive case) is returned
//   normally, and the delete takes effect at the next point.
//   Never a point: this_task::yield / this_thread::yield (noexcept), destructors (a jthread's
//   join, a future's wait for its async fiber), call_once, and any wait while the task is
//   already unwinding (std::uncaught_exceptions() > 0) or inside a NoCancelGuard. A wait in a
//   destructor of your own that may run while a delete is pending (outside an unwinding) needs
//   a NoCancelGuard: a throw from a destructor terminates.
// - Suspending another task takes effect at its next cancellation point (it parks there until
//   resumed); a task suspended while it waits finishes the wait first.
// - Scheduler lock (task_lock): the caller does not switch, migrate or get taken over (its
//   core holds the runtime-region bit: a kernel block inside is not taken over). Inside it
//   task_yield returns errc::locked at once, task_delay and the caller's task_suspend return
//   errc::deadlock (EDEADLK), this_task::yield returns at once, this_task::sleep_* and
//   JoinHandle::join throw std::system_error(EDEADLK); a wait on a sync object (which cannot
//   fail) waits without switching, holding the core (announced once on stderr); a delete
//   still ends such a wait (TaskDeleted, as outside the lock).
// - Priorities: higher runs first (SpawnOptions::priority's convention, not LiteOS's
//   0-is-highest), in [kMinPriority, kMaxPriority], default 0.
// Ids are per runtime: the overloads without a Runtime& act on the calling fiber's runtime and
// return errc::not_in_task from a plain thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "upcall/detail/wait.hpp"
#include "upcall/task.hpp"

namespace upcall {
class Runtime;

namespace los {

// Error results (LiteOS's LOS_ERRNO_TSK_*, as a std::error_code of los::category()).
enum class errc : int {
  invalid_id = 1,     // the id was never a task id (0, or a slot this runtime never had)
  no_such_task,       // the task has finished and its slot was freed (possibly reused since)
  task_exited,        // the task has finished (its JoinHandle still holds it)
  already_suspended,  // task_suspend of a suspended task
  not_suspended,      // task_resume of a task that is not suspended
  locked,             // not allowed while the caller holds the scheduler lock (yield, delete self)
  deadlock,           // would block while the caller holds the scheduler lock (EDEADLK)
  not_locked,         // task_unlock without task_lock
  not_in_task,        // needs a calling task (a fiber on a core), or a Runtime&
  invalid_priority,   // outside [kMinPriority, kMaxPriority]
  not_supported,      // not available with a custom Options::policy
};
UPCALL_API const std::error_category& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

// Thrown at a cancellation point of a deleted task. Deliberately not a std::exception, so that
// catch (const std::exception&) does not stop it.
class TaskDeleted final {
 public:
  const char* what() const noexcept { return "upcall::los::TaskDeleted: the task was deleted"; }
};

inline constexpr int kMinPriority = -1024;
inline constexpr int kMaxPriority = 1024;
inline constexpr int kDefaultPriority = 0;

// A task id: slot index + 1 in the high 32 bits, the slot's generation in the low 32 bits.
// 0 is never a task. (The generation wraps after 2^32 reuses of one slot.)
class TaskId {
 public:
  constexpr TaskId() = default;
  constexpr explicit TaskId(std::uint64_t v) : v_(v) {}
  constexpr std::uint64_t value() const { return v_; }
  constexpr explicit operator bool() const { return v_ != 0; }
  friend constexpr bool operator==(TaskId a, TaskId b) { return a.v_ == b.v_; }
  friend constexpr bool operator!=(TaskId a, TaskId b) { return a.v_ != b.v_; }

 private:
  std::uint64_t v_ = 0;
};

// Status bits, as LiteOS's OS_TASK_STATUS_*. Blocked = suspend | pend | delay.
namespace status {
inline constexpr std::uint32_t init = 0x0001;     // created, not yet started by the runtime
inline constexpr std::uint32_t ready = 0x0002;    // on a run queue
inline constexpr std::uint32_t running = 0x0004;  // a kernel thread runs it
inline constexpr std::uint32_t suspend = 0x0008;  // suspended (or a suspend is pending)
inline constexpr std::uint32_t pend = 0x0010;     // waits on a join, sync object or I/O
inline constexpr std::uint32_t delay = 0x0020;    // task_delay or this_task::sleep
inline constexpr std::uint32_t exit = 0x0100;     // finished
inline constexpr std::uint32_t deleted = 0x1000;  // upcall: a delete is pending
}  // namespace status

// Why a task waits (the runtime's wait reason).
enum class WaitReason : std::uint8_t { none, join, sleep, sync, io, spare, suspend, delay };
UPCALL_API const char* to_string(WaitReason w) noexcept;

struct TaskParams {
  const char* name = nullptr;  // <= 31 bytes are kept
  int priority = kDefaultPriority;
};

// LOS_TaskInfoGet / one row of the monitor.
struct TaskInfo {
  TaskId id;
  std::uint64_t fiber_id = 0;  // this_task::id() of the task
  char name[32] = {0};
  int priority = 0;
  std::uint32_t status = 0;  // status:: bits
  WaitReason wait = WaitReason::none;
  int core = -1;             // the core that last ran it (-1: never ran)
  std::uint64_t run_ns = 0;  // time run while accounting was on (set_run_time_accounting)
};

// What create / create_only return: the id, and a JoinHandle (drop it to detach the task).
template <class R>
struct Task {
  TaskId id;
  JoinHandle<R> handle;
};

namespace detail {
UPCALL_API void start_gate();  // the cancellation point at a created task's start
UPCALL_API TaskId id_of(upcall::detail::FiberHandle* f) noexcept;
UPCALL_API void mark_suspended(upcall::detail::FiberHandle* f) noexcept;

template <class F>
auto create_on(Runtime* rt, F&& f, const TaskParams& p, bool suspended) {
  using Fn = std::decay_t<F>;
  using R = std::invoke_result_t<Fn&>;
  auto gated = [fn = Fn(std::forward<F>(f))]() mutable -> R {
    start_gate();
    return fn();
  };
  using G = decltype(gated);
  using S = upcall::detail::TaskStorage<G, R>;
  upcall::detail::SpawnSpec spec;
  spec.size = sizeof(S);
  spec.align = alignof(S);
  spec.vtable = &S::vtable;
  spec.name = p.name;
  if (p.priority < kMinPriority || p.priority > kMaxPriority)
    throw std::system_error(make_error_code(errc::invalid_priority),
                            "upcall::los::create: priority outside [kMinPriority, kMaxPriority]");
  spec.priority = p.priority;
  upcall::detail::RawTask raw = upcall::detail::fiber_create(rt, spec);
  S* s;
  try {
    s = ::new (raw.storage) S(std::move(gated));
  } catch (...) {
    upcall::detail::fiber_abandon(raw.fiber);
    throw;
  }
  if (suspended) mark_suspended(raw.fiber);  // before it can run: it parks in start_gate
  const TaskId id = id_of(raw.fiber);
  upcall::detail::fiber_start(raw.fiber);
  return Task<R>{id, JoinHandle<R>(raw.fiber, static_cast<upcall::detail::ResultSlot<R>*>(s))};
}
}  // namespace detail

// LOS_TaskCreate: starts f() as a ready task. From a fiber (the fiber's runtime) or with an
// explicit runtime from any thread. Throws as upcall::spawn does (exhaustion, no runtime), and
// std::system_error(errc::invalid_priority) for a priority out of range.
template <class F>
auto create(F&& f, const TaskParams& p = {}) {
  return detail::create_on(nullptr, std::forward<F>(f), p, false);
}
template <class F>
auto create(Runtime& rt, F&& f, const TaskParams& p = {}) {
  return detail::create_on(&rt, std::forward<F>(f), p, false);
}
// LOS_TaskCreateOnly: as create, but the task starts suspended: f() runs after task_resume.
template <class F>
auto create_only(F&& f, const TaskParams& p = {}) {
  return detail::create_on(nullptr, std::forward<F>(f), p, true);
}
template <class F>
auto create_only(Runtime& rt, F&& f, const TaskParams& p = {}) {
  return detail::create_on(&rt, std::forward<F>(f), p, true);
}

// LOS_TaskDelete. Another task: the delete is recorded and the task woken if it waits; it
// unwinds at its next cancellation point. The caller itself: throws TaskDeleted at once
// (errc::locked inside the scheduler lock). Does not wait for the task to finish.
UPCALL_API std::error_code task_delete(TaskId id);
UPCALL_API std::error_code task_delete(Runtime& rt, TaskId id);
// LOS_TaskSuspend. The caller itself: parks until resumed (a cancellation point; errc::deadlock
// inside the scheduler lock). Another task: takes effect at its next cancellation point.
UPCALL_API std::error_code task_suspend(TaskId id);
UPCALL_API std::error_code task_suspend(Runtime& rt, TaskId id);
// LOS_TaskResume: clears the suspension and wakes the task (or lets a create_only task start).
UPCALL_API std::error_code task_resume(TaskId id);
UPCALL_API std::error_code task_resume(Runtime& rt, TaskId id);
// LOS_TaskDelay: suspends the calling task for d (d <= 0: task_yield). A cancellation point.
UPCALL_API std::error_code task_delay(std::chrono::nanoseconds d);
// LOS_TaskYield: moves the caller behind the ready tasks of its core (of its priority and
// above). A cancellation point. errc::locked inside the scheduler lock (returns at once).
UPCALL_API std::error_code task_yield();
// An explicit cancellation point: throws TaskDeleted if the caller was deleted, parks if it
// was suspended (outside the scheduler lock). errc::not_in_task outside a task.
UPCALL_API std::error_code test_cancel();
// LOS_TaskLock / LOS_TaskUnlock: nestable; per task.
UPCALL_API std::error_code task_lock();
UPCALL_API std::error_code task_unlock();
class TaskLockGuard {
 public:
  TaskLockGuard() : ec_(task_lock()) {}
  ~TaskLockGuard() {
    if (!ec_) (void)task_unlock();
  }
  TaskLockGuard(const TaskLockGuard&) = delete;
  TaskLockGuard& operator=(const TaskLockGuard&) = delete;
  std::error_code error() const { return ec_; }

 private:
  std::error_code ec_;
};
// pthread_setcancelstate(PTHREAD_CANCEL_DISABLE) as a scope: while one lives in the calling
// task (nestable), no cancellation point throws (waits finish normally; a suspended task waits
// for its resume) and a delete stays pending until the next point after the last guard. For
// waits inside noexcept code (destructors) that may run while a delete is pending. No effect
// outside a task. Construct and destroy it in the same task.
class NoCancelGuard {
 public:
  NoCancelGuard() noexcept { upcall::detail::nocancel_enter(); }
  ~NoCancelGuard() { upcall::detail::nocancel_exit(); }
  NoCancelGuard(const NoCancelGuard&) = delete;
  NoCancelGuard& operator=(const NoCancelGuard&) = delete;
};

// Scheduler lock depth of the caller (0 outside a task).
UPCALL_API unsigned task_lock_depth() noexcept;

// LOS_TaskPriSet / LOS_CurTaskPriSet / LOS_TaskPriGet.
UPCALL_API std::error_code task_pri_set(TaskId id, int priority);
UPCALL_API std::error_code task_pri_set(Runtime& rt, TaskId id, int priority);
UPCALL_API std::error_code cur_task_pri_set(int priority);
UPCALL_API std::error_code task_pri_get(TaskId id, int& priority);
UPCALL_API std::error_code task_pri_get(Runtime& rt, TaskId id, int& priority);

// LOS_CurTaskIDGet: the calling task's id; TaskId{} outside a task.
UPCALL_API TaskId cur_task_id() noexcept;
// LOS_TaskInfoGet / LOS_TaskStatusGet / LOS_TaskNameGet.
UPCALL_API std::error_code task_info_get(TaskId id, TaskInfo& out);
UPCALL_API std::error_code task_info_get(Runtime& rt, TaskId id, TaskInfo& out);
UPCALL_API std::error_code task_status_get(TaskId id, std::uint32_t& status);
UPCALL_API std::error_code task_status_get(Runtime& rt, TaskId id, std::uint32_t& status);
UPCALL_API std::error_code task_name_get(TaskId id, std::string& name);
UPCALL_API std::error_code task_name_get(Runtime& rt, TaskId id, std::string& name);
// LOS_NextTaskIDGet: the task the caller's core would run next (a hint: it may be stolen or
// change before it runs); TaskId{} when none is ready there or outside a task.
UPCALL_API TaskId next_task_id() noexcept;
UPCALL_API TaskId next_task_id(Runtime& rt, int core) noexcept;

// LOS_TaskInfoMonitor: a snapshot of every task of the runtime (each row consistent, the rows
// taken one after another). The second form writes up to `cap` rows without allocating and
// returns how many tasks it saw (which may exceed cap).
UPCALL_API std::vector<TaskInfo> task_monitor(Runtime& rt);
UPCALL_API std::size_t task_monitor(Runtime& rt, TaskInfo* out, std::size_t cap);
// Per-task run time (TaskInfo::run_ns): a timestamp counter read at every switch while on
// (off by default; DESIGN.md "Task API" gives its measured cost).
UPCALL_API void set_run_time_accounting(Runtime& rt, bool on);

}  // namespace los
}  // namespace upcall

template <>
struct std::is_error_code_enum<upcall::los::errc> : std::true_type {};
