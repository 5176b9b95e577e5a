// runtime/sched/scheduler.cpp: the built-in policy (per-core FIFO with a LIFO slot, a global
// injection queue, random-victim work stealing of half a queue) and the idle protocol of cores
// (spin, then park in the kernel). A custom Policy replaces the queue decisions; the idle
// protocol stays.
//
// No-lost-wakeup protocol between an idle core P and a waker W (after Go's proc.go):
//  W1. W publishes work: a local push (holder's own queue) or an injection-queue push, whose
//      length update is a seq_cst RMW.
//  W2. W reads n_spinning and n_idle (seq_cst after a remote push). If someone spins, W leaves
//      it to them; else if some core is idle, W takes a spinning token (CAS 0 -> 1) on the idle
//      core's behalf, pops it from idle_list and clears its park_word (futex wake).
//  P1. P, out of work, has spun for its budget. Under idle_mu it enters idle_list, bumps n_idle
//      (seq_cst) and sets park_word = 1.
//  P2. P gives up its spinning token: n_spinning.fetch_sub (seq_cst RMW, a full fence).
//  P3. P re-checks every queue (injection length seq_cst, every run queue). Work seen: P leaves
//      idle_list itself (if still listed; otherwise a waker already dequeued it and P waits for
//      its park_word to clear) and searches again.
//  P4. P sleeps on park_word while it is 1 (futex, timeout = its next timer).
// Correctness: W1 < W2 and P1 < P2 < P3 are ordered by seq_cst operations. If W2 read n_idle
// before P1, then W1 precedes P3 in the total order and P3 sees the work. If W2 saw P's
// increment, W wakes a core. If W2 saw another spinner S, S's own P2 (fetch_sub) comes after
// W2's read, so S's P3 sees the work. A holder's local push skips the fence (W2 with relaxed
// loads): it cannot lose progress, the holder runs its own queue itself; it can only delay
// another core's help until the next wake-up.
#include <sched.h>

#include <chrono>

#include "runtime/activations/activations.hpp"
#include "runtime/cores/cores.hpp"
#include "runtime/core/check.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "runtime/io/reactor.hpp"
#include "runtime/sync/parker.hpp"

