// runtime/activations/standby.cpp: the standby of a core and the takeover (runtime/DESIGN.md,
// "Activations"). The standby is a SCHED_IDLE thread pinned to its core's CPU: the kernel runs
// it only when nothing else is runnable there (plus a small fair share, which it gives back at
// once). Each time it runs it reads the holder's status word and acts:
//   blocked, outside a runtime region  -> claim the core (one CAS on Core::owner) and run the
//                                         core's next fiber; promotion to SCHED_OTHER and the
//                                         next standby come at its first runtime entry;
//   blocked inside a runtime region    -> refused (counted); keep watching;
//   blocked on purpose (intent PARKED) -> sleep on Core::standby_word until the holder leaves
//                                         its park (holder_unparked wakes it; with
//                                         UPCALL_STANDBY=lazy only a kernel alert about a
//                                         block of the holder does, rescue.cpp);
//   stopped/traced, running, preempted -> sched_yield() at once.
#include <sched.h>

#include <cerrno>

#include "runtime/activations/activations.hpp"
#include "runtime/activations/backend.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "runtime/core/signals.hpp"

namespace upcall::rt {

namespace {
constexpr std::uint32_t kIntentParked = 1;  // UPCALL_INTENT_PARKED (kernel-glue/upcall_abi.h)

inline void cpu_relax() { __builtin_ia32_pause(); }

// Sleeps while the holder `h` is parked on purpose. Dekker pairing with holder_unparked:
// standby stores standby_word = 1 (seq_cst) then re-reads the intent; the holder clears the
// intent, fences (seq_cst), then exchanges standby_word. One of them sees the other.
void standby_sleep(Activation* a, Core* c, Activation* h) {
  RuntimeImpl* rt = a->rt;
  c->standby_word.store(1, std::memory_order_seq_cst);
  StatusView st;
  const int slot = h->slot.load(std::memory_order_acquire);
  if (slot >= 0 && rt->backend->read(static_cast<std::uint32_t>(slot), &st) == 0 &&
      st.state == ThreadRunState::blocked && st.intent == kIntentParked && c->holder() == h &&
      a->role == Role::standby && !rt->stopped.load(std::memory_order_acquire)) {
    c->act.standby_sleeps.fetch_add(1, std::memory_order_relaxed);
    futex_wait(&c->standby_word, 1, -1);
  }
  c->standby_word.store(0, std::memory_order_relaxed);
}
}  // namespace

int set_sched_idle(Activation* a, bool idle) noexcept {
  if (a->sched_idle == idle) return 0;
  sched_param p{};
  p.sched_priority = 0;
  if (sched_setscheduler(0, idle ? SCHED_IDLE : SCHED_OTHER, &p) != 0) return -errno;
  a->sched_idle = idle;
  return 0;
}

void run_standby(Activation* a) {
  Core* c = a->core;
  RuntimeImpl* rt = a->rt;
  set_sched_idle(a, true);
  std::uint32_t refused_seq = 0;
  unsigned spins = 0;
  for (;;) {
    if (rt->stopped.load(std::memory_order_acquire) || a->role != Role::standby) return;
    const std::uintptr_t w = c->owner.load(std::memory_order_acquire);
    Activation* h = reinterpret_cast<Activation*>(w & ~Core::kInRegion);
    const int slot = h ? h->slot.load(std::memory_order_acquire) : -1;
    StatusView st;
    if (!h || h == a || slot < 0 || rt->backend->read(static_cast<std::uint32_t>(slot), &st) != 0) {
      sched_yield();
      continue;
    }
    if (st.state != ThreadRunState::blocked) {
      // The holder can run: give the CPU back at once, or this SCHED_IDLE thread would keep
      // whole ~4 ms slices of a busy CPU now and then (measured, shared/DESIGN.md).
      spins = 0;
      sched_yield();
      continue;
    }
    if (st.intent == kIntentParked) {
      standby_sleep(a, c, h);
      continue;
    }
    if (!is_block_state(st.prev_state)) {  // SIGSTOP, ptrace: not a block
      sched_yield();
      continue;
    }
    if (w & Core::kInRegion) {
      // Blocked inside the runtime (a lock, a fault): never taken over. The CPU is otherwise
      // idle, so keep watching; count each block once.
      if (st.seq != refused_seq) {
        refused_seq = st.seq;
        c->act.refused.fetch_add(1, std::memory_order_relaxed);
      }
      if (++spins % 64 == 0) sched_yield();
      cpu_relax();
      continue;
    }
    if (st.cpu >= 0 && st.cpu != c->cpu) {
      // The holder ran elsewhere: someone re-pinned the runtime's threads, and the same-CPU
      // argument of the region bit no longer holds (DESIGN.md section 10). No takeover.
      c->act.refused.fetch_add(1, std::memory_order_relaxed);
      announce_once("repinned", "upcall: a runtime thread runs off its core's CPU (re-pinned?); "
                                "scheduler activations are off for that core");
      sched_yield();
      continue;
    }
    // Written before the claim; the CAS's release publishes it to the returning thread,
    // which reads it after observing the loss (acquire).
    h->blocked_since_ns.store(st.last_switch_ns, std::memory_order_relaxed);
    h->blocked_state.store(st.prev_state, std::memory_order_relaxed);
    // Re-validate right before the claim: if the holder ran since our snapshot (it preempted
    // this SCHED_IDLE thread when it woke), its status sequence moved, and the core word may
    // have come back to the same value (ABA) while the holder now runs user code. Claiming
    // then would be a spurious takeover. The holder cannot run between this check and the CAS
    // unless it preempts us in between, which leaves a window of a few instructions.
    StatusView again;
    if (rt->backend->read(static_cast<std::uint32_t>(slot), &again) != 0 || again.seq != st.seq ||
        again.state != ThreadRunState::blocked)
      continue;
    // Open the takeover window before the claim (DESIGN.md "The takeover window", step 1):
    // from the claim until finish_takeover nobody watches this core, so a switch-out of this
    // thread makes the kernel alert the alert thread. Two plain stores, no system call.
    const int my_slot = a->slot.load(std::memory_order_relaxed);
    // release: the alert thread's CAS 1 -> 2 (acquire) then sees this thread's sched_idle.
    a->window.store(1, std::memory_order_release);
    if (my_slot >= 0) rt->backend->set_watch(static_cast<std::uint32_t>(my_slot), kWatchWindow);
    std::uintptr_t expected = w;
    if (!c->owner.compare_exchange_strong(expected,
                                          reinterpret_cast<std::uintptr_t>(a) | Core::kInRegion,
                                          std::memory_order_acq_rel, std::memory_order_relaxed)) {
      if (my_slot >= 0) rt->backend->set_watch(static_cast<std::uint32_t>(my_slot), kWatchNone);
      close_takeover_window(a);  // the alert thread only promotes holders: never ours here
      set_sched_idle(a, true);   // (a no-op unless that argument is ever wrong)
      continue;
    }
    // The core is ours. Everything else (SCHED_OTHER, the next standby) waits until the first
    // fiber ran: run_active records when that happens, finish_takeover does the rest.
    const std::int64_t now = now_ns();
    if (st.last_switch_ns > 0 && now > st.last_switch_ns) rt->hist_detect.record(now - st.last_switch_ns);
    c->act.blocks.fetch_add(1, std::memory_order_relaxed);
    c->act.takeovers.fetch_add(1, std::memory_order_relaxed);
    Activation* self = a;
    c->standby.compare_exchange_strong(self, nullptr, std::memory_order_acq_rel);
    a->role = Role::active;
    a->pending_promotion = true;
    a->takeover_ns = st.last_switch_ns > 0 ? st.last_switch_ns : now;
    // The blocked fiber is in flight until its thread hands it back (quiescence, shutdown).
    rt->blocking_inflight.fetch_add(1, std::memory_order_acq_rel);
    return;
  }
}

void finish_takeover(Activation* a) noexcept {
  a->pending_promotion = false;
  Core* c = a->core;
  RuntimeImpl* rt = a->rt;
  // Close the takeover window (DESIGN.md "The takeover window", step 4); if the alert thread
  // is promoting this thread, wait until it is done (it wrote sched_idle).
  close_takeover_window(a);
  const int rc = set_sched_idle(a, false);
  if (rc < 0) rt->promotion_failures.fetch_add(1, std::memory_order_relaxed);
  if (a->promote_only) {  // a poll-mode core back from SCHED_IDLE (runtime/cores): no takeover
    a->promote_only = false;
    return;
  }
  appoint_standby(c);
  // After the appointment: a switch-out between the two cannot go unnoticed.
  const int slot = a->slot.load(std::memory_order_relaxed);
  if (slot >= 0) rt->backend->set_watch(static_cast<std::uint32_t>(slot), kWatchNone);
  a->dozing = false;
}

void appoint_standby(Core* c) noexcept {
  RuntimeImpl* rt = c->rt;
  // Appoint the next standby from the spares; the manager creates one if there is none
  // (never a thread creation on this path).
  Activation* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(c->spare_mu);
    if (!c->spares.empty()) {
      p = c->spares.back();
      c->spares.pop_back();
      p->listed_spare = false;
    }
  }
  if (p) {
    Activation* none = nullptr;
    if (c->standby.compare_exchange_strong(none, p, std::memory_order_acq_rel)) {
      // release: pairs with the spare's acquire of wake_word; it reads its new role after.
      p->wake_word.store(kWakeStandby, std::memory_order_release);
      futex_wake(&p->wake_word, 1);
      return;
    }
    // A returning thread became the standby meanwhile: p goes back to the pool.
    std::lock_guard<std::mutex> lock(c->spare_mu);
    c->spares.push_back(p);
    p->listed_spare = true;
    return;
  }
  if (!c->standby.load(std::memory_order_acquire)) rt->poke_manager();
}

