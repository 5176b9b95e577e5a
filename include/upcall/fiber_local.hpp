// upcall/fiber_local.hpp: upcall::fiber_local<T>, the fiber-aware replacement for
// `thread_local T`: each fiber (and each plain thread) that touches it gets its own T, built
// lazily on first access and destroyed when that fiber ends. A plain `thread_local` belongs to
// the kernel thread, and fibers migrate between kernel threads at every suspension, so it is
// the wrong tool inside fibers.
//
// Where the values live: the runtime's Fiber control block has no slot for them, so they live
// in a side table keyed by the fiber's id (runtime/sync/fiber_local.cpp): 64 shards, each a
// std::mutex and a hash map. Cost: every access locks one shard and looks the fiber up, about a
// few tens of ns uncontended (two fibers only contend when their ids share a shard); cache the
// reference in a local variable in hot loops (it stays valid until the fiber ends).
//
// When values are destroyed (there is no fiber-exit hook in the runtime, so):
//  - fibers started by upcall::thread, jthread and async: when the thread function returns,
//    on the fiber, in reverse order of construction (as thread_local destructors run);
//  - plain threads: at thread exit;
//  - fibers started directly with upcall::spawn / Runtime::spawn: when the fiber calls
//    upcall::release_fiber_locals() (do it at the end of the fiber function), else when the
//    default runtime shuts down at process exit (for its fibers); values of fibers of other
//    runtimes that never call it are leaked;
//  - destroying the fiber_local object itself destroys its values in every fiber (on the
//    destroying context).
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "upcall/detail/config.hpp"

namespace upcall {

// Destroys the calling fiber's (or plain thread's) fiber_local values now. Later accesses
// build fresh values. Safe to call more than once.
UPCALL_API void release_fiber_locals() noexcept;

namespace detail {
UPCALL_API std::uint64_t fiber_local_new_key() noexcept;
// The caller's value for `key`, or nullptr.
UPCALL_API void* fiber_local_find(std::uint64_t key) noexcept;
// Records the caller's value for `key`. Throws std::bad_alloc (then nothing was recorded).
UPCALL_API void fiber_local_insert(std::uint64_t key, void* value, void (*destroy)(void*) noexcept);
// Destroys every context's value for `key`.
UPCALL_API void fiber_local_erase_key(std::uint64_t key) noexcept;
}  // namespace detail

template <class T>
class fiber_local {
 public:
  // Each context's value starts as T().
  fiber_local() : key_(detail::fiber_local_new_key()) {}
  // Each context's value starts as a copy of `initial` (T must be copy constructible).
  explicit fiber_local(T initial)
      : key_(detail::fiber_local_new_key()), initial_(std::move(initial)) {}
  ~fiber_local() { detail::fiber_local_erase_key(key_); }
  fiber_local(const fiber_local&) = delete;
  fiber_local& operator=(const fiber_local&) = delete;

  // The calling context's value (built now on first access). Valid until the context ends or
  // release_fiber_locals() is called.
  T& get() {
    if (void* p = detail::fiber_local_find(key_)) return *static_cast<T*>(p);
    T* v;
    if constexpr (std::is_copy_constructible_v<T>)
      v = initial_ ? new T(*initial_) : new T();
    else
      v = new T();
    try {
      detail::fiber_local_insert(key_, v, &destroy);
    } catch (...) {
      delete v;
      throw;
    }
    return *v;
  }
  T& operator*() { return get(); }
  T* operator->() { return &get(); }

 private:
  static void destroy(void* p) noexcept { delete static_cast<T*>(p); }
  const std::uint64_t key_;
  const std::optional<T> initial_;  // fixed at construction
};

}  // namespace upcall
