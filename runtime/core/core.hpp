// runtime/core/core.hpp: the two hardware-facing entities of DESIGN.md "Entities", kept apart
// from the first line: a Core (a virtual processor bound to one CPU: run queue, LIFO slot,
// timers, fiber cache, counters) and an Activation (a kernel thread pinned to its core's CPU).
// Exactly one activation *holds* a core at a time (Core::holder); only the holder touches the
// core's owner-only fields. Other activations of the same core are spares (parked in the core's
// spare list) or are running a fiber inside upcall::blocking after giving the core away.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "runtime/context/context.hpp"
#include "runtime/core/fiber.hpp"
#include "runtime/sched/prio_queue.hpp"
#include "runtime/sched/run_queue.hpp"
#include "runtime/sched/timer_heap.hpp"

namespace upcall::rt {

class RuntimeImpl;
struct Activation;
struct Reactor;  // runtime/io/reactor.hpp

// Per-core counters. Written by the holder only (load + store, no RMW), read by anyone.
struct CoreCounters {
  std::atomic<std::uint64_t> switches{0}, spawns{0}, steals{0}, stolen_fibers{0}, parks{0},
      wakeups_sent{0}, blocking_handoffs{0}, spares_created{0}, timers_fired{0};
  // Fiber accounting, summed over cores by RuntimeImpl::live_fibers (no shared RMW on the
  // spawn path). `freed` is stored with release so a summing reader that acquires it sees the
  // fiber's teardown complete.
  std::atomic<std::uint64_t> created{0}, freed{0}, finished{0};
  std::atomic<std::uint64_t> cached{0};  // fiber_cache.size(), for stacks_in_use()
};
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// Per-core activation counters. Written with relaxed RMWs by whichever activation of the core
// observes the event (standby, returning thread, holder), read by anyone.
struct ActivationCounters {
  std::atomic<std::uint64_t> blocks{0};          // holder blocks in user code seen by the standby
  std::atomic<std::uint64_t> takeovers{0};       // cores claimed from a blocked holder
  std::atomic<std::uint64_t> refused{0};         // blocks seen inside a runtime region
  std::atomic<std::uint64_t> no_standby{0};      // takeovers impossible: no standby (cap reached)
  std::atomic<std::uint64_t> handbacks{0};       // returning threads that handed their fiber back
  std::atomic<std::uint64_t> standby_sleeps{0};  // standby slept while the holder parked
  std::atomic<std::uint64_t> standby_wakes{0};   // holder woke its sleeping standby
  std::atomic<std::uint64_t> rescue_standbys{0};  // alert thread appointed a standby (window)
  std::atomic<std::uint64_t> rescue_promotions{0};  // alert thread raised a preempted new holder
  std::atomic<std::uint64_t> rescue_wakes{0};  // alert thread woke a lazy standby (holder blocked)
  std::atomic<std::uint64_t> blocks_d{0};        // of blocks: uninterruptible (D) sleeps
};

// Core reallocation (runtime/cores, DESIGN.md "Core reallocation"): per-core counters. `grants`,
// `grants_idle` and `congested` are written by whichever thread grants / checks (relaxed RMW,
// never on a fast path); `releases` by the holder (load + store). Read by anyone.
struct CoreAllocCounters {
  std::atomic<std::uint64_t> grants{0};       // this core was granted (taken back from the machine)
  std::atomic<std::uint64_t> grants_idle{0};  // ...and found no work (the congestion had cleared)
  std::atomic<std::uint64_t> releases{0};     // this core gave its CPU back (park, SCHED_IDLE poll)
  std::atomic<std::uint64_t> congested{0};    // congestion checks that found this core congested
};

// What the last congestion check saw of a core (runtime/cores/congestion.cpp). Written and read
// by checkers only (relaxed exchanges: two overlapping checks at worst see a shorter interval
// once, which can only cost one grant too many).
struct CongestionSnapshot {
  std::atomic<std::uint32_t> rq_tail{0};     // run-queue tail at the last check
  std::atomic<Fiber*> lifo{nullptr};         // LIFO slot at the last check
  std::atomic<std::uint32_t> prio{0};        // priority-queue size at the last check
  std::atomic<std::uint32_t> cq_tail{0};     // io_uring completion tail at the last check
};

struct alignas(64) Core {
  // --- Fixed at start.
  int index = 0;
  int cpu = 0;
  RuntimeImpl* rt = nullptr;

