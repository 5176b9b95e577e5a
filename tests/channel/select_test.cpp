// upcall::select behaviour: ready cases, send cases, closed channels, timeouts (nothing ready,
// nothing left behind), try_select, fairness of the random start, select paired with select,
// a select cannot pair with itself, and the invariant that one select completes one case
// (message totals across two channels). At 1 and 2 cores.
#include <array>
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "upcall/select.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using SelectTest = RuntimeTest;

TEST_P(SelectTest, ReadyRecvCaseFires) {
  const Channel<int> a(1);
  const Channel<std::string> b(1);
  ASSERT_TRUE(b.send("x"));
  auto r = select(on_recv(a), on_recv(b));
  ASSERT_EQ(r.index(), 1u);
  EXPECT_EQ(std::get<1>(r), "x");
  EXPECT_EQ(b.size(), 0u);
}

TEST_P(SelectTest, SendCaseFiresAndValueArrives) {
  const Channel<int> in(1), out(1);
  auto r = select(on_recv(in), on_send(out, 42));
  ASSERT_EQ(r.index(), 1u);
  EXPECT_TRUE(std::get<1>(r));
  EXPECT_EQ(out.recv(), 42);
  EXPECT_EQ(in.size(), 0u);
}

TEST_P(SelectTest, UnfiredSendCaseKeepsItsValue) {
  const Channel<std::unique_ptr<int>> full(1);
  ASSERT_TRUE(full.send(std::make_unique<int>(1)));
  const Channel<int> ready(1);
  ASSERT_TRUE(ready.send(9));
  auto s = on_send(full, std::make_unique<int>(2));
  auto r = select(s, on_recv(ready));
  ASSERT_EQ(r.index(), 1u);
  EXPECT_EQ(std::get<1>(r), 9);
  ASSERT_TRUE(s.value());
  EXPECT_EQ(*s.value(), 2);
}

TEST_P(SelectTest, TimeoutFiresWhenNothingReady) {
  const Channel<int> a(1), b(0);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = select_for(20ms, on_recv(a), on_recv(b));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
  EXPECT_EQ(r.index(), 2u);
  EXPECT_TRUE(std::holds_alternative<SelectTimeout>(r));
  // Its proxies are gone: a value sent now stays in a; a rendezvous send finds no receiver.
  EXPECT_EQ(a.try_send(1), ChannelStatus::ok);
  EXPECT_EQ(a.size(), 1u);
  EXPECT_EQ(b.try_send(1), ChannelStatus::would_block);
  // Same from a fiber.
  rt().block_on([&] {
    auto r2 = select_for(5ms, on_recv(b), on_send(a, 5));  // a is full now
    EXPECT_EQ(r2.index(), 2u);
  });
  EXPECT_EQ(a.recv(), 1);
}

TEST_P(SelectTest, TrySelectDoesNotWait) {
  const Channel<int> a(1), b(1);
  auto r = try_select(on_recv(a), on_recv(b));
  EXPECT_EQ(r.index(), 2u);
  ASSERT_TRUE(a.send(3));
  auto r2 = try_select(on_recv(a), on_recv(b));
  ASSERT_EQ(r2.index(), 0u);
  EXPECT_EQ(std::get<0>(r2), 3);
  // A past deadline behaves as try_select.
  auto r3 = select_until(std::chrono::steady_clock::now() - 1s, on_recv(a));
  EXPECT_EQ(r3.index(), 1u);
}

TEST_P(SelectTest, ClosedChannelIsAlwaysReady) {
  const Channel<int> open(1), closed_r(1), closed_s(1);
  closed_r.close();
  closed_s.close();
  auto r = select(on_recv(open), on_recv(closed_r));
  ASSERT_EQ(r.index(), 1u);
  EXPECT_EQ(std::get<1>(r), std::nullopt);
  auto s = select(on_recv(open), on_send(closed_s, 1));
  ASSERT_EQ(s.index(), 1u);
  EXPECT_FALSE(std::get<1>(s));
}

TEST_P(SelectTest, CloseWakesWaitingSelect) {
  const Channel<int> a(0), b(4);
  auto fiber = rt().spawn([&] {
    auto r = select(on_recv(a), on_recv(b));
    return r.index() == 0 && !std::get<0>(r);
  });
  bool thread_ok = false;
  std::thread t([&] {
    auto r = select_for(1h, on_recv(b), on_recv(a));
    thread_ok = r.index() == 1 && !std::get<1>(r);
  });
  std::this_thread::sleep_for(5ms);
  a.close();
  EXPECT_TRUE(fiber.join());
  t.join();
  EXPECT_TRUE(thread_ok);
}

TEST_P(SelectTest, WakesWhenAnotherContextSends) {
  const Channel<int> a(0), b(0);
  auto waiter = rt().spawn([&] {
    auto r = select(on_recv(a), on_recv(b));
    return r.index() == 1 ? *std::get<1>(r) : -1;
  });
  std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(b.send(77));  // rendezvous: returns once the select took it
  EXPECT_EQ(waiter.join(), 77);
  EXPECT_EQ(a.try_send(1), ChannelStatus::would_block);  // the select's proxy on a is gone
}

TEST_P(SelectTest, FairWhenSeveralAreReady) {
  const auto a = Channel<int>::unbounded();
  const auto b = Channel<int>::unbounded();
  constexpr int kN = 2000;
  for (int i = 0; i < kN; ++i) {
    a.send(i);
    b.send(i);
  }
  std::array<int, 2> hits{0, 0};
  rt().block_on([&] {
    for (int i = 0; i < kN; ++i) ++hits[select(on_recv(a), on_recv(b)).index()];
  });
  // Binomial(2000, 1/2): 600 is 18 standard deviations below the mean.
  EXPECT_GT(hits[0], 600);
  EXPECT_GT(hits[1], 600);
  EXPECT_EQ(a.size() + b.size(), static_cast<std::size_t>(kN));
}

