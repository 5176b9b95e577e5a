// upcall_echo_asio: the Boost.Asio peer of upcall's echo server (bench/echo/run.sh), written as
// the Asio examples write an echo server: a session object per connection, async_read_some
// into a 64 KiB buffer, async_write of what was read, and again (callbacks, no coroutines).
// Uses standalone Asio (Debian libasio-dev, <asio.hpp>).
//
// Threading: one io_context per thread, thread per core, the same shape as the plain epoll peer:
// each of --threads threads is pinned to one CPU of the affinity mask and runs its own
// io_context with its own acceptor bound with SO_REUSEPORT to the shared port, so connections
// never move between threads and no strand or lock is needed. (The other common shape, one
// io_context run by N threads, would add a shared epoll descriptor and its locking.)
//
//   upcall_echo_asio --port N [--threads N | --cores N] [--host 127.0.0.1]
//
// --port 0 picks a free port; prints "upcall_echo_asio: listening on HOST:PORT threads=N" once
// listening. Runs until killed.
#include <pthread.h>
#include <sched.h>

#include <asio.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using asio::ip::tcp;
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket s) : socket_(std::move(s)) {}
  void start() { read(); }

 private:
  void read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(buf_), [this, self](std::error_code ec, size_t n) {
      if (!ec) write(n);
    });
  }
  void write(size_t n) {
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(buf_, n), [this, self](std::error_code ec, size_t) {
      if (!ec) read();
    });
  }

  tcp::socket socket_;
  char buf_[64 * 1024];
};

void accept_loop(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](std::error_code ec, tcp::socket s) {
    if (!ec) {
      s.set_option(tcp::no_delay(true));
      std::make_shared<Session>(std::move(s))->start();
    }
    accept_loop(acceptor);
  });
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "upcall_echo_asio: %s\n", what.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int port = -1, threads = 1;
  std::string host = "127.0.0.1";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) die("option " + a + " needs a value; usage: --port N [--threads N]");
    std::string v = argv[++i];
    char* end = nullptr;
    long x = std::strtol(v.c_str(), &end, 10);
    bool num = !v.empty() && *end == '\0';
    if (a == "--port" && num && x >= 0 && x <= 65535) port = static_cast<int>(x);
    else if ((a == "--threads" || a == "--cores") && num && x >= 1 && x <= 1024)
      threads = static_cast<int>(x);
    else if (a == "--host") host = v;
    else die("bad option " + a + " " + v + "; usage: --port N [--threads N] [--host ADDR]");
  }
  if (port < 0) die("--port is required (0 picks a free port)");

  std::vector<int> cpus;
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof mask, &mask) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &mask)) cpus.push_back(c);

  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  tcp::endpoint ep(asio::ip::make_address(host), static_cast<unsigned short>(port));
  try {
    for (int t = 0; t < threads; ++t) {
      contexts.push_back(std::make_unique<asio::io_context>(1));  // 1: single-threaded hint
      auto acc = std::make_unique<tcp::acceptor>(*contexts.back());
      acc->open(ep.protocol());
      acc->set_option(tcp::acceptor::reuse_address(true));
      acc->set_option(ReusePort(true));
      acc->bind(ep);
      acc->listen(4096);
      if (t == 0) ep = acc->local_endpoint();  // the port the others join (--port 0)
      accept_loop(*acc);
      acceptors.push_back(std::move(acc));
    }
  } catch (const std::exception& e) {
    die(std::string("cannot listen on ") + host + ":" + std::to_string(ep.port()) + ": " +
        e.what());
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      if (!cpus.empty()) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpus[static_cast<size_t>(t) % cpus.size()], &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
      }
      contexts[static_cast<size_t>(t)]->run();
    });
  }
  std::printf("upcall_echo_asio: listening on %s:%u threads=%d\n", host.c_str(), ep.port(),
              threads);
  std::fflush(stdout);
  for (auto& th : pool) th.join();
}
