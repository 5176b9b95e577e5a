// bpf_glue.hpp: the user-space loader of the kernel half of the upcall path.
// It owns the lifetime of activation.bpf.c's programs and maps for one
// process: open + load + attach, the mmapped status-word area, the tid ->
// slot registrations, the ring-buffer consumer and the counters read-out.
// It does not own policy (what a standby does with a BLOCKED word), threads,
// or the fallback backend; the runtime's activations layer wires those.
//
// Low-layer conventions (HOUSE_STYLE "Errors"): every call returns 0 (or a
// count) or a negative errno, nothing throws, and explain() turns a failure
// of open() into one line a user can act on. When the build had no BPF
// toolchain (UPCALL_HAVE_BPF == 0) open() returns -ENOSYS and everything else
// -ENODEV / nullptr.
//
// Threads: open()/close() by one owner thread, with no other call running.
// register_thread/unregister_thread/set_intent/read_counters may be called
// from any thread (kernel map syscalls plus a mutex on the slot table).
// status()/read_status() are wait-free reads from any thread. poll()/consume()
// are single-consumer.
#ifndef UPCALL_KERNEL_GLUE_BPF_GLUE_HPP
#define UPCALL_KERNEL_GLUE_BPF_GLUE_HPP

#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <type_traits>

#include "upcall_abi.h"

struct activation_bpf;  // generated skeleton (activation.skel.h)
struct ring_buffer;     // libbpf

namespace upcall::kglue {

inline constexpr int kReadStatusRetries = 1024;

// Seq-consistent copy of a status word: the reader half of the protocol in
// upcall_abi.h. Returns 0, or -EAGAIN after kReadStatusRetries attempts that
// all overlapped a write (a writer stuck between its two increments that
// long means something is broken). `intent` is outside the protocol: it is
// read once, with its own acquire load. Wait-free writer, lock-free reader, no syscall:
// callable from any thread, including a standby spinning on its CPU.
inline int read_status_word(const volatile upcall_status_word* w,
                            upcall_status_word* out) noexcept {
  for (int i = 0; i < kReadStatusRetries; ++i) {
    // Acquire: pairs with the writer's closing (even) increment, so the
    // fields read below are at least as new as s1.
    const std::uint32_t s1 = __atomic_load_n(&w->seq, __ATOMIC_ACQUIRE);
    if (s1 & 1u) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      continue;
    }
    // Acquire field loads: the seq re-check below cannot move above them.
    // If a load saw a write made after a writer's opening (odd) increment,
    // it synchronizes with that fully ordered increment, so the re-check
    // sees seq moved. This is the "relaxed loads + acquire fence" reader
    // with the fence folded into the loads (same code on x86, where every
    // load is acquire; and TSan understands it, unlike a fence).
    out->state = __atomic_load_n(&w->state, __ATOMIC_ACQUIRE);
    out->prev_state = __atomic_load_n(&w->prev_state, __ATOMIC_ACQUIRE);
    out->cpu = __atomic_load_n(&w->cpu, __ATOMIC_ACQUIRE);
    out->last_switch_ns = __atomic_load_n(&w->last_switch_ns, __ATOMIC_ACQUIRE);
    out->runtime_ns = __atomic_load_n(&w->runtime_ns, __ATOMIC_ACQUIRE);
    out->tid = __atomic_load_n(&w->tid, __ATOMIC_ACQUIRE);
    out->nr_blocks = __atomic_load_n(&w->nr_blocks, __ATOMIC_ACQUIRE);
    out->nr_preempts = __atomic_load_n(&w->nr_preempts, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&w->seq, __ATOMIC_RELAXED) == s1) {
      out->seq = s1;
      // Acquire: pairs with set_intent()'s release store.
      out->intent = __atomic_load_n(&w->intent, __ATOMIC_ACQUIRE);
      for (auto& r : out->reserved) r = 0;
      return 0;
    }
  }
  return -EAGAIN;
}

// Sum of the per-CPU counters (upcall_abi.h documents each field).
struct Counters {
  std::uint64_t events = 0;
  std::uint64_t filtered_tgid = 0;
  std::uint64_t filtered_tid = 0;
  std::uint64_t handled = 0;
  std::uint64_t msgs = 0;
  std::uint64_t msg_drops = 0;
  std::uint64_t seq_collisions = 0;
  std::uint64_t wakeups_not_blocked = 0;
};

// Kernel run-time accounting of one BPF program (BPF_ENABLE_STATS).
struct ProgStats {
  std::uint64_t run_cnt = 0;
  std::uint64_t run_time_ns = 0;
};
struct RunStats {
  ProgStats sched_switch;
  ProgStats sched_waking;
  ProgStats sched_wakeup;
  ProgStats sched_process_exit;
};

