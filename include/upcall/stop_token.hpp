// upcall/stop_token.hpp: drop-ins for std::stop_token, std::stop_source and
// std::stop_callback (cooperative cancellation, as used by upcall::jthread and
// upcall::condition_variable_any). Same API and semantics as <stop_token>; the stop state and
// the callback protocol live in runtime/sync/stop_token.cpp.
//
// Why not alias the std types: libstdc++ 12's ~stop_callback, when the callback is running in
// another thread, blocks the OS thread on a semaphore until it returns, and tells "the
// requester is me" apart by std::this_thread::get_id(). With fibers both go wrong: (1) a fiber
// destroying its stop_callback while the callback runs elsewhere stalls its whole core, and on
// a one-core runtime deadlocks if the callback waits for anything that core must run; (2) two
// fibers share one OS thread id, so a fiber on the requester's thread destroying a callback
// that the (suspended) requester fiber is still running would not wait, and free it under the
// running callback; and a requester fiber that migrated and then destroys its own callback
// from inside it would wait for itself forever. upcall's versions wait the fiber way (the
// fiber suspends, the core runs on) and compare fiber ids. std::nostopstate is reused as is.
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <stop_token>  // std::nostopstate_t
#include <type_traits>
#include <utility>

#include "upcall/detail/config.hpp"
#include "upcall/detail/wait.hpp"

namespace upcall {

using std::nostopstate;
using std::nostopstate_t;

namespace detail {

// A registered callback. Its fields are guarded by the owning StopState's spin lock.
struct StopCallbackNode {
  StopCallbackNode(void (*fn)(void*) noexcept, void* c) : invoke(fn), ctx(c) {}
  void (*invoke)(void* ctx) noexcept;  // fixed at construction
  void* ctx;                           // fixed at construction: the owning stop_callback
  StopCallbackNode* next = nullptr;
  StopCallbackNode* prev = nullptr;
  bool linked = false;
  bool* destroyed = nullptr;  // set while request_stop runs it: the callback destroyed itself
};

// The shared stop state: reference counted by tokens, sources and registered callbacks.
class UPCALL_API StopState {
 public:
  enum class AddResult { added, already_stopped, impossible };
  static StopState* create();  // one reference and one source, for the creating stop_source
  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept;
  void add_source() noexcept { sources_.fetch_add(1, std::memory_order_relaxed); }
  void remove_source() noexcept { sources_.fetch_sub(1, std::memory_order_acq_rel); }
  // acquire: pairs with request_stop's release store; what the requester wrote before asking
  // to stop is visible to whoever sees the request.
  bool stop_requested() const noexcept { return requested_.load(std::memory_order_acquire); }
  bool stop_possible() const noexcept {
    return stop_requested() || sources_.load(std::memory_order_acquire) > 0;
  }
  bool request_stop() noexcept;
  AddResult add_callback(StopCallbackNode* n) noexcept;
  // Unregisters n; if request_stop is running it in another context, waits until it returned.
  void remove_callback(StopCallbackNode* n) noexcept;

