// tests/cores/cores_test.cpp: core reallocation (runtime/DESIGN.md section 15): congestion
// grants actually happen (and not with grants off), idle cores give their CPU back in every
// idle mode, the core budget (shrink to one core and grow back under load, a CPU set change,
// min_cores, bad budgets), and grant/park races where every fiber must run exactly once while
// cores park, get granted and leave the budget. Stalls are caught by a watchdog and reported
// with the scheduler's state. Timing only bounds waits generously; no test asserts a latency.
#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "stress/stress_util.hpp"
#include "upcall/upcall.hpp"

namespace upcall::cores_test {
namespace {

using namespace std::chrono_literals;
using stress::Clock;
using stress::Scale;

inline void CpuRelax() { __builtin_ia32_pause(); }

bool TwoCpus() { return std::thread::hardware_concurrency() >= 2; }

// Waits (polling stats) until pred(stats) holds or `limit` passes.
template <class Pred>
bool WaitStats(const Runtime& rt, Pred pred, std::chrono::milliseconds limit = 5s) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (pred(rt.stats())) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred(rt.stats());
}

Options Opts(const char* idle, unsigned congestion_us = 5, int cores = 2) {
  Options o;
  o.cores = cores;
  o.idle = idle;
  o.congestion_us = congestion_us;
  return o;
}

// One sample of "a fiber spawns a child onto its own queue and keeps its core busy without
// entering the runtime": only another core can run the child. Returns the core it ran on.
int SpawnAndSpin(int* spawner_core) {
  std::atomic<int> ran_on{-1};
  *spawner_core = this_task::core();
  auto child = spawn([&] { ran_on.store(this_task::core(), std::memory_order_release); });
  const auto end = Clock::now() + 20s;
  while (ran_on.load(std::memory_order_acquire) < 0 && Clock::now() < end) CpuRelax();
  const int r = ran_on.load(std::memory_order_acquire);
  child.join();
  return r;
}

// ------------------------------------------------------------------------------------ grants

TEST(CoreAlloc, CongestionGrantsAParkedCore) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  Runtime rt(Opts("park"));
  const int kSamples = 20;
  int other = 0;
  rt.block_on([&] {
    for (int i = 0; i < kSamples; ++i) {
      this_task::sleep_for(3ms);  // the other core parks meanwhile (spin budget 0)
      int me = -1;
      const int ran = SpawnAndSpin(&me);
      ASSERT_GE(ran, 0) << "the child never ran while its core was busy: no grant";
      if (ran != me) ++other;
    }
  });
  const RuntimeStats s = rt.stats();
  EXPECT_EQ(other, kSamples) << "a busy core ran its own child";
  EXPECT_GE(s.core_alloc.grants, 1u);
  EXPECT_GE(s.core_alloc.grant.count, 1u) << "grant latency histogram";
  EXPECT_GE(s.core_alloc.congested, 1u);
  // The spawner never entered the runtime while it waited: the backstop detected it.
  EXPECT_GE(s.core_alloc.backstop_checks, 1u);
  EXPECT_GE(s.core_alloc.releases, 1u);
  EXPECT_EQ(s.core_alloc.congestion_us, 5u);
}

TEST(CoreAlloc, GrantsOffWakesEagerlyInstead) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  Runtime rt(Opts("park", /*congestion_us=*/0));
  int other = 0;
  rt.block_on([&] {
    for (int i = 0; i < 10; ++i) {
      this_task::sleep_for(3ms);
      int me = -1;
      const int ran = SpawnAndSpin(&me);
      ASSERT_GE(ran, 0);
      if (ran != me) ++other;
    }
  });
  const RuntimeStats s = rt.stats();
  EXPECT_EQ(other, 10);
  EXPECT_EQ(s.core_alloc.grants, 0u);
  EXPECT_EQ(s.core_alloc.checks, 0u);
  std::uint64_t wakeups = 0;
  for (const auto& c : s.cores) wakeups += c.wakeups_sent;
  EXPECT_GE(wakeups, 1u) << "with grants off the local push wakes a parked core";
}

// ------------------------------------------------------------------------------- idle modes

class IdleModes : public ::testing::TestWithParam<const char*> {};

