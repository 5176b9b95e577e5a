// runtime/io/reactor.hpp: the I/O reactor of a runtime (runtime/DESIGN.md section 13, "I/O").
// It owns one io_uring per core (or, in the epoll backend, one epoll instance per core; see
// epoll_backend.cpp), the hooks the scheduler loop calls (poll, ready, park, wake), and the
// per-runtime state that picks the backend, and the pooled request records (IoOp). It does not
// own the public calls (io_ops.cpp) nor the fibers that wait.
//
// Who touches what:
//  - Reactor::ring's submission and completion queues (liburing's struct io_uring state):
//    the core's holder only, inside a runtime region. They move with the core (a takeover's
//    claim CAS and the hand-over's release store order them like every owner-only field).
//  - Reactor::ring_fd: fixed after start; any thread may use it for IORING_REGISTER_SYNC_CANCEL
//    (a cancel issued by the waiting fiber, wherever it runs) and as a MSG_RING target.
//  - IoOp: written by the preparing fiber before submission; `res` then `state` (acq_rel) by the
//    holder that reaps its completion; read by the waiter after it saw kDone (acquire).
#pragma once

#include <liburing.h>
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/sync/parker.hpp"

namespace upcall::rt {

struct Core;
class RuntimeImpl;
struct Reactor;

enum class IoBackend : std::uint8_t {
  uring,  // io_uring per core (default)
  epoll,  // readiness per core (epoll) + non-blocking syscalls
};

struct Activation;

// One in-flight io_uring request. Pooled and type-stable (never freed while the runtime lives):
// a waiter may abandon a request whose completion is stuck behind a blocked thread (section 13,
// "Recovery"), and the reaper then recycles the record when that completion finally arrives.
struct IoOp {
  static constexpr std::uint32_t kWaiting = 0, kDone = 1, kAbandoned = 2;
  // kWaiting -> kDone by the reaper (exchange, acq_rel: release publishes res and the buffer to
  // the waiter's acquire load; if it finds kAbandoned it recycles the record instead), or
  // kWaiting -> kAbandoned by the waiter (CAS). The reaper reads `waker` before its exchange:
  // once kDone is visible the waiter may recycle the record.
  std::atomic<std::uint32_t> state{kWaiting};
  std::int32_t res = 0;
  Waker waker = 0;
  Reactor* ring = nullptr;  // where it was submitted (cancellation goes there); fixed per use
  // Set by a new holder after a takeover: the request was submitted by the thread that lost
  // the core; the waiter should cancel and resubmit it. Relaxed: the unpark that follows orders it.
  std::atomic<bool> recover{false};
  // --- Holder-only of `ring`'s core: the in-flight list and who prepared it.
  Activation* submitter = nullptr;
  IoOp* prev = nullptr;
  IoOp* next = nullptr;
  IoOp* free_next = nullptr;  // pool link (owner of the free list)
};

// Value of user_data that marks a wake-up message (MSG_RING) rather than an IoOp.
inline constexpr std::uint64_t kWakeUserData = 0;

// A readiness wait of the epoll backend. Slots live in their reactor's table (never freed while
// the reactor lives) and carry a generation, so an event the poller collected for a wait that
// has since timed out is recognised as stale instead of touching the waiter's stack.
// Every field is guarded by Reactor::mu.
struct EpollSlot {
  std::uint32_t gen = 0;
  std::uint8_t state = 0;  // 0 free, 1 armed, 2 fired
  std::uint32_t revents = 0;
  Waker waker = 0;
};

struct Reactor {
  Core* core = nullptr;
  IoBackend kind = IoBackend::uring;
  // --- uring. Holder-only, except ring_fd (fixed).
  io_uring ring{};
  int ring_fd = -1;
  std::uint64_t inflight = 0;  // submitted or prepared, completion not reaped (holder-only)
  IoOp* inflight_head = nullptr;  // in-flight list (holder-only)
  IoOp* free_ops = nullptr;       // per-core op cache (holder-only)
  std::uint32_t free_count = 0;
  // Recovery after a holder change (holder-only): the last holder seen by io_poll, the thread
  // whose requests are to be recovered, and when.
  Activation* last_holder = nullptr;
  std::int64_t recover_at = 0;  // 0: no recovery pending
  int recover_checks = 0;       // re-checks done since the last holder change
  // --- epoll. epfd and evfd are fixed after start; waits register themselves (any thread).
  int epfd = -1;
  int evfd = -1;
  std::mutex mu;                       // guards slots and free_slots
  std::deque<EpollSlot> slots;         // stable addresses; index = event data >> 32
  std::vector<std::uint32_t> free_slots;
  // --- Both backends. Sends by this core's fibers since the last fairness yield (holder-only,
  // inside a region; io_ops.cpp plan_send).
  std::uint32_t sends = 0;
  // Counters (holder writes relaxed, anyone reads).
  std::atomic<std::uint64_t> submitted{0}, completed{0}, parks{0}, wakes{0}, recovered{0};
};

// Per-runtime I/O state: the backend and, for uring, a small ring that sends MSG_RING wake-ups
// on behalf of any thread (a plain thread has no ring of its own).
struct IoRuntime {
  IoBackend kind = IoBackend::uring;
  std::mutex waker_mu;   // guards waker_ring (submission from any thread)
  io_uring waker_ring{};
  bool waker_ok = false;
  std::mutex pool_mu;               // guards pool and all_ops
  IoOp* pool = nullptr;             // ops spilled from core caches or freed off-core
  std::vector<IoOp*> all_ops;       // every op ever made, deleted at stop
};

// Start-up / shutdown hooks (runtime_impl.cpp). io_runtime_start picks the backend from
// cfg.io (uring by default; epoll when asked, or when io_uring is not allowed here, announced
// once) and creates the per-core reactors; it writes the effective name into cfg.io.
void io_runtime_start(RuntimeImpl* rt);
// After every runtime thread was joined.
void io_runtime_stop(RuntimeImpl* rt) noexcept;

// Scheduler hooks; `c` is held by the caller, inside a region.
// Submits prepared requests and dispatches completions (fibers become ready on c). True when
// some fiber was made ready.
bool io_poll(Core* c) noexcept;
// Completions (or a wake-up) are waiting to be dispatched: the idle loop's work check.
bool io_ready(Core* c) noexcept;
// The idle wait (P4): sleeps in the ring (or epoll) until a completion, a wake-up message or
// `timeout_ns` (-1: none). Marked as an intentional wait for the activations.
void io_park(Core* c, std::int64_t timeout_ns) noexcept;
// Wakes core `target` out of io_park (any thread). The caller has already cleared its
// park_word; a message posted before the target sleeps makes its wait return at once.
void io_wake(Core* target) noexcept;

// Holder-only: a free submission entry on c's ring (submits the queue first when it is full)
// and a fresh op record for it, linked into c's in-flight list; nullptr when the ring is full.
io_uring_sqe* io_get_sqe(Core* c, IoOp** op) noexcept;
// Returns an op record to the pool. `here`: the caller's held core or nullptr.
void io_op_free(Core* here, IoOp* op) noexcept;
// Any thread: asks the kernel to cancel `op` on its ring, waiting at most `timeout_ns`. 0 or a
// negative errno (-ENOENT: not found, e.g. not submitted yet or already completed).
int io_cancel(IoOp* op, std::int64_t timeout_ns) noexcept;

// The effective backend of the caller's runtime (nullptr outside a held core).
Reactor* current_reactor() noexcept;

}  // namespace upcall::rt
