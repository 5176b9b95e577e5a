// runtime/cores/ticker.cpp: the backstop of congestion detection (runtime/DESIGN.md section
// 15). Busy cores check congestion themselves at every scheduling pass, but a fiber that
// computes without entering the runtime stops its core's checks; then only another thread can
// notice that the fibers queued behind it wait. This thread does, every kBackstopNs while some
// core is busy (in the budget or not) and another is parked (a grant is possible), and every
// kTickerIdleNs otherwise. It sleeps on ticker_word (futex) so shutdown can wake it at once. It
// runs unpinned at normal priority, with a 1 us timer slack (the default 50 us slack would
// double its period).
#include <sys/prctl.h>

#include "runtime/cores/cores.hpp"
#include "runtime/core/runtime_impl.hpp"

namespace upcall::rt {

void RuntimeImpl::ticker_main() {
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  while (!stopped.load(std::memory_order_acquire)) {
    bool busy = false;
    // A busy core out of the budget counts too: a fiber of it that never enters the runtime
    // keeps it from draining its queues, which a granted core can steal.
    for (auto& c : cores) busy |= c->busy.load(std::memory_order_relaxed);
    const bool can_grant = n_idle.load(std::memory_order_relaxed) != 0;
    if (busy && can_grant) congestion_check(now_ns(), /*backstop=*/true);
    futex_wait(&ticker_word, 0, busy && can_grant ? kBackstopNs : kTickerIdleNs);
  }
}

}  // namespace upcall::rt
