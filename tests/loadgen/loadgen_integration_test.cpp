// The load generator end to end (label integration): upcall_loadgen against the plain epoll
// echo server (bench/echo), against an in-test server that corrupts what it echoes, against a
// server that dies mid-run, and against a closed port. Rates are low and the bounds on achieved
// load generous: the machine is shared, and timing is the benchmarks' business.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "subprocess.hpp"

namespace loadgen::test {
namespace {

const std::string kLoadgen = UPCALL_LOADGEN_BIN;
const std::string kEpollServer = UPCALL_ECHO_EPOLL_BIN;

// A number from the flat one-line JSON of --json; NaN if the key is missing.
double json_number(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return std::nan("");
  return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
}

Finished run_loadgen(int port, std::vector<std::string> extra) {
  std::vector<std::string> args = {kLoadgen, "--port", std::to_string(port), "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_to_end(args, std::chrono::seconds(60));
}

// Every measured request ends in exactly one of the four outcomes.
void expect_accounted(const std::string& j) {
  EXPECT_EQ(json_number(j, "requests"), json_number(j, "completed") + json_number(j, "mismatches") +
                                            json_number(j, "failed") + json_number(j, "timeouts"))
      << j;
}

void expect_clean_run(const Finished& f, double rate) {
  ASSERT_FALSE(f.timed_out);
  ASSERT_TRUE(f.exited_with(0)) << "status " << f.status << ", stderr: " << f.err;
  const std::string& j = f.out;
  EXPECT_EQ(json_number(j, "mismatches"), 0) << j;
  EXPECT_EQ(json_number(j, "warmup_mismatches"), 0) << j;
  EXPECT_EQ(json_number(j, "failed"), 0) << j;
  EXPECT_EQ(json_number(j, "timeouts"), 0) << j;
  EXPECT_EQ(json_number(j, "conn_errors"), 0) << j;
  EXPECT_EQ(json_number(j, "completed"), json_number(j, "requests")) << j;
  expect_accounted(j);
  // ~rate requests in the 1 s measured interval (Poisson: sd = sqrt(rate)); generous bounds.
  EXPECT_GT(json_number(j, "requests"), 0.5 * rate) << j;
  EXPECT_LT(json_number(j, "requests"), 1.5 * rate) << j;
  EXPECT_GT(json_number(j, "achieved_rps"), 0.5 * rate) << j;
  EXPECT_LT(json_number(j, "achieved_rps"), 1.5 * rate) << j;
  EXPECT_GT(json_number(j, "p50_us"), 0) << j;
  EXPECT_LE(json_number(j, "p50_us"), json_number(j, "p99_us")) << j;
  EXPECT_LE(json_number(j, "p99_us"), json_number(j, "max_us")) << j;
}

TEST(LoadgenEcho, AgainstEpollServerEveryResponseMatches) {
  Server server({kEpollServer, "--port", "0", "--threads", "1"});
  ASSERT_GT(server.port(), 0) << "server did not start: " << server.first_line();
  Finished f = run_loadgen(server.port(), {"--conns", "4", "--rate", "1000", "--duration", "1",
                                           "--warmup", "0.2", "--size", "64"});
  expect_clean_run(f, 1000);
}

TEST(LoadgenEcho, PipelinedThreadsAndLargeMessages) {
  Server server({kEpollServer, "--port", "0", "--threads", "2"});
  ASSERT_GT(server.port(), 0) << "server did not start: " << server.first_line();
  // 100 KB messages do not fit one read or write: exercises partial I/O on both sides. A low
  // rate (10 MB/s each way): sanitizer builds generate and compare payloads ~10x slower.
  Finished f = run_loadgen(server.port(), {"--conns", "6", "--threads", "2", "--pipeline", "4",
                                           "--rate", "100", "--duration", "1", "--warmup",
                                           "0.2", "--size", "100000"});
  expect_clean_run(f, 100);
}

// A one-thread echo server on poll, with faults: flips one bit of every `corrupt_every`-th byte
// it returns (0: never), and stalls once for `stall_ms` after echoing `stall_after` bytes.
class FaultyServer {
 public:
  struct Faults {
    uint64_t corrupt_every = 0;
    uint64_t stall_after = 0;
    int stall_ms = 0;
  };
  explicit FaultyServer(Faults f) : faults_(f) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(listen_fd_, 16);
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FaultyServer() {
    stop_ = true;
    thread_.join();
    close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  void serve() {
    std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}};
    uint64_t total = 0;
    bool stalled = false;
    while (!stop_) {
      if (poll(fds.data(), fds.size(), 50) <= 0) continue;
      for (size_t i = 0; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (i == 0) {
          int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
          if (c >= 0) fds.push_back({c, POLLIN, 0});
          continue;
        }
        char buf[4096];
        ssize_t n = read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          close(fds[i].fd);
          fds[i].fd = -1;  // poll ignores negative fds
          continue;
        }
        for (ssize_t k = 0; k < n; ++k)
          if (++total % (faults_.corrupt_every ? faults_.corrupt_every : ~0ULL) == 0) buf[k] ^= 1;
        if (faults_.stall_ms && !stalled && total >= faults_.stall_after) {
          stalled = true;
          std::this_thread::sleep_for(std::chrono::milliseconds(faults_.stall_ms));
        }
        for (ssize_t off = 0; off < n;) {  // blocking socket: writes all of it
          ssize_t w = write(fds[i].fd, buf + off, static_cast<size_t>(n - off));
          if (w <= 0) break;
          off += w;
        }
      }
    }
    for (size_t i = 1; i < fds.size(); ++i)
      if (fds[i].fd >= 0) close(fds[i].fd);
  }

