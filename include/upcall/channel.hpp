// upcall/channel.hpp: upcall::Channel<T>, a multi-producer multi-consumer FIFO channel (Go's
// chan) for fibers and plain threads alike. This header owns a channel's state (its buffer, its
// queues of waiting senders and receivers, its closed flag) and the send / recv / close
// protocol, including the direct hand-off from a sender to a waiting receiver. It does not own
// waiting itself (upcall/detail/wait.hpp) nor the multi-channel engine of upcall::select
// (upcall/select.hpp, runtime/sync/channel_select.cpp), which drives the per-channel hooks
// (send_locked / recv_locked) defined here.
//
// Choices, for users:
//  - Capacity: Channel<T>(n) with n >= 1 is bounded (send suspends while n items are queued);
//    Channel<T>(0) is a rendezvous channel (Go's unbuffered chan: a send completes only when a
//    receiver takes the value); Channel<T>::unbounded() never makes a sender wait.
//  - Handle semantics, as Go channels: a Channel is a cheap copyable handle to shared state
//    (one atomic increment per copy); the state lives while any handle does. Every operation is
//    const (it does not change which channel the handle names), so lambdas can capture by copy.
//  - Errors are statuses, not exceptions: send() is false when the channel is closed (the value
//    is dropped); try_send / send_until return a ChannelStatus and move from their argument
//    only on ChannelStatus::ok, so a failed send leaves the value with the caller.
//    recv() is nullopt once the channel is closed and drained; try_recv / recv_until are
//    nullopt also when empty / timed out: `!v && ch.is_closed()` then means closed and drained
//    (no value can arrive after close, so a nullopt seen before is final too).
//  - T must be nothrow move constructible (values move under the channel's spin lock).
//    Unbounded sends may throw std::bad_alloc (then nothing was sent).
//  - Order: FIFO per channel; so per producer, since a producer has one send in flight.
//  - `for (T v : ch)` receives until closed and drained (the iterator yields T&: iterate
//    move-only values with `for (auto& v : ch)`). upcall/select.hpp waits on several channels.
//  - Cost: one spin-lock section per operation; a send to a waiting receiver moves the value
//    straight into the receiver's frame (BM_Channel_PingPong_Upcall, bench/channel).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "upcall/detail/wait.hpp"

namespace upcall {

enum class ChannelStatus : std::uint8_t {
  ok,           // sent / received
  closed,       // send: the channel is closed; recv: closed and drained
  would_block,  // try_send: full (rendezvous: no receiver waiting); try_recv: empty
  timed_out,    // *_until / *_for: the deadline passed first
};

template <class T>
class Channel;
template <class T>
class RecvCase;
template <class T>
class SendCase;

namespace detail {

// Channel protocol. Every field of a channel is guarded by its SpinLock lock_. A context that
// must wait builds a ChanOp on its own stack (a Waiter `node`, plus where its value comes from or
// goes to), links node into recvq_ or sendq_, unlocks and waits (W1-W2 of wait.hpp). The
// counterpart that completes it pops it with pop_ready_locked (N1), moves the value directly
// between the two stacks (or between the buffer and the op), records the outcome in node.tag
// (kOpDone or kOpClosed) and unlocks; only then does it notify op->wake (N2), so the woken
// context never spins on a lock its waker still holds.
//
// Because the notify comes after the unlock, node.notified() cannot tell a waiter whose deadline
// passed whether it is still linked (W3 of wait.hpp would remove an already-unlinked node):
// node.tag can, as it is written under the lock. Such a waiter locks; if tag is still kOpLinked
// it unlinks itself (timed out); otherwise it was completed, its notify is on the way, and it
// waits for that (Waiter::wait) before its frame, and the Waiter, go away.
//
// Select proxies: upcall::select links one ChanOp per case, all sharing one `claim` word and one
// `wake` Waiter. Whoever pops a proxy must first win the claim (CAS kUnclaimed -> case index); a
// proxy whose claim is lost is stale: it is marked kOpStale and skipped, and the select later
// unlinks whatever proxies are still linked. Exactly one context completes a select: a select
// does not act on channels while its proxies are linked (its polling pass runs before, with all
// its channels locked), so a claim is never paired with a claim of the completer's own.
//
// Invariants (under lock_): a ready, non-stale receiver is linked only while the buffer is
// empty; a ready sender only while the buffer is full (always, for rendezvous). So send looks
// for a receiver before the buffer, and recv looks at the buffer before the senders.
//
// Cancellation (los::task_delete of a waiting task, runtime/DESIGN.md section 14): a waiting
// send or recv is a cancellation point. The woken op does what a timed-out one does; if it was
// still linked (or completed by close: nothing moved) it throws TaskDeleted. If a counterpart
// completed it in the same instant, what moved is not lost: a send whose value was taken was
// delivered (exactly once) and the sender throws; a received value goes back (give_back: to a
// waiting receiver, else to the front of the buffer if it has room) and then the op throws;
// only if it has nowhere to go (rendezvous, or a buffer refilled to its bound) does the recv
// return it, and the delete takes effect at the task's next cancellation point.

// States of ChanOp::node.tag, written under the channel's lock by whoever unlinks the node.
inline constexpr std::uintptr_t kOpLinked = 0;  // queued, not completed
inline constexpr std::uintptr_t kOpDone = 1;    // completed: the value moved
inline constexpr std::uintptr_t kOpClosed = 2;  // completed by close(): nothing moved
inline constexpr std::uintptr_t kOpStale = 3;   // select proxy unlinked without completing

// Values of a select's claim word besides a case index.
inline constexpr std::uint32_t kUnclaimed = 0xffffffffu;
inline constexpr std::uint32_t kSelectTimedOut = 0xfffffffeu;
inline constexpr std::uint32_t kSelectCancelled = 0xfffffffdu;  // the select's task was deleted

// How a linked op's wait ended (wait_linked).
enum class Waited : std::uint8_t {
  done,            // completed: the value moved
  closed,          // completed by close(): nothing moved
  timed_out,       // unlinked itself at the deadline
  cancelled,       // the task was deleted; nothing moved (unlinked, or completed by close)
  cancelled_done,  // the task was deleted, but a counterpart completed the op just before
};

// One waiting send or recv, on the waiting context's stack. Linked while node.tag == kOpLinked.
struct ChanOp {
  ChanOp() noexcept { node.data = this; }
  ChanOp(const ChanOp&) = delete;
  ChanOp& operator=(const ChanOp&) = delete;

