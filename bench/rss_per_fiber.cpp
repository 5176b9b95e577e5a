// bench/rss_per_fiber.cpp: resident memory per idle fiber. Parks N fibers (default 100,000),
// each waiting on something that is released at the end, and divides the growth of VmRSS
// (from before the first spawn to when all N have started and parked) by N. Every
// configuration runs in its own child process (this program re-executes itself with --mode),
// so one configuration's freed memory never flatters the next one's baseline.
//
// How the fibers wait:
//   join  fiber k joins fiber k-1 (its JoinHandle is moved into k's callable); fiber 0 is a gate
//         that polls a release flag every millisecond. Releasing the gate unwinds the chain.
//   sleep every fiber sleeps until one common deadline (upcall timers), 3 s after the start.
// Rows: upcall (1 core) with the default 64 KiB stack and with 16 KiB, join and sleep; Boost.Fiber
// (fibers on the main thread) with its default stack allocator (fixedsize_stack, 128 KiB,
// malloc) and with pooled_fixedsize_stack at 16 KiB, both joined in a chain as above.
// Output: one table row per configuration. Usage: upcall_rss_per_fiber [N].
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/fiber/all.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "upcall/upcall.hpp"

namespace {

using namespace upcall::bench;

struct Sample {
  std::int64_t rss_before = 0, rss_after = 0;  // bytes
  std::int64_t pte_before = 0, pte_after = 0;  // KiB
  std::int64_t vma_before = 0, vma_after = 0;
  double spawn_ms = 0;
};

void take_before(Sample& s) {
  s.rss_before = rss_bytes();
  s.pte_before = status_kib("VmPTE");
  s.vma_before = vma_count();
}
void take_after(Sample& s) {
  s.rss_after = rss_bytes();
  s.pte_after = status_kib("VmPTE");
  s.vma_after = vma_count();
}

Sample run_upcall(long n, std::size_t stack, bool sleep_mode) {
  upcall::Options o;
  o.cores = 1;
  o.stack_size = stack;
  upcall::Runtime rt(std::move(o));
  Sample s;
  rt.block_on([&] {
    std::atomic<long> started{0};
    std::atomic<bool> release{false};
    take_before(s);
    const std::int64_t t0 = mono_ns();
    if (sleep_mode) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
      for (long i = 0; i < n; ++i)
        upcall::spawn([&started, deadline] {
          started.fetch_add(1, std::memory_order_relaxed);
          upcall::this_task::sleep_until(deadline);
        }).detach();
      while (started.load(std::memory_order_relaxed) < n) upcall::this_task::yield();
      s.spawn_ms = static_cast<double>(mono_ns() - t0) / 1e6;
      take_after(s);
      // The fibers finish at the deadline; the runtime's destructor waits for them.
      return;
    }
    auto prev = upcall::spawn([&] {
      while (!release.load(std::memory_order_relaxed))
        upcall::this_task::sleep_for(std::chrono::milliseconds(1));
    });
    for (long i = 1; i < n; ++i)
      prev = upcall::spawn([&started, h = std::move(prev)]() mutable {
        started.fetch_add(1, std::memory_order_relaxed);
        h.join();
      });
    while (started.load(std::memory_order_relaxed) < n - 1) upcall::this_task::yield();
    upcall::this_task::yield();  // the last one has parked too
    s.spawn_ms = static_cast<double>(mono_ns() - t0) / 1e6;
    take_after(s);
    release.store(true, std::memory_order_relaxed);
    prev.join();
  });
  return s;
}

template <class StackAlloc>
Sample run_boost(long n, StackAlloc salloc) {
  Sample s;
  std::atomic<long> started{0};
  bool release = false;
  take_before(s);
  const std::int64_t t0 = mono_ns();
  boost::fibers::fiber prev(std::allocator_arg, salloc, [&] {
    while (!release) boost::this_fiber::sleep_for(std::chrono::milliseconds(1));
  });
  for (long i = 1; i < n; ++i)
    prev = boost::fibers::fiber(std::allocator_arg, salloc,
                                [&started, h = std::move(prev)]() mutable {
                                  started.fetch_add(1, std::memory_order_relaxed);
                                  h.join();
                                });
  while (started.load(std::memory_order_relaxed) < n - 1) boost::this_fiber::yield();
  boost::this_fiber::yield();
  s.spawn_ms = static_cast<double>(mono_ns() - t0) / 1e6;
  take_after(s);
  release = true;
  prev.join();
  return s;
}

struct Mode {
  const char* name;
  const char* label;
};
const Mode kModes[] = {
    {"upcall64-join", "upcall, 64 KiB stack (default), parked in join"},
    {"upcall16-join", "upcall, 16 KiB stack, parked in join"},
    {"upcall64-sleep", "upcall, 64 KiB stack (default), sleep_until (timer)"},
    {"boost-default-join", "Boost.Fiber, default fixedsize_stack (128 KiB), join"},
    {"boost-pooled16-join", "Boost.Fiber, pooled_fixedsize_stack 16 KiB, join"},
};

int run_mode(const std::string& mode, long n) {
  Sample s;
  if (mode == "upcall64-join")
    s = run_upcall(n, 64 * 1024, false);
  else if (mode == "upcall16-join")
    s = run_upcall(n, 16 * 1024, false);
  else if (mode == "upcall64-sleep")
    s = run_upcall(n, 64 * 1024, true);
  else if (mode == "boost-default-join")
    s = run_boost(n, boost::fibers::fixedsize_stack());
  else if (mode == "boost-pooled16-join")
    s = run_boost(n, boost::fibers::pooled_fixedsize_stack(16 * 1024));
  else
    return 2;
  // One machine-readable line for the parent.
  std::printf("%lld %lld %lld %.1f\n", static_cast<long long>(s.rss_after - s.rss_before),
              static_cast<long long>(s.pte_after - s.pte_before),
              static_cast<long long>(s.vma_after - s.vma_before), s.spawn_ms);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  long n = 100000;
  std::string mode;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--mode=", 7) == 0)
      mode = argv[i] + 7;
    else
      n = std::atol(argv[i]);
  }
  if (n < 2) n = 2;
  if (!mode.empty()) return run_mode(mode, n);

  std::printf("idle fibers: N = %ld; RSS delta = VmRSS(all N parked) - VmRSS(before the first "
              "spawn)\n\n",
              n);
  std::printf("| configuration | KiB/fiber (RSS) | page tables KiB/fiber | VMAs added "
              "| spawn+park all (ms) |\n");
  std::printf("|---|---|---|---|---|\n");
  // popen runs a shell, whose /proc/self/exe is the shell: resolve our own path first.
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len <= 0) return 1;
  self[len] = 0;
  for (const Mode& m : kModes) {
    const std::string cmd =
        std::string(self) + " --mode=" + std::string(m.name) + " " + std::to_string(n);
    FILE* p = popen(cmd.c_str(), "r");
    long long rss = 0, pte = 0, vmas = 0;
    double ms = 0;
    const int got = p ? std::fscanf(p, "%lld %lld %lld %lf", &rss, &pte, &vmas, &ms) : 0;
    const int rc = p ? pclose(p) : -1;
    if (got != 4 || rc != 0) {
      std::printf("| %s | failed (rc=%d) | | | |\n", m.label, rc);
      continue;
    }
    std::printf("| %s | %.2f | %.3f | %lld | %.1f |\n", m.label,
                static_cast<double>(rss) / 1024.0 / static_cast<double>(n),
                static_cast<double>(pte) / static_cast<double>(n), vmas, ms);
    std::fflush(stdout);
  }
  return 0;
}
