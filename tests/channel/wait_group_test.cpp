// upcall::WaitGroup behaviour: 1000 fibers, waiters that are fibers and plain threads, a
// counter that would go negative throws and stays unchanged, timed waits, reuse. At 1 and 2
// cores.
#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "upcall/wait_group.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using WaitGroupTest = RuntimeTest;

TEST_P(WaitGroupTest, ThousandFibers) {
  WaitGroup wg;
  std::atomic<int> ran{0};
  wg.add(1000);
  for (int i = 0; i < 1000; ++i)
    rt().spawn([&, i] {
          if (i % 3 == 0) this_task::yield();
          ran.fetch_add(1, std::memory_order_relaxed);
          wg.done();
        })
        .detach();
  wg.wait();
  // Every done() happened before wait returned, and each came after its increment.
  EXPECT_EQ(ran.load(std::memory_order_relaxed), 1000);
  EXPECT_EQ(wg.count(), 0);
}

TEST_P(WaitGroupTest, FiberWaitsForFibers) {
  const int n = rt().block_on([] {
    WaitGroup wg;
    std::atomic<int> ran{0};
    for (int i = 0; i < 1000; ++i) {
      wg.add(1);
      spawn([&] {
        ran.fetch_add(1, std::memory_order_relaxed);
        wg.done();
      }).detach();
    }
    wg.wait();
    return ran.load(std::memory_order_relaxed);
  });
  EXPECT_EQ(n, 1000);
}

TEST_P(WaitGroupTest, ManyWaitersAllReleased) {
  WaitGroup wg, started;
  wg.add(1);
  std::atomic<int> released{0};
  started.add(32);
  std::vector<JoinHandle<void>> fibers;
  for (int i = 0; i < 30; ++i)
    fibers.push_back(rt().spawn([&] {
      started.done();
      wg.wait();
      released.fetch_add(1);
    }));
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&] {
      started.done();
      EXPECT_TRUE(wg.wait_for(1h));
      released.fetch_add(1);
    });
  started.wait();
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(released.load(), 0);
  wg.done();
  for (auto& f : fibers) f.join();
  for (auto& t : threads) t.join();
  EXPECT_EQ(released.load(), 32);
}

TEST_P(WaitGroupTest, NegativeCounterThrowsAndIsUnchanged) {
  WaitGroup wg;
  EXPECT_THROW(wg.done(), std::logic_error);
  EXPECT_EQ(wg.count(), 0);
  wg.add(2);
  EXPECT_THROW(wg.add(-3), std::logic_error);
  EXPECT_EQ(wg.count(), 2);
  rt().block_on([&] {
    wg.done();
    wg.done();
    EXPECT_THROW(wg.done(), std::logic_error);
  });
  EXPECT_EQ(wg.count(), 0);
  wg.wait();
}

TEST_P(WaitGroupTest, WaitOnZeroReturnsAtOnce) {
  WaitGroup wg;
  wg.wait();
  EXPECT_TRUE(wg.wait_for(0ms));
  rt().block_on([&] { wg.wait(); });
}

TEST_P(WaitGroupTest, TimedWaitTimesOutThenSucceeds) {
  WaitGroup wg;
  wg.add(1);
  EXPECT_FALSE(wg.wait_for(10ms));
  rt().block_on([&] { EXPECT_FALSE(wg.wait_for(5ms)); });
  auto f = rt().spawn([&] { return wg.wait_for(1h); });
  std::this_thread::sleep_for(2ms);
  wg.done();
  EXPECT_TRUE(f.join());
  EXPECT_TRUE(wg.wait_for(0ms));
}

TEST_P(WaitGroupTest, ReusableAcrossRounds) {
  WaitGroup wg;
  std::atomic<int> total{0};
  for (int round = 0; round < 50; ++round) {
    wg.add(20);
    for (int i = 0; i < 20; ++i)
      rt().spawn([&] {
            total.fetch_add(1);
            wg.done();
          })
          .detach();
    wg.wait();
    EXPECT_EQ(total.load(), 20 * (round + 1));
  }
}

UPCALL_INSTANTIATE_CORES(WaitGroupTest);

}  // namespace
}  // namespace upcall::test
