// upcall/kernel_events.hpp: the kernel's messages about a runtime's threads, in ghOSt's
// vocabulary (TASK_NEW, TASK_BLOCKED, TASK_WAKEUP, TASK_PREEMPT, TASK_ON_CPU, TASK_DEAD), as the
// eBPF programs of kernel-glue/ emit them into a ring buffer. A runtime consumes the stream
// when Options::kernel_events is set or its Policy asks for it (Policy::wants_kernel_events):
// it counts them (RuntimeStats::kernel_events), keeps the last ones (Runtime::
// recent_kernel_events) and hands each to Policy::on_kernel_event. Only the bpf activation
// backend has a stream; with the fallback or with activations off nothing arrives.
// This header owns the event type only.
#pragma once

#include <cstdint>

#include "upcall/detail/config.hpp"

namespace upcall {

struct KernelEvent {
  enum class Type : std::uint8_t {
    task_new = 1,      // first event after the thread was registered
    task_blocked = 2,  // switched out in a sleep state (kernel_state says which)
    task_wakeup = 3,   // a blocked thread became runnable (waker_tid, target_cpu)
    task_preempt = 4,  // switched out while runnable
    task_on_cpu = 5,   // switched in
    task_dead = 6,     // exited
  };
  Type type = Type::task_new;
  int core = -1;               // the runtime core the thread belonged to when registered
  std::uint32_t tid = 0;       // the kernel thread
  std::uint32_t seq = 0;       // per-thread sequence; a gap means the ring overflowed
  int cpu = -1;                // CPU the event was observed on
  std::int64_t time_ns = 0;    // CLOCK_MONOTONIC of the event
  std::uint32_t kernel_state = 0;  // blocked / preempt: the kernel's task state at switch-out
                                   // (1 interruptible, 2 uninterruptible)
  std::uint32_t waker_tid = 0;     // wakeup: the thread that woke it
  int target_cpu = -1;             // wakeup: the CPU it was queued on
  std::uint64_t runtime_ns = 0;    // blocked / preempt / dead: cumulative on-CPU time
};

// "TASK_BLOCKED", ...
UPCALL_API const char* to_string(KernelEvent::Type t) noexcept;

}  // namespace upcall
