// runtime/core/runtime_impl.hpp: the state of one runtime and the scheduler operations on it.
// Start-up and shutdown live in runtime_impl.cpp, the scheduling decisions (ready, next, steal,
// idle) in runtime/sched/scheduler.cpp, context switching in runtime/core/switch.cpp, the fiber
// pool in runtime/core/fiber_pool.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/activations/backend.hpp"
#include "runtime/context/stack_pool.hpp"
#include "runtime/stats/block_log.hpp"
#include "runtime/stats/kernel_event_log.hpp"
#include "runtime/stats/histogram.hpp"
#include "runtime/core/core.hpp"
#include "runtime/core/slot_table.hpp"
#include "runtime/sched/inject_queue.hpp"
#include "upcall/options.hpp"
#include "upcall/policy.hpp"
#include "upcall/stats.hpp"

namespace upcall::rt {

struct IoRuntime;  // runtime/io/reactor.hpp
std::int64_t now_ns() noexcept;  // CLOCK_MONOTONIC (platform.cpp)

// Tuning constants (bench/RESULTS.md names the benchmark that chose each).
inline constexpr std::uint32_t kFairnessTick = 61;  // as Go: poll globals every 61st decision
inline constexpr std::uint32_t kLifoStreakMax = 3;  // as Tokio: then the FIFO gets a turn
inline constexpr std::size_t kFiberCacheMax = 128;  // per-core free fibers before spilling
inline constexpr int kMaxThreadsPerCore = 64;       // activations per core, spares included

class RuntimeImpl final : public KernelEventSink {
 public:
  explicit RuntimeImpl(const Options& opts);
  ~RuntimeImpl();

  // --- Fibers (fiber_pool.cpp). Throw std::system_error on exhaustion.
  Fiber* alloc_fiber(Core* here, const detail::SpawnSpec& spec);
  void free_fiber(Fiber* f, Core* here) noexcept;
  void drop_ref(Fiber* f) noexcept;

  // --- Scheduling (runtime/sched/scheduler.cpp).
  // Makes a fiber ready. `here` is the caller's held core, or nullptr from any other thread.
  // `lifo`: a wake-up takes the LIFO slot (false: the tail, e.g. for timers due together).
  void make_ready(Fiber* f, TaskEvent why, Core* here, bool lifo = true);
  // The holder's quick pick for a direct fiber-to-fiber switch: due timers (every call while
  // any are armed), LIFO slot, local queue, and every kFairnessTick-th call I/O and the
  // injection queue. nullptr: go to the loop.
  Fiber* next_local(Core* c) {
    // Due timers first, at every decision while the core has any armed (as Go's checkTimers):
    // a sleeping fiber wakes on time while its core stays busy. Before, timers got a turn only
    // every kFairnessTick-th decision, i.e. 61 handler runs late on a busy core (found by the
    // RocksDB experiment's dispatcher). Costs one clock read per decision with timers armed,
    // nothing without.
    if (__builtin_expect(!c->timers.empty(), 0)) expire_due_timers(c);
    if (__builtin_expect(c->fast_policy && (++c->tick % kFairnessTick) != 0, 1))
      return next_local_fast(c);
    return next_local_slow(c);
  }
  Fiber* next_local_fast(Core* c) {
    if (c->lifo_streak < kLifoStreakMax && c->lifo.load(std::memory_order_relaxed)) {
      if (Fiber* f = c->lifo.exchange(nullptr, std::memory_order_acq_rel)) {
        ++c->lifo_streak;
        return f;
      }
    }
    c->lifo_streak = 0;
    if (Fiber* f = c->rq.pop()) return f;
    if (c->lifo.load(std::memory_order_relaxed))
      return c->lifo.exchange(nullptr, std::memory_order_acq_rel);
    return nullptr;
  }
  Fiber* next_local_slow(Core* c);
  void expire_due_timers(Core* c) {
    const std::int64_t t = now_ns();
    if (c->timers.next_deadline() <= t) expire_timers(c, t);
  }
  // Holder only: f to the tail of c's queue (half of it spills to the injection queue when
  // full, as Go's runqputslow).
  // A fiber of non-default priority goes to the core's priority queue instead.
  void push_local(Core* c, Fiber* f) {
    if (__builtin_expect(load_relaxed(f->priority) != 0, 0)) return push_prio(c, f);
    if (__builtin_expect(!c->rq.push(f), 0)) push_local_overflow(c, f);
  }
  void push_prio(Core* c, Fiber* f);
  // Holder only, priority mode: the highest-priority ready fiber of c.
  Fiber* next_local_prio(Core* c);
  // Holder only: should a yield of `self` switch? (False when nothing of at least its
  // priority is ready on c.) Asked only when self or c uses priorities, or with a policy.
  bool yield_should_switch(Core* c, Fiber* self);
  void push_local_overflow(Core* c, Fiber* f);
  // The loop's full search: next_local, injection queue, timers, stealing.
  Fiber* find_work(Core* c);
  // Idle: spin, then park; returns when there may be work, or false at shutdown.
  bool idle(Activation* a, Core* c);
  // Wakes a parked core if work became available and nobody is searching. `fenced` says the
  // caller already issued a seq_cst operation after publishing the work.
  void wake_idle_core(bool remote);
  // Under idle_mu (held by the caller for the second): the most recently parked core taken off
  // idle_list (nullptr if none), or `c` removed from it if listed; both decrement n_idle
  // (seq_cst, section 5).
  Core* pop_idle_core();
  void unlist_idle_locked(Core* c);
  void wake_all_cores();
  // The core found work: give back its spinning token (and wake a helper if more is visible).
  void stop_spinning(Core* c);
  void expire_timers(Core* c, std::int64_t now_ns);

