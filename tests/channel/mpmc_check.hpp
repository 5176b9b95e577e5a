// tests/channel/mpmc_check.hpp: the contention workload shared by the unit and stress suites.
// K producers each send M messages {producer, seq} through one channel to L consumers (each a
// fiber or a plain thread, plain `recv`, or a select over the channel and a second channel that
// never becomes ready, with or without timeouts); then the channel is closed. check() verifies
// that every message was received exactly once and that each consumer saw each producer's
// messages in increasing seq order. Owns no test itself.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "upcall/channel.hpp"
#include "upcall/runtime.hpp"
#include "upcall/select.hpp"

namespace upcall::test {

struct Msg {
  std::uint32_t producer;
  std::uint32_t seq;
};

enum class Consume { recv, select, select_timed };

struct MpmcPlan {
  std::size_t capacity = 1;  // Channel capacity: 0 rendezvous, Channel<Msg>::kUnbounded, ...
  int producers = 4;
  int consumers = 3;
  int messages = 1000;          // per producer
  int thread_producers = 0;     // how many of the producers are plain threads (the rest fibers)
  int thread_consumers = 0;     // likewise for consumers
  Consume consume = Consume::recv;
};

inline std::string describe(const MpmcPlan& p) {
  return "capacity=" + std::to_string(p.capacity) + " producers=" + std::to_string(p.producers) +
         " consumers=" + std::to_string(p.consumers) + " messages=" + std::to_string(p.messages) +
         " thread_producers=" + std::to_string(p.thread_producers) +
         " thread_consumers=" + std::to_string(p.thread_consumers) +
         " consume=" + std::to_string(static_cast<int>(p.consume));
}

// Receives from ch until it is closed and drained, as the plan says.
inline void consume_all(const MpmcPlan& p, const Channel<Msg>& ch, std::vector<Msg>& out) {
  if (p.consume == Consume::recv) {
    for (const Msg& m : ch) out.push_back(m);
    return;
  }
  Channel<Msg> never(1);  // never sent to: its case must never fire
  for (;;) {
    if (p.consume == Consume::select) {
      auto r = select(on_recv(never), on_recv(ch));
      EXPECT_EQ(r.index(), 1u);
      if (r.index() != 1) return;
      if (!std::get<1>(r)) return;  // closed and drained
      out.push_back(*std::get<1>(r));
    } else {
      auto r = select_for(std::chrono::microseconds(50), on_recv(never), on_recv(ch));
      EXPECT_NE(r.index(), 0u);
      if (r.index() == 0) return;
      if (r.index() == 2) continue;  // timed out: the race of interest, try again
      if (!std::get<1>(r)) return;
      out.push_back(*std::get<1>(r));
    }
  }
}

// Runs the plan on rt and checks it (gtest expectations; returns false on any failure).
inline bool run_mpmc(Runtime& rt, const MpmcPlan& p) {
  const Channel<Msg> ch(p.capacity);
  std::vector<std::vector<Msg>> got(static_cast<std::size_t>(p.consumers));
  auto produce = [&ch, &p](std::uint32_t id) {
    for (int s = 0; s < p.messages; ++s)
      if (!ch.send(Msg{id, static_cast<std::uint32_t>(s)})) ADD_FAILURE() << "send failed";
  };

  std::vector<JoinHandle<void>> fibers;
  std::vector<std::thread> threads;
  std::vector<JoinHandle<void>> producer_fibers;
  std::vector<std::thread> producer_threads;
  for (int c = 0; c < p.consumers; ++c) {
    auto body = [&, c] { consume_all(p, ch, got[static_cast<std::size_t>(c)]); };
    if (c < p.thread_consumers)
      threads.emplace_back(body);
    else
      fibers.push_back(rt.spawn(body));
  }
  for (int i = 0; i < p.producers; ++i) {
    const auto id = static_cast<std::uint32_t>(i);
    if (i < p.thread_producers)
      producer_threads.emplace_back([&produce, id] { produce(id); });
    else
      producer_fibers.push_back(rt.spawn([&produce, id] { produce(id); }));
  }
  for (auto& h : producer_fibers) h.join();
  for (auto& t : producer_threads) t.join();
  EXPECT_TRUE(ch.close());
  for (auto& h : fibers) h.join();
  for (auto& t : threads) t.join();

  // Exactly once, and in order per (consumer, producer).
  std::vector<std::vector<std::uint8_t>> seen(static_cast<std::size_t>(p.producers),
                                              std::vector<std::uint8_t>(p.messages, 0));
  std::size_t total = 0, dup = 0, bad = 0, disorder = 0;
  for (const auto& v : got) {
    std::vector<std::int64_t> last(static_cast<std::size_t>(p.producers), -1);
    total += v.size();
    for (const Msg& m : v) {
      if (m.producer >= static_cast<std::uint32_t>(p.producers) ||
          m.seq >= static_cast<std::uint32_t>(p.messages)) {
        ++bad;
        continue;
      }
      if (seen[m.producer][m.seq]++) ++dup;
      if (static_cast<std::int64_t>(m.seq) <= last[m.producer]) ++disorder;
      last[m.producer] = m.seq;
    }
  }
  const std::size_t expected = static_cast<std::size_t>(p.producers) * p.messages;
  EXPECT_EQ(total, expected) << describe(p);
  EXPECT_EQ(dup, 0u) << describe(p);
  EXPECT_EQ(bad, 0u) << describe(p);
  EXPECT_EQ(disorder, 0u) << describe(p);
  EXPECT_EQ(ch.size(), 0u);
  return total == expected && dup == 0 && bad == 0 && disorder == 0;
}

}  // namespace upcall::test