  // --- Holder-only (the activation for which holder == this thread's activation).
  RunQueue rq;                    // thieves also consume from it (see run_queue.hpp)
  std::uint32_t tick = 0;         // scheduling decisions; every kFairnessTick-th polls globals
  std::uint32_t lifo_streak = 0;  // consecutive LIFO-slot picks (capped to avoid starvation)
  TimerHeap timers;
  std::vector<Fiber*> fiber_cache;  // free fibers, recycled without the global lock
  std::uint64_t next_id = 0, id_end = 0;  // block of fiber ids taken from the global counter
  std::uint64_t rng = 0;          // xorshift state for victim selection
  bool spinning = false;          // this core holds one of RuntimeImpl::n_spinning's tokens
  // The core's I/O reactor (runtime/io), set at start; its rings are holder-only.
  Reactor* reactor = nullptr;
  // No custom Policy and no fiber of non-default priority queued here: the built-in FIFO
  // fast path. Set at start; without a policy the holder clears it when it queues a fiber in
  // `prio` and sets it again when `prio` is found empty (runtime/sched/scheduler.cpp).
  bool fast_policy = true;
  // Task run-time accounting on (los::set_run_time_accounting). Written by any thread
  // (relaxed), read by the holder at every switch; a stale value only delays the change.
  std::atomic<bool> account_run_time{false};

  // --- LIFO slot: the most recently woken fiber runs next (message-passing locality). The
  // holder stores into it; the holder and thieves take from it with exchange (acq_rel), which
  // pairs with the storing exchange so the fiber's context is visible to the taker.
  std::atomic<Fiber*> lifo{nullptr};

  // --- Ready fibers of non-default priority (DESIGN.md "Task API"): the holder pushes, the
  // holder and thieves pop the highest (its own lock).
  PrioQueue prio;

  // --- Shared.
  // The core word: the holding activation's address | kInRegion while the holder executes
  // runtime code (runtime/activations/region.hpp). A takeover's check-and-claim is one CAS on
  // this word expecting the bit clear (standby.cpp, manager.cpp); the holder sets the bit with
  // a CAS too (region_enter), so the two can never both succeed, and clears it with a release
  // store (no claim can land while the bit is set). Handing the core away (blocking(),
  // shutdown) is a release store that pairs with the new holder's acquire load in its loop.
  std::atomic<std::uintptr_t> owner{0};
  static constexpr std::uintptr_t kInRegion = 1;
  Activation* holder() const {
    return reinterpret_cast<Activation*>(owner.load(std::memory_order_relaxed) & ~kInRegion);
  }
  Activation* holder_acquire() const {
    return reinterpret_cast<Activation*>(owner.load(std::memory_order_acquire) & ~kInRegion);
  }
  bool held_by(const Activation* a) const { return holder() == a; }
  // Hands the core to `a` (release), which starts in its loop, inside a region.
  void set_holder(Activation* a) {
    owner.store(reinterpret_cast<std::uintptr_t>(a) | kInRegion, std::memory_order_release);
  }

  // Activations of this core (runtime/activations): the standby that watches the holder, and
  // a futex the standby sleeps on while the holder parks on purpose (1 = sleeping).
  std::atomic<Activation*> standby{nullptr};
  std::atomic<std::uint32_t> standby_word{0};
  // Park futex: 1 while the core sleeps in the kernel, set by the core before it sleeps (under
  // RuntimeImpl::idle_mu), cleared by the waker (release; the woken core's acquire load pairs).
  std::atomic<std::uint32_t> park_word{0};
  bool idle_listed = false;  // guarded by RuntimeImpl::idle_mu
  // Poll mode: this core dropped to SCHED_IDLE while idle and counts in
  // RuntimeImpl::n_poll_lowered (both guarded by RuntimeImpl::idle_mu).
  bool poll_lowered = false;
  // The holder is executing fibers (not in its loop). Written by the holder (relaxed), read by
  // shutdown's quiescence check, which needs it twice 100 ms apart, so staleness is harmless.
  std::atomic<bool> busy{false};

