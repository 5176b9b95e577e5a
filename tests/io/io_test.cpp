// tests/io: the fiber-blocking I/O calls (upcall/io.hpp, net.hpp, file.hpp) on both backends
// and both core counts: echo correctness, deadlines and cancellation (a cancelled recv never
// writes into its buffer after it returned), files, error paths (EMFILE keeps serving, reset
// and half-closed peers, partial writes), plain-thread callers, idle cores woken by I/O.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "io_util.hpp"

namespace upcall::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A connected pair of non-blocking TCP sockets on loopback, made with plain syscalls.
struct Pair {
  int a = -1, b = -1;
  Pair() {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof in;
    if (bind(l, reinterpret_cast<sockaddr*>(&in), sizeof in) != 0 || listen(l, 1) != 0 ||
        getsockname(l, reinterpret_cast<sockaddr*>(&in), &len) != 0)
      std::abort();
    a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(a, reinterpret_cast<sockaddr*>(&in), sizeof in) != 0) std::abort();
    b = accept4(l, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (b < 0) std::abort();
    ::close(l);
  }
  ~Pair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
};

class IoBasics : public IoTest {};

TEST_P(IoBasics, BackendIsReportedOnFibersAndThreads) {
  EXPECT_EQ(io::backend(), "thread");
  const std::string seen = rt().block_on([] { return std::string(io::backend()); });
  EXPECT_EQ(seen, backend());
}

TEST_P(IoBasics, EchoThousandConnectionsRandomSizes) {
  constexpr int kConns = 1000;
  raise_nofile(4 * kConns + 256);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 2 * kConns + 128)
    GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << rl.rlim_max << " too low for " << kConns
                 << " connections";
  auto listener = net::TcpListener::bind(net::SocketAddress::loopback(0));
  const net::SocketAddress at = listener.local_address();
  std::atomic<long> bytes_checked{0};
  std::atomic<int> bad{0};
  std::mutex why_mu;
  std::string why;  // the first failure, guarded by why_mu
  auto fail = [&](std::string what) {
    ++bad;
    std::lock_guard<std::mutex> lock(why_mu);
    if (why.empty()) why = std::move(what);
  };
  rt().block_on([&] {
    WaitGroup served;
    served.add(kConns);
    auto acceptor = spawn([&] {
      for (int i = 0; i < kConns; ++i) {
        std::error_code ec;
        net::TcpStream s = listener.accept(ec);
        if (ec) {
          fail("accept: " + ec.message());
          served.done();
          continue;
        }
        spawn([&served, s = std::move(s)]() mutable {
          char buf[8192];
          for (;;) {
            std::error_code e;
            const std::size_t n = s.read_some(buf, sizeof buf, e);
            if (e || n == 0) break;
            s.write_all(buf, n, e);
            if (e) break;
          }
          served.done();
        });
      }
    });
    std::vector<JoinHandle<void>> clients;
    for (int c = 0; c < kConns; ++c) {
      clients.push_back(spawn([&, c] {
        std::mt19937 rng(static_cast<unsigned>(c) * 7919u + 1);
        std::error_code ec;
        net::TcpStream s = net::TcpStream::connect(at, ec);
        if (ec) {
          fail("connect: " + ec.message());
          return;
        }
        for (int round = 0; round < 3; ++round) {
          const std::size_t n = 1 + rng() % 20000;
          std::vector<unsigned char> out(n), in(n);
          for (auto& b : out) b = static_cast<unsigned char>(rng());
          // Send and receive concurrently: a big message does not fit the socket buffers.
          auto writer = spawn([&] {
            std::error_code we;
            s.write_all(out.data(), n, we);
            if (we) fail("client write: " + we.message());
          });
          const std::size_t got = s.read_exact(in.data(), n, ec);
          writer.join();
          if (ec || got != n || in != out) {
            fail("client " + std::to_string(c) + " round " + std::to_string(round) + ": got " +
                 std::to_string(got) + " of " + std::to_string(n) + " (" + ec.message() + ")" +
                 (in != out && got == n ? " bytes differ" : ""));
            return;
          }
          bytes_checked += static_cast<long>(n);
        }
        s.shutdown();
        char tail;
        if (s.read_some(&tail, 1, ec) != 0 || ec) fail("tail: " + ec.message());  // server closes after EOF
      }));
    }
    for (auto& h : clients) h.join();
    served.wait();
    acceptor.join();
  });
  EXPECT_EQ(bad.load(), 0) << "first failure: " << why;
  EXPECT_GT(bytes_checked.load(), kConns * 3L);
}

