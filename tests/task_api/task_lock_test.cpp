// The task scheduler lock (los::task_lock / task_unlock): inside it the caller does not yield,
// migrate or get taken over, its blocking task-API calls return EDEADLK, and a kernel block
// inside is not taken over by a standby. Plus nesting and misuse errors.
#include <pthread.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "fixture.hpp"
#include "upcall/upcall.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;

class TaskLock : public RuntimeTest {};
UPCALL_INSTANTIATE_CORES(TaskLock);

TEST_P(TaskLock, NothingSwitchesInsideAndBlockingCallsReturnEdeadlk) {
  std::atomic<long> other_runs{0};
  std::atomic<bool> stop{false};
  auto t = los::create(rt(), [&] {
    // On 1 core the other task can only run when this one switches.
    auto other = upcall::spawn([&] {
      while (!stop.load()) {
        other_runs.fetch_add(1);
        this_task::yield();
      }
    });
    this_task::yield();
    EXPECT_EQ(los::task_unlock(), los::errc::not_locked);
    ASSERT_FALSE(los::task_lock());
    EXPECT_FALSE(los::task_lock());  // nests
    EXPECT_EQ(los::task_lock_depth(), 2u);
    const int core = this_task::core();
    const long before = other_runs.load();
    for (int i = 0; i < 1000; ++i) this_task::yield();
    EXPECT_EQ(los::task_yield(), los::errc::locked);
    const std::error_code d = los::task_delay(1ms);
    EXPECT_EQ(d, los::errc::deadlock);
    EXPECT_EQ(d, std::errc::resource_deadlock_would_occur) << "EDEADLK as a portable condition";
    EXPECT_EQ(los::task_suspend(los::cur_task_id()), los::errc::deadlock);
    EXPECT_EQ(los::task_delete(los::cur_task_id()), los::errc::locked);
    try {
      this_task::sleep_for(1ms);
      ADD_FAILURE() << "sleep inside the lock must throw";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::resource_deadlock_would_occur);
    }
    auto child = upcall::spawn([] { return 1; });
    EXPECT_THROW(child.join(), std::system_error);
    EXPECT_EQ(this_task::core(), core) << "the locked task migrated";
    if (GetParam() == 1) {
      EXPECT_EQ(other_runs.load(), before) << "another task ran inside the lock";
    }
    EXPECT_FALSE(los::task_unlock());
    EXPECT_FALSE(los::task_unlock());
    EXPECT_EQ(los::task_lock_depth(), 0u);
    child.join();  // allowed again
    const long after_unlock = other_runs.load();
    for (int i = 0; i < 10; ++i) this_task::yield();
    if (GetParam() == 1) {
      EXPECT_GT(other_runs.load(), after_unlock) << "yield works again";
    }
    stop = true;
    other.join();
  });
  t.handle.join();
  EXPECT_EQ(los::task_lock(), los::errc::not_in_task);
}

TEST_P(TaskLock, AGuardUnlocksOnUnwindAndDeleteOfALockedTaskWaitsForItsNextPoint) {
  std::atomic<bool> locked{false}, go{false};
  auto t = los::create(rt(), [&] {
    los::TaskLockGuard g;
    EXPECT_FALSE(g.error());
    locked = true;
    while (!go.load()) {
    }
    (void)los::test_cancel();  // throws inside the lock; the guard unlocks on the way out
  });
  while (!locked.load()) std::this_thread::sleep_for(1ms);
  EXPECT_FALSE(los::task_delete(rt(), t.id));
  go = true;
  EXPECT_THROW(t.handle.join(), los::TaskDeleted);
  // The core is usable afterwards (the lock's region level was given back).
  EXPECT_EQ(rt().block_on([] { return 5; }), 5);
}

TEST_P(TaskLock, ASuspendRequestWaitsForTheUnlock) {
  std::atomic<int> phase{0};
  auto t = los::create(rt(), [&] {
    ASSERT_FALSE(los::task_lock());
    phase = 1;
    while (phase.load() != 2) {
    }
    (void)los::test_cancel();  // locked: the suspension does not take effect here
    phase = 3;
    (void)los::task_unlock();
    (void)los::test_cancel();  // now it does
    phase = 4;
  });
  while (phase.load() != 1) std::this_thread::sleep_for(1ms);
  EXPECT_FALSE(los::task_suspend(rt(), t.id));
  phase = 2;
  while (phase.load() < 3) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(phase.load(), 3) << "a suspended task ran past its cancellation point";
  EXPECT_FALSE(los::task_resume(rt(), t.id));
  t.handle.join();
  EXPECT_EQ(phase.load(), 4);
}

// A kernel block (a raw read(2) that waits 200 ms) inside the lock: the core's region bit is
// held, so no standby / watchdog takes the core over and no other fiber of that 1-core
// runtime runs meanwhile. Without activations there is nothing to check.
TEST(TaskLockKernel, AKernelBlockInsideTheLockIsNotTakenOver) {
  Options o;
  o.cores = 1;
  Runtime rt(std::move(o));
  if (rt.config().activations == "off") GTEST_SKIP() << "activations are off here";
  const auto before = rt.stats().activations;
  const long ticks = rt.block_on([] {
    std::atomic<bool> inside{false}, done{false};
    std::atomic<long> ticks_inside{0};
    auto ticker = upcall::spawn([&] {
      while (!done.load()) {
        if (inside.load()) ticks_inside.fetch_add(1);
        this_task::yield();
      }
    });
    auto blocker = los::create([&] {
      // The lock first: creating the writer thread (mmap, clone; under ASAN a shadow set-up
      // while the new thread holds the mm lock) can block the kernel thread too, and outside
      // the lock that is a legitimate takeover (seen once under ASAN with ctest -j2).
      los::TaskLockGuard g;
      int fds[2];
      if (pipe(fds) != 0) return false;
      std::thread writer([&] {
        std::this_thread::sleep_for(200ms);
        const char c = 'x';
        if (write(fds[1], &c, 1) != 1) std::abort();
      });
      char buf = 0;
      inside = true;
      const ssize_t n = read(fds[0], &buf, 1);  // blocks the kernel thread ~200 ms
      inside = false;
      writer.join();
      close(fds[0]);
      close(fds[1]);
      return n == 1 && buf == 'x';
    });
    EXPECT_TRUE(blocker.handle.join());
    done = true;
    ticker.join();
    return ticks_inside.load();
  });
  const auto after = rt.stats().activations;
  EXPECT_EQ(ticks, 0) << "another fiber ran on the core while the locked task was blocked";
  EXPECT_EQ(after.takeovers, before.takeovers) << "the core was taken over inside the lock";
}

}  // namespace
}  // namespace upcall::test