// Idle cores release their CPU (park, or SCHED_IDLE in poll mode), then work brings them back
// and every fiber runs exactly once.
TEST_P(IdleModes, IdleCoresReleaseAndComeBack) {
  const std::string mode = GetParam();
  Runtime rt(Opts(mode.c_str()));
  if (mode == "poll" && !rt.impl()->poll_can_lower)
    GTEST_SKIP() << "this process cannot leave SCHED_IDLE (needs CAP_SYS_NICE): poll mode "
                    "polls at normal priority and releases nothing";
  const int n = rt.config().cores;
  ASSERT_TRUE(WaitStats(rt, [&](const RuntimeStats& s) {
    for (const auto& c : s.cores)
      if (!c.released) return false;
    return true;
  })) << "idle cores did not release their CPU in mode " << mode;
  const RuntimeStats before = rt.stats();
  for (const auto& c : before.cores) EXPECT_GE(c.releases, 1u);
  // Work from outside and from fibers.
  const int kFibers = 2000 / Scale();
  std::vector<std::atomic<int>> runs(kFibers);
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < kFibers; ++i)
    hs.push_back(rt.spawn([&runs, i] {
      runs[i].fetch_add(1);
      this_task::yield();
    }));
  for (auto& h : hs) h.join();
  for (int i = 0; i < kFibers; ++i) ASSERT_EQ(runs[i].load(), 1) << "fiber " << i;
  const RuntimeStats after = rt.stats();
  // Every core had released its CPU; the fibers ran, so some released core came back.
  std::uint64_t switched = 0;
  for (int i = 0; i < n; ++i) switched += after.cores[i].switches - before.cores[i].switches;
  EXPECT_GE(switched, static_cast<std::uint64_t>(kFibers)) << "released cores never came back";
  if (mode == "poll") {
    EXPECT_GE(after.core_alloc.grants, 1u) << "a SCHED_IDLE poller took work: a grant";
    EXPECT_GE(after.core_alloc.grant.count, 1u);
    // A poller that took work runs at SCHED_OTHER again once its fiber entered the runtime.
    rt.block_on([] {
      this_task::yield();
      EXPECT_EQ(sched_getscheduler(0), SCHED_OTHER);
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, IdleModes, ::testing::Values("park", "spin:20", "poll"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == ':') ch = '_';
                           return s;
                         });

// ------------------------------------------------------------------------------------ budget

TEST(CoreBudget, RejectsBudgetsTheRuntimeCannotHave) {
  Runtime rt(Opts("park", 5, 1));
  const int cpu = rt.config().cpus[0];
  auto msg = [&](CoreBudget b) {
    try {
      rt.set_core_budget(b);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(msg({0, 0, std::to_string(cpu + 1)}).find("not one of this runtime's CPUs"),
            std::string::npos);
  EXPECT_NE(msg({2, 1, ""}).find("min_cores=2"), std::string::npos);
  EXPECT_NE(msg({-1, 0, ""}).find("min_cores=-1"), std::string::npos);
  EXPECT_NE(msg({0, -3, ""}).find("max_cores=-3"), std::string::npos);
  EXPECT_NE(msg({0, 0, "1-0"}).find("cpus=1-0"), std::string::npos);
  EXPECT_EQ(rt.stats().core_alloc.budget_changes, 0u) << "a rejected budget changed nothing";
  EXPECT_EQ(rt.stats().core_alloc.enabled_cores, 1);
  Options bad = Opts("park", 5, 1);
  bad.budget = CoreBudget{0, 0, "9999"};
  EXPECT_THROW(Runtime{bad}, std::invalid_argument);
}

// Fibers that keep spawning, yielding, sleeping and waking each other while another thread
// flips the budget between one and two cores; every fiber must run to the end exactly once.
TEST(CoreBudget, ShrinkToOneCoreAndGrowBackUnderLoad) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  Runtime rt(Opts("spin:10"));
  const int kFibers = 400 / (Scale() > 10 ? 10 : Scale());
  const int kSteps = 200;
  std::vector<std::atomic<int>> done(kFibers);
  std::atomic<std::uint64_t> progress{0};
  std::atomic<bool> stop_flipping{false};
  std::thread flipper([&] {
    int i = 0;
    while (!stop_flipping.load()) {
      rt.set_core_budget(CoreBudget{0, (i++ % 2) ? 2 : 1, ""});
      std::this_thread::sleep_for(std::chrono::microseconds(300 + (i * 7919) % 700));
    }
    rt.set_core_budget(CoreBudget{});
  });
  std::vector<JoinHandle<void>> hs;
  for (int f = 0; f < kFibers; ++f)
    hs.push_back(rt.spawn([&, f] {
      std::minstd_rand rng(static_cast<unsigned>(f));
      for (int s = 0; s < kSteps; ++s) {
        switch (rng() % 4) {
          case 0: this_task::yield(); break;
          case 1: this_task::sleep_for(std::chrono::microseconds(rng() % 200)); break;
          case 2: spawn([&progress] { progress.fetch_add(1); }).join(); break;
          default: for (int k = 0; k < 200; ++k) CpuRelax();
        }
        progress.fetch_add(1);
      }
      done[f].fetch_add(1);
    }));
  const bool finished = stress::WaitWithWatchdog(
      [&] {
        for (auto& d : done)
          if (d.load() == 0) return false;
        return true;
      },
      [&] { return progress.load(); });
  stop_flipping = true;
  flipper.join();
  if (!finished) stress::AbortStalled("budget flips: fibers stopped making progress", rt);
  for (auto& h : hs) h.join();
  for (int f = 0; f < kFibers; ++f) ASSERT_EQ(done[f].load(), 1);
  const RuntimeStats s = rt.stats();
  EXPECT_GE(s.core_alloc.budget_changes, 2u);
  EXPECT_EQ(s.core_alloc.enabled_cores, 2);
}

// After a shrink settles, fibers run only on the remaining core; after a CPU set change, only
// on the core of that CPU; growing back lets both run again.
TEST(CoreBudget, RemovedCoresRunNothingAndComeBack) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  Runtime rt(Opts("park"));
  const int cpu1 = rt.config().cpus[1];
  auto cores_used = [&](int n) {
    std::vector<std::atomic<int>> on(2);
    std::vector<JoinHandle<void>> hs;
    for (int i = 0; i < n; ++i)
      hs.push_back(rt.spawn([&on] {
        for (int k = 0; k < 3; ++k) {
          on[static_cast<std::size_t>(this_task::core())].fetch_add(1);
          for (int j = 0; j < 2000; ++j) CpuRelax();
          this_task::yield();
        }
      }));
    for (auto& h : hs) h.join();
    return std::pair<int, int>(on[0].load(), on[1].load());
  };
  auto settled = [&](int off) {
    return WaitStats(rt, [&](const RuntimeStats& s) {
      return !s.cores[off].enabled && s.cores[off].released;
    });
  };
  rt.set_core_budget(CoreBudget{0, 1, ""});
  ASSERT_TRUE(settled(1)) << "core 1 did not leave";
  EXPECT_EQ(rt.stats().core_alloc.enabled_cores, 1);
  auto [a0, a1] = cores_used(200);
  EXPECT_GT(a0, 0);
  EXPECT_EQ(a1, 0) << "a core outside the budget ran fibers";
  rt.set_core_budget(CoreBudget{0, 0, std::to_string(cpu1)});
  ASSERT_TRUE(settled(0)) << "core 0 did not leave after the CPU set change";
  EXPECT_EQ(rt.stats().core_alloc.cpus, std::to_string(cpu1));
  auto [b0, b1] = cores_used(200);
  EXPECT_EQ(b0, 0) << "core 0 ran fibers after its CPU left the set";
  EXPECT_GT(b1, 0);
  rt.set_core_budget(CoreBudget{});
  EXPECT_EQ(rt.stats().core_alloc.enabled_cores, 2);
  // Both cores may run again (one fiber that spins until the other core runs its child).
  rt.block_on([] {
    int me = -1;
    EXPECT_NE(SpawnAndSpin(&me), me);
  });
}

// A core leaves the budget while a fiber on it never enters the runtime: the core cannot drain
// itself, so what it has queued must count as congestion and be stolen by a granted core.
TEST(CoreBudget, FibersQueuedBehindASpinnerOfARemovedCoreStillRun) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  Runtime rt(Opts("park"));
  const std::vector<int> cpus = rt.config().cpus;
  int me = -1, ran_on = -1;
  rt.block_on([&] {
    me = this_task::core();
    std::atomic<bool> removed{false};
    std::thread changer([&] {
      rt.set_core_budget(CoreBudget{0, 0, std::to_string(cpus[static_cast<std::size_t>(1 - me)])});
      removed = true;
    });
    while (!removed.load()) CpuRelax();  // no runtime entry: this core cannot notice yet
    std::atomic<int> child_core{-1};
    auto child = spawn([&] { child_core = this_task::core(); });  // queued on this core
    const auto end = Clock::now() + 10s;
    while (child_core.load() < 0 && Clock::now() < end) CpuRelax();
    ran_on = child_core.load();
    changer.join();
    child.join();
  });
  EXPECT_EQ(ran_on, 1 - me) << "the child waited for its removed core's spinner";
  rt.set_core_budget(CoreBudget{});
}

