// upcall/default_runtime.hpp: the process-wide default Runtime, on which the std-compatible
// layer (upcall::thread, jthread, async) starts fibers when it is called from a plain thread
// (called from a fiber, they start fibers on that fiber's own runtime). It is created on first
// use, sized by the configuration table (UPCALL_CORES, UPCALL_STACK_SIZE, ...: the defaults of
// upcall::Options{}), and destroyed at process exit by a std::atexit handler, which waits as
// Runtime::~Runtime does: fibers still running keep exit waiting; fibers waiting for something
// that can never happen are reported as leaked after 100 ms of quiescence.
// upcall::spawn keeps its own contract (task.hpp: from a fiber only); from a plain thread use
// upcall::thread, or default_runtime().spawn(f). Owned in runtime/core/default_runtime.cpp.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

#include "upcall/detail/config.hpp"
#include "upcall/runtime.hpp"
#include "upcall/this_task.hpp"

namespace upcall {

// The default runtime, started on the first call (thread-safe). Throws std::system_error
// (resource_unavailable_try_again) once it was shut down at process exit, e.g. when called from
// a static destructor or an atexit handler that runs after it, and std::invalid_argument for a
// bad UPCALL_* environment variable (the message names it).
UPCALL_API Runtime& default_runtime();

namespace detail {

// Callables larger than this go to the heap instead of the fiber's stack (a spawn keeps its
// callable on the fiber's stack, limited to half of it).
inline constexpr std::size_t kInlineCallableMax = 1024;

// Starts f on a new fiber of the calling fiber's runtime, or of the default runtime when the
// caller is not a fiber (a plain thread, or a fiber inside upcall::blocking). As std::thread,
// throws std::system_error when no fiber can be started: the runtime's own errors (a runtime
// shutting down, no stack left) are rethrown as resource_unavailable_try_again with their
// message; std::bad_alloc passes through.
template <class F>
JoinHandle<void> spawn_std(F&& f) {
  using Fn = std::decay_t<F>;
  try {
    Runtime* rt = this_task::in_fiber() ? nullptr : &default_runtime();
    if constexpr (sizeof(Fn) <= kInlineCallableMax) {
      return spawn_on(rt, std::forward<F>(f), SpawnOptions{});
    } else {
      return spawn_on(
          rt, [p = std::make_unique<Fn>(std::forward<F>(f))]() mutable { (*p)(); },
          SpawnOptions{});
    }
  } catch (const std::system_error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                            e.what());
  }
}

}  // namespace detail
}  // namespace upcall
