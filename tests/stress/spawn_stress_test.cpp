// Spawn/join at volume on every core: a million fibers from spawner fibers and from a plain
// thread (Runtime::spawn), each proving it ran exactly once; join-chain round trips; and
// runtimes created and destroyed with detached work in flight.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "stress_util.hpp"

namespace upcall::stress {
namespace {

// Counts per index; reports missing and duplicated ones.
struct Ledger {
  explicit Ledger(std::size_t n) : seen(n) {}
  void mark(std::size_t i) { seen[i].fetch_add(1, std::memory_order_relaxed); }
  void expect_each_once(const char* what) const {
    std::size_t missing = 0, dup = 0, first_bad = SIZE_MAX;
    for (std::size_t i = 0; i < seen.size(); ++i) {
      const auto n = seen[i].load(std::memory_order_relaxed);
      if (n != 1 && first_bad == SIZE_MAX) first_bad = i;
      missing += (n == 0);
      dup += (n > 1);
    }
    EXPECT_EQ(missing, 0u) << what << ": fibers that never ran (first bad index " << first_bad
                           << ")";
    EXPECT_EQ(dup, 0u) << what << ": fibers that ran more than once";
  }
  std::vector<std::atomic<std::uint8_t>> seen;
};

// 1e6 fibers: kSpawners spawner fibers spawn batches and join them, while a plain thread does
// the same through Runtime::spawn. Every fiber marks its own index; every join checks the value.
TEST(SpawnStress, MillionSpawnJoinFromFibersAndAThread) {
  const std::size_t total = 1'000'000 / Scale();
  constexpr int kSpawners = 6;
  constexpr int kBatch = 64;
  const std::size_t from_thread = total / 4;
  const std::size_t per_spawner = (total - from_thread) / kSpawners;
  const std::size_t from_fibers = per_spawner * kSpawners;
  Options o;
  o.cores = Cores();
  Runtime rt(std::move(o));
  Ledger ledger(from_fibers + from_thread);
  std::atomic<std::uint64_t> joined{0}, wrong_value{0};
  const auto before = rt.stats();

  std::vector<JoinHandle<void>> spawners;
  for (int s = 0; s < kSpawners; ++s) {
    spawners.push_back(rt.spawn([&, s] {
      const std::size_t begin = s * per_spawner, end = begin + per_spawner;
      std::vector<JoinHandle<std::size_t>> batch;
      batch.reserve(kBatch);
      for (std::size_t i = begin; i < end;) {
        for (int k = 0; k < kBatch && i < end; ++k, ++i)
          batch.push_back(spawn([&ledger, i] {
            ledger.mark(i);
            return i;
          }));
        std::size_t expect = i - batch.size();
        for (auto& h : batch) {
          if (h.join() != expect++) wrong_value.fetch_add(1);
          joined.fetch_add(1, std::memory_order_relaxed);
        }
        batch.clear();
      }
    }));
  }
  std::thread plain([&] {
    std::vector<JoinHandle<std::size_t>> batch;
    const std::size_t begin = from_fibers, end = begin + from_thread;
    for (std::size_t i = begin; i < end;) {
      for (int k = 0; k < kBatch && i < end; ++k, ++i)
        batch.push_back(rt.spawn([&ledger, i] {
          ledger.mark(i);
          return i;
        }));
      std::size_t expect = i - batch.size();
      for (auto& h : batch) {
        if (h.join() != expect++) wrong_value.fetch_add(1);
        joined.fetch_add(1, std::memory_order_relaxed);
      }
      batch.clear();
    }
  });
  const bool ok = WaitWithWatchdog(
      [&] {
        for (auto& h : spawners)
          if (!h.done()) return false;
        return joined.load() == from_fibers + from_thread;
      },
      [&] { return joined.load(); }, 10s, 150s);
  if (!ok) AbortStalled("spawn/join made no progress for 10 s", rt);
  plain.join();
  for (auto& h : spawners) h.join();
  ledger.expect_each_once("spawn/join");
  EXPECT_EQ(wrong_value.load(), 0u);
  const auto after = rt.stats();
  EXPECT_EQ(after.fibers_spawned - before.fibers_spawned, from_fibers + from_thread + kSpawners);
  EXPECT_TRUE(upcall::test::NoLeaks(rt)) << Describe(rt);
  RecordProperty("fibers", static_cast<int>(from_fibers + from_thread));
}

// Detached fibers that spawn detached children (a tree), from several plain threads at once:
// every node runs once and the runtime ends with nothing live.
TEST(SpawnStress, DetachedTreesFromSeveralThreads) {
  const int kRoots = std::max(2000 / Scale(), 10);
  constexpr int kFanout = 8, kDepth = 3;  // 1 + 8 + 64 + 512 = 585 nodes per root
  constexpr int kPerRoot = 1 + kFanout + kFanout * kFanout + kFanout * kFanout * kFanout;
  Options o;
  o.cores = Cores();
  Runtime rt(std::move(o));
  std::atomic<std::uint64_t> ran{0};
  struct Tree {
    static void Node(std::atomic<std::uint64_t>* ran, int depth) {
      ran->fetch_add(1, std::memory_order_relaxed);
      if (depth == kDepth) return;
      for (int k = 0; k < kFanout; ++k) spawn([ran, depth] { Node(ran, depth + 1); }).detach();
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      for (int r = t; r < kRoots; r += 3) {
        // Bounded in flight (a tree grows to kPerRoot live fibers), see MaxLiveFibers().
        while (rt.live_fibers() + kPerRoot > MaxLiveFibers())
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        rt.spawn([&] { Tree::Node(&ran, 0); }).detach();
      }
    });
  for (auto& t : threads) t.join();
  const std::uint64_t expected = static_cast<std::uint64_t>(kRoots) * kPerRoot;
  if (!WaitWithWatchdog([&] { return ran.load() >= expected; }, [&] { return ran.load(); }))
    AbortStalled("detached fibers stopped running", rt);
  EXPECT_TRUE(upcall::test::NoLeaks(rt, 10s)) << Describe(rt);
  EXPECT_EQ(ran.load(), expected);
}

// A chain of spawn + join round trips: each join wakes the parent from wherever the child ran
// (another core when it was stolen).
TEST(PingPong, JoinChainRoundTrips) {
  const int kRounds = 100'000 / Scale();
  Options o;
  o.cores = Cores();
  Runtime rt(std::move(o));
  std::atomic<std::uint64_t> rounds{0}, cross_core{0};
  auto h = rt.spawn([&] {
    std::uint64_t sum = 0;
    for (int i = 0; i < kRounds; ++i) {
      const int parent_core = this_task::core();
      auto child = spawn([i] { return std::pair<int, int>(i, this_task::core()); });
      const auto [v, child_core] = child.join();
      sum += static_cast<std::uint64_t>(v);
      if (child_core != parent_core) cross_core.fetch_add(1, std::memory_order_relaxed);
      rounds.fetch_add(1, std::memory_order_relaxed);
    }
    return sum;
  });
  if (!WaitWithWatchdog([&] { return h.done(); }, [&] { return rounds.load(); }))
    AbortStalled("join chain stalled", rt);
  EXPECT_EQ(h.join(), static_cast<std::uint64_t>(kRounds) * (kRounds - 1) / 2);
  RecordProperty("cross_core_rounds", static_cast<int>(cross_core.load()));
  EXPECT_TRUE(upcall::test::NoLeaks(rt)) << Describe(rt);
}

// Runtimes created and destroyed back to back with detached fibers (some sleeping, some
// yielding) still in flight: the destructor waits for every one of them.
TEST(RuntimeStress, CreateDestroyWithWorkInFlight) {
  const int kCycles = 100 / Scale() + 5;  // ~70 ms a cycle with activations on
  std::mt19937 rng(17);
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    std::atomic<int> ran{0};
    const int n = 50 + static_cast<int>(rng() % 100);
    {
      Options o;
      o.cores = 1 + static_cast<int>(rng() % Cores());
      Runtime rt(std::move(o));
      for (int i = 0; i < n; ++i) {
        rt.spawn([&ran, i] {
            if (i % 3 == 0) this_task::sleep_for(std::chrono::microseconds(100 * (i % 7)));
            if (i % 3 == 1) this_task::yield();
            ran.fetch_add(1);
          }).detach();
      }
    }
    ASSERT_EQ(ran.load(), n) << "cycle " << cycle << ": the destructor did not wait for all";
  }
}

}  // namespace
}  // namespace upcall::stress
