// runtime/io/reactor.cpp: backend selection, the io_uring reactor of each core and the
// scheduler hooks (runtime/DESIGN.md section 13). The epoll backend's halves of the same hooks
// live in epoll_backend.cpp; the public calls in io_ops.cpp.
//
// Idle wait without lost wake-ups (the P4 step of section 5, with a ring):
//  1. The parking core P has set park_word = 1 (P1) and re-checked the queues (P3).
//  2. P re-reads park_word (acquire); if it is 0 a waker already took P off idle_list: no wait.
//  3. Else P sleeps in io_uring_enter(GETEVENTS, min_complete = 1, timeout = next timer).
//  4. A waker W clears park_word (release) and then posts a MSG_RING message to P's ring.
// If W's message lands before P enters the kernel, P's CQ is not empty and the wait returns at
// once; if after, posting the CQE wakes the ring's waiters. MSG_RING on a ring without
// DEFER_TASKRUN posts the CQE directly from the sender (no task work of the target's
// submitter), so a takeover of P's core does not delay it. A completion of P's own I/O wakes
// the wait the same way; P then leaves idle_list itself (as at P3) and dispatches it.
#include "runtime/io/reactor.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/activations/activations.hpp"
#include "runtime/activations/backend.hpp"
#include "runtime/activations/region.hpp"
#include "runtime/core/runtime_impl.hpp"
#include "runtime/core/signals.hpp"

