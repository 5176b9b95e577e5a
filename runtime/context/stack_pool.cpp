// runtime/context/stack_pool.cpp: slab mapping and guard pages for fiber stacks (see the
// header). The guard probe runs once per pool: MADV_GUARD_INSTALL (value 102, added in Linux 6.13)
// is tried on a scratch
// mapping first; EINVAL means an older kernel, and the pool falls back to mprotect.
#include "runtime/context/stack_pool.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>

namespace upcall::rt {

namespace {
#ifndef MADV_GUARD_INSTALL
constexpr int kMadvGuardInstall = 102;  // not yet in Debian 12's headers
#else
constexpr int kMadvGuardInstall = MADV_GUARD_INSTALL;
#endif

// Slabs are about this large, so a million 64 KiB stacks take ~4,000 VMAs in madvise mode.
constexpr std::size_t kSlabBytes = 16u << 20;

std::size_t read_max_map_count() {
  std::ifstream f("/proc/sys/vm/max_map_count");
  std::size_t v = 65530;
  if (f) f >> v;
  return v;
}
}  // namespace

StackPool::~StackPool() {
  for (const Slab& s : slabs_) munmap(s.base, s.bytes);
  if (sig_slabs_) munmap(sig_slabs_, kMaxSlabs * sizeof(Slab));
}

void StackPool::init(std::size_t usable_size) {
  page_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t usable = (usable_size + page_ - 1) / page_ * page_;
  slot_ = usable + page_;
  slots_per_slab_ = kSlabBytes / slot_;
  if (slots_per_slab_ == 0) slots_per_slab_ = 1;
  void* table = mmap(nullptr, kMaxSlabs * sizeof(Slab), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  sig_slabs_ = table == MAP_FAILED ? nullptr : static_cast<Slab*>(table);
  // Probe the guard mechanism on a scratch mapping, so the choice is made once, up front.
  void* probe = mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  guard_ = Guard::mprotect;
  if (probe != MAP_FAILED) {
    if (madvise(probe, page_, kMadvGuardInstall) == 0) guard_ = Guard::madvise;
    munmap(probe, 2 * page_);
  }
  if (guard_ == Guard::mprotect) {
    // Each guarded stack splits its slab mapping: two VMAs per stack. Leave room for the rest
    // of the process (libraries, heap, thread stacks).
    const std::size_t max_maps = read_max_map_count();
    budget_ = max_maps > 4096 ? (max_maps - 4096) / 2 : 1;
  }
}

int StackPool::grow(std::vector<char*>& out) {
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t n = slots_per_slab_;
  if (guard_ == Guard::mprotect) {
    if (slots_ >= budget_) return -ENOMEM;
    if (slots_ + n > budget_) n = budget_ - slots_;
  }
  if (slabs_.size() >= kMaxSlabs) return -ENOMEM;
  const std::size_t bytes = n * slot_;
  // MAP_NORESERVE: stacks are mostly untouched, do not charge their full size to overcommit.
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (mem == MAP_FAILED) return -errno;
  char* base = static_cast<char*>(mem);
  // No MADV_DONTFORK here: a fiber that calls fork() continues, in the child, on its own
  // fiber stack, which must therefore exist there (copy-on-write costs nothing until written).
  for (std::size_t i = 0; i < n; ++i) {
    char* slot = base + i * slot_;
    const int rc = guard_ == Guard::madvise ? madvise(slot, page_, kMadvGuardInstall)
                                            : mprotect(slot, page_, PROT_NONE);
    if (rc != 0) {
      const int err = errno;
      munmap(base, bytes);
      return -err;
    }
  }
  slabs_.push_back({base, bytes});
  if (sig_slabs_) {
    sig_slabs_[sig_count_] = {base, bytes};
    // Release: pairs with the acquire load in is_guard_address; the entry is complete first.
    __atomic_store_n(&sig_count_, sig_count_ + 1, __ATOMIC_RELEASE);
  }
  slots_ += n;
  for (std::size_t i = 0; i < n; ++i) out.push_back(base + i * slot_);
  return 0;
}

std::size_t StackPool::slots_mapped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slots_;
}

bool StackPool::is_guard_address(const void* addr) const {
  if (!sig_slabs_) return false;
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  const std::size_t n = __atomic_load_n(&sig_count_, __ATOMIC_ACQUIRE);
  for (std::size_t i = 0; i < n; ++i) {
    const auto lo = reinterpret_cast<std::uintptr_t>(sig_slabs_[i].base);
    if (a >= lo && a < lo + sig_slabs_[i].bytes) return (a - lo) % slot_ < page_;
  }
  return false;
}

}  // namespace upcall::rt