struct Options {
  // Ring-buffer size in bytes; a power of two and a multiple of the page
  // size (kernel requirement). 256 KiB holds ~4,600 records.
  std::uint32_t ring_bytes = 256 * 1024;
  // false: status words only, no ring-buffer records (saves a ring
  // reserve+submit per event; the block-detection difference was within
  // noise, <= 0.1 us). For when no policy consumes the stream.
  bool emit_messages = true;
  // Which records wake a consumer sleeping in poll()/epoll (enum
  // upcall_ring_wakeup; upcall_abi.h has the measurement behind the
  // default). With NONE, poll() returns after its timeout with whatever
  // arrived, so use a finite timeout.
  std::uint32_t ring_wakeup = UPCALL_RING_WAKE_NONE;
  // true: libbpf's own messages (verifier log on failure) go to stderr.
  // libbpf's print hook is process-global; open() sets it each time.
  bool verbose = false;
};

// Where open() failed, for explain().
enum class Stage : std::uint8_t {
  kNone,       // no failure
  kNoBackend,  // built without BPF
  kArgs,       // bad pid / slot count / ring size
  kBtf,        // /sys/kernel/btf/vmlinux missing
  kOpen,       // bpf_object open (memory, ELF)
  kLoad,       // verifier / permissions / map creation
  kMmap,       // mmap of the status area
  kAttach,     // tracepoint attach
  kRing,       // ring-buffer consumer
};

class BpfGlue {
 public:
  BpfGlue() noexcept = default;
  ~BpfGlue() { close(); }
  BpfGlue(const BpfGlue&) = delete;
  BpfGlue& operator=(const BpfGlue&) = delete;

  // Loads and attaches the programs for process `pid` with `nslots` status
  // words. Returns 0, or -errno with stage() and explain() saying why:
  // -ENOSYS (built without BPF), -ENOENT (no BTF), -EPERM (capabilities),
  // -EINVAL (arguments), -EBUSY (already open), others from libbpf.
  // Owner thread only.
  int open(pid_t pid, std::uint32_t nslots, const Options& opts = {}) noexcept;
  // Detaches, unmaps and frees everything. Idempotent. Owner thread only;
  // no other call may be running.
  void close() noexcept;
  bool is_open() const noexcept { return skel_ != nullptr; }
  std::uint32_t nslots() const noexcept { return nslots_; }

  // Starts watching `tid` (a thread of the target process) in `slot`.
  // Resets the slot's status word (state NONE, or RUNNING when the caller
  // registers itself) before the kernel can see the mapping. -EINVAL bad
  // slot, -ESRCH tid is not a live thread of the target process, -EBUSY
  // slot taken, -EEXIST tid already registered.
  int register_thread(pid_t tid, std::uint32_t slot) noexcept;
  // Stops watching `tid`. Returns 0 also when the thread already exited
  // (the BPF side dropped the mapping at exit); -ENOENT if never registered.
  // The slot's word keeps its last state until re-registration. A BPF
  // program that looked the tid up just before can still write the word
  // for a few microseconds: reuse the slot only for a thread that exists.
  int unregister_thread(pid_t tid) noexcept;

  // The mmapped status word of `slot` (nullptr if out of range or closed).
  // Valid until close(). Read it with read_status_word().
  const volatile upcall_status_word* status(std::uint32_t slot) const noexcept;
  // read_status_word() on status(slot); -EINVAL / -ENODEV / -EAGAIN.
  int read_status(std::uint32_t slot, upcall_status_word* out) const noexcept;
  // Writes the user-owned intent field (enum upcall_intent) with a release
  // store: a standby that reads intent after seeing a BLOCKED seq also sees
  // what the owner wrote before it blocked. Intended caller: the thread that
  // owns the slot, before it parks.
  int set_intent(std::uint32_t slot, std::uint32_t intent) noexcept;

