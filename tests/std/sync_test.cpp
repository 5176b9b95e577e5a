// tests/std/sync_test.cpp: condition variables, semaphores, latch, barrier, call_once and stop
// tokens beyond what the ported scenarios show: timeouts, plain threads and fibers mixed,
// destruction right after the last wake-up, and the fiber-specific stop_callback cases.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "upcall/std.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;

class StdSync : public RuntimeTest {};

TEST_P(StdSync, CvWaitForTimesOut) {
  upcall::mutex mu;
  upcall::condition_variable cv;
  rt().block_on([&] {
    upcall::unique_lock<upcall::mutex> lk(mu);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(cv.wait_for(lk, 20ms), upcall::cv_status::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
    EXPECT_TRUE(lk.owns_lock());
    EXPECT_FALSE(cv.wait_for(lk, 5ms, [] { return false; }));
    EXPECT_TRUE(cv.wait_for(lk, 5ms, [] { return true; }));
  });
}

TEST_P(StdSync, CvWaitForIsWokenBeforeItsDeadline) {
  upcall::mutex mu;
  upcall::condition_variable cv;
  bool ready = false;
  auto waiter = rt().spawn([&] {
    upcall::unique_lock<upcall::mutex> lk(mu);
    return cv.wait_for(lk, 30s, [&] { return ready; });
  });
  std::this_thread::sleep_for(5ms);
  {
    upcall::lock_guard<upcall::mutex> g(mu);
    ready = true;
  }
  cv.notify_one();
  EXPECT_TRUE(waiter.join());  // a generous bound: 30 s would fail the ctest timeout instead
}

TEST_P(StdSync, PlainThreadWaitsFiberNotifiesAndBack) {
  upcall::mutex mu;
  upcall::condition_variable cv;
  int turn = 0;
  constexpr int kRounds = 500;
  // Turn-taking between a plain thread (even turns) and a fiber (odd turns).
  std::thread plain([&] {
    for (int i = 0; i < kRounds; ++i) {
      upcall::unique_lock<upcall::mutex> lk(mu);
      cv.wait(lk, [&] { return turn % 2 == 0; });
      ++turn;
      cv.notify_all();
    }
  });
  auto fiber = rt().spawn([&] {
    for (int i = 0; i < kRounds; ++i) {
      upcall::unique_lock<upcall::mutex> lk(mu);
      cv.wait(lk, [&] { return turn % 2 == 1; });
      ++turn;
      cv.notify_all();
    }
  });
  plain.join();
  fiber.join();
  EXPECT_EQ(turn, 2 * kRounds);
}

TEST_P(StdSync, CvAnyWorksWithStdMutexAndTimedWaitRacesNotify) {
  std::mutex mu;  // condition_variable_any takes any BasicLockable
  upcall::condition_variable_any cv;
  std::atomic<int> woken{0}, timed_out{0};
  rt().block_on([&] {
    std::vector<upcall::thread> threads;
    for (int i = 0; i < 6; ++i)
      threads.emplace_back([&, i] {
        for (int k = 0; k < 100; ++k) {
          std::unique_lock<std::mutex> lk(mu);
          if (cv.wait_for(lk, std::chrono::microseconds(20 + 30 * i)) == upcall::cv_status::timeout)
            ++timed_out;
          else
            ++woken;
        }
      });
    threads.emplace_back([&] {
      for (int k = 0; k < 300; ++k) {
        cv.notify_one();
        if (k % 10 == 0) upcall::this_thread::yield();
      }
    });
    for (auto& t : threads) t.join();
  });
  EXPECT_EQ(woken.load() + timed_out.load(), 600);
}

TEST_P(StdSync, CvDestroyedRightAfterNotifyAll) {
  // std allows destroying a condition variable once every waiter was notified, even before
  // they returned from wait (ASAN catches a waiter touching it afterwards).
  for (int round = 0; round < 100; ++round) {
    auto mu = std::make_shared<upcall::mutex>();
    auto* cv = new upcall::condition_variable;
    bool go = false;
    std::atomic<int> waiting{0};
    std::vector<JoinHandle<void>> waiters;
    for (int i = 0; i < 3; ++i)
      waiters.push_back(rt().spawn([&, mu, i] {
        upcall::unique_lock<upcall::mutex> lk(*mu);
        ++waiting;
        if (i == 0)
          cv->wait(lk, [&] { return go; });
        else
          cv->wait_for(lk, std::chrono::microseconds(100 * i), [&] { return go; });
      }));
    while (waiting.load() < 3) upcall::this_thread::yield();
    {
      upcall::lock_guard<upcall::mutex> g(*mu);
      go = true;
      cv->notify_all();
    }
    delete cv;
    for (auto& w : waiters) w.join();
  }
}

TEST_P(StdSync, SemaphoreHandsPermitsFifoAndTimesOut) {
  upcall::counting_semaphore<10> sem(0);
  std::vector<int> order;
  upcall::mutex order_mu;
  std::vector<JoinHandle<void>> waiters;
  for (int i = 0; i < 4; ++i) {
    std::atomic<bool> started{false};
    waiters.push_back(rt().spawn([&, i] {
      started = true;
      sem.acquire();
      upcall::lock_guard<upcall::mutex> g(order_mu);
      order.push_back(i);
    }));
    while (!started) std::this_thread::yield();
    std::this_thread::sleep_for(20ms);  // margin for fiber i to queue (not a pass/fail timing)
  }
  EXPECT_FALSE(rt().block_on([&] { return sem.try_acquire_for(10ms); }));
  for (int i = 0; i < 4; ++i) {
    sem.release();
    std::this_thread::sleep_for(2ms);
  }
  for (auto& w : waiters) w.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_FALSE(sem.try_acquire());
}

TEST_P(StdSync, BinarySemaphoreAsDoneSignalThenDestroyed) {
  for (int round = 0; round < 200; ++round) {
    auto* done = new upcall::binary_semaphore(0);
    auto signaller = rt().spawn([done] { done->release(); });
    done->acquire();
    delete done;  // the releaser must be done with it
    signaller.join();
  }
}

TEST_P(StdSync, LatchOnTheWaitersStackDestroyedAfterWait) {
  for (int round = 0; round < 100; ++round) {
    rt().block_on([&] {
      upcall::latch done(3);
      std::vector<upcall::thread> workers;
      for (int i = 0; i < 3; ++i) workers.emplace_back([&] { done.count_down(); });
      done.wait();
      for (auto& w : workers) w.join();
    });
  }
}

TEST_P(StdSync, BarrierCompletionRunsOncePerPhaseOnOneCoreOrTwo) {
  std::atomic<int> completions{0};
  std::atomic<int> arrivals{0};
  bool counts_ok = true;
  auto complete = [&]() noexcept {
    if (arrivals.exchange(0) != 5) counts_ok = false;
    ++completions;
  };
  upcall::barrier sync(5, complete);
  rt().block_on([&] {
    std::vector<upcall::thread> threads;
    for (int i = 0; i < 5; ++i)
      threads.emplace_back([&] {
        for (int p = 0; p < 50; ++p) {
          ++arrivals;
          sync.arrive_and_wait();
        }
      });
    for (auto& t : threads) t.join();
  });
  EXPECT_EQ(completions.load(), 50);
  EXPECT_TRUE(counts_ok);
}

TEST_P(StdSync, CallOnceManyFibersOneRunner) {
  upcall::once_flag flag;
  std::atomic<int> runs{0};
  rt().block_on([&] {
    std::vector<upcall::thread> threads;
    for (int i = 0; i < 16; ++i)
      threads.emplace_back([&] {
        upcall::call_once(flag, [&] {
          upcall::this_thread::sleep_for(5ms);  // the others must wait, suspended
          ++runs;
        });
        EXPECT_EQ(runs.load(), 1);
      });
    for (auto& t : threads) t.join();
  });
  EXPECT_EQ(runs.load(), 1);
}

TEST_P(StdSync, StopCallbackDestructorWaitsForCallbackRunningInAnotherFiber) {
  // The callback runs (and suspends) on the requesting fiber; the callback's owner destroys it
  // meanwhile on another fiber. On one core, blocking the kernel thread there would deadlock.
  upcall::stop_source src;
  std::atomic<bool> in_callback{false}, callback_done{false};
  std::atomic<bool> destroyed_early{false};
  auto owner = rt().spawn([&] {
    auto cb = std::make_unique<upcall::stop_callback<std::function<void()>>>(
        src.get_token(), std::function<void()>([&] {
          in_callback = true;
          upcall::this_thread::sleep_for(20ms);
          callback_done = true;
        }));
    while (!in_callback) upcall::this_thread::yield();
    cb.reset();  // must wait (suspended) until the callback returned
    if (!callback_done) destroyed_early = true;
  });
  auto requester = rt().spawn([&] { src.request_stop(); });
  requester.join();
  owner.join();
  EXPECT_FALSE(destroyed_early.load());
}

TEST_P(StdSync, StopCallbackMayDestroyItselfFromInside) {
  upcall::stop_source src;
  std::unique_ptr<upcall::stop_callback<std::function<void()>>> cb;
  bool ran = false;
  cb = std::make_unique<upcall::stop_callback<std::function<void()>>>(
      src.get_token(), std::function<void()>([&] {
        ran = true;
        cb.reset();  // the requester is this context: no wait
      }));
  rt().block_on([&] { src.request_stop(); });
  EXPECT_TRUE(ran);
  EXPECT_EQ(cb, nullptr);
}

TEST_P(StdSync, InterruptibleCvWaitWakesOnStopFromAPlainThread) {
  upcall::mutex mu;
  upcall::condition_variable_any cv;
  upcall::stop_source src;
  auto waiter = rt().spawn([&] {
    upcall::unique_lock<upcall::mutex> lk(mu);
    return cv.wait(lk, src.get_token(), [] { return false; });
  });
  std::this_thread::sleep_for(5ms);
  src.request_stop();
  EXPECT_FALSE(waiter.join());
}

UPCALL_INSTANTIATE_CORES(StdSync);

}  // namespace
}  // namespace upcall::test
