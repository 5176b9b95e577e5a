// The parts of the experiment both schedulers share: the request record and its five time
// stamps, the arrival schedule, the calibrated synthetic work, the request handler, the FIFO of
// idle workers, and the stage table. The schedulers themselves (who runs the dispatcher and the
// workers, and how they wait) are in sched_threads.cpp and sched_upcall.cpp.
//
// Stages of one request (README "The RocksDB experiment" defines the rows):
//   arrival --ingress--> taken --handle--> handed --worker queue--> started --service--> finished
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <upcall/options.hpp>

#include "database.hpp"
#include "flags.hpp"
#include "wire.hpp"

namespace rocksdb_server {

int64_t mono_ns();  // CLOCK_MONOTONIC in ns

// One request. Each time stamp (ns since the run's start) is written by exactly one party:
// arrival by the generator (schedule) or the connection that read it; taken and handed by the
// dispatcher; started, finished and result by the worker that ran it. The dispatcher's handoff
// to the worker (a release/acquire pair in each scheduler) orders the first three before the
// worker's; everything is read after the run has joined every party.
struct Request {
  int64_t arrival = 0;
  int64_t taken = 0;
  int64_t handed = 0;
  int64_t started = 0;
  int64_t finished = 0;
  uint32_t key = 0;
  char type = wire::kGet;
  int32_t result = 0;              // value bytes (GET), keys scanned (RANGE), -1 not found
  std::string* value = nullptr;    // network mode: where a GET's value goes
  void* origin = nullptr;          // network mode: the connection to notify
};

// Arrivals of the whole run ([0, discard + experiment)), Poisson at flags.throughput, each
// RANGE with probability range_query_ratio, keys uniform. Deterministic for a seed.
std::vector<Request> make_schedule(const Flags& f);

// Synthetic CPU work in calibrated units, so that a request costs the same CPU time in both
// schedulers whether or not it was descheduled in the middle (a wall-clock spin would finish a
// preempted request early and hide the work).
class Spinner {
 public:
  void calibrate();  // a few hundred microseconds; takes the fastest of several runs
  double units_per_ns() const { return units_per_ns_; }
  // Burns `ns` worth of work. Every ~1 us checks the clock and calls yield() once `slice_ns`
  // of wall time passed since the start or the last yield (slice_ns <= 0: never).
  template <class Yield>
  void spin(int64_t ns, int64_t slice_ns, Yield&& yield) const {
    if (ns <= 0) return;
    auto units = static_cast<uint64_t>(static_cast<double>(ns) * units_per_ns_);
    const auto chunk = static_cast<uint64_t>(1000 * units_per_ns_) + 1;
    int64_t last = slice_ns > 0 ? mono_ns() : 0;
    while (units) {
      const uint64_t u = units < chunk ? units : chunk;
      burn(u);
      units -= u;
      if (slice_ns > 0 && units) {
        const int64_t now = mono_ns();
        if (now - last >= slice_ns) {
          yield();
          last = mono_ns();
        }
      }
    }
  }
  static void burn(uint64_t units);

 private:
  double units_per_ns_ = 1;
};

// Runs one request: the database part, then synthetic work up to the type's service time.
class Handler {
 public:
  Handler(const Database& db, const Flags& f, const Spinner& s) : db_(db), f_(f), spin_(s) {}
  template <class Yield>
  void run(Request& r, int64_t slice_ns, Yield&& yield) const {
    const int64_t t0 = mono_ns();
    int64_t service;
    if (r.type == wire::kRange) {
      r.result = db_.range(r.key, f_.range_keys);
      service = f_.range_ns;
    } else {
      r.result = db_.get(r.key, r.value);
      service = f_.get_ns;
    }
    spin_.spin(service - (mono_ns() - t0), slice_ns, yield);
  }

 private:
  const Database& db_;
  const Flags& f_;
  const Spinner& spin_;
};

// An intrusive multi-producer single-consumer FIFO (D. Vyukov's algorithm): workers push
// themselves when they go idle, the dispatcher pops the longest-idle one. push is wait-free;
// pop may return nullptr while a push is half done (the pusher is between its exchange and its
// link store), which the dispatcher treats as "none idle yet" and retries.
struct IdleNode {
  std::atomic<IdleNode*> next{nullptr};
};
class IdleQueue {
 public:
  IdleQueue() : head_(&stub_), tail_(&stub_) {}
  // Any thread. acq_rel exchange: release publishes n's fields to the popper, acquire orders
  // after the previous pusher; the link store (release) pairs with pop's acquire loads.
  void push(IdleNode* n) {
    n->next.store(nullptr, std::memory_order_relaxed);
    IdleNode* prev = head_.exchange(n, std::memory_order_acq_rel);
    prev->next.store(n, std::memory_order_release);
  }
  // The dispatcher only.
  IdleNode* pop();
  // The dispatcher only: false when nothing is queued and no push has begun. A true answer
  // may precede a pop that still returns nullptr (a push half done). The seq_cst load takes
  // part in the threads scheduler's Dekker handshake (sched_threads.cpp).
  bool nonempty() const {
    return tail_ != &stub_ || head_.load(std::memory_order_seq_cst) != &stub_;
  }

