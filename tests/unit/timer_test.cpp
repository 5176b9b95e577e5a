// Timers and parking: this_task::sleep_for/sleep_until (wake order, no stall of other fibers,
// plain threads), and the permit protocol of runtime/sync/parker.hpp (timeouts from fibers and
// threads, a wake-up that arrives before the park, wakers from another runtime).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "runtime/sync/parker.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Waits up to `limit` for `pred`, polling from the (plain) calling thread.
template <class Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// ------------------------------------------------------------------------------- Sleep

using Sleep = RuntimeTest;

// Deadlines 20 ms apart, spawned in shuffled order: they wake in deadline order. (The spacing
// only has to exceed the machine's scheduling noise, not measure anything.)
TEST_P(Sleep, WakeInDeadlineOrder) {
  constexpr int kN = 10;
  std::vector<int> spawn_order(kN);
  std::iota(spawn_order.begin(), spawn_order.end(), 0);
  std::shuffle(spawn_order.begin(), spawn_order.end(), std::mt19937(5));
  std::mutex mu;
  std::vector<int> woke;
  std::vector<char> late(kN, 0);
  std::atomic<int> early{0};
  std::atomic<bool> go{false};
  std::atomic<std::int64_t> base_ns{0};
  std::vector<JoinHandle<void>> hs;
  for (int k : spawn_order) {
    hs.push_back(rt().spawn([&, k] {
      while (!go.load()) this_task::yield();
      const Clock::time_point deadline{std::chrono::nanoseconds(base_ns.load()) + k * 20ms};
      // A sleeper that starts after its deadline (a slow, loaded or TSAN run) wakes at once, in
      // spawn order: it is left out of the order check below.
      if (Clock::now() >= deadline) late[k] = 1;
      this_task::sleep_until(deadline);
      if (Clock::now() < deadline) early.fetch_add(1);
      std::lock_guard<std::mutex> lock(mu);
      woke.push_back(k);
    }));
  }
  // The deadlines start once every sleeper exists (spawning is slow under TSAN).
  const auto base = Clock::now() + 50ms;
  base_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(base.time_since_epoch()).count();
  go = true;
  for (auto& h : hs) h.join();
  EXPECT_EQ(early.load(), 0) << "sleep_until returned before its deadline";
  ASSERT_EQ(woke.size(), static_cast<std::size_t>(kN));
  std::vector<int> in_time;
  for (int k : woke)
    if (!late[k]) in_time.push_back(k);
  EXPECT_GE(in_time.size(), static_cast<std::size_t>(kN / 2)) << "most sleepers armed late";
  EXPECT_TRUE(std::is_sorted(in_time.begin(), in_time.end()))
      << "sleepers that armed in time woke out of deadline order";
}

TEST_P(Sleep, ManySleepersAllWakeAfterTheirDeadlines) {
  constexpr int kN = 2000;
  std::atomic<int> early{0}, done{0};
  const auto before = rt().stats();
  std::vector<JoinHandle<void>> hs;
  std::mt19937 rng(9);
  for (int i = 0; i < kN; ++i) {
    const auto d = std::chrono::microseconds(rng() % 20000);
    hs.push_back(rt().spawn([&, d] {
      const auto deadline = Clock::now() + d;
      this_task::sleep_until(deadline);
      if (Clock::now() < deadline) early.fetch_add(1);
      done.fetch_add(1);
    }));
  }
  for (auto& h : hs) h.join();
  EXPECT_EQ(done.load(), kN);
  EXPECT_EQ(early.load(), 0);
  std::uint64_t fired = 0;
  for (const auto& c : rt().stats().cores) fired += c.timers_fired;
  for (const auto& c : before.cores) fired -= c.timers_fired;
  EXPECT_GT(fired, 0u);
}

TEST_P(Sleep, SleepingFiberDoesNotBlockOthers) {
  std::atomic<bool> sleeper_done{false};
  std::atomic<std::uint64_t> counter{0};
  std::atomic<std::uint64_t> at_sleep{0}, at_wake{0};
  auto sleeper = rt().spawn([&] {
    at_sleep = counter.load();
    const auto deadline = Clock::now() + 200ms;
    this_task::sleep_until(deadline);
    at_wake = counter.load();
    sleeper_done = true;
    return Clock::now() >= deadline;
  });
  auto counter_fiber = rt().spawn([&] {
    const auto give_up = Clock::now() + 20s;
    while (!sleeper_done.load() && Clock::now() < give_up) {
      counter.fetch_add(1);
      this_task::yield();
    }
  });
  EXPECT_TRUE(sleeper.join()) << "sleep returned early";
  counter_fiber.join();
  // Generous: a yield loop makes millions of iterations in 200 ms.
  EXPECT_GT(at_wake.load() - at_sleep.load(), 100u) << "other fibers stalled while one slept";
}

