// runtime/core/runtime_impl.cpp: start-up and shutdown of a runtime.
//
// Start-up, in order:
//  1. resolve the configuration (options > flags > environment > defaults) and validate it;
//  2. map nothing yet for stacks, only probe the guard mechanism (stacks grow on demand);
//  3. register the stack pool with the stack-overflow handler;
//  4. per core: create the active activation, make it the holder, start its thread; then start
//     one spare per core so the first upcall::blocking does not pay a thread creation;
//  5. print the configuration banner unless quiet.
// Shutdown, in order (the contract is in upcall/runtime.hpp):
//  1. stopping = true: spawns from outside fail from now on;
//  2. wait until live_fibers == 0, or until quiescent() held for kQuiescentGrace, then report
//     the fibers that can never be woken as leaked;
//  3. stopped = true (release), wake every parked core and spare; each loop returns;
//  4. join the threads; 5. unregister the stack pool, then unmap stacks (StackPool dtor).
#include "runtime/core/runtime_impl.hpp"

#include <cstdio>
#include <thread>

#include "runtime/activations/activations.hpp"
#include "runtime/core/check.hpp"
#include "runtime/core/signals.hpp"
#include "runtime/io/reactor.hpp"
#include "upcall/runtime.hpp"

namespace upcall::rt {

namespace {
constexpr std::int64_t kQuiescentGraceNs = 100'000'000;  // 100 ms without any progress
}

RuntimeImpl::RuntimeImpl(const Options& opts) {
  check_not_fork_child("creating a Runtime");
  install_fork_handler();
  cfg = resolve_config(opts);
  policy_owner = opts.policy;
  policy = policy_owner.get();
  stacks.init(cfg.stack_size);
  cfg.stack_size = stacks.usable_size();
  cfg.guard = stacks.guard_name();
  if (stacks.guard() == StackPool::Guard::mprotect)
    announce_once("guard-mprotect",
                  "upcall: this kernel lacks MADV_GUARD_INSTALL (Linux >= 6.13); stack guard "
                  "pages use mprotect, which caps fibers at " +
                      std::to_string(stacks.mprotect_budget()) +
                      " (two VMAs each under vm.max_map_count)");
  if (policy) {
    cfg.policy = policy->name();
    policy->init(cfg.cores);
  }
  register_stack_pool(&stacks);
  cores.reserve(cfg.cores);
  for (int i = 0; i < cfg.cores; ++i) {
    auto c = std::make_unique<Core>();
    c->index = i;
    c->cpu = cfg.cpus[i];
    c->rt = this;
    c->fast_policy = policy == nullptr;
    c->rng = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(i + 1);
    c->fiber_cache.reserve(kFiberCacheMax);
    cores.push_back(std::move(c));
  }
  select_activation_backend();
  choose_kernel_events(opts.kernel_events);
  // Core reallocation (runtime/cores): the interval, the budget, poll mode's SCHED_IDLE.
  congestion_ns = static_cast<std::int64_t>(cfg.congestion_us) * 1000;
  eager_wake = congestion_ns == 0;
  n_enabled = cfg.cores;
  set_core_budget(opts.budget ? *opts.budget : CoreBudget{}, /*starting=*/true);
  if (cfg.idle == IdleMode::poll) {
    std::string why;
    poll_can_lower = can_leave_sched_idle(&why);
    if (!poll_can_lower)
      announce_once("poll-no-sched-idle",
                    "upcall: idle=poll polls at normal priority: a poller could not leave "
                    "SCHED_IDLE again (" + why + "; needs CAP_SYS_NICE or a raised RLIMIT_NICE)");
  }
  io_runtime_start(this);  // per-core reactors before any thread runs a core
  try {
    for (auto& c : cores) {
      Activation* a = new_activation(c.get());
      a->role = Role::active;
      c->set_holder(a);
      start_thread(a);
    }
    for (auto& c : cores) {
      if (standby_mode) {
        Activation* s = new_activation(c.get());
        s->role = Role::standby;
        c->standby.store(s, std::memory_order_release);
        start_thread(s);
      }
      start_thread(new_activation(c.get()));  // one spare per core (role spare)
    }
    if (activations_on) manager = std::thread([this] { manager_main(); });
    if (congestion_ns != 0 && cores.size() > 1) ticker = std::thread([this] { ticker_main(); });
  } catch (...) {
    shutdown();
    throw;
  }
  if (!opts.quiet) std::fprintf(stderr, "%s\n", cfg.describe().c_str());
}

RuntimeImpl::~RuntimeImpl() {
  shutdown();
  unregister_stack_pool(&stacks);
}

void RuntimeImpl::select_activation_backend() {
  const std::string requested = cfg.activations;
  cfg.activations = "off";
  if (requested == "off") return;
  std::string why;
  if (requested == "bpf") {
    if (!can_leave_sched_idle(&why)) {
      why = "standby threads cannot leave SCHED_IDLE (" + why +
            "; needs CAP_SYS_NICE or a raised RLIMIT_NICE)";
    } else if ((backend = bpf_backend(&why))) {
      activations_on = standby_mode = true;
      cfg.activations = "bpf";
      if (cfg.lazy_standby && !backend->has_alerts()) {
        // A lazy standby relies on the kernel alert to be woken: without the alert thread it
        // would sleep through a block.
        cfg.lazy_standby = false;
        announce_once("lazy-standby", "upcall: UPCALL_STANDBY=lazy unavailable (no kernel "
                                      "alert thread); using eager standbys");
      }
      return;
    }
    announce_once("activations-fallback:" + why,
                  "upcall: activations=bpf unavailable: " + why +
                      "; using the fallback watchdog (blocks are detected in ~100 us-1 ms "
                      "instead of ~1 us)");
  }
  backend = procfs_backend();
  activations_on = fallback_mode = true;
  cfg.activations = "fallback";
  cfg.lazy_standby = false;  // no standbys at all
}

bool RuntimeImpl::quiescent() const {
  if (inject.size() != 0 || blocking_inflight.load(std::memory_order_acquire) != 0 ||
      timers_armed.load(std::memory_order_acquire) != 0)
    return false;
  for (const auto& c : cores) {
    if (c->busy.load(std::memory_order_relaxed) || !c->rq.empty_hint() || c->prio.size_hint() ||
        c->lifo.load(std::memory_order_acquire))
      return false;
  }
  return true;
}

void RuntimeImpl::shutdown() {
  if (stopped.load(std::memory_order_acquire)) return;
  stopping.store(true, std::memory_order_release);
  std::int64_t quiet_since = -1;
  // live_fibers() acquires the per-core `freed` counts: every fiber's teardown is complete.
  while (live_fibers() != 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!quiescent()) {
      quiet_since = -1;
      continue;
    }
    const std::int64_t now = now_ns();
    if (quiet_since < 0) {
      quiet_since = now;
    } else if (now - quiet_since >= kQuiescentGraceNs) {
      std::fprintf(stderr,
                   "upcall: runtime shut down with %llu fiber(s) not released: waiting on "
                   "something nothing in the runtime can complete (leaked, their destructors "
                   "do not run), or finished but still held by a JoinHandle\n",
                   static_cast<unsigned long long>(live_fibers()));
      break;
    }
  }
  stopped.store(true, std::memory_order_release);
  wake_all_cores();
  for (auto& c : cores) {
    c->standby_word.store(0, std::memory_order_release);
    futex_wake(&c->standby_word, 1);
  }
  poke_manager();
  if (manager.joinable()) manager.join();
  ticker_word.store(1, std::memory_order_release);
  futex_wake(&ticker_word, 1);
  if (ticker.joinable()) ticker.join();
  {
    std::lock_guard<std::mutex> lock(threads_mu);
    for (auto& a : activations) {
      // Taking spare_mu orders this with wait_as_spare's check of `stopped`.
      std::lock_guard<std::mutex> spare_lock(a->core->spare_mu);
      a->wake_word.store(kWakeExit, std::memory_order_release);
      futex_wake(&a->wake_word, 1);
    }
  }
  std::vector<std::thread> to_join;
  {
    std::lock_guard<std::mutex> lock(threads_mu);
    to_join.swap(threads);
  }
  for (auto& t : to_join) t.join();
  thread_count.store(0, std::memory_order_relaxed);
  io_runtime_stop(this);  // no thread touches a ring any more
}

}  // namespace upcall::rt
