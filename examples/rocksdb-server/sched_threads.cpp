// The `threads` scheduler (the seed's CFS run): one kernel thread per worker, placed by the
// kernel (or round-robin over --worker_cpus), each sleeping on its own futex until the
// dispatcher hands it requests; the dispatcher is one more kernel thread (the caller) that
// sleeps until the next arrival is due (clock_nanosleep, 1 ns timer slack) or, when every
// worker is busy, until a worker goes idle. Nothing spins: an idle CPU is idle, and the kernel's
// scheduler decides who runs when more threads are runnable than CPUs.
//
// Handoff protocol (dispatcher D, worker W):
//  1. D pops W from the idle FIFO (W pushed itself there, release; D's pop acquires).
//  2. D fills W.box/W.n and stamps taken/handed, then W.ready.store(1, release), FUTEX_WAKE.
//  3. W swaps W.ready to 0 (acquire) and sleeps in FUTEX_WAIT while it was 0 (the kernel
//     re-checks the word, so a wake between W's swap and its sleep is not lost); seeing 1 makes
//     step 2's writes visible; seeing kStop ends W. Swapping (not storing 0 after reading) means
//     a stop stored meanwhile is never overwritten.
//  4. W runs its requests, pushes itself onto the idle FIFO, then (seq_cst fence) reads
//     d_waiting and wakes D if D was waiting for a worker.
//  D waiting for a worker: d_waiting = 1, seq_cst fence, look at the FIFO again, then
//  FUTEX_WAIT(d_waiting, 1).
//  The two fences make "W pushed, then read d_waiting == 0" and "D set d_waiting, then saw
//  an empty FIFO" impossible together, so D never sleeps past an idle worker.
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>

#include <memory>
#include <thread>

#include "experiment.hpp"
#include "futex.hpp"

namespace rocksdb_server {
namespace {

constexpr uint32_t kStop = 2;  // ready's value that tells a worker to exit

struct ThreadWorker {
  IdleNode node;  // first member: the idle FIFO hands back &node == this
  std::atomic<uint32_t> ready{0};
  int n = 0;  // written by D before ready=1, read by W after
  Request* box[1024] = {};
};

void pin(std::thread& t, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(t.native_handle(), sizeof set, &set);
}

void sleep_until_abs(int64_t abs) {
  timespec ts{abs / 1'000'000'000, abs % 1'000'000'000};
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
}

struct ThreadHooks {
  int64_t t0;
  IdleQueue* idle;
  std::atomic<uint32_t>* d_waiting;
  int64_t now() const { return mono_ns() - t0; }
  ThreadWorker* pop_idle() { return reinterpret_cast<ThreadWorker*>(idle->pop()); }
  void wait_arrival(Source& src, int64_t now) {
    const int64_t next = src.next_time();
    if (next < 0) {
      src.wait_arrival();
    } else if (next - now > 2000) {  // closer than 2 us: look again at once
      sleep_until_abs(t0 + std::min<int64_t>(next, now + 10'000'000));
    }
  }
  void wait_worker() {
    d_waiting->store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the worker's fence
    if (idle->nonempty()) {
      d_waiting->store(0, std::memory_order_relaxed);
      return;
    }
    futex_wait(d_waiting, 1, 10'000'000);  // bounded only so that the deadline is noticed
  }
  void hand(ThreadWorker* w) {
    w->ready.store(1, std::memory_order_release);
    futex_wake(&w->ready);
  }
};

}  // namespace

void run_threads(const Flags& f, const Handler& h, const RunSpec& spec) {
  const int nw = f.num_workers;
  std::vector<std::unique_ptr<ThreadWorker>> ws;
  for (int i = 0; i < nw; ++i) ws.push_back(std::make_unique<ThreadWorker>());
  IdleQueue idle;
  std::atomic<uint32_t> d_waiting{0};
  std::atomic<int64_t> completed{0};
  const int64_t t0 = spec.t0;

  std::vector<std::thread> threads;
  for (int i = 0; i < nw; ++i) {
    ThreadWorker* w = ws[i].get();
    idle.push(&w->node);  // FIFO: worker 0 is the first to get work
    threads.emplace_back([&, w] {
      for (;;) {
        const uint32_t v = w->ready.exchange(0, std::memory_order_acquire);  // step 3
        if (v == 0) {
          futex_wait(&w->ready, 0);
          continue;
        }
        if (v == kStop) return;
        for (int k = 0; k < w->n; ++k) {
          Request& r = *w->box[k];
          r.started = mono_ns() - t0;
          h.run(r, 0, [] {});
          r.finished = mono_ns() - t0;
          if (spec.on_done) spec.on_done(r);
        }
        completed.fetch_add(w->n, std::memory_order_relaxed);
        idle.push(&w->node);                                  // step 4
        std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with D's fence
        if (d_waiting.load(std::memory_order_relaxed) &&
            d_waiting.exchange(0, std::memory_order_relaxed))
          futex_wake(&d_waiting);
      }
    });
    if (!f.worker_cpus.empty()) pin(threads.back(), f.worker_cpus[i % f.worker_cpus.size()]);
  }

  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // the dispatcher's sleeps end on time
  if (spec.start) spec.start();
  ThreadHooks hooks{t0, &idle, &d_waiting};
  const int64_t dispatched = dispatch(*spec.src, f.batch, spec.deadline, hooks);
  while (completed.load(std::memory_order_relaxed) < dispatched &&
         mono_ns() - t0 < spec.drain_end)
    sleep_until_abs(mono_ns() + 1'000'000);
  for (auto& w : ws) {
    w->ready.store(kStop, std::memory_order_release);
    futex_wake(&w->ready);
  }
  // A worker still running a request finishes it (at most one range_duration), then stops.
  for (auto& t : threads) t.join();
}

}  // namespace rocksdb_server