// A fiber sleeping on a core that leaves the budget still wakes (the timer fires there and the
// fiber moves to the other core).
TEST(CoreBudget, TimersOfARemovedCoreStillFire) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  Runtime rt(Opts("park"));
  std::atomic<int> slept_on{-1}, woke_on{-1};
  auto h = rt.spawn([&] {
    while (this_task::core() != 1) {
      // Get to core 1: spin with a child queued so that core 1 takes one of us.
      int me = -1;
      SpawnAndSpin(&me);
      this_task::yield();
      if (this_task::core() != 1) this_task::sleep_for(1ms);
    }
    slept_on = this_task::core();
    this_task::sleep_for(100ms);
    woke_on = this_task::core();
  });
  const auto end = Clock::now() + 10s;
  while (slept_on.load() < 0 && Clock::now() < end) std::this_thread::sleep_for(1ms);
  if (slept_on.load() != 1) {
    h.join();
    GTEST_SKIP() << "the fiber never reached core 1 (scheduling did not move it there)";
  }
  rt.set_core_budget(CoreBudget{0, 1, ""});
  h.join();
  EXPECT_EQ(woke_on.load(), 0) << "woke on a core outside the budget";
}

TEST(CoreBudget, MinCoresStayAwake) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  Options o = Opts("park");
  o.budget = CoreBudget{2, 0, ""};
  Runtime rt(o);
  std::this_thread::sleep_for(50ms);
  const RuntimeStats a = rt.stats();
  for (const auto& c : a.cores) EXPECT_FALSE(c.released) << "core " << c.core;
  std::this_thread::sleep_for(50ms);
  const RuntimeStats b = rt.stats();
  for (std::size_t i = 0; i < b.cores.size(); ++i)
    EXPECT_EQ(b.cores[i].releases, a.cores[i].releases) << "a reserved core parked";
  EXPECT_EQ(rt.core_budget().min_cores, 2);
  rt.set_core_budget(CoreBudget{});
  EXPECT_TRUE(WaitStats(rt, [](const RuntimeStats& s) {
    return s.cores[0].released && s.cores[1].released;
  })) << "cores did not park once min_cores was lifted";
  rt.set_core_budget(CoreBudget{1, 0, ""});
  EXPECT_TRUE(WaitStats(rt, [](const RuntimeStats& s) {
    return !s.cores[0].released || !s.cores[1].released;
  })) << "raising min_cores did not wake a core";
}

