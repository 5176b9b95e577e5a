// runtime/core/platform.cpp: the few kernel interfaces the core uses directly (futex, the
// monotonic clock), the thread-local "current activation" accessors, and UPCALL_CHECK's
// failure path.
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "runtime/core/check.hpp"
#include "runtime/core/runtime_impl.hpp"

namespace upcall::rt {

}  // namespace upcall::rt

// One pointer of static TLS (initial-exec): also fine when the library is dlopen()ed, glibc
// keeps a surplus for such variables.
thread_local upcall::rt::Activation* upcall_rt_tls_activation = nullptr;

namespace upcall::rt {

__attribute__((noinline)) void set_current_activation(Activation* a) noexcept {
  upcall_rt_tls_activation = a;
}


std::int64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::int64_t timeout_ns) {
  timespec ts;
  timespec* tsp = nullptr;
  if (timeout_ns >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
    tsp = &ts;
  }
  // Returns on wake, on a value mismatch (EAGAIN), on timeout or signal: callers re-check.
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, tsp,
          nullptr, 0);
}

void futex_wake(std::atomic<std::uint32_t>* word, int n) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, n, nullptr,
          nullptr, 0);
}

[[noreturn]] void check_failed(const char* expr, const char* msg, const char* file, int line) {
  std::fprintf(stderr, "upcall: internal check failed: %s (%s) at %s:%d\n", msg, expr, file, line);
  std::abort();
}

void sanitizer_identity_of_thread(SanitizerIdentity& id) {
  (void)id;
#ifdef UPCALL_ASAN
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    std::size_t size = 0;
    pthread_attr_getstack(&attr, &addr, &size);
    id.stack_bottom = addr;
    id.stack_size = size;
    pthread_attr_destroy(&attr);
  }
#endif
#ifdef UPCALL_TSAN
  id.tsan_fiber = __tsan_get_current_fiber();
  id.tsan_owned = false;
#endif
}

}  // namespace upcall::rt
