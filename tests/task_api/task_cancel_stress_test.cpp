// Deletes racing with unlocks, releases, notifies, sends and receives (runtime/DESIGN.md section
// 14, "why nothing is lost"): a plain thread deletes tasks at random moments while they contend,
// and the invariants of each object hold: a mutex is never held by two tasks and no increment
// under it is lost; semaphore permits are conserved; a notify_one is never swallowed by a task
// that leaves; no channel message is lost or duplicated (every send that returned true is
// received exactly once, nothing is received that was not sent). Runs on 1 and 2 cores; the
// work is bounded, and a lost wake-up shows as a failed bounded wait, not a hang.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "task_util.hpp"
#include "upcall/upcall.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;


// Deletes `victims` (task ids) one by one, in random order, 0.5-3.5 ms apart, from this plain
// thread, while they work (the workers run until told to stop, after the deletes).
void delete_at_random(Runtime& rt, std::vector<los::TaskId> victims, unsigned seed) {
  std::mt19937 rng(seed);
  std::shuffle(victims.begin(), victims.end(), rng);
  for (los::TaskId id : victims) {
    std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 3000));
    const std::error_code ec = los::task_delete(rt, id);
    EXPECT_TRUE(!ec || ec == los::errc::task_exited || ec == los::errc::no_such_task)
        << ec.message();
  }
}

// Waits (bounded) until every task of `tasks` named in `ids` has finished: a deleted task
// reaches a cancellation point soon, since its loop waits or calls test_cancel.
template <class Tasks>
void await_victims(Tasks& tasks, const std::vector<los::TaskId>& ids) {
  for (auto& t : tasks)
    if (std::find(ids.begin(), ids.end(), t.id) != ids.end())
      EXPECT_TRUE(eventually([&] { return t.handle.done(); }, 30s)) << "a deleted task ran on";
}

// Joins every task: how many ended by a delete (the others must end normally).
template <class Tasks>
int join_all(Tasks& tasks) {
  int deleted = 0;
  for (auto& t : tasks) {
    try {
      t.handle.join();
    } catch (const los::TaskDeleted&) {
      ++deleted;
    }
  }
  return deleted;
}

class TaskCancelStress : public RuntimeTest {};
UPCALL_INSTANTIATE_CORES(TaskCancelStress);

TEST_P(TaskCancelStress, MutexNeverHeldByTwoAndNoUpdateLost) {
  constexpr int kWorkers = 8, kRounds = 4;
  for (int round = 0; round < kRounds; ++round) {
    upcall::mutex m;
    long counter = 0;  // guarded by m
    std::atomic<bool> stop{false};
    std::atomic<int> inside{0}, violations{0};
    std::atomic<long> inside_total{0};
    std::vector<long> mine(kWorkers, 0);  // guarded by m
    std::vector<los::Task<void>> tasks;
    std::vector<los::TaskId> victims;
    for (int w = 0; w < kWorkers; ++w) {
      tasks.push_back(los::create(rt(), [&, w] {
        for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
          {
            upcall::lock_guard<upcall::mutex> g(m);  // a cancellation point when contended
            if (inside.fetch_add(1) != 0) violations++;
            inside_total.fetch_add(1, std::memory_order_relaxed);
            ++counter;
            ++mine[static_cast<std::size_t>(w)];
            if (i % 4 == 0) this_task::yield();  // not a point: hold it across a switch
            inside.fetch_sub(1);
          }
          if (i % 64 == 0) (void)los::test_cancel();  // so that every victim ends deleted
        }
      }));
      if (w % 2 == 0) victims.push_back(tasks.back().id);
    }
    // Deletes only once they contend (a loaded machine may start the runtime's threads late).
    ASSERT_TRUE(eventually([&] { return inside_total.load() > 2000; }, 30s));
    delete_at_random(rt(), victims, 1234u + static_cast<unsigned>(round));
    await_victims(tasks, victims);
    stop = true;
    const int deleted = join_all(tasks);
    EXPECT_EQ(deleted, static_cast<int>(victims.size()));
    EXPECT_EQ(violations.load(), 0) << "two tasks held the mutex";
    ASSERT_TRUE(m.try_lock()) << "the mutex was left held (lost hand-off)";
    long sum = 0;
    for (long n : mine) sum += n;
    EXPECT_EQ(counter, sum) << "an update under the mutex was lost";
    m.unlock();
  }
}

