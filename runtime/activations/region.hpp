// runtime/activations/region.hpp: runtime regions. A takeover must never happen while the
// holder is inside the runtime's own code (it would leave two threads mutating the core's
// owner-only state), so the holder marks "I am in the runtime" in the core word
// (Core::owner | kInRegion) and the standby's claim (a CAS expecting the bit clear) is refused
// inside. The bit is set exactly while the holder executes runtime code: its scheduler loop
// always, a fiber between region_enter and the matching region_exit. Every switch happens
// inside a region, so a fiber always resumes with the bit set and clears it when it returns to
// user code.
//
// region_enter is also where a *returning* thread is caught: a thread whose core was taken
// while its fiber blocked in user code keeps running that fiber until its next runtime entry;
// there it finds that it no longer holds the core, hands the fiber back to a run queue and
// becomes a spare (hand_back); the entry then completes on whichever thread resumes the fiber.
#pragma once

#include "runtime/core/core.hpp"

namespace upcall::rt {

// Enters the runtime from the calling context and returns the core it holds, or nullptr when
// it holds none (a plain thread, a spare, or a fiber inside upcall::blocking). Regions nest.
Core* region_enter() noexcept;
// Leaves the region entered by the matching region_enter.
void region_exit() noexcept;
// Clears the region bit for a fiber that resumed outside any region_enter (a fiber's first
// run, the return from upcall::blocking): it is about to run user code.
void region_clear_for_user() noexcept;

class Region {
 public:
  Region() noexcept : core_(region_enter()) {}
  ~Region() { region_exit(); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  Core* core() const noexcept { return core_; }

 private:
  Core* core_;
};

}  // namespace upcall::rt
