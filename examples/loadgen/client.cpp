// Client threads of the load generator: one epoll loop per thread over its share of the
// connections (see client.hpp for what is counted).
//
// Open loop. Every connection has its own Poisson schedule of rate --rate / --conns (the
// superposition is a Poisson process of rate --rate). When an arrival is due, its intended time
// goes to the connection's backlog; requests move from the backlog to the wire while fewer than
// --pipeline are in flight. Latency is measured from the intended time, so time spent queued
// behind a slow response counts against the server (no coordinated omission), as in wrk2.
//
// The loop sleeps in epoll_pwait2 until the next arrival (nanosecond timeout, timer slack set to
// 1 ns for the thread) and is otherwise driven by readiness. How late it notices arrivals is
// recorded as the client lag: when that grows, the client, not the server, is saturated.
#include "client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <thread>
#include <vector>

#include "poisson.hpp"

namespace loadgen {
namespace {

constexpr int64_t kReconnectDelayNs = 100'000'000;  // between attempts on a failed connection
constexpr size_t kReadChunk = 64 * 1024;            // one read(2), into the thread's scratch
constexpr int kMaxEvents = 256;

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  Rng r(seed ^ (a * 0x9e3779b97f4a7c15ULL) ^ (b * 0xc2b2ae3d27d4eb4fULL));
  return r.next();
}

std::string errno_text(int err) { return std::strerror(err); }

// One blocking connect (bounded by a 2 s send timeout), then non-blocking with TCP_NODELAY.
// Returns the fd or -errno.
int connect_one(const addrinfo* ai) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) return -errno;
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    int err = errno == EINPROGRESS ? ETIMEDOUT : errno;
    close(fd);
    return -err;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// One connection. Owned by one Worker and touched only by its thread.
struct Conn {
  int fd = -1;
  int index = 0;                     // over all connections
  int generation = 0;                // reconnections so far (new session seed each time)
  std::unique_ptr<Session> session;  // bytes of the current TCP connection
  PoissonSchedule schedule;
  std::deque<int64_t> backlog;   // intended times due, not yet on the wire (pipeline full)
  std::deque<int64_t> inflight;  // intended times of encoded requests, oldest first
  std::string out;               // encoded bytes; out[out_off..] not yet written
  size_t out_off = 0;
  std::string in;                // received bytes of a response not complete yet (usually none)
  bool want_out = false;         // registered for EPOLLOUT
  bool touched = false;          // in the loop's to-flush list
  bool dead = false;             // failed; reconnect at retry_at
  int64_t retry_at = 0;

  Conn(double rate, uint64_t seed) : schedule(rate, seed) {}
};

// One client thread: its connections, epoll descriptor, arrival heap and Results. Everything in
// it is touched only by that thread between the start of run() and its return; run_load builds
// it before starting the thread and reads results() after joining it (the join orders both).
class Worker {
 public:
  Worker(const Options& o, const Protocol& p, const addrinfo* ai, int64_t start)
      : o_(o), protocol_(p), ai_(ai), start_(start) {
    measure_from_ = start + static_cast<int64_t>(o.warmup_s * 1e9);
    sched_end_ = measure_from_ + static_cast<int64_t>(o.duration_s * 1e9);
    drain_end_ = sched_end_ + static_cast<int64_t>(o.timeout_s * 1e9);
  }

  void add(std::unique_ptr<Conn> c) { conns_.push_back(std::move(c)); }
  Results& results() { return r_; }

  // The whole run of this thread; returns when every request was answered or the wait ended.
  void run();

 private:
  bool measured(int64_t t) const { return t >= measure_from_ && t < sched_end_; }
  void attach(Conn& c);
  void fail(Conn& c, const std::string& why, int64_t now);
  void try_reconnect(Conn& c, int64_t now);
  void flush(Conn& c, int64_t now);
  void on_readable(Conn& c);
  void set_want_out(Conn& c, bool on);
  int wait(epoll_event* ev, int64_t timeout_ns);
  bool idle() const;
  void finish();

  const Options& o_;
  const Protocol& protocol_;
  const addrinfo* ai_;
  int64_t start_, measure_from_ = 0, sched_end_ = 0, drain_end_ = 0;
  int ep_ = -1;
  int dead_ = 0;  // connections waiting for a reconnection
  std::vector<char> scratch_ = std::vector<char>(kReadChunk);  // every read lands here first
  std::vector<std::unique_ptr<Conn>> conns_;
  Results r_;
};

