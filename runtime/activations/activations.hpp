// runtime/activations/activations.hpp: the scheduler-activation roles of a kernel thread
// (DESIGN.md "Entities"): the standby that watches a core's holder and takes the core over
// when it blocks in the kernel (standby.cpp), the returning thread that hands its fiber back
// (region.cpp), the appointment of the next standby after a takeover, and the manager thread
// that replenishes spares off the takeover path and, without BPF, runs the watchdog
// (manager.cpp). The numbered protocol is in runtime/DESIGN.md, section "Activations".
#pragma once

#include <cstdint>

#include "runtime/core/core.hpp"

namespace upcall::rt {

// Standby role: watch the holder of a->core; returns when a took the core (role active), or at
// shutdown, or when a is no longer the standby.
void run_standby(Activation* a);
// First runtime entry after a takeover: raise a to SCHED_OTHER, appoint the next standby.
void finish_takeover(Activation* a) noexcept;
// Gives core c a standby: a spare if there is one, else pokes the manager to create one.
void appoint_standby(Core* c) noexcept;
// Ends this thread's takeover window (rescue.cpp; waits out a promotion by the alert thread).
void close_takeover_window(Activation* a) noexcept;
// The holder leaves an intentional wait: clear the intent and wake a sleeping standby.
void holder_unparked(Activation* a) noexcept;
void holder_parking(Activation* a) noexcept;
// Returning thread: hand the fiber back to a run queue (region.cpp).
void hand_back(Activation* a, Fiber* f) noexcept;
// Makes a (a thread that holds nothing) the standby of its core if the core has none and
// activations are on; returns false when it should be a spare instead.
bool become_standby(Activation* a);
// SCHED_IDLE <-> SCHED_OTHER for the calling thread. 0 or a negative errno.
int set_sched_idle(Activation* a, bool idle) noexcept;

}  // namespace upcall::rt