  // Ring-buffer consumer. `fn(ctx, msg)` is called per record of this ABI
  // version (others are skipped and counted in skipped_records()); return
  // non-zero from fn to stop early; fn must not throw. poll() sleeps until a
  // record wakes it (see Options::ring_wakeup) or timeout_ms passes (-1:
  // no timeout, only sensible with a wakeup mode), then delivers everything
  // in the ring; consume() never sleeps. Both return the number of records
  // handed to fn, or -errno (-EINTR when a signal interrupted the wait).
  // Single consumer.
  using MsgFn = int (*)(void* ctx, const upcall_msg& msg);
  int poll(int timeout_ms, MsgFn fn, void* ctx) noexcept;
  int consume(MsgFn fn, void* ctx) noexcept;
  template <class F>
  int poll(int timeout_ms, F&& f) noexcept {
    return poll(timeout_ms, &call_thunk<F>, static_cast<void*>(&f));
  }
  template <class F>
  int consume(F&& f) noexcept {
    return consume(&call_thunk<F>, static_cast<void*>(&f));
  }
  // Writes the user-owned watch field (enum upcall_watch) with a release
  // store. Intended caller: the thread that owns the slot.
  int set_watch(std::uint32_t slot, std::uint32_t watch) noexcept;
  // Alerts consumer (upcall_abi.h, struct upcall_alert): sleeps until an
  // alert arrives (alerts always wake), interrupt_alerts() is called, or
  // timeout_ms passes (-1: none), then hands every waiting alert to fn.
  // Returns the count delivered, -EINTR when only interrupted, or -errno.
  // Single consumer; interrupt_alerts() from any thread.
  using AlertFn = void (*)(void* ctx, const upcall_alert& alert);
  int wait_alerts(int timeout_ms, AlertFn fn, void* ctx) noexcept;
  int interrupt_alerts() noexcept;
  // The ring buffer's epoll fd (readable when records are waiting), for an
  // existing event loop; call consume() when it fires. -ENODEV if closed.
  int epoll_fd() const noexcept;
  std::uint64_t skipped_records() const noexcept { return skipped_; }

  // Sums the per-CPU counters. Any thread.
  int read_counters(Counters* out) const noexcept;

  // Measurement only: turns on the kernel's per-program run count and run
  // time (system-wide, needs CAP_SYS_ADMIN; adds two clock reads to every
  // BPF program run) until close(), and reads them. Owner thread.
  int enable_run_stats() noexcept;
  int read_run_stats(RunStats* out) const noexcept;

  // Where the last open() failed, and a one-line reason for `err` (the value
  // it returned), e.g. "BPF unavailable: need CAP_BPF+CAP_PERFMON (EPERM)".
  // The text may live in this object's buffer: valid until the next
  // explain() call; owner thread.
  Stage stage() const noexcept { return stage_; }
  const char* explain(int err) const noexcept;

 private:
  template <class F>
  static int call_thunk(void* ctx, const upcall_msg& m) {
    return static_cast<int>((*static_cast<std::remove_reference_t<F>*>(ctx))(m));
  }
  static int on_record(void* ctx, void* data, std::size_t size);
  static int on_alert(void* ctx, void* data, std::size_t size);
  int fail(Stage s, int err) noexcept;
  int open_impl(pid_t pid, std::uint32_t nslots, const Options& opts) noexcept;

  activation_bpf* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  // Alerts ring, its epoll set (the ring's fd + alert_ev_) and the eventfd
  // interrupt_alerts() writes. The alert consumer's state is single-consumer.
  ring_buffer* alerts_ = nullptr;
  int alert_ep_ = -1;
  int alert_ev_ = -1;
  AlertFn alert_fn_ = nullptr;
  void* alert_ctx_ = nullptr;
  int alerts_delivered_ = 0;
  // Status area: nslots_ words, MAP_SHARED over the status_words map,
  // MADV_DONTFORK. Written here only by register_thread, set_intent and set_watch.
  upcall_status_word* words_ = nullptr;
  std::size_t words_bytes_ = 0;
  std::uint32_t nslots_ = 0;
  pid_t pid_ = 0;
  int stats_fd_ = -1;  // BPF_ENABLE_STATS handle; owner thread
  Stage stage_ = Stage::kNone;

  // Slot table: owner tid per slot (0 = free). Guarded by slots_mu_;
  // allocated by open(), freed by close().
  mutable std::mutex slots_mu_;
  pid_t* slot_tid_ = nullptr;

  // Scratch for read_counters: one upcall_counters per possible CPU.
  // Guarded by counters_mu_; allocated by open().
  mutable std::mutex counters_mu_;
  upcall_counters* percpu_ = nullptr;
  int ncpus_ = 0;

  // Consumer state, single consumer (poll/consume caller) only.
  MsgFn cur_fn_ = nullptr;
  void* cur_ctx_ = nullptr;
  int delivered_ = 0;
  bool stopped_ = false;
  std::uint64_t skipped_ = 0;

  // explain() output buffer; owner thread.
  mutable char explain_buf_[192] = {};
};

}  // namespace upcall::kglue

#endif  // UPCALL_KERNEL_GLUE_BPF_GLUE_HPP
