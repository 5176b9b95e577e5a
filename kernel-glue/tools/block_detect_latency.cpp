// block_detect_latency.cpp: measures how soon user space learns that a
// thread blocked in the kernel, through the BPF glue, and what the glue costs
// on context switches it filters out. Not a test: it prints numbers.
//
//   status mode (default): a worker pinned to CPU C blocks in read(2) on a
//     pipe; a SCHED_IDLE poller pinned to the same CPU spins on the worker's
//     mmapped status word. The kernel runs the poller as soon as the worker
//     leaves the CPU; it records (now - last_switch_ns) when it sees the new
//     BLOCKED seq, then writes the pipe, which wakes the worker and (being a
//     normal task) preempts the poller at once.
//   ring mode: instead a normal thread pinned to CPU R (default C) sleeps in
//     epoll on the ring buffer and records (now - msg.ts_ns) for TASK_BLOCKED.
//   filter phase (both modes): two child processes ping-pong over pipes, none
//     of whose switches are ours; BPF_ENABLE_STATS gives the average cost of
//     a program run that the tgid check filters out.
//
// Usage: upcall_block_detect_latency [--mode status|ring] [--iters N]
//          [--cpu C] [--ring-cpu R] [--msgs] [--wake none|blocking|all]
//          [--prog-stats] [--no-filter-phase]
//   --msgs: also emit ring records in status mode (nobody consumes them)
//   --wake none|blocking|all: Options::ring_wakeup (default: blocking in
//     ring mode, none in status mode)
//   --prog-stats: BPF run-time accounting during the measurement (adds two
//     clock reads per program run, so latency grows a little)
// Needs CAP_BPF+CAP_PERFMON (and CAP_SYS_ADMIN for the filter phase).
#include <pthread.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "bpf_glue.hpp"

namespace {

using upcall::kglue::BpfGlue;

constexpr int kWarmup = 100;                         // discarded iterations
constexpr std::uint64_t kStuckNs = 2'000'000'000ull;  // give up on a sample
constexpr int kPingPongRounds = 100'000;             // filter phase

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // the clock of bpf_ktime_get_ns()
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

int pin_self(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<std::size_t>(cpu), &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : -errno;
}

struct Args {
  std::string mode = "status";
  int iters = 1000;
  int cpu = -1;
  int ring_cpu = -1;
  bool msgs = false;
  int wake = -1;  // enum upcall_ring_wakeup; -1 = mode default
  bool prog_stats = false;
  bool filter_phase = true;
};

void print_summary(const char* what, std::vector<std::uint64_t> v) {
  if (v.empty()) {
    std::printf("%s: no samples\n", what);
    return;
  }
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
    return static_cast<double>(v[i]) / 1000.0;
  };
  double sum = 0;
  for (auto x : v) sum += static_cast<double>(x);
  std::printf("%s over %zu blocks (us): p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  "
              "mean %.2f\n",
              what, v.size(), pct(0.50), pct(0.90), pct(0.99), pct(0.999),
              static_cast<double>(v.back()) / 1000.0, sum / static_cast<double>(v.size()) / 1000.0);
}

// Worker: blocks in read(2) once per iteration until EOF.
struct Worker {
  Worker(int f, int c) : fd(f), cpu(c) {}
  int fd;
  int cpu;
  std::atomic<pid_t> tid{0};
  std::atomic<bool> go{false};
  std::thread t;
  void start() {
    t = std::thread([this] {
      pin_self(cpu);
      tid.store(gettid(), std::memory_order_release);
      while (!go.load(std::memory_order_acquire)) {
      }
      char c;
      while (read(fd, &c, 1) == 1) {
      }
    });
    while (tid.load(std::memory_order_acquire) == 0) {
    }
  }
};

int run_status_mode(BpfGlue& glue, const Args& a, int wfd, std::vector<std::uint64_t>* out) {
  int rc = 0;
  std::thread poller([&] {
    pin_self(a.cpu);
    sched_param sp{};
    if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0) {
      std::fprintf(stderr, "SCHED_IDLE: %s\n", std::strerror(errno));
      rc = -errno;
      return;
    }
    const volatile upcall_status_word* w = glue.status(0);
    std::uint32_t last_seq = 0;
    for (int i = 0; i < kWarmup + a.iters; ++i) {
      upcall_status_word s{};
      const std::uint64_t start = now_ns();
      for (;;) {
        // Cheap pre-check on seq alone, then the consistent read.
        if (w->seq != last_seq && upcall::kglue::read_status_word(w, &s) == 0 &&
            s.state == UPCALL_ST_BLOCKED && s.seq != last_seq)
          break;
        if (now_ns() - start > kStuckNs) {
          std::fprintf(stderr, "iteration %d: no BLOCKED seen in 2 s (state %u)\n", i,
                       w->state);
          rc = -ETIMEDOUT;
          return;
        }
      }
      const std::uint64_t t = now_ns();
      last_seq = s.seq;
      if (i >= kWarmup) out->push_back(t - s.last_switch_ns);
      if (write(wfd, "x", 1) != 1) {
        rc = -errno;
        return;
      }
    }
  });
  poller.join();
  return rc;
}