  Waiter node;  // links and tag: guarded by the channel's lock (see above)
  // The fields below are written by the owner before it links node and read by the completer
  // under the channel's lock.
  Waiter* wake = &node;                         // whom to notify: node, or the select's Waiter
  std::atomic<std::uint32_t>* claim = nullptr;  // select only: the shared claim word
  std::uint32_t index = 0;                      // select only: the case index to claim with
  void* value = nullptr;  // send: the T to move from; recv: the std::optional<T> to fill
};

// Outcome of one attempt under the lock.
enum class Attempt : std::uint8_t { ok, closed, blocked, no_memory };

// The part of a channel that does not depend on T (select locks and queues through it).
class ChannelBase {
 public:
  static constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();
  explicit ChannelBase(std::size_t cap) noexcept : cap_(cap) {}
  ChannelBase(const ChannelBase&) = delete;
  ChannelBase& operator=(const ChannelBase&) = delete;

  // N1: pops the first op of q that can still complete, winning its select's claim if it is a
  // proxy; stale proxies met on the way are unlinked and marked kOpStale.
  static ChanOp* pop_ready_locked(WaitList& q) noexcept {
    while (Waiter* w = q.pop_front()) {
      auto* op = static_cast<ChanOp*>(w->data);
      if (op->claim == nullptr) return op;
      std::uint32_t expected = kUnclaimed;
      // relaxed: the CAS only decides who completes the select; the value and the tag are
      // published by this channel's lock and by the notify (release) / wait (acquire) pair.
      if (op->claim->compare_exchange_strong(expected, op->index, std::memory_order_relaxed))
        return op;
      w->tag = kOpStale;
    }
    return nullptr;
  }

  // W2/W3 for an op linked into q by the caller, who has unlocked since. A cancellation point
  // (see "Cancellation" above).
  Waited wait_linked(ChanOp& op, WaitList& q, bool timed,
                     std::chrono::steady_clock::time_point deadline) noexcept {
    const WaitStatus st = op.node.wait_cancellable(
        timed ? deadline : std::chrono::steady_clock::time_point::max());
    if (st != WaitStatus::notified) {
      lock_.lock();
      const bool linked = op.node.tag == kOpLinked;
      if (linked) q.remove(&op.node);
      lock_.unlock();
      if (linked) return st == WaitStatus::timed_out ? Waited::timed_out : Waited::cancelled;
      op.node.wait();  // completed under the lock; absorb the notify that is on its way
      if (st == WaitStatus::cancelled)
        return op.node.tag == kOpDone ? Waited::cancelled_done : Waited::cancelled;
    }
    // The completer wrote tag before its notify (release); wait()'s acquire makes it visible.
    return op.node.tag == kOpDone ? Waited::done : Waited::closed;
  }