// Fibers that only yield to each other must not starve a sleeper: timers are polled in the
// switch path too, not only when a core runs dry.
TEST_P(Sleep, SleeperWakesWhileOthersKeepYielding) {
  std::atomic<bool> woke{false};
  std::atomic<int> gave_up{0};
  auto yielder = [&] {
    const auto give_up = Clock::now() + 10s;
    while (!woke.load()) {
      if (Clock::now() > give_up) {
        gave_up.fetch_add(1);
        return;
      }
      this_task::yield();
    }
  };
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < 2 * GetParam(); ++i) hs.push_back(rt().spawn(yielder));
  hs.push_back(rt().spawn([&] {
    this_task::sleep_for(20ms);
    woke = true;
  }));
  for (auto& h : hs) h.join();
  EXPECT_EQ(gave_up.load(), 0) << "the sleeper starved behind yielding fibers";
}

TEST_P(Sleep, PastDeadlineReturnsAtOnce) {
  const bool ok = rt().block_on([] {
    this_task::sleep_until(Clock::now() - 1s);
    this_task::sleep_for(0ms);
    this_task::sleep_for(-5ms);
    return true;
  });
  EXPECT_TRUE(ok);
}

TEST_P(Sleep, SleepFromPlainThreadSleepsTheThread) {
  const auto t0 = Clock::now();
  this_task::sleep_for(20ms);
  EXPECT_GE(Clock::now() - t0, 20ms);
  const auto t1 = Clock::now();
  this_task::sleep_until(t1 + 10ms);
  EXPECT_GE(Clock::now() - t1, 10ms);
  this_task::sleep_until(Clock::now() - 1s);  // past: returns
  // And from another plain thread while fibers run.
  std::atomic<bool> ok{false};
  std::thread t([&] {
    const auto s = Clock::now();
    this_task::sleep_for(15ms);
    ok = Clock::now() - s >= 15ms;
  });
  rt().block_on([] { this_task::sleep_for(5ms); });
  t.join();
  EXPECT_TRUE(ok.load());
}

UPCALL_INSTANTIATE_CORES(Sleep);

// Timers that come due together (their core was busy past all of them) still wake their fibers
// in deadline order. One core, so every fiber and timer is on it.
TEST(SleepOneCore, TimersDueTogetherWakeInDeadlineOrder) {
  Options o;
  o.cores = 1;
  Runtime rt(std::move(o));
  constexpr int kN = 8;
  std::mutex mu;
  std::vector<int> woke;
  std::atomic<int> armed_late{0};
  rt.block_on([&] {
    std::atomic<int> armed{0};
    std::atomic<bool> go{false};
    std::atomic<std::int64_t> base_ns{0};
    std::vector<int> order(kN);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(2));
    std::vector<JoinHandle<void>> hs;
    for (int k : order) {
      hs.push_back(spawn([&, k] {
        while (!go.load()) this_task::yield();
        const Clock::time_point deadline{std::chrono::nanoseconds(base_ns.load()) + k * 1ms};
        if (Clock::now() >= deadline) armed_late.fetch_add(1);  // too slow a machine: no test
        armed.fetch_add(1);
        this_task::sleep_until(deadline);
        std::lock_guard<std::mutex> lock(mu);
        woke.push_back(k);
      }));
    }
    // The deadlines start once every sleeper exists (spawning is slow under TSAN).
    const auto base = Clock::now() + 50ms;
    base_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(base.time_since_epoch()).count();
    go = true;
    // One core: once every sleeper has run, each is parked on its timer.
    while (armed.load() != kN) this_task::yield();
    // Keep the core busy, without a scheduling point, until every deadline has passed.
    while (Clock::now() < base + kN * 1ms + 30ms) {
    }
    for (auto& h : hs) h.join();
  });
  if (armed_late.load() != 0) GTEST_SKIP() << "sleepers armed after their deadline (slow run)";
  std::vector<int> expected(kN);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(woke, expected);
  EXPECT_TRUE(NoLeaks(rt));
}

