// runtime/core/fiber_pool.cpp: fibers and their stacks. A Fiber is built once at the top of
// its stack slot and recycled with it: a per-core cache (holder-only, no lock) in front of a
// global free list (free_mu) in front of the stack pool's slab growth. Spawning therefore costs
// no system call and no heap allocation once the pool is warm.
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "runtime/core/check.hpp"
#include "runtime/core/runtime_impl.hpp"

namespace upcall::rt {

RawContext make_fiber_context(Fiber* f, void* sp, std::size_t size);  // switch.cpp

namespace {
constexpr std::uint64_t kIdBlock = 1024;
// Process-wide, so fiber ids are unique across runtimes (this_task::id's contract).
std::atomic<std::uint64_t> g_next_fiber_id{1};  // fiber ids a core takes from the global counter at once

[[noreturn]] void throw_exhausted(const StackPool& pool, int err) {
  std::string msg = "upcall: cannot allocate a fiber stack";
  if (pool.guard() == StackPool::Guard::mprotect && pool.slots_mapped() >= pool.mprotect_budget())
    msg += " (mprotect guard budget of " + std::to_string(pool.mprotect_budget()) +
           " stacks reached: vm.max_map_count; a kernel >= 6.13 lifts it)";
  throw std::system_error(err, std::generic_category(), msg);
}
}  // namespace

Fiber* RuntimeImpl::alloc_fiber(Core* here, const detail::SpawnSpec& spec) {
  if (spec.size > stacks.usable_size() / 2)
    throw std::length_error("upcall::spawn: the callable and its result take " +
                            std::to_string(spec.size) + " bytes, more than half of a " +
                            std::to_string(stacks.usable_size() / 1024) +
                            " KiB fiber stack; capture large data by pointer or raise "
                            "UPCALL_STACK_SIZE");
  Fiber* f = nullptr;
  if (here && !here->fiber_cache.empty()) {
    f = here->fiber_cache.back();
    here->fiber_cache.pop_back();
  } else {
    std::lock_guard<std::mutex> lock(free_mu);
    if (free_fibers.empty()) {
      std::vector<char*> slots;
      const int rc = stacks.grow(slots);
      if (rc < 0) throw_exhausted(stacks, -rc);
      for (char* slot : slots) {
        auto* nf = ::new (slot + stacks.slot_size() - sizeof(Fiber)) Fiber();
        nf->rt = this;
        nf->slot_base = slot;
        const std::uint32_t idx = slot_table.add(nf);
        UPCALL_CHECK(idx != UINT32_MAX, "fiber slot table full");
        nf->slot_index = idx;
        free_fibers.push_back(nf);
      }
    }
    f = free_fibers.back();
    free_fibers.pop_back();
    free_count.store(free_fibers.size(), std::memory_order_relaxed);
  }
  // Storage for the callable and its result sits just below the control block.
  const std::size_t align = spec.align < 16 ? 16 : spec.align;
  auto top = reinterpret_cast<std::uintptr_t>(f);
  const std::uintptr_t storage = (top - spec.size) & ~(static_cast<std::uintptr_t>(align) - 1);
  const std::uintptr_t stack_top = storage & ~std::uintptr_t{15};
  const std::uintptr_t bottom = reinterpret_cast<std::uintptr_t>(f->slot_base) + stacks.page_size();
  // A new life for the slot: the generation first (task ids of the previous life go stale), and
  // a release fence so a monitor that reads this life's fields below also reads the new
  // generation on its re-check (seqlock; monitor.cpp).
  f->generation.store(f->generation.load(std::memory_order_relaxed) + 1,
                      std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  if (here) {
    bump(here->counters.created);
    here->counters.cached.store(here->fiber_cache.size(), std::memory_order_relaxed);
    if (here->next_id == here->id_end) {
      here->next_id = g_next_fiber_id.fetch_add(kIdBlock, std::memory_order_relaxed);
      here->id_end = here->next_id + kIdBlock;
    }
    store_relaxed(f->id, here->next_id++);  // relaxed atomic: the monitor reads it
  } else {
    offcore_created.fetch_add(1, std::memory_order_relaxed);
    store_relaxed(f->id, g_next_fiber_id.fetch_add(1, std::memory_order_relaxed));
  }
  f->storage = reinterpret_cast<void*>(storage);
  f->stack_top = reinterpret_cast<char*>(stack_top);
  f->stack_usable = stack_top - bottom;
  f->vtable = spec.vtable;
  f->next = nullptr;
  f->policy_link = nullptr;
  f->park_state.store(kParkRunning, std::memory_order_relaxed);
  f->join_word.store(0, std::memory_order_relaxed);
  set_state(f, FiberState::Init);
  set_wait_reason(f, WaitReason::None);
  f->armed_deadline = 0;
  f->region_depth = 0;
  f->los_lock = 0;
  f->los_nocancel = 0;
  f->los_flags.store(0, std::memory_order_relaxed);
  f->run_cycles.store(0, std::memory_order_relaxed);
  f->last_core.store(-1, std::memory_order_relaxed);
  f->eh = EhState{};
  f->joined = false;
  store_relaxed(f->priority, spec.priority);
  store_name(f, spec.name, spec.name ? std::strlen(spec.name) : 0);
  // The fiber's own and the JoinHandle's. release: a task pin (task_api, a CAS on refs that
  // acquires) then sees every field written above.
  f->refs.store(2, std::memory_order_release);
  // Up to the control block: the spawn storage also lies over frames of the slot's previous
  // fiber that never returned.
  sanitizer_stack_reuse(reinterpret_cast<void*>(bottom), reinterpret_cast<std::uintptr_t>(f) - bottom);
  sanitizer_identity_init(f->san, reinterpret_cast<void*>(bottom), f->stack_usable);
  f->ctx = make_fiber_context(f, reinterpret_cast<void*>(stack_top), f->stack_usable);
  return f;
}

void store_name(Fiber* f, const char* src, std::size_t len) noexcept {
  static_assert(sizeof(f->name) == 32 && alignof(Fiber) >= 8);
  if (len > sizeof(f->name) - 1) len = sizeof(f->name) - 1;
  std::uint64_t words[4] = {0, 0, 0, 0};
  if (len) std::memcpy(words, src, len);
  auto* dst = reinterpret_cast<std::uint64_t*>(f->name);
  for (int i = 0; i < 4; ++i) std::atomic_ref<std::uint64_t>(dst[i]).store(words[i], std::memory_order_relaxed);
}

void RuntimeImpl::free_fiber(Fiber* f, Core* here) noexcept {
  // A fiber still in Init was never started (its storage was never built): no dispose.
  if (f->vtable && f->state != FiberState::Init) f->vtable->dispose(f->storage, f->joined);
  f->vtable = nullptr;
  sanitizer_identity_destroy(f->san);
  if (here && here->rt == this && here->fiber_cache.size() < kFiberCacheMax) {
    here->fiber_cache.push_back(f);
    here->counters.cached.store(here->fiber_cache.size(), std::memory_order_relaxed);
    // release: pairs with live_fibers()'s acquire; the teardown above happened before.
    here->counters.freed.store(here->counters.freed.load(std::memory_order_relaxed) + 1,
                               std::memory_order_release);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(free_mu);
    free_fibers.push_back(f);
    free_count.store(free_fibers.size(), std::memory_order_relaxed);
  }
  if (here && here->rt == this)
    here->counters.freed.store(here->counters.freed.load(std::memory_order_relaxed) + 1,
                               std::memory_order_release);
  else
    offcore_freed.fetch_add(1, std::memory_order_release);
}

std::uint64_t RuntimeImpl::live_fibers() const {
  std::uint64_t created = offcore_created.load(std::memory_order_acquire);
  std::uint64_t freed = offcore_freed.load(std::memory_order_acquire);
  for (const auto& c : cores) {
    freed += c->counters.freed.load(std::memory_order_acquire);
    created += c->counters.created.load(std::memory_order_acquire);
  }
  return created > freed ? created - freed : 0;
}

std::uint64_t RuntimeImpl::stacks_in_use() const {
  std::uint64_t free = free_count.load(std::memory_order_relaxed);
  for (const auto& c : cores) free += c->counters.cached.load(std::memory_order_relaxed);
  const std::uint64_t mapped = stacks.slots_mapped();
  return mapped > free ? mapped - free : 0;
}

std::uint64_t RuntimeImpl::fibers_spawned() const {
  std::uint64_t n = offcore_created.load(std::memory_order_relaxed);
  for (const auto& c : cores) n += c->counters.created.load(std::memory_order_relaxed);
  return n;
}

std::uint64_t RuntimeImpl::fibers_finished() const {
  std::uint64_t n = 0;
  for (const auto& c : cores) n += c->counters.finished.load(std::memory_order_relaxed);
  return n;
}

void RuntimeImpl::drop_ref(Fiber* f) noexcept {
  // acq_rel: release publishes this side's last writes (e.g. `joined`), acquire makes the
  // other side's visible to whoever frees.
  if (f->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_fiber(f, current_core());
}

}  // namespace upcall::rt
