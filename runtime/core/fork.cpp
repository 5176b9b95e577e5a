// runtime/core/fork.cpp: fork() and upcall. The child of a fork has one thread and none of the
// runtime's kernel threads, so no runtime works there: the child may only exec (posix_spawn,
// system() and popen() are fine; they exec). A pthread_atfork child handler marks the process
// and detaches the calling thread from its activation, so a fiber that forked continues in the
// child as a plain thread (yield, sleep and waits act on the thread), and every call that needs
// a runtime (spawn, a new Runtime) fails with a message saying so. The BPF status words are
// MADV_DONTFORK (kernel-glue); fiber stacks are inherited, the child runs on one.
#include <pthread.h>

#include <atomic>
#include <mutex>
#include <stdexcept>

#include "runtime/core/core.hpp"

namespace upcall::rt {

namespace {
std::atomic<bool> g_fork_child{false};
std::once_flag g_atfork_once;

void on_fork_child() {
  g_fork_child.store(true, std::memory_order_relaxed);
  set_current_activation(nullptr);
}
}  // namespace

void install_fork_handler() {
  std::call_once(g_atfork_once, [] { pthread_atfork(nullptr, nullptr, &on_fork_child); });
}

void check_not_fork_child(const char* what) {
  if (g_fork_child.load(std::memory_order_relaxed))
    throw std::logic_error(std::string("upcall: ") + what +
                           " in the child of a fork(): the child may only exec (use "
                           "posix_spawn, or fork and exec at once)");
}

}  // namespace upcall::rt
