// rocksdb-server end to end: the in-process experiment with each scheduler (the table's rows and
// numbers), range requests, database creation/reuse/refusal, bad flags, and network mode driven
// by the load generator. Each test uses its own small database so tests can run in parallel.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "../loadgen/subprocess.hpp"
#include "table.hpp"

using loadgen::test::run_to_end;
using loadgen::test::spawn_child;
using namespace rocksdb_test;

namespace {

const std::string kBin = UPCALL_ROCKSDB_SERVER_BIN;
const std::string kLoadgen = UPCALL_LOADGEN_BIN;

std::string db_dir(const std::string& name) {
  return std::string(UPCALL_TEST_TMP) + "/rocksdb_" + name + "_" + std::to_string(getpid());
}

void remove_tree(const std::string& path) {
  run_to_end({"/bin/rm", "-rf", path}, std::chrono::seconds(20));
}

// Every row: requests as given, percentiles ordered min <= 50 <= 99 <= 99.5 <= 99.9 <= max.
void expect_sane(const std::map<std::string, Row>& rows, long long lo, long long hi) {
  ASSERT_EQ(rows.size(), 5u);
  for (const auto& [name, r] : rows) {
    SCOPED_TRACE(name);
    EXPECT_GE(r.requests, lo);
    EXPECT_LE(r.requests, hi);
    EXPECT_EQ(r.requests, rows.at("Total").requests);
    for (int i = 0; i + 1 < 6; ++i) EXPECT_LE(r.v[i], r.v[i + 1]);
  }
  // A request's total is the sum of its stages: the fastest total is at least the fastest
  // service, and the slowest total at least the slowest of any stage.
  EXPECT_GE(rows.at("Total").v[0], rows.at("Worker Handle Time").v[0]);
  for (const auto& [name, r] : rows) EXPECT_LE(r.v[5], rows.at("Total").v[5] + 1) << name;
}

void run_in_process(const char* scheduler) {
  const std::string db = db_dir(scheduler);
  auto f = run_to_end({kBin, std::string("--scheduler=") + scheduler, "--rocksdb_db_path=" + db,
                       "--num_keys=20000", "--throughput=2000", "--experiment_duration=1",
                       "--discard_duration=200ms", "--num_workers=4"},
                      std::chrono::seconds(60));
  remove_tree(db);
  ASSERT_FALSE(f.timed_out);
  ASSERT_TRUE(f.exited_with(0)) << f.out << f.err;
  EXPECT_NE(f.out.find("slice=30us"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find(std::string(144, '-')), std::string::npos);
  auto rows = parse_table(f.out);
  // 2000 req/s for 1 s: Poisson, sd ~45.
  expect_sane(rows, 1600, 2400);
  // GETs of 10 us: service at least most of that (calibrated work), totals in range.
  EXPECT_GE(rows["Worker Handle Time"].v[0], 5);
  EXPECT_GE(rows["Total"].throughput, 1600);
}

}  // namespace

TEST(RocksdbServer, ThreadsInProcessPrintsTheTable) { run_in_process("cfs"); }
TEST(RocksdbServer, UpcallInProcessPrintsTheTable) { run_in_process("ghost"); }

TEST(RocksdbServer, RangeRequestsTakeTheirServiceTime) {
  const std::string db = db_dir("range");
  auto f = run_to_end({kBin, "--scheduler=upcall", "--rocksdb_db_path=" + db, "--num_keys=20000",
                       "--throughput=1000", "--experiment_duration=1", "--discard_duration=0",
                       "--range_query_ratio=0.05", "--range_duration=2ms", "--num_workers=8",
                       "--get_duration=20us", "--slice", "50us"},
                      std::chrono::seconds(60));
  remove_tree(db);
  ASSERT_TRUE(f.exited_with(0)) << f.out << f.err;
  auto rows = parse_table(f.out);
  expect_sane(rows, 800, 1200);
  EXPECT_NE(f.out.find("get_duration=20us range_duration=2ms slice=50us"), std::string::npos)
      << f.out;
  // ~50 RANGE requests of 2 ms: the slowest handler took at least that; the median request is
  // a GET of 20 us.
  EXPECT_GE(rows["Worker Handle Time"].v[5], 2000);
  EXPECT_GE(rows["Worker Handle Time"].v[1], 15);
}

TEST(RocksdbServer, ReusesItsDatabaseAndRefusesOthers) {
  const std::string db = db_dir("reuse");
  const std::vector<std::string> args = {kBin, "--rocksdb_db_path=" + db, "--num_keys=5000",
                                         "--throughput=500", "--experiment_duration=100ms",
                                         "--discard_duration=0"};
  auto first = run_to_end(args, std::chrono::seconds(60));
  ASSERT_TRUE(first.exited_with(0)) << first.err;
  EXPECT_NE(first.err.find("created keys=5000"), std::string::npos) << first.err;
  auto second = run_to_end(args, std::chrono::seconds(60));
  ASSERT_TRUE(second.exited_with(0)) << second.err;
  EXPECT_EQ(second.err.find("created"), std::string::npos) << second.err;
  remove_tree(db);

  // A directory with other files in it is never touched.
  const std::string other = db_dir("other");
  mkdir(other.c_str(), 0755);
  std::ofstream(other + "/precious.txt") << "keep me\n";
  auto refused = run_to_end({kBin, "--rocksdb_db_path=" + other, "--experiment_duration=100ms"},
                            std::chrono::seconds(30));
  EXPECT_TRUE(refused.exited_with(1));
  EXPECT_NE(refused.err.find("not a RocksDB database"), std::string::npos) << refused.err;
  std::ifstream kept(other + "/precious.txt");
  EXPECT_TRUE(kept.good());
  remove_tree(other);
}

TEST(RocksdbServer, BadFlagsGiveOneLineErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {"--scheduler=fifo"},         {"--throughput=-5"},  {"--get_duration=10xs"},
      {"--worker_cpus=0-9999"},     {"--batch=0"},        {"--range_query_ratio=1.5"},
      {"--experiment_duration=0"},  {"--slice=10ns"},     {"--bogus=1"},
      {"--num_workers"},            {"positional"},       {"--upcall-cores=99"},
      {"--throughput=10M", "--experiment_duration=3600"},
  };
  for (const auto& extra : bad) {
    std::vector<std::string> args = {kBin, "--rocksdb_db_path=/nonexistent/never"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto f = run_to_end(args, std::chrono::seconds(20));
    SCOPED_TRACE(extra[0]);
    EXPECT_TRUE(f.exited_with(1)) << f.err;
    ASSERT_FALSE(f.err.empty());
    EXPECT_EQ(f.err.find('\n'), f.err.size() - 1) << f.err;  // exactly one line
    EXPECT_EQ(f.err.rfind("rocksdb-server: ", 0), 0u) << f.err;
  }
}

namespace {

// Starts the server on `port`, runs the loadgen against it, stops the server with SIGTERM and
// returns {loadgen output, server output}.
std::pair<loadgen::test::Finished, std::string> network_run(const char* scheduler, int port) {
  const std::string db = db_dir(std::string("net_") + scheduler);
  auto c = spawn_child({kBin, std::string("--scheduler=") + scheduler, "--rocksdb_db_path=" + db,
                        "--num_keys=20000", "--port=" + std::to_string(port),
                        "--discard_duration=0", "--num_workers=8"});
  std::string out;
  auto read_some = [&](int ms) {
    pollfd p{c.out, POLLIN, 0};
    if (poll(&p, 1, ms) <= 0) return false;
    char buf[4096];
    const ssize_t n = read(c.out, buf, sizeof buf);
    if (n <= 0) return false;
    out.append(buf, static_cast<size_t>(n));
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (out.find("serving") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    read_some(100);
  auto lg = run_to_end({kLoadgen, "--port", std::to_string(port), "--conns", "8", "--rate",
                        "2000", "--duration", "1", "--warmup", "0.2",
                        "--protocol", "rocksdb:range=0.01,keys=20000"},
                       std::chrono::seconds(30));
  kill(c.pid, SIGTERM);
  while (read_some(5000)) {
  }
  int st;
  waitpid(c.pid, &st, 0);
  close(c.out);
  close(c.err);
  remove_tree(db);
  return {lg, out};
}

}  // namespace

class RocksdbNetwork : public ::testing::TestWithParam<const char*> {};

TEST_P(RocksdbNetwork, LoadgenGetsCheckedAnswersAndTheServerPrintsTheTable) {
  const int port = std::string(GetParam()) == "upcall" ? 22801 : 22802;
  auto [lg, out] = network_run(GetParam(), port);
  ASSERT_TRUE(lg.exited_with(0)) << lg.out << lg.err;  // 3 would mean mismatched answers
  EXPECT_NE(lg.out.find("mismatches 0, failed 0, timeouts 0"), std::string::npos) << lg.out;
  auto rows = parse_table(out);
  // 2000 req/s for 1.2 s (warm-up included) plus the drain: every request was answered.
  expect_sane(rows, 1800, 3000);
}

INSTANTIATE_TEST_SUITE_P(Schedulers, RocksdbNetwork, ::testing::Values("upcall", "threads"));
