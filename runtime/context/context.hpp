// runtime/context/context.hpp: raw execution contexts. Wraps Boost.Context's fcontext
// (jump_fcontext / make_fcontext, about 5 ns a switch here) and the sanitizer annotations every
// switch needs: Debian's Boost 1.74 uses fcontext, whose BOOST_USE_ASAN/TSAN hooks do nothing,
// so ASAN (fake stacks, stack bounds) and TSAN (fiber identities) are told here. It knows nothing
// about fibers, cores or scheduling.
#pragma once

#include <boost/context/detail/fcontext.hpp>
#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define UPCALL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UPCALL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define UPCALL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UPCALL_TSAN 1
#endif
#endif

#ifdef UPCALL_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef UPCALL_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace upcall::rt {

namespace bctx = boost::context::detail;
using RawContext = bctx::fcontext_t;
using Transfer = bctx::transfer_t;

// Sanitizer identity of one execution context (a fiber stack, or a thread's own stack).
// Owner: the context itself; written only while that context is running or being created.
struct SanitizerIdentity {
#ifdef UPCALL_ASAN
  void* fake_stack = nullptr;        // ASAN's fake stack of this context while suspended
  const void* stack_bottom = nullptr;  // lowest address of the stack
  std::size_t stack_size = 0;
#endif
#ifdef UPCALL_TSAN
  void* tsan_fiber = nullptr;  // __tsan_create_fiber result, or the thread's own fiber
  bool tsan_owned = false;     // created by us (destroyed with the fiber)
#endif
};

// Creates the identity of a fiber stack [bottom, bottom + size).
inline void sanitizer_identity_init(SanitizerIdentity& id, void* bottom, std::size_t size) {
  (void)id, (void)bottom, (void)size;
#ifdef UPCALL_ASAN
  id.stack_bottom = bottom;
  id.stack_size = size;
#endif
#ifdef UPCALL_TSAN
  if (!id.tsan_fiber) {
    id.tsan_fiber = __tsan_create_fiber(0);
    id.tsan_owned = true;
  }
#endif
}

// A recycled stack may still carry ASAN poison from frames of its previous fiber that never
// returned (it switched away for good); clear it before the stack is reused.
inline void sanitizer_stack_reuse(void* bottom, std::size_t size) {
  (void)bottom, (void)size;
#ifdef UPCALL_ASAN
  ASAN_UNPOISON_MEMORY_REGION(bottom, size);
#endif
}

// The identity of the calling thread's own stack (the scheduler loop context).
void sanitizer_identity_of_thread(SanitizerIdentity& id);

inline void sanitizer_identity_destroy(SanitizerIdentity& id) {
  (void)id;
#ifdef UPCALL_TSAN
  if (id.tsan_owned && id.tsan_fiber) __tsan_destroy_fiber(id.tsan_fiber);
  id.tsan_fiber = nullptr;
  id.tsan_owned = false;
#endif
}

// Announces a switch from `from` to `to`. `from_dying` says the current context never resumes
// (ASAN then frees its fake stack).
inline void sanitizer_before_switch(SanitizerIdentity& from, SanitizerIdentity& to,
                                    bool from_dying) {
  (void)from, (void)to, (void)from_dying;
#ifdef UPCALL_ASAN
  __sanitizer_start_switch_fiber(from_dying ? nullptr : &from.fake_stack, to.stack_bottom,
                                 to.stack_size);
#endif
#ifdef UPCALL_TSAN
  __tsan_switch_to_fiber(to.tsan_fiber, 0);
#endif
}

// Called first thing in a context that has just been resumed (or started).
inline void sanitizer_after_switch(SanitizerIdentity& self) {
  (void)self;
#ifdef UPCALL_ASAN
  __sanitizer_finish_switch_fiber(self.fake_stack, nullptr, nullptr);
#endif
}

// Safety: `sp` is the top of a stack of `size` bytes that nothing else uses; `fn` must never
// return (it must switch away for good).
inline RawContext make_context(void* sp, std::size_t size, void (*fn)(Transfer)) {
  return bctx::make_fcontext(sp, size, fn);
}

// Safety: `to` is a suspended context that no other thread is resuming; the caller has saved
// nothing it needs in registers (fcontext preserves callee-saved registers per the ABI).
inline Transfer jump_context(RawContext to, void* data) { return bctx::jump_fcontext(to, data); }

}  // namespace upcall::rt
