// upcall/future.hpp: drop-ins for <future>: upcall::promise, future, shared_future,
// packaged_task and async, with std's error types reused as they are (std::future_error,
// future_errc, future_status, launch), so `catch (const std::future_error&)` keeps working.
// Waiting for a result suspends a calling fiber (blocks a plain thread).
//
// Semantics kept from std: get() invalidates a future; every misuse throws future_error with
// std's code (no_state, promise_already_satisfied, future_already_retrieved, broken_promise);
// async(launch::async, ...) runs f on a new fiber (of the caller's runtime from a fiber, else
// of the default runtime) and the last future of its shared state waits for that fiber in its
// destructor, as std::async's futures join their thread; launch::deferred runs f in the first
// context that calls wait()/get(); the default policy (async | deferred) picks async, and falls
// back to deferred if no fiber can be started. Exceptions of f are stored in the state.
// Not provided: the *_at_thread_exit functions and the allocator-taking constructors.
//
// The shared state's synchronisation is the non-template detail::FutureStateBase
// (runtime/sync/future.cpp); FutureState<T> adds the value.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>  // std::future_error, future_errc, future_status, launch
#include <memory>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

#include "upcall/deadline.hpp"
#include "upcall/default_runtime.hpp"
#include "upcall/detail/config.hpp"
#include "upcall/detail/wait.hpp"
#include "upcall/fiber_local.hpp"
#include "upcall/task.hpp"

