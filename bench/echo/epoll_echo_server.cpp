// upcall_echo_epoll: the plain epoll peer of upcall's echo server (bench/echo/run.sh).
//
// Thread per core, nothing shared: each of --threads threads is pinned to one CPU of the
// process's affinity mask (in order, wrapping around), owns a listening socket bound with
// SO_REUSEPORT to the same port (the kernel spreads new connections over them) and one
// level-triggered epoll loop over its listener and its connections. A connection echoes what it
// reads; when the peer does not read fast enough, the unsent rest is kept and the connection
// stops reading until it is written (back-pressure instead of an unbounded buffer).
//
//   upcall_echo_epoll --port N [--threads N | --cores N] [--host 127.0.0.1]
//
// --port 0 picks a free port. Once every thread listens it prints one line to stdout,
// "upcall_echo_epoll: listening on HOST:PORT threads=N", which tests read to learn the port.
// Runs until killed (SIGTERM/SIGINT end it with status 0).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kBufSize = 64 * 1024;

struct Conn {
  int fd;
  std::vector<char> pending;  // read but not yet written back
  size_t pending_off = 0;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "upcall_echo_epoll: %s\n", what.c_str());
  std::exit(2);
}

int listen_on(const sockaddr_in& addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    die("bind to port " + std::to_string(ntohs(addr.sin_port)) + ": " + std::strerror(errno));
  if (listen(fd, 4096) != 0) die(std::string("listen: ") + std::strerror(errno));
  return fd;
}

void close_conn(int ep, Conn* c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  delete c;
}

// Writes c->pending; returns false if the connection failed.
bool write_pending(int ep, Conn* c) {
  while (c->pending_off < c->pending.size()) {
    ssize_t n = send(c->fd, c->pending.data() + c->pending_off, c->pending.size() - c->pending_off,
                     MSG_NOSIGNAL);
    if (n > 0) {
      c->pending_off += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      epoll_event ev{};
      ev.events = EPOLLOUT;  // stop reading until the echo is out
      ev.data.ptr = c;
      epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      return true;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  c->pending.clear();
  c->pending_off = 0;
  return true;
}

void serve(int listen_fd, int cpu) {
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.ptr = nullptr;  // nullptr marks the listener
  epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &lev);
  std::vector<char> buf(kBufSize);
  epoll_event events[256];
  while (true) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<Conn*>(events[i].data.ptr);
      if (c == nullptr) {
        while (true) {
          int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;  // EAGAIN, or a transient error such as EMFILE: retried on the next event
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.ptr = new Conn{fd, {}, 0};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if (!c->pending.empty()) {  // EPOLLOUT (or an error) while an echo is pending
        if (!write_pending(ep, c)) {
          close_conn(ep, c);
          continue;
        }
        if (c->pending.empty()) {
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.ptr = c;
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
        continue;
      }
      ssize_t r = read(c->fd, buf.data(), buf.size());
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        close_conn(ep, c);
        continue;
      }
      if (r < 0) continue;
      c->pending.assign(buf.data(), buf.data() + r);
      c->pending_off = 0;
      if (!write_pending(ep, c)) close_conn(ep, c);
    }
  }
}

int parse_int(const char* opt, const char* v, int lo, int hi) {
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || x < lo || x > hi)
    die(std::string("bad value '") + v + "' for " + opt + " (" + std::to_string(lo) + ".." +
        std::to_string(hi) + ")");
  return static_cast<int>(x);
}

}  // namespace

int main(int argc, char** argv) {
  int port = -1, threads = 1;
  std::string host = "127.0.0.1";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    if (auto eq = a.find('='); eq != std::string::npos) {
      v = a.substr(eq + 1);
      a.resize(eq);
    } else if (i + 1 < argc) {
      v = argv[++i];
    } else {
      die("option " + a + " needs a value; usage: --port N [--threads N] [--host ADDR]");
    }
    if (a == "--port") port = parse_int("--port", v.c_str(), 0, 65535);
    else if (a == "--threads" || a == "--cores") threads = parse_int(a.c_str(), v.c_str(), 1, 1024);
    else if (a == "--host") host = v;
    else die("unknown option " + a + "; usage: --port N [--threads N] [--host ADDR]");
  }
  if (port < 0) die("--port is required (0 picks a free port)");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) die("bad IPv4 address " + host);

  // The first listener fixes the port (a free one for --port 0); the others join it.
  std::vector<int> listeners{listen_on(addr)};
  socklen_t len = sizeof addr;
  getsockname(listeners[0], reinterpret_cast<sockaddr*>(&addr), &len);
  for (int t = 1; t < threads; ++t) listeners.push_back(listen_on(addr));

  cpu_set_t mask;
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof mask, &mask) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &mask)) cpus.push_back(c);

  // SIGTERM/SIGINT go to the main thread only (blocked before the serving threads inherit the
  // mask), which exits cleanly; the serving threads never end.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back(serve, listeners[static_cast<size_t>(t)],
                      cpus.empty() ? -1 : cpus[static_cast<size_t>(t) % cpus.size()]);
  std::printf("upcall_echo_epoll: listening on %s:%d threads=%d\n", host.c_str(),
              ntohs(addr.sin_port), threads);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  std::_Exit(0);
}
