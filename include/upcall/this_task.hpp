// upcall/this_task.hpp: operations on the calling task. Inside a fiber they act on the fiber
// (suspending it, never its kernel thread); called from a plain thread they act on that thread
// (std::this_thread semantics), so the same code runs in both places.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "upcall/detail/config.hpp"

namespace upcall::this_task {

// Moves the calling fiber behind the ready fibers of its core. Plain thread: sched_yield().
UPCALL_API void yield();

// Suspends the calling fiber until `deadline` (std::chrono::steady_clock) has passed. A
// cancellation point of a deleted task (throws los::TaskDeleted, upcall/task_api.hpp).
UPCALL_API void sleep_until(std::chrono::steady_clock::time_point deadline);

template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  sleep_until(std::chrono::steady_clock::now() +
              std::chrono::ceil<std::chrono::steady_clock::duration>(d));
}

// The fiber's id (unique within the process, never 0); 0 when called outside a fiber.
UPCALL_API std::uint64_t id();
// The fiber's name, "" when unnamed or outside a fiber. Valid until the fiber renames itself or
// finishes.
UPCALL_API std::string_view name();
// Renames the calling fiber (truncated to 31 bytes). No effect outside a fiber.
UPCALL_API void set_name(std::string_view name);
// True when the caller runs on a fiber of some upcall runtime.
UPCALL_API bool in_fiber();
// Index of the core running the caller, -1 outside a fiber (or inside upcall::blocking).
UPCALL_API int core();

}  // namespace upcall::this_task
