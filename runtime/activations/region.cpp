// runtime/activations/region.cpp: see region.hpp.
#include "runtime/activations/region.hpp"

#include <cstring>

#include "runtime/activations/activations.hpp"
#include "runtime/core/runtime_impl.hpp"

namespace upcall::rt {

void blocking_return(Activation* a, Fiber* self);  // switch.cpp

Core* region_enter() noexcept {
  for (;;) {
    Activation* a = current_activation();
    if (!a) return nullptr;
    Fiber* f = a->current;
    Core* c = a->core;
    const std::uintptr_t w = c->owner.load(std::memory_order_relaxed);
    const bool held = (w & ~Core::kInRegion) == reinterpret_cast<std::uintptr_t>(a);
    if (!f) return held ? c : nullptr;  // the loop (always in a region) or a spare
    if (held) {
      if (f->region_depth == 0) {
        // Check and mark in one CAS: a claim (standby or watchdog) that lands between our
        // load and here makes it fail, and we take the hand-back path below. (A plain store
        // would be correct only while the claimer shares our CPU and we cannot block between
        // the load and the store; the watchdog runs on any CPU.) acquire: pairs with the
        // release of the previous region exit / hand-over.
        std::uintptr_t expected = w;
        if (!c->owner.compare_exchange_strong(expected, w | Core::kInRegion,
                                              std::memory_order_acquire,
                                              std::memory_order_relaxed))
          continue;
        f->region_depth = 1;
        if (__builtin_expect(a->pending_promotion, 0)) finish_takeover(a);
        bump(c->heartbeat);
      } else {
        ++f->region_depth;
      }
      return c;
    }
    if (a->role == Role::blocking) return nullptr;  // inside upcall::blocking: a plain thread
    // The core was taken while this fiber blocked in user code: hand it back, continue on
    // whichever thread resumes it, and enter there.
    hand_back(a, f);
  }
}

// Leaving a region is a release store: the standby's claim (an acq_rel CAS that reads this
// value) then happens-after every write the holder made to the core's owner-only state.
void region_exit() noexcept {
  Activation* a = current_activation();
  if (!a) return;
  Fiber* f = a->current;
  if (!f || f->region_depth == 0) return;
  if (--f->region_depth == 0) {
    Core* c = a->core;
    if (c->held_by(a)) c->owner.store(reinterpret_cast<std::uintptr_t>(a), std::memory_order_release);
  }
}

void region_clear_for_user() noexcept {
  Activation* a = current_activation();
  Fiber* f = a ? a->current : nullptr;
  if (!f || f->region_depth != 0) return;
  Core* c = a->core;
  if (c->held_by(a)) c->owner.store(reinterpret_cast<std::uintptr_t>(a), std::memory_order_release);
}

void hand_back(Activation* a, Fiber* f) noexcept {
  a->role = Role::returning;
  RuntimeImpl* rt = a->rt;
  const std::int64_t now = now_ns();
  // acquire: pairs with the claim's release (the CAS), which the loss we observed follows.
  const std::int64_t since = a->blocked_since_ns.load(std::memory_order_acquire);
  const std::uint32_t kstate = a->blocked_state.load(std::memory_order_relaxed);
  const std::uint64_t duration = since > 0 && now > since ? static_cast<std::uint64_t>(now - since) : 0;
  if (duration) rt->hist_block.record(static_cast<std::int64_t>(duration));
  a->core->act.handbacks.fetch_add(1, std::memory_order_relaxed);
  if (kstate & 0x2) a->core->act.blocks_d.fetch_add(1, std::memory_order_relaxed);
  BlockRecord rec;
  rec.fiber_id = f->id;
  std::memcpy(rec.fiber_name, f->name, sizeof(rec.fiber_name));
  rec.core = a->core->index;
  rec.kernel_state = kstate;
  rec.duration_ns = duration;
  rt->block_log.add(rec);
  // blocking_return switches f to this thread's loop, whose post-action puts f on the
  // injection queue; the loop then makes this thread a spare or the core's next standby.
  blocking_return(a, f);
  // Resumed on a core (another thread): the hand-back -> running latency.
  const std::int64_t back = now_ns();
  if (back > now) rt->hist_resume.record(back - now);
}

}  // namespace upcall::rt
