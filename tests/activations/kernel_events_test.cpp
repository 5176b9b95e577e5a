// The kernel message stream (upcall/kernel_events.hpp) reaches a runtime that asks for it: a
// fiber blocking in read(2) shows up as TASK_BLOCKED (interruptible) and then TASK_WAKEUP for
// its thread, counted in RuntimeStats::kernel_events, and a policy that wants the stream gets
// the same events. Without bpf nothing arrives and the stats say so. Label kernel, serial.
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "upcall/upcall.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;

// Blocks one fiber for ~50 ms in a raw read on a pipe.
void block_in_read(Runtime& rt) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::thread writer([&] {
    std::this_thread::sleep_for(50ms);
    char c = 'x';
    ASSERT_EQ(write(fds[1], &c, 1), 1);
  });
  const ssize_t n = rt.block_on([&] {
    char c = 0;
    return read(fds[0], &c, 1);
  });
  writer.join();
  EXPECT_EQ(n, 1);
  close(fds[0]);
  close(fds[1]);
}

// Waits (generously: the consumer drains every few ms, the machine may be busy) until pred
// holds for the runtime's recent events.
template <class Pred>
bool eventually(Runtime& rt, Pred pred) {
  for (int i = 0; i < 400; ++i) {
    if (pred(rt.recent_kernel_events())) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

bool has_block_then_wakeup(const std::vector<KernelEvent>& ev) {
  for (std::size_t i = 0; i < ev.size(); ++i) {
    if (ev[i].type != KernelEvent::Type::task_blocked || !(ev[i].kernel_state & 1u)) continue;
    for (std::size_t j = i + 1; j < ev.size(); ++j)
      if (ev[j].type == KernelEvent::Type::task_wakeup && ev[j].tid == ev[i].tid &&
          ev[j].time_ns >= ev[i].time_ns && ev[j].core == ev[i].core && ev[i].core == 0)
        return true;
  }
  return false;
}

TEST(KernelEvents, BlockedAndWakeupArriveForABlockingRead) {
  Options o;
  o.cores = 1;
  o.activations = "bpf";
  o.kernel_events = true;
  Runtime rt(o);
  if (rt.config().activations != "bpf") GTEST_SKIP() << "needs the bpf backend (root, BTF)";
  EXPECT_TRUE(rt.stats().kernel_events.consumed);
  block_in_read(rt);
  EXPECT_TRUE(eventually(rt, has_block_then_wakeup))
      << "no TASK_BLOCKED(interruptible) followed by TASK_WAKEUP for core 0";
  const auto st = rt.stats().kernel_events;
  using T = KernelEvent::Type;
  EXPECT_GT(st.by_type[static_cast<int>(T::task_blocked)], 0u);
  EXPECT_GT(st.by_type[static_cast<int>(T::task_wakeup)], 0u);
  EXPECT_GT(st.by_type[static_cast<int>(T::task_on_cpu)], 0u);
  EXPECT_STREQ(to_string(T::task_blocked), "TASK_BLOCKED");
}

class RecordingPolicy final : public Policy {
 public:
  // A plain FIFO over a mutex-guarded deque is enough here; the point is the event feed.
  const char* name() const override { return "recording"; }
  void enqueue(int, TaskRef t, TaskEvent) override {
    std::lock_guard<std::mutex> l(mu_);
    q_.push_back(t);
  }
  TaskRef pick_next(int) override {
    std::lock_guard<std::mutex> l(mu_);
    if (q_.empty()) return {};
    TaskRef t = q_.front();
    q_.erase(q_.begin());
    return t;
  }
  bool wants_kernel_events() const override { return true; }
  void on_kernel_event(const KernelEvent& e) override {
    if (e.type == KernelEvent::Type::task_blocked) blocked.fetch_add(1);
    if (e.type == KernelEvent::Type::task_wakeup) wakeups.fetch_add(1);
  }
  std::atomic<int> blocked{0}, wakeups{0};

 private:
  std::mutex mu_;
  std::vector<TaskRef> q_;
};

TEST(KernelEvents, PolicyThatAsksReceivesThem) {
  auto policy = std::make_shared<RecordingPolicy>();
  Options o;
  o.cores = 1;
  o.activations = "bpf";
  o.policy = policy;  // kernel_events stays false: the policy's wish is enough
  Runtime rt(o);
  if (rt.config().activations != "bpf") GTEST_SKIP() << "needs the bpf backend (root, BTF)";
  block_in_read(rt);
  for (int i = 0; i < 400 && (policy->blocked == 0 || policy->wakeups == 0); ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_GT(policy->blocked.load(), 0);
  EXPECT_GT(policy->wakeups.load(), 0);
  EXPECT_TRUE(rt.stats().kernel_events.consumed);
}

TEST(KernelEvents, NotAskedOrNoStreamMeansNothing) {
  Options o;
  o.cores = 1;
  o.activations = "bpf";
  Runtime plain(o);  // not asked
  block_in_read(plain);
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(plain.stats().kernel_events.consumed);
  EXPECT_TRUE(plain.recent_kernel_events().empty());

  o.activations = "fallback";
  o.kernel_events = true;  // asked, but the fallback has no stream: announced, nothing arrives
  Runtime fb(o);
  EXPECT_FALSE(fb.stats().kernel_events.consumed);
  EXPECT_TRUE(fb.recent_kernel_events().empty());
}

}  // namespace
}  // namespace upcall::test
