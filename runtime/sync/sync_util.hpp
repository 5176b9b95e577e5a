// runtime/sync/sync_util.hpp: what the std-compatible sync objects (runtime/sync/mutex.cpp,
// condition_variable.cpp, semaphore.cpp, ...) share beyond upcall/detail/wait.hpp: a linked /
// dequeued mark on Waiters, the wake-after-unlock chain, and the identity of the calling
// context. Private to the library; no public header includes it.
//
// Why the mark. Every object here notifies *after* releasing its SpinLock (N1 unlock, then N2),
// so a woken context never spins on a lock its waker still holds. Then Waiter::notified() cannot
// tell a waiter whose deadline passed whether it is still linked (W3 of wait.hpp would unlink a
// node that the notifier already popped, corrupting the list and losing the hand-off). So every
// waiter carries a mark written under the object's lock: `data` == nullptr while linked,
// &kDequeuedMark once a notifier popped it. A timed-out waiter locks and calls
// unlink_if_linked(): true -> it unlinked itself (timed out); false -> the object already
// handed it what it waited for and a notify is on the way: it must Waiter::wait() for it before
// its frame (and the Waiter) go away. wait.hpp's W3 now says the same with Waiter::linked;
// the std layer keeps its own mark because WakeChain re-links popped waiters through a second
// WaitList after the object's lock is released, which flips `linked` (harmless for `data`,
// which only the object's lock holders write).
#pragma once

#include <chrono>
#include <cstdint>

#include "upcall/detail/wait.hpp"

namespace upcall::detail {

inline char kDequeuedMark;  // its address marks a popped Waiter (`data`)

// Under the object's lock.
inline void link_waiter(WaitList& list, Waiter* w) noexcept {
  w->data = nullptr;
  list.push_back(w);
}
// Under the object's lock: pops the front waiter and marks it dequeued (nullptr when empty).
inline Waiter* pop_waiter(WaitList& list) noexcept {
  Waiter* w = list.pop_front();
  if (w) w->data = &kDequeuedMark;
  return w;
}
// Under the object's lock: W3. True when w was still linked (now unlinked: the wait timed out).
inline bool unlink_if_linked(WaitList& list, Waiter* w) noexcept {
  if (w->data == &kDequeuedMark) return false;
  list.remove(w);
  return true;
}

// Popped waiters, chained through their (now free) links, to be notified after the unlock.
class WakeChain {
 public:
  void add(Waiter* w) noexcept { list_.push_back(w); }
  // N2 for each. Pops before notifying: a notified waiter may return (and its Waiter die) at once.
  void notify_all() noexcept {
    while (Waiter* w = list_.pop_front()) w->notify();
  }

 private:
  WaitList list_;
};

// W2 for objects' timed waits: SteadyTime::max() (a saturated "forever") waits without
// arming a timer, which would keep the runtime from ever looking quiescent at shutdown.
inline bool wait_until_or_forever(Waiter& w, std::chrono::steady_clock::time_point d) noexcept {
  if (d == std::chrono::steady_clock::time_point::max()) {
    w.wait();
    return true;
  }
  return w.wait_until(d);
}

// The identity of the calling context: its fiber id (also inside upcall::blocking), or, on a
// plain thread, a per-thread number with the top bit set (never a fiber id, never 0).
// Defined in runtime/sync/thread.cpp.
std::uint64_t current_context_id() noexcept;
inline constexpr std::uint64_t kThreadIdBit = std::uint64_t{1} << 63;

// Whether a contended lock's brief spin can pay off for the caller: never for a fiber on a
// 1-core runtime (the holder, if a fiber of the same runtime, cannot run while we spin) or
// whose core has other ready fibers (switching to them beats burning the core); otherwise yes
// (plain threads, multi-core runtimes with nothing else to run here). wait.cpp.
bool spin_can_pay_off() noexcept;

}  // namespace upcall::detail
