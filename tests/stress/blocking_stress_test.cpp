// upcall::blocking under load on every core: many fibers interleave computation, yields and
// blocking calls (sleeps, pipe reads fed by a plain thread, calls that throw) while CPU-bound
// fibers keep yielding. Every call returns its own value or exception, the runtime accounts for
// every call as a handoff or an in-place run, and the CPU-bound fibers keep progressing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "stress_util.hpp"

namespace upcall::stress {
namespace {

std::uint64_t Handoffs(const RuntimeStats& s) {
  std::uint64_t n = 0;
  for (const auto& c : s.cores) n += c.blocking_handoffs;
  return n;
}

TEST(BlockingStress, UnderLoadOnAllCores) {
  const int kWorkers = 96;
  const int kIters = 400 / (Scale() > 1 ? 4 : 1);
  constexpr int kSpinners = 4;
  Options o;
  o.cores = Cores();
  Runtime rt(std::move(o));
  const auto before = rt.stats();

  // A pipe fed by a plain thread: blocking reads of 8 bytes each.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::atomic<int> reads_wanted{0};
  std::atomic<bool> stop_feeder{false};
  std::thread feeder([&] {
    std::uint64_t seq = 0;
    while (!stop_feeder.load()) {
      if (reads_wanted.load() > 0) {
        reads_wanted.fetch_sub(1);
        ++seq;
        if (::write(fds[1], &seq, sizeof(seq)) != sizeof(seq)) break;
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  });

  std::atomic<std::uint64_t> calls{0}, progress{0}, spins{0};
  // What went wrong, by kind (all must stay 0).
  std::atomic<std::uint64_t> wrong_value{0}, wrong_read{0}, wrong_exception{0}, off_core{0};
  std::atomic<bool> workers_done{false};
  std::vector<JoinHandle<int>> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.push_back(rt.spawn([&, w] {
      std::minstd_rand rng(w);
      int ok = 0;
      for (int i = 0; i < kIters; ++i) {
        volatile std::uint64_t x = 0;
        for (int k = 0; k < 2000; ++k) x = x + k;  // a little CPU
        switch (rng() % 4) {
          case 0: {  // sleep in the kernel, return a value
            const int us = static_cast<int>(rng() % 2000);
            const int v = blocking([&] {
              ::usleep(us);
              return w * 1000 + i;
            });
            if (v != w * 1000 + i) wrong_value.fetch_add(1);
            calls.fetch_add(1);
            break;
          }
          case 1: {  // a pipe read another thread satisfies later
            reads_wanted.fetch_add(1);
            std::uint64_t got = 0;
            const ssize_t n = blocking([&] { return ::read(fds[0], &got, sizeof(got)); });
            if (n != sizeof(got) || got == 0) wrong_read.fetch_add(1);
            calls.fetch_add(1);
            break;
          }
          case 2: {  // an exception across the handoff
            try {
              blocking([&]() -> int {
                ::usleep(static_cast<unsigned>(rng() % 500));
                throw std::runtime_error("e" + std::to_string(i));
              });
              wrong_exception.fetch_add(1);  // not thrown
            } catch (const std::runtime_error& e) {
              if (std::string(e.what()) != "e" + std::to_string(i)) wrong_exception.fetch_add(1);
            }
            calls.fetch_add(1);
            break;
          }
          default:
            this_task::yield();
            break;
        }
        // After every call the fiber is back on a core of this runtime.
        const int core = this_task::core();
        if (core < 0 || core >= Cores()) off_core.fetch_add(1);
        progress.fetch_add(1);
        ++ok;
      }
      return ok;
    }));
  }
  std::vector<JoinHandle<void>> spinners;
  for (int s = 0; s < kSpinners; ++s)
    spinners.push_back(rt.spawn([&] {
      while (!workers_done.load()) {
        spins.fetch_add(1, std::memory_order_relaxed);
        this_task::yield();
      }
    }));

  auto all_workers_done = [&] {
    for (auto& h : workers)
      if (!h.done()) return false;
    return true;
  };
  if (!WaitWithWatchdog(all_workers_done, [&] { return progress.load(); }, 10s, 100s))
    AbortStalled("blocking workers stalled", rt);
  const std::uint64_t spins_during = spins.load();
  workers_done = true;
  for (auto& h : workers) EXPECT_EQ(h.join(), kIters);
  for (auto& h : spinners) h.join();
  stop_feeder = true;
  feeder.join();
  ::close(fds[0]);
  ::close(fds[1]);

  EXPECT_EQ(wrong_value.load(), 0u) << "a blocking call returned another call's value";
  EXPECT_EQ(wrong_read.load(), 0u) << "a pipe read through blocking() failed";
  EXPECT_EQ(wrong_exception.load(), 0u) << "an exception was lost or mixed up";
  EXPECT_EQ(off_core.load(), 0u) << "after blocking() returned, the fiber was not on a core";
  const auto after = rt.stats();
  const std::uint64_t handoffs = Handoffs(after) - Handoffs(before);
  const std::uint64_t inline_runs = after.blocking_inline - before.blocking_inline;
  EXPECT_EQ(handoffs + inline_runs, calls.load())
      << "every blocking call is either a handoff or counted as run in place";
  EXPECT_GT(spins_during, 1000u) << "CPU-bound fibers starved while others blocked";
  std::printf("[ info ] %llu blocking calls: %llu handoffs, %llu in place, %llu threads\n",
              static_cast<unsigned long long>(calls.load()),
              static_cast<unsigned long long>(handoffs),
              static_cast<unsigned long long>(inline_runs),
              static_cast<unsigned long long>(after.threads));
  EXPECT_TRUE(upcall::test::NoLeaks(rt)) << Describe(rt);
}

}  // namespace
}  // namespace upcall::stress
