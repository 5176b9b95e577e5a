// Park/unpark under races: two fibers (and a fiber and a plain thread) ping-ponging through
// park/unpark for 1e5 round trips, and a crowd of fibers and threads passing tokens to random
// peers with unpark, where a lost wake-up leaves a peer parked with a token in hand. A stall is
// detected by a watchdog, reported as a failure, and rescued (by unparking everyone) so the test
// ends cleanly.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "runtime/sync/parker.hpp"
#include "stress_util.hpp"

namespace upcall::stress {
namespace {

inline void CpuRelax() { __builtin_ia32_pause(); }

// One side of a ping-pong: waits for its turn (spinning a random while first, so the partner's
// unpark sometimes lands before the park, as a permit, and sometimes wakes a parked fiber on the
// other core), takes it, hands the turn over with a plain store and unparks the partner.
struct Table {
  std::atomic<int> turn{0};
  std::atomic<rt::Waker> wakers[2] = {0, 0};
  std::atomic<std::uint64_t> progress{0};
};

void Play(int me, int rounds, Table& t, std::uint32_t seed) {
  t.wakers[me] = rt::current_waker();
  while (t.wakers[1 - me].load() == 0) this_task::yield();
  std::minstd_rand rng(seed);
  for (int i = 0; i < rounds; ++i) {
    const unsigned spin = rng() % 256;
    unsigned spun = 0;
    while (t.turn.load(std::memory_order_acquire) != me) {
      if (spun < spin) {
        ++spun;
        CpuRelax();
      } else {
        rt::park_current();
      }
    }
    t.progress.fetch_add(1);
    t.turn.store(1 - me, std::memory_order_release);
    rt::unpark_waker(t.wakers[1 - me].load(std::memory_order_relaxed));
  }
}

// The condition is a plain store (turn), then unpark: the pattern of every flag-then-wake user
// code. The race it can lose is narrow (the waker's store still in its store buffer while the
// parked side consumes an older permit), so the 1e5-round ping-pong is repeated for ~8 s.
TEST(PingPong, ParkUnparkRoundTripsAcrossCores) {
  const int kRounds = 100'000 / Scale();
  const auto budget = 8s;
  const auto start = Clock::now();
  int trials = 0;
  for (; trials == 0 || (Clock::now() - start < budget && trials < 40); ++trials) {
    Options o;
    o.cores = Cores();
    Runtime rt(std::move(o));
    Table t;
    auto ping = rt.spawn([&] { Play(0, kRounds, t, 1 + 2 * trials); });
    auto pong = rt.spawn([&] { Play(1, kRounds, t, 2 + 2 * trials); });
    auto done = [&] { return ping.done() && pong.done(); };
    const bool ok = WaitWithWatchdog(done, [&] { return t.progress.load(); }, 3s, 100s);
    EXPECT_TRUE(ok) << "trial " << trials << ": ping-pong stalled after " << t.progress.load()
                    << " of " << 2 * kRounds << " turns: a wake-up was lost. turn="
                    << t.turn.load() << " ping " << DescribeWaker(t.wakers[0].load()) << ", pong "
                    << DescribeWaker(t.wakers[1].load()) << ". " << Describe(rt);
    while (!done()) {  // rescue
      for (auto& w : t.wakers)
        if (rt::Waker x = w.load()) rt::unpark_waker(x);
      std::this_thread::sleep_for(1ms);
    }
    ping.join();
    pong.join();
    EXPECT_EQ(t.progress.load(), 2u * kRounds);
    EXPECT_TRUE(upcall::test::NoLeaks(rt)) << Describe(rt);
    if (!ok) break;
  }
  RecordProperty("trials", trials);
}

TEST(PingPong, FiberAndPlainThreadRoundTrips) {
  const int kRounds = 100'000 / Scale();
  Options o;
  o.cores = Cores();
  Runtime rt(std::move(o));
  Table t;
  auto fiber = rt.spawn([&] { Play(0, kRounds, t, 3); });
  std::atomic<bool> thread_done{false};
  std::thread plain([&] {
    Play(1, kRounds, t, 4);
    thread_done = true;
  });
  auto done = [&] { return fiber.done() && thread_done.load(); };
  const bool ok = WaitWithWatchdog(done, [&] { return t.progress.load(); }, 5s, 100s);
  EXPECT_TRUE(ok) << "fiber/thread ping-pong stalled after " << t.progress.load() << " turns. "
                  << "turn=" << t.turn.load() << " fiber " << DescribeWaker(t.wakers[0].load())
                  << ". " << Describe(rt);
  while (!done()) {
    for (auto& w : t.wakers)
      if (rt::Waker x = w.load()) rt::unpark_waker(x);
    std::this_thread::sleep_for(1ms);
  }
  plain.join();
  fiber.join();
  EXPECT_EQ(t.progress.load(), 2u * kRounds);
  EXPECT_TRUE(upcall::test::NoLeaks(rt)) << Describe(rt);
}

// Token passing: each participant (fibers and a few plain threads) takes a token it holds, gives
// it to a random peer and unparks that peer; with no token it parks. Tokens are conserved, so a
// peer that sits parked while holding tokens for seconds missed its wake-up.
TEST(ParkStress, RandomUnparksLoseNoWakeup) {
  constexpr int kFibers = 32, kThreads = 2, kN = kFibers + kThreads;
  constexpr int kTokensEach = 2;
  const std::uint64_t kHops = 1'000'000 / Scale();
  Options o;
  o.cores = Cores();
  Runtime rt(std::move(o));
  struct alignas(64) Peer {
    std::atomic<int> tokens{kTokensEach};
    std::atomic<rt::Waker> waker{0};
    std::atomic<std::uint64_t> hops{0};
    std::atomic<bool> exited{false};
  };
  std::vector<Peer> peers(kN);
  std::atomic<std::uint64_t> total_hops{0};
  std::atomic<bool> stop{false};
  std::atomic<int> registered{0};

  auto body = [&](int me) {
    Peer& self = peers[me];
    self.waker = rt::current_waker();
    registered.fetch_add(1);
    while (registered.load() != kN) this_task::yield();
    std::minstd_rand rng(1000 + me);
    while (!stop.load(std::memory_order_acquire)) {
      int t = self.tokens.load(std::memory_order_acquire);
      if (t == 0) {
        rt::park_current();
        continue;
      }
      if (!self.tokens.compare_exchange_weak(t, t - 1, std::memory_order_acq_rel)) continue;
      int peer = static_cast<int>(rng() % (kN - 1));
      if (peer >= me) ++peer;
      peers[peer].tokens.fetch_add(1, std::memory_order_acq_rel);
      rt::unpark_waker(peers[peer].waker.load());
      self.hops.fetch_add(1, std::memory_order_relaxed);
      if (total_hops.fetch_add(1, std::memory_order_relaxed) + 1 >= kHops) {
        stop.store(true, std::memory_order_release);
      }
      switch (rng() % 64) {
        case 0:
          this_task::yield();
          break;
        case 1:
          this_task::sleep_for(std::chrono::microseconds(rng() % 50));
          break;
        default:
          break;
      }
    }
    self.exited = true;
  };

  std::vector<JoinHandle<void>> fibers;
  for (int i = 0; i < kFibers; ++i) fibers.push_back(rt.spawn([&, i] { body(i); }));
  std::vector<std::thread> threads;
  for (int i = kFibers; i < kN; ++i) threads.emplace_back([&, i] { body(i); });

  // Watchdog: per peer, how long has it held a token without making a hop?
  int lost = 0;
  std::vector<std::uint64_t> last_hops(kN, 0);
  std::vector<Clock::time_point> holding_since(kN, Clock::time_point::max());
  const auto give_up = Clock::now() + 100s;
  auto last_global = Clock::now();
  std::uint64_t last_total = 0;
  while (!stop.load() && Clock::now() < give_up) {
    std::this_thread::sleep_for(20ms);
    const auto now = Clock::now();
    for (int i = 0; i < kN; ++i) {
      const std::uint64_t h = peers[i].hops.load();
      const bool holding = peers[i].tokens.load() > 0;
      if (h != last_hops[i] || !holding) {
        last_hops[i] = h;
        holding_since[i] = holding ? now : Clock::time_point::max();
        continue;
      }
      if (holding_since[i] == Clock::time_point::max()) holding_since[i] = now;
      if (now - holding_since[i] > 3s) {
        ++lost;
        ADD_FAILURE() << (i < kFibers ? "fiber" : "thread") << " peer " << i << " has held "
                      << peers[i].tokens.load() << " token(s) for 3 s without running: lost "
                      << "wake-up. " << Describe(rt);
        rt::unpark_waker(peers[i].waker.load());  // rescue it
        holding_since[i] = now;
      }
    }
    const std::uint64_t tot = total_hops.load();
    if (tot != last_total) {
      last_total = tot;
      last_global = now;
    } else if (now - last_global > 10s) {
      ADD_FAILURE() << "no hop for 10 s. " << Describe(rt);
      break;
    }
  }
  // Finish: everyone is told to stop and woken until it has exited.
  stop = true;
  auto all_exited = [&] {
    for (auto& p : peers)
      if (!p.exited.load()) return false;
    return true;
  };
  while (!all_exited()) {
    for (auto& p : peers)
      if (!p.exited.load() && p.waker.load()) rt::unpark_waker(p.waker.load());
    std::this_thread::sleep_for(1ms);
  }
  for (auto& t : threads) t.join();
  for (auto& f : fibers) f.join();
  int tokens = 0;
  for (auto& p : peers) tokens += p.tokens.load();
  EXPECT_EQ(tokens, kN * kTokensEach) << "tokens are conserved";
  EXPECT_GE(total_hops.load(), kHops);
  EXPECT_EQ(lost, 0);
  EXPECT_TRUE(upcall::test::NoLeaks(rt)) << Describe(rt);
}

}  // namespace
}  // namespace upcall::stress