TEST_P(IoBasics, RecvDeadlineTimesOutAfterItsDeadline) {
  Pair p;
  const auto r = rt().block_on([&] {
    char buf[16];
    const auto t0 = Clock::now();
    io::Result res = io::recv(p.b, buf, sizeof buf, 0, io::Limits::within(50ms));
    return std::make_pair(res, Clock::now() - t0);
  });
  EXPECT_EQ(r.first.error, std::errc::timed_out);
  EXPECT_EQ(r.first.value, 0u);
  EXPECT_GE(r.second, 50ms);
  EXPECT_LT(r.second, 5s);
}

TEST_P(IoBasics, AcceptAndPollHonourDeadlines) {
  auto l = net::TcpListener::bind(net::SocketAddress::loopback(0));
  Pair p;
  rt().block_on([&] {
    std::error_code ec;
    net::TcpStream s = l.accept(ec, io::Limits::within(20ms));
    EXPECT_EQ(ec, std::errc::timed_out);
    EXPECT_FALSE(s);
    io::Result r = io::poll(p.b, POLLIN, io::Limits::within(20ms));
    EXPECT_EQ(r.error, std::errc::timed_out);
    ASSERT_EQ(::write(p.a, "x", 1), 1);
    r = io::poll(p.b, POLLIN, io::Limits::within(5s));
    EXPECT_FALSE(r.error);
    EXPECT_TRUE(r.value & POLLIN);
  });
}

// The cancelled recv's buffer lives in this frame; the function returns right after the call.
__attribute__((noinline)) io::Result cancelled_recv(int fd, stop_token tok, std::uintptr_t* where) {
  char buf[512];
  std::memset(buf, 0, sizeof buf);
  *where = reinterpret_cast<std::uintptr_t>(buf);
  return io::recv(fd, buf, sizeof buf, 0, io::Limits(tok));
}

// Fills a frame at (about) the same depth with a pattern, lets the peer send, and checks that
// nothing wrote into it. Under ASAN a write by the runtime into the dead frame would also be
// reported; a write by the kernel would show as a changed pattern.
// The canary covers the start of the dead buffer, where a late recv would put its bytes
// (checked, so the test cannot pass vacuously).
__attribute__((noinline)) ::testing::AssertionResult frame_untouched_while(int peer_fd,
                                                                        std::uintptr_t dead) {
  volatile unsigned char canary[8192];
  const auto lo = reinterpret_cast<std::uintptr_t>(&canary[0]);
  if (dead < lo || dead + 64 > lo + sizeof canary)
    return ::testing::AssertionFailure() << "the canary [" << lo << ", +" << sizeof canary
                                         << ") does not cover the dead buffer at " << dead;
  for (auto& c : canary) c = 0xAB;
  if (::write(peer_fd, "late data", 9) != 9) return ::testing::AssertionFailure() << "write";
  this_task::sleep_for(30ms);  // the completion would land now if the request were alive
  for (auto& c : canary)
    if (c != 0xAB) return ::testing::AssertionFailure() << "the dead frame was written to";
  return ::testing::AssertionSuccess();
}

TEST_P(IoBasics, CancelledRecvReturnsAfterItsCompletionAndNeverWritesLater) {
  Pair p;
  rt().block_on([&] {
    stop_source src;
    auto stopper = spawn([&] {
      this_task::sleep_for(20ms);
      src.request_stop();
    });
    const auto t0 = Clock::now();
    std::uintptr_t dead = 0;
    io::Result r = cancelled_recv(p.b, src.get_token(), &dead);
    EXPECT_EQ(r.error, std::errc::operation_canceled);
    EXPECT_EQ(r.value, 0u);
    EXPECT_GE(Clock::now() - t0, 15ms);
    stopper.join();
    EXPECT_TRUE(frame_untouched_while(p.a, dead));
    // The cancelled request consumed nothing: the late data is still there.
    char buf[16] = {};
    io::Result again = io::recv(p.b, buf, sizeof buf, 0, io::Limits::within(5s));
    EXPECT_FALSE(again.error);
    EXPECT_EQ(std::string(buf, again.value), "late data");
  });
}

