// runtime/core/api.cpp: the public API's entry points (upcall/runtime.hpp, task.hpp,
// this_task.hpp, blocking.hpp, policy.hpp) mapped onto the runtime internals. Each function
// first works out where it is called from: a fiber on a held core, a kernel thread inside
// upcall::blocking, or a plain thread.
#include <sched.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "runtime/activations/region.hpp"
#include "runtime/core/check.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "runtime/core/signals.hpp"
#include "runtime/sync/cancel.hpp"
#include "runtime/sync/parker.hpp"
#include "upcall/upcall.hpp"

namespace upcall {

using rt::Activation;
using rt::Core;
using rt::Fiber;
using rt::from_handle;
using rt::RuntimeImpl;

namespace rt {
void blocking_return(Activation* a, Fiber* self);  // switch.cpp
}

namespace {
// The fiber the calling thread runs, even inside upcall::blocking (for id/name).
Fiber* running_fiber_any() {
  Activation* a = rt::current_activation();
  return a ? a->current : nullptr;
}
}  // namespace

// ---------------------------------------------------------------------------------- Runtime

Runtime::Runtime(Options opts) : impl_(std::make_unique<RuntimeImpl>(opts)) {}

Runtime::~Runtime() {
  Fiber* f = rt::current_fiber();
  if (f && f->rt == impl_.get()) {
    std::fprintf(stderr, "upcall: fatal: a Runtime was destroyed from one of its own fibers\n");
    std::terminate();
  }
  impl_->shutdown();
  // Fibers still referenced (a JoinHandle kept past the Runtime, or a fiber leaked by the
  // shutdown above) live in the runtime's stack slots, and a handle's later join/detach touches
  // them: keep that memory (the threads are gone) rather than let the handle read unmapped pages.
  if (const std::uint64_t held = impl_->live_fibers()) {
    rt::announce_once("runtime-leaked",
                      "upcall: a Runtime was destroyed while " + std::to_string(held) +
                          " of its fibers were still referenced (JoinHandles alive, or fibers "
                          "that never finished); its memory is kept so those handles stay safe");
    static std::mutex kept_mu;
    static auto* kept = new std::vector<rt::RuntimeImpl*>;  // reachable: not a leak report
    std::lock_guard<std::mutex> lock(kept_mu);
    kept->push_back(impl_.release());
    return;
  }
  impl_.reset();
}

const EffectiveConfig& Runtime::config() const { return impl_->cfg; }
std::uint64_t Runtime::live_fibers() const { return impl_->live_fibers(); }
std::uint64_t Runtime::stacks_in_use() const { return impl_->stacks_in_use(); }
std::vector<BlockRecord> Runtime::recent_blocks() const { return impl_->block_log.snapshot(); }

RuntimeStats Runtime::stats() const {
  RuntimeStats s;
  auto ld = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  for (const auto& c : impl_->cores) {
    CoreStats cs;
    cs.core = c->index;
    cs.cpu = c->cpu;
    cs.switches = ld(c->counters.switches);
    cs.spawns = ld(c->counters.spawns);
    cs.steals = ld(c->counters.steals);
    cs.stolen_fibers = ld(c->counters.stolen_fibers);
    cs.parks = ld(c->counters.parks);
    cs.wakeups_sent = ld(c->counters.wakeups_sent);
    cs.blocking_handoffs = ld(c->counters.blocking_handoffs);
    cs.spares_created = ld(c->counters.spares_created);
    cs.timers_fired = ld(c->counters.timers_fired);
    cs.enabled = c->enabled.load(std::memory_order_relaxed);
    cs.released = c->released.load(std::memory_order_relaxed);
    cs.grants = ld(c->alloc.grants);
    cs.releases = ld(c->alloc.releases);
    s.cores.push_back(cs);
  }
  s.fibers_spawned = impl_->fibers_spawned();
  s.fibers_finished = impl_->fibers_finished();
  s.blocking_inline = ld(impl_->blocking_inline);
  s.threads = static_cast<std::uint64_t>(impl_->thread_count.load());
  ActivationStats& a = s.activations;
  a.backend = impl_->cfg.activations;
  for (const auto& c : impl_->cores) {
    a.blocks += ld(c->act.blocks);
    a.takeovers += ld(c->act.takeovers);
    a.refused += ld(c->act.refused);
    a.no_standby += ld(c->act.no_standby);
    a.handbacks += ld(c->act.handbacks);
    a.standby_sleeps += ld(c->act.standby_sleeps);
    a.standby_wakes += ld(c->act.standby_wakes);
    a.rescue_standbys += ld(c->act.rescue_standbys);
    a.rescue_promotions += ld(c->act.rescue_promotions);
    a.rescue_wakes += ld(c->act.rescue_wakes);
    a.blocks_uninterruptible += ld(c->act.blocks_d);
  }
  a.blocks_interruptible = a.handbacks > a.blocks_uninterruptible
                               ? a.handbacks - a.blocks_uninterruptible
                               : 0;
  a.promotion_failures = ld(impl_->promotion_failures);
  auto summary = [](const rt::LatencyHistogram& h) {
    LatencySummary l;
    l.count = h.count();
    l.p50 = h.percentile(50);
    l.p99 = h.percentile(99);
    l.max = h.max();
    l.p90 = h.percentile(90);
    l.p999 = h.percentile(99.9);
    return l;
  };
  a.detect = summary(impl_->hist_detect);
  a.upcall = summary(impl_->hist_upcall);
  a.block = summary(impl_->hist_block);
  a.resume = summary(impl_->hist_resume);
  CoreAllocStats& ca = s.core_alloc;
  ca.congestion_us = impl_->cfg.congestion_us;
  {
    const CoreBudget b = impl_->core_budget();
    ca.min_cores = b.min_cores;
    ca.max_cores = b.max_cores;
  }
  std::vector<int> enabled_cpus;
  for (const auto& c : impl_->cores) {
    if (c->enabled.load(std::memory_order_relaxed)) enabled_cpus.push_back(c->cpu);
    ca.grants += ld(c->alloc.grants);
    ca.grants_idle += ld(c->alloc.grants_idle);
    ca.releases += ld(c->alloc.releases);
    ca.congested += ld(c->alloc.congested);
  }
  ca.cpus = format_cpulist(enabled_cpus);
  ca.enabled_cores = static_cast<int>(enabled_cpus.size());
  ca.congested += ld(impl_->cong_inject);
  ca.checks = ld(impl_->cong_checks);
  ca.backstop_checks = ld(impl_->cong_backstop);
  ca.budget_changes = ld(impl_->budget_changes);
  ca.grant = summary(impl_->hist_grant);
  s.kernel_events.consumed = impl_->kevents_on;
  impl_->kevents.fill(&s.kernel_events);
  return s;
}

// ---------------------------------------------------------------------------------- spawn/join

namespace detail {

Runtime* current_runtime_or_null() noexcept { return nullptr; }

RawTask fiber_create(Runtime* runtime, const SpawnSpec& spec) {
  rt::check_not_fork_child("spawn");
  rt::Region region;  // may use the core's fiber cache
  Core* here = rt::current_core();
  RuntimeImpl* r = nullptr;
  if (runtime) {
    r = runtime->impl();
  } else {
    Fiber* cur = rt::current_fiber();
    if (!cur)
      throw std::logic_error(
          "upcall::spawn called outside a fiber: use Runtime::spawn or Runtime::block_on");
    r = cur->rt;
  }
  Core* local = (here && here->rt == r) ? here : nullptr;
  if (!local && r->stopping.load(std::memory_order_acquire))
    throw std::logic_error("upcall: spawn on a runtime that is shutting down");
  Fiber* f = r->alloc_fiber(local, spec);
  return {rt::to_handle(f), f->storage};
}

void fiber_start(FiberHandle* h) {
  rt::Region region;  // may push onto the core's run queue
  Fiber* f = from_handle(h);
  Core* here = rt::current_core();
  Core* local = (here && here->rt == f->rt) ? here : nullptr;
  if (local) rt::bump(local->counters.spawns);
  rt::set_state(f, rt::FiberState::Ready);
  f->rt->make_ready(f, TaskEvent::task_new, local);
}

bool fiber_done(FiberHandle* h) {
  return from_handle(h)->join_word.load(std::memory_order_acquire) == 1;
}

void fiber_join(FiberHandle* h) {
  Fiber* f = from_handle(h);
  // acquire: pairs with the exiting fiber's release exchange; the result is visible.
  if (f->join_word.load(std::memory_order_acquire) == 1) return;
  if (running_fiber_any() == f)
    throw std::logic_error("upcall::JoinHandle::join: a fiber cannot join itself");
  if (Fiber* self = running_fiber_any(); self && self->los_lock)
    throw std::system_error(std::make_error_code(std::errc::resource_deadlock_would_occur),
                            "upcall::JoinHandle::join inside the task scheduler lock "
                            "(los::task_lock): the join would have to switch");
  const rt::Waker me = rt::current_waker();
  std::uintptr_t expected = 0;
  if (!f->join_word.compare_exchange_strong(expected, me, std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
    UPCALL_CHECK(expected == 1, "two joiners on one fiber");
    return;
  }
  // The joining fiber (the waker registered above), or nullptr for a thread.
  Fiber* self = (me & 1u) ? nullptr : reinterpret_cast<Fiber*>(me);
  if (self) rt::set_wait_reason(self, rt::WaitReason::Join);
  while (f->join_word.load(std::memory_order_acquire) != 1) {
    // A cancellation point (DESIGN.md section 14): a deleted joiner takes its waker back
    // (CAS me -> 0; it fails only if the target finished meanwhile, and then the exit's
    // unpark is a spurious wake-up for later) and unwinds; the handle stays joinable.
    if (self && rt::cancel_deliverable(self)) {
      std::uintptr_t mine = me;
      f->join_word.compare_exchange_strong(mine, 0, std::memory_order_acq_rel,
                                           std::memory_order_acquire);
      rt::set_wait_reason(self, rt::WaitReason::None);
      detail::throw_task_deleted();
    }
    rt::park_current();
  }
  if (self) rt::set_wait_reason(self, rt::WaitReason::None);
}

void fiber_release(FiberHandle* h, bool joined) {
  rt::Region region;  // the last release returns the stack to the core's cache
  Fiber* f = from_handle(h);
  f->joined = joined;
  f->rt->drop_ref(f);
}

void fiber_abandon(FiberHandle* h) noexcept {
  rt::Region region;
  Fiber* f = from_handle(h);
  Core* here = rt::current_core();
  f->rt->free_fiber(f, (here && here->rt == f->rt) ? here : nullptr);
}

std::uint64_t fiber_id(FiberHandle* h) { return from_handle(h)->id; }

void report_unjoined_exception(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const los::TaskDeleted&) {
    // A deleted task (los::task_delete) nobody joined: its deletion was asked for, not an error.
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "upcall: a detached fiber ended with an exception: %s\n", ex.what());
  } catch (...) {
    std::fprintf(stderr, "upcall: a detached fiber ended with a non-std exception\n");
  }
}

// ---------------------------------------------------------------------------------- blocking

bool blocking_enter() {
  rt::Region region;  // hands the core over from inside the runtime
  Activation* a = rt::current_activation();
  Fiber* f = rt::current_fiber();
  if (!f) return false;
  RuntimeImpl* r = f->rt;
  r->blocking_inflight.fetch_add(1, std::memory_order_acq_rel);
  if (!r->hand_core_to_spare(a)) {
    r->blocking_inflight.fetch_sub(1, std::memory_order_acq_rel);
    r->blocking_inline.fetch_add(1, std::memory_order_relaxed);
    rt::announce_once("blocking-cap",
                      "upcall: upcall::blocking hit the cap of " +
                          std::to_string(rt::kMaxThreadsPerCore) +
                          " kernel threads per core; blocking calls beyond it run in place and "
                          "stall their core (counted in RuntimeStats::blocking_inline)");
    return false;
  }
  rt::set_state(f, rt::FiberState::Blocking);
  return true;
}

void blocking_exit() {
  Activation* a = rt::current_activation();
  Fiber* f = a->current;
  rt::blocking_return(a, f);
  rt::set_state(f, rt::FiberState::Running);
  rt::region_clear_for_user();  // resumed by a holder in its region; back to user code
}

}  // namespace detail

