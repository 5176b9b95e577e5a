// runtime/sync/parker.cpp: the thread side of park/unpark (a futex per thread, pooled and
// never freed) and the dispatch between fiber and thread wakers. The fiber side is a context
// switch and lives in runtime/core/switch.cpp.
#include "runtime/sync/parker.hpp"

#include <mutex>

#include "runtime/activations/region.hpp"
#include "runtime/core/core.hpp"
#include "runtime/core/runtime_impl.hpp"

namespace upcall::rt {

namespace {
constexpr std::uint32_t kEmpty = 0, kNotified = 1, kParked = 2;

std::mutex g_pool_mu;
ThreadParker* g_pool = nullptr;  // guarded by g_pool_mu; parkers are never deleted

ThreadParker* acquire_parker() {
  std::lock_guard<std::mutex> lock(g_pool_mu);
  if (ThreadParker* p = g_pool) {
    g_pool = p->next_free;
    return p;
  }
  return new ThreadParker();  // intentionally never freed: see parker.hpp
}

struct ThreadParkerSlot {
  ThreadParker* p = acquire_parker();
  ~ThreadParkerSlot() {
    std::lock_guard<std::mutex> lock(g_pool_mu);
    p->next_free = g_pool;
    g_pool = p;
  }
};

ThreadParker* this_thread_parker() {
  thread_local ThreadParkerSlot slot;
  return slot.p;
}
}  // namespace

void ThreadParker::park() {
  // acquire: pairs with unpark's release exchange, so the waker's writes are visible.
  if (state.exchange(kEmpty, std::memory_order_acquire) == kNotified) return;
  std::uint32_t e = kEmpty;
  if (!state.compare_exchange_strong(e, kParked, std::memory_order_acquire)) {
    state.exchange(kEmpty, std::memory_order_acquire);  // e == kNotified: consume it
    return;
  }
  for (;;) {
    futex_wait(&state, kParked, -1);
    std::uint32_t n = kNotified;
    if (state.compare_exchange_strong(n, kEmpty, std::memory_order_acquire)) return;
  }
}

void ThreadParker::park_until(std::int64_t deadline_ns) {
  if (state.exchange(kEmpty, std::memory_order_acquire) == kNotified) return;
  std::uint32_t e = kEmpty;
  if (!state.compare_exchange_strong(e, kParked, std::memory_order_acquire)) {
    state.exchange(kEmpty, std::memory_order_acquire);
    return;
  }
  for (;;) {
    const std::int64_t left = deadline_ns - now_ns();
    if (left > 0) futex_wait(&state, kParked, left);
    std::uint32_t n = kNotified;
    if (state.compare_exchange_strong(n, kEmpty, std::memory_order_acquire)) return;
    if (left <= 0 || now_ns() >= deadline_ns) {
      // Time is up: leave Parked for Empty, unless a notification races in (then consume it).
      std::uint32_t p = kParked;
      if (!state.compare_exchange_strong(p, kEmpty, std::memory_order_acquire))
        state.store(kEmpty, std::memory_order_relaxed);
      return;
    }
  }
}

void ThreadParker::unpark() {
  if (state.exchange(kNotified, std::memory_order_release) == kParked) futex_wake(&state, 1);
}

// Each entry point below but current_waker is a runtime region (runtime/activations/region.hpp):
// it may touch the core's timers and queues, and a returning thread hands its fiber back there.

// Not a region: it reads only the calling context's own identity. It runs under sync objects'
// SpinLocks (W1 builds a Waiter there), and a region entry there would let a returning thread
// hand its fiber back while that fiber holds the lock: on a 1-core runtime the next fiber then
// spins on the lock forever (the ChannelStress hang, found in CI).
// A fiber's waker is the fiber even while its thread has lost the core to a takeover and not
// yet handed it back (current_fiber() reads nullptr then): its next park_current() hands it back
// first and parks it as a fiber. Inside upcall::blocking the thread parks on its own parker.
// a->current and a->role are written by this thread itself while it runs the fiber.
Waker current_waker() noexcept {
  Activation* a = current_activation();
  if (a && a->current && a->role != Role::blocking) return waker_of(a->current);
  return waker_of(this_thread_parker());
}

void park_current() noexcept {
  Region region;
  Activation* a = current_activation();
  if (Fiber* f = current_fiber()) {
    if (__builtin_expect(f->los_lock != 0, 0)) {
      park_locked(f, INT64_MAX);  // no switch inside the task scheduler lock (as the timed wait)
      return;
    }
    park_current_fiber(a, f);
    return;
  }
  this_thread_parker()->park();
}

void park_current_until(std::int64_t deadline_ns) noexcept {
  Region region;
  Activation* a = current_activation();
  Fiber* f = current_fiber();
  if (!f) {
    this_thread_parker()->park_until(deadline_ns);
    return;
  }
  const std::int64_t now = now_ns();
  if (deadline_ns <= now) return;
  if (__builtin_expect(f->los_lock != 0, 0)) {
    park_locked(f, deadline_ns);  // no switch inside the task scheduler lock: no timer either
    return;
  }
  if (f->armed_deadline != deadline_ns) {
    // Arm a timer on the core we are on; it unparks us wherever we are by then.
    Core* c = a->core;
    const std::uint64_t gen = f->timer_gen.fetch_add(1, std::memory_order_relaxed) + 1;
    const std::size_t dropped = c->timers.add(deadline_ns, f, gen);
    f->rt->timers_armed.fetch_add(1 - static_cast<std::int64_t>(dropped), std::memory_order_relaxed);
    f->armed_deadline = deadline_ns;
  }
  park_current_fiber(a, f);
}

void unpark_waker(Waker w) noexcept {
  Region region;
  if (w & 1u)
    reinterpret_cast<ThreadParker*>(w & ~std::uintptr_t{1})->unpark();
  else
    unpark_fiber(reinterpret_cast<Fiber*>(w));
}

}  // namespace upcall::rt
