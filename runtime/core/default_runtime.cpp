// runtime/core/default_runtime.cpp: the process-wide default Runtime
// (upcall/default_runtime.hpp): lazy, thread-safe creation, and its shutdown at process exit.
//
// Life cycle:
//  1. First default_runtime() call: under g_mu, construct a Runtime from upcall::Options{}
//     (so the configuration table applies: environment, then defaults), register
//     shutdown_at_exit with std::atexit, publish the pointer in g_fast (release).
//  2. Later calls: g_fast (acquire) -> the runtime, no lock.
//  3. Process exit (the atexit handler): under g_mu mark it shut down and unpublish it, so
//     later default_runtime() calls throw. If fibers are still alive (detached ones: a joinable
//     upcall::thread already terminated the process when it was destroyed), they are not
//     awaited, as std does not await detached threads: the runtime is left running to the
//     end of the process and those fibers' destructors do not run. Otherwise destroy it
//     outside the lock, then destroy the fiber_local values its fibers left.
//     If exit() was called from one of its own threads (a fiber, or a fiber inside
//     upcall::blocking), destroying it there would deadlock: it is left to the OS, announced.
// Static destructors that run after step 3 and use the std layer from a plain thread get the
// std::system_error of default_runtime().
#include "runtime/core/default_runtime.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "runtime/core/runtime_impl.hpp"
#include "runtime/sync/fiber_local_table.hpp"
#include "upcall/default_runtime.hpp"

namespace upcall {

namespace {
std::mutex g_mu;
Runtime* g_runtime = nullptr;  // guarded by g_mu (owning; deleted at exit)
bool g_shut_down = false;      // guarded by g_mu
// The published runtime. Stored (release) after construction, read (acquire) by the fast
// path, so the Runtime's construction is visible to whoever gets the pointer.
std::atomic<Runtime*> g_fast{nullptr};
std::atomic<rt::RuntimeImpl*> g_impl{nullptr};  // same protocol as g_fast
// Left running at exit with live detached fibers (step 3); volatile so that the store stays and
// the runtime remains reachable (no leak report).
Runtime* volatile g_abandoned = nullptr;

void shutdown_at_exit() {
  Runtime* r;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_shut_down = true;
    r = std::exchange(g_runtime, nullptr);
    g_fast.store(nullptr, std::memory_order_release);
    g_impl.store(nullptr, std::memory_order_release);
  }
  if (!r) return;
  rt::RuntimeImpl* impl = r->impl();
  rt::Activation* a = rt::current_activation();
  if (a && a->rt == impl) {
    std::fprintf(stderr,
                 "upcall: exit() was called from a thread of the default runtime; the runtime "
                 "is not shut down (its fibers are abandoned to the OS)\n");
    return;
  }
  // A fiber that was just joined may still be in its last switch (its final reference is
  // dropped there): give such fibers up to 20 ms to be freed.
  for (int i = 0; i < 200 && impl->live_fibers() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  if (impl->live_fibers() != 0) {
    // Detached fibers are not awaited at exit, as std does not await detached threads: the
    // runtime is left running (its memory and threads stay until the process ends), and
    // those fibers' destructors do not run. Waiting would hang exit() on any background loop.
    g_abandoned = r;  // still reachable: not a leak report
    return;
  }
  delete r;
  detail::fiber_locals_release_runtime(impl);
}
}  // namespace

Runtime& default_runtime() {
  if (Runtime* r = g_fast.load(std::memory_order_acquire)) return *r;
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_shut_down)
    throw std::system_error(
        std::make_error_code(std::errc::resource_unavailable_try_again),
        "upcall::default_runtime: the default runtime was already shut down at process exit "
        "(an atexit handler or static destructor ran after it); start no upcall::thread, "
        "jthread or async from there, or create an upcall::Runtime of your own");
  if (!g_runtime) {
    auto* r = new Runtime(Options{});
    if (std::atexit(&shutdown_at_exit) != 0) {
      delete r;
      throw std::system_error(std::make_error_code(std::errc::not_enough_memory),
                              "upcall::default_runtime: cannot register the atexit handler");
    }
    g_runtime = r;
    g_impl.store(r->impl(), std::memory_order_release);
    g_fast.store(r, std::memory_order_release);
  }
  return *g_runtime;
}

namespace rt {
RuntimeImpl* default_runtime_impl_if_running() noexcept {
  return g_impl.load(std::memory_order_acquire);
}
}  // namespace rt

}  // namespace upcall