// ------------------------------------------------------------------------------- Park

using Park = RuntimeTest;

// A fiber that parks until someone wakes it, with a rescue: if it is still parked after
// `limit`, the test thread wakes it (so a lost wake-up fails the test instead of hanging it).
// Returns false when the rescue was needed.
template <class H>
bool JoinOrRescue(H& h, std::atomic<rt::Waker>& waker, std::chrono::milliseconds limit = 5s) {
  const bool in_time = WaitFor([&] { return h.done(); }, limit);
  while (!h.done()) {
    if (rt::Waker w = waker.load()) rt::unpark_waker(w);
    std::this_thread::sleep_for(1ms);
  }
  h.join();
  return in_time;
}

TEST_P(Park, WakeupBeforeParkIsNotLost) {
  // The fiber wakes itself, then parks: the permit makes the park return at once.
  std::atomic<rt::Waker> waker{0};
  std::atomic<bool> returned{false};
  auto h = rt().spawn([&] {
    const rt::Waker me = rt::current_waker();
    waker = me;
    rt::unpark_waker(me);
    rt::park_current();
    returned = true;
  });
  EXPECT_TRUE(JoinOrRescue(h, waker)) << "the permit left before the park was lost";
  EXPECT_TRUE(returned.load());
}

TEST_P(Park, WakeupFromAnotherFiberBeforeParkIsNotLost) {
  std::atomic<rt::Waker> waker{0};
  std::atomic<bool> unparked{false};
  auto parker = rt().spawn([&] {
    waker = rt::current_waker();
    while (!unparked.load()) this_task::yield();  // the wake-up comes first
    rt::park_current();
  });
  auto waker_fiber = rt().spawn([&] {
    while (waker.load() == 0) this_task::yield();
    rt::unpark_waker(waker.load());
    unparked = true;
  });
  waker_fiber.join();
  EXPECT_TRUE(JoinOrRescue(parker, waker)) << "the permit left before the park was lost";
}

