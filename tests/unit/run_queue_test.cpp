// The scheduler's queues in isolation (white box, no runtime): the per-core run queue (bounded
// SPMC ring: FIFO, capacity, pop_batch, steal-half, an owner racing thieves), the injection
// queue (intrusive chains under a mutex) and the timer heap (deadline order, stale generations).
// The run queue never dereferences what it stores, so most tests use fake Fiber pointers; the
// injection queue and the timer heap touch Fiber fields and get real (unscheduled) Fibers.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "runtime/core/fiber.hpp"
#include "runtime/sched/inject_queue.hpp"
#include "runtime/sched/run_queue.hpp"
#include "runtime/sched/timer_heap.hpp"

namespace upcall::rt {
namespace {

#if defined(__SANITIZE_THREAD__)
constexpr int kScale = 10;  // TSAN runs 5-20x slower
#elif defined(__SANITIZE_ADDRESS__)
constexpr int kScale = 2;
#else
constexpr int kScale = 1;
#endif

// A fake, never dereferenced Fiber pointer encoding `i` (aligned like a real Fiber).
Fiber* Fake(std::uint64_t i) { return reinterpret_cast<Fiber*>((i + 1) * alignof(Fiber)); }
std::uint64_t Index(Fiber* f) { return reinterpret_cast<std::uintptr_t>(f) / alignof(Fiber) - 1; }

std::vector<std::uint64_t> Drain(RunQueue& q) {
  std::vector<std::uint64_t> out;
  while (Fiber* f = q.pop()) out.push_back(Index(f));
  return out;
}

std::vector<std::uint64_t> Iota(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> v(to - from);
  std::iota(v.begin(), v.end(), from);
  return v;
}

// ------------------------------------------------------------------------------- RunQueue

TEST(RunQueue, PushPopIsFifo) {
  auto q = std::make_unique<RunQueue>();
  EXPECT_EQ(q->pop(), nullptr);
  EXPECT_TRUE(q->empty_hint());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(q->push(Fake(i)));
  EXPECT_EQ(q->size_hint(), 10u);
  EXPECT_EQ(Drain(*q), Iota(0, 10));
  EXPECT_EQ(q->pop(), nullptr);
  EXPECT_TRUE(q->empty_hint());
}

TEST(RunQueue, FullQueueRejectsPush) {
  auto q = std::make_unique<RunQueue>();
  for (std::uint32_t i = 0; i < RunQueue::kCapacity; ++i) ASSERT_TRUE(q->push(Fake(i)));
  EXPECT_EQ(q->size_hint(), RunQueue::kCapacity);
  EXPECT_FALSE(q->push(Fake(999)));
  EXPECT_EQ(q->size_hint(), RunQueue::kCapacity);
  // One out makes room for exactly one in, and the rejected item was not stored.
  EXPECT_EQ(Index(q->pop()), 0u);
  EXPECT_TRUE(q->push(Fake(RunQueue::kCapacity)));
  EXPECT_FALSE(q->push(Fake(999)));
  EXPECT_EQ(Drain(*q), Iota(1, RunQueue::kCapacity + 1));
}

TEST(RunQueue, WrapsAroundKeepingOrder) {
  // Drive head and tail through many multiples of the capacity with a varying fill level.
  auto q = std::make_unique<RunQueue>();
  std::uint64_t next_in = 0, next_out = 0;
  std::mt19937 rng(1);
  for (int round = 0; round < 20000; ++round) {
    const int pushes = static_cast<int>(rng() % 40);
    for (int i = 0; i < pushes; ++i) {
      if (!q->push(Fake(next_in))) break;
      ++next_in;
    }
    const int pops = static_cast<int>(rng() % 40);
    for (int i = 0; i < pops; ++i) {
      Fiber* f = q->pop();
      if (!f) break;
      ASSERT_EQ(Index(f), next_out);
      ++next_out;
    }
  }
  for (Fiber* f; (f = q->pop());) ASSERT_EQ(Index(f), next_out++);
  EXPECT_EQ(next_out, next_in);
  EXPECT_GT(next_in, 10u * RunQueue::kCapacity);
}

TEST(RunQueue, PopBatchTakesFromHead) {
  auto q = std::make_unique<RunQueue>();
  Fiber* out[RunQueue::kCapacity];
  EXPECT_EQ(q->pop_batch(out, 8), 0u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(q->push(Fake(i)));
  ASSERT_EQ(q->pop_batch(out, 4), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Index(out[i]), static_cast<std::uint64_t>(i));
  ASSERT_EQ(q->pop_batch(out, 100), 6u);  // fewer than asked: all that is there
  for (int i = 0; i < 6; ++i) EXPECT_EQ(Index(out[i]), static_cast<std::uint64_t>(i + 4));
  EXPECT_EQ(q->pop_batch(out, 100), 0u);
  // A full queue gives half of itself (the overflow path).
  for (std::uint32_t i = 0; i < RunQueue::kCapacity; ++i) ASSERT_TRUE(q->push(Fake(i)));
  ASSERT_EQ(q->pop_batch(out, RunQueue::kCapacity / 2), RunQueue::kCapacity / 2);
  EXPECT_EQ(Index(out[0]), 0u);
  EXPECT_EQ(Drain(*q), Iota(RunQueue::kCapacity / 2, RunQueue::kCapacity));
}

TEST(RunQueue, StealTakesHalf) {
  auto victim = std::make_unique<RunQueue>();
  auto thief = std::make_unique<RunQueue>();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(victim->push(Fake(i)));
  std::uint32_t taken = 0;
  Fiber* first = victim->steal_into(*thief, &taken);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(taken, 5u);
  EXPECT_EQ(Index(first), 0u);  // the oldest is returned to run
  EXPECT_EQ(Drain(*thief), Iota(1, 5));
  EXPECT_EQ(Drain(*victim), Iota(5, 10));
}

TEST(RunQueue, StealRoundsUpAndTakesTheLastOne) {
  auto victim = std::make_unique<RunQueue>();
  auto thief = std::make_unique<RunQueue>();
  std::uint32_t taken = 0;
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(victim->push(Fake(i)));
  ASSERT_NE(victim->steal_into(*thief, &taken), nullptr);
  EXPECT_EQ(taken, 4u);  // 7 - 7/2
  EXPECT_EQ(Drain(*thief), Iota(1, 4));
  EXPECT_EQ(victim->size_hint(), 3u);
  Drain(*victim);
  ASSERT_TRUE(victim->push(Fake(42)));
  Fiber* f = victim->steal_into(*thief, &taken);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(Index(f), 42u);
  EXPECT_EQ(taken, 1u);
  EXPECT_TRUE(thief->empty_hint());
  EXPECT_TRUE(victim->empty_hint());
  EXPECT_EQ(victim->steal_into(*thief, &taken), nullptr);
  EXPECT_EQ(taken, 0u);
}

TEST(RunQueue, StealFromFullQueueTakesHalf) {
  auto victim = std::make_unique<RunQueue>();
  auto thief = std::make_unique<RunQueue>();
  for (std::uint32_t i = 0; i < RunQueue::kCapacity; ++i) ASSERT_TRUE(victim->push(Fake(i)));
  std::uint32_t taken = 0;
  Fiber* f = victim->steal_into(*thief, &taken);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(taken, RunQueue::kCapacity / 2);
  EXPECT_EQ(thief->size_hint(), RunQueue::kCapacity / 2 - 1);
  EXPECT_EQ(victim->size_hint(), RunQueue::kCapacity / 2);
  // The victim's holder can refill the freed half.
  for (std::uint32_t i = 0; i < RunQueue::kCapacity / 2; ++i)
    ASSERT_TRUE(victim->push(Fake(1000 + i)));
  EXPECT_FALSE(victim->push(Fake(9999)));
}

// The owner pushes and pops while thieves steal into their own queues (and drain them, as a
// core runs what it stole). Every item must come out exactly once.
void OwnerVersusThieves(int thieves) {
  const std::uint64_t kItems = 1'000'000 / kScale;
  auto owner_q = std::make_unique<RunQueue>();
  std::vector<std::unique_ptr<RunQueue>> thief_q;
  for (int i = 0; i < thieves; ++i) thief_q.push_back(std::make_unique<RunQueue>());
  std::vector<std::atomic<std::uint8_t>> seen(kItems);
  std::atomic<bool> owner_done{false};
  std::atomic<int> thieves_started{0};
  std::atomic<std::uint64_t> stolen{0}, steal_ops{0};
  auto see = [&](Fiber* f) {
    const std::uint64_t i = Index(f);
    ASSERT_LT(i, kItems);
    seen[i].fetch_add(1, std::memory_order_relaxed);
  };
  std::vector<std::thread> ts;
  for (int t = 0; t < thieves; ++t) {
    ts.emplace_back([&, t] {
      RunQueue& mine = *thief_q[t];
      thieves_started.fetch_add(1);
      for (;;) {
        const bool done = owner_done.load(std::memory_order_acquire);
        std::uint32_t taken = 0;
        if (Fiber* f = owner_q->steal_into(mine, &taken)) {
          see(f);
          while (Fiber* g = mine.pop()) see(g);
          stolen.fetch_add(taken, std::memory_order_relaxed);
          steal_ops.fetch_add(1, std::memory_order_relaxed);
        } else if (done) {
          return;  // the owner had drained its queue before `done`: nothing can appear
        }
      }
    });
  }
  while (thieves_started.load() != thieves) std::this_thread::yield();
  std::mt19937 rng(7);
  for (std::uint64_t i = 0; i < kItems; ++i) {
    while (!owner_q->push(Fake(i))) {
      if (Fiber* f = owner_q->pop()) see(f);
    }
    switch (rng() % 8) {
      case 0:
        if (Fiber* f = owner_q->pop()) see(f);
        break;
      case 1: {
        Fiber* out[16];
        const std::uint32_t n = owner_q->pop_batch(out, 1 + rng() % 16);
        for (std::uint32_t k = 0; k < n; ++k) see(out[k]);
        break;
      }
      default:
        break;
    }
  }
  while (Fiber* f = owner_q->pop()) see(f);
  owner_done.store(true, std::memory_order_release);
  for (auto& t : ts) t.join();
  std::uint64_t missing = 0, duplicated = 0;
  for (std::uint64_t i = 0; i < kItems; ++i) {
    const auto n = seen[i].load();
    missing += (n == 0);
    duplicated += (n > 1);
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
  // Not a pass criterion by itself, but the test is meaningless if no steal ever raced.
  EXPECT_GT(steal_ops.load(), 0u);
  ::testing::Test::RecordProperty("stolen", static_cast<int>(stolen.load()));
}

TEST(RunQueue, ConcurrentOwnerAndThiefSeeEachItemOnce) { OwnerVersusThieves(1); }
TEST(RunQueue, ConcurrentOwnerAndTwoThievesSeeEachItemOnce) { OwnerVersusThieves(2); }

// ------------------------------------------------------------------------------- InjectQueue

std::vector<Fiber*> ChainToVector(Fiber* first, std::size_t n) {
  std::vector<Fiber*> v;
  for (Fiber* f = first; f && v.size() <= n; f = f->next) v.push_back(f);
  return v;
}

TEST(InjectQueue, PushPopIsFifo) {
  std::vector<Fiber> fibers(5);
  InjectQueue q;
  std::size_t n = 99;
  EXPECT_EQ(q.pop_batch(10, &n), nullptr);
  EXPECT_EQ(n, 0u);
  for (auto& f : fibers) q.push(&f);
  EXPECT_EQ(q.size(), 5u);
  Fiber* first = q.pop_batch(3, &n);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(ChainToVector(first, n), (std::vector<Fiber*>{&fibers[0], &fibers[1], &fibers[2]}));
  EXPECT_EQ(fibers[2].next, nullptr);  // the returned chain is terminated
  EXPECT_EQ(q.size(), 2u);
  first = q.pop_batch(10, &n);
  ASSERT_EQ(n, 2u);
  EXPECT_EQ(ChainToVector(first, n), (std::vector<Fiber*>{&fibers[3], &fibers[4]}));
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.pop_batch(10, &n), nullptr);
  // Reusable after it ran empty (tail reset).
  q.push(&fibers[1]);
  first = q.pop_batch(10, &n);
  EXPECT_EQ(first, &fibers[1]);
  EXPECT_EQ(n, 1u);
}

TEST(InjectQueue, ChainsAppendInOrder) {
  std::vector<Fiber> fibers(6);
  InjectQueue q;
  fibers[0].next = &fibers[1];
  fibers[1].next = &fibers[2];
  fibers[2].next = &fibers[5];  // garbage past `last`: push_chain must terminate the chain
  q.push_chain(&fibers[0], &fibers[2], 3);
  fibers[3].next = &fibers[4];
  q.push_chain(&fibers[3], &fibers[4], 2);
  EXPECT_EQ(q.size(), 5u);
  std::size_t n = 0;
  Fiber* first = q.pop_batch(100, &n);
  ASSERT_EQ(n, 5u);
  EXPECT_EQ(ChainToVector(first, 10),
            (std::vector<Fiber*>{&fibers[0], &fibers[1], &fibers[2], &fibers[3], &fibers[4]}));
}

TEST(InjectQueue, ConcurrentProducersAndConsumersSeeEachFiberOnce) {
  constexpr int kProducers = 3, kConsumers = 2;
  const int kPerProducer = 20000 / kScale;
  const int total = kProducers * kPerProducer;
  std::vector<Fiber> fibers(total);
  std::vector<std::atomic<int>> seen(total);
  InjectQueue q;
  std::atomic<int> consumed{0};
  std::vector<std::thread> ts;
  for (int p = 0; p < kProducers; ++p) {
    ts.emplace_back([&, p] {
      int i = p * kPerProducer;
      const int end = i + kPerProducer;
      std::mt19937 rng(p);
      while (i < end) {
        const int n = std::min<int>(end - i, 1 + rng() % 4);
        for (int k = 0; k < n - 1; ++k) fibers[i + k].next = &fibers[i + k + 1];
        q.push_chain(&fibers[i], &fibers[i + n - 1], n);
        i += n;
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    ts.emplace_back([&] {
      while (consumed.load() < total) {
        std::size_t n = 0;
        Fiber* f = q.pop_batch(7, &n);
        std::size_t walked = 0;
        while (f) {
          Fiber* next = f->next;
          seen[f - fibers.data()].fetch_add(1);
          ++walked;
          f = next;
        }
        EXPECT_EQ(walked, n);
        consumed.fetch_add(static_cast<int>(n));
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(consumed.load(), total);
  EXPECT_EQ(q.size(), 0u);
  for (int i = 0; i < total; ++i) ASSERT_EQ(seen[i].load(), 1) << "fiber " << i;
}

// ------------------------------------------------------------------------------- TimerHeap

TEST(TimerHeap, ExpiresInDeadlineOrder) {
  constexpr int kN = 200;
  std::vector<Fiber> fibers(kN);
  std::vector<int> order(kN);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(3));
  TimerHeap h;
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.next_deadline(), INT64_MAX);
  for (int i : order) {
    fibers[i].timer_gen.store(1);
    h.add(1000 + 10 * i, &fibers[i], 1);  // fiber i is due at 1000 + 10 i
  }
  EXPECT_EQ(h.size(), static_cast<std::size_t>(kN));
  EXPECT_EQ(h.next_deadline(), 1000);
  std::vector<Fiber*> fired;
  // Nothing is due before the first deadline.
  EXPECT_EQ(h.expire(999, [&](Fiber* f) { fired.push_back(f); }), 0u);
  EXPECT_TRUE(fired.empty());
  // Half of them.
  EXPECT_EQ(h.expire(1000 + 10 * (kN / 2 - 1), [&](Fiber* f) { fired.push_back(f); }),
            static_cast<std::size_t>(kN / 2));
  EXPECT_EQ(h.next_deadline(), 1000 + 10 * (kN / 2));
  EXPECT_EQ(h.expire(INT64_MAX - 1, [&](Fiber* f) { fired.push_back(f); }),
            static_cast<std::size_t>(kN / 2));
  ASSERT_EQ(fired.size(), static_cast<std::size_t>(kN));
  for (int i = 0; i < kN; ++i) EXPECT_EQ(fired[i], &fibers[i]) << "position " << i;
  EXPECT_TRUE(h.empty());
}

TEST(TimerHeap, EqualDeadlinesAllFire) {
  std::vector<Fiber> fibers(10);
  TimerHeap h;
  for (auto& f : fibers) h.add(500, &f, 0);
  std::vector<Fiber*> fired;
  EXPECT_EQ(h.expire(500, [&](Fiber* f) { fired.push_back(f); }), 10u);
  std::sort(fired.begin(), fired.end());
  for (std::size_t i = 0; i < fibers.size(); ++i) EXPECT_EQ(fired[i], &fibers[i]);
}

TEST(TimerHeap, StaleGenerationsAreDroppedWithoutFiring) {
  std::vector<Fiber> fibers(3);
  TimerHeap h;
  // Fiber 0 armed twice: the first entry (gen 1) went stale when it re-armed (gen 2).
  h.add(100, &fibers[0], 1);
  h.add(300, &fibers[0], 2);
  fibers[0].timer_gen.store(2);
  // Fiber 1's only entry went stale (it moved on and bumped its generation).
  h.add(200, &fibers[1], 5);
  fibers[1].timer_gen.store(6);
  // Fiber 2 is live.
  h.add(250, &fibers[2], 9);
  fibers[2].timer_gen.store(9);
  std::vector<Fiber*> fired;
  auto fire = [&](Fiber* f) { fired.push_back(f); };
  EXPECT_EQ(h.expire(260, fire), 1u);  // only fiber 2; the stale 100 and 200 are removed
  EXPECT_EQ(fired, std::vector<Fiber*>{&fibers[2]});
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.next_deadline(), 300);
  EXPECT_EQ(h.expire(300, fire), 1u);
  EXPECT_EQ(fired, (std::vector<Fiber*>{&fibers[2], &fibers[0]}));
  EXPECT_TRUE(h.empty());
}

// A server's per-request deadlines: each request arms a far deadline and finishes early, so
// every entry but the newest goes stale long before it surfaces. Compaction keeps the heap
// bounded and drops exactly the stale entries.
TEST(TimerHeap, StaleEntriesWithFarDeadlinesAreCompactedAway) {
  std::vector<Fiber> fibers(8);
  TimerHeap h;
  std::size_t dropped = 0, max_size = 0;
  constexpr int kRequests = 100000;
  for (int i = 0; i < kRequests; ++i) {
    Fiber& f = fibers[i % fibers.size()];
    const std::uint64_t gen = f.timer_gen.load() + 1;  // the fiber's previous wait ended
    f.timer_gen.store(gen);
    dropped += h.add(30'000'000'000LL + i, &f, gen);  // "30 s from now"
    max_size = std::max(max_size, h.size());
  }
  EXPECT_LE(max_size, TimerHeap::kCompactMin) << "stale entries piled up";
  EXPECT_EQ(h.size() + dropped, static_cast<std::size_t>(kRequests)) << "an entry went missing";
  // Only the 8 live entries fire, in deadline order.
  std::vector<Fiber*> fired;
  EXPECT_EQ(h.expire(INT64_MAX - 1, [&](Fiber* f) { fired.push_back(f); }), fibers.size());
  for (std::size_t k = 0; k < fibers.size(); ++k)
    EXPECT_EQ(fired[k], &fibers[(kRequests - fibers.size() + k) % fibers.size()]);
  EXPECT_TRUE(h.empty());
}

TEST(TimerHeap, CompactionKeepsEveryLiveEntry) {
  // 5,000 sleeping fibers, all live: compactions (at 1024, 2048, 4096) must drop nothing.
  constexpr int kN = 5000;
  std::vector<Fiber> fibers(kN);
  TimerHeap h;
  std::size_t dropped = 0;
  for (int i = kN - 1; i >= 0; --i) {
    fibers[i].timer_gen.store(1);
    dropped += h.add(1000 + i, &fibers[i], 1);
  }
  EXPECT_EQ(dropped, 0u);
  EXPECT_EQ(h.size(), static_cast<std::size_t>(kN));
  std::vector<Fiber*> fired;
  EXPECT_EQ(h.expire(INT64_MAX - 1, [&](Fiber* f) { fired.push_back(f); }),
            static_cast<std::size_t>(kN));
  for (int i = 0; i < kN; ++i) ASSERT_EQ(fired[i], &fibers[i]) << "position " << i;
}

// Random arms (re-arming makes a fiber's older entries stale) and expiries against a sorted
// model of the live entries; also checks that every entry is accounted for (added = in the
// heap + dropped by compaction + removed by expiry), the bookkeeping timers_armed relies on.
// Returns how many entries compaction dropped.
std::size_t check_against_model(std::size_t n_fibers, int steps, std::int64_t span,
                                std::int64_t max_advance, unsigned seed) {
  std::vector<Fiber> fibers(n_fibers);
  TimerHeap h;
  std::mt19937 rng(seed);
  std::vector<std::pair<std::int64_t, Fiber*>> model;  // live entries
  std::int64_t now = 0;
  std::size_t added = 0, dropped = 0, expired = 0;
  for (int step = 0; step < steps; ++step) {
    if (rng() % 3 != 0) {
      Fiber* f = &fibers[rng() % fibers.size()];
      const std::uint64_t gen = f->timer_gen.load() + 1;  // re-arm: older entries go stale
      f->timer_gen.store(gen);
      model.erase(std::remove_if(model.begin(), model.end(),
                                 [&](const auto& e) { return e.second == f; }),
                  model.end());
      const std::int64_t d = now + static_cast<std::int64_t>(rng() % span);
      dropped += h.add(d, f, gen);
      ++added;
      model.emplace_back(d, f);
    } else {
      now += static_cast<std::int64_t>(rng() % max_advance);
      std::vector<Fiber*> fired;
      const std::size_t before = h.size();
      h.expire(now, [&](Fiber* f) { fired.push_back(f); });
      expired += before - h.size();
      std::vector<std::pair<std::int64_t, Fiber*>> due;
      for (const auto& e : model)
        if (e.first <= now) due.push_back(e);
      model.erase(std::remove_if(model.begin(), model.end(),
                                 [&](const auto& e) { return e.first <= now; }),
                  model.end());
      std::stable_sort(due.begin(), due.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      EXPECT_EQ(fired.size(), due.size()) << "step " << step;
      if (fired.size() != due.size()) return dropped;
      // Deadline order (ties in any order): compare deadlines position by position.
      for (std::size_t i = 0; i < due.size(); ++i) {
        auto it = std::find_if(due.begin(), due.end(),
                               [&](const auto& e) { return e.second == fired[i]; });
        EXPECT_NE(it, due.end()) << "fired a fiber that was not due (or stale)";
        if (it == due.end()) return dropped;
        EXPECT_EQ(it->first, due[i].first) << "out of deadline order at step " << step;
      }
    }
    EXPECT_EQ(added, h.size() + dropped + expired) << "an entry went unaccounted at step " << step;
    if (added != h.size() + dropped + expired) return dropped;
  }
  return dropped;
}

TEST(TimerHeap, RandomOperationsMatchASortedModel) {
  check_against_model(64, 20000, 1000, 300, 11);  // small heaps: no compaction
}

TEST(TimerHeap, RandomOperationsWithCompactionMatchASortedModel) {
  // 3,000 fibers with deadlines far ahead: the heap passes 1,024 entries many times over, with
  // stale ones among live ones in random order, and shrinks again through expiries.
  const std::size_t dropped = check_against_model(3000, 40000, 2000000, 200, 12);
  EXPECT_GT(dropped, 0u) << "no compaction happened: the test does not exercise it";
}

}  // namespace
}  // namespace upcall::rt
