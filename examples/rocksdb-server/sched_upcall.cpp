// The `upcall` scheduler (the seed's ghOSt run): the workers are fibers of an upcall runtime
// with one core per CPU of --worker_cpus (idle cores poll by default); the dispatcher is a
// fiber too, at priority 1: at every scheduling point of its core it runs before the workers.
// Each round it hands every due request to the longest-idle worker (FIFO), then sleeps until
// the next scheduled arrival (timers are checked at every scheduling decision, so it wakes
// within one slice even while the workers keep its core busy); before, it yielded and polled at
// priority 0, queued behind sliced RANGE handlers (Ingress Queue Time p99 976 us at 18k req/s
// with the range mix, 81 us now; bench/RESULTS.md run T). Short requests run to
// completion; long ones yield every --slice (cooperative time slices, until the runtime has
// preemption), going behind the core's ready fibers, so a GET waits at most about one slice
// behind a RANGE, where the kernel's scheduler gives a thread milliseconds.
//
// Handoff protocol (dispatcher D, worker W):
//  1. D pops W from the idle FIFO (W's push released W's state; D's pop acquires it).
//  2. D fills W.box/W.n, stamps taken/handed, and releases W's semaphore (release; W's acquire
//     pairs with it and sees step 2's writes). The release makes W ready on D's core; W runs when
//     D sleeps, or sooner on another core that steals it.
//  3. W runs its requests, pushes itself onto the idle FIFO and acquires its semaphore again.
//  A request due while no worker is idle waits: the dispatcher sleeps 5 us at a time until one
//  pushes itself.
//  Stop: D sets stop (release) and releases every idle worker; a worker that acquires with stop
//  set returns.
#include <chrono>
#include <cstdlib>
#include <memory>

#include <upcall/upcall.hpp>

#include "experiment.hpp"

namespace rocksdb_server {
namespace {

struct FiberWorker {
  IdleNode node;  // first member: the idle FIFO hands back &node == this
  upcall::counting_semaphore<> sem{0};  // counting: a stop permit may follow a pending handoff
  int n = 0;  // written by D before sem.release, read by W after acquire
  Request* box[1024] = {};
};

struct FiberHooks {
  int64_t t0;
  IdleQueue* idle;
  int64_t now() const { return mono_ns() - t0; }
  FiberWorker* pop_idle() { return reinterpret_cast<FiberWorker*>(idle->pop()); }
  // Nothing due: let the workers run, then look again (the schedule is polled; the network
  // source suspends the dispatcher on its semaphore instead).
  // The dispatcher runs at priority 1 (run_upcall), so a yield would return at once; it sleeps
  // instead: until the next scheduled arrival, or a few microseconds for a worker. Timers are
  // checked at every scheduling decision, and once due the dispatcher runs before the workers
  // queued on its core (ghOSt gives its agent a CPU of its own; we have two).
  void wait_arrival(Source& src, int64_t) {
    const int64_t next = src.next_time();
    if (next < 0) {
      src.wait_arrival();
      return;
    }
    upcall::this_task::sleep_until(std::chrono::steady_clock::time_point(
        std::chrono::nanoseconds(t0 + next)));
  }
  void wait_worker() { upcall::this_task::sleep_for(std::chrono::microseconds(5)); }
  void hand(FiberWorker* w) { w->sem.release(); }
};

}  // namespace

void run_upcall(const Flags& f, const Handler& h, const RunSpec& spec, upcall::Options opts) {
  if (!f.worker_cpus.empty()) {
    opts.cpus = upcall::format_cpulist(f.worker_cpus);
    opts.cores = static_cast<int>(f.worker_cpus.size());
  }
  // Idle cores poll unless told otherwise (--upcall-idle / UPCALL_IDLE): waking a parked core
  // costs tens of microseconds on a VM, a GET costs ten. The dispatcher polls anyway, as
  // ghOSt's agent does.
  // (In-process runs only: a network server waits for clients at no cost.)
  if (spec.poll_idle && !opts.idle && !std::getenv("UPCALL_IDLE")) opts.idle = "poll";
  upcall::Runtime rt(opts);
  std::fprintf(stderr, "%s\n", rt.config().describe().c_str());
  const int nw = f.num_workers;
  std::vector<std::unique_ptr<FiberWorker>> ws;
  for (int i = 0; i < nw; ++i) ws.push_back(std::make_unique<FiberWorker>());
  IdleQueue idle;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> completed{0};
  const int64_t slice = f.slice_ns;
  const int64_t t0 = spec.t0;

  rt.block_on([&] {
    std::vector<upcall::JoinHandle<void>> fibers;
    for (int i = 0; i < nw; ++i) {
      FiberWorker* w = ws[i].get();
      idle.push(&w->node);
      fibers.push_back(upcall::spawn(
          [&, w] {
            for (;;) {
              w->sem.acquire();
              if (stop.load(std::memory_order_acquire)) return;
              for (int k = 0; k < w->n; ++k) {
                Request& r = *w->box[k];
                r.started = mono_ns() - t0;
                h.run(r, slice, [] { upcall::this_task::yield(); });
                r.finished = mono_ns() - t0;
                if (spec.on_done) spec.on_done(r);
              }
              completed.fetch_add(w->n, std::memory_order_relaxed);
              idle.push(&w->node);
            }
          },
          upcall::SpawnOptions{"worker", 0}));
    }
    if (spec.start) spec.start();
    // The dispatcher first at every scheduling point of its core: requests waiting for it are
    // the Ingress Queue Time (measured: p99 976 us behind sliced RANGE handlers at priority 0).
    upcall::los::cur_task_pri_set(1);
    FiberHooks hooks{t0, &idle};
    const int64_t dispatched = dispatch(*spec.src, f.batch, spec.deadline, hooks);
    while (completed.load(std::memory_order_relaxed) < dispatched &&
           mono_ns() - t0 < spec.drain_end)
      upcall::this_task::sleep_for(std::chrono::milliseconds(1));
    stop.store(true, std::memory_order_release);
    for (auto& w : ws) w->sem.release();
    for (auto& fb : fibers) fb.join();
  });
  // Where the work ran: a core that never steals or parks all the time shows up here.
  const upcall::RuntimeStats st = rt.stats();
  std::string line = "upcall: ";
  for (const auto& c : st.cores)
    line += "core " + std::to_string(c.core) + ": " + std::to_string(c.switches) + " switches, " +
            std::to_string(c.stolen_fibers) + " fibers stolen, " + std::to_string(c.parks) +
            " parks; ";
  line += std::to_string(st.activations.takeovers) + " takeovers";
  std::fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace rocksdb_server
