// upcall_blocking_demo: request handlers on an upcall runtime, some of which call a slow blocking
// function nobody wrapped (a plain read(2) of a pipe that a slow service answers 20 ms later),
// served once with scheduler activations on (UPCALL_ACTIVATIONS=bpf) and once off. With them on,
// the kernel thread that blocks in read loses its core to a standby within microseconds and the
// other handlers keep running; with them off the core stalls for the whole read, as it would in
// any other fiber runtime. Prints two lines: requests served per second and the largest stall
// (the longest time no request finished), plus the upcall latency the runtime measured.
//
//   upcall_blocking_demo [--duration=2s] [--cores=1] [--handlers=32] [--slow_every=100]
//                        [--slow_ms=20] [--work_us=50]
// Without BPF privileges the runtime says so in one line and the "on" run uses the fallback
// backend (a watchdog; slower): the line shows "activations on  (fallback)".
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include <upcall/upcall.hpp>

namespace {

using Clock = std::chrono::steady_clock;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Config {
  double duration_s = 2;
  int cores = 1;
  int handlers = 32;
  int slow_every = 100;
  int slow_ms = 20;
  int work_us = 50;
};

// The slow service: answers each byte written to its request pipe with a byte on the reply pipe
// slow_ms later (requests overlap: each has its own deadline). A plain thread, outside upcall.
class SlowService {
 public:
  explicit SlowService(int slow_ms) : delay_ns_(int64_t{slow_ms} * 1'000'000) {
    if (pipe(req_) != 0 || pipe(rep_) != 0) {
      std::perror("blocking-demo: pipe");
      std::exit(1);
    }
    thread_ = std::thread([this] { loop(); });
  }
  ~SlowService() {
    close(req_[1]);  // the loop sees EOF and ends
    thread_.join();
    close(req_[0]);
    close(rep_[0]);
    close(rep_[1]);
  }
  // The blocking call nobody wrapped: a plain write and a plain read(2).
  bool call() {
    char c = 'q';
    if (write(req_[1], &c, 1) != 1) return false;
    return read(rep_[0], &c, 1) == 1;
  }

