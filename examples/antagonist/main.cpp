// upcall_antagonist: the seed's second ghOSt experiment, a batch job that soaks up CPU. It burns
// CPU in fixed work units (a calibrated loop that takes --unit on an undisturbed CPU) on the
// CPUs it is given, and prints the units per second it got on each CPU every second and at exit:
// the CPU time a latency-critical neighbour left it. Two ways to run:
//   --mode=threads  one kernel thread pinned to each CPU, at SCHED_IDLE (--policy=idle) or at a
//                   nice level (--policy=nice:N), so the kernel gives it what others leave;
//   --mode=fibers   one fiber per CPU inside an upcall runtime on those CPUs, at the lowest task
//                   priority (--policy=idle: los::kMinPriority; nice:N: priority -N*50), yielding
//                   after every unit, so any higher-priority fiber of the runtime runs first.
//
//   upcall_antagonist --cpus=0-1 --duration=10s --mode=threads --policy=idle [--unit=100us] [--json]
//
// With --json the last line is one JSON object: {"mode":..,"policy":..,"unit_ns":..,
// "duration_s":..,"units":..,"units_per_sec":<total>,"per_cpu":{"<cpu>":<units/s>,..}}.
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <upcall/task_api.hpp>
#include <upcall/upcall.hpp>

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void burn(uint64_t iters) {
  uint64_t x = iters;
  for (uint64_t i = 0; i < iters; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    asm volatile("" : "+r"(x));  // keeps the loop from being folded away
  }
}

// Iterations that take `unit_ns` on an undisturbed CPU (the fastest of several tries).
uint64_t calibrate(int64_t unit_ns) {
  constexpr uint64_t kIters = 200'000;
  int64_t best = INT64_MAX;
  for (int i = 0; i < 15; ++i) {
    const int64_t t0 = now_ns();
    burn(kIters);
    best = std::min(best, now_ns() - t0);
  }
  const double per_ns = static_cast<double>(kIters) / static_cast<double>(std::max<int64_t>(best, 1));
  return std::max<uint64_t>(1, static_cast<uint64_t>(per_ns * static_cast<double>(unit_ns)));
}

bool parse_duration(const std::string& t, int64_t& ns) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end == t.c_str() || errno || !(v > 0)) return false;
  const std::string u = end;
  const double scale = u == "ns" ? 1 : u == "us" ? 1e3 : u == "ms" ? 1e6 : (u == "s" || u.empty()) ? 1e9 : -1;
  if (scale < 0 || v * scale > 1e15) return false;
  ns = static_cast<int64_t>(std::llround(v * scale));
  return ns > 0;
}

constexpr std::size_t kFibersPerCpu = 4;

struct Config {
  std::vector<int> cpus;
  int64_t duration_ns = 0;
  bool fibers = false;
  bool idle = true;
  int nice = 0;
  int64_t unit_ns = 100'000;
  bool json = false;
};

// One counter per CPU slot, on its own cache line: written by the burner(s) on that CPU
// (relaxed: a count, read by the reporter, which only needs eventually-exact totals; the final
// read happens after every burner has stopped and been joined).
struct alignas(64) Counter {
  std::atomic<uint64_t> units{0};
};