int run_ring_mode(BpfGlue& glue, const Args& a, int wfd, std::vector<std::uint64_t>* out) {
  int rc = 0;
  std::thread consumer([&] {
    pin_self(a.ring_cpu >= 0 ? a.ring_cpu : a.cpu);
    int seen = 0;
    std::uint64_t by_type[8] = {};
    while (seen < kWarmup + a.iters) {
      const int n = glue.poll(-1, [&](const upcall_msg& m) {
        ++by_type[m.type & 7];
        if (m.slot != 0 || m.type != UPCALL_MSG_TASK_BLOCKED) return 0;
        const std::uint64_t t = now_ns();
        if (seen++ >= kWarmup) out->push_back(t - m.ts_ns);
        if (write(wfd, "x", 1) != 1) return 1;
        return 0;
      });
      if (n < 0 && n != -EINTR) {
        rc = n;
        return;
      }
    }
    std::printf("records: new %llu blocked %llu wakeup %llu preempt %llu on_cpu %llu dead %llu\n",
                static_cast<unsigned long long>(by_type[UPCALL_MSG_TASK_NEW]),
                static_cast<unsigned long long>(by_type[UPCALL_MSG_TASK_BLOCKED]),
                static_cast<unsigned long long>(by_type[UPCALL_MSG_TASK_WAKEUP]),
                static_cast<unsigned long long>(by_type[UPCALL_MSG_TASK_PREEMPT]),
                static_cast<unsigned long long>(by_type[UPCALL_MSG_TASK_ON_CPU]),
                static_cast<unsigned long long>(by_type[UPCALL_MSG_TASK_DEAD]));
  });
  consumer.join();
  return rc;
}

// Two processes of ours ping-pong: every switch is someone else's tgid.
int filter_phase(BpfGlue& glue) {
  int err = glue.enable_run_stats();
  if (err) {
    std::printf("filter phase skipped: BPF_ENABLE_STATS: %s\n", std::strerror(-err));
    return 0;
  }
  upcall::kglue::RunStats r0{}, r1{};
  upcall::kglue::Counters c0{}, c1{};
  glue.read_run_stats(&r0);
  glue.read_counters(&c0);
  int ab[2], ba[2];
  if (pipe(ab) || pipe(ba)) return -errno;
  const pid_t kids[2] = {fork(), -1};
  if (kids[0] == 0) {
    char c;
    for (int i = 0; i < kPingPongRounds; ++i)
      if (read(ab[0], &c, 1) != 1 || write(ba[1], &c, 1) != 1) _exit(1);
    _exit(0);
  }
  const pid_t kid2 = fork();
  if (kid2 == 0) {
    char c = 'x';
    for (int i = 0; i < kPingPongRounds; ++i)
      if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1) _exit(1);
    _exit(0);
  }
  waitpid(kids[0], nullptr, 0);
  waitpid(kid2, nullptr, 0);
  for (int fd : {ab[0], ab[1], ba[0], ba[1]}) close(fd);
  glue.read_run_stats(&r1);
  glue.read_counters(&c1);
  auto avg = [](const upcall::kglue::ProgStats& a, const upcall::kglue::ProgStats& b) {
    const std::uint64_t n = b.run_cnt - a.run_cnt;
    return n ? static_cast<double>(b.run_time_ns - a.run_time_ns) / static_cast<double>(n) : 0.0;
  };
  std::printf("filter phase (%d ping-pongs between two other processes):\n", kPingPongRounds);
  std::printf("  sched_switch runs %llu, avg %.1f ns/run; sched_waking avg %.1f ns; "
              "sched_wakeup avg %.1f ns\n",
              static_cast<unsigned long long>(r1.sched_switch.run_cnt - r0.sched_switch.run_cnt),
              avg(r0.sched_switch, r1.sched_switch), avg(r0.sched_waking, r1.sched_waking),
              avg(r0.sched_wakeup, r1.sched_wakeup));
  std::printf("  counters: events +%llu, filtered by tgid +%llu, by tid +%llu\n",
              static_cast<unsigned long long>(c1.events - c0.events),
              static_cast<unsigned long long>(c1.filtered_tgid - c0.filtered_tgid),
              static_cast<unsigned long long>(c1.filtered_tid - c0.filtered_tid));
  return 0;
}