void Worker::attach(Conn& c) {
  c.session = protocol_.new_session(mix_seed(o_.seed, c.index, 2 + c.generation));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &c;
  epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
  c.want_out = false;
}

void Worker::set_want_out(Conn& c, bool on) {
  if (c.want_out == on) return;
  epoll_event ev{};
  ev.events = on ? EPOLLIN | EPOLLOUT : EPOLLIN;
  ev.data.ptr = &c;
  epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  c.want_out = on;
}

void Worker::fail(Conn& c, const std::string& why, int64_t now) {
  ++r_.conn_errors;
  if (r_.first_error.empty()) r_.first_error = why;
  for (int64_t t : c.inflight)
    if (measured(t)) ++r_.failed;
  c.inflight.clear();  // the backlog stays: it is sent after the reconnection
  epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
  close(c.fd);
  c.fd = -1;
  c.session.reset();
  c.out.clear();
  c.out_off = 0;
  c.in.clear();
  c.dead = true;
  ++dead_;
  c.retry_at = now + kReconnectDelayNs;
}

void Worker::try_reconnect(Conn& c, int64_t now) {
  int fd = connect_one(ai_);
  if (fd < 0) {
    c.retry_at = now + kReconnectDelayNs;
    return;
  }
  c.fd = fd;
  c.dead = false;
  --dead_;
  ++c.generation;
  ++r_.reconnects;
  attach(c);
  flush(c, now);
}

void Worker::flush(Conn& c, int64_t now) {
  if (c.dead) return;
  while (c.inflight.size() < static_cast<size_t>(o_.pipeline) && !c.backlog.empty()) {
    c.session->encode(c.out);
    c.inflight.push_back(c.backlog.front());
    c.backlog.pop_front();
  }
  while (c.out_off < c.out.size()) {
    ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_want_out(c, true);
      return;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      fail(c, "send: " + errno_text(errno), now);
      return;
    }
  }
  c.out.clear();
  c.out_off = 0;
  set_want_out(c, false);
}

// Reads once (level-triggered: more data raises the event again) and parses every complete
// response. Bytes are parsed straight from the thread's scratch buffer; only the tail of an
// incomplete response is kept in the connection, so an idle connection holds no buffer.
void Worker::on_readable(Conn& c) {
  ssize_t n = read(c.fd, scratch_.data(), scratch_.size());
  // Stamped per read, not per epoll_wait: with many ready connections the last one is handled
  // tens of microseconds after the wait returned, and that is not the server's latency.
  const int64_t now = now_ns();
  if (n == 0) return fail(c, "server closed the connection", now);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    return fail(c, "read: " + errno_text(errno), now);
  }
  const char* data = scratch_.data();
  size_t len = static_cast<size_t>(n);
  if (!c.in.empty()) {
    c.in.append(data, len);
    data = c.in.data();
    len = c.in.size();
  }
  const bool in_window = now >= measure_from_ && now < sched_end_;
  size_t off = 0;
  while (true) {
    ParseResult pr = c.session->parse(data + off, len - off);
    if (pr.status == ParseResult::kIncomplete) break;
    if (pr.status == ParseResult::kError || c.inflight.empty())
      return fail(c, std::string("unparseable response from the server (protocol ") +
                         protocol_.name() + ")", now);
    off += pr.consumed;
    const int64_t t = c.inflight.front();
    c.inflight.pop_front();
    if (in_window) ++r_.responses_in_window;
    const bool ok = pr.status == ParseResult::kOk;
    if (measured(t)) {
      if (ok) {
        ++r_.completed;
        r_.latency.record(now - t);
      } else {
        ++r_.mismatches;
      }
    } else if (!ok) {
      ++r_.warmup_mismatches;
    }
  }
  if (data == c.in.data()) c.in.erase(0, off);  // keep the incomplete tail
  else c.in.assign(data + off, len - off);
  flush(c, now);
}

