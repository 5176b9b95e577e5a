// Delete of a task that waits in a sync object, a channel, a join or a sleep (the waits that are
// cancellation points, runtime/DESIGN.md section 14): the task unwinds at once (its destructors
// run, join() rethrows los::TaskDeleted) although nothing ever completes its wait, and the
// object is left consistent (the waiter took itself off its queue: the next operation does not
// hand anything to the deleted task). Also: a condition variable re-acquires the lock before
// TaskDeleted leaves the wait, NoCancelGuard and unwinding destructors turn the points off,
// and plain threads are unaffected. Every test runs on 1 and 2 cores and fails on leaks.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include "fixture.hpp"
#include "task_util.hpp"
#include "upcall/upcall.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class TaskCancel : public RuntimeTest {
 protected:
  // Starts a task that runs `wait` (which must wait until deleted), waits until the monitor
  // shows it waiting for `reason`, deletes it, and checks that it unwound: join() rethrows
  // TaskDeleted, its destructors ran, the code after the wait did not.
  template <class Wait>
  void ExpectDeleteUnwinds(Wait wait, los::WaitReason reason = los::WaitReason::sync) {
    std::atomic<int> dtors{0};
    std::atomic<bool> after{false};
    auto t = los::create(rt(), [&] {
      DtorFlag d(&dtors);
      wait();
      after = true;
    });
    ASSERT_TRUE(eventually([&] {
      los::TaskInfo i;
      return !los::task_info_get(rt(), t.id, i) && i.wait == reason;
    })) << "the task never waited";
    const auto t0 = Clock::now();
    EXPECT_FALSE(los::task_delete(rt(), t.id));
    EXPECT_THROW(t.handle.join(), los::TaskDeleted);
    // Nothing completes the wait; a generous bound only catches a wait that ran to a timeout.
    EXPECT_LT(Clock::now() - t0, 10s);
    EXPECT_EQ(dtors.load(), 1) << "the task's destructors must run";
    EXPECT_FALSE(after.load()) << "the wait must not return";
  }
};
UPCALL_INSTANTIATE_CORES(TaskCancel);

// An upcall::thread's function is noexcept (an escaping exception terminates, as for
// std::thread); a los::task_delete of its fiber must not: the thread unwinds at its wait and
// ends as if its function had returned, and join() returns normally.
TEST_P(TaskCancel, DeletedStdThreadEndsAsIfItReturned) {
  std::atomic<int> dtors{0};
  std::atomic<bool> after{false};
  std::atomic<std::uint64_t> id{0};
  rt().block_on([&] {
    upcall::thread th([&] {
      DtorFlag d(&dtors);
      id = los::cur_task_id().value();
      upcall::this_thread::sleep_for(30s);
      after = true;
    });
    while (id.load() == 0) this_task::yield();
    los::TaskInfo i;
    while (los::task_info_get(rt(), los::TaskId(id.load()), i) || i.wait != los::WaitReason::sleep)
      this_task::sleep_for(1ms);
    EXPECT_FALSE(los::task_delete(rt(), los::TaskId(id.load())));
    th.join();
  });
  EXPECT_EQ(dtors.load(), 1);
  EXPECT_FALSE(after.load());
}

TEST_P(TaskCancel, MutexLockUnwindsAndLeavesTheQueue) {
  upcall::mutex m;
  m.lock();  // held by this plain thread
  ExpectDeleteUnwinds([&] { m.lock(); });
  m.unlock();  // a deleted waiter still queued would be handed the mutex here
  EXPECT_TRUE(m.try_lock()) << "the mutex went to the deleted task";
  m.unlock();
}

TEST_P(TaskCancel, TimedAndRecursiveMutexesUnwind) {
  upcall::timed_mutex tm;
  upcall::recursive_mutex rm;
  upcall::recursive_timed_mutex rtm;
  tm.lock();
  rm.lock();
  rtm.lock();
  ExpectDeleteUnwinds([&] { (void)tm.try_lock_for(30s); });
  ExpectDeleteUnwinds([&] { tm.lock(); });
  ExpectDeleteUnwinds([&] { rm.lock(); });
  ExpectDeleteUnwinds([&] { (void)rtm.try_lock_until(Clock::now() + 30s); });
  tm.unlock();
  rm.unlock();
  rtm.unlock();
  EXPECT_TRUE(tm.try_lock());
  EXPECT_TRUE(rm.try_lock());
  EXPECT_TRUE(rtm.try_lock());
  tm.unlock();
  rm.unlock();
  rtm.unlock();
}

