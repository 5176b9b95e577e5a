// runtime/sync/channel_select.cpp: the untyped engine of upcall::select (upcall/select.hpp).
// It owns the order in which a select takes its channels' locks, the random choice among ready
// cases, the linking of one proxy ChanOp per case, the claim word that lets exactly one
// channel complete the select, the timeout race, and the unlinking of the proxies afterwards.
// How a channel completes a proxy (pop_ready_locked, the moves) is in upcall/channel.hpp.
//
// Protocol (Go's selectgo, with a claim word instead of Go's per-goroutine selectDone):
//  S1. Lock every distinct channel in address order (every context that holds two channel
//      locks at once is a select, and all of them use this order, so no deadlock).
//  S2. Poll the cases under the locks, starting at a random one: the first that can complete
//      does, S1's locks are dropped and its counterpart (if it waited) is notified.
//  S3. Nothing ready: link one proxy per case, all with wake = one Waiter on this stack and
//      claim = one word (kUnclaimed) on this stack; unlock all. From now on this select only
//      waits: it never completes another op while its proxies are linked, so whoever completes
//      one of its proxies needs only the select's claim, never a second one of its own.
//  S4. Wait. A completer (holding one channel lock) wins the claim with a CAS, moves the value,
//      marks the proxy kOpDone/kOpClosed, unlocks, notifies the Waiter. Completers that lose
//      the claim mark the proxy they popped kOpStale and move on.
//  S5. On timeout, CAS the claim kUnclaimed -> kSelectTimedOut. Losing that CAS means a
//      completer won: its notify is in flight, so wait for it (the Waiter must outlive it).
//  S6. Lock each channel in turn and unlink the proxies still kOpLinked. Then read the claim.
//  C1. A select woken by a delete of its task (DESIGN.md section 14) does S5 with
//      kSelectCancelled; if it wins the claim nothing moved, and after S6 it throws
//      TaskDeleted. If a completer won, the select completed: a send case (delivered) or a
//      closed receive (nothing moved) throws all the same after S6; a receive that got a value
//      returns it (the select cannot put it back in order), and the delete takes effect at the
//      task's next cancellation point.
// Rejected: one Waiter per case (a context can only wait on one Waiter: wait() re-parks until
// its own flag is set), and claiming without S1's locks (a select would then have to claim
// itself and its counterpart, and undo the first when the second failed).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>

#include "upcall/select.hpp"

namespace upcall::detail {

namespace {

// Per-thread xorshift state for the random start (S2). Only fairness depends on it.
thread_local std::uint64_t t_select_rng = 0;

std::size_t random_below(std::size_t n) noexcept {
  std::uint64_t s = t_select_rng;
  if (s == 0) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s = (static_cast<std::uint64_t>(ts.tv_nsec) << 20) ^
        reinterpret_cast<std::uintptr_t>(&t_select_rng) ^ 0x9e3779b97f4a7c15ull;
    if (s == 0) s = 1;
  }
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  t_select_rng = s;
  return static_cast<std::size_t>((s >> 11) % n);
}

void lock_all(SelectCase* const* cs, const std::size_t* order, std::size_t n) noexcept {
  ChannelBase* prev = nullptr;
  for (std::size_t k = 0; k < n; ++k) {
    ChannelBase* c = cs[order[k]]->chan;
    if (c != prev) c->lock().lock();
    prev = c;
  }
}

void unlock_all(SelectCase* const* cs, const std::size_t* order, std::size_t n) noexcept {
  ChannelBase* prev = nullptr;
  for (std::size_t k = 0; k < n; ++k) {
    ChannelBase* c = cs[order[k]]->chan;
    if (c != prev) c->lock().unlock();
    prev = c;
  }
}

}  // namespace

std::size_t select_run(SelectCase* const* cs, std::size_t* order, std::size_t n, bool may_wait,
                       bool timed, std::chrono::steady_clock::time_point deadline) {
  // S1's order: insertion sort by channel address (n is the number of cases in the source).
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t j = i;
    while (j > 0 && std::less<ChannelBase*>()(cs[i]->chan, cs[order[j - 1]]->chan)) {
      order[j] = order[j - 1];
      --j;
    }
    order[j] = i;
  }
  if (timed && std::chrono::steady_clock::now() >= deadline) may_wait = false;
  // The Waiter is built before any lock: a thread's first Waiter may allocate its parker.
  Waiter self;
  std::atomic<std::uint32_t> claim{kUnclaimed};  // S3-S5, see pop_ready_locked for its CAS

  for (;;) {
    lock_all(cs, order, n);  // S1
    const std::size_t start = n > 1 ? random_below(n) : 0;
    bool retry = false;
    for (std::size_t k = 0; k < n; ++k) {  // S2
      std::size_t i = start + k;
      if (i >= n) i -= n;
      SelectCase& c = *cs[i];
      c.wake = nullptr;
      c.to_free = nullptr;
      const Attempt a = c.poll(c);
      if (a == Attempt::blocked) continue;
      unlock_all(cs, order, n);
      if (a == Attempt::no_memory) {  // unbounded send needs a block: grow unlocked, redo
        c.after(c, a);
        retry = true;
        break;
      }
      c.op.node.tag = a == Attempt::ok ? kOpDone : kOpClosed;  // never linked: ours alone
      if (c.wake) c.wake->notify();
      c.after(c, a);
      return i;
    }
    if (retry) continue;
    if (!may_wait) {
      unlock_all(cs, order, n);
      return n;
    }
    break;  // S3, the locks still held
  }

  for (std::size_t i = 0; i < n; ++i) {  // S3
    ChanOp& op = cs[i]->op;
    op.wake = &self;
    op.claim = &claim;
    op.index = static_cast<std::uint32_t>(i);
    op.node.tag = kOpLinked;
    cs[i]->chan->queue(cs[i]->is_send).push_back(&op.node);
  }
  unlock_all(cs, order, n);

  // S4 (untimed: time_point::max(), no timer).
  const WaitStatus st =
      self.wait_cancellable(timed ? deadline : std::chrono::steady_clock::time_point::max());
  if (st != WaitStatus::notified) {  // S5 / C1
    std::uint32_t expected = kUnclaimed;
    const std::uint32_t mine = st == WaitStatus::timed_out ? kSelectTimedOut : kSelectCancelled;
    // relaxed: arbitration only, as pop_ready_locked's CAS; a completer that won publishes
    // its moves through the notify absorbed below.
    if (!claim.compare_exchange_strong(expected, mine, std::memory_order_relaxed)) self.wait();
  }

  for (std::size_t k = 0; k < n; ++k) {  // S6, in lock order (one lock at a time)
    SelectCase& c = *cs[order[k]];
    SpinLock& l = c.chan->lock();
    l.lock();
    if (c.op.node.tag == kOpLinked) {
      c.chan->queue(c.is_send).remove(&c.op.node);
      c.op.node.tag = kOpStale;
    }
    l.unlock();
  }
  // relaxed: written by us (S5) or by the completer before the notify that wait() acquired.
  const std::uint32_t won = claim.load(std::memory_order_relaxed);
  if (won == kSelectCancelled) throw_task_deleted();
  if (st == WaitStatus::cancelled && won != kSelectTimedOut &&
      (cs[won]->is_send || cs[won]->op.node.tag == kOpClosed))
    throw_task_deleted();  // C1: nothing in hand to return
  return won == kSelectTimedOut ? n : won;
}

}  // namespace upcall::detail
