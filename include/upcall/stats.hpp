// upcall/stats.hpp: counters a Runtime exposes. A snapshot is assembled from per-core relaxed
// counters, so the fields are individually exact but not taken at one instant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace upcall {

struct CoreStats {
  int core = 0;
  int cpu = 0;
  std::uint64_t switches = 0;           // fiber context switches on this core
  std::uint64_t spawns = 0;             // fibers spawned from this core
  std::uint64_t steals = 0;             // successful steal operations by this core
  std::uint64_t stolen_fibers = 0;      // fibers taken by those steals
  std::uint64_t parks = 0;              // times the core slept in the kernel while idle
  std::uint64_t wakeups_sent = 0;       // times this core woke a parked core
  std::uint64_t blocking_handoffs = 0;  // upcall::blocking calls that handed the core to a spare
  std::uint64_t spares_created = 0;     // kernel threads created for this core beyond the first
  std::uint64_t timers_fired = 0;
  bool enabled = true;        // in the core budget now (Runtime::set_core_budget)
  bool released = false;      // has given its CPU back now (parked, or polling at SCHED_IDLE)
  std::uint64_t grants = 0;   // times this core was granted back (README "Core reallocation")
  std::uint64_t releases = 0; // times it gave its CPU back
};

// A latency distribution (nanoseconds; percentiles are bucket upper bounds, within 6.25%).
struct LatencySummary {
  std::uint64_t count = 0;
  std::uint64_t p50 = 0;
  std::uint64_t p99 = 0;
  std::uint64_t max = 0;
  std::uint64_t p90 = 0;
  std::uint64_t p999 = 0;
};

// Core reallocation (README "Core reallocation", runtime/DESIGN.md section 15).
struct CoreAllocStats {
  unsigned congestion_us = 0;        // the congestion interval; 0: grants off
  int min_cores = 0;                 // the budget now
  int max_cores = 0;
  std::string cpus;                  // cpulist of the cores the budget allows
  int enabled_cores = 0;             // cores in the budget
  std::uint64_t checks = 0;          // congestion checks run (by cores and the backstop)
  std::uint64_t backstop_checks = 0; // of `checks`: run by the backstop timer thread
  std::uint64_t congested = 0;       // cores (or the injection queue) found congested
  std::uint64_t grants = 0;          // cores granted back (a parked core woken, a SCHED_IDLE
                                     // poller that took work)
  std::uint64_t grants_idle = 0;     // of `grants`: the core found no work (congestion cleared)
  std::uint64_t releases = 0;        // cores that gave their CPU back (parked / SCHED_IDLE)
  std::uint64_t budget_changes = 0;  // successful Runtime::set_core_budget calls
  LatencySummary grant;              // grant decision -> a fiber running on the granted core
};

// Scheduler activations: "who blocked my worker and for how long".
struct ActivationStats {
  std::string backend;                // "bpf", "fallback" or "off"
  std::uint64_t blocks = 0;           // holder blocks in user code that were taken over
  std::uint64_t takeovers = 0;        // cores claimed by a standby (or the watchdog's spare)
  std::uint64_t refused = 0;          // blocks inside a runtime region (never taken over)
  std::uint64_t no_standby = 0;       // times a core had no standby (thread cap reached)
  std::uint64_t handbacks = 0;        // returning threads that handed their fiber back
  std::uint64_t standby_sleeps = 0;   // the standby slept while its holder parked on purpose
  std::uint64_t standby_wakes = 0;    // a sleeping standby was woken (holder unpark, alert)
  // The takeover window (README "Scheduler activations"): a thread that took a core over runs
  // its first fiber before it appoints the next standby. When it blocks (or is preempted at
  // SCHED_IDLE) in that window, a kernel alert wakes the runtime's alert thread, which
  // appoints a standby (rescue_standbys) or raises the thread to SCHED_OTHER (rescue_promotions).
  std::uint64_t rescue_standbys = 0;
  std::uint64_t rescue_promotions = 0;
  // UPCALL_STANDBY=lazy: blocks whose sleeping standby the alert thread woke.
  std::uint64_t rescue_wakes = 0;
  std::uint64_t promotion_failures = 0;  // SCHED_IDLE -> SCHED_OTHER refused (EPERM)
  std::uint64_t blocks_interruptible = 0;    // of `blocks`: sleeping in S state (syscalls)
  std::uint64_t blocks_uninterruptible = 0;  // of `blocks`: D state (disk, faults, vfork)
  LatencySummary detect;  // block (kernel switch-out) -> core claimed
  LatencySummary upcall;  // block -> another fiber running on that core
  LatencySummary block;   // block -> the blocked fiber handed back (block + return time)
  LatencySummary resume;  // hand-back -> the fiber running again on a core
};

// One block that was taken over (Runtime::recent_blocks).
struct BlockRecord {
  std::uint64_t fiber_id = 0;
  char fiber_name[32] = {};
  int core = -1;
  std::uint32_t kernel_state = 0;  // task->__state: 0x1 interruptible, 0x2 uninterruptible
  std::uint64_t duration_ns = 0;   // block start -> fiber handed back
};

// The kernel message stream (upcall/kernel_events.hpp), when the runtime consumes it.
struct KernelEventStats {
  bool consumed = false;          // Options::kernel_events or the policy asked, and bpf is on
  std::uint64_t by_type[7] = {};  // indexed by KernelEvent::Type (0 unused)
  std::uint64_t gaps = 0;         // messages lost to a full ring (per-thread sequence gaps)
};

struct RuntimeStats {
  std::vector<CoreStats> cores;
  std::uint64_t fibers_spawned = 0;
  std::uint64_t fibers_finished = 0;
  std::uint64_t blocking_inline = 0;  // blocking() calls run in place: the spare-thread cap was hit
  std::uint64_t threads = 0;          // kernel threads the runtime owns now
  ActivationStats activations;
  KernelEventStats kernel_events;
  CoreAllocStats core_alloc;
};

}  // namespace upcall
