// runtime/core/check.hpp: UPCALL_CHECK, the always-on invariant check for conditions that
// protect memory (a violated one would corrupt a queue or a stack), and UPCALL_DCHECK for hot
// paths, compiled only in debug builds. A failed check prints one line and aborts.
#pragma once

namespace upcall::rt {
[[noreturn]] void check_failed(const char* expr, const char* msg, const char* file, int line);
}

#define UPCALL_CHECK(cond, msg)                                              \
  do {                                                                       \
    if (__builtin_expect(!(cond), 0))                                        \
      ::upcall::rt::check_failed(#cond, msg, __FILE__, __LINE__);            \
  } while (0)

#ifdef NDEBUG
#define UPCALL_DCHECK(cond, msg) \
  do {                           \
  } while (0)
#else
#define UPCALL_DCHECK(cond, msg) UPCALL_CHECK(cond, msg)
#endif
