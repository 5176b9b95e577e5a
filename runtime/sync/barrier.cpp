// runtime/sync/barrier.cpp: phases of upcall::barrier (upcall/barrier.hpp).
//
// Protocol (all fields under spin_):
//  A1. arrive(n): lock; remember phase_; pending_ -= n (and expected_ -= 1 for a drop). If
//      pending_ reached 0: unlock, run the completion function (no lock
//      held: it may do anything but arrive at this barrier), lock, then start the next phase:
//      pending_ = expected_, ++phase_, pop every waiter; unlock; notify.
//  W1. wait(p): lock; phase_ != p -> the phase completed: return. Else link a Waiter, unlock,
//      wait.
//  C1. A waiter woken by a delete: lock, unlink itself if still linked (else absorb the notify
//      of the completing phase), unlock, throw TaskDeleted. Its arrival stays counted for that
//      phase; it is not dropped from later phases (arrive_and_drop is the caller's to call).
// There is deliberately no lock-free fast path in wait: a waiter that could see the new phase
// before the completer unlocked might return and destroy the barrier under it. Taking spin_
// means it returns only after the completer's unlock, its last access to the barrier.
#include "upcall/barrier.hpp"

#include "runtime/sync/sync_util.hpp"

namespace upcall::detail {

std::uint64_t BarrierCore::arrive(std::ptrdiff_t n, bool drop, void (*complete)(void*) noexcept,
                                  void* ctx) {
  spin_.lock();
  const std::uint64_t phase = phase_;
  if (drop) --expected_;
  pending_ -= n;
  if (pending_ > 0) {
    spin_.unlock();
    return phase;
  }
  spin_.unlock();
  complete(ctx);
  WakeChain chain;
  spin_.lock();
  pending_ = expected_;
  ++phase_;
  while (Waiter* w = pop_waiter(waiters_)) chain.add(w);
  spin_.unlock();
  chain.notify_all();
  return phase;
}

void BarrierCore::wait(std::uint64_t phase) {
  Waiter w;
  spin_.lock();
  if (phase_ != phase) {
    spin_.unlock();
    return;
  }
  link_waiter(waiters_, &w);
  spin_.unlock();
  // acquire (in Waiter): the completion's and every arriver's writes are visible.
  if (w.wait_cancellable() == WaitStatus::notified) return;
  // C1 (a delete): leave the list, or absorb the notify of a phase that just completed.
  spin_.lock();
  const bool unlinked = unlink_if_linked(waiters_, &w);
  spin_.unlock();
  if (!unlinked) w.wait();
  throw_task_deleted();
}

}  // namespace upcall::detail
