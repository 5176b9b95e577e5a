// bpf_glue.cpp: implementation of upcall::kglue::BpfGlue (see bpf_glue.hpp).
// It owns the libbpf calls: skeleton open/load/attach, map sizing and the
// .rodata knobs, the mmap of the status area, registration map updates, the
// ring-buffer consumer and the per-CPU counter read-out. When the build had
// no BPF toolchain (UPCALL_HAVE_BPF == 0) the libbpf parts compile out and
// open() reports -ENOSYS; everything else then sees a closed object.
#include "bpf_glue.hpp"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <new>
#include <utility>

#if UPCALL_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "activation.skel.h"
#endif

namespace upcall::kglue {
namespace {

constexpr std::uint32_t kMaxSlots = 1u << 16;
constexpr const char* kBtfPath = "/sys/kernel/btf/vmlinux";
// Returned by on_record to make libbpf stop consuming; poll() maps it back.
constexpr int kStopConsuming = -ECANCELED;
constexpr std::uint32_t kAlertRingBytes = 64 * 1024;

const char* errno_name(int err) noexcept {
  const char* n = strerrorname_np(err < 0 ? -err : err);
  return n ? n : "unknown errno";
}

#if UPCALL_HAVE_BPF
std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // same clock as bpf_ktime_get_ns()
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

int libbpf_quiet(libbpf_print_level, const char*, va_list) { return 0; }

int libbpf_stderr(libbpf_print_level, const char* fmt, va_list ap) {
  return vfprintf(stderr, fmt, ap);
}
#endif

}  // namespace

int BpfGlue::fail(Stage s, int err) noexcept {
  stage_ = s;
  close();
  return err;
}

int BpfGlue::open(pid_t pid, std::uint32_t nslots, const Options& opts) noexcept {
  if (skel_) {
    stage_ = Stage::kArgs;
    return -EBUSY;  // keep the open instance: no close() here
  }
  stage_ = Stage::kNone;
  return open_impl(pid, nslots, opts);
}

#if !UPCALL_HAVE_BPF

int BpfGlue::open_impl(pid_t, std::uint32_t, const Options&) noexcept {
  return fail(Stage::kNoBackend, -ENOSYS);
}

void BpfGlue::close() noexcept {}

int BpfGlue::register_thread(pid_t, std::uint32_t) noexcept { return -ENODEV; }
int BpfGlue::unregister_thread(pid_t) noexcept { return -ENODEV; }
int BpfGlue::poll(int, MsgFn, void*) noexcept { return -ENODEV; }
int BpfGlue::consume(MsgFn, void*) noexcept { return -ENODEV; }
int BpfGlue::epoll_fd() const noexcept { return -ENODEV; }
int BpfGlue::read_counters(Counters*) const noexcept { return -ENODEV; }
int BpfGlue::enable_run_stats() noexcept { return -ENODEV; }
int BpfGlue::read_run_stats(RunStats*) const noexcept { return -ENODEV; }
int BpfGlue::on_record(void*, void*, std::size_t) { return 0; }
int BpfGlue::on_alert(void*, void*, std::size_t) { return 0; }
int BpfGlue::wait_alerts(int, AlertFn, void*) noexcept { return -ENODEV; }
int BpfGlue::interrupt_alerts() noexcept { return -ENODEV; }

#else  // UPCALL_HAVE_BPF

int BpfGlue::open_impl(pid_t pid, std::uint32_t nslots, const Options& opts) noexcept {
  const long page = sysconf(_SC_PAGESIZE);
  const std::uint32_t ring = opts.ring_bytes;
  if (pid <= 0 || nslots == 0 || nslots > kMaxSlots || ring == 0 ||
      (ring & (ring - 1)) != 0 || ring % static_cast<std::uint32_t>(page) != 0)
    return fail(Stage::kArgs, -EINVAL);
  if (access(kBtfPath, R_OK) != 0) return fail(Stage::kBtf, -errno);

  // Process-global libbpf hook: quiet by default so a failed probe in a
  // program that falls back does not print a page of verifier log.
  libbpf_set_print(opts.verbose ? libbpf_stderr : libbpf_quiet);

  skel_ = activation_bpf__open();
  if (!skel_) return fail(Stage::kOpen, errno ? -errno : -ENOMEM);
  skel_->rodata->target_tgid = static_cast<std::uint32_t>(pid);
  skel_->rodata->emit_msgs = opts.emit_messages ? 1u : 0u;
  if (opts.ring_wakeup > UPCALL_RING_WAKE_ALL) return fail(Stage::kArgs, -EINVAL);
  skel_->rodata->ring_wakeup = opts.ring_wakeup;
  int err = 0;
  if ((err = bpf_map__set_max_entries(skel_->maps.tid_slot, nslots)) ||
      (err = bpf_map__set_max_entries(skel_->maps.status_words, nslots)) ||
      (err = bpf_map__set_max_entries(skel_->maps.slot_privs, nslots)) ||
      (err = bpf_map__set_max_entries(skel_->maps.msgs, ring)) ||
      // Alerts: 64 KiB (~2,700 records; a power of two and a multiple of any page size).
      (err = bpf_map__set_max_entries(skel_->maps.alerts, kAlertRingBytes)))
    return fail(Stage::kOpen, err);

  err = activation_bpf__load(skel_);
  if (err) return fail(Stage::kLoad, err);

  // The kernel maps the array's vmalloc pages at mmap time (no later page
  // faults, so a standby can read a word on the takeover path). DONTFORK:
  // a forked child must not keep a writable view of the parent's words.
  words_bytes_ = (static_cast<std::size_t>(nslots) * sizeof(upcall_status_word) +
                  static_cast<std::size_t>(page) - 1) &
                 ~(static_cast<std::size_t>(page) - 1);
  void* p = mmap(nullptr, words_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED,
                 bpf_map__fd(skel_->maps.status_words), 0);
  if (p == MAP_FAILED) {
    words_bytes_ = 0;
    return fail(Stage::kMmap, -errno);
  }
  words_ = static_cast<upcall_status_word*>(p);
  if (madvise(p, words_bytes_, MADV_DONTFORK) != 0) return fail(Stage::kMmap, -errno);
  nslots_ = nslots;
  pid_ = pid;

  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ <= 0) return fail(Stage::kOpen, ncpus_ < 0 ? ncpus_ : -EINVAL);
  percpu_ = new (std::nothrow) upcall_counters[static_cast<std::size_t>(ncpus_)];
  slot_tid_ = new (std::nothrow) pid_t[nslots]();
  if (!percpu_ || !slot_tid_) return fail(Stage::kOpen, -ENOMEM);

