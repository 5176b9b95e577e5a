// tests/std/future_test.cpp: upcall futures beyond the ported scenario: where async runs, the
// blocking destructor of an async future, deferred functions running on the waiting fiber,
// fibers and plain threads on both sides of a promise, and the future_error codes compared
// with std's.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "upcall/std.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;

class StdFuture : public RuntimeTest {};

TEST_P(StdFuture, AsyncFromAFiberRunsOnAFiberOfTheSameRuntime) {
  rt().block_on([&] {
    const std::uint64_t me = this_task::id();
    auto f = upcall::async(upcall::launch::async, [] {
      return std::make_pair(this_task::in_fiber(), this_task::id());
    });
    const auto [in_fiber, id] = f.get();
    EXPECT_TRUE(in_fiber);
    EXPECT_NE(id, me);
  });
}

TEST_P(StdFuture, AsyncFromAPlainThreadRunsOnTheDefaultRuntime) {
  auto f = upcall::async(upcall::launch::async, [] { return this_task::in_fiber(); });
  EXPECT_TRUE(f.get());
  EXPECT_FALSE(this_task::in_fiber());
}

TEST_P(StdFuture, DiscardedAsyncFutureWaitsForTheTask) {
  std::atomic<bool> finished{false};
  rt().block_on([&] {
    {
      auto f = upcall::async(upcall::launch::async, [&] {
        upcall::this_thread::sleep_for(20ms);
        finished = true;
      });
    }  // ~future of an async state waits, as std's does
    EXPECT_TRUE(finished.load());
  });
}

TEST_P(StdFuture, DeferredRunsOnTheFirstWaiterOnly) {
  std::atomic<int> runs{0};
  rt().block_on([&] {
    const std::uint64_t me = this_task::id();
    std::uint64_t ran_on = 0;
    auto f = upcall::async(upcall::launch::deferred, [&] {
      ++runs;
      ran_on = this_task::id();
      return 3;
    }).share();
    EXPECT_EQ(f.wait_for(0s), upcall::future_status::deferred);
    std::vector<upcall::thread> readers;
    for (int i = 0; i < 4; ++i) readers.emplace_back([f] { EXPECT_EQ(f.get(), 3); });
    for (auto& t : readers) t.join();
    EXPECT_EQ(f.get(), 3);
    EXPECT_NE(ran_on, 0u);
    (void)me;
  });
  EXPECT_EQ(runs.load(), 1);
}

TEST_P(StdFuture, PromiseFromPlainThreadToWaitingFibersAndBack) {
  upcall::promise<int> to_fibers;
  upcall::shared_future<int> sf = to_fibers.get_future().share();
  upcall::promise<int> to_thread;
  upcall::future<int> back = to_thread.get_future();
  std::atomic<int> sum{0};
  std::vector<JoinHandle<void>> fibers;
  for (int i = 0; i < 5; ++i) fibers.push_back(rt().spawn([&, sf] { sum += sf.get(); }));
  auto replier = rt().spawn([&, sf] { to_thread.set_value(sf.get() * 2); });
  std::this_thread::sleep_for(2ms);
  to_fibers.set_value(21);
  EXPECT_EQ(back.get(), 42);
  for (auto& f : fibers) f.join();
  replier.join();
  EXPECT_EQ(sum.load(), 105);
}

TEST_P(StdFuture, WaitForAndWaitUntilTimeOut) {
  upcall::promise<void> p;
  auto f = p.get_future();
  rt().block_on([&] {
    EXPECT_EQ(f.wait_for(10ms), upcall::future_status::timeout);
    EXPECT_EQ(f.wait_until(std::chrono::system_clock::now() + 5ms),
              upcall::future_status::timeout);
    EXPECT_EQ(f.wait_until(std::chrono::steady_clock::now() - 1s),
              upcall::future_status::timeout);
  });
  p.set_value();
  EXPECT_EQ(f.wait_for(0s), upcall::future_status::ready);
  EXPECT_NO_THROW(f.get());
}

TEST_P(StdFuture, ErrorCodesMatchStd) {
  // Same misuse, same std::future_errc, with std and upcall.
  auto code_of = [](auto&& f) {
    try {
      f();
    } catch (const std::future_error& e) {
      return e.code();
    }
    return std::error_code();
  };
  EXPECT_EQ(code_of([] { upcall::future<int>().wait(); }),
            code_of([] { std::future<int>().wait(); }));
  EXPECT_EQ(code_of([] { upcall::shared_future<int>().get(); }),
            code_of([] { std::shared_future<int>().get(); }));
  EXPECT_EQ(code_of([] {
              upcall::promise<int> p;
              auto a = p.get_future();
              auto b = p.get_future();
            }),
            std::make_error_code(std::future_errc::future_already_retrieved));
  EXPECT_EQ(code_of([] {
              upcall::promise<void> p;
              p.set_value();
              p.set_exception(std::make_exception_ptr(1));
            }),
            std::make_error_code(std::future_errc::promise_already_satisfied));
  EXPECT_EQ(code_of([] {
              upcall::promise<int> moved_from;
              upcall::promise<int> p(std::move(moved_from));
              moved_from.set_value(1);
            }),
            std::make_error_code(std::future_errc::no_state));
  EXPECT_EQ(code_of([] {
              auto f = upcall::packaged_task<void()>([] {}).get_future();
              f.get();
            }),
            std::make_error_code(std::future_errc::broken_promise));
}

TEST_P(StdFuture, PackagedTaskStoresExceptionsAndResets) {
  upcall::packaged_task<int(int)> task([](int x) {
    if (x < 0) throw std::invalid_argument("negative");
    return x * 10;
  });
  auto f1 = task.get_future();
  rt().block_on([&] { task(-1); });
  EXPECT_THROW(f1.get(), std::invalid_argument);
  task.reset();
  auto f2 = task.get_future();
  upcall::thread t(std::move(task), 4);
  EXPECT_EQ(f2.get(), 40);
  t.join();
}

TEST_P(StdFuture, MoveOnlyResultsAndArguments) {
  auto f = upcall::async(
      upcall::launch::async, [](std::unique_ptr<int> p) { return std::make_unique<int>(*p + 1); },
      std::make_unique<int>(41));
  EXPECT_EQ(*f.get(), 42);
}

TEST_P(StdFuture, SetValueTakesStdsOverloads) {
  upcall::promise<std::vector<int>> p;  // braced initialisation needs set_value(T&&)
  auto f = p.get_future();
  p.set_value({1, 2, 3});
  EXPECT_EQ(f.get(), (std::vector<int>{1, 2, 3}));
  upcall::promise<std::unique_ptr<int>> q;
  auto g = q.get_future();
  q.set_value(std::make_unique<int>(4));
  EXPECT_EQ(*rt().block_on([&] { return g.get(); }), 4);
}

UPCALL_INSTANTIATE_CORES(StdFuture);

}  // namespace
}  // namespace upcall::test
