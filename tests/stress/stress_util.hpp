// tests/stress/stress_util.hpp: shared helpers of the stress tests: a scale factor (sanitizer
// builds run fewer iterations), and a progress watchdog that turns a stall (a lost wake-up, a
// deadlock) into a test failure with a diagnostic instead of a silent hang.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#include "fixture.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "upcall/upcall.hpp"

namespace upcall::stress {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// True in a ThreadSanitizer build. TSAN counts every fiber as a thread (__tsan_create_fiber)
// and dies beyond 8128 live ones, and a spawn costs ~1 ms there (measured: 100k spawn/join took
// 91 s), so TSAN runs get far smaller counts and a cap on live fibers.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
#endif

// Divides iteration counts: 1 in normal builds, 2 under ASAN, 100 under TSAN (see kTsan), or
// the value of UPCALL_STRESS_SCALE when set (e.g. 100 for a quick smoke run).
inline int Scale() {
  if (const char* s = std::getenv("UPCALL_STRESS_SCALE")) {
    const int v = std::atoi(s);
    if (v > 0) return v;
  }
#if defined(__SANITIZE_THREAD__)
  return 100;
#elif defined(__SANITIZE_ADDRESS__)
  return 2;
#else
  return 1;
#endif
}

// Live fibers a test may keep in flight at once (TSAN's thread limit, see kTsan).
inline std::uint64_t MaxLiveFibers() { return kTsan ? 3000 : 200000; }

inline int Cores() { return std::thread::hardware_concurrency() >= 2 ? 2 : 1; }

inline std::string Describe(const Runtime& rt) {
  const RuntimeStats s = rt.stats();
  std::string out = "live_fibers=" + std::to_string(rt.live_fibers()) +
                    " spawned=" + std::to_string(s.fibers_spawned) +
                    " finished=" + std::to_string(s.fibers_finished) +
                    " threads=" + std::to_string(s.threads) +
                    " blocking_inline=" + std::to_string(s.blocking_inline);
  for (const auto& c : s.cores)
    out += " | core" + std::to_string(c.core) + ": switches=" + std::to_string(c.switches) +
           " steals=" + std::to_string(c.steals) + " parks=" + std::to_string(c.parks) +
           " wakeups=" + std::to_string(c.wakeups_sent) +
           " handoffs=" + std::to_string(c.blocking_handoffs) +
           " timers=" + std::to_string(c.timers_fired);
  // Scheduler internals (atomics only): where ready work sits and what the idle protocol thinks.
  const rt::RuntimeImpl* im = rt.impl();
  out += " || n_idle=" + std::to_string(im->n_idle.load()) +
         " n_spinning=" + std::to_string(im->n_spinning.load()) +
         " inject=" + std::to_string(im->inject.size());
  for (const auto& c : im->cores)
    out += " | core" + std::to_string(c->index) + ": rq=" + std::to_string(c->rq.size_hint()) +
           " lifo=" + (c->lifo.load() ? "set" : "empty") +
           " park_word=" + std::to_string(c->park_word.load()) +
           " busy=" + std::to_string(c->busy.load());
  return out;
}

// A fiber's scheduling state, from its waker (diagnostics only).
inline std::string DescribeWaker(std::uintptr_t w) {
  if (w == 0) return "(no waker)";
  if (w & 1u) return "(thread)";
  const auto* f = reinterpret_cast<const rt::Fiber*>(w);
  return "fiber " + std::to_string(f->id) + ": park_state=" +
         std::to_string(f->park_state.load()) + " state=" +
         std::to_string(static_cast<int>(f->state));
}

// Waits until done() is true. `progress` is any counter the workload bumps; if it does not move
// for `stall`, the workload is stuck: returns false (the caller reports and, when it can,
// rescues). `total` bounds the whole wait.
inline bool WaitWithWatchdog(const std::function<bool()>& done,
                             const std::function<std::uint64_t()>& progress,
                             std::chrono::milliseconds stall = 10s,
                             std::chrono::milliseconds total = 120s) {
  const auto start = Clock::now();
  auto last_move = start;
  std::uint64_t last = progress();
  while (!done()) {
    std::this_thread::sleep_for(2ms);
    const auto now = Clock::now();
    const std::uint64_t p = progress();
    if (p != last) {
      last = p;
      last_move = now;
    }
    if (now - last_move > stall || now - start > total) return done();
  }
  return true;
}

// For stalls the test cannot recover from (fibers stuck forever would make the Runtime's
// destructor wait and JoinHandles outlive their stacks): print what is known and abort, so the
// run fails now instead of at the ctest timeout.
[[noreturn]] inline void AbortStalled(const char* what, const Runtime& rt) {
  std::fprintf(stderr, "STALL: %s\n  %s\n", what, Describe(rt).c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace upcall::stress
