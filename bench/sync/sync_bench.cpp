// bench/sync/sync_bench.cpp: the std-layer primitives' hand-off costs, upcall next to
// Boost.Fiber in the same binary, two fibers time-sharing one core (upcall: a 1-core runtime;
// Boost.Fiber: one thread, round_robin). Each iteration is one round trip, reported as
// `ns_per_roundtrip` (wall time / iterations):
//   BM_Sync_MutexHandoff_*   two fibers contend for one mutex, each yielding while it holds
//                            it: every lock() waits for the other's unlock to hand it over
//                            (two hand-offs and two yields per round trip).
//   BM_Sync_CondVarWake_*    ping sets a flag and notifies a condition variable that pong waits
//                            on, then waits on a second one for pong's answer: two wakes per
//                            round trip.
// Owns no runtime code; public API only.
#include <benchmark/benchmark.h>

#include <boost/fiber/all.hpp>
#include <cstdint>
#include <ctime>
#include <mutex>

#include "upcall/condition_variable.hpp"
#include "upcall/mutex.hpp"
#include "upcall/runtime.hpp"
#include "upcall/task.hpp"
#include "upcall/this_task.hpp"

namespace {

std::int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void report(benchmark::State& state, std::int64_t elapsed_ns) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["ns_per_roundtrip"] =
      static_cast<double>(elapsed_ns) / static_cast<double>(state.iterations());
}

// A turn-taking pair over one mutex and two condition variables: `turn` says who may go.
// Ping (the benchmark loop) and pong alternate strictly; each hand-over is one notify + wake.
template <class Mutex, class CondVar, class Spawn, class Join>
void cv_pingpong(benchmark::State& state, Spawn spawn, Join join) {
  Mutex mu;
  CondVar to_pong, to_ping;
  int turn = 0;  // 0: ping's turn, 1: pong's turn, 2: stop
  auto pong = spawn([&] {
    std::unique_lock<Mutex> lk(mu);
    for (;;) {
      to_pong.wait(lk, [&] { return turn != 0; });
      if (turn == 2) return;
      turn = 0;
      to_ping.notify_one();
    }
  });
  auto round = [&] {
    std::unique_lock<Mutex> lk(mu);
    turn = 1;
    to_pong.notify_one();
    to_ping.wait(lk, [&] { return turn == 0; });
  };
  for (int i = 0; i < 1000; ++i) round();
  const std::int64_t t0 = mono_ns();
  for (auto _ : state) round();
  const std::int64_t t1 = mono_ns();
  {
    std::lock_guard<Mutex> lk(mu);
    turn = 2;
  }
  to_pong.notify_one();
  join(pong);
  report(state, t1 - t0);
}

// Two fibers contend for one mutex and each yields while holding it, so every lock() finds it
// held by the other fiber and waits for the unlock to hand it over: per iteration, ping's
// lock waits once and its unlock wakes pong once (two hand-offs, two yields).
template <class Mutex, class Spawn, class Join, class Yield>
void mutex_pingpong(benchmark::State& state, Spawn spawn, Join join, Yield yield) {
  Mutex m;
  bool stop = false;  // guarded by m
  auto pong = spawn([&] {
    for (;;) {
      std::lock_guard<Mutex> lk(m);
      if (stop) return;
      yield();
    }
  });
  auto round = [&] {
    std::lock_guard<Mutex> lk(m);
    yield();
  };
  for (int i = 0; i < 1000; ++i) round();
  const std::int64_t t0 = mono_ns();
  for (auto _ : state) round();
  const std::int64_t t1 = mono_ns();
  {
    std::lock_guard<Mutex> lk(m);
    stop = true;
  }
  join(pong);
  report(state, t1 - t0);
}

void BM_Sync_CondVarWake_Upcall(benchmark::State& state) {
  upcall::Options o;
  o.cores = 1;
  upcall::Runtime rt(o);
  rt.block_on([&] {
    cv_pingpong<upcall::mutex, upcall::condition_variable>(
        state, [](auto f) { return upcall::spawn(std::move(f)); }, [](auto& h) { h.join(); });
  });
}

void BM_Sync_CondVarWake_BoostFiber(benchmark::State& state) {
  cv_pingpong<boost::fibers::mutex, boost::fibers::condition_variable>(
      state, [](auto f) { return boost::fibers::fiber(std::move(f)); },
      [](auto& f) { f.join(); });
}

void BM_Sync_MutexHandoff_Upcall(benchmark::State& state) {
  upcall::Options o;
  o.cores = 1;
  upcall::Runtime rt(o);
  rt.block_on([&] {
    mutex_pingpong<upcall::mutex>(
        state, [](auto f) { return upcall::spawn(std::move(f)); }, [](auto& h) { h.join(); },
        [] { upcall::this_task::yield(); });
  });
}

void BM_Sync_MutexHandoff_BoostFiber(benchmark::State& state) {
  mutex_pingpong<boost::fibers::mutex>(
      state, [](auto f) { return boost::fibers::fiber(std::move(f)); },
      [](auto& f) { f.join(); }, [] { boost::this_fiber::yield(); });
}

}  // namespace

BENCHMARK(BM_Sync_CondVarWake_Upcall)->UseRealTime();
BENCHMARK(BM_Sync_CondVarWake_BoostFiber)->UseRealTime();
BENCHMARK(BM_Sync_MutexHandoff_Upcall)->UseRealTime();
BENCHMARK(BM_Sync_MutexHandoff_BoostFiber)->UseRealTime();