  // Closes the channel: later sends fail, waiting senders fail, waiting receivers get nullopt
  // (they wait only when the buffer is empty, so nothing is left for them). Returns false if it
  // was closed already.
  bool close() noexcept {
    WaitList woken;  // completed ops' wake Waiters, unlinked from every channel queue
    lock_.lock();
    if (closed_.load(std::memory_order_relaxed)) {
      lock_.unlock();
      return false;
    }
    // release: pairs with is_closed()'s acquire load.
    closed_.store(true, std::memory_order_release);
    for (WaitList* q : {&recvq_, &sendq_}) {
      while (ChanOp* op = pop_ready_locked(*q)) {
        op->node.tag = kOpClosed;
        // op->wake is op->node (just unlinked) or a select's Waiter (never in a channel queue),
        // and it is not notified before the loop below, so we may link it here.
        woken.push_back(op->wake);
      }
    }
    lock_.unlock();
    while (Waiter* w = woken.pop_front()) w->notify();  // pop before notify: w may die at once
    return true;
  }

  bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  std::size_t capacity() const noexcept { return cap_; }
  std::size_t size() const noexcept {
    lock_.lock();
    const std::size_t n = count_;
    lock_.unlock();
    return n;
  }
  SpinLock& lock() const noexcept { return lock_; }
  WaitList& queue(bool senders) noexcept { return senders ? sendq_ : recvq_; }

 protected:
  mutable SpinLock lock_;
  WaitList recvq_;          // guarded by lock_: waiting receivers (ChanOp nodes)
  WaitList sendq_;          // guarded by lock_: waiting senders (bounded and rendezvous only)
  std::size_t count_ = 0;   // guarded by lock_: items in the buffer
  const std::size_t cap_;   // immutable: 0 rendezvous, kUnbounded, else the bound
  // Written under lock_ (release, by close); read under lock_ (relaxed) or by is_closed()
  // without it (acquire).
  std::atomic<bool> closed_{false};
};

// The typed state: the buffer and the moves.
template <class T>
class ChannelState final : public ChannelBase {
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "upcall::Channel<T> needs a nothrow move constructor (values move under a lock)");
  static_assert(std::is_nothrow_destructible_v<T>, "upcall::Channel<T> needs a nothrow destructor");

  // Unbounded buffer: a list of blocks of kBlockItems slots, so no send ever moves the items
  // already queued. About 1 KiB per block, a guess no benchmark has tuned yet.
  static constexpr std::size_t kBlockItems = sizeof(T) >= 128 ? 8 : 1024 / sizeof(T);
  struct Block {
    Block* next = nullptr;
    alignas(T) unsigned char raw[sizeof(T) * kBlockItems];
    T* slot(std::size_t i) noexcept { return reinterpret_cast<T*>(raw) + i; }
  };

 public:
  explicit ChannelState(std::size_t cap) : ChannelBase(cap) {
    if (cap_ == kUnbounded) {
      head_blk_ = tail_blk_ = new Block;
    } else if (cap_ != 0) {
      if (cap_ > std::numeric_limits<std::size_t>::max() / sizeof(T))
        throw std::length_error("upcall::Channel: capacity too large");
      ring_ = static_cast<T*>(::operator new(sizeof(T) * cap_, std::align_val_t(alignof(T))));
    }
  }
  ~ChannelState() {
    // No op can be linked: every waiting op's caller holds a handle (or a select case does).
    std::optional<T> sink;
    while (count_ != 0) {
      sink.reset();
      free_block(pop_locked(sink));
    }
    if (ring_) ::operator delete(ring_, std::align_val_t(alignof(T)));
    delete head_blk_;  // with count_ == 0, head and tail are the same block
    delete spare_;
  }

  // ---- Attempts, lock_ held (N1). `wake` receives a completed counterpart to notify after
  // unlocking; `to_free` a block to free after unlocking.

