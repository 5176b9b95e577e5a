// bench/wake_bench.cpp: how long a ready fiber waits before an idle core runs it. On a 2-core
// runtime, a fiber on core A stamps the clock, spawns a child and keeps A busy (spinning, never
// yielding) until the child has run; the child, which only the other core B can run (by
// stealing it from A's queue), stamps the clock when it starts. Three idle modes for B:
//   - park (spin budget 0): B sleeps in the kernel; the fiber on A sleeps 2 ms (upcall timer)
//     between samples so B had time to park, and the spawn has to futex-wake it
//     (BM_Wake_ParkedCore_Upcall; _ActivationsOff: the same without the activation backend);
//   - spin:50 (the default): A waits only 10 us between samples, so B is still spinning in its
//     idle loop and simply steals (BM_Wake_SpinningCore_Upcall);
//   - poll: B never sleeps, 2 ms between samples (BM_Wake_PollingCore_Upcall).
// Peer in the same run: the kernel's own cross-CPU futex wake (BM_Wake_KernelFutex): a thread
// pinned on CPU 1 sleeps in FUTEX_WAIT, the waker pinned on CPU 0 stamps the clock and calls
// FUTEX_WAKE, the sleeper stamps the clock when it returns; the waker sleeps 2 ms between
// samples, as the fiber on A does. Latencies go to p50/p99 counters (microseconds); the
// benchmark time is the mean latency (manual time). Owns no runtime code.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "upcall/upcall.hpp"

namespace {

using namespace upcall::bench;

constexpr int kSamples = 400;

void report_latencies(benchmark::State& state, const std::vector<std::int64_t>& lat) {
  state.counters["p50_us"] = percentile(lat, 50) / 1000.0;
  state.counters["p90_us"] = percentile(lat, 90) / 1000.0;
  state.counters["p99_us"] = percentile(lat, 99) / 1000.0;
  state.counters["max_us"] = percentile(lat, 100) / 1000.0;
}

// gap_sleep: between samples the fiber sleeps on an upcall timer (true; A's core then idles
// too, and its timer wakes it, which does not wake B), or spins (false) for gap_ns. (Not a
// kernel sleep of A's thread: with activations on, that is a block, and A's standby takes the
// core over and the fiber comes back on whichever core picks it up.)
void wake_upcall(benchmark::State& state, const char* idle, std::int64_t gap_ns, bool gap_sleep,
                 const char* activations = nullptr) {
  upcall::Options o;
  o.cores = 2;
  o.idle = idle;
  if (activations) o.activations = activations;
  upcall::Runtime rt(std::move(o));
  std::vector<std::int64_t> lat;
  lat.reserve(kSamples);
  int on_other_core = 0, b_parked = 0, a_moved = 0;
  rt.block_on([&] {
    const int a0 = upcall::this_task::core();
    std::uint64_t parks_before[2] = {rt.stats().cores[0].parks, rt.stats().cores[1].parks};
    for (auto _ : state) {
      // Let B go idle (and, in park mode, to sleep).
      if (gap_sleep)
        upcall::this_task::sleep_for(std::chrono::nanoseconds(gap_ns));
      else
        spin_for_ns(gap_ns);
      // A is wherever this fiber runs now (sanity counter: it should stay where it started).
      const int a = upcall::this_task::core();
      const int b = 1 - a;
      if (a != a0) ++a_moved;
      // A core parks at most once per sample (after running the previous child, or while this
      // fiber sleeps), so a change since the previous spawn means B went through its park path.
      const upcall::RuntimeStats st = rt.stats();
      if (st.cores[b].parks != parks_before[b]) ++b_parked;
      parks_before[0] = st.cores[0].parks;
      parks_before[1] = st.cores[1].parks;
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
      lat.push_back(d);
      if (ran_on.load(std::memory_order_relaxed) == b) ++on_other_core;
      // Wait for the child's exit without parking, so this fiber is never woken onto B's LIFO
      // slot and stays on A for the next sample.
      while (!child.done()) pause_cpu();
      child.join();
    }
  });
  report_latencies(state, lat);
  state.counters["ran_on_B_frac"] = static_cast<double>(on_other_core) / kSamples;
  state.counters["B_parked_frac"] = static_cast<double>(b_parked) / kSamples;
  state.counters["A_moved"] = static_cast<double>(a_moved);
  state.SetLabel("activations=" + rt.config().activations);
}

void BM_Wake_ParkedCore_Upcall(benchmark::State& state) {
  wake_upcall(state, "park", 2'000'000, true);
}
void BM_Wake_ParkedCore_Upcall_ActivationsOff(benchmark::State& state) {
  wake_upcall(state, "park", 2'000'000, true, "off");
}
void BM_Wake_SpinningCore_Upcall(benchmark::State& state) {
  wake_upcall(state, "spin:50", 10'000, false);
}
void BM_Wake_PollingCore_Upcall(benchmark::State& state) {
  wake_upcall(state, "poll", 2'000'000, true);
}

void BM_Wake_KernelFutex(benchmark::State& state) {
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
    while ((t = t1.load(std::memory_order_acquire)) == 0) pause_cpu();  // the waker stays busy
    t1.store(0, std::memory_order_relaxed);
    state.SetIterationTime(static_cast<double>(t - t0) * 1e-9);
    lat.push_back(t - t0);
  }
  word.store(2, std::memory_order_release);
  futex_wake(&word, 1);
  sleeper.join();
  restore_affinity(old);
  report_latencies(state, lat);
}

}  // namespace

// Fixed sample count per repetition; manual time = the measured latency.
#define UPCALL_WAKE_BENCH(fn) \
  BENCHMARK(fn)->Iterations(kSamples)->UseManualTime()->Unit(benchmark::kMicrosecond)
UPCALL_WAKE_BENCH(BM_Wake_ParkedCore_Upcall);
UPCALL_WAKE_BENCH(BM_Wake_ParkedCore_Upcall_ActivationsOff);
UPCALL_WAKE_BENCH(BM_Wake_KernelFutex);
UPCALL_WAKE_BENCH(BM_Wake_SpinningCore_Upcall);
UPCALL_WAKE_BENCH(BM_Wake_PollingCore_Upcall);
