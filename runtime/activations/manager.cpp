// runtime/activations/manager.cpp: the runtime's manager thread. It does the slow work that
// must stay off the takeover path:
//  - replenishment: a core left without a standby after a takeover (no spare to appoint) gets
//    a new thread here (pthread_create and its stack mmap never happen on the takeover path);
//  - the fallback watchdog (no BPF): while a core is busy, every kWatchdogPeriodNs it checks
//    holders that are in user code (region bit clear) and have not entered the runtime since
//    the last look (Core::heartbeat unchanged); such a holder's thread state is read from
//    /proc/self/task/<tid>/stat, and S or D hands the core to a normal-priority spare, as Go's
//    sysmon retakes a P from a thread stuck in a syscall.
// It sleeps on manager_word when there is nothing to watch.
#include <cerrno>
#include <thread>

#include "runtime/activations/activations.hpp"
#include "runtime/activations/backend.hpp"
#include "runtime/core/runtime_impl.hpp"

namespace upcall::rt {

namespace {
constexpr std::int64_t kWatchdogPeriodNs = 100'000;    // 100 us, as the brief asks
constexpr std::int64_t kProcfsRecheckNs = 1'000'000;   // a running holder is re-read every 1 ms

// Fallback takeover of core c, whose holder h looks blocked. Returns true on success.
bool watchdog_takeover(RuntimeImpl* rt, Core* c, std::uintptr_t w, Activation* h,
                       std::uint32_t prev_state, std::int64_t now) {
  Activation* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(c->spare_mu);
    if (!c->spares.empty()) {
      p = c->spares.back();
      c->spares.pop_back();
      p->listed_spare = false;
    }
  }
  if (!p) {
    if (!rt->reserve_thread()) {
      c->act.no_standby.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    p = rt->new_activation(c);
    p->role = Role::spare;
    try {
      rt->start_thread(p, /*reserved=*/true);
    } catch (...) {
      return false;
    }
    // The new thread lists itself as a spare; take it on the next round.
    return false;
  }
  h->blocked_since_ns.store(c->wd_since_ns, std::memory_order_relaxed);
  h->blocked_state.store(prev_state, std::memory_order_relaxed);

  std::uintptr_t expected = w;
  if (!c->owner.compare_exchange_strong(expected,
                                        reinterpret_cast<std::uintptr_t>(p) | Core::kInRegion,
                                        std::memory_order_acq_rel, std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> lock(c->spare_mu);
    c->spares.push_back(p);
    p->listed_spare = true;
    return false;
  }
  rt->hist_detect.record(now - c->wd_since_ns);
  c->act.blocks.fetch_add(1, std::memory_order_relaxed);
  c->act.takeovers.fetch_add(1, std::memory_order_relaxed);
  rt->blocking_inflight.fetch_add(1, std::memory_order_acq_rel);
  p->takeover_ns = c->wd_since_ns;
  p->wake_word.store(kWakeActive, std::memory_order_release);
  futex_wake(&p->wake_word, 1);
  return true;
}

// One watchdog pass. Returns true when some core is busy (keep the short period).
bool watchdog_pass(RuntimeImpl* rt) {
  bool busy = false;
  const std::int64_t now = now_ns();
  for (auto& cp : rt->cores) {
    Core* c = cp.get();
    if (!c->busy.load(std::memory_order_relaxed)) continue;
    busy = true;
    const std::uintptr_t w = c->owner.load(std::memory_order_acquire);
    const std::uint64_t hb = c->heartbeat.load(std::memory_order_relaxed);
    if ((w & Core::kInRegion) || hb != c->wd_heartbeat || w != c->wd_owner) {
      c->wd_heartbeat = hb;
      c->wd_owner = w;
      c->wd_since_ns = now;
      c->wd_checked_ns = 0;
      continue;
    }
    if (now - c->wd_since_ns < kWatchdogPeriodNs) continue;
    if (c->wd_checked_ns && now - c->wd_checked_ns < kProcfsRecheckNs) continue;
    c->wd_checked_ns = now;
    Activation* h = reinterpret_cast<Activation*>(w);
    const int slot = h->slot.load(std::memory_order_acquire);
    StatusView st;
    if (slot < 0 || rt->backend->read(static_cast<std::uint32_t>(slot), &st) != 0) continue;
    if (st.state != ThreadRunState::blocked || !is_block_state(st.prev_state)) continue;
    watchdog_takeover(rt, c, w, h, st.prev_state, now);
  }
  return busy;
}
}  // namespace

void RuntimeImpl::poke_manager() noexcept {
  if (manager_word.exchange(1, std::memory_order_acq_rel) == 0) futex_wake(&manager_word, 1);
}

void RuntimeImpl::manager_main() {
  for (;;) {
    if (stopped.load(std::memory_order_acquire)) return;
    // Reset before the pass: a poke during the pass makes the wait below return at once.
    manager_word.store(0, std::memory_order_seq_cst);
    // Replenish standbys (bpf mode): a core without one after a takeover gets a new thread.
    if (standby_mode) {
      for (auto& cp : cores) {
        Core* c = cp.get();
        if (c->standby.load(std::memory_order_acquire)) continue;
        if (!reserve_thread()) {
          c->act.no_standby.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        Activation* s = new_activation(c);
        Activation* none = nullptr;
        if (!c->standby.compare_exchange_strong(none, s, std::memory_order_acq_rel)) {
          thread_count.fetch_sub(1, std::memory_order_relaxed);  // unused reservation
          continue;
        }
        s->role = Role::standby;
        bump(c->counters.spares_created);
        try {
          start_thread(s, /*reserved=*/true);
        } catch (...) {
          c->standby.store(nullptr, std::memory_order_release);
        }
      }
    }
    bool busy = false;
    if (fallback_mode) busy = watchdog_pass(this);
    if (busy) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(kWatchdogPeriodNs));
    } else {
      // Idle: sleep until poked (a takeover without a standby, shutdown) or, in fallback
      // mode, for ten periods to notice cores that became busy.
      futex_wait(&manager_word, 0, fallback_mode ? 10 * kWatchdogPeriodNs : -1);
    }
  }
}

}  // namespace upcall::rt
