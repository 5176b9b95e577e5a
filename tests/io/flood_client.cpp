// tests/io/flood_client: the client side of IoStress.TenThousandConcurrentConnectionsEcho, in
// its own process so that the server under test has the descriptor budget to itself. Opens N
// connections to 127.0.0.1:PORT with plain non-blocking sockets and epoll, sends a 16-byte
// message on each, checks each echo, keeps every connection open until all have echoed (or a
// deadline passes), then prints "echoed=E failed=F open=O" and closes them.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: flood_client PORT N\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int n = std::atoi(argv[2]);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int ep = epoll_create1(0);
  struct Conn {
    int fd = -1;
    int got = 0;
    bool sent = false, done = false;
    char msg[16], back[16];
  };
  std::vector<Conn> conns(n);
  int failed = 0, echoed = 0, open = 0;
  for (int i = 0; i < n; ++i) {
    Conn& c = conns[i];
    std::snprintf(c.msg, sizeof c.msg, "m%014d", i);
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c.fd < 0) {
      ++failed;
      c.done = true;
      continue;
    }
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 && errno != EINPROGRESS) {
      ++failed;
      c.done = true;
      continue;
    }
    ++open;
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::vector<epoll_event> evs(1024);
  while (echoed + failed < n && std::chrono::steady_clock::now() < deadline) {
    const int k = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 1000);
    for (int e = 0; e < k; ++e) {
      Conn& c = conns[evs[e].data.u32];
      if (c.done) continue;
      if (evs[e].events & (EPOLLERR | EPOLLHUP)) {
        ++failed;
        c.done = true;
        continue;
      }
      if (!c.sent && (evs[e].events & EPOLLOUT)) {
        if (write(c.fd, c.msg, sizeof c.msg) != static_cast<ssize_t>(sizeof c.msg)) {
          ++failed;
          c.done = true;
          continue;
        }
        c.sent = true;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = evs[e].data.u32;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
      }
      if (evs[e].events & EPOLLIN) {
        const ssize_t r = read(c.fd, c.back + c.got, sizeof c.back - c.got);
        if (r <= 0) {
          if (r < 0 && errno == EAGAIN) continue;
          ++failed;
          c.done = true;
          continue;
        }
        c.got += static_cast<int>(r);
        if (c.got == static_cast<int>(sizeof c.back)) {
          c.done = true;
          if (std::memcmp(c.back, c.msg, sizeof c.msg) == 0) ++echoed;
          else ++failed;
        }
      }
    }
  }
  std::printf("echoed=%d failed=%d open=%d\n", echoed, failed, open);
  std::fflush(stdout);
  for (Conn& c : conns)
    if (c.fd >= 0) close(c.fd);
  return 0;
}
