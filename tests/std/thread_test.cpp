// tests/std/thread_test.cpp: upcall::thread / jthread / this_thread and the default runtime:
// std's rules (terminate on a joinable destruction or an escaping exception, join/detach
// errors), ids, where threads run, sleeping without stalling a core, and the default runtime's
// life cycle including its use after shutdown at exit.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_set>
#include <vector>

#include "fixture.hpp"
#include "upcall/std.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;

class StdThread : public RuntimeTest {};

TEST_P(StdThread, RunsOnTheCallersRuntimeFromAFiber) {
  rt().block_on([&] {
    std::atomic<int> cores_seen{-2};
    upcall::thread t([&] { cores_seen = this_task::core(); });
    t.join();
    EXPECT_GE(cores_seen.load(), 0);
    EXPECT_LT(cores_seen.load(), GetParam());
  });
}

TEST_P(StdThread, IdsAreDistinctStableAndPrintable) {
  rt().block_on([&] {
    std::vector<upcall::thread> threads;
    std::vector<upcall::thread::id> seen(8);
    for (int i = 0; i < 8; ++i)
      threads.emplace_back([&seen, i] {
        const auto before = upcall::this_thread::get_id();
        upcall::this_thread::yield();
        upcall::this_thread::sleep_for(1ms);  // may come back on another kernel thread
        EXPECT_EQ(upcall::this_thread::get_id(), before);
        seen[i] = before;
      });
    std::set<upcall::thread::id> distinct;
    for (int i = 0; i < 8; ++i) {
      const auto id = threads[i].get_id();
      threads[i].join();
      EXPECT_EQ(seen[i], id);
      EXPECT_EQ(threads[i].get_id(), upcall::thread::id());
      distinct.insert(id);
    }
    EXPECT_EQ(distinct.size(), 8u);
    EXPECT_EQ(distinct.count(upcall::this_thread::get_id()), 0u);
    std::unordered_set<upcall::thread::id> hashed(distinct.begin(), distinct.end());
    EXPECT_EQ(hashed.size(), 8u);
  });
  std::ostringstream none, some;
  none << upcall::thread::id();
  some << upcall::this_thread::get_id();  // a plain thread has an id too
  EXPECT_EQ(none.str(), "thread::id of a non-executing thread");
  EXPECT_FALSE(some.str().empty());
  EXPECT_NE(upcall::this_thread::get_id(), upcall::thread::id());
}

TEST_P(StdThread, JoinAndDetachErrorsAreStds) {
  upcall::thread empty;
  try {
    empty.join();
    ADD_FAILURE() << "join of an empty thread did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
  }
  EXPECT_THROW(empty.detach(), std::system_error);
  rt().block_on([&] {
    upcall::thread* self_ptr = nullptr;
    std::atomic<bool> go{false};
    std::error_code got;
    upcall::thread t([&] {
      while (!go) upcall::this_thread::yield();
      try {
        self_ptr->join();
      } catch (const std::system_error& e) {
        got = e.code();
      }
    });
    self_ptr = &t;
    go = true;
    t.join();
    EXPECT_EQ(got, std::errc::resource_deadlock_would_occur);
  });
}