  err = activation_bpf__attach(skel_);
  if (err) return fail(Stage::kAttach, err);

  ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.msgs), &BpfGlue::on_record, this,
                           nullptr);
  if (!ring_) return fail(Stage::kRing, errno ? -errno : -ENOMEM);

  // Alerts: their own ring and consumer, and an epoll set with an eventfd
  // next to the ring's epoll fd so that interrupt_alerts() can end a wait.
  alerts_ = ring_buffer__new(bpf_map__fd(skel_->maps.alerts), &BpfGlue::on_alert, this,
                             nullptr);
  if (!alerts_) return fail(Stage::kRing, errno ? -errno : -ENOMEM);
  alert_ep_ = epoll_create1(EPOLL_CLOEXEC);
  alert_ev_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (alert_ep_ < 0 || alert_ev_ < 0) return fail(Stage::kRing, -errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = ring_buffer__epoll_fd(alerts_);
  if (epoll_ctl(alert_ep_, EPOLL_CTL_ADD, ev.data.fd, &ev) != 0) return fail(Stage::kRing, -errno);
  ev.data.fd = alert_ev_;
  if (epoll_ctl(alert_ep_, EPOLL_CTL_ADD, alert_ev_, &ev) != 0) return fail(Stage::kRing, -errno);
  return 0;
}

void BpfGlue::close() noexcept {
  // Order: stop the producers (detach + destroy) before unmapping what they
  // write, then free the user-side tables.
  if (ring_) {
    ring_buffer__free(ring_);
    ring_ = nullptr;
  }
  if (alerts_) {
    ring_buffer__free(alerts_);
    alerts_ = nullptr;
  }
  if (alert_ep_ >= 0) ::close(alert_ep_);
  if (alert_ev_ >= 0) ::close(alert_ev_);
  alert_ep_ = alert_ev_ = -1;
  if (stats_fd_ >= 0) {
    ::close(stats_fd_);
    stats_fd_ = -1;
  }
  if (skel_) {
    activation_bpf__destroy(skel_);  // detaches links, closes maps
    skel_ = nullptr;
  }
  if (words_) {
    munmap(words_, words_bytes_);
    words_ = nullptr;
    words_bytes_ = 0;
  }
  delete[] percpu_;
  percpu_ = nullptr;
  delete[] slot_tid_;
  slot_tid_ = nullptr;
  ncpus_ = 0;
  nslots_ = 0;
  pid_ = 0;
}