// Poll mode: an idle poller drops to SCHED_IDLE (a release), but never below min_cores cores
// polling at their normal policy.
TEST(CoreBudget, MinCoresKeepPollingAtNormalPolicy) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  for (int min : {0, 1, 2}) {
    Options o = Opts("poll");
    o.budget = CoreBudget{min, 0, ""};
    Runtime rt(o);
    if (!rt.impl()->poll_can_lower)
      GTEST_SKIP() << "this process cannot leave SCHED_IDLE (needs CAP_SYS_NICE): poll mode "
                      "polls at normal priority and releases nothing";
    const int want_released = 2 - min;
    auto released = [](const RuntimeStats& s) {
      int n = 0;
      for (const auto& c : s.cores) n += c.released ? 1 : 0;
      return n;
    };
    EXPECT_TRUE(WaitStats(rt, [&](const RuntimeStats& s) { return released(s) == want_released; }))
        << "min_cores=" << min << ": " << released(rt.stats()) << " cores released";
    std::this_thread::sleep_for(50ms);  // and it stays so
    EXPECT_EQ(released(rt.stats()), want_released) << "min_cores=" << min;
    // Work still runs, and the runtime still answers.
    EXPECT_EQ(rt.block_on([] { return spawn([] { return 7; }).join(); }), 7);
  }
}

// --------------------------------------------------------------------------------- races

// Bursts of fibers (from fibers and from a plain thread) separated by pauses long enough for
// cores to park, so every burst races grants and wake-ups against parking; a third of the
// bursts also flip the budget. Every fiber must run exactly once and nothing may stall.
class GrantParkRace : public ::testing::TestWithParam<const char*> {};

