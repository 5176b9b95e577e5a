// runtime/cores/congestion.cpp: congestion detection and grants (runtime/DESIGN.md section 15),
// and the two holder-side pieces of the core budget: draining a core that left the budget and
// its wait until it is back. It does not own the idle loop (runtime/sched/scheduler.cpp) nor
// the budget's validation (budget.cpp).
//
// Congestion, after Shenango: a core is congested when something ready has waited longer than
// one interval. Nothing on the fast paths records when a fiber became ready; instead each check
// remembers every queue's free-running tail, and the next check (at least one interval later)
// asks whether the head has passed it. If not, an entry that was already queued at the previous
// check is still there: it has waited at least one interval. Queues looked at: each core's run
// queue (head/tail counters), LIFO slot (same fiber twice), priority queue (non-empty twice),
// io_uring completion queue (head/tail in the ring's shared memory), the injection queue
// (pushed/popped totals) and a custom policy's pending count (non-zero twice).
//
// Who checks: busy cores at every loop pass and every kFairnessTick-th decision, spinning and
// polling cores while they look for work, and the backstop thread (ticker.cpp); all through
// one CAS on next_check_ns, so a check runs at most once per interval runtime-wide.
#include <sched.h>

#include "runtime/activations/activations.hpp"
#include "runtime/cores/cores.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "runtime/io/reactor.hpp"

