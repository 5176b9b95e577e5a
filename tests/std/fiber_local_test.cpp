// tests/std/fiber_local_test.cpp: upcall::fiber_local: one value per fiber and per plain
// thread, surviving migration, destroyed when an upcall::thread ends, at plain-thread exit,
// by release_fiber_locals(), and with the fiber_local itself.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "upcall/std.hpp"

namespace upcall::test {
namespace {

struct Counted {
  static inline std::atomic<int> alive{0};
  Counted() { ++alive; }
  Counted(const Counted&) { ++alive; }
  ~Counted() { --alive; }
  int value = 0;
};

class FiberLocal : public RuntimeTest {};

TEST_P(FiberLocal, EachFiberHasItsOwnValueAcrossMigrations) {
  upcall::fiber_local<int> slot(100);
  std::atomic<int> mismatches{0};
  rt().block_on([&] {
    std::vector<upcall::thread> threads;
    for (int i = 0; i < 8; ++i)
      threads.emplace_back([&, i] {
        if (*slot != 100) ++mismatches;  // starts as a copy of the initial value
        *slot = i;
        for (int k = 0; k < 100; ++k) {
          upcall::this_thread::yield();  // may resume on another kernel thread
          if (*slot != i) ++mismatches;
        }
      });
    for (auto& t : threads) t.join();
    EXPECT_EQ(*slot, 100);  // the block_on fiber's own value, untouched
  });
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_P(FiberLocal, ValuesDieWithTheirThread) {
  upcall::fiber_local<Counted> slot;
  const int base = Counted::alive.load();
  rt().block_on([&] {
    std::vector<upcall::thread> threads;
    for (int i = 0; i < 5; ++i) threads.emplace_back([&] { slot->value = 1; });
    for (auto& t : threads) t.join();
  });
  EXPECT_EQ(Counted::alive.load(), base);  // destroyed as each thread function returned
  auto f = upcall::async(upcall::launch::async, [&] { return slot->value + 1; });
  EXPECT_EQ(f.get(), 1);
  EXPECT_EQ(Counted::alive.load(), base);
}

TEST_P(FiberLocal, PlainThreadsAndExplicitRelease) {
  upcall::fiber_local<Counted> slot;
  const int base = Counted::alive.load();
  std::thread t([&] { slot->value = 3; });
  t.join();
  EXPECT_EQ(Counted::alive.load(), base);  // thread exit
  rt().spawn([&] {
    slot->value = 4;
    upcall::release_fiber_locals();  // a raw upcall::spawn fiber releases them itself
  }).join();
  EXPECT_EQ(Counted::alive.load(), base);
  slot->value = 5;  // the test's own thread
  EXPECT_EQ(Counted::alive.load(), base + 1);
  upcall::release_fiber_locals();
  EXPECT_EQ(Counted::alive.load(), base);
}

TEST_P(FiberLocal, DestroyingTheFiberLocalDestroysEveryValue) {
  const int base = Counted::alive.load();
  auto slot = std::make_unique<upcall::fiber_local<Counted>>();
  upcall::latch filled(4), release(1);
  std::vector<JoinHandle<void>> fibers;
  for (int i = 0; i < 4; ++i)
    fibers.push_back(rt().spawn([&] {
      (*slot)->value = 1;
      filled.count_down();
      release.wait();
    }));
  filled.wait();
  EXPECT_EQ(Counted::alive.load(), base + 4);
  slot.reset();
  EXPECT_EQ(Counted::alive.load(), base);
  release.count_down();
  for (auto& f : fibers) f.join();
}

TEST_P(FiberLocal, MoveOnlyValues) {
  upcall::fiber_local<std::unique_ptr<int>> slot;
  rt().block_on([&] {
    EXPECT_EQ(slot->get(), nullptr);
    *slot = std::make_unique<int>(1);
    upcall::thread t([&] { EXPECT_EQ(slot->get(), nullptr); });
    t.join();
    EXPECT_EQ(**slot, 1);
    upcall::release_fiber_locals();
  });
}

UPCALL_INSTANTIATE_CORES(FiberLocal);

}  // namespace
}  // namespace upcall::test
