// runtime/context/stack_pool.hpp: fiber stack memory. Carves stacks out of large anonymous
// slabs; each stack has one guard page below it, installed with madvise(MADV_GUARD_INSTALL)
// (Linux >= 6.13: no extra VMA per stack) or, on older kernels, mprotect(PROT_NONE) (two VMAs
// per stack, so the number of stacks is capped by vm.max_map_count: the budget is stated in
// the error). Stacks are never returned to the kernel while the pool lives; recycling them is
// the fiber pool's job (runtime/core/fiber_pool.hpp). Slab growth takes a mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace upcall::rt {

class StackPool {
 public:
  enum class Guard { madvise, mprotect };

  StackPool() = default;
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  // Sets the usable size (rounded up to whole pages) and probes the guard mechanism.
  void init(std::size_t usable_size);

  // Maps a slab and appends the bases of its new slots to `out`. A slot is
  // [base, base + page) guard, then [base + page, base + slot_size()) usable stack.
  // Returns 0 or a negative errno (-ENOMEM when mmap fails or the mprotect budget is spent).
  int grow(std::vector<char*>& out);

  std::size_t page_size() const { return page_; }
  std::size_t slot_size() const { return slot_; }
  std::size_t usable_size() const { return slot_ - page_; }
  Guard guard() const { return guard_; }
  const char* guard_name() const { return guard_ == Guard::madvise ? "madvise" : "mprotect"; }
  // Stacks that fit under the mprotect budget (0 = no budget, madvise mode).
  std::size_t mprotect_budget() const { return budget_; }
  std::size_t slots_mapped() const;
  // True when `addr` lies in the guard page of some slot. Async-signal-safe (reads an
  // append-only table published with release stores).
  bool is_guard_address(const void* addr) const;

 private:
  struct Slab {
    char* base;
    std::size_t bytes;
  };
  std::size_t page_ = 4096;
  std::size_t slot_ = 0;
  std::size_t slots_per_slab_ = 0;
  Guard guard_ = Guard::madvise;
  std::size_t budget_ = 0;
  mutable std::mutex mu_;       // guards slabs_ and slots_ growth
  std::vector<Slab> slabs_;     // guarded by mu_
  std::size_t slots_ = 0;       // guarded by mu_
  // Signal-handler view: fixed-capacity table, entries published before count (release).
  static constexpr std::size_t kMaxSlabs = 1 << 16;
  Slab* sig_slabs_ = nullptr;   // mmapped array of kMaxSlabs
  std::size_t sig_count_ = 0;   // atomic via __atomic builtins: writer mu_, readers any
};

}  // namespace upcall::rt
