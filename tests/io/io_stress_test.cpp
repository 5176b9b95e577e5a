// tests/io stress: 10,000 concurrent TCP connections on one runtime (both backends), each
// echoing a message while all the others are open. Label stress, run serially. Needs about
// 20,100 descriptors: the test raises RLIMIT_NOFILE (soft, and hard when privileged) or skips
// with the reason.
#include <sys/resource.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "io_util.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;

class IoStress : public IoTest {};

// The client side runs in its own process (flood_client, next to this binary): the server
// under test then needs only ~10,000 descriptors of its own.
#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer gives every fiber a thread context (__tsan_create_fiber) and dies past 8,128
// of them: under TSAN the same test runs with 6,000 connections (one fiber each, plus a few).
constexpr int kFloodConns = 6000;
#else
constexpr int kFloodConns = 10000;
#endif

TEST_P(IoStress, TenThousandConcurrentConnectionsEcho) {
  constexpr int kConns = kFloodConns;
  if (raise_nofile(kConns + 512) < kConns + 512)
    GTEST_SKIP() << "RLIMIT_NOFILE hard limit below " << kConns + 512;
  auto listener = net::TcpListener::bind(net::SocketAddress::loopback(0), 8192);
  const auto port = listener.local_address().port();
  std::string exe(4096, 0);
  const ssize_t len = readlink("/proc/self/exe", exe.data(), exe.size());
  ASSERT_GT(len, 0);
  exe.resize(static_cast<std::size_t>(len));
  const std::string client = exe.substr(0, exe.rfind('/') + 1) + "upcall_io_flood_client";
  const std::string cmd = client + " " + std::to_string(port) + " " + std::to_string(kConns);
  std::atomic<int> open_now{0}, max_open{0}, accept_errors{0};
  std::string report;
  rt().block_on([&] {
    stop_source stop_accepting;
    WaitGroup servers;
    servers.add(1);
    spawn([&] {
      for (;;) {
        std::error_code ec;
        net::TcpStream s = listener.accept(ec, io::Limits(stop_accepting.get_token()));
        if (ec == std::errc::operation_canceled) break;
        if (ec) {
          ++accept_errors;
          this_task::sleep_for(1ms);
          continue;
        }
        servers.add(1);
        const int now = ++open_now;
        int m = max_open.load();
        while (now > m && !max_open.compare_exchange_weak(m, now)) {
        }
        spawn([&, s = std::move(s)]() mutable {
          char buf[64];
          std::error_code e;
          for (;;) {
            const std::size_t n = s.read_some(buf, sizeof buf, e, io::Limits::within(180s));
            if (e || n == 0) break;
            s.write_all(buf, n, e);
          }
          --open_now;
          servers.done();
        });
      }
      servers.done();
    });
    // The client process; popen blocks this fiber's thread in fread, so hand the core over.
    report = upcall::blocking([&] {
      std::string out;
      if (FILE* p = popen(cmd.c_str(), "r")) {
        char line[256];
        while (std::fgets(line, sizeof line, p)) out += line;
        pclose(p);
      }
      return out;
    });
    stop_accepting.request_stop();
    servers.wait();
  });
  std::printf("flood: %s", report.c_str());
  int echoed = -1, failed = -1, open = -1;
  ASSERT_EQ(std::sscanf(report.c_str(), "echoed=%d failed=%d open=%d", &echoed, &failed, &open), 3)
      << "client output: " << report;
  EXPECT_EQ(echoed, kConns);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(max_open.load(), kConns) << "not all connections were open at once on the server";
  EXPECT_EQ(accept_errors.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Io, IoStress,
                         ::testing::Combine(::testing::Values("uring", "epoll"),
                                            ::testing::Values(::upcall::test::MaxTestCores())),
                         ::upcall::test::IoName);

}  // namespace
}  // namespace upcall::test
