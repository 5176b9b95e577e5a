// upcall/io.hpp: fiber-blocking I/O calls on file descriptors. Each reads like the blocking
// syscall of the same name and costs like an event loop: called from a fiber it suspends the
// fiber (never its kernel thread) until the runtime's reactor completes the request; called from
// a plain thread, or inside upcall::blocking, it blocks that thread.
//
// Every call takes optional Limits: a deadline and a stop token. A call that times out reports
// ETIMEDOUT, a cancelled one ECANCELED; either returns only after the kernel is done with the
// request (the buffer may live on the caller's stack), and if the request completed anyway its
// result is returned instead. Errors are std::error_code values of std::system_category() with
// the errno; nothing throws here (net.hpp and file.hpp offer throwing types).
//
// Backends (README "I/O"): io_uring rings per core (default), an epoll readiness backend
// (UPCALL_IO=epoll, or automatically when io_uring is not allowed, announced once).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <string_view>
#include <system_error>

#include "upcall/detail/config.hpp"
#include "upcall/stop_token.hpp"

namespace upcall::io {

using Clock = std::chrono::steady_clock;

// When a call gives up: at `deadline` (steady clock; max() = never) or when `stop` is stopped.
struct Limits {
  Clock::time_point deadline = Clock::time_point::max();
  stop_token stop;

  Limits() = default;
  explicit Limits(Clock::time_point d, stop_token s = {}) : deadline(d), stop(std::move(s)) {}
  explicit Limits(stop_token s) : stop(std::move(s)) {}
  // A deadline `d` from now.
  template <class Rep, class Period>
  static Limits within(std::chrono::duration<Rep, Period> d, stop_token s = {}) {
    return Limits(Clock::now() + std::chrono::ceil<Clock::duration>(d), std::move(s));
  }
  bool unlimited() const noexcept {
    return deadline == Clock::time_point::max() && !stop.stop_possible();
  }
};

// The outcome of one call: `value` is the byte count moved (read/write/recv/send), the new
// descriptor (accept, openat), the returned events (poll), or 0. `error` is empty on success.
// A call that fails after moving bytes (write_all-style loops) reports both.
struct Result {
  std::size_t value = 0;
  std::error_code error;
  explicit operator bool() const noexcept { return !error; }
  int fd() const noexcept { return static_cast<int>(value); }
};

// Each may suspend the calling fiber. Semantics as the syscall of the same name.
UPCALL_API Result read(int fd, void* buf, std::size_t n, const Limits& lim = {});
UPCALL_API Result write(int fd, const void* buf, std::size_t n, const Limits& lim = {});
UPCALL_API Result readv(int fd, const iovec* iov, int iovcnt, const Limits& lim = {});
UPCALL_API Result writev(int fd, const iovec* iov, int iovcnt, const Limits& lim = {});
UPCALL_API Result pread(int fd, void* buf, std::size_t n, off_t offset, const Limits& lim = {});
UPCALL_API Result pwrite(int fd, const void* buf, std::size_t n, off_t offset,
                         const Limits& lim = {});
// datasync: fdatasync semantics.
UPCALL_API Result fsync(int fd, bool datasync = false, const Limits& lim = {});
// value = the new descriptor (O_CLOEXEC is added).
UPCALL_API Result openat(int dirfd, const char* path, int flags, mode_t mode = 0644,
                         const Limits& lim = {});
UPCALL_API Result close(int fd);
// value = the accepted descriptor; `flags` as accept4 (SOCK_CLOEXEC is added).
UPCALL_API Result accept(int fd, sockaddr* addr = nullptr, socklen_t* addrlen = nullptr,
                         int flags = 0, const Limits& lim = {});
UPCALL_API Result connect(int fd, const sockaddr* addr, socklen_t addrlen, const Limits& lim = {});
UPCALL_API Result recv(int fd, void* buf, std::size_t n, int flags = 0, const Limits& lim = {});
// MSG_NOSIGNAL is always added: a reset peer gives EPIPE, never SIGPIPE.
UPCALL_API Result send(int fd, const void* buf, std::size_t n, int flags = 0,
                       const Limits& lim = {});
UPCALL_API Result shutdown(int fd, int how);
// Waits until `fd` has one of `events` (POLLIN, POLLOUT, ...); value = the returned events.
UPCALL_API Result poll(int fd, short events, const Limits& lim = {});

// Loops until all `n` bytes moved, EOF (read_exact: error = eof), an error, or the limits.
// value = bytes moved in every case.
UPCALL_API Result read_exact(int fd, void* buf, std::size_t n, const Limits& lim = {});
UPCALL_API Result write_all(int fd, const void* buf, std::size_t n, const Limits& lim = {});

// The error read_exact reports at end of file before n bytes (std::errc::no_message_available
// is not it: this is its own category-free value ENODATA).
UPCALL_API std::error_code eof_error() noexcept;

// The I/O backend of the calling fiber's runtime ("uring" or "epoll"), or "thread" when the
// caller is not on a fiber (its calls block the thread).
UPCALL_API std::string_view backend() noexcept;

}  // namespace upcall::io
