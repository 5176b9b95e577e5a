// Idle cores parking and waking, over and over: plain threads spawn small bursts of fibers with
// random pauses in between, long enough for cores to spin out and park, short enough that a
// wake-up races the park. Some fibers spawn a child (a local push that must wake a parked peer
// core), some sleep (a timer on a core that then idles), some bursts are joined from the thread
// (thread wake-ups). Every fiber must run exactly once; cores must have parked thousands of
// times for the test to mean anything.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "stress_util.hpp"

namespace upcall::stress {
namespace {

std::uint64_t Parks(const Runtime& rt) {
  std::uint64_t n = 0;
  for (const auto& c : rt.stats().cores) n += c.parks;
  return n;
}

void BurstsUntilParked(const char* idle) {
  constexpr std::uint64_t kTargetParks = 10'000;
  constexpr int kThreads = 2;
  const auto budget = std::chrono::seconds(15);
  const std::size_t kMaxFibers = 2'000'000;
  Options o;
  o.cores = Cores();
  o.idle = idle;
  Runtime rt(std::move(o));
  std::vector<std::atomic<std::uint8_t>> seen(kMaxFibers);
  std::atomic<std::size_t> next_index{0};
  std::atomic<std::uint64_t> ran{0};
  std::atomic<bool> stop{false};
  const std::uint64_t parks_before = Parks(rt);
  const auto start = Clock::now();

  // Claims an index for one fiber; the fiber marks it when it runs.
  auto fiber_body = [&](std::size_t idx, unsigned kind) {
    seen[idx].fetch_add(1, std::memory_order_relaxed);
    ran.fetch_add(1, std::memory_order_relaxed);
    if (kind == 1) this_task::sleep_for(std::chrono::microseconds(20 + idx % 80));
    if (kind == 2) {
      const std::size_t child = next_index.fetch_add(1);
      if (child < kMaxFibers)
        spawn([&seen, &ran, child] {
          seen[child].fetch_add(1, std::memory_order_relaxed);
          ran.fetch_add(1, std::memory_order_relaxed);
        }).detach();
    }
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::minstd_rand rng(77 + t);
      std::vector<JoinHandle<void>> joined;
      while (!stop.load()) {
        if (rt.live_fibers() > MaxLiveFibers()) {  // TSAN: stay under its thread limit
          std::this_thread::sleep_for(std::chrono::microseconds(500));
          continue;
        }
        const int burst = 1 + static_cast<int>(rng() % 8);
        const bool join_burst = rng() % 4 == 0;
        for (int k = 0; k < burst; ++k) {
          const std::size_t idx = next_index.fetch_add(1);
          if (idx >= kMaxFibers) {
            stop = true;
            break;
          }
          const unsigned kind = rng() % 6;  // 0,3,4,5 plain; 1 sleeps; 2 spawns a child
          auto h = rt.spawn([&fiber_body, idx, kind] { fiber_body(idx, kind); });
          if (join_burst)
            joined.push_back(std::move(h));
          else
            h.detach();
        }
        for (auto& h : joined) h.join();
        joined.clear();
        // Pause: 0-300 us, so cores spin out (50 us) and park, or get woken mid-spin.
        const auto pause = std::chrono::microseconds(rng() % 300);
        if (pause.count() > 10) std::this_thread::sleep_for(pause);
        if (Parks(rt) - parks_before >= kTargetParks || Clock::now() - start > budget)
          stop = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  // Detached fibers of the last bursts may still be running, and a kind-2 one claims a child's
  // index when it runs: count what was spawned only once every fiber has finished (reading
  // next_index earlier let a late child make ran exceed spawned by one).
  if (!WaitWithWatchdog(
          [&] {
            return rt.live_fibers() == 0 && ran.load() >= std::min(next_index.load(), kMaxFibers);
          },
          [&] { return ran.load(); }, 10s))
    AbortStalled("fibers spawned into an idle runtime never ran (lost core wake-up)", rt);
  const std::size_t spawned = std::min(next_index.load(), kMaxFibers);
  EXPECT_TRUE(upcall::test::NoLeaks(rt, std::chrono::seconds(10))) << Describe(rt);
  std::size_t missing = 0, dup = 0;
  for (std::size_t i = 0; i < spawned; ++i) {
    const auto n = seen[i].load();
    missing += n == 0;
    dup += n > 1;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(dup, 0u);
  EXPECT_EQ(ran.load(), spawned);
  const std::uint64_t parks = Parks(rt) - parks_before;
  ::testing::Test::RecordProperty("parks", static_cast<int>(parks));
  ::testing::Test::RecordProperty("fibers", static_cast<int>(spawned));
  // Not a timing claim: a run in which cores never parked exercised nothing here.
  EXPECT_GT(parks, 100u) << Describe(rt);
  std::printf("[ info ] idle=%s: %zu fibers, %llu core parks\n", idle, spawned,
              static_cast<unsigned long long>(parks));
}

TEST(IdleStress, BurstsParkAndWakeCoresSpinFirst) { BurstsUntilParked("spin:50"); }
TEST(IdleStress, BurstsParkAndWakeCoresNoSpin) { BurstsUntilParked("park"); }

}  // namespace
}  // namespace upcall::stress
