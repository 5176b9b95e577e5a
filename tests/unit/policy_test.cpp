// Custom scheduling policies (upcall/policy.hpp): a global priority queue guarded by a mutex,
// chaining ready tasks through TaskRef::link(), receives the ghOSt-style events (task_new,
// task_wakeup, task_yield, blocked, dead), and its pick_next decides what runs: every task
// completes, higher priorities run first, on_dead comes once per fiber, and work handed to the
// policy from outside a core is not lost while cores are idle.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fixture.hpp"
#include "runtime/sync/parker.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

template <class Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Highest priority first, FIFO within a priority. Ready tasks are chained through their
// intrusive link (no allocation per task; one map node per distinct priority).
class PriorityPolicy final : public Policy {
 public:
  const char* name() const override { return "prio-test"; }
  void init(int num_cores) override { init_cores = num_cores; }

  void enqueue(int core, TaskRef t, TaskEvent why) override {
    if (core < -1 || core >= init_cores) bad_core.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    events[static_cast<int>(why)]++;
    t.link() = TaskRef();
    Bucket& b = buckets_[t.priority()];
    if (b.tail)
      b.tail.link() = t;
    else
      b.head = t;
    b.tail = t;
    ++ready_;
  }

  TaskRef pick_next(int core) override {
    if (core < 0 || core >= init_cores) bad_core.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = buckets_.rbegin(); it != buckets_.rend(); ++it) {
      Bucket& b = it->second;
      if (!b.head) continue;
      TaskRef t = b.head;
      b.head = t.link();
      if (!b.head) b.tail = TaskRef();
      t.link() = TaskRef();
      --ready_;
      picks.fetch_add(1);
      return t;
    }
    return {};
  }

  TaskRef steal(int thief) override {
    (void)thief;
    steal_calls.fetch_add(1);
    return {};  // one global queue: pick_next already looked at everything
  }

  void on_blocked(int core, TaskRef t) override {
    (void)t;
    if (core < 0 || core >= init_cores) bad_core.fetch_add(1);
    blocked.fetch_add(1);
  }

  void on_dead(int core, TaskRef t) override {
    if (core < 0 || core >= init_cores) bad_core.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    dead[t.id()]++;
  }

  std::uint64_t event_count(TaskEvent e) {
    std::lock_guard<std::mutex> lock(mu_);
    return events[static_cast<int>(e)];
  }
  std::unordered_map<std::uint64_t, int> dead_snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return dead;
  }
  std::uint64_t ready() {
    std::lock_guard<std::mutex> lock(mu_);
    return ready_;
  }

  int init_cores = -100;
  std::atomic<int> bad_core{0};
  std::atomic<std::uint64_t> blocked{0}, steal_calls{0};
  std::atomic<std::uint64_t> picks{0};

 private:
  struct Bucket {
    TaskRef head, tail;
  };
  std::mutex mu_;
  std::map<int, Bucket> buckets_;                  // guarded by mu_
  std::uint64_t ready_ = 0;                        // guarded by mu_
  std::array<std::uint64_t, 5> events{};           // guarded by mu_, by TaskEvent
  std::unordered_map<std::uint64_t, int> dead;     // guarded by mu_
};

// Context switches so far, summed over cores: moves whenever any fiber runs.
std::uint64_t Switches(const Runtime& rt) {
  std::uint64_t n = 0;
  for (const auto& c : rt.stats().cores) n += c.switches;
  return n;
}