int BpfGlue::register_thread(pid_t tid, std::uint32_t slot) noexcept {
  if (!skel_) return -ENODEV;
  if (tid <= 0 || slot >= nslots_) return -EINVAL;
  // The BPF side filters on the tgid first, so a tid of another process
  // would be registered and never seen: refuse it. Signal 0 only checks.
  if (syscall(SYS_tgkill, pid_, tid, 0) != 0) return -errno;
  std::lock_guard<std::mutex> lock(slots_mu_);
  if (slot_tid_[slot] != 0) return -EBUSY;
  for (std::uint32_t s = 0; s < nslots_; ++s)
    if (slot_tid_[s] == tid) return -EEXIST;

  // 1. BPF-private per-slot data back to zero (message seq restarts at 1,
  //    TASK_NEW will be sent again). Its layout is private to the .bpf.c.
  unsigned char zero[64] = {};
  const std::size_t priv_size = bpf_map__value_size(skel_->maps.slot_privs);
  if (priv_size > sizeof(zero)) return -EOVERFLOW;
  int err = bpf_map__update_elem(skel_->maps.slot_privs, &slot, sizeof(slot), zero,
                                 priv_size, BPF_ANY);
  if (err) return err;

  // 2. Status word, as a seqlock writer. No BPF program writes this slot
  //    now: the tid is not in tid_slot yet, and a program still holding the
  //    previous owner's mapping fails the tid check once `tid` is stored.
  //    Both increments are fully ordered (seq_cst RMW), pairing with the
  //    readers' acquire loads as the BPF writer's do.
  const bool self = tid == gettid();
  upcall_status_word* w = &words_[slot];
  __atomic_fetch_add(&w->seq, 1u, __ATOMIC_SEQ_CST);  // odd: write begins
  __atomic_store_n(&w->state, self ? UPCALL_ST_RUNNING : UPCALL_ST_NONE, __ATOMIC_RELAXED);
  __atomic_store_n(&w->prev_state, 0u, __ATOMIC_RELAXED);
  __atomic_store_n(&w->cpu, self ? static_cast<std::uint32_t>(sched_getcpu()) : 0u,
                   __ATOMIC_RELAXED);
  __atomic_store_n(&w->last_switch_ns, self ? monotonic_ns() : 0ull, __ATOMIC_RELAXED);
  __atomic_store_n(&w->runtime_ns, 0ull, __ATOMIC_RELAXED);
  __atomic_store_n(&w->tid, static_cast<std::uint32_t>(tid), __ATOMIC_RELAXED);
  __atomic_store_n(&w->intent, 0u, __ATOMIC_RELAXED);
  __atomic_store_n(&w->watch, 0u, __ATOMIC_RELAXED);
  __atomic_store_n(&w->nr_blocks, 0u, __ATOMIC_RELAXED);
  __atomic_store_n(&w->nr_preempts, 0u, __ATOMIC_RELAXED);
  __atomic_fetch_add(&w->seq, 1u, __ATOMIC_SEQ_CST);  // even: write ends

  // 3. Publish the mapping; from here on BPF owns the word (but intent).
  const std::uint32_t key = static_cast<std::uint32_t>(tid);
  err = bpf_map__update_elem(skel_->maps.tid_slot, &key, sizeof(key), &slot, sizeof(slot),
                             BPF_NOEXIST);
  if (err) return err;
  slot_tid_[slot] = tid;
  return 0;
}

int BpfGlue::unregister_thread(pid_t tid) noexcept {
  if (!skel_) return -ENODEV;
  if (tid <= 0) return -EINVAL;
  std::lock_guard<std::mutex> lock(slots_mu_);
  for (std::uint32_t s = 0; s < nslots_; ++s) {
    if (slot_tid_[s] != tid) continue;
    const std::uint32_t key = static_cast<std::uint32_t>(tid);
    const int err = bpf_map__delete_elem(skel_->maps.tid_slot, &key, sizeof(key), 0);
    if (err && err != -ENOENT) return err;  // -ENOENT: BPF dropped it at exit
    slot_tid_[s] = 0;
    return 0;
  }
  return -ENOENT;
}

