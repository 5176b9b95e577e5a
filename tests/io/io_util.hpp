// tests/io/io_util.hpp: the I/O test fixture. Every test derived from IoTest runs once per
// backend (uring, epoll) and core count (1, 2), skips a backend the machine does not allow
// (with the reason), and fails in teardown on leaked fibers, stacks or descriptors.
#pragma once

#include <dirent.h>
#include <sys/resource.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <tuple>

#include "fixture.hpp"
#include "upcall/upcall.hpp"

namespace upcall::test {

inline int count_open_fds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
    --n;  // the directory stream itself
  }
  return n;
}

// Raises RLIMIT_NOFILE's soft limit to at least `want` (up to the hard limit). Returns the
// resulting soft limit.
inline rlim_t raise_nofile(rlim_t want) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

using IoParam = std::tuple<const char*, int>;  // backend, cores

class IoTest : public ::testing::TestWithParam<IoParam> {
 protected:
  void SetUp() override {
    fds_before_ = count_open_fds();
    Options o;
    o.io = std::get<0>(GetParam());
    o.cores = std::get<1>(GetParam());
    rt_ = std::make_unique<Runtime>(std::move(o));
    if (rt_->config().io != std::get<0>(GetParam()))
      GTEST_SKIP() << "io=" << std::get<0>(GetParam()) << " unavailable here (effective: "
                   << rt_->config().io << ")";
    fds_with_runtime_ = count_open_fds();
  }
  void TearDown() override {
    if (!rt_) return;
    EXPECT_TRUE(NoLeaks(*rt_));
    if (!IsSkipped()) {
      EXPECT_EQ(count_open_fds(), fds_with_runtime_) << "descriptors leaked by this test";
    }
    rt_.reset();
    EXPECT_EQ(count_open_fds(), fds_before_) << "the runtime leaked descriptors";
  }
  Runtime& rt() { return *rt_; }
  const char* backend() const { return std::get<0>(GetParam()); }

  std::unique_ptr<Runtime> rt_;
  int fds_before_ = 0, fds_with_runtime_ = 0;
};

inline std::string IoName(const ::testing::TestParamInfo<IoParam>& info) {
  return std::string(std::get<0>(info.param)) + "_" + std::to_string(std::get<1>(info.param)) +
         "cores";
}

#define UPCALL_INSTANTIATE_IO(Suite)                                                         \
  INSTANTIATE_TEST_SUITE_P(                                                                \
      Io, Suite,                                                                           \
      ::testing::Combine(::testing::Values("uring", "epoll"),                              \
                         ::testing::Values(1, ::upcall::test::MaxTestCores())),            \
      ::upcall::test::IoName)

}  // namespace upcall::test
