// The LiteOS-style task API (upcall/task_api.hpp): create / create_only, delete of waiting,
// suspended and running tasks, suspend / resume, delay, yield, ids and their errors, status,
// info and name. Every test runs on 1 and 2 cores and fails on leaked fibers or stacks.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "task_util.hpp"
#include "upcall/upcall.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::uint32_t status_of(Runtime& rt, los::TaskId id) {
  std::uint32_t s = 0;
  EXPECT_FALSE(los::task_status_get(rt, id, s));
  return s;
}

class TaskApi : public RuntimeTest {};
UPCALL_INSTANTIATE_CORES(TaskApi);

TEST_P(TaskApi, CreateRunsTheTaskAndTheIdNamesIt) {
  std::atomic<std::uint64_t> seen{0};
  auto t = los::create(rt(), [&] {
    seen = los::cur_task_id().value();
    return 42;
  }, {"worker", 3});
  EXPECT_TRUE(t.id);
  EXPECT_EQ(t.handle.join(), 42);
  EXPECT_EQ(seen.load(), t.id.value());
  EXPECT_EQ(los::cur_task_id(), los::TaskId{}) << "a plain thread is no task";
}

TEST_P(TaskApi, CreateOnlyStartsSuspendedAndResumeStartsIt) {
  std::atomic<bool> ran{false};
  auto t = los::create_only(rt(), [&] { ran = true; });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(ran.load()) << "a create_only task must not run before task_resume";
  EXPECT_TRUE(status_of(rt(), t.id) & los::status::suspend);
  EXPECT_FALSE(los::task_resume(rt(), t.id));
  t.handle.join();
  EXPECT_TRUE(ran.load());
  ASSERT_TRUE(NoLeaks(rt()));  // the fiber drops its own reference just after it switched away
  EXPECT_EQ(los::task_resume(rt(), t.id), los::errc::no_such_task) << "joined: slot freed";
}

TEST_P(TaskApi, DeleteOfACreateOnlyTaskDestroysItsCallableWithoutRunningIt) {
  std::atomic<bool> ran{false};
  auto guard = std::make_shared<int>(0);
  std::weak_ptr<int> watch = guard;
  auto t = los::create_only(rt(), [&, g = std::move(guard)] { ran = true; });
  EXPECT_FALSE(los::task_delete(rt(), t.id));
  EXPECT_THROW(t.handle.join(), los::TaskDeleted);
  EXPECT_FALSE(ran.load());
  EXPECT_TRUE(watch.expired()) << "the task's captures must be destroyed";
  EXPECT_TRUE(NoLeaks(rt()));
}

TEST_P(TaskApi, DeleteOfADelayedTaskUnwindsItAtOnce) {
  std::atomic<int> dtors{0};
  std::atomic<bool> after{false};
  auto t = los::create(rt(), [&] {
    DtorFlag d(&dtors);
    (void)los::task_delay(30s);
    after = true;
  });
  ASSERT_TRUE(eventually([&] { return status_of(rt(), t.id) & los::status::delay; }));
  los::TaskInfo info;
  ASSERT_FALSE(los::task_info_get(rt(), t.id, info));
  EXPECT_EQ(info.wait, los::WaitReason::delay);
  const auto t0 = Clock::now();
  EXPECT_FALSE(los::task_delete(rt(), t.id));
  EXPECT_THROW(t.handle.join(), los::TaskDeleted);
  EXPECT_LT(Clock::now() - t0, 10s) << "the delete must not wait for the 30 s delay";
  EXPECT_EQ(dtors.load(), 1);
  EXPECT_FALSE(after.load());
  EXPECT_TRUE(NoLeaks(rt())) << "the stack must return to the pool";
}

TEST_P(TaskApi, DeleteOfASuspendedTaskUnwindsIt) {
  std::atomic<int> dtors{0};
  std::atomic<bool> after{false};
  auto t = los::create(rt(), [&] {
    DtorFlag d(&dtors);
    (void)los::task_suspend(los::cur_task_id());
    after = true;
  });
  ASSERT_TRUE(eventually([&] {
    los::TaskInfo i;
    return !los::task_info_get(rt(), t.id, i) && i.wait == los::WaitReason::suspend;
  }));
  EXPECT_TRUE(status_of(rt(), t.id) & los::status::suspend);
  EXPECT_FALSE(los::task_delete(rt(), t.id));
  EXPECT_THROW(t.handle.join(), los::TaskDeleted);
  EXPECT_EQ(dtors.load(), 1);
  EXPECT_FALSE(after.load());
}

