// upcall/thread.hpp: drop-ins for <thread>: upcall::thread, upcall::jthread and
// upcall::this_thread. An upcall::thread is a fiber: constructed from a fiber it runs on that
// fiber's runtime, constructed from a plain thread it runs on the default runtime
// (upcall/default_runtime.hpp). std's rules are kept: the callable and its arguments are
// decay-copied by the constructing context; destroying (or assigning over) a joinable thread
// calls std::terminate; an exception escaping the thread function calls std::terminate; join()
// and detach() throw std::system_error as std does. There is no native_handle() (a fiber has no
// pthread). this_thread maps to upcall::this_task: in a fiber it suspends the fiber, never its
// kernel thread; on a plain thread it acts on that thread.
//
// Ids: thread::id is the fiber id; plain threads get ids of their own (top bit set), so ids of
// fibers and plain threads never collide and this_thread::get_id() works everywhere.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <exception>
#include <functional>
#include <ostream>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include "upcall/deadline.hpp"
#include "upcall/default_runtime.hpp"
#include "upcall/detail/config.hpp"
#include "upcall/fiber_local.hpp"
#include "upcall/stop_token.hpp"
#include "upcall/task_api.hpp"
#include "upcall/task.hpp"
#include "upcall/this_task.hpp"

namespace upcall {

class thread_id;

namespace this_thread {
inline thread_id get_id() noexcept;
}

namespace detail {
UPCALL_API std::uint64_t this_thread_id_value() noexcept;  // runtime/sync/thread.cpp
}

// std::thread::id (spelled upcall::thread::id).
class thread_id {
 public:
  thread_id() noexcept = default;  // "not a thread"
  friend bool operator==(thread_id a, thread_id b) noexcept { return a.v_ == b.v_; }
  friend std::strong_ordering operator<=>(thread_id a, thread_id b) noexcept {
    return a.v_ <=> b.v_;
  }
  template <class CharT, class Traits>
  friend std::basic_ostream<CharT, Traits>& operator<<(std::basic_ostream<CharT, Traits>& os,
                                                       thread_id i) {
    if (i.v_ == 0) return os << "thread::id of a non-executing thread";
    return os << i.v_;
  }
  // The raw value (fiber id, or a plain thread's id); for hashing and logging.
  std::uint64_t value() const noexcept { return v_; }

 private:
  friend class thread;
  friend thread_id this_thread::get_id() noexcept;
  explicit thread_id(std::uint64_t v) noexcept : v_(v) {}
  std::uint64_t v_ = 0;
};

class thread {
 public:
  using id = thread_id;

  thread() noexcept = default;

  // Starts f(args...) on a new fiber (see the file comment for which runtime). Throws
  // std::system_error (resource_unavailable_try_again) when no fiber can be started, e.g. the
  // runtime is shutting down or the default runtime was shut down at exit.
  template <class F, class... Args>
    requires(!std::is_same_v<std::remove_cvref_t<F>, thread>)
  explicit thread(F&& f, Args&&... args) {
    static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>,
                  "upcall::thread arguments must be invocable after conversion to rvalues");
    handle_ = detail::spawn_std(
        [fn = std::decay_t<F>(std::forward<F>(f)),
         bound = std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)]() mutable noexcept {
          // noexcept: an escaping exception calls std::terminate, as for std::thread. Except
          // los::TaskDeleted: a los::task_delete of this thread's fiber unwinds it at its next
          // cancellation point (a wait), and the thread then ends as if its function returned.
          try {
            // Moved to locals so that the decay-copies die before the fiber_local values, as
            // std::thread's copies die before the thread's thread_locals.
            auto f = std::move(fn);
            auto a = std::move(bound);
            std::apply([&](auto&... x) { std::invoke(std::move(f), std::move(x)...); }, a);
          } catch (const los::TaskDeleted&) {
          }
          release_fiber_locals();  // the "thread_local destructors" of this thread
        });
  }

  ~thread() {
    if (joinable()) std::terminate();
  }
  thread(const thread&) = delete;
  thread& operator=(const thread&) = delete;
  thread(thread&& o) noexcept = default;
  thread& operator=(thread&& o) noexcept {
    if (joinable()) std::terminate();
    handle_ = std::move(o.handle_);
    return *this;
  }
  void swap(thread& o) noexcept { std::swap(handle_, o.handle_); }

  bool joinable() const noexcept { return handle_.joinable(); }
  id get_id() const noexcept { return id(handle_.id()); }

  // Waits for the thread (suspends a calling fiber, blocks a plain thread). Throws
  // std::system_error: invalid_argument if not joinable, resource_deadlock_would_occur when a
  // thread joins itself. A cancellation point of a deleted task (los::task_delete): the thread
  // is then detached (it runs on; nobody observes its end) and los::TaskDeleted propagates, so
  // the unwinding does not reach ~thread with a joinable thread (which would terminate).
  void join() { join_impl(true); }
  // Lets the fiber run on unobserved. Throws std::system_error(invalid_argument) if not
  // joinable.
  void detach() {
    if (!joinable())
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "upcall::thread::detach: the thread is not joinable");
    handle_.detach();
  }

  // Cores of the runtime the caller's fiber runs on; from a plain thread, of the default
  // runtime (its configured size, without starting it). 0 when it cannot be determined.
  UPCALL_API static unsigned int hardware_concurrency() noexcept;

 private:
  friend class jthread;
  void join_impl(bool detach_on_delete) {
    if (!joinable())
      throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                              "upcall::thread::join: the thread is not joinable");
    if (handle_.id() == detail::this_thread_id_value())
      throw std::system_error(std::make_error_code(std::errc::resource_deadlock_would_occur),
                              "upcall::thread::join: a thread cannot join itself");
    try {
      handle_.join();
    } catch (const los::TaskDeleted&) {
      if (detach_on_delete) handle_.detach();
      throw;
    }
  }
  JoinHandle<void> handle_;
};