// ---------------------------------------------------------------------------------- this_task

namespace this_task {

// yield() is defined in runtime/core/switch.cpp, where the switch path inlines into it.

void sleep_until(std::chrono::steady_clock::time_point deadline) {
  bool cancelled = false;
  {
    rt::Region region;
    Fiber* self = rt::current_fiber();
    if (!self) {
      std::this_thread::sleep_until(deadline);
      return;
    }
    if (self->los_lock)
      throw std::system_error(std::make_error_code(std::errc::resource_deadlock_would_occur),
                              "upcall::this_task::sleep inside the task scheduler lock "
                              "(los::task_lock): the sleep would have to switch");
    // steady_clock is CLOCK_MONOTONIC on Linux, the clock of now_ns().
    const std::int64_t d = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               deadline.time_since_epoch())
                               .count();
    if (d <= rt::now_ns()) {
      yield();
      return;
    }
    rt::set_wait_reason(self, rt::WaitReason::Sleep);
    while (rt::now_ns() < d) {
      // A cancellation point (DESIGN.md section 14). Also read before the first park: a delete
      // that came while we ran left a permit that an earlier park may have consumed.
      if (rt::cancel_deliverable(self)) {
        rt::cancel_forget_timer(self);
        cancelled = true;
        break;
      }
      rt::park_current_until(d);
    }
    rt::set_wait_reason(self, rt::WaitReason::None);
  }
  if (cancelled) detail::throw_task_deleted();  // outside the region: throwing allocates
}