// Joins from a plain thread. With a custom policy, a task handed over from a plain thread while
// the cores spin could sit in the policy with every core asleep (the lost wake-up that
// PolicyOneCore.SpawnFromThreadWhileCoreSpinsIsNotLost pins down). So that such a bug fails the
// tests instead of hanging them: when the runtime makes no progress at all (no context switch)
// for 2 s while the join waits, the join is rescued by spawning no-op tasks (a spawn into parked
// cores wakes one) and the rescue is counted in *kicks, which the tests report as a failure.
template <class T>
T JoinKicking(Runtime& rt, JoinHandle<T>& h, int* kicks) {
  std::uint64_t last = Switches(rt);
  auto last_move = Clock::now();
  while (!h.done()) {
    std::this_thread::sleep_for(1ms);
    const std::uint64_t now_switches = Switches(rt);
    if (now_switches != last) {
      last = now_switches;
      last_move = Clock::now();
    } else if (Clock::now() - last_move > 2s) {
      rt.spawn([] {}).detach();
      ++*kicks;
      last_move = Clock::now() - 2s + 10ms;  // kick again in 10 ms unless something runs
    }
  }
  return h.join();
}

class PolicyTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    policy_ = std::make_shared<PriorityPolicy>();
    Options o;
    o.cores = GetParam();
    o.policy = policy_;
    rt_ = std::make_unique<Runtime>(std::move(o));
  }
  void TearDown() override {
    EXPECT_EQ(kicks_, 0) << "a task handed to the policy from a plain thread sat there, with the "
                            "cores asleep, until another spawn woke a core";
    EXPECT_TRUE(NoLeaks(*rt_));
    rt_.reset();
    EXPECT_EQ(policy_->bad_core.load(), 0) << "a core index out of range reached the policy";
    EXPECT_EQ(policy_->ready(), 0u) << "tasks left in the policy's queue";
  }
  Runtime& rt() { return *rt_; }
  PriorityPolicy& policy() { return *policy_; }
  template <class T>
  T join(JoinHandle<T>& h) {
    return JoinKicking(*rt_, h, &kicks_);
  }
  int kicks_ = 0;
  std::shared_ptr<PriorityPolicy> policy_;
  std::unique_ptr<Runtime> rt_;
};

using Policy = PolicyTest;

TEST_P(Policy, IsNamedInTheConfigAndInitialised) {
  EXPECT_EQ(rt().config().policy, "prio-test");
  EXPECT_EQ(policy().init_cores, GetParam());
}

TEST_P(Policy, AllTasksCompleteThroughThePolicy) {
  constexpr int kOuter = 200, kInner = 10;
  std::atomic<int> ran{0};
  std::vector<JoinHandle<int>> hs;
  for (int i = 0; i < kOuter; ++i) {
    hs.push_back(rt().spawn(
        [&, i] {
          std::vector<JoinHandle<int>> kids;
          for (int k = 0; k < kInner; ++k)
            kids.push_back(spawn([&, k] {
              ran.fetch_add(1);
              return k;
            }, SpawnOptions{"kid", k % 3}));
          int sum = 0;
          for (auto& kid : kids) sum += kid.join();
          ran.fetch_add(1);
          return sum + i;
        },
        SpawnOptions{"outer", i % 5}));
  }
  long total = 0;
  for (auto& h : hs) total += join(h);
  EXPECT_EQ(ran.load(), kOuter * (kInner + 1));
  EXPECT_EQ(total, kOuter * 45L + (kOuter - 1) * kOuter / 2);
  const std::uint64_t n = kOuter * (kInner + 1);
  EXPECT_GE(policy().event_count(TaskEvent::task_new), n);
  // Every task that ran was picked through the policy.
  EXPECT_GE(policy().picks.load(), n);
  EXPECT_EQ(policy().event_count(TaskEvent::task_dead), 0u) << "dead is a notification";
}