 private:
  std::atomic<IdleNode*> head_;  // producers
  IdleNode* tail_;               // consumer only
  IdleNode stub_;
};

// Prints the seed's table for the requests whose arrival lies in [from, to) and that finished;
// `seconds` is the measured interval for the throughput column.
void print_table(const std::vector<const Request*>& measured, double seconds, std::FILE* out);

// Where the dispatcher gets requests: the in-process Poisson schedule, or the network's
// connections. Used by the dispatcher only (push sides are the source's own business).
class Source {
 public:
  virtual ~Source() = default;
  // Removes and returns the next request due at `now` (ns since the run's start), or nullptr.
  virtual Request* take(int64_t now) = 0;
  // When the next request is due (schedule), or -1 when unknown (network: wait_arrival).
  virtual int64_t next_time() const = 0;
  // Network: sleeps until a request may have arrived or the source ended.
  virtual void wait_arrival() {}
  // No request will come any more.
  virtual bool ended() const = 0;
};

class ScheduleSource final : public Source {
 public:
  explicit ScheduleSource(std::vector<Request>& r) : reqs_(r) {}
  Request* take(int64_t now) override {
    if (next_ < reqs_.size() && reqs_[next_].arrival <= now) return &reqs_[next_++];
    return nullptr;
  }
  int64_t next_time() const override {
    return next_ < reqs_.size() ? reqs_[next_].arrival : INT64_MAX;
  }
  bool ended() const override { return next_ >= reqs_.size(); }
  std::size_t taken() const { return next_; }

 private:
  std::vector<Request>& reqs_;
  std::size_t next_ = 0;
};

// The dispatcher loop both schedulers run; Hooks says how to wait and how to hand over:
//   hooks.now()                      ns since the run's start
//   hooks.pop_idle()                 the longest-idle worker or nullptr (Worker has box, n)
//   hooks.wait_arrival(src, now)     nothing due: sleep until src.next_time() / wait / yield
//   hooks.wait_worker()              a request is due and no worker is idle
//   hooks.hand(worker)               the worker's box is filled: wake it
// The dispatcher takes a request off the source when it can hand it to a worker: a request
// that waits for a free worker is still in the ingress queue. Returns requests dispatched.
template <class Hooks>
int64_t dispatch(Source& src, int batch, int64_t deadline, Hooks& hooks) {
  int64_t dispatched = 0;
  Request* held = nullptr;  // due, taken off the source, waiting for a worker: still "ingress"
  for (;;) {
    int64_t now = hooks.now();
    if (now >= deadline) break;
    if (!held) held = src.take(now);
    if (!held) {
      if (src.ended()) break;
      hooks.wait_arrival(src, now);
      continue;
    }
    auto* w = hooks.pop_idle();
    if (!w) {
      hooks.wait_worker();
      continue;
    }
    now = hooks.now();
    int k = 0;
    do {
      held->taken = now;
      w->box[k++] = held;
      held = nullptr;
    } while (k < batch && (held = src.take(now)) != nullptr);
    const int64_t handed = hooks.now();
    for (int i = 0; i < k; ++i) w->box[i]->handed = handed;
    w->n = k;
    dispatched += k;
    hooks.hand(w);
  }
  return dispatched;
}

// Runs the dispatcher and the workers with one scheduler until `src` ends or `deadline`, then
// waits for the dispatched requests (until deadline + kDrainNs at most) and stops the workers.
// t0 is the run's start (CLOCK_MONOTONIC ns); `on_started` is called once everything runs.
struct RunSpec {
  Source* src = nullptr;
  int64_t t0 = 0;
  int64_t deadline = INT64_MAX;   // ns since t0: stop dispatching
  int64_t drain_end = INT64_MAX;  // ns since t0: stop waiting for dispatched requests
  void (*on_done)(Request&) = nullptr;  // network: answer the request (any worker)
  bool poll_idle = false;  // upcall: idle cores poll unless --upcall-idle/UPCALL_IDLE is given
  // Called once the workers run: in the dispatcher's thread (threads) or fiber (upcall), so
  // that fibers it spawns belong to the runtime. Network mode starts its acceptor here.
  std::function<void()> start;
};
void run_threads(const Flags& f, const Handler& h, const RunSpec& spec);
void run_upcall(const Flags& f, const Handler& h, const RunSpec& spec, upcall::Options opts);

// How long a run waits for requests still queued after the last arrival.
inline constexpr int64_t kDrainNs = 3'000'000'000;

}  // namespace rocksdb_server