int BpfGlue::on_record(void* ctx, void* data, std::size_t size) {
  auto* self = static_cast<BpfGlue*>(ctx);
  upcall_msg m;
  if (size < sizeof(m)) {
    ++self->skipped_;
    return 0;
  }
  // Copy out of the shared ring: the callback gets a stable, aligned value.
  std::memcpy(&m, data, sizeof(m));
  if (m.version != UPCALL_ABI_VERSION) {
    ++self->skipped_;
    return 0;
  }
  ++self->delivered_;
  if (self->cur_fn_(self->cur_ctx_, m) != 0) {
    self->stopped_ = true;
    return kStopConsuming;
  }
  return 0;
}

int BpfGlue::poll(int timeout_ms, MsgFn fn, void* ctx) noexcept {
  if (!ring_) return -ENODEV;
  if (!fn) return -EINVAL;
  cur_fn_ = fn;
  cur_ctx_ = ctx;
  delivered_ = 0;
  stopped_ = false;
  int r = ring_buffer__poll(ring_, timeout_ms);
  // Woken by nothing (timeout, or records submitted without a wakeup):
  // deliver what is there anyway.
  if (r == 0) r = ring_buffer__consume(ring_);
  cur_fn_ = nullptr;
  if (r < 0 && !(r == kStopConsuming && stopped_)) return r;
  return delivered_;
}

int BpfGlue::consume(MsgFn fn, void* ctx) noexcept {
  if (!ring_) return -ENODEV;
  if (!fn) return -EINVAL;
  cur_fn_ = fn;
  cur_ctx_ = ctx;
  delivered_ = 0;
  stopped_ = false;
  const int r = ring_buffer__consume(ring_);
  cur_fn_ = nullptr;
  if (r < 0 && !(r == kStopConsuming && stopped_)) return r;
  return delivered_;
}

int BpfGlue::epoll_fd() const noexcept {
  if (!ring_) return -ENODEV;
  return ring_buffer__epoll_fd(ring_);
}

int BpfGlue::on_alert(void* ctx, void* data, std::size_t size) {
  auto* self = static_cast<BpfGlue*>(ctx);
  upcall_alert a;
  if (size < sizeof(a)) return 0;
  std::memcpy(&a, data, sizeof(a));
  if (a.version != UPCALL_ABI_VERSION) return 0;
  ++self->alerts_delivered_;
  self->alert_fn_(self->alert_ctx_, a);
  return 0;
}

int BpfGlue::wait_alerts(int timeout_ms, AlertFn fn, void* ctx) noexcept {
  if (!alerts_) return -ENODEV;
  if (!fn) return -EINVAL;
  epoll_event evs[2];
  const int n = epoll_wait(alert_ep_, evs, 2, timeout_ms);
  if (n < 0) return -errno;
  bool interrupted = false;
  for (int i = 0; i < n; ++i) {
    if (evs[i].data.fd != alert_ev_) continue;
    std::uint64_t v;
    if (read(alert_ev_, &v, sizeof v) == sizeof v) interrupted = true;
  }
  alert_fn_ = fn;
  alert_ctx_ = ctx;
  alerts_delivered_ = 0;
  const int r = ring_buffer__consume(alerts_);
  alert_fn_ = nullptr;
  if (r < 0) return r;
  if (interrupted && alerts_delivered_ == 0) return -EINTR;
  return alerts_delivered_;
}

int BpfGlue::interrupt_alerts() noexcept {
  if (alert_ev_ < 0) return -ENODEV;
  const std::uint64_t one = 1;
  return write(alert_ev_, &one, sizeof one) == sizeof one ? 0 : -errno;
}

int BpfGlue::read_counters(Counters* out) const noexcept {
  if (!skel_) return -ENODEV;
  if (!out) return -EINVAL;
  std::lock_guard<std::mutex> lock(counters_mu_);
  const std::uint32_t zero = 0;
  const int err = bpf_map__lookup_elem(skel_->maps.counters, &zero, sizeof(zero), percpu_,
                                       sizeof(upcall_counters) * static_cast<std::size_t>(ncpus_),
                                       0);
  if (err) return err;
  Counters sum;
  for (int i = 0; i < ncpus_; ++i) {
    const upcall_counters& c = percpu_[i];
    sum.events += c.events;
    sum.filtered_tgid += c.filtered_tgid;
    sum.filtered_tid += c.filtered_tid;
    sum.handled += c.handled;
    sum.msgs += c.msgs;
    sum.msg_drops += c.msg_drops;
    sum.seq_collisions += c.seq_collisions;
    sum.wakeups_not_blocked += c.wakeups_not_blocked;
  }
  *out = sum;
  return 0;
}

