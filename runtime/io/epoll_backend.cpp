// runtime/io/epoll_backend.cpp: the readiness backend (UPCALL_IO=epoll, or where io_uring is not
// allowed). One epoll instance per core plus an eventfd that wakes the core's idle wait. A
// waiting fiber registers its fd once (EPOLLONESHOT) in the epoll of the core it runs on,
// parks, and performs the non-blocking syscall itself when woken (io_ops.cpp). Unlike io_uring,
// epoll is not tied to the thread that registered: after a takeover the new holder's
// epoll_wait reports every readiness, in flight or new, so a block of a holder delays nothing
// that another thread can poll.
//
// Stale events: the poller may collect an event for a wait that times out before it is
// dispatched. Event data is (slot index << 32 | generation); the waiter bumps the generation
// under Reactor::mu when it leaves, so the poller's check (same lock) drops the stale event.
// Registrations are keyed by (fd, open file) in epoll: a second waiter on the same fd in the
// same epoll (EEXIST) registers a dup() of it.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <optional>

#include "runtime/activations/region.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "runtime/io/reactor.hpp"
#include "upcall/stop_token.hpp"

namespace upcall::rt {

namespace {
constexpr std::uint64_t kEventFdData = ~std::uint64_t{0};
constexpr int kMaxEvents = 128;
}  // namespace

int epoll_reactor_init(Reactor* r) noexcept {
  r->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (r->epfd < 0) return -errno;
  r->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->evfd < 0) {
    const int e = errno;
    ::close(r->epfd);
    r->epfd = -1;
    return -e;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEventFdData;
  if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->evfd, &ev) != 0) {
    const int e = errno;
    ::close(r->evfd);
    ::close(r->epfd);
    r->evfd = r->epfd = -1;
    return -e;
  }
  return 0;
}

void epoll_reactor_exit(Reactor* r) noexcept {
  if (r->evfd >= 0) ::close(r->evfd);
  if (r->epfd >= 0) ::close(r->epfd);
  r->evfd = r->epfd = -1;
}

// Holder of c (or its idle wait). Dispatches ready events; true when a fiber was made ready.
bool epoll_poll(Core* c, std::int64_t timeout_ns) noexcept {
  Reactor* r = c->reactor;
  epoll_event evs[kMaxEvents];
  timespec ts{};
  if (timeout_ns > 0) {
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
  }
  const int n = epoll_pwait2(r->epfd, evs, kMaxEvents, timeout_ns < 0 ? nullptr : &ts, nullptr);
  if (n <= 0) return false;
  bool woke = false, wake_msg = false;
  Waker to_wake[kMaxEvents];
  int nw = 0;
  {
    std::lock_guard<std::mutex> lock(r->mu);
    for (int i = 0; i < n; ++i) {
      const std::uint64_t d = evs[i].data.u64;
      if (d == kEventFdData) {
        wake_msg = true;
        continue;
      }
      const std::uint32_t idx = static_cast<std::uint32_t>(d >> 32);
      const std::uint32_t gen = static_cast<std::uint32_t>(d);
      if (idx >= r->slots.size()) continue;
      EpollSlot& s = r->slots[idx];
      if (s.gen != gen || s.state != 1) continue;  // stale: its waiter already left
      s.state = 2;
      s.revents = evs[i].events;
      to_wake[nw++] = s.waker;
    }
  }
  if (wake_msg) {
    std::uint64_t v;
    [[maybe_unused]] ssize_t rd = ::read(r->evfd, &v, sizeof v);
  }
  for (int i = 0; i < nw; ++i) {
    unpark_waker(to_wake[i]);
    woke = true;
  }
  if (nw) r->completed.store(r->completed.load(std::memory_order_relaxed) + nw, std::memory_order_relaxed);
  return woke;
}

void epoll_wake(Core* target) noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(target->reactor->evfd, &one, sizeof one);
}

// Fiber side: waits until fd has `events` or the deadline / stop. Returns the events (> 0),
// -ETIMEDOUT, -ECANCELED or a negative errno from registration. The caller holds no region.
int epoll_wait_ready(int fd, short events, std::int64_t deadline_ns, const upcall::stop_token& stop) {
  Reactor* r;
  std::uint32_t idx;
  std::uint32_t gen;
  int reg_fd = fd;
  {
    Region region;
    Core* c = region.core();
    if (!c || !c->reactor || c->reactor->kind != IoBackend::epoll) return -EAGAIN;
    r = c->reactor;
    std::lock_guard<std::mutex> lock(r->mu);
    if (!r->free_slots.empty()) {
      idx = r->free_slots.back();
      r->free_slots.pop_back();
    } else {
      idx = static_cast<std::uint32_t>(r->slots.size());
      r->slots.emplace_back();
    }
    EpollSlot& s = r->slots[idx];
    gen = ++s.gen;
    s.state = 1;
    s.revents = 0;
    s.waker = current_waker();
  }
  epoll_event ev{};
  ev.events = static_cast<std::uint32_t>(events) | EPOLLONESHOT;
  ev.data.u64 = (static_cast<std::uint64_t>(idx) << 32) | gen;
  int rc = epoll_ctl(r->epfd, EPOLL_CTL_ADD, reg_fd, &ev);
  if (rc != 0 && errno == EEXIST) {
    reg_fd = ::dup(fd);
    rc = reg_fd < 0 ? -1 : epoll_ctl(r->epfd, EPOLL_CTL_ADD, reg_fd, &ev);
  }
  int result;
  if (rc != 0) {
    result = -errno;
  } else {
    // A stop request unparks us; the park loop below re-checks.
    const Waker self = current_waker();
    std::optional<stop_callback<std::function<void()>>> cb;
    if (stop.stop_possible()) cb.emplace(stop, std::function<void()>([self] { unpark_waker(self); }));
    result = 0;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(r->mu);
        if (r->slots[idx].state == 2) {
          result = static_cast<int>(r->slots[idx].revents);
          break;
        }
      }
      if (stop.stop_requested()) {
        result = -ECANCELED;
        break;
      }
      if (deadline_ns != INT64_MAX && now_ns() >= deadline_ns) {
        result = -ETIMEDOUT;
        break;
      }
      if (deadline_ns != INT64_MAX)
        park_current_until(deadline_ns);
      else
        park_current();
    }
    epoll_ctl(r->epfd, EPOLL_CTL_DEL, reg_fd, nullptr);
  }
  {
    std::lock_guard<std::mutex> lock(r->mu);
    EpollSlot& s = r->slots[idx];
    // A readiness that fired while we gave up is still a readiness: report it.
    if (result < 0 && s.state == 2) result = static_cast<int>(s.revents);
    ++s.gen;  // events collected for this wait are stale from now on
    s.state = 0;
    r->free_slots.push_back(idx);
  }
  if (reg_fd != fd && reg_fd >= 0) ::close(reg_fd);
  return result;
}

}  // namespace upcall::rt
