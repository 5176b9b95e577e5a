// bench/cores/grant_bench.cpp: how fast a released core is granted back (runtime/DESIGN.md
// section 15), side by side with the kernel's own cross-CPU futex wake-up in the same run.
//
// Each sample, on a 2-core runtime: a fiber on core A sleeps 2 ms on an upcall timer (so core B
// runs dry and releases its CPU: parks in park mode, drops to SCHED_IDLE in poll mode), stamps
// the clock, spawns a child onto A's own queue and spins without entering the runtime until the
// child has run. Only B can run the child, and only after a grant: with congestion grants on, a
// local push wakes nobody. Reported (microseconds):
//   grant_p50/p90/p99  the runtime's grant histogram: grant decision -> the child running on B
//                      (RuntimeStats::core_alloc.grant; bucket bounds, within 6.25%);
//   e2e_p50/p99        spawn -> child running, measured here exactly: detection + grant. In park
//                      mode A never enters the runtime, so detection is the backstop thread's
//                      (kBackstopNs) bound: this is the stuck-fiber detection bound.
//   grants_per_sample  should be ~1 (more: wasted grants).
// BM_Cores_Grant_Park (idle=park), BM_Cores_Grant_Poll (idle=poll), and the peer
// BM_Cores_KernelFutexWake: a thread pinned to CPU 1 sleeps in FUTEX_WAIT, the waker pinned to
// CPU 0 sleeps 2 ms, stamps, FUTEX_WAKEs and spins until the sleeper stamped its return.
// bench/cores/run.sh runs the three and prints the criteria as ratios.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "../bench_common.hpp"
#include "upcall/upcall.hpp"

namespace {

using namespace upcall::bench;

constexpr int kSamples = 300;

void report(benchmark::State& state, const char* prefix, const std::vector<std::int64_t>& lat) {
  const std::string p(prefix);
  state.counters[p + "_p50_us"] = percentile(lat, 50) / 1000.0;
  state.counters[p + "_p90_us"] = percentile(lat, 90) / 1000.0;
  state.counters[p + "_p99_us"] = percentile(lat, 99) / 1000.0;
}

void grant(benchmark::State& state, const char* idle) {
  upcall::Options o;
  o.cores = 2;
  o.idle = idle;
  o.congestion_us = 5;
  upcall::Runtime rt(std::move(o));
  std::vector<std::int64_t> e2e;
  e2e.reserve(kSamples);
  int on_b = 0;
  const upcall::RuntimeStats before = rt.stats();
  rt.block_on([&] {
    for (auto _ : state) {
      upcall::this_task::sleep_for(std::chrono::milliseconds(2));
      const int a = upcall::this_task::core();
      std::atomic<std::int64_t> t1{0};
      std::atomic<int> ran_on{-1};
      const std::int64_t t0 = mono_ns();
      auto child = upcall::spawn([&] {
        t1.store(mono_ns(), std::memory_order_relaxed);
        ran_on.store(upcall::this_task::core(), std::memory_order_release);
      });
      while (ran_on.load(std::memory_order_acquire) < 0) pause_cpu();  // A stays busy
      const std::int64_t d = t1.load(std::memory_order_relaxed) - t0;
      state.SetIterationTime(static_cast<double>(d) * 1e-9);
      e2e.push_back(d);
      if (ran_on.load(std::memory_order_relaxed) != a) ++on_b;
      while (!child.done()) pause_cpu();  // not a park: this fiber stays on A
      child.join();
    }
  });
  const upcall::RuntimeStats s = rt.stats();
  const upcall::LatencySummary& g = s.core_alloc.grant;
  state.counters["grant_p50_us"] = static_cast<double>(g.p50) / 1000.0;
  state.counters["grant_p90_us"] = static_cast<double>(g.p90) / 1000.0;
  state.counters["grant_p99_us"] = static_cast<double>(g.p99) / 1000.0;
  state.counters["grants_per_sample"] =
      static_cast<double>(s.core_alloc.grants - before.core_alloc.grants) / kSamples;
  state.counters["ran_on_B_frac"] = static_cast<double>(on_b) / kSamples;
  report(state, "e2e", e2e);
  state.SetLabel(std::string("idle=") + idle + " activations=" + rt.config().activations);
}

void BM_Cores_Grant_Park(benchmark::State& state) { grant(state, "park"); }
void BM_Cores_Grant_Poll(benchmark::State& state) { grant(state, "poll"); }

void BM_Cores_KernelFutexWake(benchmark::State& state) {
  // word: 0 = sleep, 1 = wake up, 2 = exit. t1: the sleeper's stamp, 0 until it woke.
  std::atomic<std::uint32_t> word{0};
  std::atomic<std::int64_t> t1{0};
  std::thread sleeper([&] {
    pin_to_cpu(1);
    for (;;) {
      std::uint32_t v;
      while ((v = word.load(std::memory_order_acquire)) == 0) futex_wait(&word, 0);
      const std::int64_t now = mono_ns();
      if (v == 2) return;
      word.store(0, std::memory_order_relaxed);
      t1.store(now, std::memory_order_release);
    }
  });
  cpu_set_t old;
  pin_to_cpu(0, &old);
  std::vector<std::int64_t> lat;
  lat.reserve(kSamples);
  for (auto _ : state) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const std::int64_t t0 = mono_ns();
    word.store(1, std::memory_order_release);
    futex_wake(&word, 1);
    std::int64_t t;
    while ((t = t1.load(std::memory_order_acquire)) == 0) pause_cpu();
    t1.store(0, std::memory_order_relaxed);
    state.SetIterationTime(static_cast<double>(t - t0) * 1e-9);
    lat.push_back(t - t0);
  }
  word.store(2, std::memory_order_release);
  futex_wake(&word, 1);
  sleeper.join();
  restore_affinity(old);
  report(state, "wake", lat);
}

}  // namespace

#define UPCALL_GRANT_BENCH(fn) \
  BENCHMARK(fn)->Iterations(kSamples)->UseManualTime()->Unit(benchmark::kMicrosecond)
UPCALL_GRANT_BENCH(BM_Cores_KernelFutexWake);
UPCALL_GRANT_BENCH(BM_Cores_Grant_Park);
UPCALL_GRANT_BENCH(BM_Cores_Grant_Poll);

BENCHMARK_MAIN();
