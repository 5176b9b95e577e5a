// runtime/io/io_ops.cpp: the public calls of upcall/io.hpp. One request description (Req) runs
// on one of three paths:
//  - uring: a fiber on a core with an io_uring reactor prepares an SQE on that core's ring
//    (inside a region, holder-only), parks until the holder reaps its completion, and on a
//    deadline or stop asks the kernel to cancel it (IORING_REGISTER_SYNC_CANCEL, callable from
//    any thread) and still waits for the completion: the kernel may write into the buffer
//    until then. A request that completed anyway returns its result. After a takeover the new
//    holder may ask the waiter to recover its request (runtime/DESIGN.md section 13): cancel,
//    abandon the record, continue from the new holder. accept always takes the readiness
//    path below, with a POLL_ADD on the ring as its wait (see run()); send first tries the
//    non-blocking syscall and takes the ring only when the socket's buffer is full, and every
//    32nd send of a core yields first (plan_send).
//  - epoll: a fiber on a core with the epoll reactor tries the non-blocking syscall and, on
//    EAGAIN, waits for readiness (epoll_backend.cpp), then tries again.
//  - thread: a plain thread or a fiber inside upcall::blocking: the syscall itself; with limits,
//    readiness is awaited with poll(2) first (in 10 ms slices when a stop token can fire).
// Regular-file operations have no readiness: on the epoll and thread paths they are plain
// syscalls (a long one blocks the thread and the activations hand the core over).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <functional>
#include <optional>

#include "runtime/activations/region.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "runtime/io/reactor.hpp"
#include "upcall/io.hpp"
#include "upcall/this_task.hpp"

namespace upcall::rt {
int epoll_wait_ready(int fd, short events, std::int64_t deadline_ns, const upcall::stop_token& stop);
}