namespace upcall::rt {

namespace {

std::uint64_t xorshift(std::uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

inline void cpu_relax() { __builtin_ia32_pause(); }

}  // namespace

void RuntimeImpl::push_local_overflow(Core* c, Fiber* f) {
  RuntimeImpl* rt = this;
  Fiber* batch[RunQueue::kCapacity / 2 + 1];
  const std::uint32_t n = c->rq.pop_batch(batch, RunQueue::kCapacity / 2);
  batch[n] = f;
  for (std::uint32_t i = 0; i < n; ++i) batch[i]->next = batch[i + 1];
  rt->inject.push_chain(batch[0], batch[n], n + 1);
}

namespace {
void push_local(RuntimeImpl* rt, Core* c, Fiber* f) { rt->push_local(c, f); }

// Holder only: moves up to a share of the injection queue into c's queue; returns one to run.
Fiber* take_injected(RuntimeImpl* rt, Core* c) {
  const std::size_t len = rt->inject.size_relaxed();
  if (len == 0) return nullptr;
  std::size_t want = len / rt->cores.size() + 1;
  if (want > RunQueue::kCapacity / 2) want = RunQueue::kCapacity / 2;
  std::size_t n = 0;
  Fiber* f = rt->inject.pop_batch(want, &n);
  if (!f) return nullptr;
  Fiber* rest = f->next;
  while (rest) {
    Fiber* nx = rest->next;
    push_local(rt, c, rest);
    rest = nx;
  }
  return f;
}

}  // namespace

void RuntimeImpl::push_prio(Core* c, Fiber* f) {
  c->prio.push(f, load_relaxed(f->priority));
  c->fast_policy = false;  // the holder's picks now go through next_local_prio
}

Fiber* RuntimeImpl::next_local_prio(Core* c) {
  // The fairness turn of the fast path (which counts in next_local).
  if ((++c->tick % kFairnessTick) == 0) {
    if (__builtin_expect(!c->enabled.load(std::memory_order_relaxed), 0)) {
      drain_core(c);  // out of the budget (runtime/cores): its fibers go to the other cores
      return nullptr;
    }
    maybe_check_congestion();
    if (c->reactor) io_poll(c);  // batched submission and completions (runtime/io)
    if (!c->timers.empty()) expire_timers(c, now_ns());
    if (Fiber* f = take_injected(this, c)) push_local(c, f);
  }
  if (c->prio.size_hint() == 0) {
    // Only the holder pushes there, so empty stays empty: back to the fast path.
    c->fast_policy = true;
    return next_local_fast(c);
  }
  if (Fiber* f = c->prio.pop(1)) return f;  // above the default priority
  if (Fiber* f = next_local_fast(c)) return f;
  return c->prio.pop();  // below it
}

bool RuntimeImpl::yield_should_switch(Core* c, Fiber* self) {
  if (policy) return true;
  int best = c->prio.top_priority();
  if (best < 0 && (!c->rq.empty_hint() || c->lifo.load(std::memory_order_relaxed))) best = 0;
  return best >= load_relaxed(self->priority);
}

void RuntimeImpl::make_ready(Fiber* f, TaskEvent why, Core* here, bool lifo) {
  if (policy) {
    policy->enqueue(here ? here->index : -1, TaskRef(f), why);
    policy_pending.fetch_add(1, std::memory_order_seq_cst);  // W1 for the policy's queues
    wake_idle_core(true);
    return;
  }
  if (!here) {
    inject.push(f);  // seq_cst length update: W1
    wake_idle_core(true);
    return;
  }
  if (why == TaskEvent::task_wakeup && lifo && load_relaxed(f->priority) == 0) {
    // acq_rel: release publishes f to a thief's exchange; acquire takes over the displaced one.
    Fiber* prev = here->lifo.exchange(f, std::memory_order_acq_rel);
    if (prev) push_local(here, prev);
  } else {
    push_local(here, f);
  }
  // With congestion grants on (runtime/cores) a local push wakes nobody: the holder runs it,
  // and a congestion check grants a core if it waits longer than one interval.
  if (eager_wake && n_idle.load(std::memory_order_relaxed) != 0 &&
      n_spinning.load(std::memory_order_relaxed) == 0)
    wake_idle_core(false);
}

Fiber* RuntimeImpl::next_local_slow(Core* c) {
  if (policy) {
    // Timers and I/O get their turn even while the policy always has a task.
    if ((++c->tick % kFairnessTick) == 0) {
      if (!c->enabled.load(std::memory_order_relaxed)) return nullptr;  // out of the budget
      maybe_check_congestion();
      if (c->reactor) io_poll(c);
      if (!c->timers.empty()) expire_timers(c, now_ns());
    }
    TaskRef t = policy->pick_next(c->index);
    if (t) policy_pending.fetch_sub(1, std::memory_order_relaxed);
    return static_cast<Fiber*>(t.raw());
  }
  if (!c->fast_policy) return next_local_prio(c);  // fibers of non-default priority queued
  // Every kFairnessTick-th decision: the budget, congestion, I/O, timers and the injection
  // queue get a turn.
  if (__builtin_expect(!c->enabled.load(std::memory_order_relaxed), 0)) {
    drain_core(c);  // out of the budget (runtime/cores): its fibers go to the other cores
    return nullptr;
  }
  maybe_check_congestion();
  if (c->reactor) io_poll(c);  // batched submission and completions (runtime/io)
  if (!c->timers.empty()) expire_timers(c, now_ns());
  if (Fiber* f = take_injected(this, c)) {
    // Fairness: the injected fiber goes behind the local ones it displaced in time.
    push_local(c, f);
  }
  return next_local_fast(c);
}

void RuntimeImpl::expire_timers(Core* c, std::int64_t now) {
  const std::size_t before = c->timers.size();
  // Not through the LIFO slot: fibers due together run in deadline order.
  const std::size_t fired = c->timers.expire(now, [&](Fiber* f) { unpark_fiber(f, false); });
  const std::size_t removed = before - c->timers.size();
  if (removed) timers_armed.fetch_sub(static_cast<std::int64_t>(removed), std::memory_order_relaxed);
  if (fired) bump(c->counters.timers_fired, fired);
}

Fiber* RuntimeImpl::find_work(Core* c) {
  if (__builtin_expect(!c->enabled.load(std::memory_order_relaxed), 0)) {
    // Out of the budget (runtime/cores): no fiber runs here; idle() waits in disabled_wait.
    if (c->reactor) io_poll(c);
    if (!policy) drain_core(c);
    return nullptr;
  }
  maybe_check_congestion();
  if (c->reactor) io_poll(c);  // submit what fibers prepared, dispatch completions
  if (Fiber* f = next_local(c)) return f;
  if (!c->timers.empty() && c->timers.next_deadline() <= now_ns()) {
    expire_timers(c, now_ns());
    if (Fiber* f = next_local(c)) return f;
  }
  if (policy) {
    TaskRef t = policy->steal(c->index);
    if (t) policy_pending.fetch_sub(1, std::memory_order_relaxed);
    return static_cast<Fiber*>(t.raw());
  }
  if (Fiber* f = take_injected(this, c)) return f;
  // Steal: start at a random victim, take half its queue, or its LIFO slot.
  const std::size_t n = cores.size();
  if (n < 2) return nullptr;
  const std::size_t start = xorshift(c->rng) % n;
  for (std::size_t i = 0; i < n; ++i) {
    Core* v = cores[(start + i) % n].get();
    if (v == c) continue;
    // A victim's fibers above the default priority first (thieves take the highest first).
    if (v->prio.size_hint() != 0) {
      if (Fiber* f = v->prio.pop(1)) {
        bump(c->counters.steals);
        bump(c->counters.stolen_fibers);
        return f;
      }
    }
    std::uint32_t taken = 0;
    if (Fiber* f = v->rq.steal_into(c->rq, &taken)) {
      bump(c->counters.steals);
      bump(c->counters.stolen_fibers, taken);
      return f;
    }
    if (v->lifo.load(std::memory_order_relaxed)) {
      if (Fiber* f = v->lifo.exchange(nullptr, std::memory_order_acq_rel)) {
        bump(c->counters.steals);
        bump(c->counters.stolen_fibers);
        return f;
      }
    }
    if (v->prio.size_hint() != 0) {
      if (Fiber* f = v->prio.pop()) {
        bump(c->counters.steals);
        bump(c->counters.stolen_fibers);
        return f;
      }
    }
  }
  return nullptr;
}

Core* RuntimeImpl::pop_idle_core() {
  std::lock_guard<std::mutex> lock(idle_mu);
  if (idle_list.empty()) return nullptr;
  Core* target = idle_list.back();
  idle_list.pop_back();
  target->idle_listed = false;
  n_idle.fetch_sub(1, std::memory_order_seq_cst);
  return target;
}

void RuntimeImpl::unlist_idle_locked(Core* c) {
  c->idle_listed = false;
  for (auto it = idle_list.begin(); it != idle_list.end(); ++it)
    if (*it == c) {
      idle_list.erase(it);
      break;
    }
  n_idle.fetch_sub(1, std::memory_order_seq_cst);
}

void RuntimeImpl::wake_idle_core(bool remote) {
  if (remote) {
    if (n_spinning.load(std::memory_order_seq_cst) != 0) return;
    if (n_idle.load(std::memory_order_seq_cst) == 0) return;
  }
  int zero = 0;
  // Take a spinning token for the core we wake, so concurrent wakers do not wake a second one.
  if (!n_spinning.compare_exchange_strong(zero, 1, std::memory_order_seq_cst)) return;
  Core* target = pop_idle_core();
  if (!target) {
    n_spinning.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  if (Core* here = current_core()) bump(here->counters.wakeups_sent);
  // release: pairs with the woken core's acquire load of park_word (P4).
  target->park_word.store(0, std::memory_order_release);
  if (target->reactor)
    io_wake(target);  // it sleeps in its ring (runtime/io/reactor.cpp, steps 1-4)
  else
    futex_wake(&target->park_word, 1);
}

void RuntimeImpl::wake_all_cores() {
  std::lock_guard<std::mutex> lock(idle_mu);
  for (auto& c : cores) {
    c->park_word.store(0, std::memory_order_release);
    futex_wake(&c->park_word, 1);
    if (c->reactor) io_wake(c.get());
  }
}

namespace {
// P3: is there anything a parked core should wake up for?
bool work_visible(RuntimeImpl* rt, Core* self) {
  if (rt->inject.size() != 0) return true;
  if (rt->policy && rt->policy_pending.load(std::memory_order_seq_cst) > 0) return true;
  for (auto& c : rt->cores) {
    if (!c->rq.empty_hint()) return true;
    if (c->prio.size_hint() != 0) return true;
    if (c.get() != self && c->lifo.load(std::memory_order_seq_cst)) return true;
  }
  return false;
}

}  // namespace

void RuntimeImpl::stop_spinning(Core* c) {
  RuntimeImpl* rt = this;
  if (!c->spinning) return;
  c->spinning = false;
  // Go's resetspinning: the last spinner that found work makes sure someone else looks at the
  // rest, when there is visibly more.
  // With congestion grants on, local work waits for a check instead (runtime/cores); remote
  // work (the injection queue) keeps the rule, since its wakers relied on this spinner (W2).
  if (rt->n_spinning.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
      ((rt->eager_wake && !c->rq.empty_hint()) || rt->inject.size() != 0))
    rt->wake_idle_core(false);
}

bool RuntimeImpl::reserve_poll_lower(Core* c) {
  std::lock_guard<std::mutex> lock(idle_mu);
  if (c->poll_lowered) return true;
  if (n_idle.load(std::memory_order_relaxed) + n_poll_lowered + 1 > n_enabled - min_cores)
    return false;  // min_cores cores keep polling at their normal policy
  c->poll_lowered = true;
  ++n_poll_lowered;
  return true;
}

void RuntimeImpl::end_poll_lower(Core* c) {
  std::lock_guard<std::mutex> lock(idle_mu);
  if (!c->poll_lowered) return;
  c->poll_lowered = false;
  --n_poll_lowered;
}

bool RuntimeImpl::idle(Activation* a, Core* c) {
  note_grant_outcome(c, false);  // granted, but the work was gone: a wasted grant
  if (!c->enabled.load(std::memory_order_relaxed)) return disabled_wait(a, c);
  if (!c->spinning) {
    c->spinning = true;
    n_spinning.fetch_add(1, std::memory_order_seq_cst);
  }
  // Spin phase: poll for work without sleeping. A core kept awake by the budget's min_cores
  // (`reserved`) spins at its normal policy and re-tries parking now and then; poll mode drops
  // to SCHED_IDLE after kPollLowerNs (a release: any other process gets the CPU at once) and
  // comes back to SCHED_OTHER only after the first fiber ran (finish_takeover, promote_only),
  // so no policy change sits between the decision and the running fiber.
  bool reserved = false;
  std::int64_t lower_retry_ns = 0;
  for (;;) {
    const bool poll_forever = cfg.idle == IdleMode::poll && !reserved;
    const std::int64_t start = now_ns();
    const std::int64_t spin_until =
        start + (reserved ? kReservedRecheckNs : static_cast<std::int64_t>(cfg.spin_us) * 1000);
    for (unsigned iter = 0;; ++iter) {
      if (stopped.load(std::memory_order_acquire)) {
        stop_spinning(c);
        return false;
      }
      if (!c->rq.empty_hint() || c->lifo.load(std::memory_order_relaxed) ||
          inject.size_relaxed() != 0 ||
          (policy && policy_pending.load(std::memory_order_relaxed) > 0) ||
          (iter % 8 == 0 && work_visible(this, c)) ||
          (c->reactor && iter % 8 == 0 && io_ready(c)) ||
          (!c->timers.empty() && c->timers.next_deadline() <= now_ns())) {
        stop_spinning(c);
        if (c->released.load(std::memory_order_relaxed)) {
          // A SCHED_IDLE poller takes its core back: a grant decided here.
          end_poll_lower(c);
          c->released.store(false, std::memory_order_relaxed);
          c->grant_ns.store(now_ns(), std::memory_order_relaxed);
          c->alloc.grants.fetch_add(1, std::memory_order_relaxed);
          a->pending_promotion = true;
          a->promote_only = true;
        }
        return true;
      }
      if (iter % 16 == 0) {
        if (!c->enabled.load(std::memory_order_relaxed)) return disabled_wait(a, c);
        maybe_check_congestion();
        const std::int64_t now = now_ns();
        if (!poll_forever) {
          if (now >= spin_until) break;
        } else if (!c->released.load(std::memory_order_relaxed) && poll_can_lower &&
                   now - start >= kPollLowerNs && now >= lower_retry_ns) {
          if (!reserve_poll_lower(c)) {
            lower_retry_ns = now + kReservedRecheckNs;  // min_cores: ask idle_mu now and then
          } else if (set_sched_idle(a, true) == 0) {
            c->released.store(true, std::memory_order_relaxed);
            bump(c->alloc.releases);
          } else {
            end_poll_lower(c);
          }
        }
      }
      cpu_relax();
      if (poll_forever && iter % 1024 == 1023) sched_yield();
    }
    // P1, unless the core left the budget or parking would leave fewer than min_cores awake.
    bool disabled = false;
    {
      std::lock_guard<std::mutex> lock(idle_mu);
      if (!c->enabled.load(std::memory_order_relaxed)) {
        disabled = true;
      } else if (n_idle.load(std::memory_order_relaxed) + 1 > n_enabled - min_cores) {
        reserved = true;
        continue;
      } else {
        c->park_word.store(1, std::memory_order_relaxed);
        c->idle_listed = true;
        idle_list.push_back(c);
        n_idle.fetch_add(1, std::memory_order_seq_cst);
      }
    }
    if (disabled) return disabled_wait(a, c);
    break;
  }
  c->released.store(true, std::memory_order_relaxed);
  bump(c->alloc.releases);
  // P2.
  c->spinning = false;
  n_spinning.fetch_sub(1, std::memory_order_seq_cst);
  // P3.
  bool leave = work_visible(this, c) || (c->reactor && io_ready(c)) ||
               stopped.load(std::memory_order_acquire);
  bump(c->counters.parks);
  for (;;) {
    if (leave) {
      bool self_removed = false;
      {
        std::lock_guard<std::mutex> lock(idle_mu);
        if (c->idle_listed) {
          unlist_idle_locked(c);
          c->park_word.store(0, std::memory_order_relaxed);
          self_removed = true;
        }
      }
      if (self_removed) {
        // Search again with our own spinning token.
        c->spinning = true;
        n_spinning.fetch_add(1, std::memory_order_seq_cst);
        c->released.store(false, std::memory_order_relaxed);
        return !stopped.load(std::memory_order_acquire);
      }
      // A waker dequeued us and is about to clear park_word; it handed us its token.
      while (c->park_word.load(std::memory_order_acquire) != 0) cpu_relax();
      c->spinning = true;
      c->released.store(false, std::memory_order_relaxed);
      return !stopped.load(std::memory_order_acquire);
    }
    // P4: sleep until woken, or until the next timer of this core is due.
    std::int64_t timeout = -1;
    if (!c->timers.empty()) {
      timeout = c->timers.next_deadline() - now_ns();
      if (timeout <= 0) {
        leave = true;
        continue;
      }
    }
    // An intentional wait: marked first, so the standby sleeps instead of taking it for a
    // block (it is inside the loop's region anyway, so it would only be refused).
    if (c->reactor) {
      // Sleep in the ring (or epoll) instead: completions wake it too. Marked inside.
      if (c->park_word.load(std::memory_order_acquire) == 1) io_park(c, timeout);
    } else {
      holder_parking(a);
      futex_wait(&c->park_word, 1, timeout);
      holder_unparked(a);
    }
    if (c->park_word.load(std::memory_order_acquire) == 0) {
      c->released.store(false, std::memory_order_relaxed);
      c->spinning = true;  // the waker's token (or shutdown's wake, checked by the caller)
      if (stopped.load(std::memory_order_acquire)) {
        // Shutdown cleared park_word without handing a token over.
        c->spinning = false;
        std::lock_guard<std::mutex> lock(idle_mu);
        if (c->idle_listed) {
          unlist_idle_locked(c);
        }
        return false;
      }
      return true;
    }
    // Timeout or spurious return: leave when a timer is due, else sleep again.
    if (!c->timers.empty() && c->timers.next_deadline() <= now_ns()) leave = true;
    // I/O completed on this core (the epoll backend dispatches while it waits).
    if (c->reactor && (io_ready(c) || !c->rq.empty_hint() || c->lifo.load(std::memory_order_relaxed)))
      leave = true;
    if (stopped.load(std::memory_order_acquire)) leave = true;
  }
}

}  // namespace upcall::rt
