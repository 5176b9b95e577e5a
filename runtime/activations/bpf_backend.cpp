// runtime/activations/bpf_backend.cpp: the bpf backend, a thin adapter over kernel-glue's
// BpfGlue. One BpfGlue per process at a time (the programs filter on our pid, then on
// registered threads), shared by the runtimes alive and closed with the last of them. Slots
// are handed out from a process-wide bitmap under a mutex (registration is off every hot path).
//
// Message stream. The BPF programs write ghOSt-style records into a ring buffer without waking
// anyone (UPCALL_RING_WAKE_NONE: a wake-up is an IPI inside the traced switch, measured too
// costly; kernel-glue/upcall_abi.h). The first registration with a sink starts one consumer
// thread per process, which drains the ring every kConsumePeriodMs:
//  1. poll the ring (sleeps up to the period), for each record:
//  2. lock mu_; if sinks_[slot] is set and was registered for the record's tid, convert the
//     record and call the sink (still under mu_); unlock.
//  3. unregister_thread clears sinks_[slot] under mu_, so once it returns no delivery for that
//     thread runs or will start: a runtime may be destroyed right after unregistering all.
// The standby's takeover path never takes mu_ (it reads the mmapped status words only).
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <cerrno>
#include <mutex>
#include <thread>
#include <vector>

#include "bpf_glue.hpp"
#include "runtime/activations/backend.hpp"
#include "runtime/core/signals.hpp"

namespace upcall::rt {

namespace {

constexpr std::uint32_t kSlots = 4096;  // activations per process (all runtimes together)
constexpr int kConsumePeriodMs = 2;     // ring drain period (delivery delay bound, plus noise)

KernelEvent to_event(const upcall_msg& m, int core) {
  KernelEvent e;
  e.type = static_cast<KernelEvent::Type>(m.type);
  e.core = core;
  e.tid = m.tid;
  e.seq = m.seq;
  e.cpu = static_cast<int>(m.cpu);
  e.time_ns = static_cast<std::int64_t>(m.ts_ns);  // bpf_ktime_get_ns: CLOCK_MONOTONIC
  switch (m.type) {
    case UPCALL_MSG_TASK_BLOCKED:
      e.kernel_state = m.payload.blocked.prev_state;
      e.runtime_ns = m.payload.blocked.runtime_ns;
      break;
    case UPCALL_MSG_TASK_PREEMPT:
      e.kernel_state = m.payload.preempt.prev_state;
      e.runtime_ns = m.payload.preempt.runtime_ns;
      break;
    case UPCALL_MSG_TASK_WAKEUP:
      e.waker_tid = m.payload.wakeup.waker_tid;
      e.target_cpu = static_cast<int>(m.payload.wakeup.target_cpu);
      break;
    case UPCALL_MSG_TASK_DEAD: e.runtime_ns = m.payload.dead.runtime_ns; break;
    default: break;
  }
  return e;
}

class BpfBackend final : public ActivationBackend {
 public:
  const char* name() const override { return "bpf"; }

  int open(std::string* why) {
    const int rc = glue_.open(getpid(), kSlots);
    if (rc < 0) *why = glue_.explain(rc);
    used_.assign(kSlots, false);
    sinks_.assign(kSlots, Sink{});
    owners_.assign(kSlots, Owner{});
    if (rc == 0) {
      // Started here, on the thread that creates the first runtime (not on a runtime thread
      // pinned to one core's CPU, whose mask and policy it would inherit).
      try {
        alerter_ = std::thread([this] { alert_loop(); });
        alerts_ok_ = true;
      } catch (...) {  // no alert thread: has_alerts() says so; lazy standbys fall back
      }
    }
    return rc;
  }

  ~BpfBackend() override {
    stop_.store(true, std::memory_order_relaxed);
    if (consumer_.joinable()) consumer_.join();
    if (alerter_.joinable()) {
      glue_.interrupt_alerts();
      alerter_.join();
    }
  }

  int register_thread(int tid, KernelEventSink* sink, int core, void* owner) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::uint32_t s = 0; s < kSlots; ++s) {
      if (used_[s]) continue;
      const int rc = glue_.register_thread(tid, s);
      if (rc < 0) return rc;
      used_[s] = true;
      sinks_[s] = Sink{sink, tid, core};
      {
        std::lock_guard<std::mutex> olock(owners_mu_);
        owners_[s] = Owner{tid, owner};
      }
      if (sink && !consumer_.joinable()) {
        try {
          consumer_ = std::thread([this] { consume_loop(); });
        } catch (...) {  // no thread: no stream, the activations themselves are unaffected
          sinks_[s].sink = nullptr;
        }
      }
      return static_cast<int>(s);
    }
    return -ENOSPC;
  }

  void unregister_thread(int tid, std::uint32_t slot) override {
    std::lock_guard<std::mutex> lock(mu_);  // step 3: no delivery to this slot after this
    if (slot < kSlots) {
      std::lock_guard<std::mutex> olock(owners_mu_);  // no alert for it after this either
      owners_[slot] = Owner{};
    }
    glue_.unregister_thread(tid);
    if (slot < kSlots) {
      used_[slot] = false;
      sinks_[slot] = Sink{};
    }
  }

  bool has_event_stream() const override { return true; }

