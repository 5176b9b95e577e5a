// bench/channel/channel_bench.cpp: the cost of a channel round trip. Two fibers exchange one
// message back and forth through two channels (ping sends on `a` and receives on `b`, pong the
// reverse); every benchmark iteration is one round trip, so the `ns_per_roundtrip` counter is
// wall time / iterations. Variants:
//   BM_Channel_PingPong_Upcall/<kind>          one core: both fibers time-share it (hand-off,
//                                              park, switch; no cross-core traffic)
//   BM_Channel_PingPong_Upcall_2Cores/<kind>   a 2-core runtime: the scheduler decides where the
//                                              fibers run; `cross_core` is the fraction of
//                                              round trips in which pong ran on another core
//   BM_Channel_PingPong_Upcall_CrossCore/<kind>
//                                              two 1-core runtimes bound to CPUs 0 and 1, ping
//                                              on one, pong on the other: every message crosses
//                                              cores (wake-up of the other core included)
//   BM_Channel_PingPong_BoostFiber             peer: boost::fibers::buffered_channel (capacity
//                                              2, its minimum), two fibers on one thread
//   BM_Channel_PingPong_BoostFiberUnbuffered   peer: boost::fibers::unbuffered_channel
//   BM_Channel_Select_PingPong_Upcall          ping receives through select over two channels
// <kind>: 0 rendezvous, 1 bounded capacity 1, 2 unbounded. Owns no runtime code; public API only.
#include <benchmark/benchmark.h>

#include <atomic>
#include <boost/fiber/all.hpp>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <variant>

#include "upcall/channel.hpp"
#include "upcall/runtime.hpp"
#include "upcall/select.hpp"
#include "upcall/task.hpp"
#include "upcall/this_task.hpp"

namespace {

std::int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::size_t capacity_of(std::int64_t kind) {
  return kind == 0 ? 0 : kind == 1 ? 1 : upcall::Channel<std::uint64_t>::kUnbounded;
}

void report(benchmark::State& state, std::int64_t elapsed_ns) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["ns_per_roundtrip"] =
      static_cast<double>(elapsed_ns) / static_cast<double>(state.iterations());
}

// The measuring loop runs inside a fiber of the runtime (ping); pong echoes until `a` closes.
void upcall_pingpong(benchmark::State& state, int cores, bool use_select) {
  upcall::Options o;
  o.cores = cores;
  upcall::Runtime rt(o);
  const std::size_t cap = capacity_of(state.range(0));
  const upcall::Channel<std::uint64_t> a(cap), b(cap);
  rt.block_on([&] {
    std::atomic<std::uint64_t> cross{0};
    std::atomic<int> ping_core{-1};
    auto pong = upcall::spawn([&] {
      std::uint64_t n = 0;
      for (std::uint64_t v : a) {
        if (cores > 1 && upcall::this_task::core() != ping_core.load(std::memory_order_relaxed))
          ++n;
        b.send(v + 1);
      }
      cross.store(n, std::memory_order_relaxed);
    });
    const upcall::Channel<std::uint64_t> never(1);
    std::uint64_t v = 0;
    for (int i = 0; i < 1000; ++i) {  // warm-up, outside the timed loop
      a.send(v);
      v = *b.recv();
    }
    const std::int64_t t0 = mono_ns();
    for (auto _ : state) {
      if (cores > 1) ping_core.store(upcall::this_task::core(), std::memory_order_relaxed);
      a.send(v);
      if (use_select) {
        auto r = upcall::select(upcall::on_recv(never), upcall::on_recv(b));
        v = *std::get<1>(r);
      } else {
        v = *b.recv();
      }
    }
    const std::int64_t t1 = mono_ns();
    a.close();
    pong.join();
    benchmark::DoNotOptimize(v);
    report(state, t1 - t0);
    if (cores > 1)
      state.counters["cross_core"] = static_cast<double>(cross.load()) /
                                     static_cast<double>(state.iterations() + 1000);
  });
}

// Ping on runtime A (CPU 0), pong on runtime B (CPU 1).
void BM_Channel_PingPong_Upcall_CrossCore(benchmark::State& state) {
  upcall::Options oa, ob;
  oa.cores = ob.cores = 1;
  oa.cpus = "0";
  ob.cpus = "1";
  upcall::Runtime ra(oa), rb(ob);
  const std::size_t cap = capacity_of(state.range(0));
  const upcall::Channel<std::uint64_t> a(cap), b(cap);
  auto pong = rb.spawn([&] {
    for (std::uint64_t v : a) b.send(v + 1);
  });
  ra.block_on([&] {
    std::uint64_t v = 0;
    for (int i = 0; i < 1000; ++i) {
      a.send(v);
      v = *b.recv();
    }
    const std::int64_t t0 = mono_ns();
    for (auto _ : state) {
      a.send(v);
      v = *b.recv();
    }
    const std::int64_t t1 = mono_ns();
    a.close();
    benchmark::DoNotOptimize(v);
    report(state, t1 - t0);
  });
  pong.join();
}

void BM_Channel_PingPong_Upcall(benchmark::State& state) { upcall_pingpong(state, 1, false); }
void BM_Channel_PingPong_Upcall_2Cores(benchmark::State& state) {
  upcall_pingpong(state, 2, false);
}
void BM_Channel_Select_PingPong_Upcall(benchmark::State& state) {
  upcall_pingpong(state, 1, true);
}

template <class Chan>
void boost_pingpong(benchmark::State& state, Chan& a, Chan& b) {
  // The thread's main context is a fiber too; pong is the second one (round_robin scheduler).
  boost::fibers::fiber pong([&] {
    std::uint64_t v;
    while (a.pop(v) == boost::fibers::channel_op_status::success) b.push(v + 1);
  });
  std::uint64_t v = 0;
  for (int i = 0; i < 1000; ++i) {
    a.push(v);
    b.pop(v);
  }
  const std::int64_t t0 = mono_ns();
  for (auto _ : state) {
    a.push(v);
    b.pop(v);
  }
  const std::int64_t t1 = mono_ns();
  a.close();
  pong.join();
  benchmark::DoNotOptimize(v);
  report(state, t1 - t0);
}

void BM_Channel_PingPong_BoostFiber(benchmark::State& state) {
  boost::fibers::buffered_channel<std::uint64_t> a(2), b(2);  // 2: the smallest it accepts
  boost_pingpong(state, a, b);
}

void BM_Channel_PingPong_BoostFiberUnbuffered(benchmark::State& state) {
  boost::fibers::unbuffered_channel<std::uint64_t> a, b;
  boost_pingpong(state, a, b);
}

BENCHMARK(BM_Channel_PingPong_Upcall)->Arg(0)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_Channel_PingPong_Upcall_2Cores)->Arg(0)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_Channel_PingPong_Upcall_CrossCore)->Arg(0)->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_Channel_Select_PingPong_Upcall)->Arg(1)->UseRealTime();
BENCHMARK(BM_Channel_PingPong_BoostFiber)->UseRealTime();
BENCHMARK(BM_Channel_PingPong_BoostFiberUnbuffered)->UseRealTime();

}  // namespace