// Waits for readiness at most timeout_ns. epoll_pwait2 takes a timespec; without it (kernel
// < 5.11) epoll_wait rounds the timeout up to a millisecond, which is announced in the report.
int Worker::wait(epoll_event* ev, int64_t timeout_ns) {
  timeout_ns = std::max<int64_t>(timeout_ns, 0);
  if (r_.precise_timer) {
    timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
                static_cast<long>(timeout_ns % 1'000'000'000)};
    int n = epoll_pwait2(ep_, ev, kMaxEvents, &ts, nullptr);
    if (n >= 0 || errno != ENOSYS) return n;
    r_.precise_timer = false;
  }
  return epoll_wait(ep_, ev, kMaxEvents, static_cast<int>((timeout_ns + 999'999) / 1'000'000));
}

bool Worker::idle() const {
  for (const auto& c : conns_)
    if (!c->backlog.empty() || !c->inflight.empty()) return false;
  return true;
}

// What is still queued when the wait ends: sent and unanswered are timeouts; never sent because
// the connection was down are failures.
void Worker::finish() {
  for (auto& c : conns_) {
    for (int64_t t : c->inflight)
      if (measured(t)) ++r_.timeouts;
    for (int64_t t : c->backlog)
      if (measured(t)) ++(c->dead ? r_.failed : r_.timeouts);
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
  }
  close(ep_);
}

void Worker::run() {
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // wake-ups on time, not up to 50 us late
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  using Arrival = std::pair<int64_t, Conn*>;
  std::priority_queue<Arrival, std::vector<Arrival>, std::greater<Arrival>> arrivals;
  // Arrivals at or after the end of the schedule are never queued: the loop must not wait for
  // them (at low per-connection rates the first one past the end can be seconds away).
  auto schedule_next = [&](Conn* c) {
    const int64_t t = start_ + std::llround(c->schedule.next_ns());
    if (t < sched_end_) arrivals.emplace(t, c);
  };
  for (auto& c : conns_) {
    attach(*c);
    schedule_next(c.get());
  }
  std::vector<Conn*> touched;
  epoll_event events[kMaxEvents];
  int64_t now;
  while (true) {
    now = now_ns();  // fresh: handling the previous events took time
    while (!arrivals.empty() && arrivals.top().first <= now) {
      auto [t, c] = arrivals.top();
      arrivals.pop();
      if (measured(t)) {
        ++r_.scheduled;
        r_.client_lag.record(now - t);
      }
      c->backlog.push_back(t);
      if (!c->touched) {
        c->touched = true;
        touched.push_back(c);
      }
      schedule_next(c);
    }
    for (Conn* c : touched) {
      c->touched = false;
      flush(*c, now);
    }
    touched.clear();
    int64_t wake = arrivals.empty() ? drain_end_ : arrivals.top().first;
    for (size_t i = 0; dead_ > 0 && i < conns_.size(); ++i) {
      Conn& c = *conns_[i];
      if (!c.dead) continue;
      if (c.retry_at <= now) try_reconnect(c, now);
      if (c.dead) wake = std::min(wake, c.retry_at);
    }
    if (arrivals.empty() && (now >= drain_end_ || idle())) break;
    int n = wait(events, wake - now);
    now = now_ns();
    for (int i = 0; i < n; ++i) {
      Conn& c = *static_cast<Conn*>(events[i].data.ptr);
      if (c.dead) continue;
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
      if (!c.dead && (events[i].events & EPOLLOUT)) flush(c, now);
    }
  }
  finish();
}

}  // namespace

void Results::merge(const Results& o) {
  latency.merge(o.latency);
  client_lag.merge(o.client_lag);
  scheduled += o.scheduled;
  completed += o.completed;
  mismatches += o.mismatches;
  failed += o.failed;
  timeouts += o.timeouts;
  responses_in_window += o.responses_in_window;
  warmup_mismatches += o.warmup_mismatches;
  conn_errors += o.conn_errors;
  reconnects += o.reconnects;
  if (first_error.empty()) first_error = o.first_error;
  precise_timer = precise_timer && o.precise_timer;
}

int ensure_fd_limit(uint64_t needed, std::string& error) {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;  // cannot tell; let open() report it
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= needed) return 0;
  if (rl.rlim_cur == RLIM_INFINITY) return 0;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < needed) {
    error = "needs " + std::to_string(needed) + " file descriptors but the hard limit " +
            "(RLIMIT_NOFILE) is " + std::to_string(rl.rlim_max) +
            ": use fewer --conns or raise it (ulimit -Hn, as root)";
    return -EMFILE;
  }
  rl.rlim_cur = needed;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    error = "cannot raise the file descriptor limit to " + std::to_string(needed) + ": " +
            errno_text(errno);
    return -EMFILE;
  }
  return 0;
}