void holder_parking(Activation* a) noexcept {
  RuntimeImpl* rt = a->rt;
  const int slot = a->slot.load(std::memory_order_relaxed);
  if (rt->activations_on && slot >= 0) rt->backend->set_intent(static_cast<std::uint32_t>(slot), kIntentParked);
}

void holder_unparked(Activation* a) noexcept {
  RuntimeImpl* rt = a->rt;
  const int slot = a->slot.load(std::memory_order_relaxed);
  if (!rt->activations_on || slot < 0) return;
  rt->backend->set_intent(static_cast<std::uint32_t>(slot), 0);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with standby_sleep's store
  Core* c = a->core;
  if (rt->cfg.lazy_standby) {
    // Lazy standby (DESIGN.md section 10, "Lazy standby"): leave a sleeping standby asleep and
    // ask the kernel for an alert if this thread blocks; the alert thread wakes the standby.
    // Same Dekker pairing as the eager wake: if we read 0, the standby reads intent NONE after
    // its store and does not sleep.
    const bool asleep = c->standby_word.load(std::memory_order_seq_cst) == 1;
    if (asleep != a->dozing) {
      rt->backend->set_watch(static_cast<std::uint32_t>(slot), asleep ? kWatchBlocks : kWatchNone);
      a->dozing = asleep;
    }
    return;
  }
  if (c->standby_word.exchange(0, std::memory_order_seq_cst) == 1) {
    futex_wake(&c->standby_word, 1);
    c->act.standby_wakes.fetch_add(1, std::memory_order_relaxed);
  }
}

bool become_standby(Activation* a) {
  RuntimeImpl* rt = a->rt;
  if (!rt->standby_mode || rt->stopped.load(std::memory_order_acquire)) return false;
  Activation* none = nullptr;
  if (!a->core->standby.compare_exchange_strong(none, a, std::memory_order_acq_rel)) return false;
  a->role = Role::standby;
  return true;
}

}  // namespace upcall::rt