  // Moves from src only when it returns ok. no_memory: unbounded, and a new block is needed:
  // unlock, add_spare(), retry.
  Attempt send_locked(T& src, Waiter*& wake) noexcept {
    if (closed_.load(std::memory_order_relaxed)) return Attempt::closed;
    if (ChanOp* r = pop_ready_locked(recvq_)) {  // hand-off: the buffer is empty
      static_cast<std::optional<T>*>(r->value)->emplace(std::move(src));
      r->node.tag = kOpDone;
      wake = r->wake;
      return Attempt::ok;
    }
    if (count_ < cap_) return push_locked(src) ? Attempt::ok : Attempt::no_memory;
    return Attempt::blocked;
  }

  // Fills out (empty on entry) when it returns ok.
  Attempt recv_locked(std::optional<T>& out, Waiter*& wake, void*& to_free) noexcept {
    if (count_ != 0) {
      to_free = pop_locked(out);
      if (ChanOp* s = pop_ready_locked(sendq_)) {  // the buffer was full: refill it, in order
        push_locked(*static_cast<T*>(s->value));    // bounded: room was just made, cannot fail
        s->node.tag = kOpDone;
        wake = s->wake;
      }
      return Attempt::ok;
    }
    if (ChanOp* s = pop_ready_locked(sendq_)) {  // rendezvous: take it from the sender
      out.emplace(std::move(*static_cast<T*>(s->value)));
      s->node.tag = kOpDone;
      wake = s->wake;
      return Attempt::ok;
    }
    return closed_.load(std::memory_order_relaxed) ? Attempt::closed : Attempt::blocked;
  }

  // Unbounded only, lock_ not held: makes sure a spare block exists. May throw bad_alloc.
  void add_spare() {
    Block* b = new Block;
    lock_.lock();
    if (!spare_) spare_ = std::exchange(b, nullptr);
    lock_.unlock();
    delete b;
  }
  static void free_block(void* b) noexcept { delete static_cast<Block*>(b); }

  // ---- Whole operations (any context; suspend a fiber, block a thread).

  ChannelStatus send(T& src, bool may_wait, bool timed,
                     std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      Waiter* wake = nullptr;
      lock_.lock();
      const Attempt a = send_locked(src, wake);
      if (a == Attempt::blocked && may_wait) return send_wait_locked(src, timed, deadline);
      lock_.unlock();
      if (wake) wake->notify();  // N2
      switch (a) {
        case Attempt::ok: return ChannelStatus::ok;
        case Attempt::closed: return ChannelStatus::closed;
        case Attempt::blocked: return ChannelStatus::would_block;
        case Attempt::no_memory: add_spare(); break;  // and retry
      }
    }
  }

  // Fills out (empty on entry) when it returns ok.
  ChannelStatus recv(std::optional<T>& out, bool may_wait, bool timed,
                     std::chrono::steady_clock::time_point deadline) {
    Waiter* wake = nullptr;
    void* to_free = nullptr;
    lock_.lock();
    const Attempt a = recv_locked(out, wake, to_free);
    if (a == Attempt::blocked && may_wait) return recv_wait_locked(out, timed, deadline);
    lock_.unlock();
    if (wake) wake->notify();  // N2
    if (to_free) free_block(to_free);
    return a == Attempt::ok       ? ChannelStatus::ok
           : a == Attempt::closed ? ChannelStatus::closed
                                  : ChannelStatus::would_block;
  }

 private:
  // W1 for a caller that must wait, lock_ held: link a ChanOp, unlock, wait. Out of line and
  // only on this path, the ChanOp (and its Waiter, which looks up the caller's waker through an
  // out-of-line call) costs nothing to the operations that complete at once: building it in
  // send/recv, even in a std::optional, cost a 100-byte zeroing per call and ~20% of
  // BM_Channel_PingPong_Upcall. Cost of building it under lock_: the first Waiter a plain thread
  // ever builds takes a parker from the runtime's pool (a std::mutex, perhaps an allocation);
  // once per thread, and it cannot deadlock (that pool's holders never take a channel lock).
  [[gnu::noinline]] ChannelStatus send_wait_locked(
      T& src, bool timed, std::chrono::steady_clock::time_point deadline) {
    ChanOp op;
    op.value = &src;
    sendq_.push_back(&op.node);
    lock_.unlock();
    switch (wait_linked(op, sendq_, timed, deadline)) {
      case Waited::done: return ChannelStatus::ok;
      case Waited::closed: return ChannelStatus::closed;
      case Waited::timed_out: return ChannelStatus::timed_out;
      case Waited::cancelled: break;       // src was not taken: it stays in the caller's frame
      case Waited::cancelled_done: break;  // delivered (exactly once); the sender unwinds
    }
    throw_task_deleted();
  }
  [[gnu::noinline]] ChannelStatus recv_wait_locked(
      std::optional<T>& out, bool timed, std::chrono::steady_clock::time_point deadline) {
    ChanOp op;
    op.value = &out;
    recvq_.push_back(&op.node);
    lock_.unlock();
    switch (wait_linked(op, recvq_, timed, deadline)) {
      case Waited::done: return ChannelStatus::ok;
      case Waited::closed: return ChannelStatus::closed;
      case Waited::timed_out: return ChannelStatus::timed_out;
      case Waited::cancelled_done:
        if (!give_back(out)) return ChannelStatus::ok;  // nowhere to go: keep it (see above)
        break;
      case Waited::cancelled: break;
    }
    throw_task_deleted();
  }