namespace upcall::io {

namespace {

using rt::IoOp;
using rt::now_ns;

enum class Kind : std::uint8_t {
  read, write, readv, writev, pread, pwrite, fsync, openat, close, accept, connect, recv, send,
  shutdown, poll
};

struct Req {
  Kind kind;
  int fd = -1;
  void* buf = nullptr;
  std::size_t len = 0;
  const iovec* iov = nullptr;
  int iovcnt = 0;
  off_t off = 0;
  int flags = 0;
  const sockaddr* addr = nullptr;
  socklen_t addrlen = 0;
  sockaddr* oaddr = nullptr;
  socklen_t* olen = nullptr;
  const char* path = nullptr;
  mode_t mode = 0;
  short events = 0;
};

// How long a thread-path wait sleeps before it re-checks a stop token.
constexpr int kStopPollMs = 10;
// How long a cancel waits in the kernel before the fiber parks and retries.
constexpr std::int64_t kCancelWaitNs = 10'000'000;
// A cancel that found nothing (not submitted yet) is retried after this.
constexpr std::int64_t kCancelRetryNs = 1'000'000;

std::int64_t deadline_ns(const Limits& lim) {
  if (lim.deadline == Clock::time_point::max()) return INT64_MAX;
  // steady_clock is CLOCK_MONOTONIC, the runtime's timer clock.
  return std::chrono::duration_cast<std::chrono::nanoseconds>(lim.deadline.time_since_epoch()).count();
}

Result from_rc(long rc) {
  Result r;
  if (rc < 0)
    r.error = std::error_code(static_cast<int>(-rc), std::system_category());
  else
    r.value = static_cast<std::size_t>(rc);
  return r;
}

bool pollable(Kind k) {
  switch (k) {
    case Kind::read: case Kind::write: case Kind::readv: case Kind::writev: case Kind::accept:
    case Kind::connect: case Kind::recv: case Kind::send: case Kind::poll:
      return true;
    default:
      return false;
  }
}

short wanted_events(const Req& q) {
  switch (q.kind) {
    case Kind::read: case Kind::readv: case Kind::accept: case Kind::recv: return POLLIN;
    case Kind::write: case Kind::writev: case Kind::connect: case Kind::send: return POLLOUT;
    case Kind::poll: return q.events;
    default: return 0;
  }
}

// The syscall itself. `nonblock`: must not sleep (readiness is known or will be awaited).
long do_syscall(const Req& q, bool nonblock) {
  long rc;
  const int dw = nonblock ? MSG_DONTWAIT : 0;
  do {
    switch (q.kind) {
      case Kind::read: rc = ::read(q.fd, q.buf, q.len); break;
      case Kind::write: rc = ::write(q.fd, q.buf, q.len); break;
      case Kind::readv: rc = ::readv(q.fd, q.iov, q.iovcnt); break;
      case Kind::writev: rc = ::writev(q.fd, q.iov, q.iovcnt); break;
      case Kind::pread: rc = ::pread(q.fd, q.buf, q.len, q.off); break;
      case Kind::pwrite: rc = ::pwrite(q.fd, q.buf, q.len, q.off); break;
      case Kind::fsync: rc = q.flags ? ::fdatasync(q.fd) : ::fsync(q.fd); break;
      case Kind::openat: rc = ::openat(q.fd, q.path, q.flags | O_CLOEXEC, q.mode); break;
      case Kind::close: rc = ::close(q.fd); if (rc < 0 && errno == EINTR) return 0; break;
      case Kind::accept: rc = ::accept4(q.fd, q.oaddr, q.olen, q.flags | SOCK_CLOEXEC); break;
      case Kind::connect: rc = ::connect(q.fd, q.addr, q.addrlen); break;
      case Kind::recv: rc = ::recv(q.fd, q.buf, q.len, q.flags | dw); break;
      case Kind::send: rc = ::send(q.fd, q.buf, q.len, q.flags | dw | MSG_NOSIGNAL); break;
      case Kind::shutdown: rc = ::shutdown(q.fd, q.flags); break;
      case Kind::poll: {
        pollfd p{q.fd, q.events, 0};
        rc = ::poll(&p, 1, nonblock ? 0 : -1);
        if (rc > 0) rc = p.revents;
        else if (rc == 0) { errno = EAGAIN; rc = -1; }
        break;
      }
    }
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : rc;
}

// Zero-timeout readiness check: true when the fd has the events (or errors / hangs up).
bool ready_now(int fd, short events) {
  pollfd p{fd, events, 0};
  int rc;
  do rc = ::poll(&p, 1, 0); while (rc < 0 && errno == EINTR);
  return rc != 0;
}

// Thread path readiness: 0 when ready, -ETIMEDOUT, -ECANCELED.
int thread_wait_ready(int fd, short events, std::int64_t dl, const Limits& lim) {
  for (;;) {
    if (lim.stop.stop_requested()) return -ECANCELED;
    int timeout = -1;
    if (dl != INT64_MAX) {
      const std::int64_t left = dl - now_ns();
      if (left <= 0) return -ETIMEDOUT;
      timeout = static_cast<int>(std::min<std::int64_t>((left + 999'999) / 1'000'000, INT_MAX));
    }
    if (lim.stop.stop_possible() && (timeout < 0 || timeout > kStopPollMs)) timeout = kStopPollMs;
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, timeout);
    if (rc > 0) return 0;
    if (rc < 0 && errno != EINTR) return -errno;
  }
}

// The non-blocking attempt of the readiness paths: the result, or -EAGAIN to wait.
long attempt(const Req& q) {
  switch (q.kind) {
    case Kind::recv: case Kind::send:
      return do_syscall(q, true);
    case Kind::connect:
      return do_syscall(q, false);  // handled by the caller (EINPROGRESS)
    default:
      // read/write/accept on a descriptor that may be in blocking mode: only when ready.
      if (!ready_now(q.fd, wanted_events(q))) return -EAGAIN;
      return do_syscall(q, true);
  }
}

Result run(const Req& q, const Limits& lim);

// How run_readiness waits: poll(2) on a plain thread, the core's epoll on a fiber, or an
// io_uring POLL_ADD on a fiber whose request was recovered after a takeover.
enum class WaitMode : std::uint8_t { thread, epoll, uring_poll };

// Readiness paths: the non-blocking syscall, and a readiness wait when it would block.
Result run_readiness(const Req& q, const Limits& lim, WaitMode mode) {
  const std::int64_t dl = deadline_ns(lim);
  const bool fiber_epoll = mode != WaitMode::thread;
  auto wait = [&](short ev) -> int {
    if (mode == WaitMode::uring_poll) {
      Req pq{};
      pq.kind = Kind::poll;
      pq.fd = q.fd;
      pq.events = ev;
      const Result r = run(pq, lim);
      return r.error ? -r.error.value() : 0;
    }
    if (fiber_epoll) {
      const int rc = rt::epoll_wait_ready(q.fd, ev, dl, lim.stop);
      if (rc == -EPERM) return 0;  // not pollable (a regular file): always ready
      return rc < 0 ? rc : 0;
    }
    return thread_wait_ready(q.fd, ev, dl, lim);
  };
  if (!pollable(q.kind)) return from_rc(do_syscall(q, false));
  if (!fiber_epoll && lim.unlimited() && q.kind != Kind::connect) {
    // A plain thread without limits: the syscall, as the caller would have written it; a
    // non-blocking descriptor's EAGAIN falls through to the readiness wait below.
    const long rc = do_syscall(q, false);
    if (rc != -EAGAIN) return from_rc(rc);
  }
  if (q.kind == Kind::connect) {
    long rc = do_syscall(q, false);
    if (rc == -EISCONN && mode == WaitMode::uring_poll) return from_rc(0);  // recovered, done
    if (rc != -EINPROGRESS && rc != -EALREADY) return from_rc(rc);
    const int w = wait(POLLOUT);
    if (w < 0) return from_rc(w);
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(q.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return from_rc(-errno);
    return from_rc(err ? -err : 0);
  }
  for (;;) {
    if (lim.stop.stop_requested()) return from_rc(-ECANCELED);
    const long rc = attempt(q);
    if (rc != -EAGAIN) return from_rc(rc);
    if (dl != INT64_MAX && now_ns() >= dl) return from_rc(-ETIMEDOUT);
    const int w = wait(wanted_events(q));
    if (w < 0) return from_rc(w);
  }
}

void prep(io_uring_sqe* sqe, const Req& q) {
  constexpr __u64 kCurrentPos = static_cast<__u64>(-1);  // read/write at the file position
  switch (q.kind) {
    case Kind::read: io_uring_prep_read(sqe, q.fd, q.buf, static_cast<unsigned>(q.len), kCurrentPos); break;
    case Kind::write: io_uring_prep_write(sqe, q.fd, q.buf, static_cast<unsigned>(q.len), kCurrentPos); break;
    case Kind::readv: io_uring_prep_readv(sqe, q.fd, q.iov, static_cast<unsigned>(q.iovcnt), kCurrentPos); break;
    case Kind::writev: io_uring_prep_writev(sqe, q.fd, q.iov, static_cast<unsigned>(q.iovcnt), kCurrentPos); break;
    case Kind::pread: io_uring_prep_read(sqe, q.fd, q.buf, static_cast<unsigned>(q.len), static_cast<__u64>(q.off)); break;
    case Kind::pwrite: io_uring_prep_write(sqe, q.fd, q.buf, static_cast<unsigned>(q.len), static_cast<__u64>(q.off)); break;
    case Kind::fsync: io_uring_prep_fsync(sqe, q.fd, q.flags ? IORING_FSYNC_DATASYNC : 0); break;
    case Kind::openat: io_uring_prep_openat(sqe, q.fd, q.path, q.flags | O_CLOEXEC, q.mode); break;
    case Kind::close: io_uring_prep_close(sqe, q.fd); break;
    case Kind::accept: io_uring_prep_accept(sqe, q.fd, q.oaddr, q.olen, q.flags | SOCK_CLOEXEC); break;
    case Kind::connect: io_uring_prep_connect(sqe, q.fd, q.addr, q.addrlen); break;
    case Kind::recv: io_uring_prep_recv(sqe, q.fd, q.buf, q.len, q.flags); break;
    case Kind::send: io_uring_prep_send(sqe, q.fd, q.buf, q.len, q.flags | MSG_NOSIGNAL); break;
    case Kind::shutdown: io_uring_prep_shutdown(sqe, q.fd, q.flags); break;
    case Kind::poll: io_uring_prep_poll_add(sqe, q.fd, static_cast<unsigned>(q.events)); break;
  }
}

// Prepares `q` on the ring of the caller's core. nullptr when the caller is no fiber on a core
// with an io_uring reactor (then *epoll_path says whether the epoll path applies) or when the
// ring is full / out of memory (the readiness path runs instead).
IoOp* submit_uring(const Req& q, bool* epoll_path) {
  rt::Region region;
  rt::Core* c = region.core();
  rt::Activation* a = rt::current_activation();
  if (!c || !a || !a->current || !c->reactor) return nullptr;
  if (c->reactor->kind == rt::IoBackend::epoll) {
    *epoll_path = true;
    return nullptr;
  }
  IoOp* op = nullptr;
  io_uring_sqe* sqe = rt::io_get_sqe(c, &op);
  if (!sqe) return nullptr;
  prep(sqe, q);
  io_uring_sqe_set_data(sqe, op);
  op->waker = rt::current_waker();
  // Submitted by the holder's next scheduling round (batched), at the latest when the core
  // runs out of ready fibers.
  return op;
}

// Waits for `op` as described at the top; recovers it when its holder asks (section 13).
// The caller holds no region.
Result wait_uring(IoOp* op, const Req& q, const Limits& lim) {
  const std::int64_t dl = deadline_ns(lim);
  std::optional<stop_callback<std::function<void()>>> cb;
  if (lim.stop.stop_possible()) {
    const rt::Waker w = op->waker;  // the calling fiber: the same for a resubmitted request
    cb.emplace(lim.stop, std::function<void()>([w] { rt::unpark_waker(w); }));
  }
  int why = 0;  // ETIMEDOUT or ECANCELED once we gave up
  bool cancel_sent = false;
  bool cancel_confirmed = false;  // the kernel answered 0: the request will not run any more
  // acquire: pairs with the reaper's acq_rel exchange (res and the buffer).
  while (op->state.load(std::memory_order_acquire) != IoOp::kDone) {
    if (op->recover.exchange(false, std::memory_order_relaxed)) {
      // Its completion waits in the task work of a thread that lost the core. A cancel that the
      // kernel confirms (0) means the request will never run (a poll-armed socket request is
      // only marked: its completion still waits, but it will not touch the buffer), so it can
      // be left behind and issued again from the thread that holds a core now.
      if (cancel_confirmed || rt::io_cancel(op, kCancelWaitNs) == 0) {
        std::uint32_t w = IoOp::kWaiting;
        // acq_rel; on failure acquire, which pairs with the reaper's exchange (res).
        const bool abandoned =
            op->state.compare_exchange_strong(w, IoOp::kAbandoned, std::memory_order_acq_rel);
        if (!abandoned && op->res != -ECANCELED) break;  // it completed on its own: use it
        if (!abandoned) {
          // Our cancel completed it before we could abandon it (its thread was not blocked
          // after all): the request did not run, and the record is ours again.
          rt::Region region;
          rt::io_op_free(region.core(), op);
        }
        {
          if (why) return from_rc(-why);
          // A socket request continues as readiness (a non-exclusive POLL_ADD from this
          // thread) plus the non-blocking syscall: the abandoned request may still hold an
          // exclusive wake-up slot (accept), and one wake-up can go to it; a plain poll waiter
          // is woken by every one.
          if (pollable(q.kind)) return run_readiness(q, lim, WaitMode::uring_poll);
          bool epoll_path = false;
          if (IoOp* fresh = submit_uring(q, &epoll_path)) {
            op = fresh;
            cancel_sent = cancel_confirmed = false;
            continue;
          }
          return run_readiness(q, lim, epoll_path ? WaitMode::epoll : WaitMode::thread);
        }
      }
      // Running in the kernel's worker (-EALREADY) or already complete: wait for it.
    }
    if (!cancel_sent) {
      if (!why && lim.stop.stop_requested()) why = ECANCELED;
      if (!why && dl != INT64_MAX && now_ns() >= dl) why = ETIMEDOUT;
      if (why) {
        const int rc = rt::io_cancel(op, kCancelWaitNs);
        if (rc == 0 || rc == -EALREADY) {
          cancel_sent = true;  // its completion (cancelled or not) follows
          cancel_confirmed = rc == 0;
          continue;
        }
        // -ENOENT: not submitted yet, or completed and not yet reaped; -ETIME: the kernel
        // could not finish the cancel in time. Either way: look again shortly.
        rt::park_current_until(now_ns() + kCancelRetryNs);
        continue;
      }
      if (dl != INT64_MAX)
        rt::park_current_until(dl);
      else
        rt::park_current();
    } else {
      rt::park_current();
    }
  }
  const int res = op->res;
  {
    rt::Region region;
    rt::io_op_free(region.core(), op);
  }
  if (res >= 0) return from_rc(res);  // completed, possibly despite a late cancel
  if (why && (res == -ECANCELED || res == -EINTR)) return from_rc(-why);
  return from_rc(res);
}

// Where the caller would wait: io_uring, epoll, or its own thread.
WaitMode caller_mode() {
  rt::Region region;
  rt::Core* c = region.core();
  rt::Activation* a = rt::current_activation();
  if (!c || !a || !a->current || !c->reactor) return WaitMode::thread;
  return c->reactor->kind == rt::IoBackend::epoll ? WaitMode::epoll : WaitMode::uring_poll;
}

// Every kYieldEverySends-th send on a core yields first: the runtime does not preempt, and a
// send that finds room returns without waiting (below, and on the epoll path), so a fiber
// sending to a fast reader would otherwise keep its core until the send buffer filled.
constexpr std::uint32_t kYieldEverySends = 32;

struct SendPlan {
  bool skip_ring = false;   // try the non-blocking syscall before the ring
  bool yield_first = false;
};

// A socket send almost always finds room in the send buffer: the non-blocking syscall does the
// kernel work the ring would do, without an SQE, a scheduling round to submit it, a completion
// to reap and a park and unpark of the fiber (closed-loop echo over one connection: between
// +3% and +18% round trips per second, bench/RESULTS.md run V). A short send is what the ring
// returns too; MSG_WAITALL (the ring retries a short send until all is sent) keeps the ring.
// Only fibers on uring cores skip it: the epoll path starts with this attempt anyway, and a
// plain thread keeps its blocking send. Fibers on either backend count toward the yield.
SendPlan plan_send(const Req& q) {
  SendPlan p;
  rt::Region region;
  rt::Core* c = region.core();
  rt::Activation* a = rt::current_activation();
  if (!c || !a || !a->current || !c->reactor) return p;
  p.skip_ring = c->reactor->kind == rt::IoBackend::uring && !(q.flags & MSG_WAITALL);
  if (++c->reactor->sends >= kYieldEverySends) {
    c->reactor->sends = 0;
    p.yield_first = true;
  }
  return p;
}

Result run(const Req& q, const Limits& lim) {
  bool epoll_path = false;
  if (q.kind == Kind::accept) {
    // accept is a non-blocking accept4 plus a readiness wait (a POLL_ADD on the ring): the
    // kernel arms IORING_OP_ACCEPT as an *exclusive* waiter of the listener, and an accept
    // whose completion waits behind a blocked thread keeps swallowing the listener's
    // wake-ups until that thread runs again (measured: later connections sat in the backlog
    // for seconds). A POLL_ADD waiter is not exclusive. It also takes ready connections
    // without a ring round trip.
    return run_readiness(q, lim, caller_mode());
  }
  if (!lim.stop.stop_requested()) {
    if (q.kind == Kind::send) {
      const SendPlan plan = plan_send(q);
      if (plan.yield_first) upcall::this_task::yield();
      if (plan.skip_ring) {
        const long rc = do_syscall(q, true);
        // The caller's own MSG_DONTWAIT gets its EAGAIN at once, as the ring would give it.
        if (rc != -EAGAIN || (q.flags & MSG_DONTWAIT)) return from_rc(rc);
      }
    }
    if (IoOp* op = submit_uring(q, &epoll_path)) return wait_uring(op, q, lim);
  }
  if (lim.stop.stop_requested()) return from_rc(-ECANCELED);
  return run_readiness(q, lim, epoll_path ? WaitMode::epoll : WaitMode::thread);
}

Req make(Kind k, int fd) {
  Req q{};
  q.kind = k;
  q.fd = fd;
  return q;
}

}  // namespace

Result read(int fd, void* buf, std::size_t n, const Limits& lim) {
  Req q = make(Kind::read, fd);
  q.buf = buf;
  q.len = n;
  return run(q, lim);
}
Result write(int fd, const void* buf, std::size_t n, const Limits& lim) {
  Req q = make(Kind::write, fd);
  q.buf = const_cast<void*>(buf);
  q.len = n;
  return run(q, lim);
}
Result readv(int fd, const iovec* iov, int iovcnt, const Limits& lim) {
  Req q = make(Kind::readv, fd);
  q.iov = iov;
  q.iovcnt = iovcnt;
  return run(q, lim);
}
Result writev(int fd, const iovec* iov, int iovcnt, const Limits& lim) {
  Req q = make(Kind::writev, fd);
  q.iov = iov;
  q.iovcnt = iovcnt;
  return run(q, lim);
}
Result pread(int fd, void* buf, std::size_t n, off_t offset, const Limits& lim) {
  Req q = make(Kind::pread, fd);
  q.buf = buf;
  q.len = n;
  q.off = offset;
  return run(q, lim);
}
Result pwrite(int fd, const void* buf, std::size_t n, off_t offset, const Limits& lim) {
  Req q = make(Kind::pwrite, fd);
  q.buf = const_cast<void*>(buf);
  q.len = n;
  q.off = offset;
  return run(q, lim);
}
Result fsync(int fd, bool datasync, const Limits& lim) {
  Req q = make(Kind::fsync, fd);
  q.flags = datasync ? 1 : 0;
  return run(q, lim);
}
Result openat(int dirfd, const char* path, int flags, mode_t mode, const Limits& lim) {
  Req q = make(Kind::openat, dirfd);
  q.path = path;
  q.flags = flags;
  q.mode = mode;
  return run(q, lim);
}
Result close(int fd) { return run(make(Kind::close, fd), Limits{}); }
Result accept(int fd, sockaddr* addr, socklen_t* addrlen, int flags, const Limits& lim) {
  Req q = make(Kind::accept, fd);
  q.oaddr = addr;
  q.olen = addrlen;
  q.flags = flags;
  return run(q, lim);
}
Result connect(int fd, const sockaddr* addr, socklen_t addrlen, const Limits& lim) {
  Req q = make(Kind::connect, fd);
  q.addr = addr;
  q.addrlen = addrlen;
  return run(q, lim);
}
Result recv(int fd, void* buf, std::size_t n, int flags, const Limits& lim) {
  Req q = make(Kind::recv, fd);
  q.buf = buf;
  q.len = n;
  q.flags = flags;
  return run(q, lim);
}
Result send(int fd, const void* buf, std::size_t n, int flags, const Limits& lim) {
  Req q = make(Kind::send, fd);
  q.buf = const_cast<void*>(buf);
  q.len = n;
  q.flags = flags;
  return run(q, lim);
}
Result shutdown(int fd, int how) {
  Req q = make(Kind::shutdown, fd);
  q.flags = how;
  return run(q, Limits{});
}
Result poll(int fd, short events, const Limits& lim) {
  Req q = make(Kind::poll, fd);
  q.events = events;
  return run(q, lim);
}

std::error_code eof_error() noexcept { return std::error_code(ENODATA, std::system_category()); }

Result read_exact(int fd, void* buf, std::size_t n, const Limits& lim) {
  Result total;
  auto* p = static_cast<char*>(buf);
  while (total.value < n) {
    Result r = read(fd, p + total.value, n - total.value, lim);
    if (r.error) {
      total.error = r.error;
      return total;
    }
    if (r.value == 0) {
      total.error = eof_error();
      return total;
    }
    total.value += r.value;
  }
  return total;
}

Result write_all(int fd, const void* buf, std::size_t n, const Limits& lim) {
  Result total;
  const auto* p = static_cast<const char*>(buf);
  while (total.value < n) {
    Result r = write(fd, p + total.value, n - total.value, lim);
    if (r.error) {
      total.error = r.error;
      return total;
    }
    total.value += r.value;
  }
  return total;
}

std::string_view backend() noexcept {
  rt::Region region;
  rt::Core* c = region.core();
  if (!c || !c->reactor) return "thread";
  return c->reactor->kind == rt::IoBackend::uring ? "uring" : "epoll";
}

}  // namespace upcall::io
