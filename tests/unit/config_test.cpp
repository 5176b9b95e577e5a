// Configuration: cpulist parsing and formatting, the precedence Runtime option > --upcall-*
// flag > UPCALL_* environment variable > default, validation messages that name the offending
// setting, and EffectiveConfig::describe(). No runtime is started except where a test says so.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "fixture.hpp"

namespace upcall::test {
namespace {

using ::testing::HasSubstr;

// The CPUs of this process's affinity mask, as resolve_config sees them.
std::vector<int> AffinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &set)) cpus.push_back(i);
  return cpus;
}

// Clears every UPCALL_* variable for the test's duration, so the machine's environment cannot
// change what a test sees.
struct CleanEnv {
  ScopedEnv cores{"UPCALL_CORES", nullptr};
  ScopedEnv cpus{"UPCALL_CPUS", nullptr};
  ScopedEnv stack{"UPCALL_STACK_SIZE", nullptr};
  ScopedEnv idle{"UPCALL_IDLE", nullptr};
  ScopedEnv activations{"UPCALL_ACTIVATIONS", nullptr};
  ScopedEnv io{"UPCALL_IO", nullptr};
};

// The message of the std::invalid_argument that `f` throws ("" when it does not throw).
template <class F>
std::string InvalidArgMessage(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// argv as parse_args wants it: mutable strings and a terminating null.
struct Argv {
  explicit Argv(std::vector<std::string> args) : store(std::move(args)) {
    for (auto& s : store) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
    argc = static_cast<int>(store.size());
  }
  std::vector<std::string> rest() const {
    std::vector<std::string> out;
    for (int i = 0; i < argc; ++i) out.emplace_back(ptrs[i]);
    return out;
  }
  std::vector<std::string> store;
  std::vector<char*> ptrs;
  int argc;
};

// ------------------------------------------------------------------------------- cpulist

TEST(CpuList, ParsesRangesAndSingles) {
  EXPECT_EQ(parse_cpulist("0-3,8,10-11"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(parse_cpulist("5"), (std::vector<int>{5}));
  EXPECT_EQ(parse_cpulist("0"), (std::vector<int>{0}));
  EXPECT_EQ(parse_cpulist("2-2"), (std::vector<int>{2}));
}

TEST(CpuList, DropsDuplicates) {
  EXPECT_EQ(parse_cpulist("0-2,1-3,3"), (std::vector<int>{0, 1, 2, 3}));
}

TEST(CpuList, RejectsBadSyntax) {
  for (const char* bad : {"", "a", "1-", "-1", "3-1", "1,,2", ",1", "1-2-3", "1x", "1 -2",
                          "0-99999", "99999"}) {
    EXPECT_THROW(parse_cpulist(bad), std::invalid_argument) << "accepted '" << bad << "'";
  }
}

// A trailing comma is an empty element just like a leading one (",1" is rejected).
TEST(CpuList, RejectsTrailingComma) {
  EXPECT_THROW(parse_cpulist("0,"), std::invalid_argument);
  EXPECT_THROW(parse_cpulist("0-1,"), std::invalid_argument);
}

TEST(CpuList, FormatCollapsesRuns) {
  EXPECT_EQ(format_cpulist({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(format_cpulist({}), "");
  EXPECT_EQ(format_cpulist({7}), "7");
  EXPECT_EQ(format_cpulist({1, 2}), "1-2");
  EXPECT_EQ(format_cpulist({0, 2, 4}), "0,2,4");
}

TEST(CpuList, FormatThenParseRoundTrips) {
  const std::vector<std::vector<int>> cases = {
      {0}, {0, 1}, {0, 2, 3, 4, 9}, {1, 3, 5, 6, 7, 8, 100, 101}, {1023}};
  for (const auto& cpus : cases) EXPECT_EQ(parse_cpulist(format_cpulist(cpus)), cpus);
}

// ------------------------------------------------------------------------------- defaults

TEST(Config, DefaultsComeFromAffinityMask) {
  CleanEnv env;
  const auto allowed = AffinityCpus();
  ASSERT_FALSE(allowed.empty());
  const EffectiveConfig c = resolve_config(Options{});
  EXPECT_EQ(c.cores, static_cast<int>(allowed.size()));
  EXPECT_EQ(c.cpus, allowed);
  EXPECT_EQ(c.stack_size, 64u * 1024);
  EXPECT_EQ(c.idle, IdleMode::park);
  EXPECT_EQ(c.spin_us, 50u);
  // resolve_config reports the requested backend (bpf by default); the Runtime then runs
  // bpf, or falls back to fallback with a one-line reason (tests/activations).
  EXPECT_EQ(c.activations, "bpf");
  EXPECT_EQ(c.io, "uring");  // requested; the runtime reports the effective backend
  EXPECT_EQ(c.policy, "fifo");
}

TEST(Config, CoresTakeTheFirstCpus) {
  CleanEnv env;
  const auto allowed = AffinityCpus();
  Options o;
  o.cores = 1;
  const EffectiveConfig c = resolve_config(o);
  EXPECT_EQ(c.cores, 1);
  EXPECT_EQ(c.cpus, std::vector<int>{allowed[0]});
}

TEST(Config, CpusSelectsTheCoresCpus) {
  CleanEnv env;
  const auto allowed = AffinityCpus();
  const std::string last = std::to_string(allowed.back());
  ScopedEnv cpus("UPCALL_CPUS", last.c_str());
  const EffectiveConfig c = resolve_config(Options{});
  EXPECT_EQ(c.cores, 1);
  EXPECT_EQ(c.cpus, std::vector<int>{allowed.back()});
}

// ------------------------------------------------------------------------------- precedence

TEST(Config, OptionBeatsFlagBeatsEnvBeatsDefault) {
  CleanEnv env;
  ScopedEnv stack("UPCALL_STACK_SIZE", "128K");
  ScopedEnv idle("UPCALL_IDLE", "park");
  // Option set in code, flag and environment: the option wins.
  {
    Options o;
    o.stack_size = 80 * 1024;
    o.idle = "spin:7";
    Argv a({"prog", "--upcall-stack-size=96K", "--upcall-idle=poll"});
    o.parse_args(a.argc, a.ptrs.data());
    const EffectiveConfig c = resolve_config(o);
    EXPECT_EQ(c.stack_size, 80u * 1024);
    EXPECT_EQ(c.idle, IdleMode::park);
    EXPECT_EQ(c.spin_us, 7u);
  }
  // Flag and environment: the flag wins.
  {
    Options o;
    Argv a({"prog", "--upcall-stack-size=96K", "--upcall-idle=poll"});
    o.parse_args(a.argc, a.ptrs.data());
    const EffectiveConfig c = resolve_config(o);
    EXPECT_EQ(c.stack_size, 96u * 1024);
    EXPECT_EQ(c.idle, IdleMode::poll);
  }
  // Environment only.
  {
    const EffectiveConfig c = resolve_config(Options{});
    EXPECT_EQ(c.stack_size, 128u * 1024);
    EXPECT_EQ(c.idle, IdleMode::park);
    EXPECT_EQ(c.spin_us, 0u);
  }
}

TEST(Config, CoresPrecedence) {
  CleanEnv env;
  const auto allowed = AffinityCpus();
  if (allowed.size() < 2) GTEST_SKIP() << "needs 2 CPUs in the affinity mask";
  ScopedEnv cores("UPCALL_CORES", "2");
  EXPECT_EQ(resolve_config(Options{}).cores, 2);
  Options o;
  Argv a({"prog", "--upcall-cores", "1"});  // value as a separate argument
  o.parse_args(a.argc, a.ptrs.data());
  EXPECT_EQ(resolve_config(o).cores, 1);
  Options o2;
  o2.cores = 2;
  Argv a2({"prog", "--upcall-cores=1"});
  o2.parse_args(a2.argc, a2.ptrs.data());
  EXPECT_EQ(resolve_config(o2).cores, 2);
}

TEST(Config, ParseArgsRemovesOnlyUpcallFlags) {
  Options o;
  Argv a({"prog", "--upcall-cores=1", "input.txt", "--upcall-idle", "poll", "--verbose",
          "--upcall-cpus=0", "-n", "3"});
  o.parse_args(a.argc, a.ptrs.data());
  EXPECT_EQ(a.rest(), (std::vector<std::string>{"prog", "input.txt", "--verbose", "-n", "3"}));
  EXPECT_EQ(a.ptrs[a.argc], nullptr);
  ASSERT_TRUE(o.cores.has_value());
  EXPECT_EQ(*o.cores, 1);
  ASSERT_TRUE(o.idle.has_value());
  EXPECT_EQ(*o.idle, "poll");
  ASSERT_TRUE(o.cpus.has_value());
  EXPECT_EQ(*o.cpus, "0");
  EXPECT_FALSE(o.stack_size.has_value());
}

TEST(Config, ParseArgsAcceptsEveryDocumentedFlag) {
  Options o;
  Argv a({"prog", "--upcall-cores=1", "--upcall-cpus=0", "--upcall-stack-size=1M",
          "--upcall-idle=park", "--upcall-activations=off", "--upcall-io=epoll"});
  o.parse_args(a.argc, a.ptrs.data());
  EXPECT_EQ(a.argc, 1);
  EXPECT_EQ(o.stack_size.value_or(0), 1024u * 1024);
  EXPECT_EQ(o.activations.value_or(""), "off");
  EXPECT_EQ(o.io.value_or(""), "epoll");
}

TEST(Config, ParseArgsRejectsUnknownFlag) {
  Options o;
  Argv a({"prog", "--upcall-coers=2"});
  const std::string msg = InvalidArgMessage([&] { o.parse_args(a.argc, a.ptrs.data()); });
  EXPECT_THAT(msg, HasSubstr("--upcall-coers"));
  EXPECT_THAT(msg, HasSubstr("unknown flag"));
  EXPECT_THAT(msg, HasSubstr("--upcall-cores"));  // lists the known ones
}

TEST(Config, ParseArgsRejectsMissingValueAndBadNumbers) {
  {
    Options o;
    Argv a({"prog", "--upcall-cores"});
    EXPECT_THAT(InvalidArgMessage([&] { o.parse_args(a.argc, a.ptrs.data()); }),
                HasSubstr("missing value"));
  }
  {
    Options o;
    Argv a({"prog", "--upcall-cores=two"});
    const std::string msg = InvalidArgMessage([&] { o.parse_args(a.argc, a.ptrs.data()); });
    EXPECT_THAT(msg, HasSubstr("--upcall-cores"));
    EXPECT_THAT(msg, HasSubstr("two"));
  }
  {
    Options o;
    Argv a({"prog", "--upcall-stack-size=64Q"});
    const std::string msg = InvalidArgMessage([&] { o.parse_args(a.argc, a.ptrs.data()); });
    EXPECT_THAT(msg, HasSubstr("--upcall-stack-size"));
    EXPECT_THAT(msg, HasSubstr("64Q"));
  }
}

// ------------------------------------------------------------------------------- errors

TEST(Config, MoreCoresThanCpusIsRejected) {
  CleanEnv env;
  const auto allowed = AffinityCpus();
  const std::string too_many = std::to_string(allowed.size() + 1);
  {
    ScopedEnv cores("UPCALL_CORES", too_many.c_str());
    const std::string msg = InvalidArgMessage([] { resolve_config(Options{}); });
    EXPECT_THAT(msg, HasSubstr("UPCALL_CORES=" + too_many));
    EXPECT_THAT(msg, HasSubstr("more cores than CPUs"));
    EXPECT_THAT(msg, HasSubstr(format_cpulist(allowed)));
  }
  {
    Options o;
    o.cores = static_cast<int>(allowed.size()) + 1;
    const std::string msg = InvalidArgMessage([&] { resolve_config(o); });
    EXPECT_THAT(msg, HasSubstr("Options::cores=" + too_many));
    EXPECT_THAT(msg, HasSubstr("more cores than CPUs"));
  }
  {
    // Two cores on a one-CPU list.
    ScopedEnv cpus("UPCALL_CPUS", std::to_string(allowed[0]).c_str());
    ScopedEnv cores("UPCALL_CORES", "2");
    const std::string msg = InvalidArgMessage([] { resolve_config(Options{}); });
    EXPECT_THAT(msg, HasSubstr("more cores than CPUs"));
    EXPECT_THAT(msg, HasSubstr("UPCALL_CPUS"));
  }
}

TEST(Config, TooFewCoresIsRejected) {
  CleanEnv env;
  for (const char* v : {"0", "-1"}) {
    ScopedEnv cores("UPCALL_CORES", v);
    const std::string msg = InvalidArgMessage([] { resolve_config(Options{}); });
    EXPECT_THAT(msg, HasSubstr("UPCALL_CORES"));
    EXPECT_THAT(msg, HasSubstr("at least 1"));
  }
  ScopedEnv cores("UPCALL_CORES", "many");
  EXPECT_THAT(InvalidArgMessage([] { resolve_config(Options{}); }), HasSubstr("UPCALL_CORES"));
}

TEST(Config, CpuOutsideAffinityIsRejected) {
  CleanEnv env;
  const auto allowed = AffinityCpus();
  const int outside = allowed.back() + 1;
  ASSERT_LT(outside, CPU_SETSIZE);
  const std::string list = std::to_string(allowed[0]) + "," + std::to_string(outside);
  {
    ScopedEnv cpus("UPCALL_CPUS", list.c_str());
    const std::string msg = InvalidArgMessage([] { resolve_config(Options{}); });
    EXPECT_THAT(msg, HasSubstr("UPCALL_CPUS=" + list));
    EXPECT_THAT(msg, HasSubstr("CPU " + std::to_string(outside)));
    EXPECT_THAT(msg, HasSubstr("not in the process affinity mask"));
  }
  {
    Options o;
    o.cpus = list;
    const std::string msg = InvalidArgMessage([&] { resolve_config(o); });
    EXPECT_THAT(msg, HasSubstr("Options::cpus"));
    EXPECT_THAT(msg, HasSubstr("not in the process affinity mask"));
  }
  {
    ScopedEnv cpus("UPCALL_CPUS", "zero");
    EXPECT_THAT(InvalidArgMessage([] { resolve_config(Options{}); }), HasSubstr("UPCALL_CPUS"));
  }
}

TEST(Config, IdleModes) {
  CleanEnv env;
  auto with = [](const char* v) {
    Options o;
    o.idle = v;
    return resolve_config(o);
  };
  EXPECT_EQ(with("park").idle, IdleMode::park);
  EXPECT_EQ(with("park").spin_us, 0u);
  EXPECT_EQ(with("poll").idle, IdleMode::poll);
  EXPECT_EQ(with("spin:0").spin_us, 0u);
  EXPECT_EQ(with("spin:250").idle, IdleMode::park);
  EXPECT_EQ(with("spin:250").spin_us, 250u);
}

TEST(Config, BadIdleValueIsRejected) {
  CleanEnv env;
  for (const char* v : {"fast", "spin", "spin:", "spin:abc", "spin:-5", "spin:2000000", "Park"}) {
    ScopedEnv idle("UPCALL_IDLE", v);
    const std::string msg = InvalidArgMessage([] { resolve_config(Options{}); });
    EXPECT_THAT(msg, HasSubstr("UPCALL_IDLE")) << "value '" << v << "'";
  }
  Options o;
  o.idle = "fast";
  const std::string msg = InvalidArgMessage([&] { resolve_config(o); });
  EXPECT_THAT(msg, HasSubstr("fast"));
  EXPECT_THAT(msg, HasSubstr("park, poll or spin:<us>"));
}

// A value given as a command-line flag is reported under the flag's name, not as if it had
// been set in code: the user typed --upcall-idle / --upcall-cpus.
TEST(Config, BadFlagValueNamesTheFlag) {
  CleanEnv env;
  // The flag's value is checked when the flag is parsed (or at the latest when the config is
  // resolved); either way the message names the flag the user typed.
  {
    Options o;
    Argv a({"prog", "--upcall-idle=fast"});
    EXPECT_THAT(InvalidArgMessage([&] {
                  o.parse_args(a.argc, a.ptrs.data());
                  resolve_config(o);
                }),
                HasSubstr("--upcall-idle"));
  }
  {
    Options o;
    Argv a({"prog", "--upcall-cpus=0-x"});
    EXPECT_THAT(InvalidArgMessage([&] {
                  o.parse_args(a.argc, a.ptrs.data());
                  resolve_config(o);
                }),
                HasSubstr("--upcall-cpus"));
  }
}

TEST(Config, StackSizeSuffixes) {
  CleanEnv env;
  auto with = [](const char* v) {
    ScopedEnv stack("UPCALL_STACK_SIZE", v);
    return resolve_config(Options{}).stack_size;
  };
  EXPECT_EQ(with("131072"), 131072u);
  EXPECT_EQ(with("128K"), 131072u);
  EXPECT_EQ(with("128k"), 131072u);
  EXPECT_EQ(with("128KiB"), 131072u);
  EXPECT_EQ(with("1M"), 1048576u);
  EXPECT_EQ(with("16K"), 16384u);
}

TEST(Config, BadStackSizeIsRejected) {
  CleanEnv env;
  for (const char* v : {"abc", "64X", "64KB", "K", "8K", "2048M", "-1"}) {
    ScopedEnv stack("UPCALL_STACK_SIZE", v);
    const std::string msg = InvalidArgMessage([] { resolve_config(Options{}); });
    EXPECT_THAT(msg, HasSubstr("UPCALL_STACK_SIZE")) << "value '" << v << "'";
  }
  Options o;
  o.stack_size = 4096;
  EXPECT_THAT(InvalidArgMessage([&] { resolve_config(o); }), HasSubstr("16 KiB"));
}

// 17592186044432 = 2^44 + 16; times 1 MiB it is 2^64 + 16 MiB: a size that overflows must be
// rejected, not wrapped around to 16 MiB.
TEST(Config, OverflowingStackSizeIsRejected) {
  CleanEnv env;
  {
    ScopedEnv stack("UPCALL_STACK_SIZE", "17592186044432M");
    size_t got = 0;
    EXPECT_THROW(got = resolve_config(Options{}).stack_size, std::invalid_argument)
        << "accepted as " << got << " bytes";
  }
  {
    Options o;
    Argv a({"prog", "--upcall-stack-size=17592186044432M"});
    size_t got = 0;
    EXPECT_THROW(
        {
          o.parse_args(a.argc, a.ptrs.data());
          got = resolve_config(o).stack_size;
        },
        std::invalid_argument)
        << "accepted as " << got << " bytes";
  }
}

// 4294967297 = 2^32 + 1: as an int it would be 1 core. Too many cores, not one.
TEST(Config, OverflowingCoreCountIsRejected) {
  CleanEnv env;
  {
    ScopedEnv cores("UPCALL_CORES", "4294967297");
    EXPECT_THROW(resolve_config(Options{}), std::invalid_argument);
  }
  {
    Options o;
    Argv a({"prog", "--upcall-cores=4294967297"});
    int got = 0;
    EXPECT_THROW(
        {
          o.parse_args(a.argc, a.ptrs.data());
          got = resolve_config(o).cores;
        },
        std::invalid_argument)
        << "accepted as " << got << " core(s)";
  }
}

TEST(Config, BadBackendValuesAreRejected) {
  CleanEnv env;
  {
    ScopedEnv v("UPCALL_ACTIVATIONS", "ebpf");
    const std::string msg = InvalidArgMessage([] { resolve_config(Options{}); });
    EXPECT_THAT(msg, HasSubstr("UPCALL_ACTIVATIONS=ebpf"));
    EXPECT_THAT(msg, HasSubstr("bpf|fallback|off"));
  }
  {
    ScopedEnv v("UPCALL_IO", "kqueue");
    EXPECT_THAT(InvalidArgMessage([] { resolve_config(Options{}); }), HasSubstr("UPCALL_IO"));
  }
  // Valid but unavailable backends degrade to what exists (announced, not an error).
  ScopedEnv v("UPCALL_ACTIVATIONS", "off");
  EXPECT_EQ(resolve_config(Options{}).activations, "off");
}

// ------------------------------------------------------------------------------- describe

TEST(Config, DescribeIsOneLine) {
  EffectiveConfig c;
  c.cores = 2;
  c.cpus = {0, 1};
  c.stack_size = 64 * 1024;
  c.idle = IdleMode::park;
  c.spin_us = 50;
  c.activations = "off";
  c.io = "none";
  c.policy = "fifo";
  c.guard = "madvise";
  EXPECT_EQ(c.describe(),
            "upcall: cores=2 cpus=0-1 stack=64KiB idle=spin:50us activations=off io=none "
            "policy=fifo guard=madvise");
  c.spin_us = 0;
  EXPECT_THAT(c.describe(), HasSubstr(" idle=park "));
  c.idle = IdleMode::poll;
  c.cores = 3;
  c.cpus = {0, 2, 3};
  c.stack_size = 1024 * 1024;
  c.guard = "mprotect";
  EXPECT_EQ(c.describe(),
            "upcall: cores=3 cpus=0,2-3 stack=1024KiB idle=poll activations=off io=none "
            "policy=fifo guard=mprotect");
}

TEST(Config, RuntimeRunsWithTheResolvedConfig) {
  CleanEnv env;
  Options o;
  o.cores = 1;
  o.stack_size = 128 * 1024;
  o.idle = "spin:10";
  Runtime rt(std::move(o));
  const EffectiveConfig& c = rt.config();
  EXPECT_EQ(c.cores, 1);
  EXPECT_EQ(c.stack_size, 128u * 1024);
  EXPECT_EQ(c.spin_us, 10u);
  EXPECT_TRUE(c.guard == "madvise" || c.guard == "mprotect") << c.guard;
  EXPECT_THAT(c.describe(), HasSubstr("cores=1 "));
  EXPECT_THAT(c.describe(), HasSubstr("guard=" + c.guard));
  EXPECT_EQ(rt.stats().cores.size(), 1u);
  EXPECT_EQ(rt.block_on([] { return this_task::core(); }), 0);
}

TEST(Config, RuntimeRejectsBadConfig) {
  CleanEnv env;
  Options o;
  o.cores = 0;
  EXPECT_THROW(Runtime{std::move(o)}, std::invalid_argument);
  ScopedEnv idle("UPCALL_IDLE", "sometimes");
  EXPECT_THROW(Runtime{Options{}}, std::invalid_argument);
}

}  // namespace
}  // namespace upcall::test
