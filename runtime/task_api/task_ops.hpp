// runtime/task_api/task_ops.hpp: what the task API's files share: resolving a runtime, pinning
// a task by id (a reference that keeps its slot from being freed and reused while an operation
// looks at it), and the status bits of a fiber. Owns no state of its own.
#pragma once

#include <system_error>

#include "runtime/core/runtime_impl.hpp"
#include "upcall/runtime.hpp"
#include "upcall/task_api.hpp"

namespace upcall::rt {

// The runtime an operation acts on: the explicit one, else the calling fiber's (nullptr from a
// plain thread).
inline RuntimeImpl* los_runtime(Runtime* r) noexcept {
  if (r) return r->impl();
  Fiber* f = current_fiber();
  return f ? f->rt : nullptr;
}

inline los::TaskId los_id(Fiber* f) noexcept {
  return los::TaskId((static_cast<std::uint64_t>(f->slot_index) + 1) << 32 |
                     f->generation.load(std::memory_order_relaxed));
}

// Takes a reference on the task `id` names in `r`. Caller inside a Region (the unpin may free
// the fiber into the core's cache). On success *out holds a reference: release it with
// r->drop_ref(*out).
inline std::error_code los_pin(RuntimeImpl* r, los::TaskId id, Fiber** out) noexcept {
  if (!r) return los::errc::not_in_task;
  const std::uint64_t hi = id.value() >> 32;
  const auto gen = static_cast<std::uint32_t>(id.value());
  if (hi == 0 || gen == 0 || hi > r->slot_table.size()) return los::errc::invalid_id;
  Fiber* f = r->slot_table.at(static_cast<std::uint32_t>(hi - 1));
  std::uint32_t n = f->refs.load(std::memory_order_relaxed);
  do {
    if (n == 0) return los::errc::no_such_task;  // free: its last life ended
    // acquire: pairs with alloc_fiber's release store of refs (and the release sequence of
    // the acq_rel RMWs after it), so this life's generation and fields are visible.
  } while (!f->refs.compare_exchange_weak(n, n + 1, std::memory_order_acquire,
                                          std::memory_order_relaxed));
  const std::uint32_t now = f->generation.load(std::memory_order_relaxed);
  if (now != gen) {
    r->drop_ref(f);
    // A generation the slot never had is a made-up id; an older one is a finished task.
    return static_cast<std::int32_t>(gen - now) > 0 ? los::errc::invalid_id
                                                     : los::errc::no_such_task;
  }
  *out = f;
  return {};
}

// status:: bits from a fiber's (relaxed) state, wait reason and request flags.
inline std::uint32_t los_status(FiberState st, WaitReason w, std::uint32_t flags) noexcept {
  std::uint32_t s = 0;
  switch (st) {
    case FiberState::Init: s = los::status::init; break;
    case FiberState::Ready: s = los::status::ready; break;
    case FiberState::Running:
    case FiberState::Blocking: s = los::status::running; break;
    case FiberState::Done: return los::status::exit;
    case FiberState::Waiting:
      if (w == WaitReason::Suspend)
        s = los::status::suspend;
      else if (w == WaitReason::Delay || w == WaitReason::Sleep)
        s = los::status::delay;
      else
        s = los::status::pend;
      break;
  }
  if (flags & kLosSuspend) s |= los::status::suspend;
  if (flags & kLosCancel) s |= los::status::deleted;
  return s;
}

// Nanoseconds per TSC cycle (calibrated once, on first use).
double los_ns_per_cycle() noexcept;

}  // namespace upcall::rt
