// Stress (label stress): the channel invariants of channel_mpmc_test.cpp at sizes that keep
// both cores busy for a while, plus close racing with senders and WaitGroup churn. Every
// message exactly once, in order per (consumer, producer); a send that returned true is
// received, one that returned false is not. At 1 and 2 cores.
#include <atomic>
#include <variant>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "mpmc_check.hpp"
#include "upcall/wait_group.hpp"

namespace upcall::test {
namespace {

using ChannelStress = RuntimeTest;

constexpr std::size_t kCaps[] = {0, 1, 7, 64, Channel<Msg>::kUnbounded};

constexpr int kRounds = 3;

TEST_P(ChannelStress, ManyProducersManyConsumers) {
  for (int round = 0; round < kRounds; ++round)
  for (std::size_t cap : kCaps) {
    MpmcPlan p;
    p.capacity = cap;
    p.producers = 16;
    p.consumers = 8;
    p.messages = 50000;
    ASSERT_TRUE(run_mpmc(rt(), p));
  }
}

TEST_P(ChannelStress, ThreadsAndFibersOnBothSides) {
  for (int round = 0; round < kRounds; ++round)
  for (std::size_t cap : kCaps) {
    MpmcPlan p;
    p.capacity = cap;
    p.producers = 8;
    p.thread_producers = 3;
    p.consumers = 6;
    p.thread_consumers = 2;
    p.messages = 10000;
    ASSERT_TRUE(run_mpmc(rt(), p));
  }
}

TEST_P(ChannelStress, SelectConsumersWithTimeouts) {
  for (int round = 0; round < kRounds; ++round)
  for (std::size_t cap : kCaps) {
    for (Consume c : {Consume::select, Consume::select_timed}) {
      MpmcPlan p;
      p.capacity = cap;
      p.producers = 8;
      p.thread_producers = 1;
      p.consumers = 6;
      p.thread_consumers = 1;
      p.messages = 5000;
      p.consume = c;
      ASSERT_TRUE(run_mpmc(rt(), p));
    }
  }
}

// Selects on both sides: senders choose between a and b with select (half of them with
// timeouts, retrying), receivers choose with select; fibers and threads. Every value once.
TEST_P(ChannelStress, SelectOnBothSides) {
  for (std::size_t cap : {std::size_t{0}, std::size_t{1}, std::size_t{16}}) {
    const Channel<int> a(cap), b(cap);
    constexpr int kSenders = 6, kPer = 20000;
    auto send_all = [&](int s) {
      for (int i = 0; i < kPer; ++i) {
        const int v = s * kPer + i;
        if (s % 2 == 0) {
          auto r = select(on_send(a, v), on_send(b, v));
          ASSERT_TRUE(r.index() == 0 ? std::get<0>(r) : std::get<1>(r));
        } else {
          while (select_for(std::chrono::microseconds(5), on_send(a, v), on_send(b, v)).index() ==
                 2) {
          }
        }
      }
    };
    auto recv_all = [&] {
      std::vector<int> got;
      bool a_open = true, b_open = true;
      const Channel<int> never(0);
      while (a_open || b_open) {
        auto r = select(on_recv(a_open ? a : never), on_recv(b_open ? b : never));
        auto& v = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
        if (v)
          got.push_back(*v);
        else
          (r.index() == 0 ? a_open : b_open) = false;
      }
      return got;
    };
    std::vector<JoinHandle<void>> senders;
    for (int s = 1; s < kSenders; ++s) senders.push_back(rt().spawn([&, s] { send_all(s); }));
    std::thread sender_thread([&] { send_all(0); });
    std::vector<JoinHandle<std::vector<int>>> receivers;
    for (int r = 0; r < 3; ++r) receivers.push_back(rt().spawn(recv_all));
    std::vector<int> thread_got;
    std::thread receiver_thread([&] { thread_got = recv_all(); });
    for (auto& s : senders) s.join();
    sender_thread.join();
    a.close();
    b.close();
    std::vector<int> count(kSenders * kPer, 0);
    for (auto& r : receivers)
      for (int v : r.join()) ++count[v];
    receiver_thread.join();
    for (int v : thread_got) ++count[v];
    int bad = 0;
    for (int c : count) bad += c != 1;
    ASSERT_EQ(bad, 0) << "cap " << cap;
  }
}

// close() racing with senders and receivers: the values whose send returned true are exactly
// the values received.
TEST_P(ChannelStress, CloseRacesWithSends) {
  for (int round = 0; round < 500; ++round) {
    const std::size_t cap = kCaps[round % 5];
    const Channel<int> ch(cap);
    constexpr int kSenders = 4, kPer = 200;
    std::vector<JoinHandle<std::vector<int>>> senders;
    for (int s = 0; s < kSenders; ++s)
      senders.push_back(rt().spawn([&, s] {
        std::vector<int> ok;
        for (int i = 0; i < kPer; ++i)
          if (ch.send(s * kPer + i)) ok.push_back(s * kPer + i);
        return ok;
      }));
    std::vector<JoinHandle<std::vector<int>>> receivers;
    for (int r = 0; r < 3; ++r)
      receivers.push_back(rt().spawn([&] {
        std::vector<int> got;
        for (int v : ch) got.push_back(v);
        return got;
      }));
    auto closer = rt().spawn([&, round] {
      for (int i = 0; i < round % 17; ++i) this_task::yield();
      ch.close();
    });
    std::vector<int> sent(kSenders * kPer, 0), got(kSenders * kPer, 0);
    for (auto& s : senders)
      for (int v : s.join()) ++sent[v];
    closer.join();
    for (auto& r : receivers)
      for (int v : r.join()) ++got[v];
    ASSERT_EQ(sent, got) << "round " << round << " cap " << cap;
  }
}

TEST_P(ChannelStress, WaitGroupChurn) {
  for (int round = 0; round < 200; ++round) {
    auto wg = std::make_unique<WaitGroup>();
    std::atomic<int> n{0};
    wg->add(100);
    for (int i = 0; i < 100; ++i)
      rt().spawn([&, w = wg.get()] {
            n.fetch_add(1, std::memory_order_relaxed);
            w->done();
          })
          .detach();
    wg->wait();
    wg.reset();  // at once: a done() still running must not touch it any more
    ASSERT_EQ(n.load(std::memory_order_relaxed), 100);
  }
}

UPCALL_INSTANTIATE_CORES(ChannelStress);

}  // namespace
}  // namespace upcall::test