  // A value received by a deleted receiver goes back: to a waiting receiver, else to the front
  // of the buffer if it has room. True (out emptied) when it went back.
  bool give_back(std::optional<T>& out) noexcept {
    Waiter* wake = nullptr;
    lock_.lock();
    bool back = true;
    if (ChanOp* r = pop_ready_locked(recvq_)) {  // then the buffer is empty
      static_cast<std::optional<T>*>(r->value)->emplace(std::move(*out));
      r->node.tag = kOpDone;
      wake = r->wake;
    } else {
      back = push_front_locked(*out);
    }
    lock_.unlock();
    if (wake) wake->notify();  // N2
    if (back) out.reset();
    return back;
  }

  // lock_ held. Prepends (it was the oldest value); moves from v only when it returns true.
  // No ready sender is linked when it succeeds: senders wait only while the buffer is full.
  bool push_front_locked(T& v) noexcept {
    if (cap_ == kUnbounded) {
      if (count_ == 0) return push_locked(v);  // empty: indices are back at 0
      if (head_idx_ == 0) return false;         // no room before the head in its block
      --head_idx_;
      ::new (static_cast<void*>(head_blk_->slot(head_idx_))) T(std::move(v));
    } else {
      if (count_ >= cap_) return false;  // full, or rendezvous (no buffer)
      head_ = head_ == 0 ? cap_ - 1 : head_ - 1;
      ::new (static_cast<void*>(ring_ + head_)) T(std::move(v));
    }
    ++count_;
    return true;
  }

  // lock_ held. Appends; moves from v only when it returns true (false: unbounded, no block).
  bool push_locked(T& v) noexcept {
    if (cap_ != kUnbounded) {
      std::size_t i = head_ + count_;
      if (i >= cap_) i -= cap_;
      ::new (static_cast<void*>(ring_ + i)) T(std::move(v));
    } else {
      if (tail_idx_ == kBlockItems) {
        if (!spare_) return false;
        Block* b = std::exchange(spare_, nullptr);
        b->next = nullptr;
        tail_blk_->next = b;
        tail_blk_ = b;
        tail_idx_ = 0;
      }
      ::new (static_cast<void*>(tail_blk_->slot(tail_idx_++))) T(std::move(v));
    }
    ++count_;
    return true;
  }

  // lock_ held, count_ != 0. Moves the oldest item into out; returns a block to free, if any.
  void* pop_locked(std::optional<T>& out) noexcept {
    T* p;
    if (cap_ != kUnbounded) {
      p = std::launder(ring_ + head_);
      if (++head_ == cap_) head_ = 0;
    } else {
      p = std::launder(head_blk_->slot(head_idx_++));
    }
    out.emplace(std::move(*p));
    p->~T();
    --count_;
    if (cap_ != kUnbounded) return nullptr;
    if (count_ == 0) {  // then head and tail are the same block: reuse it from the start
      head_idx_ = tail_idx_ = 0;
    } else if (head_idx_ == kBlockItems) {
      Block* old = std::exchange(head_blk_, head_blk_->next);
      head_idx_ = 0;
      if (!spare_) {
        spare_ = old;
        return nullptr;
      }
      return old;
    }
    return nullptr;
  }

