// upcall/policy.hpp: the scheduling policy interface (the "customized scheduler"). A policy
// receives the same event vocabulary that the kernel side will emit (ghOSt's TASK_NEW,
// TASK_WAKEUP, TASK_YIELD, TASK_BLOCKED, TASK_DEAD) and chooses which ready task each core runs
// next. The built-in policy (per-core FIFO run queues with a LIFO slot, a global injection queue
// and work stealing) is used when Options::policy is null; it is compiled into the scheduler's
// fast path rather than called through this interface. This header owns only the interface.
#pragma once

#include <cstdint>
#include <string>

#include "upcall/detail/config.hpp"
#include "upcall/kernel_events.hpp"

namespace upcall {

// Why a task is handed to Policy::enqueue or reported to a notification.
enum class TaskEvent : std::uint8_t {
  task_new,      // spawned
  task_wakeup,   // was waiting (join, sleep, sync object) and became ready
  task_yield,    // gave up its core voluntarily, still ready
  task_blocked,  // started waiting
  task_dead,     // finished
};

// An opaque, non-owning reference to a task, valid from the event that hands it to the policy
// until the policy returns it from pick_next/steal (for ready tasks) or until the notification
// returns (blocked, dead).
class UPCALL_API TaskRef {
 public:
  TaskRef() = default;
  explicit TaskRef(void* p) : p_(p) {}
  explicit operator bool() const { return p_ != nullptr; }
  std::uint64_t id() const;
  int priority() const;      // higher runs first; default 0
  const char* name() const;  // "" when unnamed
  void* raw() const { return p_; }
  // Intrusive link a policy may use to chain ready tasks without allocating. Only the policy
  // touches it, between enqueue and the pick/steal that returns the task.
  TaskRef& link();
  bool operator==(const TaskRef& o) const { return p_ == o.p_; }

 private:
  void* p_ = nullptr;
};

// A scheduling policy. Contracts:
// - enqueue() may be called from any thread of the runtime, concurrently (core is where the
//   event happened, or -1 from a thread that is not a core); it must be thread-safe.
// - pick_next(core) is called only by the thread holding that core; it may be concurrent with
//   enqueue and steal. Returning an empty TaskRef means "nothing for this core".
// - steal(thief) is called by an idle core after pick_next came back empty.
// - None of them may block, allocate unboundedly, or call back into the runtime; they run
//   inside the scheduler with no fiber to suspend.
class UPCALL_API Policy {
 public:
  virtual ~Policy() = default;
  virtual const char* name() const = 0;
  virtual void init(int num_cores) { (void)num_cores; }
  virtual void enqueue(int core, TaskRef task, TaskEvent why) = 0;
  virtual TaskRef pick_next(int core) = 0;
  virtual TaskRef steal(int thief) {
    (void)thief;
    return {};
  }
  // Notifications only; the task is not ready.
  virtual void on_blocked(int core, TaskRef task) { (void)core, (void)task; }
  virtual void on_dead(int core, TaskRef task) { (void)core, (void)task; }
  // The kernel's messages about the runtime's threads (upcall/kernel_events.hpp), delivered
  // only if wants_kernel_events() returns true. Called on the process's single event consumer
  // thread, typically within a few milliseconds of the event, concurrently with everything
  // above; must not block or call back into the runtime.
  virtual bool wants_kernel_events() const { return false; }
  virtual void on_kernel_event(const KernelEvent& e) { (void)e; }
};

}  // namespace upcall
