// bpf_glue_test.cpp: kernel tests of the upcall path's BPF glue
// (kernel-glue/bpf_glue.hpp + activation.bpf.c) against the running kernel.
// They own the observable contract: what a registered thread's status word
// and message stream show when it blocks, wakes, is preempted and exits, and
// that nothing leaks for unregistered threads or across fork(). They do not
// measure latency (kernel-glue/tools/block_detect_latency.cpp does) and bound
// only stalls, generously. Needs CAP_BPF+CAP_PERFMON (root); without them,
// or in a stub build, every fixture test skips with explain()'s reason and
// ctest reports the entry as skipped. Label "kernel", run serially.
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "bpf_glue.hpp"

namespace upcall::kglue {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kSlots = 8;
constexpr auto kStallBound = 5s;  // generous: the VM stalls for ms at times

// Allowed CPUs of this process, in order.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(static_cast<std::size_t>(c), &set)) cpus.push_back(c);
  return cpus;
}

int pin_self(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<std::size_t>(cpu), &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : -errno;
}

// Pins the calling thread for a scope, restoring its mask afterwards.
class ScopedPin {
 public:
  explicit ScopedPin(int cpu) {
    CPU_ZERO(&old_);
    sched_getaffinity(0, sizeof(old_), &old_);
    pin_self(cpu);
  }
  ~ScopedPin() { sched_setaffinity(0, sizeof(old_), &old_); }
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;

 private:
  cpu_set_t old_;
};

// Runs `f` at scope exit. Declared after a Worker, it runs before the
// Worker's join, so a failed ASSERT cannot leave the test joining a thread
// that still waits for input.
template <class F>
class Defer {
 public:
  explicit Defer(F f) : f_(std::move(f)) {}
  ~Defer() { f_(); }
  Defer(const Defer&) = delete;
  Defer& operator=(const Defer&) = delete;

 private:
  F f_;
};

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (pipe(fds) == 0) {
      r = fds[0];
      w = fds[1];
    }
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
    close_write();
  }
  // EOF for the reader.
  void close_write() {
    if (w >= 0) ::close(w);
    w = -1;
  }
};

// Polls `pred` until it holds or `bound` passes.
template <class Pred>
bool wait_until(Pred pred, std::chrono::nanoseconds bound = kStallBound) {
  const auto deadline = Clock::now() + bound;
  while (Clock::now() < deadline)
    if (pred()) return true;
  return pred();
}

// Waits for `slot` to reach `state`, leaving the last snapshot in *w.
bool wait_state(BpfGlue& g, std::uint32_t slot, std::uint32_t state, upcall_status_word* w) {
  return wait_until([&] { return g.read_status(slot, w) == 0 && w->state == state; });
}

std::vector<upcall_msg> drain(BpfGlue& g) {
  std::vector<upcall_msg> out;
  for (;;) {
    const int n = g.consume([&](const upcall_msg& m) {
      out.push_back(m);
      return 0;
    });
    if (n <= 0) break;
  }
  return out;
}

std::vector<upcall_msg> for_slot(const std::vector<upcall_msg>& all, std::uint32_t slot) {
  std::vector<upcall_msg> out;
  for (const auto& m : all)
    if (m.slot == slot) out.push_back(m);
  return out;
}

// A thread that publishes its tid, waits for `go` (spinning, so it does not
// block before the test registers it), then runs `body`.
class Worker {
 public:
  template <class Body>
  explicit Worker(int cpu, Body body)
      : thread_([this, cpu, body]() mutable {
          if (cpu >= 0) pin_self(cpu);
          tid_.store(gettid(), std::memory_order_release);
          while (!go_.load(std::memory_order_acquire)) {
          }
          body();
        }) {
    while (tid_.load(std::memory_order_acquire) == 0) {
    }
  }
  ~Worker() { join(); }
  pid_t tid() const { return tid_.load(std::memory_order_acquire); }
  void go() { go_.store(true, std::memory_order_release); }
  void join() {
    go();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<pid_t> tid_{0};
  std::atomic<bool> go_{false};
  std::thread thread_;
};

class BpfGlueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int err = glue_.open(getpid(), kSlots);
    if (err != 0) GTEST_SKIP() << "kernel-glue unavailable: " << glue_.explain(err);
    cpus_ = allowed_cpus();
  }
  // Worker CPU and poller CPU; both -1 on a single-CPU machine.
  bool two_cpus() const { return cpus_.size() >= 2; }
  int worker_cpu() const { return two_cpus() ? cpus_[0] : -1; }
  int poller_cpu() const { return two_cpus() ? cpus_[1] : -1; }

  BpfGlue glue_;
  std::vector<int> cpus_;
};

