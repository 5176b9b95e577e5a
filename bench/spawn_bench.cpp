// bench/spawn_bench.cpp: spawn + join of an empty fiber, from inside a fiber. upcall on a
// 1-core runtime (the pure local path: pooled stack, run queue push, park, two switches) and
// on a 2-core runtime (the idle core spins and steals the child, so the cost includes the
// cross-core hand-offs). Peers in the same binary: Boost.Fiber with a pooled_fixedsize_stack
// and with its default (fixedsize, malloc) stack, and std::thread create + join. Owns no
// runtime code.
#include <benchmark/benchmark.h>

#include <boost/fiber/all.hpp>
#include <thread>

#include "bench_common.hpp"
#include "upcall/upcall.hpp"

namespace {

void spawn_join_upcall(benchmark::State& state, int cores, const char* idle) {
  upcall::Options o;
  o.cores = cores;
  if (idle) o.idle = idle;
  upcall::Runtime rt(std::move(o));
  rt.block_on([&] {
    upcall::spawn([] {}).join();  // warm: the first spawn maps a stack slab
    for (auto _ : state) upcall::spawn([] {}).join();
  });
  state.SetItemsProcessed(state.iterations());
  const upcall::RuntimeStats s = rt.stats();
  std::uint64_t steals = 0;
  for (const auto& c : s.cores) steals += c.stolen_fibers;
  state.counters["stolen_per_iter"] =
      static_cast<double>(steals) / static_cast<double>(state.iterations());
  std::uint64_t wakeups = 0;
  for (const auto& c : s.cores) wakeups += c.wakeups_sent;
  state.counters["wakeups_per_iter"] =
      static_cast<double>(wakeups) / static_cast<double>(state.iterations());
}

void BM_Spawn_JoinEmpty_Upcall(benchmark::State& state) {
  spawn_join_upcall(state, static_cast<int>(state.range(0)), nullptr);
}

// The 2-core case under the other idle modes: `park` (the idle core sleeps at once, so a spawn
// may have to wake it) and `poll` (it never sleeps).
void BM_Spawn_JoinEmpty_Upcall_2Cores(benchmark::State& state, const char* idle) {
  spawn_join_upcall(state, 2, idle);
}

void BM_Spawn_JoinEmpty_BoostFiber_Pooled(benchmark::State& state) {
  // 64 KiB, the same usable stack size as upcall's default.
  boost::fibers::pooled_fixedsize_stack salloc(64 * 1024);
  boost::fibers::fiber(std::allocator_arg, salloc, [] {}).join();
  for (auto _ : state) boost::fibers::fiber(std::allocator_arg, salloc, [] {}).join();
  state.SetItemsProcessed(state.iterations());
}

void BM_Spawn_JoinEmpty_BoostFiber_Default(benchmark::State& state) {
  for (auto _ : state) boost::fibers::fiber([] {}).join();
  state.SetItemsProcessed(state.iterations());
}

void BM_Spawn_JoinEmpty_StdThread(benchmark::State& state) {
  for (auto _ : state) std::thread([] {}).join();
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(BM_Spawn_JoinEmpty_Upcall)->ArgName("cores")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK_CAPTURE(BM_Spawn_JoinEmpty_Upcall_2Cores, idle_park, "park")->UseRealTime();
BENCHMARK_CAPTURE(BM_Spawn_JoinEmpty_Upcall_2Cores, idle_poll, "poll")->UseRealTime();
BENCHMARK(BM_Spawn_JoinEmpty_BoostFiber_Pooled)->UseRealTime();
BENCHMARK(BM_Spawn_JoinEmpty_BoostFiber_Default)->UseRealTime();
BENCHMARK(BM_Spawn_JoinEmpty_StdThread)->UseRealTime();
