// runtime/task_api/monitor.cpp: the task monitor (LOS_TaskInfoMonitor) and per-task run-time
// accounting. The monitor walks the runtime's slot table (every fiber slot ever built,
// runtime/core/slot_table.hpp), so spawning registers nothing: its whole cost is here, per
// slot, when someone asks. Each row is read seqlock-style without taking a reference:
//  1. g1 = generation (acquire); refs == 0 means a free slot: skipped;
//  2. the fields, with relaxed atomic loads (their writers store them relaxed, fiber.hpp);
//  3. an acquire fence, g2 = generation (relaxed); g1 != g2 means the slot was reused while we
//     read (alloc_fiber bumps the generation, then a release fence, then rewrites the fields;
//     the fence pair makes a reader that saw a new field see the new generation): retried once,
//     then skipped.
// A row is therefore one life of one task; fields of a running task may be a moment apart.
#include <thread>

#include "runtime/task_api/task_ops.hpp"

namespace upcall::rt {

void los_fill_info(Fiber* f, los::TaskInfo& out);  // task_api.cpp

double los_ns_per_cycle() noexcept {
  // Calibrated once against CLOCK_MONOTONIC over ~5 ms (the TSC is invariant on the x86-64
  // machines we run on; the rate only scales run_ns).
  static const double ns_per_cycle = [] {
    const std::int64_t t0 = now_ns();
    const std::uint64_t c0 = __builtin_ia32_rdtsc();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const std::int64_t t1 = now_ns();
    const std::uint64_t c1 = __builtin_ia32_rdtsc();
    return c1 > c0 ? static_cast<double>(t1 - t0) / static_cast<double>(c1 - c0) : 0.0;
  }();
  return ns_per_cycle;
}

namespace {
// One seqlock read of slot f; false when the slot is free or was reused under us twice.
bool read_row(Fiber* f, los::TaskInfo& out) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    // acquire: pairs with alloc_fiber's release fence (after its generation bump).
    const std::uint32_t g1 = f->generation.load(std::memory_order_acquire);
    if (f->refs.load(std::memory_order_acquire) == 0) return false;
    los_fill_info(f, out);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (f->generation.load(std::memory_order_relaxed) == g1) {
      out.id = los::TaskId((static_cast<std::uint64_t>(f->slot_index) + 1) << 32 | g1);
      return true;
    }
  }
  return false;
}
}  // namespace

}  // namespace upcall::rt

namespace upcall::los {

std::size_t task_monitor(Runtime& r, TaskInfo* out, std::size_t cap) {
  rt::RuntimeImpl* impl = r.impl();
  const std::uint32_t n = impl->slot_table.size();
  std::size_t seen = 0;
  TaskInfo row;
  for (std::uint32_t i = 0; i < n; ++i) {
    if (!rt::read_row(impl->slot_table.at(i), row)) continue;
    if (seen < cap) out[seen] = row;
    ++seen;
  }
  return seen;
}

std::vector<TaskInfo> task_monitor(Runtime& r) {
  std::vector<TaskInfo> rows(r.impl()->slot_table.size() + 16);
  for (;;) {
    const std::size_t n = task_monitor(r, rows.data(), rows.size());
    if (n <= rows.size()) {
      rows.resize(n);
      return rows;
    }
    rows.resize(n + 16);  // more slots than when we sized it: read again
  }
}

void set_run_time_accounting(Runtime& r, bool on) {
  if (on) (void)rt::los_ns_per_cycle();  // calibrate now, not in the first monitor call
  for (auto& c : r.impl()->cores) c->account_run_time.store(on, std::memory_order_relaxed);
}

}  // namespace upcall::los
