// runtime/sync/parker.hpp: park/unpark with a permit, for fibers and for plain threads alike
// (the base every wait in the runtime is built on: join, sleep, and the sync objects).
//
// Contract (as java.util.concurrent.locks.LockSupport): park() returns after an unpark() that
// happened after the previous park returned, or spuriously; every caller re-checks its
// condition in a loop. unpark() before park() leaves a permit, so no wake-up is lost.
//
// A Waker names who to wake, as one word: a Fiber* (low bit 0) or a ThreadParker* (low bit 1).
// ThreadParkers are never freed (a thread's parker returns to a pool when the thread exits), and
// fibers are never freed while their runtime lives, so a late unpark through a stale Waker only
// causes a spurious wake-up, never a write to freed memory.
#pragma once

#include <atomic>
#include <cstdint>

#include "runtime/core/fiber.hpp"

namespace upcall::rt {

struct Activation;

struct ThreadParker {
  // 0 empty, 1 notified, 2 parked. Futex word. Written by the owner thread and by wakers.
  std::atomic<std::uint32_t> state{0};
  ThreadParker* next_free = nullptr;  // guarded by the pool's mutex
  void park();
  // As park(), but returns by `deadline_ns` (CLOCK_MONOTONIC) at the latest.
  void park_until(std::int64_t deadline_ns);
  void unpark();
};

using Waker = std::uintptr_t;

inline Waker waker_of(Fiber* f) { return reinterpret_cast<Waker>(f); }
inline Waker waker_of(ThreadParker* p) { return reinterpret_cast<Waker>(p) | 1u; }

// The calling context's waker: its fiber when it runs on a held core, else its thread's parker.
Waker current_waker() noexcept;
// Parks the calling context (fiber or thread) as above.
void park_current() noexcept;
// Parks as above, returning by `deadline_ns` (CLOCK_MONOTONIC, rt::now_ns()) at the latest.
// Callers loop and compare now_ns() with the deadline themselves. A fiber re-parking with the
// same deadline reuses its pending timer instead of arming another one.
void park_current_until(std::int64_t deadline_ns) noexcept;
void unpark_waker(Waker w) noexcept;

// switch.cpp
void park_current_fiber(Activation* a, Fiber* self);
// A park of a fiber that holds the task scheduler lock: waits for the permit (or the
// deadline, CLOCK_MONOTONIC ns; INT64_MAX for none) without switching. Announced once.
void park_locked(Fiber* self, std::int64_t deadline_ns);
// lifo: a woken fiber normally takes its core's LIFO slot (message-passing locality); timers
// pass false so fibers due together run in deadline order.
void unpark_fiber(Fiber* f, bool lifo = true);

}  // namespace upcall::rt
