// The task monitor (los::task_monitor): a snapshot of every task with its state, wait reason,
// core, priority, name and run time; freed tasks are absent; the no-allocation form reports
// how many tasks it saw beyond its capacity.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "upcall/upcall.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class TaskMonitor : public RuntimeTest {};
UPCALL_INSTANTIATE_CORES(TaskMonitor);

const los::TaskInfo* find(const std::vector<los::TaskInfo>& rows, los::TaskId id) {
  for (const auto& r : rows)
    if (r.id == id) return &r;
  return nullptr;
}

template <class Pred>
bool eventually(Pred pred) {
  const auto deadline = Clock::now() + 10s;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST_P(TaskMonitor, SnapshotShowsEveryTaskWithStateWaitReasonCoreAndName) {
  los::set_run_time_accounting(rt(), true);
  upcall::counting_semaphore<1> sem(0);
  std::atomic<bool> stop{false}, busy_done{false};
  auto susp = los::create_only(rt(), [] {}, {"susp", 1});
  auto delayed = los::create(rt(), [&] {
    while (!stop.load()) (void)los::task_delay(2ms);
  }, {"delayed", 3});
  auto pend = los::create(rt(), [&] { sem.acquire(); }, {"pend", -2});
  auto busy = los::create(rt(), [&] {
    const auto until = Clock::now() + 40ms;
    while (Clock::now() < until) {
    }
    busy_done = true;
    while (!stop.load()) (void)los::task_delay(1ms);
  }, {"busy", 0});
  std::vector<los::TaskInfo> rows;
  ASSERT_TRUE(eventually([&] {
    rows = los::task_monitor(rt());
    const auto* s = find(rows, susp.id);
    const auto* d = find(rows, delayed.id);
    const auto* p = find(rows, pend.id);
    const auto* b = find(rows, busy.id);
    return s && d && p && b && s->wait == los::WaitReason::suspend &&
           d->wait == los::WaitReason::delay && p->wait == los::WaitReason::sync &&
           busy_done.load() && b->run_ns > 0;
  })) << "the monitor never showed the expected states";
  EXPECT_EQ(rows.size(), 4u) << "exactly the four live tasks";
  std::set<std::uint64_t> ids;
  for (const auto& r : rows) ids.insert(r.id.value());
  EXPECT_EQ(ids.size(), rows.size()) << "ids are unique";
  const auto* s = find(rows, susp.id);
  EXPECT_STREQ(s->name, "susp");
  EXPECT_EQ(s->priority, 1);
  EXPECT_TRUE(s->status & los::status::suspend);
  const auto* d = find(rows, delayed.id);
  EXPECT_STREQ(d->name, "delayed");
  EXPECT_EQ(d->priority, 3);
  EXPECT_TRUE(d->status & los::status::delay);
  EXPECT_GE(d->core, 0);
  EXPECT_LT(d->core, GetParam());
  const auto* p = find(rows, pend.id);
  EXPECT_TRUE(p->status & los::status::pend);
  EXPECT_EQ(p->priority, -2);
  EXPECT_EQ(p->fiber_id, pend.handle.id());
  const auto* b = find(rows, busy.id);
  // Busy for 40 ms of wall time without a switch: at least 10 ms charged (generous: the
  // kernel may have run others on its CPU meanwhile, which the TSC still counts).
  EXPECT_GE(b->run_ns, 10'000'000u);
  EXPECT_LT(d->run_ns, b->run_ns);
  EXPECT_STREQ(los::to_string(d->wait), "delay");

  // The no-allocation form.
  los::TaskInfo two[2];
  EXPECT_EQ(los::task_monitor(rt(), two, 2), 4u);

  stop = true;
  sem.release();
  EXPECT_FALSE(los::task_resume(rt(), susp.id));
  susp.handle.join();
  delayed.handle.join();
  pend.handle.join();
  busy.handle.join();
  ASSERT_TRUE(NoLeaks(rt()));
  EXPECT_TRUE(los::task_monitor(rt()).empty()) << "freed tasks must not appear";
  los::set_run_time_accounting(rt(), false);
}

// The monitor runs concurrently with tasks being created and freed (each row is one life of
// one slot; TSAN checks the reads).
TEST_P(TaskMonitor, ConcurrentSnapshotsWhileTasksComeAndGo) {
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    while (!stop.load()) {
      for (const auto& r : los::task_monitor(rt())) {
        EXPECT_TRUE(r.id);
        EXPECT_NE(r.status, 0u);
      }
    }
  });
  rt().block_on([] {
    for (int round = 0; round < 50; ++round) {
      std::vector<los::Task<int>> ts;
      for (int i = 0; i < 20; ++i)
        ts.push_back(los::create([i] {
          (void)los::task_yield();
          return i;
        }, {"churn", i % 3}));
      for (auto& t : ts) t.handle.join();
    }
  });
  stop = true;
  watcher.join();
}

}  // namespace
}  // namespace upcall::test
