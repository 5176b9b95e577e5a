// upcall_antagonist end to end: per-second and final output, the --json contract that the core
// reallocation experiment relies on ("units_per_sec" total, "per_cpu"), both modes, bad flags.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "../loadgen/subprocess.hpp"

using loadgen::test::run_to_end;

namespace {

const std::string kBin = UPCALL_ANTAGONIST_BIN;

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// The number after "key": in a flat JSON object, or -1.
double json_number(const std::string& json, const std::string& key) {
  const auto k = json.find("\"" + key + "\":");
  if (k == std::string::npos) return -1;
  return std::strtod(json.c_str() + k + key.size() + 3, nullptr);
}

void check_json_run(const char* mode, const char* policy) {
  auto f = run_to_end({kBin, "--cpus=0", "--duration=1200ms", std::string("--mode=") + mode,
                       std::string("--policy=") + policy, "--unit=200us", "--json"},
                      std::chrono::seconds(30));
  ASSERT_FALSE(f.timed_out);
  ASSERT_TRUE(f.exited_with(0)) << f.out << f.err;
  // One report per second and one at exit.
  EXPECT_NE(f.out.find("antagonist: t=1.0s units/s: cpu0 "), std::string::npos) << f.out;
  EXPECT_NE(f.out.find(std::string("antagonist: ") + mode + " mode"), std::string::npos) << f.out;
  const std::string j = last_line(f.out);
  ASSERT_EQ(j.front(), '{') << j;
  ASSERT_EQ(j.back(), '}') << j;
  const double total = json_number(j, "units_per_sec");
  // A 200 us unit on one CPU: at most ~5000/s; more than nothing even on a busy machine.
  EXPECT_GT(total, 0) << j;
  EXPECT_LT(total, 5000 * 1.5) << j;
  EXPECT_NE(j.find("\"per_cpu\":{\"0\":"), std::string::npos) << j;
  EXPECT_NEAR(json_number(j, "0"), total, total * 0.01 + 0.1) << j;  // one CPU: all of it
}

}  // namespace

TEST(Antagonist, ThreadsAtSchedIdleReportJson) { check_json_run("threads", "idle"); }
TEST(Antagonist, ThreadsAtNiceReportJson) { check_json_run("threads", "nice:10"); }
TEST(Antagonist, FibersReportJson) { check_json_run("fibers", "idle"); }

TEST(Antagonist, BadFlagsGiveOneLineErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {"--cpus=0", "--duration=1s", "--mode=threads"},                         // no policy
      {"--cpus=0", "--duration=1s", "--mode=procs", "--policy=idle"},
      {"--cpus=0", "--duration=1s", "--mode=threads", "--policy=nice:99"},
      {"--cpus=0", "--duration=1s", "--mode=threads", "--policy=fifo"},
      {"--cpus=0", "--duration=soon", "--mode=threads", "--policy=idle"},
      {"--cpus=9999", "--duration=1s", "--mode=threads", "--policy=idle"},
      {"--cpus=0", "--duration=1s", "--mode=threads", "--policy=idle", "--unit=0"},
      {"--cpus=0", "--duration=1s", "--mode=threads", "--policy=idle", "--frobnicate=1"},
  };
  for (const auto& extra : bad) {
    std::vector<std::string> args = {kBin};
    args.insert(args.end(), extra.begin(), extra.end());
    auto f = run_to_end(args, std::chrono::seconds(10));
    SCOPED_TRACE(args.back());
    EXPECT_TRUE(f.exited_with(1)) << f.out << f.err;
    ASSERT_FALSE(f.err.empty());
    EXPECT_EQ(f.err.find('\n'), f.err.size() - 1) << f.err;
    EXPECT_TRUE(f.out.empty()) << f.out;
  }
}