TEST_P(IoBasics, AlreadyStoppedTokenCancelsAtOnce) {
  Pair p;
  rt().block_on([&] {
    stop_source src;
    src.request_stop();
    char buf[8];
    io::Result r = io::recv(p.b, buf, sizeof buf, 0, io::Limits(src.get_token()));
    EXPECT_EQ(r.error, std::errc::operation_canceled);
  });
}

TEST_P(IoBasics, CompletedRequestWinsOverLateCancel) {
  Pair p;
  ASSERT_EQ(::write(p.a, "ready", 5), 5);
  rt().block_on([&] {
    this_task::sleep_for(5ms);
    char buf[8];
    io::Result r = io::recv(p.b, buf, sizeof buf, 0, io::Limits::within(0ms));
    // Either it completed (data was there) or it timed out; never a half state.
    if (!r.error) EXPECT_EQ(std::string(buf, r.value), "ready");
    else EXPECT_EQ(r.error, std::errc::timed_out);
  });
}

TEST_P(IoBasics, FileWriteSyncReadRoundTrip) {
  char path[] = "/tmp/upcall-io-file-XXXXXX";
  const int tmp = mkstemp(path);
  ASSERT_GE(tmp, 0);
  ::close(tmp);
  rt().block_on([&] {
    std::vector<char> data(300000);
    std::mt19937 rng(42);
    for (auto& c : data) c = static_cast<char>(rng());
    {
      File f = File::open(path, O_RDWR | O_TRUNC);
      f.write_at(data.data(), data.size(), 0);
      EXPECT_FALSE(f.sync());
      EXPECT_FALSE(f.sync(true));
      std::error_code ec;
      EXPECT_EQ(f.size(ec), static_cast<off_t>(data.size()));
      // Positional writes leave the position; sequential ones move it.
      const char head[] = "HEAD";
      EXPECT_EQ(f.write(head, 4, ec), 4u);
      EXPECT_FALSE(ec);
      std::memcpy(data.data(), head, 4);
    }
    File f = File::open(path, O_RDONLY);
    std::vector<char> back(data.size() + 10);
    std::error_code ec;
    EXPECT_EQ(f.read_at(back.data(), back.size(), 0, ec), data.size());
    EXPECT_FALSE(ec);
    back.resize(data.size());
    EXPECT_EQ(back, data);
    char four[4];
    EXPECT_EQ(f.read(four, 4, ec), 4u);
    EXPECT_EQ(std::memcmp(four, "HEAD", 4), 0);
    // Errors come back as error codes with the errno.
    File missing = File::open("/nonexistent/upcall", O_RDONLY, 0, ec);
    EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
    EXPECT_FALSE(missing);
    EXPECT_THROW(File::open("/nonexistent/upcall"), std::system_error);
    io::Result r = io::read(-1, four, 4);
    EXPECT_EQ(r.error, std::errc::bad_file_descriptor);
  });
  unlink(path);
}