TEST_P(StdThread, DetachedThreadsFinish) {
  std::atomic<int> done{0};
  rt().block_on([&] {
    for (int i = 0; i < 10; ++i) upcall::thread([&] { ++done; }).detach();
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (done.load() < 10 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(done.load(), 10);
}

TEST_P(StdThread, SleepSuspendsTheFiberNotTheCore) {
  // On one core: a fiber sleeping 50 ms must not stop another from making progress.
  std::atomic<long> progress{0};
  std::atomic<bool> stop{false};
  long progress_during_sleep = 0;
  rt().block_on([&] {
    upcall::thread worker([&] {
      while (!stop) {
        ++progress;
        upcall::this_thread::yield();
      }
    });
    const long before = progress.load();
    upcall::this_thread::sleep_for(50ms);
    progress_during_sleep = progress.load() - before;
    stop = true;
    worker.join();
  });
  EXPECT_GT(progress_during_sleep, 0);
}

TEST_P(StdThread, SleepUntilOtherClocks) {
  rt().block_on([] {
    const auto t0 = std::chrono::steady_clock::now();
    upcall::this_thread::sleep_until(std::chrono::system_clock::now() + 10ms);
    upcall::this_thread::sleep_for(std::chrono::hours::min());  // negative: returns at once
    upcall::this_thread::sleep_until(std::chrono::steady_clock::time_point::min());
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 10ms);
  });
}

TEST_P(StdThread, JthreadRequestsStopAndJoinsOnDestructionAndMove) {
  std::atomic<int> stopped{0};
  rt().block_on([&] {
    auto body = [&](upcall::stop_token st) {
      while (!st.stop_requested()) upcall::this_thread::sleep_for(1ms);
      ++stopped;
    };
    upcall::jthread a(body);
    upcall::jthread b(body);
    a = std::move(b);  // the old `a` is stopped and joined here
    EXPECT_EQ(stopped.load(), 1);
    EXPECT_FALSE(b.joinable());
    upcall::jthread plain([](int x) { EXPECT_EQ(x, 7); }, 7);  // no stop_token parameter
  });
  EXPECT_EQ(stopped.load(), 2);
}

TEST_P(StdThread, HardwareConcurrencyIsTheRuntimesCores) {
  EXPECT_EQ(rt().block_on([] { return upcall::thread::hardware_concurrency(); }),
            static_cast<unsigned>(GetParam()));
  EXPECT_GE(upcall::thread::hardware_concurrency(), 1u);  // from a plain thread
  EXPECT_EQ(upcall::jthread::hardware_concurrency(), upcall::thread::hardware_concurrency());
}

TEST_P(StdThread, LargeCallablesGoToTheHeap) {
  std::array<char, 4096> big{};  // > kInlineCallableMax, small enough for a fiber stack
  big[100] = 9;
  int got = 0;
  rt().block_on([&] {
    upcall::thread t([big, &got] { got = big[100]; });
    t.join();
  });
  EXPECT_EQ(got, 9);
}

// Fiber ids are process-wide: thread ids, recursive_mutex ownership, stop_token's requester
// check and fiber_local all key on them, so two runtimes must never hand out the same one.
TEST(StdThreadIds, UniqueAcrossRuntimes) {
  Options o;
  o.cores = 1;
  Runtime a(o), b(o);
  const auto ia = a.block_on([] { return upcall::this_thread::get_id(); });
  const auto ib = b.block_on([] { return upcall::this_thread::get_id(); });
  EXPECT_NE(ia, ib);
}

UPCALL_INSTANTIATE_CORES(StdThread);

// ------------------------------------------------------------------ std's terminate rules

class StdThreadDeath : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(StdThreadDeath, DestroyingAJoinableThreadTerminates) {
  EXPECT_DEATH(
      {
        upcall::thread t([] { upcall::this_thread::sleep_for(1s); });
      },
      "");
}

TEST_F(StdThreadDeath, AnExceptionEscapingTheThreadFunctionTerminates) {
  EXPECT_DEATH(
      {
        upcall::thread t([] { throw std::runtime_error("escaped"); });
        t.join();
      },
      "");
}

// ------------------------------------------------------------------ the default runtime

TEST(DefaultRuntime, IsOneRuntimeCreatedOnFirstUse) {
  Runtime& a = upcall::default_runtime();
  Runtime& b = upcall::default_runtime();
  EXPECT_EQ(&a, &b);
  EXPECT_GE(a.config().cores, 1);
  // Plain-thread spawns land there.
  upcall::thread t([] { EXPECT_TRUE(this_task::in_fiber()); });
  t.join();
  EXPECT_EQ(upcall::thread::hardware_concurrency(), static_cast<unsigned>(a.config().cores));
}

TEST(DefaultRuntime, ConcurrentFirstUseFromManyThreads) {
  std::vector<std::thread> threads;
  std::vector<Runtime*> got(8);
  for (int i = 0; i < 8; ++i) threads.emplace_back([&got, i] { got[i] = &upcall::default_runtime(); });
  for (auto& t : threads) t.join();
  for (Runtime* r : got) EXPECT_EQ(r, got[0]);
}

// An atexit handler registered before the default runtime exists runs after its shutdown:
// the std layer must then fail with a clear std::system_error instead of crashing.
void use_after_shutdown() {
  try {
    upcall::thread t([] {});
    t.join();
    std::fprintf(stderr, "no-exception\n");
    std::_Exit(1);
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "threw: %s\n", e.what());
    std::_Exit(3);
  }
}

TEST_F(StdThreadDeath, UseAfterShutdownAtExitThrowsSystemError) {
  EXPECT_EXIT(
      {
        std::atexit(&use_after_shutdown);
        upcall::thread t([] {});  // creates the default runtime (and its atexit handler)
        t.join();
        std::exit(0);
      },
      ::testing::ExitedWithCode(3), "threw: .*shut down at process exit");
}

// Detached threads are not awaited at exit (as in std): a detached background loop that never
// ends must not hang exit(), and the process exits with its own status.
TEST_F(StdThreadDeath, ExitDoesNotAwaitDetachedThreads) {
  EXPECT_EXIT(
      {
        upcall::thread forever([] {
          for (;;) upcall::this_thread::sleep_for(1ms);
        });
        forever.detach();
        upcall::thread spinner([] {
          for (;;) upcall::this_thread::yield();
        });
        spinner.detach();
        upcall::this_thread::sleep_for(20ms);
        std::exit(7);
      },
      ::testing::ExitedWithCode(7), "");
}

}  // namespace
}  // namespace upcall::test