bool parse(int argc, char** argv, Args* a) {
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&](int* v) {
      if (i + 1 >= argc) return false;
      *v = std::atoi(argv[++i]);
      return true;
    };
    if (s == "--mode" && i + 1 < argc) {
      a->mode = argv[++i];
    } else if (s == "--iters") {
      if (!next(&a->iters)) return false;
    } else if (s == "--cpu") {
      if (!next(&a->cpu)) return false;
    } else if (s == "--ring-cpu") {
      if (!next(&a->ring_cpu)) return false;
    } else if (s == "--msgs") {
      a->msgs = true;
    } else if (s == "--wake" && i + 1 < argc) {
      const std::string v = argv[++i];
      a->wake = v == "none" ? UPCALL_RING_WAKE_NONE
                : v == "blocking" ? UPCALL_RING_WAKE_BLOCKING
                : v == "all" ? UPCALL_RING_WAKE_ALL
                : -2;
      if (a->wake == -2) return false;
    } else if (s == "--prog-stats") {
      a->prog_stats = true;
    } else if (s == "--no-filter-phase") {
      a->filter_phase = false;
    } else {
      return false;
    }
  }
  return (a->mode == "status" || a->mode == "ring") && a->iters > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!parse(argc, argv, &a)) {
    std::fprintf(stderr,
                 "usage: %s [--mode status|ring] [--iters N] [--cpu C] [--ring-cpu R] [--msgs] "
                 "[--wake none|blocking|all] [--prog-stats] [--no-filter-phase]\n",
                 argv[0]);
    return 2;
  }
  if (a.cpu < 0) {  // default: the last allowed CPU (usually the quietest)
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof(set), &set);
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(static_cast<std::size_t>(c), &set)) a.cpu = c;
  }
  if (a.mode == "ring") a.msgs = true;

  BpfGlue glue;
  upcall::kglue::Options opts;
  opts.emit_messages = a.msgs;
  if (a.wake >= 0)
    opts.ring_wakeup = static_cast<std::uint32_t>(a.wake);
  else
    opts.ring_wakeup = a.mode == "ring" ? UPCALL_RING_WAKE_BLOCKING : UPCALL_RING_WAKE_NONE;
  int err = glue.open(getpid(), 2, opts);
  if (err) {
    std::fprintf(stderr, "cannot load BPF: %s\n", glue.explain(err));
    return 1;
  }
  int p[2];
  if (pipe(p) != 0) return 1;
  Worker w(p[0], a.cpu);
  w.start();
  err = glue.register_thread(w.tid.load(), 0);
  if (err) {
    std::fprintf(stderr, "register_thread: %s\n", std::strerror(-err));
    return 1;
  }
  upcall::kglue::RunStats r0{}, r1{};
  if (a.prog_stats && (glue.enable_run_stats() != 0 || glue.read_run_stats(&r0) != 0)) {
    std::fprintf(stderr, "--prog-stats: BPF_ENABLE_STATS failed\n");
    a.prog_stats = false;
  }
  w.go.store(true, std::memory_order_release);

  std::vector<std::uint64_t> samples;
  samples.reserve(static_cast<std::size_t>(a.iters));
  err = a.mode == "status" ? run_status_mode(glue, a, p[1], &samples)
                           : run_ring_mode(glue, a, p[1], &samples);
  close(p[1]);  // EOF ends the worker
  w.t.join();
  close(p[0]);
  if (err) {
    std::fprintf(stderr, "measurement failed: %s\n", std::strerror(-err));
    return 1;
  }

  if (a.prog_stats) glue.read_run_stats(&r1);
  const int ring_cpu = a.ring_cpu >= 0 ? a.ring_cpu : a.cpu;
  static const char* const kWake[] = {"none", "blocking", "all"};
  std::printf("mode %s, cpu %d, ring-cpu %d, ring records %s, ring wakeups %s\n",
              a.mode.c_str(), a.cpu, a.mode == "ring" ? ring_cpu : -1, a.msgs ? "on" : "off",
              kWake[opts.ring_wakeup]);
  print_summary(a.mode == "status" ? "SCHED_IDLE poller sees BLOCKED - last_switch_ns"
                                   : "epoll consumer gets TASK_BLOCKED - ts_ns",
                std::move(samples));
  upcall::kglue::Counters c{};
  if (glue.read_counters(&c) == 0)
    std::printf("counters: events %llu, filtered tgid %llu, filtered tid %llu, handled %llu, "
                "msgs %llu, drops %llu, seq collisions %llu\n",
                static_cast<unsigned long long>(c.events),
                static_cast<unsigned long long>(c.filtered_tgid),
                static_cast<unsigned long long>(c.filtered_tid),
                static_cast<unsigned long long>(c.handled), static_cast<unsigned long long>(c.msgs),
                static_cast<unsigned long long>(c.msg_drops),
                static_cast<unsigned long long>(c.seq_collisions));
  if (a.prog_stats) {
    auto line = [](const char* name, const upcall::kglue::ProgStats& x,
                   const upcall::kglue::ProgStats& y) {
      const std::uint64_t n = y.run_cnt - x.run_cnt;
      std::printf("  %-18s runs %8llu  avg %6.1f ns\n", name, static_cast<unsigned long long>(n),
                  n ? static_cast<double>(y.run_time_ns - x.run_time_ns) / static_cast<double>(n)
                    : 0.0);
    };
    std::printf("BPF programs during the measurement (all tasks on the machine):\n");
    line("sched_switch", r0.sched_switch, r1.sched_switch);
    line("sched_waking", r0.sched_waking, r1.sched_waking);
    line("sched_wakeup", r0.sched_wakeup, r1.sched_wakeup);
  }
  if (a.filter_phase) filter_phase(glue);
  return 0;
}
