// bench/task_api_bench.cpp: what the LiteOS-style task API (upcall/task_api.hpp) costs.
//  BM_TaskApi_MonitorPerTask/<n>: one los::task_monitor snapshot (no-allocation form) over n
//    idle tasks; counter ns_per_task.
//  BM_TaskApi_SpawnJoin/<walker>: spawn + join of an empty fiber on 1 core, with a plain thread
//    taking monitor snapshots in a loop (1) or not (0): the registry is the slot table, so a
//    spawn registers nothing; this shows what a concurrent monitor costs the spawner.
//  BM_TaskApi_Yield/<accounting>: the two-fiber yield ping-pong with per-task run-time
//    accounting off (0) or on (1): the TSC read at every switch; counter ns_per_switch.
// Owns no runtime code.
#include <benchmark/benchmark.h>

#include <atomic>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "upcall/upcall.hpp"

namespace {

using upcall::bench::mono_ns;

upcall::Options one_core() {
  upcall::Options o;
  o.cores = 1;
  return o;
}

void BM_TaskApi_MonitorPerTask(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  upcall::Runtime rt(one_core());
  std::atomic<bool> stop{false};
  std::vector<upcall::los::Task<void>> tasks;
  for (std::size_t i = 0; i < n; ++i)
    tasks.push_back(upcall::los::create(rt, [&stop] {
      while (!stop.load(std::memory_order_relaxed))
        (void)upcall::los::task_delay(std::chrono::milliseconds(5));
    }, {"idle", 0}));
  std::vector<upcall::los::TaskInfo> rows(n + 64);
  std::size_t seen = 0;
  const std::int64_t t0 = mono_ns();
  for (auto _ : state) {
    seen = upcall::los::task_monitor(rt, rows.data(), rows.size());
    benchmark::DoNotOptimize(seen);
  }
  const std::int64_t t1 = mono_ns();
  state.counters["ns_per_task"] = static_cast<double>(t1 - t0) /
                                  static_cast<double>(state.iterations()) /
                                  static_cast<double>(n);
  state.counters["tasks_seen"] = static_cast<double>(seen);
  stop = true;
  for (auto& t : tasks) t.handle.join();
}
BENCHMARK(BM_TaskApi_MonitorPerTask)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

void BM_TaskApi_SpawnJoin(benchmark::State& state) {
  upcall::Runtime rt(one_core());
  std::atomic<bool> stop{false};
  std::thread walker;
  if (state.range(0)) {
    walker = std::thread([&] {
      std::vector<upcall::los::TaskInfo> rows(256);
      while (!stop.load(std::memory_order_relaxed)) {
        benchmark::DoNotOptimize(upcall::los::task_monitor(rt, rows.data(), rows.size()));
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    });
  }
  const std::int64_t t0 = mono_ns();
  rt.block_on([&] {
    upcall::spawn([] {}).join();
    for (auto _ : state) upcall::spawn([] {}).join();
  });
  state.counters["ns_per_op"] =
      static_cast<double>(mono_ns() - t0) / static_cast<double>(state.iterations());
  stop = true;
  if (walker.joinable()) walker.join();
}
BENCHMARK(BM_TaskApi_SpawnJoin)->Arg(0)->Arg(1);

void BM_TaskApi_Yield(benchmark::State& state) {
  upcall::Runtime rt(one_core());
  upcall::los::set_run_time_accounting(rt, state.range(0) != 0);
  rt.block_on([&] {
    std::atomic<bool> stop{false};
    auto partner = upcall::spawn([&] {
      while (!stop.load(std::memory_order_relaxed)) upcall::this_task::yield();
    });
    upcall::this_task::yield();
    const std::int64_t t0 = mono_ns();
    for (auto _ : state) upcall::this_task::yield();
    const std::int64_t t1 = mono_ns();
    stop = true;
    partner.join();
    state.counters["ns_per_switch"] =
        static_cast<double>(t1 - t0) / (2.0 * static_cast<double>(state.iterations()));
  });
}
BENCHMARK(BM_TaskApi_Yield)->Arg(0)->Arg(1);

}  // namespace
