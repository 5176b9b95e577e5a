// The built-in scheduling policy end to end (runtime/sched/scheduler.cpp): the LIFO slot does
// not starve the FIFO queue, the injection queue gets turns while local fibers keep yielding,
// and an idle core steals from a busy one.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "runtime/sync/parker.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Two fibers wake each other back and forth (each wake-up goes to the LIFO slot) on one core;
// a third fiber that only yields sits in the FIFO queue and must still make progress.
TEST(SchedOneCore, LifoSlotDoesNotStarveTheQueue) {
  Options o;
  o.cores = 1;
  Runtime rt(std::move(o));
  std::atomic<int> turn{0};
  std::atomic<rt::Waker> wakers[2] = {0, 0};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bystander{0}, pings{0};
  auto player = [&](int me) {
    wakers[me] = rt::current_waker();
    while (wakers[1 - me].load() == 0) this_task::yield();
    while (!stop.load()) {
      while (turn.load() != me && !stop.load()) rt::park_current();
      pings.fetch_add(1);
      turn.exchange(1 - me);  // an RMW: see PingPong in the stress tests for the plain store
      rt::unpark_waker(wakers[1 - me].load());
    }
    rt::unpark_waker(wakers[1 - me].load());
  };
  auto a = rt.spawn([&] { player(0); });
  auto b = rt.spawn([&] { player(1); });
  auto c = rt.spawn([&] {
    const auto give_up = Clock::now() + 10s;
    while (bystander.load() < 1000 && Clock::now() < give_up) {
      bystander.fetch_add(1);
      this_task::yield();
    }
    stop = true;
  });
  c.join();
  a.join();
  b.join();
  EXPECT_GE(bystander.load(), 1000u) << "the FIFO fiber starved behind LIFO wake-ups";
  EXPECT_GT(pings.load(), 0u);
  EXPECT_TRUE(NoLeaks(rt));
}

using Sched = RuntimeTest;

// Work from a plain thread goes to the injection queue; a fiber that keeps yielding (alone on
// its core, so every yield returns at once) must not keep it out.
TEST_P(Sched, InjectedWorkRunsWhileFibersKeepYielding) {
  std::atomic<bool> injected_ran{false};
  std::atomic<int> gave_up{0};
  std::vector<JoinHandle<void>> spinners;
  std::atomic<int> started{0};
  for (int i = 0; i < GetParam(); ++i)
    spinners.push_back(rt().spawn([&] {
      started.fetch_add(1);
      const auto give_up = Clock::now() + 10s;
      while (!injected_ran.load()) {
        if (Clock::now() > give_up) {
          gave_up.fetch_add(1);
          return;
        }
        this_task::yield();
      }
    }));
  while (started.load() != GetParam()) std::this_thread::sleep_for(1ms);
  auto h = rt().spawn([&] { injected_ran = true; });
  h.join();
  for (auto& s : spinners) s.join();
  EXPECT_EQ(gave_up.load(), 0);
}

// One fiber on a core spawns CPU-bound fibers; the other (idle, parked) core must be woken and
// steal some of them.
TEST(SchedTwoCores, IdleCoreStealsFromBusyCore) {
  if (MaxTestCores() < 2) GTEST_SKIP() << "needs 2 CPUs";
  Options o;
  o.cores = 2;
  Runtime rt(std::move(o));
  std::this_thread::sleep_for(20ms);  // both cores idle and parked
  std::atomic<int> ran_on[2] = {0, 0};
  const int spawner_core = rt.block_on([&] {
    const int here = this_task::core();
    std::vector<JoinHandle<void>> hs;
    for (int i = 0; i < 64; ++i)
      hs.push_back(spawn([&] {
        const auto until = Clock::now() + 1ms;
        while (Clock::now() < until) {
        }
        const int c = this_task::core();
        if (c == 0 || c == 1) ran_on[c].fetch_add(1);
      }));
    for (auto& h : hs) h.join();
    return here;
  });
  ASSERT_TRUE(spawner_core == 0 || spawner_core == 1);
  EXPECT_GT(ran_on[1 - spawner_core].load(), 0)
      << "the idle core never took work from the spawning core";
  std::uint64_t steals = 0;
  for (const auto& c : rt.stats().cores) steals += c.steals;
  EXPECT_GT(steals, 0u);
  EXPECT_TRUE(NoLeaks(rt));
}

TEST_P(Sched, StatsCountSpawnsFinishesAndSwitches) {
  const RuntimeStats before = rt().stats();
  ASSERT_EQ(before.cores.size(), static_cast<std::size_t>(GetParam()));
  for (std::size_t i = 0; i < before.cores.size(); ++i) {
    EXPECT_EQ(before.cores[i].core, static_cast<int>(i));
    EXPECT_EQ(before.cores[i].cpu, rt().config().cpus[i]);
  }
  constexpr int kN = 100;
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < kN; ++i) hs.push_back(rt().spawn([] { this_task::yield(); }));
  for (auto& h : hs) h.join();
  rt().block_on([] {
    for (int i = 0; i < 10; ++i) spawn([] {}).join();
  });
  const RuntimeStats after = rt().stats();
  EXPECT_EQ(after.fibers_spawned - before.fibers_spawned, kN + 11u);
  EXPECT_EQ(after.fibers_finished - before.fibers_finished, kN + 11u);
  std::uint64_t switches = 0, spawns = 0;
  for (std::size_t i = 0; i < after.cores.size(); ++i) {
    switches += after.cores[i].switches - before.cores[i].switches;
    spawns += after.cores[i].spawns - before.cores[i].spawns;
  }
  EXPECT_GE(switches, kN + 11u);
  EXPECT_EQ(spawns, 10u) << "spawns counts the spawns made on a core (the 10 from the fiber)";
  EXPECT_GE(after.threads, 2u * GetParam()) << "an active thread and a spare per core";
}

UPCALL_INSTANTIATE_CORES(Sched);

}  // namespace
}  // namespace upcall::test
