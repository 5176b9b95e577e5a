// upcall/stats.hpp: counters a Runtime exposes. A snapshot is assembled from per-core relaxed
// counters, so the fields are individually exact but not taken at one instant.
#pragma once

#include <cstdint>
#include <vector>

namespace upcall {

struct CoreStats {
  int core = 0;
  int cpu = 0;
  std::uint64_t switches = 0;           // fiber context switches on this core
  std::uint64_t spawns = 0;             // fibers spawned from this core
  std::uint64_t steals = 0;             // successful steal operations by this core
  std::uint64_t stolen_fibers = 0;      // fibers taken by those steals
  std::uint64_t parks = 0;              // times the core slept in the kernel while idle
  std::uint64_t wakeups_sent = 0;       // times this core woke a parked core
  std::uint64_t blocking_handoffs = 0;  // upcall::blocking calls that handed the core to a spare
  std::uint64_t spares_created = 0;     // kernel threads created for this core beyond the first
  std::uint64_t timers_fired = 0;
};

struct RuntimeStats {
  std::vector<CoreStats> cores;
  std::uint64_t fibers_spawned = 0;
  std::uint64_t fibers_finished = 0;
  std::uint64_t blocking_inline = 0;  // blocking() calls run in place: the spare-thread cap was hit
  std::uint64_t threads = 0;          // kernel threads the runtime owns now
};

}  // namespace upcall