  // --- Core reallocation (runtime/cores/, DESIGN.md section 15).
  // Any thread: at most once per congestion interval (runtime-wide), compares every core's
  // queues with the previous check and grants a parked core per congested one. `backstop`:
  // called by the backstop thread (counted apart).
  void congestion_check(std::int64_t now, bool backstop);
  // Holder at a scheduling pass: runs the check when it is due and a grant is possible. The
  // clock is read only then (no parked core, or grants off: two loads and no clock).
  void maybe_check_congestion() {
    if (congestion_ns == 0 || n_idle.load(std::memory_order_relaxed) == 0) return;
    const std::int64_t now = now_ns();
    if (now >= next_check_ns.load(std::memory_order_relaxed)) congestion_check(now, false);
  }
  // Any thread: wakes one parked core; `stamp`: a grant (counted, its latency recorded), else
  // a plain wake (the budget's min_cores). False when no core is parked.
  bool grant_core(bool stamp = true);
  // Holder: the first fiber after a grant runs now (grant latency), or the core went idle
  // again without one (a wasted grant).
  void note_grant_outcome(Core* c, bool ran);
  // Holder of a core out of the budget: its ready fibers go to the injection queue.
  void drain_core(Core* c);
  // Holder of a core out of the budget: housekeeping (its own timers and I/O) and sleep until
  // the core is back in the budget (true) or shutdown (false).
  bool disabled_wait(Activation* a, Core* c);
  // Runtime::set_core_budget; `starting`: from the constructor, before any thread runs.
  void set_core_budget(const CoreBudget& b, bool starting = false);
  CoreBudget core_budget() const;
  void ticker_main();

  // --- Activations (activation.cpp).
  // Starts a's thread. `reserved`: the caller already counted it with reserve_thread().
  void start_thread(Activation* a, bool reserved = false);
  // Counts one more thread if the cap (cores x kMaxThreadsPerCore) allows it.
  bool reserve_thread();
  Activation* new_activation(Core* c);
  // Hands the core held by `a` to a spare (creating one if needed). False at the thread cap.
  bool hand_core_to_spare(Activation* a);
  // Parks `a` as a spare of its core until it is handed the core (true) or shut down (false).
  bool wait_as_spare(Activation* a);
  void thread_main(Activation* a);
  // The active role: the scheduler loop. Returns when the thread no longer holds its core.
  void run_active(Activation* a);
  void manager_main();
  // Chooses bpf / fallback / off from cfg.activations and what this machine allows.
  void select_activation_backend();
  void poke_manager() noexcept;

  // Fibers created and not yet freed; stacks lent out (pool slots not in any free list).
  // Exact when the runtime is quiet, a sum of moving counters otherwise.
  std::uint64_t live_fibers() const;
  std::uint64_t stacks_in_use() const;
  std::uint64_t fibers_spawned() const;
  std::uint64_t fibers_finished() const;

  // --- Shutdown (runtime_impl.cpp).
  void shutdown();
  bool quiescent() const;

  // --- State.
  EffectiveConfig cfg;
  std::shared_ptr<Policy> policy_owner;
  Policy* policy = nullptr;  // nullptr: the built-in FIFO + stealing fast path
  std::vector<std::unique_ptr<Core>> cores;
  InjectQueue inject;
  StackPool stacks;

  // Idle cores (Go's pidle + nmspinning). n_spinning counts cores searching for work; a waker
  // that sees one skips waking. Writers use seq_cst RMWs: the Dekker pairing with wakers is
  // written out in runtime/sched/scheduler.cpp.
  // Tasks enqueued into a custom Policy and not yet picked or stolen: lets idle cores see work
  // in queues they do not own (the policy's). seq_cst: the same Dekker pairing as inject.
  std::atomic<std::int64_t> policy_pending{0};
  std::atomic<int> n_spinning{0};
  std::atomic<int> n_idle{0};
  std::mutex idle_mu;               // guards idle_list and Core::idle_listed
  std::vector<Core*> idle_list;