TEST_P(GrantParkRace, EveryFiberRunsExactlyOnce) {
  Runtime rt(Opts(GetParam(), 5, stress::Cores()));
  const int kBursts = 2000 / (Scale() > 100 ? 100 : Scale());
  const int kPerBurst = 64;
  std::vector<std::atomic<int>> runs(static_cast<std::size_t>(kBursts * kPerBurst));
  std::atomic<std::uint64_t> progress{0};
  std::atomic<int> bursts_done{0};
  std::thread driver([&] {
    std::minstd_rand rng(42);
    for (int b = 0; b < kBursts; ++b) {
      const int base = b * kPerBurst;
      if (b % 3 == 2 && rt.config().cores > 1)
        rt.set_core_budget(CoreBudget{0, 1 + static_cast<int>(rng() % 2), ""});
      auto body = [&runs, &progress](int i) {
        runs[static_cast<std::size_t>(i)].fetch_add(1);
        progress.fetch_add(1);
        if (i % 3 == 0) this_task::yield();
      };
      if (b % 2 == 0) {
        // From a fiber: local pushes (grants, not wake-ups, bring other cores in).
        rt.spawn([&, base] {
          std::vector<JoinHandle<void>> hs;
          for (int i = 0; i < kPerBurst; ++i) hs.push_back(spawn([&body, base, i] { body(base + i); }));
          for (auto& h : hs) h.join();
        }).join();
      } else {
        // From this plain thread: injection-queue pushes.
        std::vector<JoinHandle<void>> hs;
        for (int i = 0; i < kPerBurst; ++i)
          hs.push_back(rt.spawn([&body, base, i] { body(base + i); }));
        for (auto& h : hs) h.join();
      }
      bursts_done.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 400));
    }
    rt.set_core_budget(CoreBudget{});
  });
  const bool ok = stress::WaitWithWatchdog([&] { return bursts_done.load() == kBursts; },
                                           [&] { return progress.load(); });
  if (!ok) stress::AbortStalled("grant/park race: a burst stalled (lost wake-up?)", rt);
  driver.join();
  for (std::size_t i = 0; i < runs.size(); ++i) ASSERT_EQ(runs[i].load(), 1) << "fiber " << i;
  const RuntimeStats s = rt.stats();
  EXPECT_GE(s.core_alloc.releases, 1u) << "cores never parked: the race was not exercised";
}

INSTANTIATE_TEST_SUITE_P(Modes, GrantParkRace, ::testing::Values("park", "spin:5", "poll"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == ':') ch = '_';
                           return s;
                         });

// ------------------------------------------------------------------------------- config

TEST(CoreAllocConfig, IntervalFromOptionsFlagsAndEnvironment) {
  Options o;
  int argc = 3;
  char a0[] = "prog", a1[] = "--upcall-congestion-us=8", a2[] = "x";
  char* argv[] = {a0, a1, a2, nullptr};
  o.parse_args(argc, argv);
  EXPECT_EQ(argc, 2);
  ASSERT_TRUE(o.congestion_us.has_value());
  EXPECT_EQ(*o.congestion_us, 8u);
  EXPECT_EQ(resolve_config(o).congestion_us, 8u);
  EXPECT_NE(resolve_config(o).describe().find(" congestion=8us"), std::string::npos);
  Options off;
  off.congestion_us = 0;
  EXPECT_EQ(resolve_config(off).describe().find("congestion"), std::string::npos);
  Options big;
  big.congestion_us = 2'000'000;
  EXPECT_THROW(resolve_config(big), std::invalid_argument);
  int argc2 = 2;
  char b1[] = "--upcall-congestion-us=-3";
  char* argv2[] = {a0, b1, nullptr};
  Options o2;
  EXPECT_THROW(o2.parse_args(argc2, argv2), std::invalid_argument);
  setenv("UPCALL_CONGESTION_US", "7", 1);
  EXPECT_EQ(resolve_config(Options{}).congestion_us, 7u);
  setenv("UPCALL_CONGESTION_US", "soon", 1);
  EXPECT_THROW(resolve_config(Options{}), std::invalid_argument);
  unsetenv("UPCALL_CONGESTION_US");
  EXPECT_EQ(resolve_config(Options{}).congestion_us, 5u) << "the default";
}

}  // namespace
}  // namespace upcall::cores_test