TEST_P(IoBasics, ReadvWritevAndPipes) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  rt().block_on([&] {
    char a[] = "hello ", b[] = "world";
    iovec out[2] = {{a, 6}, {b, 5}};
    io::Result w = io::writev(fds[1], out, 2);
    EXPECT_FALSE(w.error);
    EXPECT_EQ(w.value, 11u);
    char x[6] = {}, y[5] = {};
    iovec in[2] = {{x, 6}, {y, 5}};
    io::Result r = io::readv(fds[0], in, 2, io::Limits::within(5s));
    EXPECT_EQ(r.value, 11u);
    EXPECT_EQ(std::string(x, 6) + std::string(y, 5), "hello world");
    // A reader waits in its fiber while another fiber writes later.
    auto writer = spawn([&] {
      this_task::sleep_for(10ms);
      io::write_all(fds[1], "late", 4);
    });
    char buf[4];
    io::Result got = io::read_exact(fds[0], buf, 4, io::Limits::within(5s));
    EXPECT_FALSE(got.error);
    EXPECT_EQ(std::string(buf, 4), "late");
    writer.join();
  });
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_P(IoBasics, HalfClosedPeerGetsEveryByteThenEof) {
  auto l = net::TcpListener::bind(net::SocketAddress::loopback(0));
  const auto at = l.local_address();
  rt().block_on([&] {
    auto server = spawn([&] {
      net::TcpStream s = l.accept();
      std::string all;
      char buf[100];
      for (;;) {
        const std::size_t n = s.read_some(buf, sizeof buf);
        if (n == 0) break;
        all.append(buf, n);
      }
      s.write_all(all.data(), all.size());  // still writable after the peer's SHUT_WR
      return all.size();
    });
    net::TcpStream c = net::TcpStream::connect(at);
    std::string msg(5000, 'q');
    c.write_all(msg.data(), msg.size());
    EXPECT_FALSE(c.shutdown(SHUT_WR));
    std::string back(msg.size(), 0);
    std::error_code ec;
    EXPECT_EQ(c.read_exact(back.data(), back.size(), ec), msg.size());
    EXPECT_EQ(back, msg);
    char extra;
    EXPECT_EQ(c.read_exact(&extra, 1, ec), 0u);
    EXPECT_EQ(ec, io::eof_error());
    EXPECT_EQ(server.join(), msg.size());
  });
}

TEST_P(IoBasics, ResetPeerGivesErrorsNotSignals) {
  auto l = net::TcpListener::bind(net::SocketAddress::loopback(0));
  const auto at = l.local_address();
  rt().block_on([&] {
    net::TcpStream c = net::TcpStream::connect(at);
    net::TcpStream s = l.accept();
    linger lg{1, 0};
    ASSERT_EQ(setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    c.close();  // RST
    this_task::sleep_for(10ms);
    char buf[8];
    std::error_code ec;
    const std::size_t n = s.read_some(buf, sizeof buf, ec, io::Limits::within(5s));
    EXPECT_TRUE(ec == std::errc::connection_reset || (n == 0 && !ec)) << ec.message();
    // Writing to a reset connection: EPIPE or ECONNRESET, and no SIGPIPE kills us.
    std::vector<char> big(1 << 20, 'x');
    s.write_all(big.data(), big.size(), ec);
    EXPECT_TRUE(ec == std::errc::broken_pipe || ec == std::errc::connection_reset) << ec.message();
  });
}

TEST_P(IoBasics, PartialWritesToASlowReaderDeliverEverything) {
  auto l = net::TcpListener::bind(net::SocketAddress::loopback(0));
  const auto at = l.local_address();
  rt().block_on([&] {
    constexpr std::size_t kBytes = 4 << 20;
    auto reader = spawn([&] {
      net::TcpStream s = l.accept();
      std::size_t total = 0, sum = 0;
      char buf[777];  // odd size: many partial reads
      for (;;) {
        const std::size_t n = s.read_some(buf, sizeof buf);
        if (n == 0) break;
        for (std::size_t i = 0; i < n; ++i) sum += static_cast<unsigned char>(buf[i]);
        total += n;
        if (total % 97 == 0) this_task::yield();
      }
      return std::make_pair(total, sum);
    });
    net::TcpStream c = net::TcpStream::connect(at);
    std::vector<char> data(kBytes);
    std::size_t sum = 0;
    for (std::size_t i = 0; i < kBytes; ++i) {
      data[i] = static_cast<char>(i * 31 + 7);
      sum += static_cast<unsigned char>(data[i]);
    }
    std::error_code ec;
    EXPECT_EQ(c.write_all(data.data(), data.size(), ec), kBytes);
    EXPECT_FALSE(ec);
    c.shutdown();
    const auto got = reader.join();
    EXPECT_EQ(got.first, kBytes);
    EXPECT_EQ(got.second, sum);
  });
}

// A send that finds room returns without waiting (no ring round trip): a fiber sending in a
// loop must still let its core's other fibers run (every 32nd send yields first), or on one
// core nothing else would run until the send buffer filled. 1,000 x 16 B never fill it.
TEST_P(IoBasics, SendLoopLetsTheCoresOtherFibersRun) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  constexpr int kSends = 1000;
  constexpr std::size_t kLen = 16;
  std::thread reader([&] {
    char buf[4096];
    std::size_t total = 0;
    while (total < kSends * kLen) {
      const ssize_t n = ::read(sv[1], buf, sizeof buf);
      if (n <= 0) break;
      total += static_cast<std::size_t>(n);
    }
  });
  const long ticks_during = rt().block_on([&] {
    std::atomic<bool> sending{false}, done{false};
    std::atomic<long> ticks{0};
    auto ticker = spawn([&] {
      while (!done.load()) {
        if (sending.load()) ticks.fetch_add(1);
        this_task::yield();
      }
    });
    this_task::yield();  // let the ticker start
    const char msg[kLen] = "fifteen bytes..";
    sending = true;
    for (int i = 0; i < kSends; ++i) {
      const io::Result r = io::send(sv[0], msg, kLen, 0);
      EXPECT_FALSE(r.error) << r.error.message();
      EXPECT_EQ(r.value, kLen);
    }
    sending = false;
    done = true;
    ticker.join();
    return ticks.load();
  });
  ::close(sv[0]);  // EOF for the reader even if some send failed
  reader.join();
  ::close(sv[1]);
  EXPECT_GE(ticks_during, kSends / 32 / 2) << "the sending fiber kept its core";
}