namespace upcall::rt {

// epoll_backend.cpp
int epoll_reactor_init(Reactor* r) noexcept;
void epoll_reactor_exit(Reactor* r) noexcept;
bool epoll_poll(Core* c, std::int64_t timeout_ns) noexcept;
void epoll_wake(Core* target) noexcept;

namespace {

// Ring size per core: submissions are batched per scheduling round; a full SQ is submitted
// early (io_get_sqe), so this only bounds a batch. The CQ is twice as large, and the kernel
// keeps overflowed completions (IORING_FEAT_NODROP) until io_poll flushes them.
constexpr unsigned kRingEntries = 1024;
// Recovery grace: requests of a thread that lost the core are recovered (cancelled and
// resubmitted by their waiters) once the new holder has held the core this long. Blocks
// shorter than this (most page faults) cost no recovery work; longer ones delay the requests
// in flight by about this much instead of by the whole block (tests/io/io_takeover_test.cpp).
constexpr std::int64_t kRecoverGraceNs = 1'000'000;
constexpr std::uint32_t kOpCacheMax = 1024;  // per-core op cache before spilling to the pool
// A thread that was not stuck at the first check may block later (inside upcall::blocking, the
// call starts after the handoff): look again 10x and 100x later, then stop walking the list.
constexpr int kRecoverRechecks = 2;

int uring_init(io_uring* ring, unsigned entries) {
  io_uring_params p{};
  // No SINGLE_ISSUER / DEFER_TASKRUN: the thread holding a core changes (takeovers, blocking
  // handoffs). No COOP_TASKRUN: the default TWA_SIGNAL kick lets a holder blocked in an
  // interruptible sleep still run its completions' task work (shared/DESIGN.md, "I/O").
  p.flags = IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL;
  return io_uring_queue_init_params(entries, ring, &p);
}

void unlink(Reactor* r, IoOp* op) noexcept {
  if (op->prev) op->prev->next = op->next;
  else r->inflight_head = op->next;
  if (op->next) op->next->prev = op->prev;
  op->prev = op->next = nullptr;
  --r->inflight;
}

// Holder of r's core. True when a waiter was woken.
bool dispatch(Reactor* r, io_uring_cqe* cqe) noexcept {
  if (cqe->user_data == kWakeUserData) return false;
  auto* op = reinterpret_cast<IoOp*>(static_cast<std::uintptr_t>(cqe->user_data));
  unlink(r, op);
  // Read the waker first: once kDone is visible the waiter may recycle the record.
  const Waker w = op->waker;
  op->res = cqe->res;
  // acq_rel: release publishes res (and the buffer the kernel filled before posting the CQE)
  // to the waiter's acquire load; acquire pairs with an abandoning waiter's CAS.
  if (op->state.exchange(IoOp::kDone, std::memory_order_acq_rel) == IoOp::kAbandoned) {
    io_op_free(r->core, op);  // its waiter left after a recovery: nobody else knows it
    return false;
  }
  unpark_waker(w);
  return true;
}

// Whether completions of requests `a` submitted may be stuck: it sleeps uninterruptibly (an
// interruptible sleeper is kicked by the task-work notification and runs them in ~0.2 ms, and
// a running thread runs them itself), or the activation backend cannot tell.
bool completions_stuck(RuntimeImpl* rt, Activation* a) noexcept {
  if (!rt->backend) return true;
  const int slot = a->slot.load(std::memory_order_acquire);
  StatusView st;
  if (slot < 0 || rt->backend->read(static_cast<std::uint32_t>(slot), &st) != 0) return true;
  if (st.state == ThreadRunState::unknown) return true;
  return st.state == ThreadRunState::blocked && (st.prev_state & 0x2) != 0;  // TASK_UNINTERRUPTIBLE
}

// Holder: asks the waiters of requests prepared by earlier holders of this core whose
// completions may be stuck to cancel and continue them (section 13, "Recovery").
void recover(Reactor* r, Activation* self) noexcept {
  RuntimeImpl* rt = r->core->rt;
  std::uint64_t n = 0;
  bool skipped = false;
  Activation* checked = nullptr;  // the last submitter looked at, and the answer
  bool stuck = false;
  for (IoOp* op = r->inflight_head; op; op = op->next) {
    if (op->submitter == self || op->recover.load(std::memory_order_relaxed) ||
        op->state.load(std::memory_order_relaxed) != IoOp::kWaiting)
      continue;
    if (op->submitter != checked) {
      checked = op->submitter;
      stuck = completions_stuck(rt, checked);
    }
    if (!stuck) {
      skipped = true;
      continue;
    }
    op->recover.store(true, std::memory_order_relaxed);  // the unpark's release publishes it
    unpark_waker(op->waker);
    ++n;
  }
  if (n) r->recovered.store(r->recovered.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  if (skipped && r->recover_checks < kRecoverRechecks) {
    std::int64_t delay = kRecoverGraceNs;
    for (int i = 0; i <= r->recover_checks; ++i) delay *= 10;
    r->recover_at = now_ns() + delay;
    ++r->recover_checks;
  }
}

}  // namespace

void io_runtime_start(RuntimeImpl* rt) {
  auto* io = new IoRuntime;
  rt->io = io;
  const std::string requested = rt->cfg.io;
  std::string why;
  if (requested == "uring") {
    int rc = uring_init(&io->waker_ring, 8);
    if (rc == 0) {
      io->waker_ok = true;
      bool ok = true;
      for (auto& c : rt->cores) {
        auto* r = new Reactor;
        r->core = c.get();
        rc = uring_init(&r->ring, kRingEntries);
        if (rc < 0) {
          delete r;
          ok = false;
          break;
        }
        r->ring_fd = r->ring.ring_fd;
        c->reactor = r;
      }
      if (ok) {
        io->kind = IoBackend::uring;
        rt->cfg.io = "uring";
        return;
      }
    }
    why = std::string("io_uring_setup: ") + std::strerror(-rc);
    if (rc == -EPERM) why += " (kernel.io_uring_disabled or a seccomp filter?)";
    if (rc == -ENOSYS) why += " (kernel without io_uring)";
    for (auto& c : rt->cores) {
      if (c->reactor) {
        io_uring_queue_exit(&c->reactor->ring);
        delete c->reactor;
        c->reactor = nullptr;
      }
    }
    if (io->waker_ok) io_uring_queue_exit(&io->waker_ring);
    io->waker_ok = false;
    announce_once("io-fallback", "upcall: io=uring unavailable: " + why +
                                     "; using the epoll readiness backend");
  }
  io->kind = IoBackend::epoll;
  rt->cfg.io = "epoll";
  for (auto& c : rt->cores) {
    auto* r = new Reactor;
    r->core = c.get();
    r->kind = IoBackend::epoll;
    const int rc = epoll_reactor_init(r);
    if (rc < 0) {
      // Without even epoll (fd exhaustion at start), I/O calls block their thread and the
      // activations cover the core; announced.
      delete r;
      announce_once("io-none", std::string("upcall: no I/O reactor (epoll_create: ") +
                                   std::strerror(-rc) +
                                   "); I/O calls block their kernel thread");
      rt->cfg.io = "none";
      continue;
    }
    c->reactor = r;
  }
}

void io_runtime_stop(RuntimeImpl* rt) noexcept {
  IoRuntime* io = rt->io;
  if (!io) return;
  for (auto& c : rt->cores) {
    Reactor* r = c->reactor;
    if (!r) continue;
    if (r->kind == IoBackend::uring)
      io_uring_queue_exit(&r->ring);
    else
      epoll_reactor_exit(r);
    delete r;
    c->reactor = nullptr;
  }
  if (io->waker_ok) io_uring_queue_exit(&io->waker_ring);
  for (IoOp* op : io->all_ops) delete op;
  delete io;
  rt->io = nullptr;
}

bool io_poll(Core* c) noexcept {
  Reactor* r = c->reactor;
  if (r->kind == IoBackend::epoll) return epoll_poll(c, 0);
  io_uring* ring = &r->ring;
  Activation* self = current_activation();
  if (__builtin_expect(r->last_holder != self, 0)) {
    // The core changed hands (takeover or blocking handoff): requests the previous holder
    // submitted complete through its task work, which waits while it is blocked.
    if (r->last_holder && r->inflight) {
      r->recover_at = now_ns() + kRecoverGraceNs;
      r->recover_checks = 0;
    }
    r->last_holder = self;
  }
  if (__builtin_expect(r->recover_at != 0, 0) && now_ns() >= r->recover_at) {
    r->recover_at = 0;
    recover(r, self);
  }
  if (io_uring_sq_ready(ring) != 0) {
    const int n = io_uring_submit(ring);
    if (n > 0) r->submitted.store(r->submitted.load(std::memory_order_relaxed) + n,
                                  std::memory_order_relaxed);
  } else if (io_uring_cq_has_overflow(ring)) {
    io_uring_get_events(ring);  // flushes the kernel's overflow list into the CQ
  }
  bool woke = false;
  unsigned head, n = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(ring, head, cqe) {
    ++n;
    woke |= dispatch(r, cqe);
  }
  if (n) {
    io_uring_cq_advance(ring, n);
    r->completed.store(r->completed.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  return woke;
}

bool io_ready(Core* c) noexcept {
  Reactor* r = c->reactor;
  if (r->kind == IoBackend::epoll) return epoll_poll(c, 0);
  return io_uring_cq_ready(&r->ring) != 0 || io_uring_sq_ready(&r->ring) != 0 ||
         io_uring_cq_has_overflow(&r->ring) || r->last_holder != current_activation() ||
         (r->recover_at != 0 && now_ns() >= r->recover_at);
}

void io_park(Core* c, std::int64_t timeout_ns) noexcept {
  Reactor* r = c->reactor;
  Activation* a = current_activation();
  r->parks.store(r->parks.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  // An intentional wait: marked first, so the standby sleeps instead of taking it for a block.
  holder_parking(a);
  if (r->kind == IoBackend::epoll) {
    epoll_poll(c, timeout_ns);
  } else {
    __kernel_timespec ts{};
    if (r->recover_at != 0) {  // wake up for a pending recovery
      const std::int64_t left = r->recover_at - now_ns();
      if (timeout_ns < 0 || left < timeout_ns) timeout_ns = left > 0 ? left : 0;
    }
    if (timeout_ns >= 0) {
      ts.tv_sec = timeout_ns / 1'000'000'000;
      ts.tv_nsec = timeout_ns % 1'000'000'000;
    }
    io_uring_cqe* cqe = nullptr;
    io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, timeout_ns >= 0 ? &ts : nullptr, nullptr);
  }
  holder_unparked(a);
}

void io_wake(Core* target) noexcept {
  Reactor* r = target->reactor;
  r->wakes.fetch_add(1, std::memory_order_relaxed);
  if (r->kind == IoBackend::epoll) {
    epoll_wake(target);
    return;
  }
  IoRuntime* io = target->rt->io;
  std::lock_guard<std::mutex> lock(io->waker_mu);
  io_uring* wr = &io->waker_ring;
  // Failed sends post a CQE here (successful ones skip it): drain them.
  unsigned head, n = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(wr, head, cqe) ++n;
  if (n) io_uring_cq_advance(wr, n);
  io_uring_sqe* sqe = io_uring_get_sqe(wr);
  if (!sqe) {
    io_uring_submit(wr);
    sqe = io_uring_get_sqe(wr);
    if (!sqe) return;  // cannot happen with drained CQs; the target's timer bounds the wait
  }
  io_uring_prep_msg_ring(sqe, r->ring_fd, 0, kWakeUserData, 0);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  if (io_uring_submit(wr) < 1)
    announce_once("io-msg-ring", "upcall: io_uring MSG_RING wake-up failed; an idle core may "
                                 "wake late");
}

io_uring_sqe* io_get_sqe(Core* c, IoOp** out) noexcept {
  Reactor* r = c->reactor;
  io_uring* ring = &r->ring;
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  if (!sqe) {
    io_uring_submit(ring);
    sqe = io_uring_get_sqe(ring);
    if (!sqe) return nullptr;
  }
  IoOp* op = r->free_ops;
  if (op) {
    r->free_ops = op->free_next;
    --r->free_count;
  } else {
    IoRuntime* io = c->rt->io;
    std::lock_guard<std::mutex> lock(io->pool_mu);
    if ((op = io->pool)) {
      io->pool = op->free_next;
    } else {
      op = new (std::nothrow) IoOp;
      if (op) io->all_ops.push_back(op);
    }
  }
  if (!op) {
    // Out of memory: leave the SQE as a no-op rather than half-prepared.
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, kWakeUserData);
    return nullptr;
  }
  op->state.store(IoOp::kWaiting, std::memory_order_relaxed);
  op->recover.store(false, std::memory_order_relaxed);
  op->res = 0;
  op->ring = r;
  op->submitter = current_activation();
  op->prev = nullptr;
  op->next = r->inflight_head;
  if (op->next) op->next->prev = op;
  r->inflight_head = op;
  ++r->inflight;
  *out = op;
  return sqe;
}

void io_op_free(Core* here, IoOp* op) noexcept {
  Reactor* r = here ? here->reactor : nullptr;
  if (r && r->kind == IoBackend::uring && r->free_count < kOpCacheMax) {
    op->free_next = r->free_ops;
    r->free_ops = op;
    ++r->free_count;
    return;
  }
  IoRuntime* io = op->ring->core->rt->io;
  std::lock_guard<std::mutex> lock(io->pool_mu);
  op->free_next = io->pool;
  io->pool = op;
}

int io_cancel(IoOp* op, std::int64_t timeout_ns) noexcept {
  io_uring_sync_cancel_reg reg{};
  reg.addr = reinterpret_cast<std::uintptr_t>(op);
  reg.fd = -1;
  reg.flags = 0;
  reg.timeout.tv_sec = timeout_ns / 1'000'000'000;
  reg.timeout.tv_nsec = timeout_ns % 1'000'000'000;
  // A raw syscall on the fixed ring fd: the liburing wrapper would read the owning core's
  // struct io_uring, which only its holder may touch.
  const long rc = syscall(__NR_io_uring_register, op->ring->ring_fd,
                          IORING_REGISTER_SYNC_CANCEL, &reg, 1);
  return rc < 0 ? -errno : 0;
}

Reactor* current_reactor() noexcept {
  Core* c = current_core();
  return c ? c->reactor : nullptr;
}

}  // namespace upcall::rt
