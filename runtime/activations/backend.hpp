// runtime/activations/backend.hpp: where the runtime learns that a kernel thread blocked.
// Two backends sit behind one small interface:
//  - bpf: the kernel-glue eBPF programs keep a status word per activation in an mmapped map
//    (state, sequence, last switch time); a reader needs no system call (kernel-glue/).
//  - fallback: no BPF. A watchdog reads /proc/self/task/<tid>/stat of a holder that has been in
//    user code without a runtime entry for a while (runtime/activations/watchdog.cpp).
// The backend owns no scheduling decision: the standby (standby.cpp) and the watchdog decide.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "upcall/kernel_events.hpp"

namespace upcall::rt {

// Values of set_watch (kernel-glue/upcall_abi.h, enum upcall_watch).
inline constexpr std::uint32_t kWatchNone = 0, kWatchWindow = 1, kWatchBlocks = 2;

enum class ThreadRunState : std::uint8_t { unknown, running, preempted, blocked, dead };

// One consistent read of an activation's status (a seqlock snapshot for bpf).
struct StatusView {
  ThreadRunState state = ThreadRunState::unknown;
  std::uint32_t seq = 0;          // advances on every change (bpf); 0 for fallback
  std::uint32_t prev_state = 0;   // the kernel's task->__state at the switch-out
  std::uint32_t intent = 0;       // 1 = the runtime waits on purpose (idle park)
  std::int64_t last_switch_ns = 0;  // CLOCK_MONOTONIC of the last switch in or out
  int cpu = -1;                     // the CPU of the last switch (bpf); -1 unknown
};

// True for the sleep states a takeover is for: interruptible or uninterruptible sleep
// (flag bits like TASK_NOLOAD on top allowed). Stopped (SIGSTOP), traced (ptrace), dead and
// waking are not blocks: the thread will not come back by itself or is about to run.
inline bool is_block_state(std::uint32_t prev_state) {
  constexpr std::uint32_t kInterruptible = 0x1, kUninterruptible = 0x2, kStopped = 0x4,
                          kTraced = 0x8, kDead = 0x80 | 0x10 | 0x20;
  if (prev_state & (kStopped | kTraced | kDead)) return false;
  return (prev_state & (kInterruptible | kUninterruptible)) != 0;
}

// Receives the kernel messages about the threads registered with it (bpf backend only), on the
// backend's consumer thread. Must not block or register/unregister threads.
class KernelEventSink {
 public:
  virtual void on_kernel_event(const KernelEvent& e) noexcept = 0;

 protected:
  ~KernelEventSink() = default;
};

class ActivationBackend {
 public:
  virtual ~ActivationBackend() = default;
  virtual const char* name() const = 0;
  // Registers a thread; returns its slot (>= 0) or a negative errno (-ENOSPC: no slot left).
  // With a sink, the thread's kernel messages go to it (core is copied into each event) until
  // unregister_thread returns; after that no delivery for this thread is in progress.
  // `owner` (the Activation) is what on_rescue_alert receives for this thread's alerts.
  virtual int register_thread(int tid, KernelEventSink* sink = nullptr, int core = -1,
                              void* owner = nullptr) = 0;
  // Whether register_thread's sink will ever be called (a message stream exists).
  virtual bool has_event_stream() const { return false; }
  virtual void unregister_thread(int tid, std::uint32_t slot) = 0;
  // Lock-free, no system call for bpf. 0 or a negative errno.
  virtual int read(std::uint32_t slot, StatusView* out) const = 0;
  // Marks an intentional wait (UPCALL_INTENT_PARKED) before it starts; cleared after.
  virtual void set_intent(std::uint32_t slot, std::uint32_t intent) = 0;
  // Asks for alerts (on_rescue_alert, on the backend's alert thread) about this slot's thread:
  // kWatchWindow when it blocks or is preempted (the window after a takeover), kWatchBlocks
  // when it blocks (its core's standby sleeps, lazy standby), kWatchNone for none. Owner
  // thread only; no system call. A backend without alerts ignores it.
  virtual void set_watch(std::uint32_t /*slot*/, std::uint32_t /*watch*/) {}
  // Whether alerts are delivered (the bpf backend's alert thread runs).
  virtual bool has_alerts() const { return false; }
  // Cumulative counters of the kernel side (events seen / filtered), for the overhead report.
  virtual std::string describe_counters() const { return {}; }
};

// Called by the bpf backend's alert thread for a registered thread whose watch asked for it
// (runtime/activations/rescue.cpp). `owner` is the pointer given at registration; the call
// happens under the backend's registration lock, so the thread is registered throughout.
void on_rescue_alert(void* owner, bool preempted) noexcept;

// The process-wide BPF backend (one BPF program set per process, shared by every runtime),
// loaded on first use. Returns nullptr and fills *why (one line) when BPF cannot be used here.
std::shared_ptr<ActivationBackend> bpf_backend(std::string* why);
// The fallback backend: no status words; states come from procfs.
std::shared_ptr<ActivationBackend> procfs_backend();

// Whether a thread may go SCHED_IDLE -> SCHED_OTHER here (checked once per process on a
// scratch thread); *why gets the errno name when not.
bool can_leave_sched_idle(std::string* why);

// /proc/self/task/<tid>/stat state letter ('R', 'S', 'D', 'T', 't', ...), or 0 on failure.
char procfs_thread_state(int tid);

}  // namespace upcall::rt
