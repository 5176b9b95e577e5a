// runtime/cores/cores.hpp: constants of core reallocation (runtime/DESIGN.md section 15, "Core
// reallocation"): the congestion check and grants (congestion.cpp), the backstop thread
// (ticker.cpp) and the core budget (budget.cpp). The idle loop that spins, parks, polls and
// releases lives with the rest of the idle protocol in runtime/sched/scheduler.cpp.
#pragma once

#include <cstdint>

namespace upcall::rt {

// Core::park_word while a core out of the budget sleeps (1 is the idle park of section 5).
inline constexpr std::uint32_t kParkDisabled = 2;

// The backstop thread checks every kBackstopNs while some core is busy and another is parked:
// it bounds detection when no busy core enters the runtime (a fiber that computes without
// yielding). Not the interval itself: a thread woken every 5 us costs about a CPU on this VM
// kind (each timer wake-up is a few microseconds of hypervisor exits), which is exactly the
// dedicated spinning core a 2-CPU machine cannot afford. 50 us costs ~20,000 wake-ups/s while
// the runtime is partly busy; bench/cores measures the bound it gives (BM_Cores_StuckFiber*).
inline constexpr std::int64_t kBackstopNs = 50'000;
// ...and every kTickerIdleNs when no core is busy (it notices cores that became busy).
inline constexpr std::int64_t kTickerIdleNs = 1'000'000;
// Poll mode: an idle core polls at its normal policy this long before dropping to SCHED_IDLE
// (the drop costs ~1.5 us, shared/DESIGN.md; short gaps between requests should not pay it).
inline constexpr std::int64_t kPollLowerNs = 20'000;
// A core kept awake by min_cores re-tries parking this often (the budget may have changed).
inline constexpr std::int64_t kReservedRecheckNs = 1'000'000;

}  // namespace upcall::rt