TEST_F(BpfGlueTest, BlockedInReadThenRunningAfterWrite) {
  if (!two_cpus()) GTEST_SKIP() << "needs 2 CPUs: the poller must not share the worker's CPU";
  ScopedPin pin(poller_cpu());
  Pipe p;
  std::atomic<bool> stop{false};
  std::atomic<ssize_t> got{-2};
  Worker w(worker_cpu(), [&] {
    char c;
    got = read(p.r, &c, 1);
    while (!stop.load(std::memory_order_relaxed)) {
    }
  });
  Defer release([&] {
    stop = true;
    p.close_write();
  });
  ASSERT_EQ(glue_.register_thread(w.tid(), 0), 0);
  w.go();

  upcall_status_word s{};
  ASSERT_TRUE(wait_state(glue_, 0, UPCALL_ST_BLOCKED, &s)) << "last state " << s.state;
  const auto blocked_at = Clock::now();
  EXPECT_EQ(s.prev_state, UPCALL_KSTATE_INTERRUPTIBLE);
  EXPECT_EQ(s.tid, static_cast<std::uint32_t>(w.tid()));
  EXPECT_EQ(s.seq % 2, 0u);
  EXPECT_GT(s.last_switch_ns, 0u);
  EXPECT_EQ(s.cpu, static_cast<std::uint32_t>(worker_cpu()));
  EXPECT_GE(s.nr_blocks, 1u);
  const std::uint32_t blocked_seq = s.seq;

  std::this_thread::sleep_until(blocked_at + 100ms);
  ASSERT_EQ(glue_.read_status(0, &s), 0);
  EXPECT_EQ(s.state, static_cast<std::uint32_t>(UPCALL_ST_BLOCKED)) << "a sleeping reader changed";
  EXPECT_EQ(s.seq, blocked_seq);
  EXPECT_EQ(got.load(), -2);

  ASSERT_EQ(write(p.w, "x", 1), 1);
  ASSERT_TRUE(wait_state(glue_, 0, UPCALL_ST_RUNNING, &s)) << "last state " << s.state;
  EXPECT_GT(s.seq, blocked_seq);
  EXPECT_TRUE(wait_until([&] { return got.load() == 1; }));
  stop = true;
  w.join();
}

// The alerts ring: a block of a thread whose watch asks for it wakes a consumer sleeping in
// wait_alerts (no polling); a block without the watch sends nothing; interrupt_alerts ends a wait.
TEST_F(BpfGlueTest, WatchedBlockWakesTheAlertConsumer) {
  Pipe p;
  std::atomic<int> step{0};
  Worker w(worker_cpu(), [&] {
    char c;
    (void)!read(p.r, &c, 1);  // unwatched block
    while (step.load() != 1) {
    }
    (void)!read(p.r, &c, 1);  // watched block
  });
  Defer release([&] { p.close_write(); });
  ASSERT_EQ(glue_.register_thread(w.tid(), 5), 0);
  w.go();
  upcall_status_word s{};
  ASSERT_TRUE(wait_state(glue_, 5, UPCALL_ST_BLOCKED, &s));
  // Every alert is classified by its kernel timestamp against the moment the watch was set,
  // so an alert for the unwatched block counts as wrong however late it is drained.
  struct Seen {
    std::uint64_t watch_ns = ~0ull;
    int before = 0, watched = 0;
  } seen;
  auto count = [](void* ctx, const upcall_alert& a) {
    auto* n = static_cast<Seen*>(ctx);
    if (a.slot != 5) return;
    if (a.ts_ns < n->watch_ns) {
      ++n->before;
    } else if (a.state == UPCALL_ST_BLOCKED && a.prev_state == UPCALL_KSTATE_INTERRUPTIBLE) {
      ++n->watched;
    }
  };
  EXPECT_EQ(glue_.wait_alerts(0, count, &seen), 0) << "an unwatched block sent an alert";

  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  seen.watch_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + ts.tv_nsec;
  ASSERT_EQ(glue_.set_watch(5, UPCALL_WATCH_BLOCKS), 0);
  ASSERT_EQ(write(p.w, "x", 1), 1);
  ASSERT_TRUE(wait_state(glue_, 5, UPCALL_ST_RUNNING, &s));
  step = 1;
  // Sleeps until the kernel wakes us: a generous 5 s timeout only bounds a failure.
  const auto t0 = Clock::now();
  int r = 0;
  while (seen.watched == 0 && Clock::now() - t0 < 5s &&
         (r = glue_.wait_alerts(5000, count, &seen)) >= 0) {
  }
  EXPECT_GE(seen.watched, 1) << "no alert for the watched block (last result " << r << ")";
  EXPECT_EQ(seen.before, 0) << "an unwatched block sent an alert";

  std::thread interrupter([&] {
    std::this_thread::sleep_for(20ms);
    glue_.interrupt_alerts();
  });
  EXPECT_EQ(glue_.wait_alerts(5000, count, &seen), -EINTR);
  interrupter.join();
  glue_.set_watch(5, UPCALL_WATCH_NONE);
  ASSERT_EQ(write(p.w, "y", 1), 1);
  w.join();
}

