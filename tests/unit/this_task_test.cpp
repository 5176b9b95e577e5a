// this_task queries on a fiber whose kernel thread blocked in an unwrapped system call and
// lost its core to a takeover (scheduler activations, runtime/DESIGN.md "Scheduler
// activations"). The fiber keeps running on its *returning* thread until its next runtime
// entry; throughout, it is still a fiber: in_fiber() is true, core() names a core, id() and
// name() are its own. Runs per backend and skips the ones this machine cannot run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "fixture.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class ThisTaskAfterTakeover : public ::testing::TestWithParam<const char*> {};

struct Seen {
  bool in_fiber_before = false, in_fiber_after = false;
  int core_before = -1, core_after = -1;
  std::uint64_t id_before = 0, id_after = 0;
  std::string name_after;
};

TEST_P(ThisTaskAfterTakeover, FiberIsStillAFiber) {
  Options o;
  o.cores = 1;
  o.activations = GetParam();
  Runtime rt(std::move(o));
  if (rt.config().activations != GetParam())
    GTEST_SKIP() << "activations=" << GetParam() << " unavailable here (effective: "
                 << rt.config().activations << ")";
  std::atomic<bool> inside{false}, done{false};
  std::atomic<long> ticks_during{0};
  // A ticker on the same (only) core proves the core was taken over during the block.
  auto ticker = rt.spawn([&] {
    while (!done.load()) {
      if (inside.load()) ticks_during.fetch_add(1);
      this_task::yield();
    }
  });
  auto blocker = rt.spawn(
      [&] {
        Seen s;
        s.in_fiber_before = this_task::in_fiber();
        s.core_before = this_task::core();
        s.id_before = this_task::id();
        inside = true;
        ::usleep(200 * 1000);  // raw: nobody wrapped it; the core is taken over meanwhile
        inside = false;
        // No runtime entry since the block: the thread is a returning thread right now.
        s.in_fiber_after = this_task::in_fiber();
        s.core_after = this_task::core();
        s.id_after = this_task::id();
        s.name_after = std::string(this_task::name());
        done = true;
        return s;
      },
      SpawnOptions{"sleepy", 0});
  const Seen s = blocker.join();
  ticker.join();
  if (ticks_during.load() == 0) GTEST_SKIP() << "no takeover happened during the block";
  EXPECT_TRUE(s.in_fiber_before);
  EXPECT_EQ(s.core_before, 0);
  EXPECT_TRUE(s.in_fiber_after) << "this_task::in_fiber() is false in a fiber after a takeover";
  EXPECT_EQ(s.core_after, 0) << "this_task::core() does not name a core after a takeover";
  EXPECT_EQ(s.id_after, s.id_before);
  EXPECT_EQ(s.name_after, "sleepy");
  EXPECT_TRUE(NoLeaks(rt));
}

INSTANTIATE_TEST_SUITE_P(Backend, ThisTaskAfterTakeover, ::testing::Values("bpf", "fallback"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace upcall::test
