// upcall/detail/spawn_raw.hpp: the type-erased boundary between the public templates (spawn,
// JoinHandle) and the runtime. Users never call these. A spawned callable and its result live in
// storage carved from the top of the fiber's own stack, so spawn allocates nothing beyond the
// pooled stack. Nothing here exposes runtime types.
#pragma once

#include <cstddef>
#include <cstdint>

#include "upcall/detail/config.hpp"

namespace upcall {
class Runtime;
namespace detail {

struct FiberHandle;  // opaque: a runtime fiber

// How the runtime runs and disposes of the storage. run() executes on the fiber; dispose() runs
// once, when the last reference (the fiber's own and the JoinHandle's) is dropped, and must
// destroy whatever run() left in the storage (the result or exception).
struct TaskVTable {
  void (*run)(void* storage);
  void (*dispose)(void* storage, bool joined);
};

struct SpawnSpec {
  std::size_t size = 0;   // bytes of storage
  std::size_t align = 0;  // alignment of storage
  const TaskVTable* vtable = nullptr;
  const char* name = nullptr;  // copied (truncated to 31 bytes)
  int priority = 0;
};

struct RawTask {
  FiberHandle* fiber;
  void* storage;
};

// Reserves a fiber and its storage on `rt` (nullptr: the runtime of the calling fiber).
// Throws std::system_error on exhaustion (stacks, memory) and std::logic_error when there is no
// runtime to spawn on. The fiber does not run until fiber_start.
UPCALL_API RawTask fiber_create(Runtime* rt, const SpawnSpec& spec);
// Makes the fiber ready (TASK_NEW). Consumes nothing: the handle reference stays with the caller.
UPCALL_API void fiber_start(FiberHandle* f);
// Suspends the caller (a fiber, or a plain thread) until the fiber has finished.
UPCALL_API void fiber_join(FiberHandle* f);
UPCALL_API bool fiber_done(FiberHandle* f);
// Drops the caller's reference; `joined` says whether the result was consumed.
UPCALL_API void fiber_release(FiberHandle* f, bool joined);
// Returns a fiber that was created but never started, without calling dispose.
UPCALL_API void fiber_abandon(FiberHandle* f) noexcept;
UPCALL_API std::uint64_t fiber_id(FiberHandle* f);

}  // namespace detail
}  // namespace upcall