TEST_P(Policy, YieldsWakeupsAndBlocksAreReported) {
  // More yielders than cores, so a yield always finds another ready task (a yield with nothing
  // else ready keeps running and is no event).
  // They start together (all spawned) before they count their yields.
  const int yielders = 2 * GetParam() + 1;
  std::atomic<int> started{0};
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < yielders; ++i)
    hs.push_back(rt().spawn([&] {
      started.fetch_add(1);
      while (started.load() < yielders) this_task::yield();
      for (int k = 0; k < 100; ++k) this_task::yield();
    }));
  hs.push_back(rt().spawn([] { this_task::sleep_for(2ms); }));  // blocked + wakeup (timer)
  hs.push_back(rt().spawn([&] {
    auto child = spawn([] { this_task::sleep_for(2ms); });
    child.join();  // blocked + wakeup (join)
  }));
  for (auto& h : hs) join(h);
  EXPECT_GT(policy().event_count(TaskEvent::task_yield), 0u);
  EXPECT_GE(policy().event_count(TaskEvent::task_wakeup), 2u);
  EXPECT_GE(policy().blocked.load(), 2u);
}

TEST_P(Policy, OnDeadOncePerFiber) {
  constexpr int kN = 500;
  std::set<std::uint64_t> ids;
  std::vector<JoinHandle<void>> hs;
  for (int i = 0; i < kN; ++i) {
    hs.push_back(rt().spawn([] { this_task::yield(); }));
    ids.insert(hs.back().id());
  }
  for (auto& h : hs) join(h);
  ASSERT_EQ(ids.size(), static_cast<std::size_t>(kN));
  // The last on_dead may land just after join returned (the fiber wakes its joiner first).
  ASSERT_TRUE(WaitFor([&] {
    const auto dead = policy().dead_snapshot();
    return std::all_of(ids.begin(), ids.end(), [&](auto id) { return dead.count(id) != 0; });
  }, 5s));
  const auto dead = policy().dead_snapshot();
  for (std::uint64_t id : ids) EXPECT_EQ(dead.at(id), 1) << "fiber " << id;
  for (const auto& [id, n] : dead) EXPECT_EQ(n, 1) << "fiber " << id;
}

UPCALL_INSTANTIATE_CORES(Policy);

// One core: a fiber that never yields spawns tasks of distinct priorities, so all of them are
// in the policy before the core picks again; they must then run in priority order.
TEST(PolicyOneCore, HigherPriorityRunsFirst) {
  auto pol = std::make_shared<PriorityPolicy>();
  Options o;
  o.cores = 1;
  o.policy = pol;
  Runtime rt(std::move(o));
  constexpr int kN = 20;
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::string> names;
  int kicks = 0;
  auto main_task = rt.spawn(
        [&] {
          std::vector<int> prios(kN);
          std::iota(prios.begin(), prios.end(), 1);
          std::shuffle(prios.begin(), prios.end(), std::mt19937(4));
          std::vector<JoinHandle<void>> hs;
          for (int p : prios)
            hs.push_back(spawn(
                [&, p] {
                  std::lock_guard<std::mutex> lock(mu);
                  order.push_back(p);
                  names.emplace_back(this_task::name());
                },
                SpawnOptions{"prio-task", p}));
          for (auto& h : hs) h.join();
        },
        SpawnOptions{"spawner", -100});
  JoinKicking(rt, main_task, &kicks);
  EXPECT_EQ(kicks, 0) << "the spawner sat in the policy with the core asleep";
  std::vector<int> expected(kN);
  std::iota(expected.rbegin(), expected.rend(), 1);  // kN, kN-1, ..., 1
  EXPECT_EQ(order, expected);
  for (const auto& n : names) EXPECT_EQ(n, "prio-task");
  EXPECT_TRUE(NoLeaks(rt));
}

