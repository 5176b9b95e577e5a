// upcall::blocking(f): the core is handed to a spare thread while f blocks, so the other fibers
// of that core keep running; values and exceptions come back; the handoffs are counted; many
// concurrent calls complete; outside a fiber it is a plain call; inside f the caller is a
// thread, not a fiber (this_task::core() == -1).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::uint64_t Handoffs(const RuntimeStats& s) {
  std::uint64_t n = 0;
  for (const auto& c : s.cores) n += c.blocking_handoffs;
  return n;
}

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe(fd), 0); }
  ~Pipe() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
  int fd[2] = {-1, -1};
};

using Blocking = RuntimeTest;

// One fiber blocks ~200 ms in read(2) on a pipe; another fiber on the runtime keeps counting
// yields meanwhile. On a 1-core runtime the counter can only move if the core was handed over.
TEST_P(Blocking, OtherFibersRunWhileOneBlocksInRead) {
  Pipe p;
  std::atomic<bool> reader_done{false};
  std::atomic<std::uint64_t> counter{0};
  std::atomic<std::uint64_t> before{0}, after{0};
  auto reader = rt().spawn([&] {
    char buf[64] = {0};
    const ssize_t n = blocking([&] {
      before = counter.load();
      const ssize_t r = ::read(p.fd[0], buf, sizeof(buf) - 1);
      after = counter.load();
      return r;
    });
    reader_done = true;
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("<read failed>");
  });
  auto count = rt().spawn([&] {
    const auto give_up = Clock::now() + 20s;
    while (!reader_done.load() && Clock::now() < give_up) {
      counter.fetch_add(1);
      this_task::yield();
    }
  });
  std::thread writer([&] {
    std::this_thread::sleep_for(200ms);
    const char msg[] = "hello from the pipe";
    EXPECT_EQ(::write(p.fd[1], msg, sizeof(msg) - 1), static_cast<ssize_t>(sizeof(msg) - 1));
  });
  EXPECT_EQ(reader.join(), "hello from the pipe");
  count.join();
  writer.join();
  EXPECT_GT(after.load() - before.load(), 100u)
      << "the counting fiber did not progress while the reader was blocked";
}

TEST_P(Blocking, ReturnsValues) {
  auto h = rt().spawn([] {
    const int i = blocking([] { return 42; });
    const std::string s = blocking([] { return std::string(500, 'z'); });
    auto p = blocking([] { return std::make_unique<int>(7); });
    int side = 0;
    blocking([&] { side = 9; });
    return i == 42 && s == std::string(500, 'z') && p && *p == 7 && side == 9;
  });
  EXPECT_TRUE(h.join());
}

// Reference results come back as the same object, not a copy (lvalue and rvalue references).
TEST_P(Blocking, ReturnsReferences) {
  auto h = rt().spawn([] {
    std::string target = "kept";
    std::string& l = blocking([&]() -> std::string& { return target; });
    std::string&& r = blocking([&]() -> std::string&& { return std::move(target); });
    const std::string& c = blocking([&]() -> const std::string& { return target; });
    return &l == &target && &r == &target && &c == &target;
  });
  EXPECT_TRUE(h.join());
}

