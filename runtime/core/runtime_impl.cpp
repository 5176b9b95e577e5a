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

#include "runtime/core/check.hpp"
#include "runtime/core/signals.hpp"
#include "upcall/runtime.hpp"

namespace upcall::rt {

namespace {
constexpr std::int64_t kQuiescentGraceNs = 100'000'000;  // 100 ms without any progress
}

RuntimeImpl::RuntimeImpl(const Options& opts) {
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
  try {
    for (auto& c : cores) {
      Activation* a = new_activation(c.get());
      c->holder.store(a, std::memory_order_release);
      start_thread(a);
    }
    for (auto& c : cores) start_thread(new_activation(c.get()));  // one spare per core
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

bool RuntimeImpl::quiescent() const {
  if (inject.size() != 0 || blocking_inflight.load(std::memory_order_acquire) != 0 ||
      timers_armed.load(std::memory_order_acquire) != 0)
    return false;
  for (const auto& c : cores) {
    if (c->busy.load(std::memory_order_relaxed) || !c->rq.empty_hint() ||
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
                   "upcall: runtime shut down with %llu fiber(s) still waiting on something "
                   "nothing in the runtime can complete; they are leaked (their destructors do "
                   "not run)\n",
                   static_cast<unsigned long long>(live_fibers()));
      break;
    }
  }
  stopped.store(true, std::memory_order_release);
  wake_all_cores();
  {
    std::lock_guard<std::mutex> lock(threads_mu);
    for (auto& a : activations) {
      // Taking spare_mu orders this with wait_as_spare's check of `stopped`.
      std::lock_guard<std::mutex> spare_lock(a->core->spare_mu);
      a->wake_word.store(2, std::memory_order_release);
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
}

}  // namespace upcall::rt