  // Global fiber free list (fibers spilled from core caches or freed off-core).
  std::mutex free_mu;
  std::vector<Fiber*> free_fibers;  // guarded by free_mu
  // Every fiber slot ever built (task ids, task monitor); grown under free_mu.
  SlotTable slot_table;

  // Threads.
  std::mutex threads_mu;
  std::vector<std::unique_ptr<Activation>> activations;  // guarded by threads_mu
  std::vector<std::thread> threads;                      // guarded by threads_mu
  std::atomic<int> thread_count{0};

  // Counters and lifecycle (relaxed unless noted).
  // Fibers created/freed by threads that hold no core (the per-core counts are in Core).
  std::atomic<std::uint64_t> offcore_created{0}, offcore_freed{0};
  std::atomic<std::uint64_t> next_fiber_id{1};  // handed out to cores in blocks
  std::atomic<std::uint64_t> free_count{0};     // free_fibers.size(), written under free_mu
  std::atomic<std::uint64_t> blocking_inline{0};
  std::atomic<int> blocking_inflight{0};
  std::atomic<std::int64_t> timers_armed{0};
  // Activations (runtime/activations). Fixed at start.
  std::shared_ptr<ActivationBackend> backend;  // nullptr when activations are off
  bool activations_on = false;  // some backend watches holders
  bool standby_mode = false;    // bpf: a SCHED_IDLE standby per core
  bool fallback_mode = false;   // fallback: the manager's watchdog
  std::thread manager;
  std::atomic<std::uint32_t> manager_word{0};  // futex: 1 = poked
  std::atomic<std::uint64_t> promotion_failures{0};
  LatencyHistogram hist_detect;  // block (kernel switch-out) -> core claimed
  LatencyHistogram hist_upcall;  // block -> another fiber running on that core
  LatencyHistogram hist_block;   // block -> the fiber handed back by its returning thread
  LatencyHistogram hist_resume;  // hand-back -> the fiber running again
  BlockLog block_log;
  // The kernel message stream (runtime/activations/kernel_events.cpp). kevents_on is set by the
  // constructor before any thread starts and never changes.
  bool kevents_on = false;
  KernelEventLog kevents;
  void on_kernel_event(const KernelEvent& e) noexcept override;
  void choose_kernel_events(bool requested);
  // The sink a new activation registers with the backend (nullptr: no stream wanted).
  KernelEventSink* kernel_event_sink() noexcept { return kevents_on ? this : nullptr; }
  IoRuntime* io = nullptr;  // the I/O backend (runtime/io), set at start, freed at shutdown

  // Core reallocation (runtime/cores). congestion_ns and eager_wake are fixed at start.
  std::int64_t congestion_ns = 0;  // the congestion interval; 0: grants off
  bool eager_wake = true;          // congestion off: a local push wakes a parked core (Go rule)
  bool poll_can_lower = false;     // poll mode may drop to SCHED_IDLE (it can come back)
  // Next time a congestion check is due; checkers CAS it forward by one interval, so checks
  // run at most once per interval runtime-wide (relaxed: a stale read only skips or delays
  // one check).
  std::atomic<std::int64_t> next_check_ns{0};
  std::atomic<std::uint64_t> inject_seen{0};  // injection pushes at the last check (checkers)
  std::atomic<std::int64_t> policy_seen{0};   // policy_pending at the last check (checkers)
  std::atomic<std::uint64_t> cong_checks{0}, cong_backstop{0}, cong_inject{0}, budget_changes{0};
  LatencyHistogram hist_grant;  // grant decision -> first fiber running on the granted core
  // The budget. budget_mu serialises changes (and guards `budget`); min_cores and n_enabled
  // are written under both budget_mu and idle_mu (the park decision reads them under idle_mu).
  mutable std::mutex budget_mu;
  CoreBudget budget;
  int min_cores = 0;
  int n_enabled = 0;
  // Poll-mode cores at SCHED_IDLE (Core::poll_lowered), guarded by idle_mu: a poller lowers
  // itself only while n_idle + n_poll_lowered + 1 <= n_enabled - min_cores, so min_cores cores
  // keep polling at their normal policy.
  int n_poll_lowered = 0;
  // Under nothing: takes or gives back one of the n_poll_lowered places (scheduler.cpp).
  bool reserve_poll_lower(Core* c);
  void end_poll_lower(Core* c);
  // The backstop thread (runtime/cores/ticker.cpp): sleeps on ticker_word (shutdown wakes it).
  std::thread ticker;
  std::atomic<std::uint32_t> ticker_word{0};

  std::atomic<bool> stopping{false};  // no new spawns from outside
  std::atomic<bool> stopped{false};   // threads must exit (release; loops acquire)
};

std::int64_t now_ns() noexcept;
// fork.cpp: registers the atfork handler once; throws std::logic_error in a fork child.
void install_fork_handler();
void check_not_fork_child(const char* what);
void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::int64_t timeout_ns);
void futex_wake(std::atomic<std::uint32_t>* word, int n);

}  // namespace upcall::rt