TEST_P(TaskCancelStress, SemaphorePermitsAreConserved) {
  constexpr int kWorkers = 8, kPermits = 3, kRounds = 4;
  for (int round = 0; round < kRounds; ++round) {
    upcall::counting_semaphore<16> sem(kPermits);
    std::atomic<bool> stop{false};
    std::atomic<int> in_use{0}, violations{0};
    std::atomic<long> acquired_total{0};
    std::vector<los::Task<void>> tasks;
    std::vector<los::TaskId> victims;
    for (int w = 0; w < kWorkers; ++w) {
      tasks.push_back(los::create(rt(), [&, w] {
        for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
          if (w % 3 == 0)
            sem.acquire();
          else if (!sem.try_acquire_for(10s))  // the timed path races the same way
            continue;
          if (in_use.fetch_add(1) >= kPermits) violations++;
          acquired_total.fetch_add(1, std::memory_order_relaxed);
          this_task::yield();
          in_use.fetch_sub(1);
          sem.release();
          if (i % 64 == 0) (void)los::test_cancel();
        }
      }));
      if (w % 2 == 1) victims.push_back(tasks.back().id);
    }
    ASSERT_TRUE(eventually([&] { return acquired_total.load() > 2000; }, 30s));
    delete_at_random(rt(), victims, 99u + static_cast<unsigned>(round));
    await_victims(tasks, victims);
    stop = true;
    EXPECT_EQ(join_all(tasks), static_cast<int>(victims.size()));
    EXPECT_EQ(violations.load(), 0) << "more holders than permits";
    int left = 0;
    while (sem.try_acquire()) ++left;
    EXPECT_EQ(left, kPermits) << "permits were lost or duplicated";
  }
}

TEST_P(TaskCancelStress, ConditionVariableNotifyOneIsNeverSwallowed) {
  // One-slot hand-off: the producer waits for the slot to empty before each put, and wakes one
  // consumer per item with notify_one. A notify swallowed by a deleted consumer would leave an
  // item in the slot with every other consumer asleep: caught by the bounded wait below.
  constexpr int kConsumers = 6, kItems = 40000;
  upcall::mutex m;
  upcall::condition_variable has_item, has_space;
  std::optional<int> slot;  // guarded by m
  bool done = false;        // guarded by m
  std::vector<std::atomic<int>> seen(kItems);
  std::atomic<int> consumed{0};
  std::vector<los::Task<void>> consumers;
  std::vector<los::TaskId> victims;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.push_back(los::create(rt(), [&] {
      for (;;) {
        upcall::unique_lock<upcall::mutex> lk(m);
        has_item.wait(lk, [&] { return slot.has_value() || done; });
        if (!slot) return;
        const int v = *slot;
        slot.reset();
        lk.unlock();
        has_space.notify_one();
        seen[static_cast<std::size_t>(v)].fetch_add(1);
        consumed.fetch_add(1);
      }
    }));
    if (c < kConsumers / 2) victims.push_back(consumers.back().id);
  }
  auto producer = rt().spawn([&] {
    for (int i = 0; i < kItems; ++i) {
      upcall::unique_lock<upcall::mutex> lk(m);
      has_space.wait(lk, [&] { return !slot.has_value(); });
      slot = i;
      lk.unlock();
      has_item.notify_one();
    }
  });
  ASSERT_TRUE(eventually([&] { return consumed.load() > 1000; }, 30s));
  delete_at_random(rt(), victims, 7u);
  const bool all = eventually([&] { return consumed.load() == kItems; }, 60s);
  EXPECT_TRUE(all) << "stalled at " << consumed.load() << " of " << kItems
                   << ": a notify_one was swallowed";
  {
    upcall::lock_guard<upcall::mutex> g(m);
    done = true;
    if (!all) slot.reset();  // unblock everything so the test can end
  }
  has_item.notify_all();
  has_space.notify_all();
  producer.join();
  EXPECT_GE(join_all(consumers), 1);
  if (all) {
    int wrong = 0;
    for (int i = 0; i < kItems; ++i) wrong += seen[static_cast<std::size_t>(i)].load() != 1;
    EXPECT_EQ(wrong, 0) << "items consumed twice or never";
  }
}