 private:
  void loop() {
    std::deque<int64_t> due;
    for (;;) {
      int timeout_ms = -1;
      if (!due.empty())
        timeout_ms = static_cast<int>(std::max<int64_t>(0, (due.front() - now_ns()) / 1'000'000));
      pollfd p{req_[0], POLLIN, 0};
      const int r = poll(&p, 1, timeout_ms);
      if (r > 0) {
        char buf[256];
        const ssize_t n = read(req_[0], buf, sizeof buf);
        if (n <= 0) return;
        for (ssize_t i = 0; i < n; ++i) due.push_back(now_ns() + delay_ns_);
      }
      while (!due.empty() && due.front() <= now_ns()) {
        char c = 'r';
        if (write(rep_[1], &c, 1) != 1) return;
        due.pop_front();
      }
    }
  }
  int64_t delay_ns_;
  int req_[2], rep_[2];
  std::thread thread_;
};

void burn_us(int us) {
  const int64_t end = now_ns() + int64_t{us} * 1000;
  while (now_ns() < end) {
  }
}

struct Result {
  std::string backend;
  double per_sec = 0;
  double stall_ms = 0;
  upcall::ActivationStats act;
};

Result run(const Config& c, const char* activations) {
  upcall::Options o;
  o.cores = c.cores;
  o.activations = activations;
  upcall::Runtime rt(o);
  SlowService slow(c.slow_ms);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> served{0};
  std::atomic<int64_t> last_done{0}, max_gap{0};
  const int64_t t0 = now_ns();
  last_done = t0;
  rt.block_on([&] {
    std::vector<upcall::JoinHandle<void>> hs;
    for (int i = 0; i < c.handlers; ++i)
      hs.push_back(upcall::spawn([&, i] {
        for (int64_t k = i; !stop.load(std::memory_order_relaxed); k += c.handlers) {
          burn_us(c.work_us);
          if (k % c.slow_every == 0) slow.call();
          // The stall: the longest time between two consecutive request completions, while
          // the run lasts (after `stop`, handlers still inside a slow call finish one by one
          // with nothing else left to run: those gaps are the drain, not stalls).
          const int64_t t = now_ns();
          const int64_t prev = last_done.exchange(t, std::memory_order_relaxed);
          int64_t gap = t - prev, m = max_gap.load(std::memory_order_relaxed);
          while (!stop.load(std::memory_order_relaxed) && gap > m &&
                 !max_gap.compare_exchange_weak(m, gap, std::memory_order_relaxed)) {
          }
          served.fetch_add(1, std::memory_order_relaxed);
          upcall::this_task::yield();
        }
      }));
    upcall::this_task::sleep_for(std::chrono::duration<double>(c.duration_s));
    stop = true;
    for (auto& h : hs) h.join();
  });
  Result r;
  r.backend = rt.config().activations;
  r.per_sec = static_cast<double>(served.load()) / c.duration_s;
  r.stall_ms = static_cast<double>(max_gap.load()) / 1e6;
  r.act = rt.stats().activations;
  return r;
}

bool parse(int argc, char** argv, Config& c) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const auto eq = a.find('=');
    const std::string k = a.substr(0, eq), v = eq == std::string::npos ? "" : a.substr(eq + 1);
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    std::string unit = end ? end : "";
    bool ok = !v.empty() && end != v.c_str() && d > 0;
    if (k == "--duration") {
      double s = unit == "ms" ? d / 1e3 : (unit == "s" || unit.empty()) ? d : -1;
      ok = ok && s > 0 && s <= 3600;
      c.duration_s = s;
    } else if (k == "--cores" || k == "--handlers" || k == "--slow_every" || k == "--slow_ms" ||
               k == "--work_us") {
      ok = ok && unit.empty() && d == static_cast<int>(d) && d <= 100000;
      const int n = static_cast<int>(d);
      if (k == "--cores") c.cores = n;
      if (k == "--handlers") c.handlers = n;
      if (k == "--slow_every") c.slow_every = n;
      if (k == "--slow_ms") c.slow_ms = n;
      if (k == "--work_us") c.work_us = n;
    } else if (k == "--help") {
      std::printf("usage: upcall_blocking_demo [--duration=2s] [--cores=1] [--handlers=32] "
                  "[--slow_every=100] [--slow_ms=20] [--work_us=50]\n");
      std::exit(0);
    } else {
      std::fprintf(stderr, "blocking-demo: unknown flag %s (see --help)\n", a.c_str());
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "blocking-demo: %s: expected a positive %s\n", a.c_str(),
                   k == "--duration" ? "duration (2s, 500ms)" : "integer");
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  if (!parse(argc, argv, c)) return 1;
  std::printf("blocking-demo: %d core(s), %d handler fibers of %d us each; 1 request in %d calls a "
              "plain read(2) that a slow service answers %d ms later (nobody wrapped it)\n",
              c.cores, c.handlers, c.work_us, c.slow_every, c.slow_ms);
  std::fflush(stdout);
  Result on, off;
  try {
    // Without BPF privileges the runtime says why on one line (stderr) and falls back; the
    // "on" line below names the backend that ran.
    on = run(c, "bpf");
    off = run(c, "off");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "blocking-demo: %s\n", e.what());
    return 1;
  }
  std::printf("activations on  (%s): %8.0f requests/s, largest stall %7.2f ms", on.backend.c_str(),
              on.per_sec, on.stall_ms);
  if (on.act.upcall.count)
    std::printf("; upcall latency p50 %.1f us, p99 %.1f us over %llu takeovers",
                on.act.upcall.p50 / 1000.0, on.act.upcall.p99 / 1000.0,
                static_cast<unsigned long long>(on.act.upcall.count));
  std::printf("\nactivations off      : %8.0f requests/s, largest stall %7.2f ms\n", off.per_sec,
              off.stall_ms);
  return 0;
}
