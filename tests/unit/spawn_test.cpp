// Spawn, join, detach, exceptions and this_task basics, at 1 and 2 cores.
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"

namespace upcall::test {
namespace {

using Spawn = RuntimeTest;

TEST_P(Spawn, JoinReturnsValue) {
  auto h = rt().spawn([] { return 42; });
  EXPECT_EQ(h.join(), 42);
  EXPECT_FALSE(h.joinable());
}

TEST_P(Spawn, JoinRethrowsException) {
  auto h = rt().spawn([]() -> int { throw std::runtime_error("boom"); });
  try {
    h.join();
    FAIL() << "join did not rethrow";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
}

TEST_P(Spawn, ReturnsMoveOnlyAndLargeValues) {
  auto h = rt().spawn([] { return std::make_unique<std::string>(1000, 'x'); });
  auto p = h.join();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->size(), 1000u);
  auto v = rt().block_on([] { return std::vector<int>(10000, 7); });
  EXPECT_EQ(v.size(), 10000u);
  EXPECT_EQ(v[9999], 7);
}

TEST_P(Spawn, NestedSpawnFromFiber) {
  const int total = rt().block_on([] {
    std::vector<JoinHandle<int>> hs;
    for (int i = 0; i < 100; ++i) hs.push_back(spawn([i] { return i; }));
    int sum = 0;
    for (auto& h : hs) sum += h.join();
    return sum;
  });
  EXPECT_EQ(total, 4950);
}

TEST_P(Spawn, DetachedFibersRunToCompletion) {
  std::atomic<int> n{0};
  for (int i = 0; i < 1000; ++i) rt().spawn([&] { n.fetch_add(1); }).detach();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (n.load() != 1000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(n.load(), 1000);
}

TEST_P(Spawn, DroppedHandleDetaches) {
  std::atomic<bool> ran{false};
  { auto h = rt().spawn([&] { ran = true; }); }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ran.load() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(ran.load());
}

TEST_P(Spawn, CapturesDestroyedOnFiber) {
  struct Probe {
    std::atomic<int>* destroyed;
    explicit Probe(std::atomic<int>* d) : destroyed(d) {}
    Probe(Probe&& o) noexcept : destroyed(std::exchange(o.destroyed, nullptr)) {}
    ~Probe() {
      if (destroyed) destroyed->fetch_add(1);
    }
  };
  std::atomic<int> destroyed{0};
  auto h = rt().spawn([p = Probe(&destroyed)] { return p.destroyed != nullptr; });
  EXPECT_TRUE(h.join());
  EXPECT_EQ(destroyed.load(), 1);
}

TEST_P(Spawn, ThisTaskIdentity) {
  EXPECT_EQ(this_task::id(), 0u);
  EXPECT_FALSE(this_task::in_fiber());
  EXPECT_EQ(this_task::core(), -1);
  auto h = rt().spawn(
      [] {
        EXPECT_TRUE(this_task::in_fiber());
        EXPECT_EQ(this_task::name(), "worker");
        this_task::set_name("renamed-worker");
        EXPECT_GE(this_task::core(), 0);
        return std::string(this_task::name());
      },
      SpawnOptions{"worker", 0});
  const auto id = h.id();
  EXPECT_NE(id, 0u);
  EXPECT_EQ(h.join(), "renamed-worker");
  auto a = rt().spawn([] { return this_task::id(); });
  auto b = rt().spawn([] { return this_task::id(); });
  const auto ida = a.id(), idb = b.id();
  EXPECT_EQ(a.join(), ida);
  EXPECT_EQ(b.join(), idb);
  EXPECT_NE(ida, idb);
}

TEST_P(Spawn, YieldInterleavesFibersOnOneCore) {
  // Two fibers that yield to each other make progress alternately on any core count.
  std::atomic<int> a{0}, b{0};
  auto ha = rt().spawn([&] {
    for (int i = 0; i < 10000; ++i) {
      a.fetch_add(1);
      this_task::yield();
    }
  });
  auto hb = rt().spawn([&] {
    for (int i = 0; i < 10000; ++i) {
      b.fetch_add(1);
      this_task::yield();
    }
  });
  ha.join();
  hb.join();
  EXPECT_EQ(a.load(), 10000);
  EXPECT_EQ(b.load(), 10000);
}

TEST_P(Spawn, JoinFromPlainThreads) {
  auto h = rt().spawn([] {
    this_task::sleep_for(std::chrono::milliseconds(5));
    return 7;
  });
  int got = 0;
  std::thread t([&] { got = h.join(); });
  t.join();
  EXPECT_EQ(got, 7);
}

TEST_P(Spawn, SpawnOutsideFiberThrows) {
  EXPECT_THROW(spawn([] {}), std::logic_error);
}

TEST_P(Spawn, JoinEmptyHandleThrows) {
  JoinHandle<int> h;
  EXPECT_THROW(h.join(), std::logic_error);
}

TEST_P(Spawn, OversizedCallableIsRejected) {
  std::array<char, 200 * 1024> big{};
  EXPECT_THROW(rt().spawn([big] { return big[0]; }), std::length_error);
}

TEST_P(Spawn, JoinAcrossRuntimes) {
  // A fiber of one runtime joins fibers of another; the woken fiber must come back on its own
  // runtime's cores.
  Options o;
  o.cores = 1;
  Runtime other(o);
  const int got = rt().block_on([&] {
    int sum = 0;
    for (int i = 0; i < 200; ++i) {
      auto h = other.spawn([i] {
        this_task::sleep_for(std::chrono::microseconds(50));
        return i;
      });
      sum += h.join();
    }
    return sum;
  });
  EXPECT_EQ(got, 199 * 200 / 2);
  EXPECT_EQ(other.stats().fibers_finished, 200u);
}

TEST_P(Spawn, RethrowAfterSuspendingInCatchBlock) {
  // The caught-exception stack is per fiber: a fiber may suspend (and move to another kernel
  // thread) inside a catch block and still rethrow, while other fibers throw and catch too.
  auto worker = [](int k) {
    try {
      try {
        throw std::runtime_error("e" + std::to_string(k));
      } catch (const std::runtime_error&) {
        for (int i = 0; i < 50; ++i) {
          this_task::yield();
          this_task::sleep_for(std::chrono::microseconds(10));
        }
        throw;
      }
    } catch (const std::runtime_error& e) {
      return std::string(e.what()) == "e" + std::to_string(k) &&
             std::uncaught_exceptions() == 0;
    }
    return false;
  };
  const int ok = rt().block_on([&] {
    std::vector<JoinHandle<bool>> hs;
    for (int k = 0; k < 32; ++k) hs.push_back(spawn([&worker, k] { return worker(k); }));
    int n = 0;
    for (auto& h : hs) n += h.join();
    return n;
  });
  EXPECT_EQ(ok, 32);
}

TEST_P(Spawn, UncaughtExceptionsCountIsPerFiber) {
  struct Probe {
    int* seen;
    ~Probe() {
      this_task::yield();  // suspend during unwinding
      *seen = std::uncaught_exceptions();
    }
  };
  const int seen_in_other = rt().block_on([] {
    int seen = -1;
    auto thrower = spawn([&seen] {
      try {
        Probe p{&seen};
        throw 1;
      } catch (int) {
      }
    });
    int other = -1;
    auto bystander = spawn([&other] {
      for (int i = 0; i < 20; ++i) this_task::yield();
      other = std::uncaught_exceptions();
    });
    thrower.join();
    bystander.join();
    EXPECT_EQ(seen, 1);
    return other;
  });
  EXPECT_EQ(seen_in_other, 0);
}

// A JoinHandle kept past its Runtime: the result is still there and dropping the handle later
// touches no freed memory (ASAN checks that in make test-long).
TEST(SpawnLifetime, JoinHandleOutlivesRuntime) {
  JoinHandle<std::string> kept;
  JoinHandle<int> dropped_later;
  {
    Options o;
    o.cores = 1;
    o.activations = "off";
    Runtime r(o);
    kept = r.spawn([] { return std::string(100, 'k'); });
    dropped_later = r.spawn([] { return 5; });
    while (!kept.done() || !dropped_later.done()) std::this_thread::yield();
  }
  EXPECT_EQ(kept.join(), std::string(100, 'k'));
  dropped_later.detach();
}

UPCALL_INSTANTIATE_CORES(Spawn);

}  // namespace
}  // namespace upcall::test
