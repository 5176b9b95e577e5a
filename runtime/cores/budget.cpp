// runtime/cores/budget.cpp: the core budget (Runtime::set_core_budget, runtime/DESIGN.md
// section 15): which of the runtime's cores may run fibers and how many stay awake. It
// validates a budget, flips Core::enabled and wakes the cores concerned; the cores themselves
// drain and sleep (congestion.cpp, disabled_wait) or come back. It owns no scheduling decision.
//
// A change, in order (budget_mu held throughout, so changes are serialised):
//  1. validate against the cores the runtime started with; nothing changes on error;
//  2. under idle_mu: store each core's new `enabled` (seq_cst), take a core that leaves the
//     budget off idle_list (handing it a spinning token, as a waker does), store min_cores and
//     n_enabled (the park decision reads them under idle_mu);
//  3. wake the parked cores that left (park_word 0 + wake: they move to their disabled wait)
//     and the disabled-waiting cores that came back (CAS park_word kParkDisabled -> 0 + wake;
//     a CAS, not a store: a core back in the budget may already be parked normally with 1);
//  4. grant parked cores until min_cores are awake.
#include <stdexcept>
#include <string>

#include "runtime/cores/cores.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "runtime/io/reactor.hpp"
#include "upcall/runtime.hpp"

namespace upcall::rt {

namespace {
[[noreturn]] void bad_budget(const std::string& what, const std::string& why) {
  throw std::invalid_argument("upcall: core budget: " + what + ": " + why);
}

void wake_core(Core* c) {
  if (c->reactor)
    io_wake(c);
  else
    futex_wake(&c->park_word, 1);
}
}  // namespace

void RuntimeImpl::set_core_budget(const CoreBudget& b, bool starting) {
  // 1. Validate.
  std::vector<int> cpus = cfg.cpus;
  if (!b.cpus.empty()) {
    try {
      cpus = parse_cpulist(b.cpus);
    } catch (const std::invalid_argument& e) {
      bad_budget("cpus=" + b.cpus, e.what());
    }
    for (int cpu : cpus) {
      bool ours = false;
      for (int x : cfg.cpus) ours |= (x == cpu);
      if (!ours)
        bad_budget("cpus=" + b.cpus, "CPU " + std::to_string(cpu) +
                                         " is not one of this runtime's CPUs (" +
                                         format_cpulist(cfg.cpus) +
                                         "); a runtime's CPUs are fixed at start (Options::cpus)");
    }
  }
  std::vector<bool> want(cores.size(), false);
  int candidates = 0;
  for (auto& c : cores)
    for (int cpu : cpus)
      if (c->cpu == cpu) {
        want[static_cast<std::size_t>(c->index)] = true;
        ++candidates;
      }
  if (b.max_cores < 0)
    bad_budget("max_cores=" + std::to_string(b.max_cores), "must be 0 (all) or more");
  int enabled = b.max_cores == 0 || b.max_cores > candidates ? candidates : b.max_cores;
  if (enabled == 0) bad_budget("max_cores", "the budget must allow at least one core");
  // max_cores: the first `enabled` candidates, by core index.
  int kept = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    if (want[i] && ++kept > enabled) want[i] = false;
  if (b.min_cores < 0 || b.min_cores > enabled)
    bad_budget("min_cores=" + std::to_string(b.min_cores),
               "must be 0.." + std::to_string(enabled) + " (the cores the budget allows)");

  std::lock_guard<std::mutex> budget_lock(budget_mu);
  // 2.
  std::vector<Core*> leaving, back;
  {
    std::lock_guard<std::mutex> lock(idle_mu);
    for (auto& cp : cores) {
      Core* c = cp.get();
      const bool w = want[static_cast<std::size_t>(c->index)];
      if (c->enabled.load(std::memory_order_relaxed) == w) continue;
      c->enabled.store(w, std::memory_order_seq_cst);
      if (w) {
        back.push_back(c);
      } else if (c->idle_listed) {
        unlist_idle_locked(c);
        n_spinning.fetch_add(1, std::memory_order_seq_cst);  // the woken core inherits it
        leaving.push_back(c);
      }
    }
    min_cores = b.min_cores;
    n_enabled = enabled;
  }
  // 3.
  if (!starting) {
    for (Core* c : leaving) {
      c->park_word.store(0, std::memory_order_release);  // pairs with P4's acquire load
      wake_core(c);
    }
    for (Core* c : back) {
      std::uint32_t expected = kParkDisabled;
      if (c->park_word.compare_exchange_strong(expected, 0, std::memory_order_seq_cst))
        wake_core(c);
    }
    // 4.
    for (;;) {
      int awake;
      {
        std::lock_guard<std::mutex> lock(idle_mu);
        awake = n_enabled - n_idle.load(std::memory_order_relaxed);
      }
      if (awake >= min_cores || !grant_core(/*stamp=*/false)) break;
    }
    budget_changes.fetch_add(1, std::memory_order_relaxed);
  }
  budget = b;
  if (!b.cpus.empty()) budget.cpus = format_cpulist(cpus);
}

CoreBudget RuntimeImpl::core_budget() const {
  std::lock_guard<std::mutex> lock(budget_mu);
  return budget;
}

}  // namespace upcall::rt

namespace upcall {
void Runtime::set_core_budget(const CoreBudget& budget) { impl_->set_core_budget(budget); }
CoreBudget Runtime::core_budget() const { return impl_->core_budget(); }
}  // namespace upcall