TEST_F(BpfGlueTest, SpinnerSharingItsCpuIsPreemptedNotBlocked) {
  if (!two_cpus()) GTEST_SKIP() << "needs 2 CPUs: the poller must not share the spinners' CPU";
  ScopedPin pin(poller_cpu());
  std::atomic<bool> stop{false};
  auto spin = [&] {
    while (!stop.load(std::memory_order_relaxed)) {
    }
  };
  Worker a(worker_cpu(), spin);
  Worker b(worker_cpu(), spin);
  Defer release([&] { stop = true; });
  ASSERT_EQ(glue_.register_thread(a.tid(), 1), 0);
  a.go();
  b.go();

  upcall_status_word s{};
  const bool preempted = wait_state(glue_, 1, UPCALL_ST_PREEMPTED, &s);
  // Observe for a while longer, then sample before stopping (exit is not
  // part of this behaviour).
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(glue_.read_status(1, &s), 0);
  const auto msgs = for_slot(drain(glue_), 1);
  stop = true;
  a.join();
  b.join();

  EXPECT_TRUE(preempted);
  EXPECT_GT(s.nr_preempts, 0u);
  EXPECT_EQ(s.nr_blocks, 0u);
  int preempts = 0, blocks = 0;
  for (const auto& m : msgs) {
    preempts += m.type == UPCALL_MSG_TASK_PREEMPT;
    blocks += m.type == UPCALL_MSG_TASK_BLOCKED;
  }
  EXPECT_GT(preempts, 0);
  EXPECT_EQ(blocks, 0);
}