namespace upcall {

using std::future_category;
using std::future_errc;
using std::future_error;
using std::future_status;
using std::launch;

namespace detail {

[[noreturn]] UPCALL_API void throw_future_error(future_errc code);

// Reference counted by promises, futures, tasks and fibers (refs_), and separately by futures
// (futures_): async states join their fiber when their last future goes.
class UPCALL_API FutureStateBase {
 public:
  virtual ~FutureStateBase();
  FutureStateBase(const FutureStateBase&) = delete;
  FutureStateBase& operator=(const FutureStateBase&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  // acq_rel: the last releaser sees every other owner's accesses before it deletes.
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void attach_future() noexcept { futures_.fetch_add(1, std::memory_order_relaxed); }
  void detach_future() noexcept {
    if (futures_.fetch_sub(1, std::memory_order_acq_rel) == 1) on_last_future();
  }

  void mark_retrieved();    // throws future_error(future_already_retrieved)
  void begin_satisfy();     // throws future_error(promise_already_satisfied)
  void cancel_satisfy() noexcept;  // the value's constructor threw: not satisfied after all
  void finish_satisfy() noexcept;  // makes the state ready and wakes every waiter
  void set_exception(std::exception_ptr e);  // begin + store + finish
  void abandon() noexcept;  // the last provider went: broken_promise unless satisfied

  void wait();                           // a deferred state runs its function here first
  bool wait_until(SteadyTime deadline);  // true once ready; never runs a deferred function
  bool is_deferred() const noexcept { return deferred_; }
  // acquire: pairs with finish_satisfy's release; the value / error is visible.
  bool ready() const noexcept { return status_.load(std::memory_order_acquire) == kReady; }

  // Written by the satisfier between begin_satisfy and finish_satisfy; read after ready().
  std::exception_ptr error_;

 protected:
  FutureStateBase() noexcept = default;
  // Before the state is shared: wait() runs run_deferred() instead of waiting.
  void make_deferred() noexcept { deferred_ = true; }
  virtual void run_deferred() noexcept {}
  virtual void on_last_future() noexcept {}

 private:
  static constexpr std::uint32_t kEmpty = 0, kSatisfying = 1, kReady = 2;
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<std::uint32_t> futures_{0};
  // kEmpty -> kSatisfying (CAS, by the one satisfier) -> kReady (store release, under spin_).
  std::atomic<std::uint32_t> status_{kEmpty};
  std::atomic<bool> retrieved_{false};  // exchange: get_future once
  bool deferred_ = false;  // fixed before the state is shared (make_deferred)
  SpinLock spin_;              // guards waiters_, deferred_taken_, and the kReady transition
  WaitList waiters_;           // guarded by spin_
  bool deferred_taken_ = false;  // guarded by spin_
};

template <class T>
class FutureState : public FutureStateBase {
 public:
  FutureState() noexcept = default;
  ~FutureState() override {
    if (has_value_) value().~T();
  }
  template <class... A>
  void set_value(A&&... a) {
    begin_satisfy();
    try {
      ::new (static_cast<void*>(&storage_)) T(std::forward<A>(a)...);
    } catch (...) {
      cancel_satisfy();
      throw;
    }
    has_value_ = true;
    finish_satisfy();
  }
  // After begin_satisfy: stores f()'s value or exception (finish_satisfy is the caller's).
  template <class F>
  void produce(F&& f) noexcept {
    try {
      ::new (static_cast<void*>(&storage_)) T(std::forward<F>(f)());
      has_value_ = true;
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  T& value() noexcept { return *std::launder(reinterpret_cast<T*>(&storage_)); }

 private:
  alignas(T) unsigned char storage_[sizeof(T)];
  bool has_value_ = false;  // written by the satisfier before ready, read after
};

template <class T>
class FutureState<T&> : public FutureStateBase {
 public:
  FutureState() noexcept = default;
  void set_value(T& v) {
    begin_satisfy();
    ptr_ = std::addressof(v);
    finish_satisfy();
  }
  template <class F>
  void produce(F&& f) noexcept {
    try {
      ptr_ = std::addressof(std::forward<F>(f)());
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  T& value() noexcept { return *ptr_; }

 private:
  T* ptr_ = nullptr;
};

template <>
class FutureState<void> : public FutureStateBase {
 public:
  FutureState() noexcept = default;
  void set_value() {
    begin_satisfy();
    finish_satisfy();
  }
  template <class F>
  void produce(F&& f) noexcept {
    try {
      std::forward<F>(f)();
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  void value() noexcept {}
};

// Shared by future and shared_future: owns one reference and one future count.
template <class T>
class FutureHandle {
 public:
  FutureHandle() noexcept = default;
  explicit FutureHandle(FutureState<T>* s) noexcept : s_(s) {
    if (s_) {
      s_->add_ref();
      s_->attach_future();
    }
  }
  FutureHandle(FutureHandle&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  FutureHandle& operator=(FutureHandle&& o) noexcept {
    if (this != &o) {
      reset();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~FutureHandle() { reset(); }
  void reset() noexcept {
    if (FutureState<T>* s = std::exchange(s_, nullptr)) {
      s->detach_future();  // an async state waits for its fiber here
      s->release();
    }
  }
  FutureState<T>* get() const noexcept { return s_; }
  FutureState<T>* checked() const {
    if (!s_) throw_future_error(future_errc::no_state);
    return s_;
  }

  bool valid() const noexcept { return s_ != nullptr; }
  void wait() const { checked()->wait(); }
  template <class Rep, class Period>
  future_status wait_for(const std::chrono::duration<Rep, Period>& d) const {
    return wait_steady(deadline_after(d));
  }
  template <class Clock, class Duration>
  future_status wait_until(const std::chrono::time_point<Clock, Duration>& t) const {
    FutureState<T>* s = checked();
    if (s->is_deferred() && !s->ready()) return future_status::deferred;
    return until_clock(t, [s](SteadyTime d) { return s->wait_until(d); }) ? future_status::ready
                                                                           : future_status::timeout;
  }

 private:
  future_status wait_steady(SteadyTime d) const {
    FutureState<T>* s = checked();
    if (s->is_deferred() && !s->ready()) return future_status::deferred;
    return s->wait_until(d) ? future_status::ready : future_status::timeout;
  }
  FutureState<T>* s_ = nullptr;
};

}  // namespace detail

template <class T>
class shared_future;
template <class T>
class promise;
template <class T>
class future;

namespace detail {
struct FutureAccess {
  template <class T>
  static future<T> make(FutureState<T>* s) noexcept {
    return future<T>(s);
  }
};
}  // namespace detail

template <class Signature>
class packaged_task;

// std::future.
template <class T>
class future {
 public:
  future() noexcept = default;
  future(future&&) noexcept = default;
  future& operator=(future&&) noexcept = default;
  future(const future&) = delete;
  future& operator=(const future&) = delete;

  // Waits, then returns the value (or rethrows the stored exception); the future becomes
  // invalid. Throws future_error(no_state) if !valid().
  T get() {
    detail::FutureState<T>* s = h_.checked();
    detail::FutureHandle<T> keep(std::move(h_));  // invalid from here on, whatever happens
    s->wait();
    if (s->error_) std::rethrow_exception(s->error_);
    if constexpr (std::is_void_v<T>)
      return;
    else if constexpr (std::is_reference_v<T>)
      return s->value();
    else
      return std::move(s->value());
  }
  shared_future<T> share() noexcept;
  bool valid() const noexcept { return h_.valid(); }
  void wait() const { h_.wait(); }
  template <class Rep, class Period>
  future_status wait_for(const std::chrono::duration<Rep, Period>& d) const {
    return h_.wait_for(d);
  }
  template <class Clock, class Duration>
  future_status wait_until(const std::chrono::time_point<Clock, Duration>& t) const {
    return h_.wait_until(t);
  }

 private:
  template <class>
  friend class shared_future;
  template <class>
  friend class promise;
  template <class>
  friend class packaged_task;
  friend struct detail::FutureAccess;
  explicit future(detail::FutureState<T>* s) noexcept : h_(s) {}
  detail::FutureHandle<T> h_;
};

// std::shared_future.
template <class T>
class shared_future {
 public:
  shared_future() noexcept = default;
  shared_future(future<T>&& f) noexcept : h_(std::move(f.h_)) {}
  shared_future(const shared_future& o) noexcept : h_(o.h_.get()) {}
  shared_future(shared_future&&) noexcept = default;
  shared_future& operator=(const shared_future& o) noexcept {
    if (this != &o) h_ = detail::FutureHandle<T>(o.h_.get());
    return *this;
  }
  shared_future& operator=(shared_future&&) noexcept = default;

  // Waits, then returns the value (const T&, T& for shared_future<T&>, nothing for void) or
  // rethrows the stored exception. The future stays valid.
  decltype(auto) get() const {
    detail::FutureState<T>* s = h_.checked();
    s->wait();
    if (s->error_) std::rethrow_exception(s->error_);
    if constexpr (std::is_void_v<T>)
      return;
    else if constexpr (std::is_reference_v<T>)
      return static_cast<T>(s->value());
    else
      return static_cast<const T&>(s->value());
  }
  bool valid() const noexcept { return h_.valid(); }
  void wait() const { h_.wait(); }
  template <class Rep, class Period>
  future_status wait_for(const std::chrono::duration<Rep, Period>& d) const {
    return h_.wait_for(d);
  }
  template <class Clock, class Duration>
  future_status wait_until(const std::chrono::time_point<Clock, Duration>& t) const {
    return h_.wait_until(t);
  }

 private:
  detail::FutureHandle<T> h_;
};

template <class T>
shared_future<T> future<T>::share() noexcept {
  return shared_future<T>(std::move(*this));
}

// std::promise.
template <class T>
class promise {
  struct NoArg {
    NoArg() = delete;
  };
  // Parameter types of the set_value overloads that exist for this T (NoArg for the others,
  // which are also constrained away).
  using ValueArg = std::conditional_t<std::is_void_v<T> || std::is_reference_v<T>, NoArg, T>;
  using RefArg = std::conditional_t<std::is_reference_v<T>, T, NoArg&>;

 public:
  promise() : s_(new detail::FutureState<T>()) {}
  promise(promise&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  promise& operator=(promise&& o) noexcept {
    if (this != &o) {
      drop();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  promise(const promise&) = delete;
  promise& operator=(const promise&) = delete;
  ~promise() { drop(); }
  void swap(promise& o) noexcept { std::swap(s_, o.s_); }

  future<T> get_future() {
    checked()->mark_retrieved();
    return future<T>(s_);
  }
  // std's overloads: set_value(const T&) and set_value(T&&); set_value(T&) for promise<T&>;
  // set_value() for promise<void>. Throw future_error: promise_already_satisfied, no_state.
  void set_value(const ValueArg& v)
    requires(!std::is_void_v<T> && !std::is_reference_v<T>)
  {
    checked()->set_value(v);
  }
  void set_value(ValueArg&& v)
    requires(!std::is_void_v<T> && !std::is_reference_v<T>)
  {
    checked()->set_value(std::move(v));
  }
  void set_value(RefArg v)
    requires std::is_reference_v<T>
  {
    checked()->set_value(v);
  }
  void set_value()
    requires std::is_void_v<T>
  {
    checked()->set_value();
  }
  void set_exception(std::exception_ptr e) { checked()->set_exception(std::move(e)); }

 private:
  detail::FutureState<T>* checked() const {
    if (!s_) detail::throw_future_error(future_errc::no_state);
    return s_;
  }
  void drop() noexcept {
    if (detail::FutureState<T>* s = std::exchange(s_, nullptr)) {
      s->abandon();
      s->release();
    }
  }
  detail::FutureState<T>* s_;
};

template <class T>
void swap(promise<T>& a, promise<T>& b) noexcept {
  a.swap(b);
}

// std::packaged_task.
template <class R, class... Args>
class packaged_task<R(Args...)> {
  struct TaskBase : detail::FutureState<R> {
    virtual void invoke(Args&&... args) noexcept = 0;
    virtual TaskBase* fresh() = 0;  // a new state with the same (moved) function
  };
  template <class F>
  struct Task final : TaskBase {
    template <class G>
    explicit Task(G&& g) : fn(std::forward<G>(g)) {}
    void invoke(Args&&... args) noexcept override {
      this->produce([&]() -> R { return std::invoke(fn, std::forward<Args>(args)...); });
      this->finish_satisfy();
    }
    TaskBase* fresh() override { return new Task(std::move(fn)); }
    F fn;
  };

 public:
  packaged_task() noexcept = default;
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, packaged_task>)
  explicit packaged_task(F&& f) : s_(new Task<std::decay_t<F>>(std::forward<F>(f))) {}
  packaged_task(packaged_task&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  packaged_task& operator=(packaged_task&& o) noexcept {
    if (this != &o) {
      drop();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  packaged_task(const packaged_task&) = delete;
  packaged_task& operator=(const packaged_task&) = delete;
  ~packaged_task() { drop(); }
  void swap(packaged_task& o) noexcept { std::swap(s_, o.s_); }

  bool valid() const noexcept { return s_ != nullptr; }
  future<R> get_future() {
    checked()->mark_retrieved();
    return future<R>(s_);
  }
  // Runs the function and stores its result or exception. Throws future_error:
  // no_state, or promise_already_satisfied when it already ran.
  void operator()(Args... args) {
    TaskBase* s = checked();
    s->begin_satisfy();
    s->invoke(std::forward<Args>(args)...);
  }
  // A fresh state with the same function; the old state is abandoned (broken_promise).
  void reset() {
    TaskBase* n = checked()->fresh();
    drop();
    s_ = n;
  }

 private:
  TaskBase* checked() const {
    if (!s_) detail::throw_future_error(future_errc::no_state);
    return s_;
  }
  void drop() noexcept {
    if (TaskBase* s = std::exchange(s_, nullptr)) {
      s->abandon();
      s->release();
    }
  }
  TaskBase* s_ = nullptr;
};

template <class R, class... Args>
void swap(packaged_task<R(Args...)>& a, packaged_task<R(Args...)>& b) noexcept {
  a.swap(b);
}

namespace detail {

// The state of an async() call: the decay-copied function and arguments, run on a fiber
// (launch::async; the last future joins that fiber) or by the first waiter (deferred).
template <class R, class Fn, class Tuple>
class LaunchState final : public FutureState<R> {
 public:
  LaunchState(Fn fn, Tuple args) : fn_(std::move(fn)), args_(std::move(args)) {}
  JoinHandle<void> fiber;  // set by start_async before any future exists

  // On the fiber.
  void run_async() noexcept {
    this->begin_satisfy();  // cannot fail: the state has no other satisfier
    this->produce([this]() -> R { return std::apply(std::move(fn_), std::move(args_)); });
    release_fiber_locals();  // this "thread"'s locals go before the result is ready
    this->finish_satisfy();
    this->release();  // the fiber's reference
  }
  using FutureStateBase::make_deferred;

 private:
  void run_deferred() noexcept override {
    this->begin_satisfy();
    this->produce([this]() -> R { return std::apply(std::move(fn_), std::move(args_)); });
    this->finish_satisfy();
  }
  void on_last_future() noexcept override {
    detail::NoCancelScope no_cancel;  // from a future's destructor: not a cancellation point
    if (fiber.joinable()) fiber.join();
  }
  Fn fn_;
  Tuple args_;
};

template <class R, class F, class... A>
future<R> start_async(launch policy, F&& f, A&&... a) {
  using State = LaunchState<R, std::decay_t<F>, std::tuple<std::decay_t<A>...>>;
  auto* s = new State(std::decay_t<F>(std::forward<F>(f)),
                      std::tuple<std::decay_t<A>...>(std::forward<A>(a)...));
  bool deferred = (policy & launch::async) != launch::async;
  if (!deferred) {
    s->add_ref();  // the fiber's
    try {
      s->fiber = spawn_std([s]() noexcept { s->run_async(); });
    } catch (...) {
      s->release();  // the fiber's: it never started
      if ((policy & launch::deferred) != launch::deferred) {
        s->release();
        throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                                "upcall::async: cannot start a fiber");
      }
      deferred = true;  // the default policy falls back to deferred, as libstdc++ does
    }
  }
  if (deferred) s->make_deferred();
  future<R> fut = FutureAccess::make<R>(s);
  s->release();  // the future holds its own reference now
  return fut;
}

}  // namespace detail

// std::async.
template <class F, class... Args>
[[nodiscard]] future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>> async(
    launch policy, F&& f, Args&&... args) {
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
  return detail::start_async<R>(policy, std::forward<F>(f), std::forward<Args>(args)...);
}

template <class F, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, launch>)
[[nodiscard]] future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>> async(
    F&& f, Args&&... args) {
  return upcall::async(launch::async | launch::deferred, std::forward<F>(f),
                       std::forward<Args>(args)...);
}

}  // namespace upcall
