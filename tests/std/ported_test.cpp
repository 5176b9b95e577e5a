// tests/std/ported_test.cpp: ported std programs give the same output. Every scenario of
// scenarios.inc is compiled twice, once against std and once against upcall, and run: from a
// plain thread (upcall threads then run on the default runtime), and from inside a fiber of a
// 1-core and a 2-core runtime (upcall threads then run on that runtime, and a blocking wait
// must suspend its fiber rather than stall the only core).
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <latch>
#include <map>
#include <mutex>
#include <semaphore>
#include <shared_mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "fixture.hpp"
#include "upcall/std.hpp"

namespace with_std {
namespace ns = ::std;
#include "scenarios.inc"
}  // namespace with_std

namespace with_upcall {
namespace ns = ::upcall;
#include "scenarios.inc"
}  // namespace with_upcall

namespace {

using Scenario = std::string (*)();

struct Case {
  const char* name;
  Scenario std_version;
  Scenario upcall_version;
};

const Case kCases[] = {
    {"producer_consumer", &with_std::producer_consumer, &with_upcall::producer_consumer},
    {"jthread_stop", &with_std::jthread_stop, &with_upcall::jthread_stop},
    {"futures", &with_std::futures, &with_upcall::futures},
    {"call_once_retry", &with_std::call_once_retry, &with_upcall::call_once_retry},
    {"phases", &with_std::phases, &with_upcall::phases},
    {"semaphores", &with_std::semaphores, &with_upcall::semaphores},
    {"readers_writers", &with_std::readers_writers, &with_upcall::readers_writers},
    {"mutex_kinds", &with_std::mutex_kinds, &with_upcall::mutex_kinds},
};

#if defined(__SANITIZE_THREAD__)
// TSAN's pthread_once interceptor is not exception-safe: when the callable throws, the guard
// stays "running" and every other std::call_once caller waits forever. libstdc++'s call_once
// is pthread_once, so the std run of call_once_retry hangs under TSAN (upcall's does not).
constexpr bool kStdCallOnceRetryWorks = false;
#else
constexpr bool kStdCallOnceRetryWorks = true;
#endif
const char kCallOnceRetryOutput[] = "invocations=2 throws=1 value=42 later=0";

// The std output of each scenario, computed once (the documented output where std cannot run).
const std::string& std_output(const Case& c) {
  static std::mutex mu;
  static std::map<std::string, std::string> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(c.name);
  if (it == cache.end()) {
    const bool skip_std = !kStdCallOnceRetryWorks && std::string(c.name) == "call_once_retry";
    it = cache.emplace(c.name, skip_std ? std::string(kCallOnceRetryOutput) : c.std_version())
             .first;
  }
  return it->second;
}

class Ported : public ::testing::TestWithParam<Case> {};

TEST_P(Ported, SameOutputFromPlainThread) {
  const std::string expected = std_output(GetParam());
  EXPECT_EQ(GetParam().upcall_version(), expected);
}

TEST_P(Ported, SameOutputInsideFiberOneCore) {
  upcall::Options o;
  o.cores = 1;
  upcall::Runtime rt(o);
  const std::string expected = std_output(GetParam());
  Scenario f = GetParam().upcall_version;
  EXPECT_EQ(rt.block_on([f] { return f(); }), expected);
}

TEST_P(Ported, SameOutputInsideFiberTwoCores) {
  upcall::Options o;
  o.cores = upcall::test::MaxTestCores();
  upcall::Runtime rt(o);
  const std::string expected = std_output(GetParam());
  Scenario f = GetParam().upcall_version;
  EXPECT_EQ(rt.block_on([f] { return f(); }), expected);
}

INSTANTIATE_TEST_SUITE_P(Scenarios, Ported, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

// The std outputs themselves are what the scenarios promise (guards against a scenario that
// says the same wrong thing with both).
TEST(PortedExpected, StdOutputsAreTheDocumentedOnes) {
  EXPECT_EQ(with_std::producer_consumer(),
            "consumed=6000 sum=17997000 rally=ping pong ping pong ping pong ping pong "
            "wait_for=false wait_until=timeout");
  if (kStdCallOnceRetryWorks) {
    EXPECT_EQ(with_std::call_once_retry(), kCallOnceRetryOutput);
  }
  EXPECT_EQ(with_std::phases(), "p0=4 p1=4 p2=4 latched dropped-ok gate=open");
  EXPECT_EQ(with_std::readers_writers(),
            "violations=0 a=2000 b=2000 reads=8000 timed=111");
  EXPECT_EQ(with_std::semaphores(), "bounded=yes total=1200 seq=ABABABABAB try=0001 max=1");
  EXPECT_EQ(with_std::mutex_kinds(), "depth=5 other=0 again=1 total=2000 try=10");
  EXPECT_EQ(with_std::jthread_stop(),
            "possible joinable callbacks=1 requested stopped first=true second=false "
            "immediate=1 none-impossible orphan-impossible empty-impossible");
  EXPECT_EQ(with_std::futures(),
            "async=5050 deferred_before=0 status=deferred get=7 deferred_after=1 timeout "
            "shared=3 ready task=42 ref=5 caught=boom invalid e1=no_state "
            "e2=future_already_retrieved e3=promise_already_satisfied e4=broken_promise "
            "e5=promise_already_satisfied e6=no_state e7=promise_already_satisfied "
            "e8=broken_promise");
}

}  // namespace