  // All guarded by lock_.
  T* ring_ = nullptr;       // bounded: cap_ slots, items at [head_, head_ + count_) mod cap_
  std::size_t head_ = 0;
  Block* head_blk_ = nullptr;  // unbounded: items from (head_blk_, head_idx_)
  Block* tail_blk_ = nullptr;  // ... to (tail_blk_, tail_idx_), exclusive
  std::size_t head_idx_ = 0;
  std::size_t tail_idx_ = 0;
  Block* spare_ = nullptr;  // unbounded: one empty block kept for the next push
};

}  // namespace detail

// A handle to a channel (see the file comment for the semantics). Thread-safe: every operation
// may be called from any fiber or thread, concurrently, through any copy of the handle.
template <class T>
class Channel {
 public:
  static constexpr std::size_t kUnbounded = detail::ChannelBase::kUnbounded;

  // capacity 0: rendezvous; kUnbounded: unbounded; else bounded. Throws std::bad_alloc /
  // std::length_error when the buffer cannot be allocated.
  explicit Channel(std::size_t capacity)
      : s_(std::make_shared<detail::ChannelState<T>>(capacity)) {}
  static Channel unbounded() { return Channel(kUnbounded); }

  // Sends v, waiting while the channel is full. False if the channel is (or gets) closed
  // before v was taken; v is then dropped. May suspend.
  bool send(T v) const { return s_->send(v, true, false, {}) == ChannelStatus::ok; }
  // Never suspends: ok, closed or would_block. Moves from v only on ok.
  ChannelStatus try_send(T&& v) const { return s_->send(v, false, false, {}); }
  ChannelStatus try_send(const T& v) const {
    T copy(v);
    return try_send(std::move(copy));
  }
  // As send, giving up at deadline: ok, closed or timed_out. Moves from v only on ok.
  ChannelStatus send_until(T&& v, std::chrono::steady_clock::time_point deadline) const {
    return s_->send(v, true, true, deadline);
  }
  ChannelStatus send_until(const T& v, std::chrono::steady_clock::time_point deadline) const {
    T copy(v);
    return send_until(std::move(copy), deadline);
  }
  template <class Rep, class Period>
  ChannelStatus send_for(T&& v, std::chrono::duration<Rep, Period> d) const {
    return send_until(std::move(v), deadline_after(d));
  }
  template <class Rep, class Period>
  ChannelStatus send_for(const T& v, std::chrono::duration<Rep, Period> d) const {
    return send_until(v, deadline_after(d));
  }

  // Receives the oldest value, waiting while the channel is empty; nullopt once it is closed
  // and drained. May suspend.
  std::optional<T> recv() const {
    std::optional<T> out;
    s_->recv(out, true, false, {});
    return out;
  }
  // Never suspends; nullopt when empty or closed and drained.
  std::optional<T> try_recv() const {
    std::optional<T> out;
    s_->recv(out, false, false, {});
    return out;
  }
  // As recv, giving up at deadline (nullopt).
  std::optional<T> recv_until(std::chrono::steady_clock::time_point deadline) const {
    std::optional<T> out;
    s_->recv(out, true, true, deadline);
    return out;
  }
  template <class Rep, class Period>
  std::optional<T> recv_for(std::chrono::duration<Rep, Period> d) const {
    return recv_until(deadline_after(d));
  }

  // Closes the channel and wakes every waiter (see ChannelBase::close). Values already queued
  // stay receivable. Returns false if it was already closed. Never suspends.
  bool close() const noexcept { return s_->close(); }
  bool is_closed() const noexcept { return s_->is_closed(); }
  // Values queued now (0 for rendezvous channels). A snapshot.
  std::size_t size() const noexcept { return s_->size(); }
  std::size_t capacity() const noexcept { return s_->capacity(); }

  // `for (T v : ch)` receives until the channel is closed and drained.
  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(const Channel* ch) : ch_(ch), cur_(ch->recv()) {}
    T& operator*() { return *cur_; }
    iterator& operator++() {
      cur_ = ch_->recv();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return !cur_.has_value(); }

   private:
    const Channel* ch_ = nullptr;
    std::optional<T> cur_;
  };
  iterator begin() const { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

  // Handles compare equal when they name the same channel.
  friend bool operator==(const Channel& a, const Channel& b) noexcept { return a.s_ == b.s_; }

 private:
  friend class RecvCase<T>;
  friend class SendCase<T>;
  template <class Rep, class Period>
  static std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> d) {
    return std::chrono::steady_clock::now() +
           std::chrono::ceil<std::chrono::steady_clock::duration>(d);
  }
  std::shared_ptr<detail::ChannelState<T>> s_;
};

}  // namespace upcall