  std::mutex spare_mu;               // guards spares
  std::vector<Activation*> spares;   // parked activations of this core, ready to take it over

  // --- Core reallocation (runtime/cores).
  // In the core budget. Written by set_core_budget under RuntimeImpl::idle_mu (seq_cst: the
  // Dekker pairing with the disabled wait's store of park_word = kParkDisabled), read by the
  // holder at its loop passes, every kFairnessTick-th decision and when a yield finds nothing.
  std::atomic<bool> enabled{true};
  // When a checker decided to grant this parked core (CLOCK_MONOTONIC ns), 0 if none. Stored
  // by the granter before its release store of park_word = 0; exchanged to 0 by the holder when
  // the first fiber runs (grant latency) or when it goes idle again (a wasted grant).
  std::atomic<std::int64_t> grant_ns{0};
  // The core has given its CPU back: parked in the kernel, or polling at SCHED_IDLE. Written
  // by the holder (relaxed), read by stats.
  std::atomic<bool> released{false};
  // Written by checkers on any thread: a line of its own, away from the holder's counters.
  alignas(64) CongestionSnapshot cong;
  alignas(64) CoreAllocCounters alloc;

  CoreCounters counters;
  ActivationCounters act;
  // Bumped by the holder at every runtime entry (relaxed), read by the fallback watchdog.
  std::atomic<std::uint64_t> heartbeat{0};
  // Watchdog bookkeeping (manager thread only).
  std::uint64_t wd_heartbeat = 0;
  std::uintptr_t wd_owner = 0;
  std::int64_t wd_since_ns = 0;
  std::int64_t wd_checked_ns = 0;
};

// What the context that has just been resumed must do for the one that switched to it, after
// saving its context (runtime/core/switch.cpp). Doing these on the far side of the switch is
// what makes it safe to publish a fiber to other threads: its context is saved first.
enum class PostAction : std::uint8_t {
  none,
  requeue,      // yield: make `from` ready again (TASK_YIELD)
  commit_park,  // park: set from's park_state to Parked, unless a permit arrived meanwhile
  release,      // from finished: drop the fiber's own reference
  reinject,     // from returns from upcall::blocking: hand it to a core that will run it
};

// Owner-only (its activation's thread).
struct SwitchRecord {
  Activation* self = nullptr;
  Fiber* from = nullptr;  // nullptr: the switch came from the activation's scheduler loop
  PostAction action = PostAction::none;
};

inline constexpr std::uint32_t kWakeNone = 0, kWakeActive = 1, kWakeExit = 2, kWakeStandby = 3;

// What an activation currently is (DESIGN.md "Entities"). Owner-only except as noted.
enum class Role : std::uint8_t {
  active,     // holds its core (Core::owner names it)
  standby,    // SCHED_IDLE, watches the holder's status word, takes the core over on a block
  spare,      // parked in Core::spares
  blocking,   // gave its core away inside upcall::blocking and runs the fiber's call
  returning,  // lost its core to a takeover while blocked; hands its fiber back at next entry
};

struct Activation {
  // --- Fixed at start.
  RuntimeImpl* rt = nullptr;
  Core* core = nullptr;  // the core whose CPU this thread is pinned to (held or not)
  int tid = 0;
  // Status-word slot from the activation backend, -1 until registered. Written by this thread
  // at start (release), read by the standby and the watchdog (acquire).
  std::atomic<int> slot{-1};

