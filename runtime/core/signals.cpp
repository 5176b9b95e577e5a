// runtime/core/signals.cpp: see signals.hpp. The handler is installed once per process, when
// the first runtime starts, with SA_ONSTACK (each activation has an alternate signal stack, so
// the handler can run although the fiber's stack is exhausted) and chains to the handler that
// was installed before it (ASAN's, the application's, or the default action).
#include "runtime/core/signals.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>

#include "runtime/context/stack_pool.hpp"
#include "runtime/core/core.hpp"

namespace upcall::rt {

namespace {
constexpr int kMaxPools = 64;
std::atomic<StackPool*> g_pools[kMaxPools];  // any thread registers; the handler reads
std::once_flag g_install_once;
struct sigaction g_prev_segv, g_prev_bus;

// Async-signal-safe formatting helpers.
char* put_str(char* p, char* end, const char* s) {
  while (*s && p < end) *p++ = *s++;
  return p;
}
char* put_u64(char* p, char* end, unsigned long long v, int base) {
  char tmp[32];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v && n < 32);
  while (n && p < end) *p++ = tmp[--n];
  return p;
}

void chain(int sig, siginfo_t* si, void* uc) {
  struct sigaction* prev = sig == SIGSEGV ? &g_prev_segv : &g_prev_bus;
  if ((prev->sa_flags & SA_SIGINFO) && prev->sa_sigaction) {
    prev->sa_sigaction(sig, si, uc);
    return;
  }
  if (prev->sa_handler == SIG_DFL || prev->sa_handler == SIG_IGN) {
    // Restore the default action and return: the faulting instruction runs again and the
    // kernel delivers the signal with its default (core-dumping) action.
    signal(sig, SIG_DFL);
    return;
  }
  prev->sa_handler(sig);
}

void on_fault(int sig, siginfo_t* si, void* uc) {
  StackPool* hit = nullptr;
  for (auto& slot : g_pools) {
    StackPool* p = slot.load(std::memory_order_acquire);
    if (p && p->is_guard_address(si->si_addr)) {
      hit = p;
      break;
    }
  }
  if (!hit) {
    chain(sig, si, uc);
    return;
  }
  char buf[512];
  char* p = buf;
  char* end = buf + sizeof(buf) - 1;
  Activation* a = current_activation();
  Fiber* f = a ? a->current : nullptr;
  p = put_str(p, end, "upcall: fatal: stack overflow in fiber ");
  if (f) {
    p = put_u64(p, end, f->id, 10);
    if (f->name[0]) {
      p = put_str(p, end, " \"");
      p = put_str(p, end, f->name);
      p = put_str(p, end, "\"");
    }
  } else {
    p = put_str(p, end, "(unknown)");
  }
  p = put_str(p, end, ": guard page hit at 0x");
  p = put_u64(p, end, reinterpret_cast<unsigned long long>(si->si_addr), 16);
  p = put_str(p, end, "; stacks are ");
  p = put_u64(p, end, hit->usable_size() / 1024, 10);
  p = put_str(p, end, " KiB, raise UPCALL_STACK_SIZE or move large buffers off the stack\n");
  *p = 0;
  ssize_t ignored = write(STDERR_FILENO, buf, static_cast<std::size_t>(p - buf));
  (void)ignored;
  signal(SIGABRT, SIG_DFL);
  abort();
}

void install() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = &on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_prev_segv);
  sigaction(SIGBUS, &sa, &g_prev_bus);
}
}  // namespace

void register_stack_pool(StackPool* pool) {
  std::call_once(g_install_once, install);
  for (auto& slot : g_pools) {
    StackPool* expected = nullptr;
    if (slot.compare_exchange_strong(expected, pool, std::memory_order_acq_rel)) return;
  }
  // More than kMaxPools live runtimes: overflows in the extra ones get the default crash.
}

void unregister_stack_pool(StackPool* pool) {
  for (auto& slot : g_pools) {
    StackPool* expected = pool;
    if (slot.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel)) return;
  }
}

void announce_once(const std::string& key, const std::string& message) {
  static std::mutex mu;
  static std::set<std::string> said;
  std::lock_guard<std::mutex> lock(mu);
  if (said.insert(key).second) std::fprintf(stderr, "%s\n", message.c_str());
}

}  // namespace upcall::rt