int run_preload(const Options& o, const Protocol& protocol, std::string& error) {
  const size_t count = protocol.preload_count();
  if (count == 0) return 0;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* ai = nullptr;
  const std::string port = std::to_string(o.port);
  if (int g = getaddrinfo(o.host.c_str(), port.c_str(), &hints, &ai); g != 0) {
    error = "cannot resolve host '" + o.host + "': " + gai_strerror(g);
    return -EINVAL;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> ai_owner(ai, &freeaddrinfo);
  const int fd = connect_one(ai);
  if (fd < 0) {
    error = "preload: connect to " + o.host + ":" + port + " failed: " + errno_text(-fd);
    return fd;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto session = protocol.new_session(mix_seed(o.seed, 0, 0));
  std::string out, in;
  std::vector<char> buf(kReadChunk);
  constexpr size_t kBatch = 256;  // requests per write: pipelined, bounded socket buffers
  int rc = 0;
  for (size_t i = 0; i < count && rc == 0;) {
    out.clear();
    for (size_t end = std::min(count, i + kBatch); i < end; ++i) session->encode_preload(i, out);
    if (send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
      error = "preload: send: " + errno_text(errno);
      rc = -EIO;
      break;
    }
    while (session->outstanding() > 0) {
      ssize_t n = read(fd, buf.data(), buf.size());
      if (n <= 0) {
        error = n == 0 ? "preload: the server closed the connection"
                       : "preload: read: " + errno_text(errno);
        rc = -EIO;
        break;
      }
      in.append(buf.data(), static_cast<size_t>(n));
      size_t off = 0;
      while (session->outstanding() > 0) {
        ParseResult pr = session->parse(in.data() + off, in.size() - off);
        if (pr.status == ParseResult::kIncomplete) break;
        if (pr.status != ParseResult::kOk) {
          error = std::string("preload: the server refused or garbled a preload request: ") +
                  in.substr(off, std::min<size_t>(in.find('\n', off) - off, 120));
          rc = -EPROTO;
          break;
        }
        off += pr.consumed;
      }
      in.erase(0, off);
      if (rc) break;
    }
  }
  close(fd);
  return rc;
}

int run_load(const Options& o, const Protocol& protocol, Results& results, std::string& error) {
  // Connections, one epoll fd per thread, stdio and some slack.
  int rc = ensure_fd_limit(static_cast<uint64_t>(o.conns) + o.threads + 16, error);
  if (rc != 0) return rc;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* ai = nullptr;
  const std::string port = std::to_string(o.port);
  if (int g = getaddrinfo(o.host.c_str(), port.c_str(), &hints, &ai); g != 0) {
    error = "cannot resolve host '" + o.host + "': " + gai_strerror(g);
    return -EINVAL;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> ai_owner(ai, &freeaddrinfo);

  // Every connection is up before the schedule starts: a refused connection is a setup error.
  std::vector<std::unique_ptr<Conn>> conns;
  conns.reserve(static_cast<size_t>(o.conns));
  for (int i = 0; i < o.conns; ++i) {
    int fd = connect_one(ai);
    if (fd < 0) {
      error = "connect to " + o.host + ":" + port + " failed: " + errno_text(-fd);
      if (i > 0) error += " (after " + std::to_string(i) + " connections succeeded)";
      for (auto& c : conns) close(c->fd);
      return fd;
    }
    auto c = std::make_unique<Conn>(o.rate / o.conns, mix_seed(o.seed, i, 1));
    c->fd = fd;
    c->index = i;
    conns.push_back(std::move(c));
  }

  // The schedule starts a little after the threads are created, the same instant for all.
  const int64_t start = now_ns() + 5'000'000;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < o.threads; ++t)
    workers.push_back(std::make_unique<Worker>(o, protocol, ai, start));
  for (int i = 0; i < o.conns; ++i) workers[static_cast<size_t>(i % o.threads)]->add(
      std::move(conns[static_cast<size_t>(i)]));
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->run(); });
  for (auto& t : threads) t.join();
  for (auto& w : workers) results.merge(w->results());
  return 0;
}

}  // namespace loadgen