TEST_F(BpfGlueTest, RingDeliversBlockedWakeupOnCpuInSeqOrder) {
  if (!two_cpus()) GTEST_SKIP() << "needs 2 CPUs to pin the waker apart from the worker";
  ScopedPin pin(poller_cpu());
  Pipe p;
  Worker w(worker_cpu(), [&] {
    char c;
    (void)!read(p.r, &c, 1);
  });
  Defer release([&] { p.close_write(); });
  const pid_t tid = w.tid();
  ASSERT_EQ(glue_.register_thread(tid, 2), 0);
  w.go();
  upcall_status_word s{};
  ASSERT_TRUE(wait_state(glue_, 2, UPCALL_ST_BLOCKED, &s));
  std::this_thread::sleep_for(10ms);
  ASSERT_EQ(write(p.w, "x", 1), 1);
  w.join();
  // The joiner is released in exit_mm(), before sched_process_exit fires.
  ASSERT_TRUE(wait_state(glue_, 2, UPCALL_ST_DEAD, &s));

  const auto msgs = for_slot(drain(glue_), 2);
  ASSERT_FALSE(msgs.empty());
  Counters c{};
  ASSERT_EQ(glue_.read_counters(&c), 0);
  EXPECT_EQ(c.msg_drops, 0u);
  EXPECT_EQ(c.seq_collisions, 0u);
  EXPECT_EQ(msgs.front().type, UPCALL_MSG_TASK_NEW);
  EXPECT_EQ(msgs.back().type, UPCALL_MSG_TASK_DEAD);
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    EXPECT_EQ(msgs[i].version, UPCALL_ABI_VERSION);
    EXPECT_EQ(msgs[i].tid, static_cast<std::uint32_t>(tid));
    EXPECT_EQ(msgs[i].seq, i + 1) << "per-slot seq must count from 1 without gaps";
    if (i > 0) {
      EXPECT_GE(msgs[i].ts_ns, msgs[i - 1].ts_ns);
    }
  }
  // Ordered subsequence BLOCKED(interruptible) -> WAKEUP(by us) -> ON_CPU.
  std::size_t i = 0;
  while (i < msgs.size() && !(msgs[i].type == UPCALL_MSG_TASK_BLOCKED &&
                              msgs[i].payload.blocked.prev_state == UPCALL_KSTATE_INTERRUPTIBLE))
    ++i;
  ASSERT_LT(i, msgs.size()) << "no TASK_BLOCKED";
  std::size_t j = i + 1;
  while (j < msgs.size() && msgs[j].type != UPCALL_MSG_TASK_WAKEUP) ++j;
  ASSERT_LT(j, msgs.size()) << "no TASK_WAKEUP after TASK_BLOCKED";
  EXPECT_EQ(msgs[j].payload.wakeup.waker_tid, static_cast<std::uint32_t>(gettid()));
  EXPECT_EQ(msgs[j].payload.wakeup.waker_cpu, static_cast<std::uint32_t>(poller_cpu()));
  EXPECT_EQ(msgs[j].payload.wakeup.target_cpu, static_cast<std::uint32_t>(worker_cpu()));
  std::size_t k = j + 1;
  while (k < msgs.size() && msgs[k].type != UPCALL_MSG_TASK_ON_CPU) ++k;
  ASSERT_LT(k, msgs.size()) << "no TASK_ON_CPU after TASK_WAKEUP";
  EXPECT_EQ(msgs[k].cpu, static_cast<std::uint32_t>(worker_cpu()));
}

TEST_F(BpfGlueTest, UnregisteredThreadsProduceNothing) {
  // Register and unregister ourselves, then discard what that produced.
  ASSERT_EQ(glue_.register_thread(gettid(), 0), 0);
  ASSERT_EQ(glue_.unregister_thread(gettid()), 0);
  (void)drain(glue_);
  upcall_status_word before{};
  ASSERT_EQ(glue_.read_status(0, &before), 0);
  Counters c0{};
  ASSERT_EQ(glue_.read_counters(&c0), 0);

  // Ping-pong between this thread and an unregistered one: both block and
  // wake 20 times each.
  Pipe ping, pong;
  Worker echo(-1, [&] {
    char c;
    for (int i = 0; i < 20; ++i) {
      if (read(ping.r, &c, 1) != 1 || write(pong.w, &c, 1) != 1) return;
    }
  });
  Defer release([&] { ping.close_write(); });
  echo.go();
  char c = 'x';
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(write(ping.w, &c, 1), 1);
    ASSERT_EQ(read(pong.r, &c, 1), 1);
  }
  echo.join();

  EXPECT_TRUE(drain(glue_).empty());
  upcall_status_word after{};
  ASSERT_EQ(glue_.read_status(0, &after), 0);
  EXPECT_EQ(after.seq, before.seq);
  Counters c1{};
  ASSERT_EQ(glue_.read_counters(&c1), 0);
  EXPECT_GE(c1.filtered_tid - c0.filtered_tid, 40u) << "our switches reach the tid check";
  EXPECT_EQ(c1.msgs, c0.msgs);
  EXPECT_EQ(c1.handled, c0.handled);
}

