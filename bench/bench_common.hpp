// bench/bench_common.hpp: helpers shared by the benchmark programs: a vDSO monotonic clock,
// percentiles of latency samples, CPU pinning of plain threads, raw futex calls, and RSS readers.
// It owns no benchmark; nothing here touches the runtime's internals (benchmarks use the public
// API only, as a user would).
#pragma once

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace upcall::bench {

// CLOCK_MONOTONIC through the vDSO (no syscall, ~20 ns here). steady_clock is the same clock.
inline std::int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// CPU time of the calling kernel thread (CLOCK_THREAD_CPUTIME_ID). Under load this excludes the
// time the thread waited for a CPU; only meaningful when the measured loop stays on one thread.
inline std::int64_t thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Nearest-rank percentile (p in [0, 100]) of `v`; sorts a copy. 0 for an empty vector.
inline double percentile(std::vector<std::int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size()) + 0.5);
  if (rank == 0) rank = 1;
  if (rank > v.size()) rank = v.size();
  return static_cast<double>(v[rank - 1]);
}

// Pins the calling plain thread to one CPU; returns the previous mask through `old` (if given).
inline bool pin_to_cpu(int cpu, cpu_set_t* old = nullptr) {
  if (old) sched_getaffinity(0, sizeof(*old), old);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}
inline void restore_affinity(const cpu_set_t& old) {
  pthread_setaffinity_np(pthread_self(), sizeof(old), &old);
}

inline void futex_wait(std::atomic<std::uint32_t>* w, std::uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}
inline void futex_wake(std::atomic<std::uint32_t>* w, int n) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), FUTEX_WAKE_PRIVATE, n, nullptr,
          nullptr, 0);
}

inline void pause_cpu() { __builtin_ia32_pause(); }

// Spins (without yielding or sleeping) for `ns` nanoseconds.
inline void spin_for_ns(std::int64_t ns) {
  const std::int64_t end = mono_ns() + ns;
  while (mono_ns() < end) pause_cpu();
}

// Resident set size in bytes, from /proc/self/statm (field 2, in pages).
inline std::int64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::int64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// A "Vm*:" field of /proc/self/status in KiB (VmRSS, VmPTE, ...); -1 when absent.
inline std::int64_t status_kib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(f, line))
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':')
      return std::stoll(line.substr(n + 1));
  return -1;
}

// Number of mappings (VMAs) of the process.
inline std::int64_t vma_count() {
  std::ifstream f("/proc/self/maps");
  std::string line;
  std::int64_t n = 0;
  while (std::getline(f, line)) ++n;
  return n;
}

}  // namespace upcall::bench
