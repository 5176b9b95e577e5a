// runtime/core/activation.cpp: kernel threads. Each runs one scheduler loop on its own stack;
// whether it is the *active* thread of its core or a *spare* is decided by Core::holder alone.
// upcall::blocking hands the core from the active thread to a spare:
//  1. the holder A (inside a fiber F) takes a spare S of the same core from Core::spares, or
//     creates one (F is about to block anyway, so the ~30 us thread creation is F's cost);
//  2. A stores Core::holder = S (release) and sets S's wake_word = 1 (release) + futex wake;
//     from then on A touches no owner-only field of the core;
//  3. S's loop sees holder == S (acquire; pairs with 2) and runs the core's fibers;
//  4. A runs the blocking call on F's stack; afterwards it switches F to A's own loop with the
//     post-action reinject, which (F's context saved) puts F on the injection queue and wakes
//     a core;
//  5. A's loop sees holder != A and parks A in Core::spares (step 1 of the next handoff).
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <system_error>

#include "runtime/activations/activations.hpp"
#include "runtime/core/check.hpp"
#include "runtime/core/runtime_impl.hpp"

namespace upcall::rt {

void run_fiber_from_loop(Activation* a, Fiber* f);  // switch.cpp
void enter_fiber_thread(Activation* a);             // switch.cpp

namespace {
constexpr std::size_t kAltStackSize = 64 * 1024;

// Runtime threads take no asynchronous signals: those go to the application's own threads.
void block_async_signals() {
  sigset_t set;
  sigfillset(&set);
  for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS}) sigdelset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}
}  // namespace

Activation* RuntimeImpl::new_activation(Core* c) {
  auto a = std::make_unique<Activation>();
  a->rt = this;
  a->core = c;
  Activation* raw = a.get();
  std::lock_guard<std::mutex> lock(threads_mu);
  activations.push_back(std::move(a));
  return raw;
}