  int read(std::uint32_t slot, StatusView* out) const override {
    upcall_status_word w;
    const int rc = glue_.read_status(slot, &w);
    if (rc < 0) return rc;
    switch (w.state) {
      case UPCALL_ST_RUNNING: out->state = ThreadRunState::running; break;
      case UPCALL_ST_PREEMPTED: out->state = ThreadRunState::preempted; break;
      case UPCALL_ST_BLOCKED: out->state = ThreadRunState::blocked; break;
      case UPCALL_ST_DEAD: out->state = ThreadRunState::dead; break;
      default: out->state = ThreadRunState::unknown; break;
    }
    out->seq = w.seq;
    out->prev_state = w.prev_state;
    out->intent = w.intent;
    out->last_switch_ns = static_cast<std::int64_t>(w.last_switch_ns);
    out->cpu = static_cast<int>(w.cpu);
    return 0;
  }

  void set_intent(std::uint32_t slot, std::uint32_t intent) override {
    glue_.set_intent(slot, intent);
  }

  bool has_alerts() const override { return alerts_ok_; }

  void set_watch(std::uint32_t slot, std::uint32_t watch) override {
    static_assert(kWatchWindow == UPCALL_WATCH_ALERT && kWatchBlocks == UPCALL_WATCH_BLOCKS);
    glue_.set_watch(slot, watch);
  }

  std::string describe_counters() const override {
    kglue::Counters c;
    if (glue_.read_counters(&c) < 0) return {};
    return "bpf events=" + std::to_string(c.events) +
           " filtered_other_process=" + std::to_string(c.filtered_tgid) +
           " filtered_other_thread=" + std::to_string(c.filtered_tid) +
           " handled=" + std::to_string(c.handled);
  }

 private:
  struct Sink {
    KernelEventSink* sink = nullptr;
    int tid = 0;
    int core = -1;
  };
  struct Owner {
    int tid = 0;
    void* owner = nullptr;  // the Activation, for on_rescue_alert
  };

  // The alert thread: sleeps in the alerts ring (every alert wakes it; the destructor
  // interrupts it) and hands each alert of a still-registered thread to on_rescue_alert,
  // under owners_mu_ (so unregister_thread waits out a call in progress; a lock of its own,
  // not mu_, which the message consumer holds while a policy handles an event).
  void alert_loop() {
    // Normal policy on any CPU of the process, whatever the creating thread had: an alert
    // must not wait behind the antagonist of a SCHED_IDLE creator (best effort).
    sched_param p{};
    p.sched_priority = 0;
    sched_setscheduler(0, SCHED_OTHER, &p);
    while (!stop_.load(std::memory_order_relaxed)) {
      const int r = glue_.wait_alerts(-1, [](void* ctx, const upcall_alert& al) {
        auto* self = static_cast<BpfBackend*>(ctx);
        std::lock_guard<std::mutex> lock(self->owners_mu_);
        if (al.slot >= kSlots) return;
        const Owner& o = self->owners_[al.slot];
        if (o.owner && static_cast<std::uint32_t>(o.tid) == al.tid)
          on_rescue_alert(o.owner, al.state == UPCALL_ST_PREEMPTED);
      }, this);
      // A failing wait (not an interruption) must not spin: back off, and say so once.
      if (r < 0 && r != -EINTR) {
        announce_once("alerts", "upcall: the kernel alert consumer failed (" +
                                    std::string(std::strerror(-r)) + "); retrying every 10 ms");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }

  // The consumer thread (steps 1-2 of the file comment). Single consumer of glue_'s ring.
  void consume_loop() {
    while (!stop_.load(std::memory_order_relaxed)) {
      glue_.poll(kConsumePeriodMs, [this](const upcall_msg& m) {
        std::lock_guard<std::mutex> lock(mu_);
        if (m.slot < kSlots) {
          const Sink& k = sinks_[m.slot];
          if (k.sink && static_cast<std::uint32_t>(k.tid) == m.tid)
            k.sink->on_kernel_event(to_event(m, k.core));
        }
        return 0;
      });
    }
  }

  kglue::BpfGlue glue_;
  std::mutex mu_;
  std::vector<bool> used_;    // guarded by mu_
  std::vector<Sink> sinks_;   // guarded by mu_
  std::thread consumer_;      // started under mu_ by the first registration with a sink
  std::mutex owners_mu_;
  std::vector<Owner> owners_;  // guarded by owners_mu_
  std::thread alerter_;        // started by open()
  bool alerts_ok_ = false;     // the alert thread runs (written by open() only)
  std::atomic<bool> stop_{false};  // set by the destructor; the consumer checks it each period
};

}  // namespace

std::shared_ptr<ActivationBackend> bpf_backend(std::string* why) {
  // Shared by the runtimes alive at a time; the programs detach when the last one goes (so a
  // process without a runtime adds nothing to the machine's context switches).
  static std::mutex mu;
  static std::weak_ptr<ActivationBackend> current;
  std::lock_guard<std::mutex> lock(mu);
  if (auto b = current.lock()) return b;
  auto b = std::make_shared<BpfBackend>();
  std::string failure;
  if (b->open(&failure) != 0) {
    if (why) *why = failure;
    return nullptr;
  }
  current = b;
  return b;
}

}  // namespace upcall::rt