int BpfGlue::enable_run_stats() noexcept {
  if (!skel_) return -ENODEV;
  if (stats_fd_ >= 0) return 0;
  const int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) return fd;
  stats_fd_ = fd;
  return 0;
}

int BpfGlue::read_run_stats(RunStats* out) const noexcept {
  if (!skel_) return -ENODEV;
  if (!out) return -EINVAL;
  const std::pair<bpf_program*, ProgStats*> progs[] = {
      {skel_->progs.upcall_sched_switch, &out->sched_switch},
      {skel_->progs.upcall_sched_waking, &out->sched_waking},
      {skel_->progs.upcall_sched_wakeup, &out->sched_wakeup},
      {skel_->progs.upcall_sched_process_exit, &out->sched_process_exit},
  };
  for (const auto& [prog, stats] : progs) {
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    const int err = bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len);
    if (err) return err;
    stats->run_cnt = info.run_cnt;
    stats->run_time_ns = info.run_time_ns;
  }
  return 0;
}

#endif  // UPCALL_HAVE_BPF

const volatile upcall_status_word* BpfGlue::status(std::uint32_t slot) const noexcept {
  if (!words_ || slot >= nslots_) return nullptr;
  return &words_[slot];
}

int BpfGlue::read_status(std::uint32_t slot, upcall_status_word* out) const noexcept {
  if (!words_) return -ENODEV;
  if (slot >= nslots_ || !out) return -EINVAL;
  return read_status_word(&words_[slot], out);
}

int BpfGlue::set_intent(std::uint32_t slot, std::uint32_t intent) noexcept {
  if (!words_) return -ENODEV;
  if (slot >= nslots_) return -EINVAL;
  // Release: pairs with read_status_word()'s acquire load of intent.
  __atomic_store_n(&words_[slot].intent, intent, __ATOMIC_RELEASE);
  return 0;
}

int BpfGlue::set_watch(std::uint32_t slot, std::uint32_t watch) noexcept {
  if (!words_) return -ENODEV;
  if (slot >= nslots_) return -EINVAL;
  // Release: the owner stores it before it can switch out; BPF reads it at
  // that switch-out (same thread, program order plus the context switch).
  __atomic_store_n(&words_[slot].watch, watch, __ATOMIC_RELEASE);
  return 0;
}

const char* BpfGlue::explain(int err) const noexcept {
  const int e = err < 0 ? -err : err;
  const char* name = errno_name(e);
  char* b = explain_buf_;
  const std::size_t n = sizeof(explain_buf_);
  if (err == 0) return "no error";
  if (e == ENOSYS || stage_ == Stage::kNoBackend) {
    return "BPF backend not built: disabled, or clang/bpftool/libbpf/kernel BTF missing at "
           "configure time; see the CMake warning (ENOSYS)";
  }
  switch (stage_) {
    case Stage::kArgs:
      if (e == EBUSY) return "BPF glue already open (EBUSY)";
      snprintf(b, n,
               "bad open() arguments: need pid > 0, 1..%u slots, ring size a power of two "
               "and a page multiple (%s)",
               kMaxSlots, name);
      return b;
    case Stage::kBtf:
      snprintf(b, n, "no BTF at %s: kernel built without CONFIG_DEBUG_INFO_BTF (%s)", kBtfPath,
               name);
      return b;
    case Stage::kLoad:
      if (e == EPERM || e == EACCES) {
        snprintf(b, n, "BPF unavailable: need CAP_BPF+CAP_PERFMON (%s)", name);
        return b;
      }
      snprintf(b, n,
               "BPF load failed (%s): kernel rejected a program or map; set Options::verbose "
               "for the verifier log",
               name);
      return b;
    case Stage::kAttach:
      snprintf(b, n,
               "cannot attach tp_btf sched tracepoints (%s): need kernel >= 5.5 with BPF "
               "trampolines",
               name);
      return b;
    case Stage::kMmap:
      snprintf(b, n, "cannot mmap the BPF status array (%s)", name);
      return b;
    case Stage::kRing:
      snprintf(b, n, "cannot set up the BPF ring-buffer consumer (%s)", name);
      return b;
    case Stage::kOpen:
      snprintf(b, n, "cannot open the embedded BPF object (%s)", name);
      return b;
    case Stage::kNone:
    case Stage::kNoBackend:
      break;
  }
  snprintf(b, n, "BPF glue error (%s)", name);
  return b;
}

}  // namespace upcall::kglue