TEST_F(BpfGlueTest, OtherProcessesAreFilteredByTgidFirst) {
  Counters c0{};
  ASSERT_EQ(glue_.read_counters(&c0), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (int i = 0; i < 20; ++i) usleep(1000);
    _exit(0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  Counters c1{};
  ASSERT_EQ(glue_.read_counters(&c1), 0);
  EXPECT_GE(c1.filtered_tgid - c0.filtered_tgid, 20u);
  EXPECT_GE(c1.events - c0.events, c1.filtered_tgid - c0.filtered_tgid);
  EXPECT_EQ(c1.seq_collisions, 0u);
}

TEST_F(BpfGlueTest, StatusAreaIsNotInheritedByForkChild) {
  const volatile upcall_status_word* w = glue_.status(0);
  ASSERT_NE(w, nullptr);
  void* page = const_cast<upcall_status_word*>(w);
  unsigned char vec = 0;
  ASSERT_EQ(mincore(page, 1, &vec), 0) << "mapped in the parent";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Async-signal-safe calls only: we forked a multi-threaded process.
    const int r = mincore(page, 1, &vec);
    _exit(r == -1 && errno == ENOMEM ? 0 : 1);
  }
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "MADV_DONTFORK area still mapped in the child";
}

TEST_F(BpfGlueTest, ParkedIntentIsUserOwnedAndReported) {
  Pipe p;
  Worker w(worker_cpu(), [&] {
    char c;
    glue_.set_intent(3, UPCALL_INTENT_PARKED);
    (void)!read(p.r, &c, 1);
  });
  Defer release([&] { p.close_write(); });
  ASSERT_EQ(glue_.register_thread(w.tid(), 3), 0);
  w.go();
  upcall_status_word s{};
  ASSERT_TRUE(wait_until([&] {
    return glue_.read_status(3, &s) == 0 && s.state == UPCALL_ST_BLOCKED &&
           s.prev_state == UPCALL_KSTATE_INTERRUPTIBLE;
  }));
  EXPECT_EQ(s.intent, static_cast<std::uint32_t>(UPCALL_INTENT_PARKED));
  ASSERT_EQ(write(p.w, "x", 1), 1);
  w.join();
  ASSERT_TRUE(wait_state(glue_, 3, UPCALL_ST_DEAD, &s));
  EXPECT_EQ(s.intent, static_cast<std::uint32_t>(UPCALL_INTENT_PARKED)) << "BPF wrote intent";
  bool reported = false;
  for (const auto& m : for_slot(drain(glue_), 3))
    if (m.type == UPCALL_MSG_TASK_BLOCKED &&
        m.payload.blocked.prev_state == UPCALL_KSTATE_INTERRUPTIBLE)
      reported = m.payload.blocked.intent == UPCALL_INTENT_PARKED;
  EXPECT_TRUE(reported);
}

TEST_F(BpfGlueTest, ExitMarksDeadAndDropsTheMapping) {
  Worker w(-1, [] {});
  const pid_t tid = w.tid();
  ASSERT_EQ(glue_.register_thread(tid, 4), 0);
  w.join();
  upcall_status_word s{};
  ASSERT_TRUE(wait_state(glue_, 4, UPCALL_ST_DEAD, &s));
  EXPECT_EQ(s.tid, static_cast<std::uint32_t>(tid));
  bool dead_msg = false;
  for (const auto& m : for_slot(drain(glue_), 4)) dead_msg |= m.type == UPCALL_MSG_TASK_DEAD;
  EXPECT_TRUE(dead_msg);
  EXPECT_EQ(glue_.unregister_thread(tid), 0) << "exit already dropped the kernel mapping";
  EXPECT_EQ(glue_.unregister_thread(tid), -ENOENT);
  EXPECT_EQ(glue_.register_thread(gettid(), 4), 0) << "slot is free again";
  ASSERT_EQ(glue_.read_status(4, &s), 0);
  EXPECT_EQ(s.state, static_cast<std::uint32_t>(UPCALL_ST_RUNNING)) << "self-registration";
  EXPECT_EQ(glue_.unregister_thread(gettid()), 0);
}

TEST_F(BpfGlueTest, RegistrationRejectsBadArguments) {
  EXPECT_EQ(glue_.register_thread(gettid(), kSlots), -EINVAL);
  EXPECT_EQ(glue_.register_thread(0, 0), -EINVAL);
  EXPECT_EQ(glue_.register_thread(getppid(), 0), -ESRCH) << "not a thread of ours";
  ASSERT_EQ(glue_.register_thread(gettid(), 0), 0);
  EXPECT_EQ(glue_.register_thread(gettid(), 1), -EEXIST);
  {
    Worker other(-1, [] {});
    EXPECT_EQ(glue_.register_thread(other.tid(), 0), -EBUSY);
  }
  EXPECT_EQ(glue_.unregister_thread(getppid()), -ENOENT);
  EXPECT_EQ(glue_.set_intent(kSlots, 1), -EINVAL);
  EXPECT_EQ(glue_.status(kSlots), nullptr);
  EXPECT_EQ(glue_.open(getpid(), kSlots), -EBUSY);
  EXPECT_TRUE(glue_.is_open()) << "a second open must not close the first";
  EXPECT_EQ(glue_.unregister_thread(gettid()), 0);
}

// Runs a consumer sleeping in poll(timeout) while a registered thread starts
// blocking; returns what that poll() returned and how long it took.
struct PollResult {
  int n = -1;
  bool saw_blocked_or_new = false;
  Clock::duration elapsed{};
};
PollResult poll_while_a_thread_blocks(BpfGlue& g, int timeout_ms) {
  PollResult res;
  Pipe p;
  std::thread consumer([&] {
    const auto t0 = Clock::now();
    res.n = g.poll(timeout_ms, [&](const upcall_msg& m) {
      res.saw_blocked_or_new |=
          m.type == UPCALL_MSG_TASK_BLOCKED || m.type == UPCALL_MSG_TASK_NEW;
      return 0;
    });
    res.elapsed = Clock::now() - t0;
  });
  // Ordering aid only: the consumer is very likely asleep in epoll_wait by
  // now. If not, the records are already there when it looks, and the
  // assertions below hold as well.
  std::this_thread::sleep_for(100ms);
  {
    Worker w(-1, [&] {
      char c;
      (void)!read(p.r, &c, 1);
    });
    Defer release([&] { p.close_write(); });
    if (g.register_thread(w.tid(), 0) == 0) w.go();
    consumer.join();
  }
  return res;
}

// Default (UPCALL_RING_WAKE_NONE): nothing wakes the consumer, and poll()
// still hands over what arrived while it slept once its timeout passes.
TEST_F(BpfGlueTest, PollDeliversRecordsThatDidNotWakeIt) {
  const PollResult r = poll_while_a_thread_blocks(glue_, 300);
  EXPECT_GT(r.n, 0);
  EXPECT_TRUE(r.saw_blocked_or_new);
}

// UPCALL_RING_WAKE_BLOCKING: a consumer asleep with a 10 s timeout is woken
// by the thread's first records (bound generous: 5 s).
TEST(BpfGlueWakeup, BlockingModeWakesASleepingConsumer) {
  BpfGlue g;
  Options o;
  o.ring_wakeup = UPCALL_RING_WAKE_BLOCKING;
  const int err = g.open(getpid(), 2, o);
  if (err != 0) GTEST_SKIP() << "kernel-glue unavailable: " << g.explain(err);
  const PollResult r = poll_while_a_thread_blocks(g, 10000);
  EXPECT_GT(r.n, 0);
  EXPECT_TRUE(r.saw_blocked_or_new);
  EXPECT_LT(r.elapsed, 5s) << "the consumer slept until its timeout: no wakeup";
}

TEST(BpfGlueExplain, ClosedObjectAndBadArguments) {
  BpfGlue g;
  EXPECT_EQ(g.status(0), nullptr);
  EXPECT_EQ(g.register_thread(gettid(), 0), -ENODEV);
  const int err = g.open(-1, 4);
  if (err == -ENOSYS) {
    EXPECT_NE(std::strstr(g.explain(err), "not built"), nullptr) << g.explain(err);
    return;
  }
  EXPECT_EQ(err, -EINVAL);
  EXPECT_EQ(g.stage(), Stage::kArgs);
  EXPECT_NE(std::strstr(g.explain(err), "pid"), nullptr) << g.explain(err);
  EXPECT_FALSE(g.is_open());
}

// Drops every capability in a forked child and checks that open() fails
// with EPERM and explain() names the missing privileges.
TEST(BpfGlueExplain, WithoutCapabilitiesNamesThem) {
#if !UPCALL_HAVE_BPF
  GTEST_SKIP() << "kernel-glue unavailable: stub build";
#else
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capset, &hdr, data) != 0) _exit(2);
    BpfGlue g;
    const int err = g.open(getpid(), 4);
    if (err == -EPERM && std::strstr(g.explain(err), "CAP_BPF+CAP_PERFMON")) _exit(0);
    fprintf(stderr, "open() = %d: %s\n", err, g.explain(err));
    _exit(1);
  }
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st));
  if (WEXITSTATUS(st) == 2) GTEST_SKIP() << "capset failed; cannot drop capabilities here";
  EXPECT_EQ(WEXITSTATUS(st), 0);
#endif
}

}  // namespace
}  // namespace upcall::kglue