std::uint64_t id() {
  Fiber* f = running_fiber_any();
  return f ? f->id : 0;
}

std::string_view name() {
  Fiber* f = running_fiber_any();
  return f ? std::string_view(f->name) : std::string_view();
}

void set_name(std::string_view n) {
  Fiber* f = running_fiber_any();
  if (!f) return;
  rt::store_name(f, n.data(), n.size());  // the monitor may copy it concurrently
}

// Runtime entries: a fiber whose thread lost its core (a taken-over block) is handed back
// first, so a fiber always sees itself as a fiber on a core here.
bool in_fiber() {
  rt::Region region;
  return rt::current_fiber() != nullptr;
}

int core() {
  rt::Region region;
  Core* c = rt::current_core();
  return c ? c->index : -1;
}

}  // namespace this_task

// ---------------------------------------------------------------------------------- TaskRef

std::uint64_t TaskRef::id() const { return static_cast<Fiber*>(p_)->id; }
// Relaxed atomic: los::task_pri_set may change it from another thread.
int TaskRef::priority() const { return rt::load_relaxed(static_cast<Fiber*>(p_)->priority); }
const char* TaskRef::name() const { return static_cast<Fiber*>(p_)->name; }
TaskRef& TaskRef::link() {
  static_assert(sizeof(TaskRef) == sizeof(void*));
  return *reinterpret_cast<TaskRef*>(&static_cast<Fiber*>(p_)->policy_link);
}

}  // namespace upcall