// Producers send unique values, consumers receive (half of them through select); a plain
// thread deletes some of each while they run. Checks: received at most once each; every send
// that returned true received (after the close, the rest is drained); nothing received that
// no producer attempted.
void channel_round(Runtime& rt, Channel<int> ch, unsigned seed) {
  constexpr int kProducers = 3, kPerProducer = 100000, kConsumers = 5;
  constexpr int kValues = kProducers * kPerProducer;
  std::vector<std::atomic<int>> received(kValues), sent_ok(kValues), attempted(kValues);
  std::atomic<bool> stop{false};  // producers send until told (or kPerProducer values)
  std::atomic<long> progress{0};  // values received
  upcall::Channel<int> never(0);  // a second select case that never fires
  std::vector<los::Task<void>> producers, consumers;
  std::vector<los::TaskId> victims;
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(los::create(rt, [&, ch, p] {
      for (int i = 0; i < kPerProducer && !stop.load(std::memory_order_relaxed); ++i) {
        const int v = p * kPerProducer + i;
        attempted[static_cast<std::size_t>(v)] = 1;
        if (!ch.send(v)) return;
        sent_ok[static_cast<std::size_t>(v)] = 1;
      }
    }));
    if (p == 0) victims.push_back(producers.back().id);
  }
  for (int c = 0; c < kConsumers; ++c) {
    const bool use_select = c % 2 == 1;
    consumers.push_back(los::create(rt, [&, ch, never, use_select] {
      for (;;) {
        std::optional<int> v;
        if (use_select) {
          auto r = upcall::select(upcall::on_recv(ch), upcall::on_recv(never));
          v = std::move(std::get<0>(r));
        } else {
          v = ch.recv();
        }
        if (!v) return;
        received[static_cast<std::size_t>(*v)].fetch_add(1);
        progress.fetch_add(1, std::memory_order_relaxed);
      }
    }));
    if (c < 2) victims.push_back(consumers.back().id);
  }
  ASSERT_TRUE(eventually([&] { return progress.load() > 2000; }, 30s));
  delete_at_random(rt, victims, seed);
  stop = true;
  join_all(producers);
  ch.close();
  join_all(consumers);
  while (auto v = ch.try_recv()) received[static_cast<std::size_t>(*v)].fetch_add(1);
  int lost = 0, dup = 0, phantom = 0, delivered = 0;
  for (int v = 0; v < kValues; ++v) {
    const auto i = static_cast<std::size_t>(v);
    const int r = received[i].load();
    if (r > 1) ++dup;
    if (sent_ok[i].load() && r != 1) ++lost;
    if (r && !attempted[i].load()) ++phantom;
    delivered += r;
  }
  EXPECT_EQ(lost, 0) << "messages lost";
  EXPECT_EQ(dup, 0) << "messages duplicated";
  EXPECT_EQ(phantom, 0);
  EXPECT_GT(delivered, 0);
}

TEST_P(TaskCancelStress, ChannelNoMessageLostOrDuplicatedRendezvous) {
  for (unsigned r = 0; r < 2; ++r) channel_round(rt(), Channel<int>(0), 11u + r);
}

TEST_P(TaskCancelStress, ChannelNoMessageLostOrDuplicatedBounded) {
  for (unsigned r = 0; r < 2; ++r) channel_round(rt(), Channel<int>(4), 21u + r);
}

TEST_P(TaskCancelStress, ChannelNoMessageLostOrDuplicatedUnbounded) {
  for (unsigned r = 0; r < 2; ++r) channel_round(rt(), Channel<int>::unbounded(), 31u + r);
}

}  // namespace
}  // namespace upcall::test