TEST_P(IoBasics, AcceptUnderEmfileReturnsErrorsAndKeepsServing) {
  auto l = net::TcpListener::bind(net::SocketAddress::loopback(0));
  const auto at = l.local_address();
  constexpr int kClients = 12;
  // Clients connect and send one byte first (the kernel completes their handshakes into the
  // backlog); the server echoes each byte back.
  std::vector<int> clients;
  for (int i = 0; i < kClients; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::connect(fd, at.data(), at.size()), 0);
    ASSERT_EQ(::write(fd, "e", 1), 1);
    clients.push_back(fd);
  }
  rlimit saved{};
  getrlimit(RLIMIT_NOFILE, &saved);
  std::atomic<int> emfile{0}, served{0};
  rt().block_on([&] {
    auto serve = [&](std::vector<net::TcpStream>& conns) {
      for (auto& c : conns) {
        char b;
        std::error_code ec;
        if (c.read_some(&b, 1, ec, io::Limits::within(5s)) == 1 && c.write_all(&b, 1, ec) == 1)
          ++served;
      }
      conns.clear();
    };
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(count_open_fds() + 3);  // room for 3 accepts
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    std::vector<net::TcpStream> conns;
    int accepted = 0;
    while (accepted < kClients) {
      std::error_code ec;
      net::TcpStream s = l.accept(ec, io::Limits::within(5s));
      if (ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system) {
        ++emfile;
        // The server keeps serving what it has, then gets its descriptors back.
        serve(conns);
        setrlimit(RLIMIT_NOFILE, &saved);
        continue;
      }
      ASSERT_FALSE(ec) << ec.message();
      conns.push_back(std::move(s));
      ++accepted;
    }
    serve(conns);
  });
  setrlimit(RLIMIT_NOFILE, &saved);
  int echoed = 0;
  for (int fd : clients) {
    char b = 0;
    pollfd pf{fd, POLLIN, 0};
    if (::poll(&pf, 1, 5000) == 1 && ::read(fd, &b, 1) == 1 && b == 'e') ++echoed;
    ::close(fd);
  }
  EXPECT_GE(emfile.load(), 1) << "the lowered RLIMIT_NOFILE never made accept fail";
  EXPECT_EQ(served.load(), kClients);
  EXPECT_EQ(echoed, kClients);
}

TEST_P(IoBasics, PlainThreadCallsBlockTheThreadWithLimits) {
  Pair p;
  std::thread t([&] {
    EXPECT_EQ(io::backend(), "thread");
    char buf[8];
    io::Result r = io::recv(p.b, buf, sizeof buf, 0, io::Limits::within(20ms));
    EXPECT_EQ(r.error, std::errc::timed_out);
    stop_source src;
    std::thread stopper([&] {
      std::this_thread::sleep_for(20ms);
      src.request_stop();
    });
    r = io::recv(p.b, buf, sizeof buf, 0, io::Limits(src.get_token()));
    EXPECT_EQ(r.error, std::errc::operation_canceled);
    stopper.join();
    ASSERT_EQ(::write(p.a, "abc", 3), 3);
    r = io::recv(p.b, buf, sizeof buf, 0, io::Limits::within(5s));
    EXPECT_EQ(std::string(buf, r.value), "abc");
  });
  t.join();
}

