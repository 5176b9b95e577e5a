// Network mode (network.hpp). Connections feed the same dispatcher and workers as the in-process
// generator. One request per connection is in the server at a time: the connection's handler
// reads a request, stamps its arrival, queues it for the dispatcher, waits until a worker has
// run it, writes the response and reads the next; responses therefore leave in request order,
// and a client that wants more concurrency opens more connections (the loadgen's --conns).
// Handlers are fibers of the runtime (upcall) or one kernel thread per connection (threads),
// matching the workers.
//
// Who touches what: a Conn's Request and log belong to its handler, except that between the
// ingress push and the done signal the Request belongs to the dispatcher and then a worker (the
// push releases, the done signal's release/acquire hands it back). `log` is appended under
// Conn::mu and read under it by the table printer at SIGINT/SIGTERM, which then exits without
// tearing down (the database is only read after the fill).
#include "network.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include <upcall/upcall.hpp>

#include "futex.hpp"

namespace rocksdb_server {
namespace {

// Counting semaphore on a futex for the threads scheduler (no spinning). release: count++
// (seq_cst) then wake if someone may sleep; acquire: take a unit or announce itself in
// `sleepers` (seq_cst) and sleep while count == 0. The seq_cst pair rules out "releaser saw no
// sleeper" together with "sleeper saw count 0" (the kernel re-reads count in FUTEX_WAIT).
struct FutexSemaphore {
  std::atomic<uint32_t> count{0};
  std::atomic<uint32_t> sleepers{0};
  void release() {
    count.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst)) futex_wake(&count);
  }
  void acquire() {
    for (;;) {
      uint32_t c = count.load(std::memory_order_acquire);
      while (c > 0)
        if (count.compare_exchange_weak(c, c - 1, std::memory_order_acquire)) return;
      sleepers.fetch_add(1, std::memory_order_seq_cst);
      futex_wait(&count, 0);
      sleepers.fetch_sub(1, std::memory_order_relaxed);
    }
  }
};

struct Conn {
  IdleNode node;  // first member: the ingress queue is an intrusive MPSC FIFO of Conns
  Request req;
  std::string value;
  bool fibers = false;
  upcall::counting_semaphore<> done_fiber{0};
  FutexSemaphore done_thread;
  std::mutex mu;
  std::vector<Request> log;  // guarded by mu
};

// The ingress queue: connections push, the dispatcher takes.
class NetSource final : public Source {
 public:
  explicit NetSource(bool fibers) : fibers_(fibers) {}
  void push(Conn* c) {
    q_.push(&c->node);
    if (fibers_)
      arrivals_fiber_.release();
    else
      arrivals_thread_.release();
  }
  Request* take(int64_t) override {
    auto* c = reinterpret_cast<Conn*>(q_.pop());
    return c ? &c->req : nullptr;
  }
  int64_t next_time() const override { return -1; }
  // A permit per push; a take that found the push half done leaves a permit for the retry.
  void wait_arrival() override {
    if (fibers_)
      arrivals_fiber_.acquire();
    else
      arrivals_thread_.acquire();
  }
  bool ended() const override { return false; }

 private:
  bool fibers_;
  IdleQueue q_;
  upcall::counting_semaphore<> arrivals_fiber_{0};
  FutexSemaphore arrivals_thread_;
};

std::mutex g_conns_mu;
std::vector<std::unique_ptr<Conn>> g_conns;  // guarded by g_conns_mu; never shrinks
NetSource* g_src = nullptr;
int64_t g_t0 = 0;

Conn* new_conn(bool fibers) {
  auto c = std::make_unique<Conn>();
  c->fibers = fibers;
  c->req.origin = c.get();
  Conn* p = c.get();
  std::lock_guard<std::mutex> lock(g_conns_mu);
  g_conns.push_back(std::move(c));
  return p;
}

void on_done(Request& r) {
  auto* c = static_cast<Conn*>(r.origin);
  if (c->fibers)
    c->done_fiber.release();
  else
    c->done_thread.release();
}

// One request read into c->req: returns the response to write into `out`, false to close.
bool prepare(Conn* c, const char* hdr) {
  const wire::Request q = wire::decode_request(hdr);
  Request& r = c->req;
  r = Request{};
  r.origin = c;
  r.key = q.key;
  r.type = q.type;
  r.value = &c->value;
  c->value.clear();
  r.arrival = mono_ns() - g_t0;
  return q.type == wire::kGet || q.type == wire::kRange;
}

std::string response(Conn* c, uint64_t id, bool valid) {
  const Request& r = c->req;
  wire::Response a;
  a.id = id;
  a.type = r.type;
  std::string out(wire::kHeader, '\0');
  if (!valid) {
    a.status = wire::kError;
  } else if (r.result < 0) {
    a.status = wire::kNotFound;
  } else {
    a.status = wire::kFound;
    a.n = static_cast<uint32_t>(r.type == wire::kGet ? c->value.size() : r.result);
    if (r.type == wire::kGet) out += c->value;
  }
  wire::encode(a, out.data());
  return out;
}

void record(Conn* c) {
  std::lock_guard<std::mutex> lock(c->mu);
  Request copy;
  copy.arrival = c->req.arrival;
  copy.taken = c->req.taken;
  copy.handed = c->req.handed;
  copy.started = c->req.started;
  copy.finished = c->req.finished;
  copy.type = c->req.type;
  copy.result = c->req.result;
  c->log.push_back(copy);
}

