// upcall/call_once.hpp: drop-ins for std::once_flag and std::call_once. The first caller runs
// the callable; concurrent callers wait for it (a waiting fiber suspends, a plain thread
// blocks). If the callable throws, the exception reaches its caller and the flag stays unset:
// one of the waiters (or a later caller) runs its own callable instead, as std specifies.
// Waiting lives in runtime/sync/call_once.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <utility>

#include "upcall/detail/config.hpp"
#include "upcall/detail/wait.hpp"

namespace upcall {

class once_flag;

namespace detail {
// True: the caller must run the callable, then call once_finish or once_abort. False: another
// caller's callable completed (its effects are visible).
UPCALL_API bool once_begin(once_flag& flag) noexcept;
UPCALL_API void once_finish(once_flag& flag) noexcept;
UPCALL_API void once_abort(once_flag& flag) noexcept;
}  // namespace detail

class once_flag {
 public:
  constexpr once_flag() noexcept = default;
  once_flag(const once_flag&) = delete;
  once_flag& operator=(const once_flag&) = delete;

 private:
  friend bool detail::once_begin(once_flag&) noexcept;
  friend void detail::once_finish(once_flag&) noexcept;
  friend void detail::once_abort(once_flag&) noexcept;
  template <class F, class... Args>
  friend void call_once(once_flag& flag, F&& f, Args&&... args);

  static constexpr std::uint32_t kIdle = 0, kRunning = 1, kDone = 2, kQueued = 4;
  // kIdle / kRunning / kDone, plus kQueued while waiters are linked (set only under spin_).
  // Written by CAS/exchange; the kDone store is release and pairs with the acquire load of
  // call_once's fast path and of once_begin.
  std::atomic<std::uint32_t> state_{kIdle};
  detail::SpinLock spin_;     // guards waiters_ and setting kQueued
  detail::WaitList waiters_;  // guarded by spin_
};

// std::call_once. May suspend the calling fiber while another caller runs its callable.
template <class F, class... Args>
void call_once(once_flag& flag, F&& f, Args&&... args) {
  // acquire: pairs with once_finish's release; the callable's effects are visible.
  if (flag.state_.load(std::memory_order_acquire) == once_flag::kDone) return;
  if (!detail::once_begin(flag)) return;
  try {
    std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
  } catch (...) {
    detail::once_abort(flag);
    throw;
  }
  detail::once_finish(flag);
}

}  // namespace upcall
