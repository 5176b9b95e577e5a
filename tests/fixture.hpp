// tests/fixture.hpp: the runtime test fixture. Every test derived from RuntimeTest runs once
// per core count (1 and 2), and fails in teardown when fibers or stacks leaked: every fiber a
// test spawned must be finished and released by the end of the test.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "upcall/upcall.hpp"

namespace upcall::test {

class RuntimeTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    Options o;
    o.cores = GetParam();
    rt_ = std::make_unique<Runtime>(std::move(o));
  }
  void TearDown() override {
    // A finished fiber drops its own reference right after it switched away, so allow the
    // last release a moment to land.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while ((rt_->live_fibers() != 0 || rt_->stacks_in_use() != 0) &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(rt_->live_fibers(), 0u) << "fibers leaked by this test";
    EXPECT_EQ(rt_->stacks_in_use(), 0u) << "stacks leaked by this test";
    rt_.reset();
  }
  Runtime& rt() { return *rt_; }
  std::unique_ptr<Runtime> rt_;
};

inline std::string CoresName(const ::testing::TestParamInfo<int>& info) {
  return std::to_string(info.param) + "cores";
}

// Cores available to tests: 2 when the machine has them, else 1.
inline int MaxTestCores() { return std::thread::hardware_concurrency() >= 2 ? 2 : 1; }

// Waits up to `within` for `rt` to release every fiber and stack (a finished fiber drops its
// last reference just after it switched away), then reports what is left.
inline ::testing::AssertionResult NoLeaks(Runtime& rt,
                                          std::chrono::milliseconds within = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while ((rt.live_fibers() != 0 || rt.stacks_in_use() != 0) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (rt.live_fibers() == 0 && rt.stacks_in_use() == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << rt.live_fibers() << " fiber(s) and " << rt.stacks_in_use()
                                       << " stack(s) still in use";
}

// Sets (or, with nullptr, unsets) an environment variable for the lifetime of the object and
// restores the previous value afterwards. Tests run one at a time, so the process environment
// is not shared with a concurrent test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

#define UPCALL_INSTANTIATE_CORES(Suite) \
  INSTANTIATE_TEST_SUITE_P(Cores, Suite, ::testing::Values(1, ::upcall::test::MaxTestCores()), \
                           ::upcall::test::CoresName)

}  // namespace upcall::test
