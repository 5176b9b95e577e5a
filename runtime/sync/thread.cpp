// runtime/sync/thread.cpp: the out-of-line parts of upcall::thread / this_thread
// (upcall/thread.hpp): the identity of the calling context, shared by thread ids, recursive
// mutexes, stop tokens and fiber_local; and hardware_concurrency.
#include "upcall/thread.hpp"

#include <atomic>

#include "runtime/core/default_runtime.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "runtime/sync/sync_util.hpp"

namespace upcall {

namespace detail {

namespace {
std::atomic<std::uint64_t> g_next_thread_id{1};  // relaxed: only uniqueness matters
}

std::uint64_t current_context_id() noexcept {
  // The fiber the calling kernel thread runs, also inside upcall::blocking (the fiber is still
  // the one running there).
  if (rt::Activation* a = rt::current_activation())
    if (a->current) return a->current->id;
  // Only reached outside fibers: this thread_local belongs to the plain thread itself.
  thread_local std::uint64_t id = 0;
  if (id == 0) id = g_next_thread_id.fetch_add(1, std::memory_order_relaxed) | kThreadIdBit;
  return id;
}

std::uint64_t this_thread_id_value() noexcept { return current_context_id(); }

}  // namespace detail

unsigned int thread::hardware_concurrency() noexcept {
  if (rt::Fiber* f = rt::current_fiber()) return static_cast<unsigned>(f->rt->cfg.cores);
  if (rt::RuntimeImpl* r = rt::default_runtime_impl_if_running())
    return static_cast<unsigned>(r->cfg.cores);
  try {
    return static_cast<unsigned>(resolve_config(Options{}).cores);
  } catch (...) {
    return 0;
  }
}

}  // namespace upcall