TEST_P(TaskApi, DeleteOfARunningTaskTakesEffectAtItsNextSchedulingPoint) {
  std::atomic<int> dtors{0};
  std::atomic<long> iterations{0};
  auto t = los::create(rt(), [&] {
    DtorFlag d(&dtors);
    for (;;) {
      iterations.fetch_add(1);
      (void)los::task_yield();
    }
  });
  ASSERT_TRUE(eventually([&] { return iterations.load() > 100; }));
  EXPECT_FALSE(los::task_delete(rt(), t.id));
  EXPECT_THROW(t.handle.join(), los::TaskDeleted);
  EXPECT_EQ(dtors.load(), 1);
}

TEST_P(TaskApi, CatchStdExceptionDoesNotStopTheDeleteAndASwallowedOneComesBack) {
  std::atomic<int> caught_std{0}, swallowed{0};
  auto t = los::create(rt(), [&] {
    try {
      (void)los::task_delete(los::cur_task_id());
    } catch (const std::exception&) {
      caught_std++;
    } catch (...) {
      swallowed++;  // the user's responsibility: the request stays
    }
    for (;;) (void)los::task_yield();  // throws again at once
  });
  EXPECT_THROW(t.handle.join(), los::TaskDeleted);
  EXPECT_EQ(caught_std.load(), 0);
  EXPECT_EQ(swallowed.load(), 1);
}

// Delete of a task waiting on a sync object, a channel, a join or a sleep: task_cancel_test.cpp.

TEST_P(TaskApi, SuspendAndResumeErrors) {
  std::atomic<bool> stop{false};
  auto t = los::create(rt(), [&] {
    while (!stop.load()) (void)los::task_delay(1ms);
  });
  EXPECT_EQ(los::task_resume(rt(), t.id), los::errc::not_suspended);
  EXPECT_FALSE(los::task_suspend(rt(), t.id));
  EXPECT_EQ(los::task_suspend(rt(), t.id), los::errc::already_suspended);
  ASSERT_TRUE(eventually([&] {
    los::TaskInfo i;
    return !los::task_info_get(rt(), t.id, i) && i.wait == los::WaitReason::suspend;
  }));
  stop = true;
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(t.handle.done()) << "a suspended task must not run";
  EXPECT_FALSE(los::task_resume(rt(), t.id));
  t.handle.join();
}

// The target never yields except at test_cancel, so on 2 cores the controller runs on the
// other core: a suspend of a task running elsewhere.
TEST_P(TaskApi, SuspendOfATaskRunningOnAnotherCoreTakesEffectAtItsNextPoint) {
  std::atomic<bool> stop{false};
  std::atomic<long> n{0};
  auto target = los::create(rt(), [&] {
    while (!stop.load()) {
      n.fetch_add(1);
      (void)los::test_cancel();
      if (GetParam() == 1 && n.load() % 64 == 0) this_task::yield();  // let the controller run
    }
  });
  ASSERT_TRUE(eventually([&] { return n.load() > 1000; }));
  auto controller = los::create(rt(), [&] {
    los::TaskInfo i;
    EXPECT_FALSE(los::task_info_get(target.id, i));
    if (GetParam() == 2) {
      EXPECT_NE(i.core, this_task::core()) << "target runs on the other core";
    }
    EXPECT_FALSE(los::task_suspend(target.id));
  });
  controller.handle.join();
  ASSERT_TRUE(eventually([&] {
    los::TaskInfo i;
    return !los::task_info_get(rt(), target.id, i) && i.wait == los::WaitReason::suspend;
  }));
  const long frozen = n.load();
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(n.load(), frozen) << "the suspended task kept running";
  EXPECT_FALSE(los::task_resume(rt(), target.id));
  ASSERT_TRUE(eventually([&] { return n.load() > frozen; }));
  stop = true;
  target.handle.join();
}

TEST_P(TaskApi, DelayWaitsAtLeastItsDuration) {
  auto t = los::create(rt(), [] {
    const auto t0 = Clock::now();
    EXPECT_FALSE(los::task_delay(20ms));
    return Clock::now() - t0;
  });
  EXPECT_GE(t.handle.join(), 20ms);
  EXPECT_EQ(los::task_delay(1ms), los::errc::not_in_task);
  EXPECT_EQ(los::task_yield(), los::errc::not_in_task);
}