 private:
  StopState() = default;
  // refs_: acq_rel on the way down (the last releaser deletes); sources_: counts live
  // stop_sources (relaxed up, acq_rel down; stop_possible's acquire pairs with the decrement).
  std::atomic<std::uint32_t> refs_{1};
  std::atomic<std::uint32_t> sources_{1};
  // Set once, under spin_, with release.
  std::atomic<bool> requested_{false};
  SpinLock spin_;  // guards everything below
  StopCallbackNode* head_ = nullptr;     // registered, not yet run
  StopCallbackNode* running_ = nullptr;  // the callback request_stop is running now
  std::uint64_t requester_ = 0;          // context id of the request_stop caller
  WaitList done_waiters_;                // removers waiting for running_ to return
};

}  // namespace detail

class stop_source;
template <class Callback>
class stop_callback;

// std::stop_token.
class stop_token {
 public:
  stop_token() noexcept = default;
  stop_token(const stop_token& o) noexcept : state_(o.state_) {
    if (state_) state_->add_ref();
  }
  stop_token(stop_token&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
  stop_token& operator=(const stop_token& o) noexcept {
    stop_token(o).swap(*this);
    return *this;
  }
  stop_token& operator=(stop_token&& o) noexcept {
    stop_token(std::move(o)).swap(*this);
    return *this;
  }
  ~stop_token() {
    if (state_) state_->release();
  }
  void swap(stop_token& o) noexcept { std::swap(state_, o.state_); }

  [[nodiscard]] bool stop_requested() const noexcept { return state_ && state_->stop_requested(); }
  [[nodiscard]] bool stop_possible() const noexcept { return state_ && state_->stop_possible(); }

  [[nodiscard]] friend bool operator==(const stop_token& a, const stop_token& b) noexcept {
    return a.state_ == b.state_;
  }
  friend void swap(stop_token& a, stop_token& b) noexcept { a.swap(b); }

 private:
  friend class stop_source;
  template <class Callback>
  friend class stop_callback;
  explicit stop_token(detail::StopState* s) noexcept : state_(s) {
    if (state_) state_->add_ref();
  }
  detail::StopState* state_ = nullptr;
};

// std::stop_source.
class stop_source {
 public:
  stop_source() : state_(detail::StopState::create()) {}
  explicit stop_source(nostopstate_t) noexcept {}
  stop_source(const stop_source& o) noexcept : state_(o.state_) {
    if (state_) {
      state_->add_ref();
      state_->add_source();
    }
  }
  stop_source(stop_source&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
  stop_source& operator=(const stop_source& o) noexcept {
    stop_source(o).swap(*this);
    return *this;
  }
  stop_source& operator=(stop_source&& o) noexcept {
    stop_source(std::move(o)).swap(*this);
    return *this;
  }
  ~stop_source() {
    if (state_) {
      state_->remove_source();
      state_->release();
    }
  }
  void swap(stop_source& o) noexcept { std::swap(state_, o.state_); }

  [[nodiscard]] stop_token get_token() const noexcept { return stop_token(state_); }
  [[nodiscard]] bool stop_possible() const noexcept { return state_ != nullptr; }
  [[nodiscard]] bool stop_requested() const noexcept { return state_ && state_->stop_requested(); }
  // Runs the registered callbacks on the caller (which may suspend if they do) before
  // returning. True if this call made the request.
  bool request_stop() noexcept { return state_ && state_->request_stop(); }

  [[nodiscard]] friend bool operator==(const stop_source& a, const stop_source& b) noexcept {
    return a.state_ == b.state_;
  }
  friend void swap(stop_source& a, stop_source& b) noexcept { a.swap(b); }

 private:
  detail::StopState* state_ = nullptr;
};

// std::stop_callback. The destructor may suspend the calling fiber (never block its core)
// while the callback is running in another context.
template <class Callback>
class [[nodiscard]] stop_callback {
  static_assert(std::is_nothrow_destructible_v<Callback>);
  static_assert(std::is_invocable_v<Callback>);

 public:
  using callback_type = Callback;

  template <class C>
    requires std::constructible_from<Callback, C>
  explicit stop_callback(const stop_token& st, C&& cb) noexcept(
      std::is_nothrow_constructible_v<Callback, C>)
      : cb_(std::forward<C>(cb)) {
    attach(st.state_);
  }
  template <class C>
    requires std::constructible_from<Callback, C>
  explicit stop_callback(stop_token&& st, C&& cb) noexcept(
      std::is_nothrow_constructible_v<Callback, C>)
      : cb_(std::forward<C>(cb)) {
    attach(st.state_);
  }
  ~stop_callback() {
    if (state_) {
      state_->remove_callback(&node_);
      state_->release();
    }
  }
  stop_callback(const stop_callback&) = delete;
  stop_callback& operator=(const stop_callback&) = delete;
  stop_callback(stop_callback&&) = delete;
  stop_callback& operator=(stop_callback&&) = delete;

 private:
  static void run(void* self) noexcept {
    std::forward<Callback>(static_cast<stop_callback*>(self)->cb_)();
  }
  void attach(detail::StopState* s) {
    if (!s) return;
    switch (s->add_callback(&node_)) {
      case detail::StopState::AddResult::added:
        s->add_ref();
        state_ = s;
        break;
      case detail::StopState::AddResult::already_stopped:
        std::forward<Callback>(cb_)();  // std: invoked at once, on the constructing context
        break;
      case detail::StopState::AddResult::impossible:
        break;
    }
  }

  detail::StopCallbackNode node_{&run, this};
  Callback cb_;
  detail::StopState* state_ = nullptr;  // set when registered; owns one reference
};

template <class Callback>
stop_callback(stop_token, Callback) -> stop_callback<Callback>;

}  // namespace upcall