int die(const std::string& msg) {
  std::fprintf(stderr, "antagonist: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  bool have_cpus = false, have_duration = false, have_mode = false, have_policy = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      c.json = true;
      continue;
    }
    if (a == "--help") {
      std::printf("usage: upcall_antagonist --cpus=LIST --duration=D --mode=threads|fibers "
                  "--policy=idle|nice:N [--unit=DUR] [--json]\n");
      return 0;
    }
    const auto eq = a.find('=');
    if (eq == std::string::npos) return die("expected --flag=value, got '" + a + "' (see --help)");
    const std::string k = a.substr(0, eq), v = a.substr(eq + 1);
    if (k == "--cpus") {
      try {
        c.cpus = upcall::parse_cpulist(v);
      } catch (const std::exception& e) {
        return die("--cpus=" + v + ": " + e.what());
      }
      cpu_set_t mask;
      sched_getaffinity(0, sizeof mask, &mask);
      for (int cpu : c.cpus)
        if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &mask))
          return die("--cpus=" + v + ": CPU " + std::to_string(cpu) +
                     " is not in this process's affinity mask");
      have_cpus = !c.cpus.empty();
    } else if (k == "--duration") {
      if (!parse_duration(v, c.duration_ns)) return die("--duration=" + v + ": expected a duration such as 10s or 500ms");
      have_duration = true;
    } else if (k == "--unit") {
      if (!parse_duration(v, c.unit_ns) || c.unit_ns < 1000 || c.unit_ns > 1'000'000'000)
        return die("--unit=" + v + ": expected a duration from 1us to 1s");
    } else if (k == "--mode") {
      if (v != "threads" && v != "fibers") return die("--mode=" + v + ": expected threads or fibers");
      c.fibers = v == "fibers";
      have_mode = true;
    } else if (k == "--policy") {
      if (v == "idle") {
        c.idle = true;
      } else if (v.rfind("nice:", 0) == 0) {
        char* end = nullptr;
        const long n = std::strtol(v.c_str() + 5, &end, 10);
        if (v.size() == 5 || *end || n < -20 || n > 19) return die("--policy=" + v + ": nice must be -20..19");
        c.idle = false;
        c.nice = static_cast<int>(n);
      } else {
        return die("--policy=" + v + ": expected idle or nice:N");
      }
      have_policy = true;
    } else {
      return die("unknown flag " + k + " (see --help)");
    }
  }
  if (!have_cpus || !have_duration || !have_mode || !have_policy)
    return die("--cpus, --duration, --mode and --policy are required (see --help)");

  const uint64_t iters = calibrate(c.unit_ns);
  const std::size_t n = c.cpus.size();
  std::unique_ptr<Counter[]> counts(new Counter[n]);
  std::atomic<bool> stop{false};
  const char* policy_text = nullptr;
  std::string policy_buf = c.idle ? "idle" : "nice:" + std::to_string(c.nice);
  policy_text = policy_buf.c_str();

  std::vector<std::thread> threads;
  std::unique_ptr<upcall::Runtime> rt;
  std::vector<upcall::JoinHandle<void>> fibers;
  std::atomic<int> policy_errors{0};
  if (!c.fibers) {
    for (std::size_t i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        if (c.idle) {
          sched_param sp{};
          if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0) policy_errors.fetch_add(1);
        } else if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), c.nice) != 0) {
          policy_errors.fetch_add(1);  // a negative nice needs CAP_SYS_NICE
        }
        while (!stop.load(std::memory_order_relaxed)) {
          burn(iters);
          counts[i].units.fetch_add(1, std::memory_order_relaxed);
        }
      });
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(c.cpus[i], &set);
      pthread_setaffinity_np(threads.back().native_handle(), sizeof set, &set);
    }
  } else {
    upcall::Options o;
    o.cpus = upcall::format_cpulist(c.cpus);
    o.cores = static_cast<int>(n);
    try {
      rt = std::make_unique<upcall::Runtime>(o);
    } catch (const std::exception& e) {
      return die(e.what());
    }
    // Core i runs on config().cpus[i]; counts are kept in --cpus order.
    std::vector<std::size_t> slot_of_core(n, 0);
    for (std::size_t core = 0; core < n; ++core)
      slot_of_core[core] = static_cast<std::size_t>(
          std::find(c.cpus.begin(), c.cpus.end(), rt->config().cpus[core]) - c.cpus.begin()) % n;
    // Priority: below every default-priority fiber of the runtime.
    const int prio = c.idle ? upcall::los::kMinPriority : -50 * (c.nice + 21);
    // kFibersPerCpu per CPU: a core steals half of another's queue, so with one fiber per core
    // a core whose only fiber is running has nothing to give and an idle core could stay idle.
    for (std::size_t i = 0; i < n * kFibersPerCpu; ++i)
      fibers.push_back(rt->spawn(
          [&, slot_of_core] {
            while (!stop.load(std::memory_order_relaxed)) {
              burn(iters);
              const int core = upcall::this_task::core();
              if (core >= 0) counts[slot_of_core[core]].units.fetch_add(1, std::memory_order_relaxed);
              upcall::this_task::yield();
            }
          },
          upcall::SpawnOptions{"antagonist", std::max(prio, upcall::los::kMinPriority)}));
  }

  auto fmt_row = [&](const std::vector<double>& per, double total) {
    std::string s;
    char buf[64];
    for (std::size_t i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof buf, " cpu%d %.0f", c.cpus[i], per[i]);
      s += buf;
    }
    std::snprintf(buf, sizeof buf, " total %.0f", total);
    return s + buf;
  };
  const int64_t t0 = now_ns();
  std::vector<uint64_t> prev(n, 0);
  int64_t prev_t = t0;
  for (int sec = 1;; ++sec) {
    const int64_t target = std::min(t0 + int64_t{sec} * 1'000'000'000, t0 + c.duration_ns);
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::max<int64_t>(0, target - now_ns())));
    const int64_t t = now_ns();
    std::vector<double> per(n);
    double total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const uint64_t u = counts[i].units.load(std::memory_order_relaxed);
      per[i] = static_cast<double>(u - prev[i]) * 1e9 / static_cast<double>(t - prev_t);
      total += per[i];
      prev[i] = u;
    }
    prev_t = t;
    std::printf("antagonist: t=%.1fs units/s:%s\n", static_cast<double>(t - t0) / 1e9,
                  fmt_row(per, total).c_str());
    std::fflush(stdout);
    if (t - t0 >= c.duration_ns) break;
  }
  stop = true;
  for (auto& th : threads) th.join();
  for (auto& f : fibers) f.join();
  rt.reset();
  const double secs = static_cast<double>(now_ns() - t0) / 1e9;
  std::vector<double> per(n);
  double total = 0;
  uint64_t units = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const uint64_t u = counts[i].units.load();
    units += u;
    per[i] = static_cast<double>(u) / secs;
    total += per[i];
  }
  if (policy_errors.load())
    std::fprintf(stderr, "antagonist: %d thread(s) could not take --policy=%s (%s); they ran at "
                 "the default policy\n", policy_errors.load(), policy_text,
                 c.idle ? "SCHED_IDLE refused" : "a negative nice needs CAP_SYS_NICE");
  std::printf("antagonist: %s mode, policy %s, unit %.0f us, %.1f s: units/s:%s\n",
              c.fibers ? "fibers" : "threads", policy_text, c.unit_ns / 1e3, secs,
              fmt_row(per, total).c_str());
  if (c.json) {
    std::printf("{\"mode\":\"%s\",\"policy\":\"%s\",\"unit_ns\":%lld,\"duration_s\":%.3f,"
                "\"units\":%llu,\"units_per_sec\":%.1f,\"per_cpu\":{",
                c.fibers ? "fibers" : "threads", policy_text, static_cast<long long>(c.unit_ns),
                secs, static_cast<unsigned long long>(units), total);
    for (std::size_t i = 0; i < n; ++i)
      std::printf("%s\"%d\":%.1f", i ? "," : "", c.cpus[i], per[i]);
    std::printf("}}\n");
  }
  return 0;
}
