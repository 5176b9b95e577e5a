// upcall/runtime.hpp: the Runtime, a set of cores (one per CPU) that run fibers. Constructing
// one starts its kernel threads; destroying it waits for its fibers to finish (see the
// destructor's contract) and stops them. Several runtimes may coexist in a process; they do not
// share cores, so two runtimes on the same CPUs time-slice with each other.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "upcall/kernel_events.hpp"
#include "upcall/options.hpp"
#include "upcall/stats.hpp"
#include "upcall/task.hpp"

namespace upcall {

namespace rt {
class RuntimeImpl;  // runtime internals; opaque here
}

class UPCALL_API Runtime {
 public:
  // Starts the runtime. Throws std::invalid_argument for a bad configuration (message names the
  // option) and std::system_error when threads or memory cannot be had.
  explicit Runtime(Options opts = {});
  // Shutdown, in order: (1) new spawns from outside fail; (2) wait until every fiber has
  // finished, or until the runtime is quiescent (no ready fiber, no timer, no blocking call in
  // flight) for 100 ms, in which case the fibers still waiting can never be woken by the
  // runtime and are reported as leaked on stderr; (3) wake and join every kernel thread;
  // (4) unmap the stacks. Must not be called from one of this runtime's own fibers.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Starts f() on a new fiber of this runtime. Callable from any thread, fiber or not.
  template <class F>
  auto spawn(F&& f, const SpawnOptions& opts = {}) {
    return detail::spawn_on(this, std::forward<F>(f), opts);
  }

  // Runs f() on a fiber of this runtime and waits for it from the calling thread, which must not
  // be a fiber of this runtime. Returns f's value or rethrows its exception.
  template <class F>
  auto block_on(F&& f) {
    return spawn(std::forward<F>(f), SpawnOptions{"main", 0}).join();
  }

  const EffectiveConfig& config() const;
  RuntimeStats stats() const;
  // Fibers created and not yet freed (running, ready, waiting, or finished but still held by a
  // JoinHandle or on the way back to the pool).
  std::uint64_t live_fibers() const;
  // Stacks currently lent to fibers.
  std::uint64_t stacks_in_use() const;
  // The last 64 blocks of kernel threads that were taken over, oldest first.
  std::vector<BlockRecord> recent_blocks() const;
  // The last kernel messages about this runtime's threads, oldest first (at most 1024; empty
  // unless Options::kernel_events or the policy consumes the stream, and bpf is the backend).
  std::vector<KernelEvent> recent_kernel_events() const;

  // The core budget (README "Core reallocation"): which of this runtime's cores may run fibers
  // (max_cores, cpus) and how many never give their CPU back (min_cores). Callable from any
  // thread, fibers included, while the runtime runs. Returns once the new budget is in force
  // for new decisions: a removed core stops at its next scheduling pass (its ready fibers move
  // to the other cores; a fiber that never enters the runtime keeps it until it does). Throws
  // std::invalid_argument (message names the field) for a budget this runtime cannot have,
  // e.g. a CPU it was not started on; the budget is then unchanged.
  void set_core_budget(const CoreBudget& budget);
  CoreBudget core_budget() const;

  rt::RuntimeImpl* impl() const { return impl_.get(); }

 private:
  std::unique_ptr<rt::RuntimeImpl> impl_;
};

}  // namespace upcall