TEST_P(Park, WakeupBeforeParkIsNotLostOnPlainThread) {
  const rt::Waker me = rt::current_waker();
  EXPECT_TRUE(me & 1u) << "a plain thread's waker is its thread parker";
  rt::unpark_waker(me);
  const std::int64_t t0 = rt::now_ns();
  rt::park_current_until(t0 + 5'000'000'000);
  EXPECT_LT(rt::now_ns() - t0, 4'000'000'000) << "the permit was lost; park waited for its timeout";
  // The permit is consumed: a second park waits for its (short) timeout.
  const std::int64_t t1 = rt::now_ns();
  rt::park_current_until(t1 + 20'000'000);
  rt::park_current_until(t1 + 20'000'000);  // tolerate one spurious return
  EXPECT_GE(rt::now_ns() - t1, 20'000'000 - 1'000'000);
}

TEST_P(Park, PlainThreadWakesParkedFiber) {
  std::atomic<rt::Waker> waker{0};
  std::atomic<bool> go{false};
  auto h = rt().spawn([&] {
    waker = rt::current_waker();
    while (!go.load()) rt::park_current();
    return this_task::in_fiber();
  });
  ASSERT_TRUE(WaitFor([&] { return waker.load() != 0; }));
  std::this_thread::sleep_for(10ms);  // most likely parked by now (either way must work)
  go = true;
  rt::unpark_waker(waker.load());
  EXPECT_TRUE(WaitFor([&] { return h.done(); }, 5s)) << "wake-up from a plain thread lost";
  go = true;
  while (!h.done()) {
    rt::unpark_waker(waker.load());
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(h.join());
}

TEST_P(Park, TimeoutFromFiber) {
  const bool ok = rt().block_on([] {
    const std::int64_t deadline = rt::now_ns() + 30'000'000;
    int rounds = 0;
    while (rt::now_ns() < deadline && rounds < 1000) {
      rt::park_current_until(deadline);
      ++rounds;
    }
    // Spurious returns are allowed, a busy loop of them is not.
    return rt::now_ns() >= deadline && rounds < 1000;
  });
  EXPECT_TRUE(ok);
}

TEST_P(Park, FiberParksAgainAfterATimeout) {
  // After a timed park expired, the fiber's pending-timer bookkeeping must not break an
  // ordinary park/unpark afterwards (nor a second timed park with a new deadline).
  std::atomic<rt::Waker> waker{0};
  std::atomic<bool> go{false};
  auto h = rt().spawn([&] {
    const std::int64_t d1 = rt::now_ns() + 10'000'000;
    while (rt::now_ns() < d1) rt::park_current_until(d1);
    const std::int64_t d2 = rt::now_ns() + 10'000'000;
    while (rt::now_ns() < d2) rt::park_current_until(d2);
    waker = rt::current_waker();
    while (!go.load()) rt::park_current();
  });
  ASSERT_TRUE(WaitFor([&] { return waker.load() != 0; }));
  go = true;
  rt::unpark_waker(waker.load());
  EXPECT_TRUE(JoinOrRescue(h, waker));
}

TEST_P(Park, TimeoutFromThread) {
  const std::int64_t deadline = rt::now_ns() + 30'000'000;
  int rounds = 0;
  while (rt::now_ns() < deadline && rounds < 1000) {
    rt::park_current_until(deadline);
    ++rounds;
  }
  EXPECT_GE(rt::now_ns(), deadline);
  EXPECT_LT(rounds, 1000);
  // A deadline already passed returns at once.
  const std::int64_t t0 = rt::now_ns();
  rt::park_current_until(t0 - 1);
  EXPECT_LT(rt::now_ns() - t0, 1'000'000'000);
}

UPCALL_INSTANTIATE_CORES(Park);

// A fiber of runtime A woken by a fiber of runtime B (B's fiber finished, A's fiber joined it)
// must continue on A's cores: runtimes do not share cores (upcall/runtime.hpp).
TEST(ParkAcrossRuntimes, WokenFiberStaysOnItsRuntime) {
  Options oa, ob;
  oa.cores = 1;
  ob.cores = 1;
  Runtime a(std::move(oa));
  Runtime b(std::move(ob));
  for (int round = 0; round < 20; ++round) {
    rt::RuntimeImpl* ran_on = a.block_on([&] {
      auto h = b.spawn([] {
        this_task::sleep_for(2ms);
        return 1;
      });
      h.join();  // parks; B's fiber wakes us when it finishes
      rt::Activation* act = rt::current_activation();
      return act ? act->rt : nullptr;
    });
    ASSERT_EQ(ran_on, a.impl()) << "round " << round
                                << ": the fiber of runtime A continued on a core of runtime B";
  }
  EXPECT_TRUE(NoLeaks(a));
  EXPECT_TRUE(NoLeaks(b));
}

// A sleeper wakes on time while its core stays busy: timers are due-checked at every scheduling
// decision, not only at the fairness turn (every 61st decision). Counted in busy slices, not
// microseconds, so that a loaded machine (which stretches slices) does not decide the test:
// slices that end after the sleeper's deadline and before it runs again. Woken, it queues
// behind the three other busy fibers, so a handful is right; the fairness turn made it ~60.
TEST(SleepOneCore, SleeperWakesOnTimeWhileTheCoreIsBusy) {
  Options o;
  o.cores = 1;
  Runtime rt(std::move(o));
  const int worst_late_slices = rt.block_on([&] {
    std::atomic<bool> stop{false};
    std::atomic<std::int64_t> deadline_ns{INT64_MAX};
    std::atomic<int> late_slices{0};
    std::vector<JoinHandle<void>> busy;
    for (int i = 0; i < 4; ++i) {
      busy.push_back(spawn([&] {
        while (!stop.load()) {
          const auto until = Clock::now() + 200us;
          while (Clock::now() < until) {
          }
          if (Clock::now().time_since_epoch().count() > deadline_ns.load()) late_slices.fetch_add(1);
          this_task::yield();
        }
      }));
    }
    int worst = 0;
    for (int i = 0; i < 5; ++i) {
      const auto deadline = Clock::now() + 2ms;
      late_slices = 0;
      deadline_ns = deadline.time_since_epoch().count();
      this_task::sleep_until(deadline);
      deadline_ns = INT64_MAX;
      worst = std::max(worst, late_slices.load());
    }
    stop = true;
    for (auto& h : busy) h.join();
    return worst;
  });
  EXPECT_LE(worst_late_slices, 12) << "the sleeper waited for the fairness turn";
}

}  // namespace
}  // namespace upcall::test