TEST_P(IoBasics, InsideBlockingCallsUseTheThread) {
  Pair p;
  rt().block_on([&] {
    const std::string b = upcall::blocking([] { return std::string(io::backend()); });
    EXPECT_EQ(b, "thread");
    ASSERT_EQ(::write(p.a, "zz", 2), 2);
    const io::Result r = upcall::blocking([&] {
      char buf[4];
      return io::recv(p.b, buf, sizeof buf, 0, io::Limits::within(5s));
    });
    EXPECT_EQ(r.value, 2u);
  });
}

TEST_P(IoBasics, ParkedCoresWakeForCompletionsFromOutside) {
  // Every core goes idle (parks in its ring / epoll) while fibers wait for data that plain
  // threads send much later; each completion must wake its core. Repeated to catch races.
  for (int round = 0; round < 20; ++round) {
    Pair p;
    std::thread sender([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(round % 2 ? 1 : 15));
      ASSERT_EQ(::write(p.a, "wake", 4), 4);
    });
    const std::string got = rt().block_on([&] {
      char buf[8];
      const io::Result r = io::recv(p.b, buf, sizeof buf, 0, io::Limits::within(10s));
      return std::string(buf, r.value);
    });
    sender.join();
    ASSERT_EQ(got, "wake") << "round " << round;
  }
}

TEST_P(IoBasics, UdpRoundTripAndResolve) {
  rt().block_on([&] {
    auto a = net::UdpSocket::bind(net::SocketAddress::loopback(0));
    auto b = net::UdpSocket::bind(net::SocketAddress::loopback(0));
    std::error_code ec;
    EXPECT_EQ(a.send_to("ping", 4, b.local_address(), ec), 4u);
    char buf[16];
    net::SocketAddress from;
    const std::size_t n = b.recv_from(buf, sizeof buf, &from, ec, io::Limits::within(5s));
    EXPECT_FALSE(ec);
    EXPECT_EQ(std::string(buf, n), "ping");
    EXPECT_EQ(from.port(), a.local_address().port());
    b.recv_from(buf, sizeof buf, &from, ec, io::Limits::within(10ms));
    EXPECT_EQ(ec, std::errc::timed_out);
    auto addrs = net::resolve("localhost", "80", ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_FALSE(addrs.empty());
    net::resolve("no-such-host.invalid", "80", ec);
    EXPECT_TRUE(ec);
    EXPECT_EQ(net::SocketAddress::parse("127.0.0.1:8080").to_string(), "127.0.0.1:8080");
    EXPECT_EQ(net::SocketAddress::parse("[::1]:99").port(), 99);
    EXPECT_THROW(net::SocketAddress::parse("localhost"), std::invalid_argument);
  });
}

UPCALL_INSTANTIATE_IO(IoBasics);

}  // namespace
}  // namespace upcall::test

namespace upcall::test {
namespace {

// io_uring_setup fails with EPERM from here on in this process (a seccomp filter), as under
// kernel.io_uring_disabled=2 or a container's seccomp profile.
void forbid_io_uring() {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
    std::_Exit(3);
}

TEST(IoFallback, WithoutIoUringTheEpollBackendIsAnnouncedAndWorks) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        forbid_io_uring();
        Options o;
        o.cores = 1;
        Runtime rt(o);
        Pair p;
        const bool ok = rt.block_on([&] {
          if (::write(p.a, "x", 1) != 1) return false;
          char b;
          const io::Result r = io::recv(p.b, &b, 1, 0, io::Limits::within(5s));
          return io::backend() == "epoll" && r.value == 1 && b == 'x';
        });
        std::fprintf(stderr, "effective io=%s\n", rt.config().io.c_str());
        std::_Exit(ok && rt.config().io == "epoll" ? 0 : 1);
      },
      ::testing::ExitedWithCode(0),
      "io=uring unavailable: io_uring_setup: Operation not permitted.*using the epoll "
      "readiness backend(.|\n)*effective io=epoll");
}

}  // namespace
}  // namespace upcall::test
