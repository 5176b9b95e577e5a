// upcall/blocking.hpp: upcall::blocking(f) runs f, a call known to block its kernel thread
// (a library call, a syscall nobody wrapped), without stalling the other fibers of the core:
// the core is first handed to a spare kernel thread, f runs on the calling fiber's own thread,
// and afterwards the fiber goes back to a run queue and continues on whichever core picks it up.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "upcall/detail/config.hpp"

namespace upcall {

namespace detail {
// Hands the calling fiber's core to a spare thread. Returns false when called outside a fiber
// (nothing to hand over) or when the runtime's thread cap was reached (then f runs in place,
// counted in RuntimeStats::blocking_inline and announced once on stderr).
UPCALL_API bool blocking_enter();
// Suspends the fiber on this thread and puts it back on a run queue; the thread becomes a spare.
UPCALL_API void blocking_exit();
}  // namespace detail

// Runs f() as described above and returns its value (or rethrows). Cost when the core has a
// spare: about two futex wake-ups plus two context switches (bench BM_Blocking_Handoff).
// Inside f the caller is no fiber: this_task::core() is -1 and upcall calls act on the thread.
template <class F>
auto blocking(F&& f) -> std::invoke_result_t<F&&> {
  using R = std::invoke_result_t<F&&>;
  if (!detail::blocking_enter()) return std::forward<F>(f)();
  // The exception (if any) is caught on this thread and rethrown after the fiber moved back to
  // a core: unwinding must not span the thread switch (the C++ runtime keeps per-thread
  // exception bookkeeping).
  std::exception_ptr error;
  if constexpr (std::is_void_v<R>) {
    try {
      std::forward<F>(f)();
    } catch (...) {
      error = std::current_exception();
    }
    detail::blocking_exit();
    if (error) std::rethrow_exception(error);
  } else if constexpr (std::is_reference_v<R>) {
    // A reference result is carried as a pointer (std::optional cannot hold a reference).
    std::remove_reference_t<R>* result = nullptr;
    try {
      auto&& r = std::forward<F>(f)();  // a named reference: an lvalue even for R = T&&
      result = std::addressof(r);
    } catch (...) {
      error = std::current_exception();
    }
    detail::blocking_exit();
    if (error) std::rethrow_exception(error);
    return static_cast<R>(*result);
  } else {
    std::optional<R> result;
    try {
      result.emplace(std::forward<F>(f)());
    } catch (...) {
      error = std::current_exception();
    }
    detail::blocking_exit();
    if (error) std::rethrow_exception(error);
    return std::move(*result);
  }
}

}  // namespace upcall