// Work handed to the policy from a plain thread (Runtime::spawn) while the only core is in the
// spin phase of its idle loop must still run: the spinning core has to look at the policy, or
// the waker must not leave the wake-up to a spinner that cannot see the work.
TEST(PolicyOneCore, SpawnFromThreadWhileCoreSpinsIsNotLost) {
  auto pol = std::make_shared<PriorityPolicy>();
  Options o;
  o.cores = 1;
  o.policy = pol;
  o.idle = "spin:200000";  // 200 ms of spinning after each burst of work: a wide window
  Runtime rt(std::move(o));
  int lost = 0;
  for (int round = 0; round < 3; ++round) {
    // Right after construction / the previous round, the core is spinning.
    auto h = rt.spawn([] { return 1; });
    if (!WaitFor([&] { return h.done(); }, 2s)) {
      ++lost;
      // Rescue so the test ends: the core parked by now, and a spawn into a parked core wakes it.
      while (!h.done()) {
        rt.spawn([] {}).detach();
        std::this_thread::sleep_for(10ms);
      }
    }
    EXPECT_EQ(h.join(), 1);
  }
  EXPECT_EQ(lost, 0) << lost << " of 3 spawns sat in the policy while the idle core spun "
                     << "past them and parked";
  EXPECT_TRUE(NoLeaks(rt));
}

// As Sleep.SleeperWakesWhileOthersKeepYielding, with a custom policy: while pick_next always
// has a task, timers must still be expired.
TEST(PolicyOneCore, SleeperWakesWhileOthersKeepYielding) {
  auto pol = std::make_shared<PriorityPolicy>();
  Options o;
  o.cores = 1;
  o.policy = pol;
  Runtime rt(std::move(o));
  std::atomic<bool> woke{false};
  std::atomic<int> gave_up{0};
  auto yielder = [&] {
    const auto give_up = Clock::now() + 5s;
    while (!woke.load()) {
      if (Clock::now() > give_up) {
        gave_up.fetch_add(1);
        return;
      }
      this_task::yield();
    }
  };
  auto sleeper = rt.spawn([&] {
    this_task::sleep_for(20ms);
    woke = true;
  });
  auto y1 = rt.spawn(yielder);
  auto y2 = rt.spawn(yielder);
  int kicks = 0;
  JoinKicking(rt, y1, &kicks);
  JoinKicking(rt, y2, &kicks);
  JoinKicking(rt, sleeper, &kicks);
  EXPECT_EQ(gave_up.load(), 0) << "the sleeper starved: timers never expired while the policy "
                                  "always had a task to pick";
  EXPECT_TRUE(NoLeaks(rt));
}

// A FIFO policy that checks the event stream of every task against its life cycle: new ->
// picked -> (yield -> picked | blocked -> wakeup -> picked)* -> dead. A wakeup may also come
// for a running task (its park was cut short by a permit and never committed), but a task must
// never be reported blocked after it was already woken (or while it runs again elsewhere).
class OrderCheckingPolicy final : public upcall::Policy {
 public:
  const char* name() const override { return "order-check"; }
  void enqueue(int, TaskRef t, TaskEvent why) override {
    std::lock_guard<std::mutex> lock(mu_);
    St& st = state_[t.raw()];
    switch (why) {
      case TaskEvent::task_new:
        st = St::ready;
        break;
      case TaskEvent::task_yield:
        if (st != St::running) violation(t, "yield", st);
        st = St::ready;
        break;
      case TaskEvent::task_wakeup:
        if (st != St::blocked && st != St::running) violation(t, "wakeup", st);
        st = St::ready;
        break;
      default:
        violation(t, "enqueue with a notification event", st);
    }
    t.link() = TaskRef();
    if (tail_)
      tail_.link() = t;
    else
      head_ = t;
    tail_ = t;
  }
  TaskRef pick_next(int) override {
    std::lock_guard<std::mutex> lock(mu_);
    TaskRef t = head_;
    if (!t) return {};
    head_ = t.link();
    if (!head_) tail_ = TaskRef();
    St& st = state_[t.raw()];
    if (st != St::ready) violation(t, "pick", st);
    st = St::running;
    return t;
  }
  void on_blocked(int, TaskRef t) override {
    std::lock_guard<std::mutex> lock(mu_);
    St& st = state_[t.raw()];
    if (st != St::running) violation(t, "blocked", st);
    st = St::blocked;
  }
  void on_dead(int, TaskRef t) override {
    std::lock_guard<std::mutex> lock(mu_);
    St& st = state_[t.raw()];
    if (st != St::running) violation(t, "dead", st);
    st = St::dead;
  }
  int violations() {
    std::lock_guard<std::mutex> lock(mu_);
    return violations_;
  }
  std::string first() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_;
  }

 private:
  enum class St { ready, running, blocked, dead };
  void violation(TaskRef t, const char* event, St st) {
    static const char* const kNames[] = {"ready", "running", "blocked", "dead"};
    if (violations_++ == 0)
      first_ = std::string(event) + " of task " + std::to_string(t.id()) + " while it was " +
               kNames[static_cast<int>(st)];
  }
  std::mutex mu_;
  TaskRef head_, tail_;                    // guarded by mu_
  std::unordered_map<void*, St> state_;    // guarded by mu_
  int violations_ = 0;                     // guarded by mu_
  std::string first_;                      // guarded by mu_
};