bool RuntimeImpl::reserve_thread() {
  // Check and count in one step: the new thread (pinned to our CPU) may run before we return,
  // and a count taken after its creation let a cap check see a stale value.
  int n = thread_count.load(std::memory_order_relaxed);
  do {
    if (n >= static_cast<int>(cores.size()) * kMaxThreadsPerCore) return false;
  } while (!thread_count.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
  return true;
}

void RuntimeImpl::start_thread(Activation* a, bool reserved) {
  if (!reserved) thread_count.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(threads_mu);
  try {
    threads.emplace_back([this, a] { thread_main(a); });
  } catch (...) {
    thread_count.fetch_sub(1, std::memory_order_relaxed);
    throw;  // std::system_error
  }
}

void RuntimeImpl::thread_main(Activation* a) {
  set_current_activation(a);
  a->tid = static_cast<int>(syscall(SYS_gettid));
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(a->core->cpu, &set);
  // Pinned to the core's CPU: all activations of a core share one CPU (DESIGN.md). Failure
  // (a CPU taken away since start) leaves the thread unpinned, which is still correct.
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  block_async_signals();
  void* alt = mmap(nullptr, kAltStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
  if (alt != MAP_FAILED) {
    stack_t ss{};
    ss.ss_sp = alt;
    ss.ss_size = kAltStackSize;
    if (sigaltstack(&ss, nullptr) == 0) a->altstack = alt;
  }
  enter_fiber_thread(a);
  if (backend) {
    const int slot = backend->register_thread(a->tid, kernel_event_sink(), a->core->index, a);
    // release: pairs with the standby's / watchdog's acquire; a slot < 0 is never read.
    a->slot.store(slot, std::memory_order_release);
  }
  // The role dispatcher: a thread changes role many times in its life (DESIGN.md).
  while (!stopped.load(std::memory_order_acquire)) {
    if (a->role == Role::active) {
      run_active(a);
    } else if (a->role == Role::standby) {
      run_standby(a);
    } else {
      // Holds nothing (a spare, back from upcall::blocking, or a returning thread). A poll-mode
      // promotion still pending (runtime/cores) belonged to the core it lost: a later claim as
      // standby must run the full finish_takeover.
      a->role = Role::spare;
      a->pending_promotion = false;
      a->promote_only = false;
      if (a->window.load(std::memory_order_relaxed) != 0 || a->dozing) {
        // Lost the core inside its takeover window, or while its standby dozed (lazy
        // standby): no alert for this thread any more.
        close_takeover_window(a);
        a->dozing = false;
        const int s = a->slot.load(std::memory_order_relaxed);
        if (backend && s >= 0) backend->set_watch(static_cast<std::uint32_t>(s), kWatchNone);
      }
      if (become_standby(a)) continue;
      if (!wait_as_spare(a)) break;
    }
  }
  if (a->core->standby.load(std::memory_order_relaxed) == a)
    a->core->standby.store(nullptr, std::memory_order_relaxed);
  const int slot = a->slot.exchange(-1, std::memory_order_acq_rel);
  if (backend && slot >= 0) backend->unregister_thread(a->tid, static_cast<std::uint32_t>(slot));
  if (a->altstack) {
    stack_t ss{};
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, nullptr);
    munmap(a->altstack, kAltStackSize);
    a->altstack = nullptr;
  }
  set_current_activation(nullptr);
}

void RuntimeImpl::run_active(Activation* a) {
  Core* c = a->core;
  for (;;) {
    // acquire: pairs with the release that handed us the core (set_holder, the takeover CAS).
    if (c->holder_acquire() != a) return;
    if (Fiber* f = find_work(c)) {
      stop_spinning(c);
      // The first fiber after a grant (runtime/cores): grant decision -> running.
      if (__builtin_expect(c->grant_ns.load(std::memory_order_relaxed) != 0, 0))
        note_grant_outcome(c, true);
      c->busy.store(true, std::memory_order_relaxed);
      if (a->takeover_ns) {
        // First fiber after a takeover: the upcall latency (block -> a fiber running again).
        const std::int64_t now = now_ns();
        if (now > a->takeover_ns) hist_upcall.record(now - a->takeover_ns);
        a->takeover_ns = 0;
      }
      run_fiber_from_loop(a, f);
      // Back in the loop: either the core ran dry, or this thread gave the core away.
      if (c->held_by(a)) c->busy.store(false, std::memory_order_relaxed);
      if (a->pending_promotion && c->held_by(a)) finish_takeover(a);
      continue;
    }
    if (a->pending_promotion) finish_takeover(a);
    if (!idle(a, c)) {
      c->busy.store(false, std::memory_order_relaxed);
      return;
    }
  }
}

bool RuntimeImpl::wait_as_spare(Activation* a) {
  Core* c = a->core;
  // A spare runs at normal priority (a blocking() handoff or a fallback takeover needs it so).
  set_sched_idle(a, false);
  {
    std::lock_guard<std::mutex> lock(c->spare_mu);
    if (stopped.load(std::memory_order_acquire)) return false;
    a->wake_word.store(kWakeNone, std::memory_order_relaxed);
    if (!a->listed_spare) {
      c->spares.push_back(a);
      a->listed_spare = true;
    }
  }
  std::uint32_t v;
  // acquire: pairs with the release store of the thread that hands us the core or a role.
  while ((v = a->wake_word.load(std::memory_order_acquire)) == kWakeNone)
    futex_wait(&a->wake_word, kWakeNone, -1);
  if (v == kWakeActive) a->role = Role::active;
  if (v == kWakeStandby) a->role = Role::standby;
  return v != kWakeExit;
}

bool RuntimeImpl::hand_core_to_spare(Activation* a) {
  Core* c = a->core;
  Activation* s = nullptr;
  {
    std::lock_guard<std::mutex> lock(c->spare_mu);
    if (!c->spares.empty()) {
      s = c->spares.back();
      c->spares.pop_back();
      s->listed_spare = false;
    }
  }
  if (!s && !reserve_thread()) return false;
  bump(c->counters.blocking_handoffs);
  a->role = Role::blocking;
  if (a->dozing) {
    // Lazy standby: the next holder does not know the standby sleeps (only this thread's
    // watch word says so, and it is about to run the blocking call): wake the standby, and
    // stop this thread's alerts.
    a->dozing = false;
    const int slot = a->slot.load(std::memory_order_relaxed);
    if (backend && slot >= 0) backend->set_watch(static_cast<std::uint32_t>(slot), kWatchNone);
    if (c->standby_word.exchange(0, std::memory_order_seq_cst) == 1) {
      futex_wake(&c->standby_word, 1);
      c->act.standby_wakes.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (s) {
    c->set_holder(s);
    s->wake_word.store(kWakeActive, std::memory_order_release);
    futex_wake(&s->wake_word, 1);
    return true;
  }
  bump(c->counters.spares_created);
  s = new_activation(c);
  s->role = Role::active;
  c->set_holder(s);
  try {
    start_thread(s, /*reserved=*/true);
  } catch (const std::system_error&) {
    a->role = Role::active;
    c->set_holder(a);  // nobody else saw the core change hands
    return false;
  }
  return true;
}

}  // namespace upcall::rt