TEST_P(TaskCancel, SharedMutexExclusiveAndSharedWaitsUnwind) {
  upcall::shared_timed_mutex m;
  m.lock();
  ExpectDeleteUnwinds([&] { m.lock_shared(); });
  ExpectDeleteUnwinds([&] { m.lock(); });
  ExpectDeleteUnwinds([&] { (void)m.try_lock_shared_for(30s); });
  m.unlock();
  EXPECT_TRUE(m.try_lock());
  m.unlock();
  m.lock_shared();
  ExpectDeleteUnwinds([&] { m.lock(); });  // a writer behind a reader
  EXPECT_TRUE(m.try_lock_shared()) << "a dead queued writer would block new readers";
  m.unlock_shared();
  m.unlock_shared();
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST_P(TaskCancel, ConditionVariableRelocksBeforeTheExceptionLeaves) {
  upcall::mutex m;
  upcall::condition_variable cv;
  std::atomic<int> held_while_unwinding{0};
  // Destroyed before the unique_lock (declared after it): sees what the unwinding sees.
  struct Probe {
    upcall::unique_lock<upcall::mutex>* lk;
    upcall::mutex* m;
    std::atomic<int>* out;
    ~Probe() {
      // Owned and actually locked (try_lock fails on a held upcall::mutex).
      if (lk->owns_lock() && !m->try_lock()) out->fetch_add(1);
    }
  };
  ExpectDeleteUnwinds([&] {
    upcall::unique_lock<upcall::mutex> lk(m);
    Probe p{&lk, &m, &held_while_unwinding};
    cv.wait(lk, [] { return false; });
  });
  ExpectDeleteUnwinds([&] {
    upcall::unique_lock<upcall::mutex> lk(m);
    Probe p{&lk, &m, &held_while_unwinding};
    (void)cv.wait_for(lk, 30s);
  });
  EXPECT_EQ(held_while_unwinding.load(), 2);
  EXPECT_TRUE(m.try_lock()) << "the unwinding unlocked it";
  m.unlock();
  cv.notify_one();  // nobody is queued: a dead Waiter here would be written to
}

TEST_P(TaskCancel, ConditionVariableAnyAndStopTokenWaitsUnwind) {
  upcall::mutex m;
  upcall::condition_variable_any cv;
  ExpectDeleteUnwinds([&] {
    upcall::unique_lock<upcall::mutex> lk(m);
    cv.wait(lk);
  });
  upcall::stop_source src;
  ExpectDeleteUnwinds([&] {
    upcall::unique_lock<upcall::mutex> lk(m);
    (void)cv.wait(lk, src.get_token(), [] { return false; });
  });
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST_P(TaskCancel, SemaphoreAcquireUnwindsAndThePermitGoesToTheNextAcquirer) {
  upcall::counting_semaphore<8> sem(0);
  ExpectDeleteUnwinds([&] { sem.acquire(); });
  ExpectDeleteUnwinds([&] { (void)sem.try_acquire_for(30s); });
  sem.release();
  EXPECT_TRUE(sem.try_acquire()) << "the permit went to a deleted acquirer";
  EXPECT_FALSE(sem.try_acquire());
}

TEST_P(TaskCancel, LatchAndBarrierWaitsUnwind) {
  upcall::latch l(2);
  ExpectDeleteUnwinds([&] { l.arrive_and_wait(); });
  EXPECT_FALSE(l.try_wait());
  l.count_down();  // the deleted task's arrival counted: this one completes the latch
  EXPECT_TRUE(l.try_wait());
  upcall::barrier b(2);
  ExpectDeleteUnwinds([&] { b.arrive_and_wait(); });
}

TEST_P(TaskCancel, FutureWaitsAndGetUnwind) {
  upcall::promise<int> p;
  upcall::shared_future<int> sf = p.get_future().share();
  ExpectDeleteUnwinds([&] { (void)sf.get(); });
  ExpectDeleteUnwinds([&] { sf.wait(); });
  ExpectDeleteUnwinds([&] { (void)sf.wait_for(30s); });
  p.set_value(3);
  EXPECT_EQ(sf.get(), 3) << "the state is intact";
}

TEST_P(TaskCancel, WaitGroupWaitUnwinds) {
  upcall::WaitGroup wg;
  wg.add(1);
  ExpectDeleteUnwinds([&] { wg.wait(); });
  ExpectDeleteUnwinds([&] { (void)wg.wait_for(30s); });
  wg.done();
  wg.wait();  // the deleted waiters unregistered themselves
}

TEST_P(TaskCancel, ChannelRecvAndSendUnwindAndLeaveTheQueues) {
  upcall::Channel<int> rv(0);  // rendezvous
  ExpectDeleteUnwinds([&] { (void)rv.recv(); });
  EXPECT_EQ(rv.try_send(1), ChannelStatus::would_block) << "a deleted receiver is still queued";
  ExpectDeleteUnwinds([&] { (void)rv.send(5); });
  EXPECT_FALSE(rv.try_recv().has_value()) << "a deleted sender is still queued";
  ExpectDeleteUnwinds([&] { (void)rv.recv_for(30s); });

  upcall::Channel<int> full(1);
  ASSERT_TRUE(full.send(1));
  ExpectDeleteUnwinds([&] { (void)full.send(2); });
  ExpectDeleteUnwinds([&] { (void)full.send_for(3, 30s); });
  EXPECT_EQ(full.try_recv(), std::optional<int>(1));
  EXPECT_FALSE(full.try_recv().has_value()) << "a deleted send must not deliver";

  upcall::Channel<int> empty = upcall::Channel<int>::unbounded();
  ExpectDeleteUnwinds([&] {
    for (int v : empty) (void)v;
  });
  ASSERT_EQ(empty.try_send(9), ChannelStatus::ok);
  EXPECT_EQ(empty.try_recv(), std::optional<int>(9)) << "the value went to a deleted receiver";
}

TEST_P(TaskCancel, SelectUnwindsAndUnlinksEveryCase) {
  upcall::Channel<int> a(0);
  upcall::Channel<long> b(0);
  ExpectDeleteUnwinds([&] { (void)upcall::select(upcall::on_recv(a), upcall::on_recv(b)); });
  ExpectDeleteUnwinds(
      [&] { (void)upcall::select_for(30s, upcall::on_recv(a), upcall::on_send(b, 4L)); });
  EXPECT_EQ(a.try_send(1), ChannelStatus::would_block);
  EXPECT_EQ(b.try_send(2L), ChannelStatus::would_block);
  EXPECT_FALSE(b.try_recv().has_value());
}

TEST_P(TaskCancel, JoinAndSleepUnwind) {
  std::atomic<bool> release{false}, child_done{false};
  ExpectDeleteUnwinds(
      [&] {
        auto child = upcall::spawn([&] {
          while (!release.load()) this_task::sleep_for(1ms);
          child_done = true;
        });
        child.join();
      },
      los::WaitReason::join);
  release = true;  // the child (detached by the unwinding) finishes
  // Before this frame (and `release`) goes away.
  ASSERT_TRUE(eventually([&] { return child_done.load(); }));
  ExpectDeleteUnwinds([] { this_task::sleep_for(30s); }, los::WaitReason::sleep);
  ExpectDeleteUnwinds([] { upcall::this_thread::sleep_until(Clock::now() + 30s); },
                      los::WaitReason::sleep);
}

TEST_P(TaskCancel, ThreadJoinDetachesAndJthreadStopsAndJoins) {
  std::atomic<bool> release{false}, thread_done{false}, jthread_stopped{false};
  // upcall::thread: the deleted joiner detaches it (no std::terminate in ~thread).
  ExpectDeleteUnwinds(
      [&] {
        upcall::thread th([&] {
          while (!release.load()) this_task::sleep_for(1ms);
          thread_done = true;
        });
        th.join();
      },
      los::WaitReason::join);
  release = true;
  ASSERT_TRUE(eventually([&] { return thread_done.load(); }));
  // upcall::jthread: the unwinding destructor requests a stop and joins (not a point there).
  ExpectDeleteUnwinds(
      [&] {
        upcall::jthread th([&](upcall::stop_token st) {
          while (!st.stop_requested()) this_task::sleep_for(1ms);
          jthread_stopped = true;
        });
        th.join();
      },
      los::WaitReason::join);
  EXPECT_TRUE(jthread_stopped.load()) << "~jthread joined before the task ended";
}

TEST_P(TaskCancel, AWaitInsideTheSchedulerLockIsAPointToo) {
  upcall::counting_semaphore<4> sem(0);
  std::atomic<bool> waiting{false}, after{false};
  auto t = los::create(rt(), [&] {
    los::TaskLockGuard g;  // the wait holds the core without switching (park_locked)
    waiting = true;
    sem.acquire();
    after = true;
  });
  ASSERT_TRUE(eventually([&] { return waiting.load(); }));
  std::this_thread::sleep_for(20ms);  // (the monitor shows it running: it does not switch)
  EXPECT_FALSE(los::task_delete(rt(), t.id));
  EXPECT_THROW(t.handle.join(), los::TaskDeleted);
  EXPECT_FALSE(after.load());
  EXPECT_EQ(rt().block_on([] { return los::task_lock_depth(); }), 0u) << "the guard unlocked";
  sem.release();
  EXPECT_TRUE(sem.try_acquire());
}

TEST_P(TaskCancel, NoCancelGuardDefersTheDeleteToTheNextPointAfterIt) {
  upcall::counting_semaphore<4> sem(0);
  std::atomic<bool> acquired{false}, after{false};
  auto t = los::create(rt(), [&] {
    {
      los::NoCancelGuard g;
      sem.acquire();  // not a point inside the guard
      acquired = true;
      (void)los::test_cancel();  // nor this
    }
    (void)los::test_cancel();  // the delete lands here
    after = true;
  });
  ASSERT_TRUE(eventually([&] {
    los::TaskInfo i;
    return !los::task_info_get(rt(), t.id, i) && i.wait == los::WaitReason::sync;
  }));
  EXPECT_FALSE(los::task_delete(rt(), t.id));
  std::this_thread::sleep_for(30ms);
  EXPECT_FALSE(acquired.load()) << "the wake-up of the delete must not end the wait";
  sem.release();
  EXPECT_THROW(t.handle.join(), los::TaskDeleted);
  EXPECT_TRUE(acquired.load());
  EXPECT_FALSE(after.load());
}

TEST_P(TaskCancel, WaitsInDestructorsDuringTheUnwindingFinishNormally) {
  upcall::mutex m;
  std::atomic<bool> dtor_locked{false};
  struct LocksOnDestruction {
    upcall::mutex* m;
    std::atomic<bool>* out;
    ~LocksOnDestruction() {
      upcall::lock_guard<upcall::mutex> g(*m);  // unwinding: not a point, waits for the lock
      *out = true;
    }
  };
  m.lock();
  std::atomic<bool> waiting{false};
  auto t = los::create(rt(), [&] {
    LocksOnDestruction d{&m, &dtor_locked};
    waiting = true;
    this_task::sleep_for(30s);
  });
  ASSERT_TRUE(eventually([&] {
    los::TaskInfo i;
    return !los::task_info_get(rt(), t.id, i) && i.wait == los::WaitReason::sleep;
  }));
  EXPECT_FALSE(los::task_delete(rt(), t.id));
  std::this_thread::sleep_for(30ms);
  EXPECT_FALSE(dtor_locked.load());
  m.unlock();
  EXPECT_THROW(t.handle.join(), los::TaskDeleted);
  EXPECT_TRUE(dtor_locked.load());
}

TEST_P(TaskCancel, OtherFibersAndPlainThreadsKeepStdSemantics) {
  // A fiber without a delete and a plain thread both wait through spurious-free std waits.
  upcall::mutex m;
  upcall::condition_variable cv;
  bool ready = false;
  std::atomic<int> woke{0};
  auto f = rt().spawn([&] {
    upcall::unique_lock<upcall::mutex> lk(m);
    cv.wait(lk, [&] { return ready; });
    woke++;
  });
  std::thread th([&] {
    upcall::unique_lock<upcall::mutex> lk(m);
    cv.wait(lk, [&] { return ready; });
    woke++;
  });
  std::this_thread::sleep_for(20ms);
  {
    upcall::lock_guard<upcall::mutex> g(m);
    ready = true;
  }
  cv.notify_all();
  f.join();
  th.join();
  EXPECT_EQ(woke.load(), 2);
}

}  // namespace
}  // namespace upcall::test
