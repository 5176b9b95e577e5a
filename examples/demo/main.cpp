// upcall demo: fibers doing real work on every core, and a core that keeps running other
// fibers while one of them blocks in the kernel.
//
//  1. Prime counting below 4,000,000 split into 4,000 fibers on all cores, checked against a
//     plain loop, with the speed-up over one core.
//  2. A 1-core runtime where one fiber blocks 200 ms in read(2) on a pipe while a ticker fiber
//     counts yields: first the raw read, which scheduler activations take over (the standby
//     claims the core from the blocked kernel thread; with activations off the whole core
//     stalls, as in every other fiber runtime), then the same read inside upcall::blocking,
//     which hands the core to a spare kernel thread before the call; then the measured upcall
//     latency.
//  3. The runtime's counters.
// Flags: --upcall-cores=N and the other --upcall-* flags (README "Configuration").
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <upcall/upcall.hpp>

namespace {

using Clock = std::chrono::steady_clock;

bool is_prime(unsigned n) {
  if (n < 2) return false;
  for (unsigned d = 2; d * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

unsigned count_primes(unsigned lo, unsigned hi) {
  unsigned c = 0;
  for (unsigned n = lo; n < hi; ++n) c += is_prime(n);
  return c;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

unsigned parallel_primes(upcall::Runtime& rt, unsigned limit, unsigned fibers) {
  return rt.block_on([=] {
    std::vector<upcall::JoinHandle<unsigned>> hs;
    hs.reserve(fibers);
    const unsigned step = limit / fibers;
    for (unsigned i = 0; i < fibers; ++i) {
      const unsigned lo = i * step, hi = (i + 1 == fibers) ? limit : lo + step;
      hs.push_back(upcall::spawn([lo, hi] { return count_primes(lo, hi); }));
    }
    unsigned total = 0;
    for (auto& h : hs) total += h.join();
    return total;
  });
}

// One fiber reads a pipe that a plain thread fills after 200 ms; a ticker fiber yields in a
// loop meanwhile. Returns how many ticks happened while the reader was blocked.
long blocked_read_ticks(upcall::Runtime& rt, bool use_blocking) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const char c = 'x';
    if (write(fds[1], &c, 1) != 1) std::perror("write");
  });
  const long ticks = rt.block_on([&] {
    std::atomic<bool> reading{false}, done{false};
    std::atomic<long> ticks_while_blocked{0};
    auto ticker = upcall::spawn([&] {
      while (!done.load()) {
        if (reading.load()) ticks_while_blocked.fetch_add(1);
        upcall::this_task::yield();
      }
    });
    auto reader = upcall::spawn([&] {
      char c = 0;
      reading = true;
      ssize_t n = use_blocking ? upcall::blocking([&] { return read(fds[0], &c, 1); })
                               : read(fds[0], &c, 1);
      reading = false;
      done = true;
      return n == 1 && c == 'x';
    });
    const bool ok = reader.join();
    ticker.join();
    return ok ? ticks_while_blocked.load() : -1;
  });
  writer.join();
  close(fds[0]);
  close(fds[1]);
  return ticks;
}

}  // namespace

int main(int argc, char** argv) {
  upcall::Options opts;
  try {
    opts.parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  upcall::Runtime rt(opts);
  std::printf("%s\n", rt.config().describe().c_str());  // effective cores and backends first

  const unsigned limit = 4'000'000, fibers = 4'000;
  auto t0 = Clock::now();
  const unsigned expect = count_primes(0, limit);
  const double serial_ms = ms_since(t0);
  t0 = Clock::now();
  const unsigned got = parallel_primes(rt, limit, fibers);
  const double par_ms = ms_since(t0);
  std::printf("1. primes below %u: %u in %u fibers on %d cores: %.0f ms (one plain loop: %.0f ms, "
              "speed-up %.2fx)%s\n",
              limit, got, fibers, rt.config().cores, par_ms, serial_ms, serial_ms / par_ms,
              got == expect ? "" : "  MISMATCH");

  upcall::Options one;
  one.cores = 1;
  upcall::Runtime rt1(one);
  const long raw = blocked_read_ticks(rt1, false);
  const long handed = blocked_read_ticks(rt1, true);
  const auto act = rt1.stats().activations;
  std::printf("2. 1-core runtime (activations=%s), a fiber blocks 200 ms in read(2) while a "
              "ticker fiber yields:\n"
              "   raw read(), nobody wrapped it: ticker ran %ld times during the block%s\n"
              "   upcall::blocking(read):        ticker ran %ld times during the block\n",
              rt1.config().activations.c_str(), raw,
              raw > 0 ? "" : " (the core stalled: activations are off here)", handed);
  if (act.upcall.count)
    std::printf("   upcall latency (block -> another fiber running on that core): p50 %.1f us, "
                "p99 %.1f us over %llu takeovers\n",
                act.upcall.p50 / 1000.0, act.upcall.p99 / 1000.0,
                static_cast<unsigned long long>(act.upcall.count));

  const auto s = rt.stats();
  std::printf("3. counters: %llu fibers spawned, %llu finished",
              static_cast<unsigned long long>(s.fibers_spawned),
              static_cast<unsigned long long>(s.fibers_finished));
  for (const auto& c : s.cores)
    std::printf("; core %d (cpu %d): %llu switches, %llu steals, %llu parks", c.core, c.cpu,
                static_cast<unsigned long long>(c.switches),
                static_cast<unsigned long long>(c.steals),
                static_cast<unsigned long long>(c.parks));
  std::printf("\n");
  return got == expect && handed > 0 && (raw > 0 || rt1.config().activations == "off") ? 0 : 1;
}