// Two cores, fibers waking each other with park/unpark as fast as they can: the policy must see
// each task's events in the order they happened (ghOSt's per-task message order).
TEST(PolicyTwoCores, EventsArriveInTaskOrder) {
  if (MaxTestCores() < 2) GTEST_SKIP() << "needs 2 CPUs";
  auto pol = std::make_shared<OrderCheckingPolicy>();
  Options o;
  o.cores = 2;
  o.policy = pol;
  Runtime rt(std::move(o));
  constexpr int kPairs = 2;
  const auto budget = 3s;
  struct Pair {
    std::atomic<int> turn{0};
    std::atomic<rt::Waker> wakers[2] = {0, 0};
  };
  std::vector<Pair> pairs(kPairs);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> turns{0};
  auto player = [&](Pair& p, int me) {
    p.wakers[me] = rt::current_waker();
    while (p.wakers[1 - me].load() == 0) this_task::yield();
    unsigned n = 0;
    while (!stop.load()) {
      unsigned spin = (n++ * 37) % 200;
      while (p.turn.load() != me && !stop.load()) {
        if (spin) {
          --spin;
          __builtin_ia32_pause();
        } else {
          rt::park_current();
        }
      }
      turns.fetch_add(1);
      p.turn.exchange(1 - me);  // an RMW (the plain-store race is PingPong's subject)
      rt::unpark_waker(p.wakers[1 - me].load());
      if (n % 16 == 0) this_task::yield();
    }
    rt::unpark_waker(p.wakers[1 - me].load());
  };
  std::vector<JoinHandle<void>> hs;
  for (auto& p : pairs) {
    hs.push_back(rt.spawn([&] { player(p, 0); }));
    hs.push_back(rt.spawn([&] { player(p, 1); }));
  }
  const auto start = Clock::now();
  while (Clock::now() - start < budget && pol->violations() == 0)
    std::this_thread::sleep_for(10ms);
  stop = true;
  // Wind down: wake everyone until all have exited. A woken fiber can sit in the policy while
  // both cores sleep (the lost wake-up of PolicyOneCore.SpawnFromThreadWhileCoreSpinsIsNotLost);
  // a spawn into parked cores wakes one, so keep kicking.
  const auto wind_down = Clock::now();
  int kicks = 0;
  while (!std::all_of(hs.begin(), hs.end(), [](auto& h) { return h.done(); })) {
    for (auto& p : pairs)
      for (auto& w : p.wakers)
        if (rt::Waker x = w.load()) rt::unpark_waker(x);
    if (Clock::now() - wind_down > 1s) {
      rt.spawn([] {}).detach();
      ++kicks;
    }
    std::this_thread::sleep_for(1ms);
  }
  for (auto& h : hs) h.join();
  EXPECT_GT(turns.load(), 0u);
  EXPECT_EQ(pol->violations(), 0) << "first: " << pol->first();
  EXPECT_EQ(kicks, 0) << "woken fibers stayed in the policy while the cores slept";
  EXPECT_TRUE(NoLeaks(rt));
}

}  // namespace
}  // namespace upcall::test