TEST_P(TaskApi, InvalidAndStaleIdsGiveErrors) {
  los::TaskInfo info;
  int prio = 0;
  EXPECT_EQ(los::task_delete(rt(), los::TaskId{}), los::errc::invalid_id);
  EXPECT_EQ(los::task_info_get(rt(), los::TaskId((1ull << 40) | 1), info), los::errc::invalid_id);
  EXPECT_EQ(los::task_delete(los::TaskId{}), los::errc::not_in_task) << "plain thread, no runtime";
  auto done = los::create(rt(), [] {});
  const los::TaskId old = done.id;
  while (!done.handle.done()) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(los::task_delete(rt(), old), los::errc::task_exited) << "finished, handle held";
  EXPECT_EQ(los::task_suspend(rt(), old), los::errc::task_exited);
  EXPECT_TRUE(status_of(rt(), old) & los::status::exit);
  done.handle.join();
  ASSERT_TRUE(NoLeaks(rt()));
  // Reuse the slots: the old id must keep failing and never touch a new task.
  std::atomic<bool> stop{false};
  std::vector<los::Task<void>> live;
  for (int i = 0; i < 64; ++i)
    live.push_back(los::create(rt(), [&] {
      while (!stop.load()) (void)los::task_delay(1ms);
    }));
  EXPECT_EQ(los::task_delete(rt(), old), los::errc::no_such_task);
  EXPECT_EQ(los::task_suspend(rt(), old), los::errc::no_such_task);
  EXPECT_EQ(los::task_resume(rt(), old), los::errc::no_such_task);
  EXPECT_EQ(los::task_pri_set(rt(), old, 5), los::errc::no_such_task);
  EXPECT_EQ(los::task_pri_get(rt(), old, prio), los::errc::no_such_task);
  EXPECT_EQ(los::task_info_get(rt(), old, info), los::errc::no_such_task);
  const std::error_code ec = los::errc::no_such_task;
  EXPECT_FALSE(ec.message().empty());
  stop = true;
  for (auto& t : live) {
    std::uint32_t s = 0;
    ASSERT_FALSE(los::task_status_get(rt(), t.id, s));
    EXPECT_FALSE(s & (los::status::suspend | los::status::deleted)) << "a stale id hit a new task";
    t.handle.join();
  }
}

TEST_P(TaskApi, NameInfoAndPriorities) {
  std::atomic<bool> stop{false};
  auto t = los::create(rt(), [&] {
    while (!stop.load()) (void)los::task_delay(1ms);
  }, {"named-task", 5});
  ASSERT_TRUE(eventually([&] { return status_of(rt(), t.id) & los::status::delay; }));
  std::string name;
  EXPECT_FALSE(los::task_name_get(rt(), t.id, name));
  EXPECT_EQ(name, "named-task");
  int prio = 0;
  EXPECT_FALSE(los::task_pri_get(rt(), t.id, prio));
  EXPECT_EQ(prio, 5);
  EXPECT_FALSE(los::task_pri_set(rt(), t.id, -7));
  EXPECT_FALSE(los::task_pri_get(rt(), t.id, prio));
  EXPECT_EQ(prio, -7);
  EXPECT_EQ(los::task_pri_set(rt(), t.id, los::kMaxPriority + 1), los::errc::invalid_priority);
  EXPECT_THROW(los::create(rt(), [] {}, {nullptr, los::kMinPriority - 1}), std::system_error);
  los::TaskInfo info;
  EXPECT_FALSE(los::task_info_get(rt(), t.id, info));
  EXPECT_EQ(info.id, t.id);
  EXPECT_EQ(info.fiber_id, t.handle.id());
  EXPECT_STREQ(info.name, "named-task");
  EXPECT_GE(info.core, 0);
  EXPECT_LT(info.core, GetParam());
  stop = true;
  t.handle.join();
  auto self = los::create(rt(), [] {
    EXPECT_FALSE(los::cur_task_pri_set(9));
    int p = 0;
    EXPECT_FALSE(los::task_pri_get(los::cur_task_id(), p));
    EXPECT_EQ(p, 9);
    std::uint32_t s = 0;
    EXPECT_FALSE(los::task_status_get(los::cur_task_id(), s));
    EXPECT_TRUE(s & los::status::running);
  });
  self.handle.join();
}

// One core: the order of a yield is deterministic.
TEST(TaskApiOrder, YieldMovesTheCallerBehindTheReadyTasksAndNextTaskIdNamesTheHead) {
  Options o;
  o.cores = 1;
  Runtime rt(std::move(o));
  rt.block_on([] {
    std::string order;
    auto a = los::create([&] {
      order += "a1 ";
      EXPECT_FALSE(los::task_yield());
      order += "a2 ";
    });
    auto b = los::create([&] { order += "b1 "; });
    EXPECT_EQ(los::next_task_id(), a.id) << "a is at the head of the core's queue";
    a.handle.join();
    b.handle.join();
    EXPECT_EQ(order, "a1 b1 a2 ");
  });
  EXPECT_EQ(los::next_task_id(rt, 5), los::TaskId{});
}

}  // namespace
}  // namespace upcall::test