void serve_fiber(upcall::net::TcpStream s) {
  Conn* c = new_conn(true);
  s.set_nodelay(true);
  char hdr[wire::kHeader];
  for (;;) {
    std::error_code ec;
    if (s.read_exact(hdr, sizeof hdr, ec) != sizeof hdr || ec) return;
    const uint64_t id = wire::decode_request(hdr).id;
    const bool valid = prepare(c, hdr);
    if (valid) {
      g_src->push(c);
      c->done_fiber.acquire();
      record(c);
    }
    const std::string out = response(c, id, valid);
    s.write_all(out.data(), out.size(), ec);
    if (ec || !valid) return;
  }
}

bool read_full(int fd, char* p, std::size_t n) {
  while (n) {
    const ssize_t k = recv(fd, p, n, 0);
    if (k <= 0) {
      if (k < 0 && errno == EINTR) continue;
      return false;
    }
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

bool write_full(int fd, const char* p, std::size_t n) {
  while (n) {
    const ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) {
      if (k < 0 && errno == EINTR) continue;
      return false;
    }
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

void serve_thread(int fd) {
  Conn* c = new_conn(false);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char hdr[wire::kHeader];
  while (read_full(fd, hdr, sizeof hdr)) {
    const uint64_t id = wire::decode_request(hdr).id;
    const bool valid = prepare(c, hdr);
    if (valid) {
      g_src->push(c);
      c->done_thread.acquire();
      record(c);
    }
    const std::string out = response(c, id, valid);
    if (!write_full(fd, out.data(), out.size()) || !valid) break;
  }
  close(fd);
}

int listen_on(int port, std::string& error) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 4096) != 0) {
    error = "cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

// Waits for SIGINT/SIGTERM, prints the table, exits. Runs on its own plain thread.
[[noreturn]] void print_on_signal(const Flags& f, sigset_t set) {
  int sig = 0;
  sigwait(&set, &sig);
  std::vector<Request> all;
  {
    std::lock_guard<std::mutex> lock(g_conns_mu);
    for (auto& c : g_conns) {
      std::lock_guard<std::mutex> l(c->mu);
      all.insert(all.end(), c->log.begin(), c->log.end());
    }
  }
  int64_t first = INT64_MAX, last = 0;
  for (const Request& r : all) {
    first = std::min(first, r.arrival);
    last = std::max(last, r.arrival);
  }
  std::vector<const Request*> measured;
  for (const Request& r : all)
    if (r.arrival >= first + f.discard_ns) measured.push_back(&r);
  const double secs =
      measured.empty() ? 0 : static_cast<double>(last - (first + f.discard_ns)) / 1e9;
  std::printf("rocksdb-server: %s: %zu requests served, %zu after the first + discard_duration\n",
              strsignal(sig), all.size(), measured.size());
  print_table(measured, secs, stdout);
  std::fflush(stdout);
  std::_Exit(0);
}

}  // namespace

sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int serve(const Flags& f, const Handler& h, upcall::Options opts) {
  const sigset_t set = block_stop_signals();
  std::string error;
  const int lfd = listen_on(f.port, error);
  if (lfd < 0) {
    std::fprintf(stderr, "rocksdb-server: %s\n", error.c_str());
    return 1;
  }
  const bool fibers = f.scheduler == Scheduler::upcall;
  static NetSource src(fibers);
  g_src = &src;
  g_t0 = mono_ns();
  std::thread(print_on_signal, std::cref(f), set).detach();
  RunSpec spec;
  spec.src = &src;
  spec.t0 = g_t0;
  spec.on_done = on_done;
  if (fibers) {
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
    spec.start = [lfd] {
      upcall::spawn([lfd] {
        // The listener was bound with plain calls (same error path in both modes); accepts go
        // through the runtime (non-blocking descriptor) so the acceptor fiber suspends
        // instead of blocking its core.
        for (;;) {
          sockaddr_storage ss;
          socklen_t len = sizeof ss;
          auto r = upcall::io::accept(lfd, reinterpret_cast<sockaddr*>(&ss), &len);
          if (r.error) {
            if (r.error.value() == EMFILE || r.error.value() == ENFILE) {
              upcall::this_task::sleep_for(std::chrono::milliseconds(10));
              continue;
            }
            return;
          }
          upcall::spawn([fd = static_cast<int>(r.value)] { serve_fiber(upcall::net::TcpStream(fd)); },
                        upcall::SpawnOptions{"conn", 0});
        }
      }, upcall::SpawnOptions{"acceptor", 0});
    };
  } else {
    spec.start = [lfd] {
      std::thread([lfd] {
        for (;;) {
          const int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) {
              std::this_thread::sleep_for(std::chrono::milliseconds(10));
              continue;
            }
            return;
          }
          std::thread(serve_thread, fd).detach();
        }
      }).detach();
    };
  }
  std::printf("rocksdb-server: serving 127.0.0.1:%d (wire.hpp); SIGINT or SIGTERM prints the "
              "table\n", f.port);
  std::fflush(stdout);
  if (fibers)
    run_upcall(f, h, spec, opts);
  else
    run_threads(f, h, spec);
  return 0;  // not reached: the source never ends, the signal thread exits
}

}  // namespace rocksdb_server
