// The `upcall` scheduler (the seed's ghOSt run): the workers are fibers of an upcall runtime
// with one core per CPU of --worker_cpus (idle cores poll by default); the dispatcher is a
// fiber too. The dispatcher polls:
// each round it hands every due request to the longest-idle worker (FIFO), then yields, so the
// workers it woke and any handler that sliced run before it looks again. Short requests run to
// completion; long ones yield every --slice (cooperative time slices, until the runtime has
// preemption), going behind the core's ready fibers, so a GET waits at most about one slice
// behind a RANGE, where the kernel's scheduler gives a thread milliseconds.
//
// Handoff protocol (dispatcher D, worker W):
//  1. D pops W from the idle FIFO (W's push released W's state; D's pop acquires it).
//  2. D fills W.box/W.n, stamps taken/handed, and releases W's semaphore (release; W's acquire
//     pairs with it and sees step 2's writes). The release makes W ready on D's core; W runs when
//     D yields, or sooner on another core that steals it.
//  3. W runs its requests, pushes itself onto the idle FIFO and acquires its semaphore again.
//  A request due while no worker is idle waits: the dispatcher yields until one pushes itself.
//  Stop: D sets stop (release) and releases every idle worker; a worker that acquires with stop
//  set returns.
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
  void wait_arrival(Source& src, int64_t) {
    if (src.next_time() < 0)
      src.wait_arrival();
    else
      upcall::this_task::yield();
  }
  void wait_worker() { upcall::this_task::yield(); }
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