inline void swap(thread& a, thread& b) noexcept { a.swap(b); }

namespace this_thread {

// The caller's id: its fiber's, or its plain thread's.
inline thread_id get_id() noexcept { return thread_id(detail::this_thread_id_value()); }

inline void yield() noexcept { this_task::yield(); }

template <class Rep, class Period>
void sleep_for(const std::chrono::duration<Rep, Period>& d) {
  if (d <= d.zero()) return;
  this_task::sleep_until(detail::deadline_after(d));
}

template <class Clock, class Duration>
void sleep_until(const std::chrono::time_point<Clock, Duration>& t) {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    if (t <= Clock::now()) return;
    this_task::sleep_until(detail::steady_deadline(t));
  } else {
    for (auto now = Clock::now(); now < t; now = Clock::now())
      this_task::sleep_until(detail::deadline_after(t - now));
  }
}

}  // namespace this_thread

// std::jthread: a thread that owns a stop_source, and on destruction requests a stop and
// joins. If the callable accepts an upcall::stop_token as first argument it gets the thread's.
class jthread {
 public:
  using id = thread::id;

  jthread() noexcept : source_(nostopstate) {}
  template <class F, class... Args>
    requires(!std::is_same_v<std::remove_cvref_t<F>, jthread>)
  explicit jthread(F&& f, Args&&... args) : source_(), thread_(start(std::forward<F>(f),
                                                                      std::forward<Args>(args)...)) {}
  ~jthread() { stop_and_join(); }
  jthread(const jthread&) = delete;
  jthread& operator=(const jthread&) = delete;
  jthread(jthread&&) noexcept = default;
  jthread& operator=(jthread&& o) noexcept {
    if (this != &o) {
      stop_and_join();
      source_ = std::move(o.source_);
      thread_ = std::move(o.thread_);
    }
    return *this;
  }
  void swap(jthread& o) noexcept {
    std::swap(source_, o.source_);
    thread_.swap(o.thread_);
  }

  [[nodiscard]] bool joinable() const noexcept { return thread_.joinable(); }
  // A cancellation point of a deleted task; the jthread stays joinable then, so its destructor
  // requests a stop and joins (not a cancellation point there) while the task unwinds.
  void join() { thread_.join_impl(false); }
  void detach() { thread_.detach(); }
  [[nodiscard]] id get_id() const noexcept { return thread_.get_id(); }
  [[nodiscard]] stop_source get_stop_source() noexcept { return source_; }
  [[nodiscard]] stop_token get_stop_token() const noexcept { return source_.get_token(); }
  bool request_stop() noexcept { return source_.request_stop(); }
  [[nodiscard]] static unsigned int hardware_concurrency() noexcept {
    return thread::hardware_concurrency();
  }
  friend void swap(jthread& a, jthread& b) noexcept { a.swap(b); }

 private:
  template <class F, class... Args>
  thread start(F&& f, Args&&... args) {
    if constexpr (std::is_invocable_v<std::decay_t<F>, stop_token, std::decay_t<Args>...>)
      return thread(std::forward<F>(f), source_.get_token(), std::forward<Args>(args)...);
    else
      return thread(std::forward<F>(f), std::forward<Args>(args)...);
  }
  // From the destructor and move assignment (noexcept): never a cancellation point.
  void stop_and_join() {
    if (thread_.joinable()) {
      source_.request_stop();
      detail::NoCancelScope no_cancel;
      thread_.join();
    }
  }

  stop_source source_;  // declared first: the thread's token comes from it
  thread thread_;
};

}  // namespace upcall

template <>
struct std::hash<upcall::thread_id> {
  std::size_t operator()(upcall::thread_id i) const noexcept {
    return std::hash<std::uint64_t>()(i.value());
  }
};
