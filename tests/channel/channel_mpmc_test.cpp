// Channel invariants under contention at unit-test sizes: K producers x M messages to L
// consumers through rendezvous, bounded and unbounded channels, every message exactly once and
// in order per producer; producers and consumers as fibers, plain threads, or both; consumers
// using recv or select (with and without timeouts). Runs at 1 and 2 cores.
#include <memory>
#include <string>
#include <thread>
#include <tuple>

#include "fixture.hpp"
#include "mpmc_check.hpp"

namespace upcall::test {
namespace {

// (cores, capacity)
class ChannelMpmc : public ::testing::TestWithParam<std::tuple<int, std::size_t>> {
 protected:
  void SetUp() override {
    Options o;
    o.cores = std::get<0>(GetParam());
    rt_ = std::make_unique<Runtime>(std::move(o));
  }
  void TearDown() override {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while ((rt_->live_fibers() != 0 || rt_->stacks_in_use() != 0) &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(rt_->live_fibers(), 0u) << "fibers leaked by this test";
    rt_.reset();
  }
  MpmcPlan plan() const {
    MpmcPlan p;
    p.capacity = std::get<1>(GetParam());
    return p;
  }
  Runtime& rt() { return *rt_; }
  std::unique_ptr<Runtime> rt_;
};

TEST_P(ChannelMpmc, FibersExactlyOnceInOrder) {
  MpmcPlan p = plan();
  p.producers = 4;
  p.consumers = 3;
  p.messages = 2000;
  run_mpmc(rt(), p);
}

TEST_P(ChannelMpmc, ThreadsToFibers) {
  MpmcPlan p = plan();
  p.producers = 3;
  p.thread_producers = 3;
  p.consumers = 3;
  p.messages = 1000;
  run_mpmc(rt(), p);
}

TEST_P(ChannelMpmc, FibersToThreads) {
  MpmcPlan p = plan();
  p.producers = 3;
  p.consumers = 2;
  p.thread_consumers = 2;
  p.messages = 1000;
  run_mpmc(rt(), p);
}

TEST_P(ChannelMpmc, MixedThreadsAndFibersBothSides) {
  MpmcPlan p = plan();
  p.producers = 4;
  p.thread_producers = 2;
  p.consumers = 4;
  p.thread_consumers = 2;
  p.messages = 1000;
  run_mpmc(rt(), p);
}

TEST_P(ChannelMpmc, SelectConsumers) {
  MpmcPlan p = plan();
  p.consumers = 3;
  p.thread_consumers = 1;
  p.messages = 1000;
  p.consume = Consume::select;
  run_mpmc(rt(), p);
}

TEST_P(ChannelMpmc, TimedSelectConsumers) {
  MpmcPlan p = plan();
  p.consumers = 3;
  p.thread_consumers = 1;
  p.messages = 1000;
  p.consume = Consume::select_timed;
  run_mpmc(rt(), p);
}

std::string MpmcName(const ::testing::TestParamInfo<std::tuple<int, std::size_t>>& info) {
  const std::size_t cap = std::get<1>(info.param);
  const std::string kind = cap == 0                         ? "rendezvous"
                           : cap == Channel<Msg>::kUnbounded ? "unbounded"
                                                             : "cap" + std::to_string(cap);
  return std::to_string(std::get<0>(info.param)) + "cores_" + kind;
}

INSTANTIATE_TEST_SUITE_P(Kinds, ChannelMpmc,
                         ::testing::Combine(::testing::Values(1, MaxTestCores()),
                                            ::testing::Values(std::size_t{0}, std::size_t{1},
                                                              std::size_t{16},
                                                              Channel<Msg>::kUnbounded)),
                         MpmcName);

}  // namespace
}  // namespace upcall::test
