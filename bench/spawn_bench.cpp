// bench/spawn_bench.cpp: spawn + join of an empty fiber, from inside a fiber. upcall on a
// 1-core runtime (the pure local path: pooled stack, run queue push, park, two switches) and
// on a 2-core runtime (the idle core spins and steals the child, so the cost includes the
// cross-core hand-offs). Peers in the same binary: Boost.Fiber with a pooled_fixedsize_stack
// and with its default (fixedsize, malloc) stack, and std::thread create + join. Owns no
// runtime code.
#include <benchmark/benchmark.h>

#include <boost/fiber/all.hpp>
#include <unistd.h>

#include <thread>

#include "bench_common.hpp"
#include "upcall/upcall.hpp"

namespace {

using upcall::bench::thread_cpu_ns;

void spawn_join_upcall(benchmark::State& state, int cores, const char* idle,
                       const char* activations = nullptr) {
  upcall::Options o;
  o.cores = cores;
  if (idle) o.idle = idle;
  if (activations) o.activations = activations;
  upcall::Runtime rt(std::move(o));
  std::int64_t cpu = 0;
  bool one_thread = true;
  rt.block_on([&] {
    upcall::spawn([] {}).join();  // warm: the first spawn maps a stack slab
    const int tid0 = gettid();
    const std::int64_t c0 = thread_cpu_ns();
    for (auto _ : state) upcall::spawn([] {}).join();
    cpu = thread_cpu_ns() - c0;
    one_thread = gettid() == tid0;
  });
  state.SetItemsProcessed(state.iterations());
  // CPU time of the loop's kernel thread: meaningful on one core only (on two, the fiber and
  // its children migrate between threads), and then it leaves out waiting behind other processes.
  if (cores == 1 && one_thread)
    state.counters["cpu_ns_per_op"] =
        static_cast<double>(cpu) / static_cast<double>(state.iterations());
  const upcall::RuntimeStats s = rt.stats();
  std::uint64_t steals = 0;
  for (const auto& c : s.cores) steals += c.stolen_fibers;
  state.counters["stolen_per_iter"] =
      static_cast<double>(steals) / static_cast<double>(state.iterations());
  std::uint64_t wakeups = 0;
  for (const auto& c : s.cores) wakeups += c.wakeups_sent;
  state.counters["wakeups_per_iter"] =
      static_cast<double>(wakeups) / static_cast<double>(state.iterations());
  state.SetLabel("activations=" + rt.config().activations);
}

void BM_Spawn_JoinEmpty_Upcall(benchmark::State& state) {
  spawn_join_upcall(state, static_cast<int>(state.range(0)), nullptr);
}

// 1 core without any activation backend: what the takeover machinery costs on this path.
void BM_Spawn_JoinEmpty_Upcall_ActivationsOff(benchmark::State& state) {
  spawn_join_upcall(state, 1, nullptr, "off");
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
  const std::int64_t c0 = thread_cpu_ns();
  for (auto _ : state) boost::fibers::fiber(std::allocator_arg, salloc, [] {}).join();
  state.counters["cpu_ns_per_op"] =
      static_cast<double>(thread_cpu_ns() - c0) / static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations());
}

void BM_Spawn_JoinEmpty_BoostFiber_Default(benchmark::State& state) {
  const std::int64_t c0 = thread_cpu_ns();
  for (auto _ : state) boost::fibers::fiber([] {}).join();
  state.counters["cpu_ns_per_op"] =
      static_cast<double>(thread_cpu_ns() - c0) / static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations());
}

void BM_Spawn_JoinEmpty_StdThread(benchmark::State& state) {
  for (auto _ : state) std::thread([] {}).join();
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(BM_Spawn_JoinEmpty_Upcall)->ArgName("cores")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_Spawn_JoinEmpty_Upcall_ActivationsOff)->UseRealTime();
BENCHMARK_CAPTURE(BM_Spawn_JoinEmpty_Upcall_2Cores, idle_park, "park")->UseRealTime();
BENCHMARK_CAPTURE(BM_Spawn_JoinEmpty_Upcall_2Cores, idle_poll, "poll")->UseRealTime();
BENCHMARK(BM_Spawn_JoinEmpty_BoostFiber_Pooled)->UseRealTime();
BENCHMARK(BM_Spawn_JoinEmpty_BoostFiber_Default)->UseRealTime();
BENCHMARK(BM_Spawn_JoinEmpty_StdThread)->UseRealTime();
