// runtime/core/fiber.hpp: the fiber control block. A Fiber lives at the top of its own stack
// slot and is constructed once per slot; it is recycled with the slot, never destroyed while
// the runtime lives (so a stale pointer held by a timer entry stays readable, and the
// generation counters below stay monotonic across reuse). States are written as ownership
// (DESIGN.md "Entities"): whoever owns a fiber may touch its owner-only fields.
//
//   Ready    a run queue (local ring, LIFO slot, injection queue, or the policy) owns it
//   Running  the kernel thread executing it owns it
//   Waiting  a wait object owns it: a JoinHandle's join word, a core's timer heap, a sync object
//   Blocking it runs on a kernel thread that gave its core away (upcall::blocking)
//   Done     finished; freed when the last reference is dropped
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "runtime/context/context.hpp"
#include "runtime/context/eh_state.hpp"
#include "upcall/detail/spawn_raw.hpp"

namespace upcall::rt {

class RuntimeImpl;

enum class FiberState : std::uint8_t { Init, Ready, Running, Waiting, Blocking, Done };

// Why a fiber waits (Go's waitReason): shown by monitors and in leak reports.
enum class WaitReason : std::uint8_t { None, Join, Sleep, Sync, Io, Spare, Suspend, Delay };

// Park states of the permit protocol (runtime/sync/parker.cpp).
enum ParkState : std::uint32_t {
  kParkRunning = 0,   // not parked, no permit
  kParkNotified = 1,  // not parked, a permit is pending (the next park returns at once)
  kParkParked = 2,    // parked: context saved, not on any run queue
};

struct alignas(64) Fiber {
  // --- Context: written by the resumed side right after this fiber switched away
  // (finish_switch), read by the thread that resumes it. Handed over through the run queue
  // (release push / acquire pop) or the park protocol, never touched concurrently.
  RawContext ctx = nullptr;
  SanitizerIdentity san;
  EhState eh;  // the C++ exception state while suspended (eh_state.hpp)

  // --- Intrusive link. Owned by whichever queue holds the fiber (injection queue, wait list,
  // free list, a custom policy's list through TaskRef::link()).
  Fiber* next = nullptr;
  void* policy_link = nullptr;

  // --- Permit-based park/unpark (ParkState). Atomic: the fiber itself and any waker.
  std::atomic<std::uint32_t> park_state{kParkRunning};
  // References: one for the running fiber, one for the JoinHandle. Atomic, acq_rel; the thread
  // that drops the last one frees the fiber.
  std::atomic<std::uint32_t> refs{0};
  // Join word: 0 = running, no joiner; 1 = done; otherwise a Waker (see parker.hpp) of the one
  // joiner. Writers: the joiner (CAS 0 -> waker) and the fiber at exit (exchange -> 1).
  std::atomic<std::uintptr_t> join_word{0};

  // --- Owner-only fields (the thread running it, or whoever holds it while not running).
  FiberState state = FiberState::Init;
  WaitReason wait_reason = WaitReason::None;
  bool joined = false;  // the JoinHandle consumed the result (set before the last release)
  // Nesting depth of runtime regions entered by this fiber (runtime/activations/region.hpp).
  std::uint32_t region_depth = 0;
  // Task scheduler lock depth (los::task_lock, runtime/task_api): while > 0 the fiber holds one
  // region level, its yields return at once and its parks do not switch. Owner-only.
  std::uint32_t los_lock = 0;
  // Cancellation disabled (los::NoCancelGuard, and the runtime's own waits that must not throw,
  // e.g. a condition variable's relock): while > 0 no wait delivers a pending delete. Owner-only.
  std::uint32_t los_nocancel = 0;
  // Written by the owner, or under a task pin (runtime/task_api); read by the task monitor
  // with relaxed atomic loads, so every write goes through store_relaxed() below.
  int priority = 0;
  std::uint64_t id = 0;
  // Timer generation: a timer entry fires only if its generation still matches. Monotonic for
  // the life of the slot (see file comment). Written by the fiber when it arms a timer, read
  // (relaxed) by the core that expires the entry; a stale read only causes a spurious unpark,
  // which every park loop tolerates.
  std::atomic<std::uint64_t> timer_gen{0};
  // The deadline of this fiber's pending timer entry (owner-only): a re-park with the same
  // deadline before it passed reuses the entry.
  std::int64_t armed_deadline = 0;
  alignas(8) char name[32] = {0};  // written with store_name() (the monitor copies it concurrently)

  // --- Task API (runtime/task_api/, DESIGN.md "Task API").
  // Generation of the slot: bumped (relaxed, then a release fence) by alloc_fiber before it
  // rewrites the fields, so a task id (slot, generation) never names a reused slot, and the
  // monitor's seqlock-style read (generation, fields, acquire fence, generation) detects reuse.
  std::atomic<std::uint32_t> generation{0};
  // Requests from other tasks: kLosSuspend / kLosCancel. Writers: any thread (fetch_or /
  // fetch_and, acq_rel) followed by an unpark; reader: the fiber at its cancellation points
  // (acquire), which pairs with the writer's release.
  std::atomic<std::uint32_t> los_flags{0};
  // Run-time accounting (only while enabled: los::set_run_time_accounting). in_tsc is
  // owner-only; run_cycles is written by the owner (load + store) and read by the monitor.
  std::uint64_t in_tsc = 0;
  std::atomic<std::uint64_t> run_cycles{0};
  // The core that last switched this fiber in (relaxed; read by the monitor).
  std::atomic<std::int32_t> last_core{-1};

  // --- Fixed at slot construction.
  std::uint32_t slot_index = 0;  // index in RuntimeImpl::slots (task ids)
  RuntimeImpl* rt = nullptr;
  char* slot_base = nullptr;    // guard page; the usable stack starts one page above
  char* stack_top = nullptr;    // highest usable address below this Fiber and its storage
  std::size_t stack_usable = 0;  // bytes from slot_base + page to stack_top when created

  // --- Spawned task (upcall/detail/spawn_raw.hpp). Set at create, read by the fiber and by
  // the last releaser.
  const detail::TaskVTable* vtable = nullptr;
  void* storage = nullptr;
};

inline constexpr std::uint32_t kLosSuspend = 1, kLosCancel = 2;

// Relaxed atomic stores into owner-only fields that the task monitor reads concurrently
// (std::atomic_ref: a plain mov on x86, but a data race neither in C++ nor for TSAN).
template <class T>
inline void store_relaxed(T& field, T v) noexcept {
  std::atomic_ref<T>(field).store(v, std::memory_order_relaxed);
}
template <class T>
inline T load_relaxed(T& field) noexcept {
  return std::atomic_ref<T>(field).load(std::memory_order_relaxed);
}
inline void set_state(Fiber* f, FiberState s) noexcept { store_relaxed(f->state, s); }
inline void set_wait_reason(Fiber* f, WaitReason w) noexcept { store_relaxed(f->wait_reason, w); }
// Copies `len` bytes of `src` (truncated to 31) into f->name as 8-byte relaxed atomic words.
void store_name(Fiber* f, const char* src, std::size_t len) noexcept;

inline detail::FiberHandle* to_handle(Fiber* f) { return reinterpret_cast<detail::FiberHandle*>(f); }
inline Fiber* from_handle(detail::FiberHandle* h) { return reinterpret_cast<Fiber*>(h); }

}  // namespace upcall::rt
