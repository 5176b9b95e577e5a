// upcall/task.hpp: spawning fibers and joining them. spawn(f) starts f on a fiber of the
// current runtime and returns a JoinHandle; join() waits for it and returns its value or
// rethrows its exception. The callable and its result are stored on the fiber's own pooled
// stack, so a spawn does not touch the heap. Runtime::spawn (runtime.hpp) spawns from a thread
// that is not a fiber.
#pragma once

#include <cstdint>
#include <exception>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "upcall/detail/spawn_raw.hpp"

namespace upcall {

// Per-spawn attributes.
struct SpawnOptions {
  const char* name = nullptr;  // shown by this_task::name() and in fatal messages (<= 31 bytes)
  int priority = 0;            // used by priority-aware policies; higher runs first
};

namespace detail {

// Where a fiber leaves its outcome. Written once by the fiber (in run), read by the joiner after
// fiber_join returned: fiber_join's acquire pairs with the fiber's release on completion.
template <class R>
struct ResultSlot {
  ResultSlot() {}
  ~ResultSlot() {}
  union {
    R value;
  };
  std::exception_ptr error;
  bool has_value = false;

  // Moves the outcome out: the exception is taken too, so the joiner owns its last reference
  // (the storage is disposed of later, possibly on another thread).
  R take() {
    if (error) std::rethrow_exception(std::exchange(error, nullptr));
    return std::move(value);
  }
  void destroy_value() {
    if (has_value) value.~R();
    has_value = false;
  }
};

template <>
struct ResultSlot<void> {
  std::exception_ptr error;
  bool has_value = false;
  void take() {
    if (error) std::rethrow_exception(std::exchange(error, nullptr));
  }
  void destroy_value() { has_value = false; }
};

// Reports an exception that escaped a fiber nobody joined (one line on stderr). As with a
// detached Tokio task, the process carries on.
UPCALL_API void report_unjoined_exception(const std::exception_ptr& e) noexcept;

template <class F, class R>
struct TaskStorage : ResultSlot<R> {
  explicit TaskStorage(F&& f) : fn(std::move(f)) {}
  ~TaskStorage() {}  // members are destroyed by run/dispose
  union {
    F fn;
  };
  bool fn_alive = true;

  static void run(void* p) {
    auto* s = static_cast<TaskStorage*>(p);
    try {
      if constexpr (std::is_void_v<R>) {
        s->fn();
      } else {
        ::new (static_cast<void*>(&s->value)) R(s->fn());
      }
      s->has_value = true;
    } catch (...) {
      s->error = std::current_exception();
    }
    // The callable's captures are destroyed on the fiber, as they would be on a std::thread.
    s->fn.~F();
    s->fn_alive = false;
  }
  static void dispose(void* p, bool joined) {
    auto* s = static_cast<TaskStorage*>(p);
    if (s->fn_alive) s->fn.~F();  // never ran (the runtime shut down first)
    s->destroy_value();
    if (s->error && !joined) report_unjoined_exception(s->error);
    s->~TaskStorage();
  }
  static constexpr TaskVTable vtable{&run, &dispose};
};

UPCALL_API Runtime* current_runtime_or_null() noexcept;

}  // namespace detail

// Owns the right to join one fiber. Movable, not copyable. Destroying a joinable handle
// detaches the fiber (it keeps running; its result is discarded), as Tokio and Go do; the
// std-compatible upcall::thread keeps std's terminate-on-destroy rule instead.
template <class T>
class JoinHandle {
 public:
  JoinHandle() = default;
  JoinHandle(detail::FiberHandle* f, detail::ResultSlot<T>* result) : fiber_(f), result_(result) {}
  JoinHandle(JoinHandle&& o) noexcept
      : fiber_(std::exchange(o.fiber_, nullptr)), result_(std::exchange(o.result_, nullptr)) {}
  JoinHandle& operator=(JoinHandle&& o) noexcept {
    if (this != &o) {
      detach();
      fiber_ = std::exchange(o.fiber_, nullptr);
      result_ = std::exchange(o.result_, nullptr);
    }
    return *this;
  }
  JoinHandle(const JoinHandle&) = delete;
  JoinHandle& operator=(const JoinHandle&) = delete;
  ~JoinHandle() { detach(); }

  bool joinable() const { return fiber_ != nullptr; }
  // True once the fiber has finished (join will not wait).
  bool done() const { return fiber_ != nullptr && detail::fiber_done(fiber_); }
  std::uint64_t id() const { return fiber_ ? detail::fiber_id(fiber_) : 0; }

  // Waits for the fiber (suspends a calling fiber; blocks a calling plain thread), then returns
  // its value or rethrows its exception. Throws std::logic_error if !joinable().
  T join() {
    if (!fiber_) throw std::logic_error("upcall::JoinHandle::join: handle is not joinable");
    detail::fiber_join(fiber_);
    // The reference is dropped after take() moved the outcome out (also when it throws).
    struct Release {
      detail::FiberHandle* f;
      ~Release() { detail::fiber_release(f, true); }
    } release{std::exchange(fiber_, nullptr)};
    return std::exchange(result_, nullptr)->take();
  }

  // Lets the fiber run on unobserved.
  void detach() {
    if (fiber_) detail::fiber_release(std::exchange(fiber_, nullptr), false);
    result_ = nullptr;
  }

 private:
  detail::FiberHandle* fiber_ = nullptr;
  detail::ResultSlot<T>* result_ = nullptr;
};

namespace detail {
template <class F>
auto spawn_on(Runtime* rt, F&& f, const SpawnOptions& opts) {
  using Fn = std::decay_t<F>;
  using R = std::invoke_result_t<Fn&>;
  using S = TaskStorage<Fn, R>;
  SpawnSpec spec;
  spec.size = sizeof(S);
  spec.align = alignof(S);
  spec.vtable = &S::vtable;
  spec.name = opts.name;
  spec.priority = opts.priority;
  RawTask raw = fiber_create(rt, spec);
  S* s;
  try {
    s = ::new (raw.storage) S(Fn(std::forward<F>(f)));
  } catch (...) {
    fiber_abandon(raw.fiber);  // never started, storage never built: returns the stack
    throw;
  }
  fiber_start(raw.fiber);
  return JoinHandle<R>(raw.fiber, static_cast<ResultSlot<R>*>(s));
}
}  // namespace detail

// Starts f() on a new fiber of the calling fiber's runtime. Must be called from a fiber (use
// Runtime::spawn from other threads); throws std::logic_error otherwise. Does not suspend.
template <class F>
auto spawn(F&& f, const SpawnOptions& opts = {}) {
  return detail::spawn_on(nullptr, std::forward<F>(f), opts);
}

}  // namespace upcall