TEST_P(Blocking, PropagatesExceptions) {
  auto h = rt().spawn([] {
    std::string what;
    try {
      blocking([]() -> int { throw std::runtime_error("device on fire"); });
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    // Void callables too, and the fiber is back on a core afterwards.
    try {
      blocking([] { throw std::out_of_range("void too"); });
    } catch (const std::out_of_range& e) {
      what += std::string("/") + e.what();
    }
    return what + (this_task::core() >= 0 ? "/on-core" : "/off-core");
  });
  EXPECT_EQ(h.join(), "device on fire/void too/on-core");
}

TEST_P(Blocking, HandoffsAreCounted) {
  const auto before = rt().stats();
  constexpr int kCalls = 5;
  rt().block_on([] {
    for (int i = 0; i < kCalls; ++i) blocking([] { std::this_thread::sleep_for(1ms); });
  });
  const auto after = rt().stats();
  EXPECT_EQ(Handoffs(after) - Handoffs(before), static_cast<std::uint64_t>(kCalls));
  EXPECT_EQ(after.blocking_inline, before.blocking_inline);
  EXPECT_GE(after.threads, static_cast<std::uint64_t>(GetParam()) + 1);
}

TEST_P(Blocking, ManyConcurrentCallsComplete) {
  constexpr int kFibers = 50;
  std::atomic<int> inside{0}, max_inside{0}, done{0};
  std::vector<JoinHandle<int>> hs;
  for (int i = 0; i < kFibers; ++i) {
    hs.push_back(rt().spawn([&, i] {
      const int v = blocking([&] {
        const int now = inside.fetch_add(1) + 1;
        int m = max_inside.load();
        while (now > m && !max_inside.compare_exchange_weak(m, now)) {
        }
        std::this_thread::sleep_for(20ms);
        inside.fetch_sub(1);
        return i * 3;
      });
      done.fetch_add(1);
      return v;
    }));
  }
  for (int i = 0; i < kFibers; ++i) EXPECT_EQ(hs[i].join(), i * 3);
  EXPECT_EQ(done.load(), kFibers);
  // Calls overlap: each handoff lets the core start the next fiber's call.
  EXPECT_GT(max_inside.load(), 1) << "blocking calls ran one after another";
  const auto s = rt().stats();
  EXPECT_EQ(s.blocking_inline, 0u);
  EXPECT_GE(Handoffs(s), static_cast<std::uint64_t>(kFibers));
}

TEST_P(Blocking, OutsideAFiberIsAPlainCall) {
  const auto before = rt().stats();
  const auto caller = std::this_thread::get_id();
  std::thread::id ran_on;
  const int v = blocking([&] {
    ran_on = std::this_thread::get_id();
    return 5;
  });
  EXPECT_EQ(v, 5);
  EXPECT_EQ(ran_on, caller);
  EXPECT_THROW(blocking([] { throw std::logic_error("x"); }), std::logic_error);
  EXPECT_EQ(Handoffs(rt().stats()), Handoffs(before));
}

TEST_P(Blocking, InsideFTheCallerIsNoFiber) {
  struct Seen {
    int core_inside = 99;
    bool in_fiber_inside = true;
    std::uint64_t id_inside = 0;
    std::string name_inside;
    int core_after = -1;
    bool in_fiber_after = false;
    std::uint64_t id = 0;
  };
  auto h = rt().spawn(
      [] {
        Seen s;
        s.id = this_task::id();
        blocking([&] {
          s.core_inside = this_task::core();
          s.in_fiber_inside = this_task::in_fiber();
          s.id_inside = this_task::id();
          s.name_inside = std::string(this_task::name());
        });
        s.core_after = this_task::core();
        s.in_fiber_after = this_task::in_fiber();
        return s;
      },
      SpawnOptions{"blocker", 0});
  const Seen s = h.join();
  EXPECT_EQ(s.core_inside, -1);
  EXPECT_FALSE(s.in_fiber_inside);
  EXPECT_EQ(s.id_inside, s.id) << "this_task::id() names the fiber inside blocking()";
  EXPECT_EQ(s.name_inside, "blocker");
  EXPECT_GE(s.core_after, 0);
  EXPECT_LT(s.core_after, GetParam());
  EXPECT_TRUE(s.in_fiber_after);
}

TEST_P(Blocking, UpcallCallsInsideFActOnTheThread) {
  auto h = rt().spawn([&] {
    return blocking([&] {
      // Nested blocking: already off the core, runs in place.
      const int nested = blocking([] { return 3; });
      this_task::yield();  // sched_yield()
      const auto t0 = Clock::now();
      this_task::sleep_for(5ms);  // a thread sleep
      const bool slept = Clock::now() - t0 >= 5ms;
      // Joining a fiber from inside: the thread waits for it.
      auto child = rt().spawn([] { return 11; });
      return nested + child.join() + (slept ? 100 : 0);
    });
  });
  EXPECT_EQ(h.join(), 114);
}

TEST_P(Blocking, FiberCarriesOnNormallyAfterwards) {
  const int total = rt().block_on([] {
    int sum = 0;
    for (int round = 0; round < 20; ++round) {
      sum += blocking([round] { return round; });
      auto child = spawn([round] {
        this_task::yield();
        return round;
      });
      this_task::sleep_for(100us);
      sum += child.join();
    }
    return sum;
  });
  EXPECT_EQ(total, 2 * 190);
}

// The core's timers go with the core to the spare: a fiber sleeping on the core wakes on time
// while another fiber of that core is inside a long blocking call.
TEST_P(Blocking, SleepersWakeWhileAnotherFiberBlocks) {
  std::atomic<bool> in_block{false}, block_over{false};
  std::atomic<int> woke_during_block{0};
  auto blocker = rt().spawn([&] {
    blocking([&] {
      in_block = true;
      std::this_thread::sleep_for(300ms);
      block_over = true;
    });
  });
  std::vector<JoinHandle<void>> sleepers;
  for (int i = 0; i < 4; ++i)
    sleepers.push_back(rt().spawn([&] {
      while (!in_block.load()) this_task::yield();
      this_task::sleep_for(20ms);
      if (!block_over.load()) woke_during_block.fetch_add(1);
    }));
  for (auto& h : sleepers) h.join();
  blocker.join();
  EXPECT_EQ(woke_during_block.load(), 4) << "sleepers waited for the blocking call to end";
}

UPCALL_INSTANTIATE_CORES(Blocking);

// Past the cap of kernel threads (64 per core) a blocking call runs in place: it still
// completes, and it is counted as such rather than as a handoff.
TEST(BlockingOneCore, CallsPastTheThreadCapRunInPlace) {
  Options o;
  o.cores = 1;
  Runtime rt(std::move(o));
  constexpr int kFibers = 80;
  std::atomic<int> done{0}, started{0};
  std::vector<JoinHandle<int>> hs;
  // Each call stays inside until every fiber has started its call (or 2 s passed: a call run
  // in place holds the only core, so later fibers may not start until it gives up), so the
  // calls overlap however slowly the fibers are spawned (TSAN).
  for (int i = 0; i < kFibers; ++i)
    hs.push_back(rt.spawn([&, i] {
      const int v = blocking([i, &started] {
        started.fetch_add(1);
        const auto until = std::chrono::steady_clock::now() + 2s;
        while (started.load() < kFibers && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(1ms);
        return i;
      });
      done.fetch_add(1);
      return v;
    }));
  for (int i = 0; i < kFibers; ++i) EXPECT_EQ(hs[i].join(), i);
  EXPECT_EQ(done.load(), kFibers);
  const auto s = rt.stats();
  EXPECT_EQ(Handoffs(s) + s.blocking_inline, static_cast<std::uint64_t>(kFibers));
  EXPECT_GT(s.blocking_inline, 0u) << "80 concurrent calls on one core must hit the cap of 64";
  EXPECT_LE(s.threads, 64u);
  EXPECT_TRUE(NoLeaks(rt));
}

// The destructor waits for a fiber that is inside a blocking call (and for what it does after).
TEST(BlockingOneCore, ShutdownWaitsForCallsInFlight) {
  std::atomic<bool> finished{false};
  std::atomic<bool> entered{false};
  {
    Options o;
    o.cores = 1;
    Runtime rt(std::move(o));
    rt.spawn([&] {
        blocking([&] {
          entered = true;
          std::this_thread::sleep_for(100ms);
        });
        this_task::yield();
        finished = true;
      }).detach();
    const auto deadline = Clock::now() + 5s;
    while (!entered.load() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
    ASSERT_TRUE(entered.load());
  }  // ~Runtime
  EXPECT_TRUE(finished.load()) << "the runtime shut down under a fiber inside blocking()";
}

}  // namespace
}  // namespace upcall::test
