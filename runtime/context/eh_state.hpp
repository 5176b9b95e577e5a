// runtime/context/eh_state.hpp: the C++ runtime's per-thread exception state, made per-fiber.
// libstdc++ keeps, per kernel thread, the stack of exceptions currently caught (what `throw;`
// rethrows and std::current_exception returns) and the count of exceptions being unwound
// (std::uncaught_exceptions). A fiber that suspends inside a catch block or during unwinding
// and resumes on another thread would find the other thread's state; so each switch saves the
// thread's two words into the outgoing context and loads the incoming one's (as folly's fibers
// do). The layout is libsupc++'s __cxa_eh_globals (unwind-cxx.h) on x86-64: a pointer and an
// unsigned int, unchanged since GCC 4.
#pragma once

#include <cxxabi.h>

namespace upcall::rt {

struct EhGlobalsLayout {
  void* caught_exceptions;
  unsigned int uncaught_exceptions;
};

// Owner: the context it belongs to (saved/restored only by the thread switching it).
struct EhState {
  void* caught_exceptions = nullptr;
  unsigned int uncaught_exceptions = 0;
};

// The calling thread's globals. Their address is fixed for the thread's life, so it is taken
// once per thread (__cxa_get_globals is declared `const`, so the compiler may reuse a result
// across a fiber migration: never call it on a path that can resume on another thread).
inline EhGlobalsLayout* thread_eh_globals() {
  return reinterpret_cast<EhGlobalsLayout*>(abi::__cxa_get_globals());
}

inline void eh_swap(EhGlobalsLayout* g, EhState& out, const EhState& in) {
  out.caught_exceptions = g->caught_exceptions;
  out.uncaught_exceptions = g->uncaught_exceptions;
  g->caught_exceptions = in.caught_exceptions;
  g->uncaught_exceptions = in.uncaught_exceptions;
}

}  // namespace upcall::rt
