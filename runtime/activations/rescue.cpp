// runtime/activations/rescue.cpp: the takeover window and its kernel alert (runtime/DESIGN.md,
// "The takeover window"). A standby that claims its core runs the core's first fiber before it
// raises its own policy and appoints the next standby (finish_takeover, at its first runtime
// entry): those cost system calls that would otherwise sit between the block and the first
// fiber. Until then nobody watches the core. If the new holder blocks in that window, or is
// preempted while still at SCHED_IDLE, the BPF program sees the switch-out (the thread's
// status word has watch = ALERT) and sends an alert that wakes the bpf backend's alert thread,
// which lands here. So does a block of a holder whose standby sleeps (UPCALL_STANDBY=lazy,
// watch = BLOCKS):
//   blocked, core without standby          -> appoint one (a spare, else the manager makes
//                                             one), so the block is taken over;
//   blocked, the core's standby asleep     -> wake it (lazy standby);
//   preempted, window open at SCHED_IDLE   -> raise the thread to SCHED_OTHER now, so a
//                                             normal-priority or SCHED_IDLE neighbour does
//                                             not keep the core's fibers off the CPU.
// Window states (Activation::window): 0 closed; 1 open (claimed, at SCHED_IDLE); 2 the alert
// thread is promoting the thread; 3 open, promoted by the alert thread.
#include <sched.h>

#include "runtime/activations/activations.hpp"
#include "runtime/activations/backend.hpp"
#include "runtime/core/runtime_impl.hpp"

namespace upcall::rt {

void close_takeover_window(Activation* a) noexcept {
  for (;;) {
    std::uint8_t w = a->window.load(std::memory_order_acquire);
    if (w == 0) break;
    if (w == 2) {  // the alert thread is promoting us; it ends with 3 (release)
      sched_yield();
      continue;
    }
    // acquire on success: pairs with the alert thread's release store of 3 (sched_idle).
    if (a->window.compare_exchange_weak(w, 0, std::memory_order_acq_rel,
                                        std::memory_order_acquire))
      break;
  }
}

void on_rescue_alert(void* owner, bool preempted) noexcept {
  auto* a = static_cast<Activation*>(owner);
  RuntimeImpl* rt = a->rt;
  if (rt->stopped.load(std::memory_order_acquire)) return;
  Core* c = a->core;
  // Only a holder is promoted: a standby between opening its window and its claim CAS (the
  // CAS may still fail) must stay SCHED_IDLE.
  if (preempted) {
    std::uint8_t open = 1;
    if (c->holder() == a &&
        a->window.compare_exchange_strong(open, 2, std::memory_order_acq_rel,
                                          std::memory_order_relaxed)) {
      // The thread cannot close the window (nor read sched_idle) until we store 3 or 1.
      // Check the holder again now that it cannot: between the first check and the CAS it may
      // have finished its takeover, lost the core and opened a window again as a standby about
      // to claim, and a standby must stay SCHED_IDLE.
      if (c->holder() != a) {
        a->window.store(1, std::memory_order_release);
        return;
      }
      sched_param p{};
      p.sched_priority = 0;
      if (sched_setscheduler(a->tid, SCHED_OTHER, &p) == 0) {
        a->sched_idle = false;
        c->act.rescue_promotions.fetch_add(1, std::memory_order_relaxed);
      }  // else finish_takeover tries again and counts the failure
      a->window.store(3, std::memory_order_release);
    }
    // A preempted holder needs no standby yet: if it blocks, its BLOCKED alert follows.
    return;
  }
  if (c->holder() != a) return;
  if (!c->standby.load(std::memory_order_acquire)) {
    c->act.rescue_standbys.fetch_add(1, std::memory_order_relaxed);
    appoint_standby(c);
  } else if (c->standby_word.exchange(0, std::memory_order_seq_cst) == 1) {
    // Lazy standby: the standby sleeps (holder_unparked left it so); the holder blocked.
    futex_wake(&c->standby_word, 1);
    c->act.standby_wakes.fetch_add(1, std::memory_order_relaxed);
    c->act.rescue_wakes.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace upcall::rt
