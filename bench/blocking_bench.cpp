// bench/blocking_bench.cpp: the cost of upcall::blocking([]{}) on a 1-core runtime: hand the
// core to the core's spare kernel thread, run the (empty) function on the fiber's own thread,
// then put the fiber back on a run queue, where the thread now holding the core picks it up.
// Both threads are pinned to the core's CPU. Peer in the same binary: the kernel's floor for
// the same hand-off, one thread waking a second thread pinned on the same CPU and going to
// sleep itself (futex ping-pong; one iteration is a round trip = two hand-offs, so
// `ns_per_handoff` = time / (2 * iterations) there and time / iterations for upcall).
// Owns no runtime code.
#include <benchmark/benchmark.h>

#include <atomic>
#include <thread>

#include "bench_common.hpp"
#include "upcall/upcall.hpp"

namespace {

using namespace upcall::bench;

void BM_Blocking_Handoff(benchmark::State& state, const char* idle) {
  upcall::Options o;
  o.cores = 1;
  o.idle = idle;
  upcall::Runtime rt(std::move(o));
  std::int64_t elapsed = 0;
  rt.block_on([&] {
    upcall::blocking([] {});  // warm: the spare thread exists from start-up, touch its path once
    const std::int64_t t0 = mono_ns();
    for (auto _ : state) upcall::blocking([] {});
    elapsed = mono_ns() - t0;
  });
  const upcall::RuntimeStats s = rt.stats();
  state.SetItemsProcessed(state.iterations());
  state.counters["ns_per_handoff"] =
      static_cast<double>(elapsed) / static_cast<double>(state.iterations());
  state.counters["inline_calls"] = static_cast<double>(s.blocking_inline);
  state.counters["threads"] = static_cast<double>(s.threads);
  state.SetLabel("activations=" + rt.config().activations);
}

void BM_Blocking_Handoff_KernelFutexPair(benchmark::State& state) {
  // word: 1 = ball at the partner, 0 = ball at the benchmark thread, 2 = stop.
  std::atomic<std::uint32_t> word{0};
  cpu_set_t old;
  pin_to_cpu(0, &old);
  std::thread partner([&] {
    pin_to_cpu(0);
    for (;;) {
      std::uint32_t v;
      while ((v = word.load(std::memory_order_acquire)) == 0) futex_wait(&word, 0);
      if (v == 2) return;
      word.store(0, std::memory_order_release);
      futex_wake(&word, 1);
    }
  });
  // Hands the ball over and sleeps until it comes back (the partner waits for != 0, we wait for
  // != 1; one futex word, two values, FUTEX_WAIT re-checks it).
  auto round_trip = [&] {
    word.store(1, std::memory_order_release);
    futex_wake(&word, 1);
    while (word.load(std::memory_order_acquire) == 1) futex_wait(&word, 1);
  };
  round_trip();
  const std::int64_t t0 = mono_ns();
  for (auto _ : state) round_trip();
  const std::int64_t elapsed = mono_ns() - t0;
  word.store(2, std::memory_order_release);
  futex_wake(&word, 1);
  partner.join();
  restore_affinity(old);
  state.SetItemsProcessed(2 * state.iterations());
  state.counters["ns_per_handoff"] =
      static_cast<double>(elapsed) / (2.0 * static_cast<double>(state.iterations()));
}

}  // namespace

// The idle mode matters here: the thread taking the core over may find the run queue empty
// (the fiber is not back yet) and enter the idle loop on the CPU the returning thread needs.
BENCHMARK_CAPTURE(BM_Blocking_Handoff, idle_spin50_default, "spin:50")->UseRealTime();
BENCHMARK_CAPTURE(BM_Blocking_Handoff, idle_park, "park")->UseRealTime();
BENCHMARK_CAPTURE(BM_Blocking_Handoff, idle_spin200, "spin:200")->UseRealTime();
BENCHMARK(BM_Blocking_Handoff_KernelFutexPair)->UseRealTime();