  Faults faults_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(LoadgenEcho, CorruptedEchoIsCountedAndFailsTheRun) {
  FaultyServer server({.corrupt_every = 1000});
  Finished f = run_loadgen(server.port(), {"--conns", "2", "--rate", "500", "--duration", "1",
                                           "--warmup", "0", "--size", "100"});
  ASSERT_FALSE(f.timed_out);
  EXPECT_TRUE(f.exited_with(3)) << "status " << f.status << ", stderr: " << f.err;
  EXPECT_NE(f.err.find("did not match"), std::string::npos) << f.err;
  // 100-byte requests, one corrupted byte per 1000: about one response in ten.
  const double mismatches = json_number(f.out, "mismatches");
  EXPECT_GT(mismatches, 0.02 * json_number(f.out, "requests")) << f.out;
  EXPECT_LT(mismatches, 0.5 * json_number(f.out, "requests")) << f.out;
  expect_accounted(f.out);
}

TEST(LoadgenEcho, StalledServerIsChargedForEveryDelayedRequest) {
  // One connection at 500/s; the server stalls 400 ms once, ~0.2 s into the run. Requests are
  // timed from their intended send time, so the ~200 requests that arrived during the stall all
  // see up to 400 ms (p90 far above 100 ms). A closed-loop client would time only the one
  // request in flight and report a p90 of microseconds (coordinated omission).
  FaultyServer server({.stall_after = 100 * 64, .stall_ms = 400});
  Finished f = run_loadgen(server.port(), {"--conns", "1", "--rate", "500", "--duration", "1",
                                           "--warmup", "0", "--size", "64"});
  ASSERT_FALSE(f.timed_out);
  ASSERT_TRUE(f.exited_with(0)) << "status " << f.status << ", stderr: " << f.err;
  EXPECT_GT(json_number(f.out, "p90_us"), 100'000) << f.out;
  EXPECT_GE(json_number(f.out, "max_us"), 350'000) << f.out;
  EXPECT_EQ(json_number(f.out, "timeouts"), 0) << f.out;
  expect_accounted(f.out);
}

TEST(LoadgenEcho, ServerDyingMidRunIsReportedNotACrash) {
  auto server = std::make_unique<Server>(
      std::vector<std::string>{kEpollServer, "--port", "0", "--threads", "1"});
  const int port = server->port();
  ASSERT_GT(port, 0) << "server did not start: " << server->first_line();
  Finished f;
  std::thread client([&] {
    f = run_loadgen(port, {"--conns", "2", "--rate", "400", "--duration", "2.5", "--warmup", "0",
                           "--timeout", "0.5"});
  });
  // Killed ~1 s into the 2.5 s schedule: requests completed before, failed after.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  server.reset();  // SIGTERM by PID, reaped
  client.join();
  ASSERT_FALSE(f.timed_out);
  ASSERT_TRUE(f.exited_with(0)) << "status " << f.status << ", stderr: " << f.err;
  EXPECT_GE(json_number(f.out, "conn_errors"), 1) << f.out;
  EXPECT_GT(json_number(f.out, "completed"), 0) << f.out;
  EXPECT_GT(json_number(f.out, "failed") + json_number(f.out, "timeouts"), 0) << f.out;
  expect_accounted(f.out);
}

TEST(LoadgenErrors, ClosedPortIsAOneLineErrorExit) {
  // A bound socket that does not listen: connecting to its port is refused, and no other
  // process can take the port while the test holds it.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  Finished f = run_to_end({kLoadgen, "--port", std::to_string(ntohs(a.sin_port)), "--conns",
                           "3", "--duration", "1"},
                          std::chrono::seconds(30));
  close(fd);
  ASSERT_FALSE(f.timed_out);
  EXPECT_TRUE(f.exited_with(2)) << "status " << f.status << ": " << f.err;
  EXPECT_NE(f.err.find("Connection refused"), std::string::npos) << f.err;
  EXPECT_EQ(f.err.find('\n'), f.err.size() - 1) << "one line: " << f.err;
  EXPECT_TRUE(f.out.empty()) << f.out;
}

TEST(LoadgenErrors, BadOptionIsAOneLineErrorExit) {
  Finished f = run_to_end({kLoadgen, "--port", "1", "--rate", "0"}, std::chrono::seconds(30));
  EXPECT_TRUE(f.exited_with(1)) << "status " << f.status;
  EXPECT_NE(f.err.find("--rate"), std::string::npos) << f.err;
  EXPECT_EQ(f.err.find('\n'), f.err.size() - 1) << "one line: " << f.err;
}

TEST(LoadgenErrors, TooManyConnectionsForTheHardFdLimit) {
  // Under a hard RLIMIT_NOFILE of 64, 1000 connections cannot be opened: say so before trying.
  Finished f = run_to_end({kLoadgen, "--port", "1", "--conns", "1000"}, std::chrono::seconds(30),
                          FdLimit{64, 64});
  EXPECT_TRUE(f.exited_with(2)) << "status " << f.status << ": " << f.err;
  EXPECT_NE(f.err.find("hard limit"), std::string::npos) << f.err;
  EXPECT_EQ(f.err.find('\n'), f.err.size() - 1) << "one line: " << f.err;
}

TEST(LoadgenErrors, RaisesTheSoftFdLimitWhenTheHardOneAllows) {
  // Soft limit 64 in the child (hard stays): 200 connections to the epoll server must work.
  Server server({kEpollServer, "--port", "0", "--threads", "1"});
  ASSERT_GT(server.port(), 0) << "server did not start: " << server.first_line();
  rlimit cur;
  getrlimit(RLIMIT_NOFILE, &cur);
  if (cur.rlim_max != RLIM_INFINITY && cur.rlim_max < 300) GTEST_SKIP() << "hard limit < 300";
  Finished f = run_to_end({kLoadgen, "--port", std::to_string(server.port()), "--conns", "200",
                           "--rate", "400", "--duration", "0.5", "--warmup", "0", "--json"},
                          std::chrono::seconds(60), FdLimit{64, 0});
  ASSERT_FALSE(f.timed_out);
  EXPECT_TRUE(f.exited_with(0)) << "status " << f.status << ": " << f.err;
  EXPECT_EQ(json_number(f.out, "conns"), 200) << f.out;
  EXPECT_EQ(json_number(f.out, "failed"), 0) << f.out;
  EXPECT_EQ(json_number(f.out, "mismatches"), 0) << f.out;
}

}  // namespace
}  // namespace loadgen::test