  // --- Role. Written by the thread itself, or by the thread that hands it a core / makes it
  // the standby before waking it (the futex wake orders it).
  Role role = Role::spare;
  // This thread runs at SCHED_IDLE. Owner-only, except that the alert thread writes false
  // while it holds `window` at 2 (this thread waits for window != 2 before reading it).
  bool sched_idle = false;
  // Set by the standby when it takes the core: promote to SCHED_OTHER and appoint the next
  // standby at the first runtime entry (owner-only once active).
  bool pending_promotion = false;
  std::int64_t takeover_ns = 0;    // when this thread claimed its core (owner-only)
  // With pending_promotion: only return to SCHED_OTHER (a poll-mode core that ran dry at
  // SCHED_IDLE and found work, runtime/cores), no standby to appoint. Owner-only.
  bool promote_only = false;
  // The takeover window (runtime/DESIGN.md section 10, "The takeover window"): 1 from just
  // before the claim until this thread closes it (finish_takeover, or the role dispatcher
  // after a loss: CAS 1 or 3 -> 0); 2 while the alert thread promotes it; 3 once promoted;
  // 0 closed. The alert thread CASes 1 -> 2, then stores 3 (release, after it wrote
  // sched_idle = false) or 1 (it found this thread no longer holds the core: no promotion).
  std::atomic<std::uint8_t> window{0};
  // Lazy standby: this holder set watch = kWatchBlocks because its standby sleeps (so a block
  // reaches the alert thread, which wakes the standby). Owner-only.
  bool dozing = false;
  // Set by the standby that took this thread's core (before its CAS, read by this thread after
  // it observed the loss, which the CAS orders): when the block started (CLOCK_MONOTONIC ns).
  std::atomic<std::int64_t> blocked_since_ns{0};
  std::atomic<std::uint32_t> blocked_state{0};  // the kernel's prev_state at that block

  // --- Owner-only (this thread).
  RawContext loop_ctx = nullptr;  // the scheduler loop, suspended while a fiber runs
  SanitizerIdentity loop_san;
  EhState loop_eh;                   // the loop's C++ exception state while a fiber runs
  EhGlobalsLayout* eh = nullptr;     // this thread's exception globals (fixed address)
  Fiber* current = nullptr;       // the fiber this thread runs, nullptr in the loop
  SwitchRecord sw;
  void* altstack = nullptr;       // alternate signal stack (stack-overflow reports)

  // --- Spare futex: kWakeNone while parked (or running), then what it is woken for. Written
  // by the thread that hands it a core or a role, or by shutdown (release), read by this thread
  // (acquire); the role is written before the wake.
  std::atomic<std::uint32_t> wake_word{0};
  bool listed_spare = false;  // guarded by core->spare_mu
};

}  // namespace upcall::rt

// The calling thread's activation (platform.cpp). initial-exec TLS: a %fs-relative load, no
// __tls_get_addr call (that call was 17% of a yield).
extern "C" __attribute__((tls_model("initial-exec"), visibility("hidden"))) thread_local
    upcall::rt::Activation* upcall_rt_tls_activation;

namespace upcall::rt {

// The calling thread's activation, or nullptr on threads the runtime did not create.
// A fiber may migrate between kernel threads at any call that can suspend, and a compiler may
// keep a thread-local's address in a register across calls: the asm volatile load makes every
// use read the current thread's slot afresh (the Go runtime's getg() has the same rule).
inline Activation* current_activation() noexcept {
  Activation* a;
  asm volatile(
      "movq upcall_rt_tls_activation@gottpoff(%%rip), %0\n\t"
      "movq %%fs:(%0), %0"
      : "=r"(a));
  return a;
}
void set_current_activation(Activation* a) noexcept;

// The core the caller holds, or nullptr (plain thread, or inside upcall::blocking).
inline Core* current_core() noexcept {
  Activation* a = current_activation();
  if (!a || !a->core->held_by(a)) return nullptr;
  return a->core;
}
// The fiber running on the caller's thread while it holds a core, else nullptr.
inline Fiber* current_fiber() noexcept {
  Activation* a = current_activation();
  if (!a || !a->current || !a->core->held_by(a)) return nullptr;
  return a->current;
}

}  // namespace upcall::rt