namespace upcall::rt {

namespace {

// Entries queued in c at the previous check and still queued now. `stealable_only`: only the
// queues another core can take from (not the io_uring completions, which only c reaps).
bool core_congested(Core* c, bool stealable_only) {
  bool congested = false;
  const std::uint32_t head = c->rq.head_hint();
  const std::uint32_t tail = c->rq.tail_hint();
  const std::uint32_t seen_tail = c->cong.rq_tail.exchange(tail, std::memory_order_relaxed);
  // head < seen_tail (free-running counters): the entry at head was pushed before that check.
  if (head != tail && static_cast<std::int32_t>(seen_tail - head) > 0) congested = true;
  Fiber* lifo = c->lifo.load(std::memory_order_relaxed);
  if (c->cong.lifo.exchange(lifo, std::memory_order_relaxed) == lifo && lifo) congested = true;
  const std::uint32_t prio = c->prio.size_hint();
  if (c->cong.prio.exchange(prio, std::memory_order_relaxed) != 0 && prio != 0) congested = true;
  Reactor* r = c->reactor;
  if (!stealable_only && r && r->kind == IoBackend::uring && r->ring.cq.khead) {
    // The kernel writes ktail, the holder khead (liburing's release stores); acquire loads.
    const std::uint32_t cq_head = __atomic_load_n(r->ring.cq.khead, __ATOMIC_ACQUIRE);
    const std::uint32_t cq_tail = __atomic_load_n(r->ring.cq.ktail, __ATOMIC_ACQUIRE);
    const std::uint32_t seen = c->cong.cq_tail.exchange(cq_tail, std::memory_order_relaxed);
    if (cq_head != cq_tail && static_cast<std::int32_t>(seen - cq_head) > 0) congested = true;
  }
  return congested;
}

}  // namespace

void RuntimeImpl::congestion_check(std::int64_t now, bool backstop) {
  std::int64_t due = next_check_ns.load(std::memory_order_relaxed);
  if (now < due) return;
  // One checker per interval: the CAS winner checks. relaxed: the snapshots are exchanged
  // atomically themselves; the CAS only spaces the checks.
  if (!next_check_ns.compare_exchange_strong(due, now + congestion_ns, std::memory_order_relaxed))
    return;
  cong_checks.fetch_add(1, std::memory_order_relaxed);
  if (backstop) cong_backstop.fetch_add(1, std::memory_order_relaxed);
  int congested = 0;
  for (auto& cp : cores) {
    Core* c = cp.get();
    // A core out of the budget drains its queues to the others at its next loop pass; until
    // then (a fiber that never enters the runtime holds it) what waits there is congestion too,
    // which a granted core can steal. Its own io_uring completions only it can reap.
    const bool out = !c->enabled.load(std::memory_order_relaxed);
    if (core_congested(c, /*stealable_only=*/out)) {
      ++congested;
      c->alloc.congested.fetch_add(1, std::memory_order_relaxed);
    }
  }
  const std::uint64_t pushed = inject.pushed_total();
  const std::uint64_t popped = inject.popped_total();
  if (popped < inject_seen.exchange(pushed, std::memory_order_relaxed)) {
    ++congested;
    cong_inject.fetch_add(1, std::memory_order_relaxed);
  }
  if (policy) {
    const std::int64_t pending = policy_pending.load(std::memory_order_relaxed);
    if (policy_seen.exchange(pending, std::memory_order_relaxed) > 0 && pending > 0) ++congested;
  }
  // Cores that are searching (spinning, polling) take the work without a grant.
  congested -= n_spinning.load(std::memory_order_seq_cst);
  for (int i = 0; i < congested; ++i)
    if (!grant_core()) break;
}

bool RuntimeImpl::grant_core(bool stamp) {
  // The granted core inherits a spinning token, as from wake_idle_core (section 5): taken
  // first, so a waker that reads n_spinning meanwhile leaves the work to it.
  n_spinning.fetch_add(1, std::memory_order_seq_cst);
  Core* target = pop_idle_core();
  if (!target) {
    n_spinning.fetch_sub(1, std::memory_order_seq_cst);
    return false;
  }
  if (stamp) {
    // The decision time, published by the release store of park_word below.
    target->grant_ns.store(now_ns(), std::memory_order_relaxed);
    target->alloc.grants.fetch_add(1, std::memory_order_relaxed);
  }
  // release: pairs with the parked core's acquire load of park_word (P4).
  target->park_word.store(0, std::memory_order_release);
  if (target->reactor)
    io_wake(target);
  else
    futex_wake(&target->park_word, 1);
  return true;
}

void RuntimeImpl::note_grant_outcome(Core* c, bool ran) {
  const std::int64_t t = c->grant_ns.exchange(0, std::memory_order_relaxed);
  if (!t) return;
  if (ran) {
    const std::int64_t d = now_ns() - t;
    hist_grant.record(d > 0 ? d : 0);
  } else {
    c->alloc.grants_idle.fetch_add(1, std::memory_order_relaxed);
  }
}

void RuntimeImpl::drain_core(Core* c) {
  Fiber* first = nullptr;
  Fiber* last = nullptr;
  std::size_t count = 0;
  auto link = [&](Fiber* f) {
    f->next = nullptr;
    if (last)
      last->next = f;
    else
      first = f;
    last = f;
    ++count;
  };
  // Small chunks: this can run on a fiber's stack (a yield that finds its core out of the
  // budget), where a whole ring's worth of pointers (2 KiB) is too much to ask.
  Fiber* chunk[32];
  std::uint32_t taken = 0;
  while (taken < RunQueue::kCapacity) {
    const std::uint32_t got = c->rq.pop_batch(chunk, 32);
    if (got == 0) break;
    for (std::uint32_t i = 0; i < got; ++i) link(chunk[i]);
    taken += got;
  }
  if (Fiber* f = c->lifo.exchange(nullptr, std::memory_order_acq_rel)) link(f);
  while (c->prio.size_hint() != 0) {
    Fiber* f = c->prio.pop();
    if (!f) break;
    link(f);
  }
  if (!first) return;
  inject.push_chain(first, last, count);  // seq_cst length update: W1 of section 5
  wake_idle_core(true);
  // More than one batch (a full ring refilled by a fiber meanwhile): the next pass drains it.
}

bool RuntimeImpl::disabled_wait(Activation* a, Core* c) {
  if (c->spinning) {
    // Give the spinning token back. A waker that saw it (W2 of section 5) left its remote
    // work to this core, which now leaves without searching: after the seq_cst RMW, look
    // (seq_cst) and pass the work on, as a parking core's P3 would (Go's resetspinning).
    c->spinning = false;
    n_spinning.fetch_sub(1, std::memory_order_seq_cst);
    if (inject.size() != 0 || (policy && policy_pending.load(std::memory_order_seq_cst) > 0))
      wake_idle_core(true);
  }
  note_grant_outcome(c, false);
  c->released.store(true, std::memory_order_relaxed);
  bump(c->alloc.releases);
  bool alive = true;
  for (;;) {
    if (stopped.load(std::memory_order_acquire)) {
      alive = false;
      break;
    }
    // Housekeeping: this core's own timers and in-flight I/O still complete here; the fibers
    // they wake go to the other cores.
    if (c->reactor) io_poll(c);
    if (!c->timers.empty()) expire_timers(c, now_ns());
    drain_core(c);
    // Dekker with set_core_budget: it stores enabled (seq_cst), then exchanges park_word; we
    // store park_word (seq_cst), then read enabled. One of the two sees the other.
    c->park_word.store(kParkDisabled, std::memory_order_seq_cst);
    if (c->enabled.load(std::memory_order_seq_cst)) {
      c->park_word.store(0, std::memory_order_relaxed);
      break;
    }
    if (stopped.load(std::memory_order_acquire)) continue;
    std::int64_t timeout = -1;
    if (!c->timers.empty()) {
      timeout = c->timers.next_deadline() - now_ns();
      if (timeout <= 0) {
        c->park_word.store(0, std::memory_order_relaxed);
        continue;
      }
    }
    if (c->reactor) {
      if (!io_ready(c) && c->rq.empty_hint() && !c->lifo.load(std::memory_order_relaxed))
        io_park(c, timeout);  // marked as an intentional wait inside
    } else {
      holder_parking(a);
      futex_wait(&c->park_word, kParkDisabled, timeout);
      holder_unparked(a);
    }
    c->park_word.store(0, std::memory_order_relaxed);
    if (c->enabled.load(std::memory_order_acquire)) break;
  }
  c->released.store(false, std::memory_order_relaxed);
  end_poll_lower(c);
  if (a->sched_idle && !a->pending_promotion) {
    // It was polling at SCHED_IDLE when it left the budget: back to SCHED_OTHER after the
    // first fiber (as in idle()).
    a->pending_promotion = true;
    a->promote_only = true;
  }
  return alive;
}

}  // namespace upcall::rt