TEST_P(SelectTest, SelectPairsWithSelect) {
  const Channel<int> ch(0), never(0);
  auto sender = rt().spawn([&] { return select(on_send(ch, 5), on_recv(never)).index(); });
  auto receiver = rt().spawn([&] {
    auto r = select(on_recv(never), on_recv(ch));
    return r.index() == 1 ? *std::get<1>(r) : -1;
  });
  EXPECT_EQ(sender.join(), 0u);
  EXPECT_EQ(receiver.join(), 5);
}

TEST_P(SelectTest, CannotPairWithItself) {
  const Channel<int> ch(0);
  auto r = select_for(10ms, on_send(ch, 1), on_recv(ch));
  EXPECT_EQ(r.index(), 2u);
  // With a partner, its send case fires.
  auto partner = rt().spawn([&] { return ch.recv(); });
  auto r2 = select(on_send(ch, 1), on_recv(ch));
  EXPECT_EQ(r2.index(), 0u);
  EXPECT_EQ(partner.join(), 1);
}

TEST_P(SelectTest, SameChannelTwice) {
  const Channel<int> ch(2);
  ASSERT_TRUE(ch.send(1));
  auto r = select(on_recv(ch), on_recv(ch));
  EXPECT_LT(r.index(), 2u);
  EXPECT_EQ(ch.size(), 0u);
  auto waiter = rt().spawn([&] { return select(on_recv(ch), on_recv(ch)).index(); });
  std::this_thread::sleep_for(2ms);
  ASSERT_TRUE(ch.send(2));
  EXPECT_LT(waiter.join(), 2u);
  EXPECT_EQ(ch.size(), 0u);
}

// Timed select sends racing with a polling receiver: a select that reports a timeout must not
// have sent (the sender retries, so a wrong report shows up as a duplicate).
TEST_P(SelectTest, TimeoutRaceDuplicatesNothing) {
  for (std::size_t cap : {std::size_t{0}, std::size_t{1}}) {
    const Channel<int> ch(cap), never(0);
    constexpr int kN = 3000;
    auto sender = rt().spawn([&] {
      for (int i = 0; i < kN; ++i)
        while (select_for(std::chrono::microseconds(1 + i % 8), on_recv(never), on_send(ch, i))
                   .index() == 2) {
        }
      ch.close();
    });
    int received = 0, wrong = 0;
    std::thread receiver([&] {
      for (;;) {
        if (auto v = ch.try_recv()) {
          if (*v != received) ++wrong;
          received = *v + 1;
        } else if (ch.is_closed()) {
          break;
        }
      }
    });
    sender.join();
    receiver.join();
    EXPECT_EQ(wrong, 0) << "cap " << cap;
    EXPECT_EQ(received, kN);
  }
}

// Senders push distinct values into a and b; selecting consumers take from either. If a
// select ever completed two cases, a value would be taken and dropped: the totals would differ.
TEST_P(SelectTest, OneSelectCompletesOneCase) {
  for (std::size_t cap : {std::size_t{0}, std::size_t{2}}) {
    const Channel<int> a(cap), b(cap);
    constexpr int kPerSender = 1500;
    std::vector<JoinHandle<void>> senders;
    for (int s = 0; s < 2; ++s) {
      senders.push_back(rt().spawn([&, s] {
        for (int i = 0; i < kPerSender; ++i) ASSERT_TRUE(a.send(s * kPerSender + i));
      }));
      senders.push_back(rt().spawn([&, s] {
        for (int i = 0; i < kPerSender; ++i) ASSERT_TRUE(b.send(-(s * kPerSender + i) - 1));
      }));
    }
    auto consume = [&](bool timed) {
      std::vector<int> got;
      bool a_open = true, b_open = true;
      while (a_open || b_open) {
        const Channel<int> never(0);
        // A closed channel stays ready: swap it for one that never is.
        const Channel<int>& ca = a_open ? a : never;
        const Channel<int>& cb = b_open ? b : never;
        if (timed) {
          auto r = select_for(std::chrono::microseconds(30), on_recv(ca), on_recv(cb));
          if (r.index() == 2) continue;
          auto& v = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
          if (v) got.push_back(*v); else (r.index() == 0 ? a_open : b_open) = false;
        } else {
          auto r = select(on_recv(ca), on_recv(cb));
          auto& v = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
          if (v) got.push_back(*v); else (r.index() == 0 ? a_open : b_open) = false;
        }
      }
      return got;
    };
    std::vector<JoinHandle<std::vector<int>>> consumers;
    consumers.push_back(rt().spawn([&] { return consume(false); }));
    consumers.push_back(rt().spawn([&] { return consume(true); }));
    std::vector<int> thread_got;
    std::thread t([&] { thread_got = consume(false); });
    for (auto& s : senders) s.join();
    a.close();
    b.close();
    std::vector<int> count(4 * kPerSender, 0);
    auto tally = [&](const std::vector<int>& v) {
      for (int x : v) ++count[x >= 0 ? x : 2 * kPerSender + (-x - 1)];
    };
    for (auto& c : consumers) tally(c.join());
    t.join();
    tally(thread_got);
    int missing = 0, dup = 0;
    for (int c : count) {
      if (c == 0) ++missing;
      if (c > 1) ++dup;
    }
    EXPECT_EQ(missing, 0) << "cap " << cap;
    EXPECT_EQ(dup, 0) << "cap " << cap;
  }
}

UPCALL_INSTANTIATE_CORES(SelectTest);

}  // namespace
}  // namespace upcall::test
