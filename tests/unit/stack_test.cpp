// Fiber stacks (runtime/context/stack_pool.hpp, runtime/core/fiber_pool.cpp): a stack overflow
// dies with a message naming the fiber; a configured stack size is usable; stacks are recycled
// so sequential spawns do not map new ones; each stack has a guard page right below it.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "fixture.hpp"
#include "runtime/core/runtime_impl.hpp"

namespace upcall::test {
namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// Recurses forever with a small frame (well under a page, so the guard page is hit rather than
// jumped over). The volatile buffer and the use after the call prevent tail-call elimination.
__attribute__((noinline)) int RecurseForever(int depth) {
  volatile char buf[256];
  buf[0] = static_cast<char>(depth);
  buf[255] = buf[0];
  return RecurseForever(depth + 1) + buf[255];
}

// Uses about `bytes` of stack in 4 KiB frames, every byte touched; returns the lowest address
// reached (so the caller can check how deep it went).
__attribute__((noinline)) std::uintptr_t UseStack(std::size_t bytes) {
  volatile char buf[4096];
  for (std::size_t i = 0; i < sizeof(buf); i += 64) buf[i] = static_cast<char>(i);
  std::uintptr_t low = reinterpret_cast<std::uintptr_t>(&buf[0]);
  if (bytes > sizeof(buf)) {
    const std::uintptr_t deeper = UseStack(bytes - sizeof(buf));
    if (deeper < low) low = deeper;
  }
  return low + (buf[64] == 64 ? 0 : 1);
}

// Stack used between the caller's frame and the deepest frame of UseStack(bytes).
std::size_t MeasuredUse(std::size_t bytes) {
  volatile char here = 0;
  const auto top = reinterpret_cast<std::uintptr_t>(&here);
  return top - UseStack(bytes);
}

class StackDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(StackDeathTest, OverflowNamesTheFiber) {
  EXPECT_DEATH(
      {
        Options o;
        o.cores = 1;
        Runtime rt(std::move(o));
        rt.spawn([] { return RecurseForever(0); }, SpawnOptions{"deep-recursion", 0}).join();
      },
      "stack overflow in fiber [0-9]+ \"deep-recursion\"");
}

TEST_F(StackDeathTest, OverflowOfUnnamedFiberGivesItsIdAndTheStackSize) {
  EXPECT_DEATH(
      {
        Options o;
        o.cores = 1;
        o.stack_size = 32 * 1024;
        Runtime rt(std::move(o));
        rt.spawn([] { return RecurseForever(0); }).join();
      },
      "stack overflow in fiber [0-9]+: guard page hit at 0x[0-9a-f]+; stacks are 32 KiB");
}

// A segfault that is not a stack overflow keeps its ordinary outcome (the runtime's handler
// chains to the previous one: here the default action, killed by SIGSEGV).
TEST_F(StackDeathTest, OtherFaultsAreNotReportedAsOverflow) {
  if (kSanitized) GTEST_SKIP() << "the sanitizer's own SEGV handler reports this one";
  EXPECT_EXIT(
      {
        Options o;
        o.cores = 1;
        Runtime rt(std::move(o));
        rt.spawn([] {
            volatile int* p = reinterpret_cast<volatile int*>(std::uintptr_t{16});
            return *p;
          }).join();
      },
      ::testing::KilledBySignal(SIGSEGV), "");
}

TEST(Stack, ConfiguredStackSizeIsUsable) {
  Options o;
  o.cores = 1;
  o.stack_size = 256 * 1024;
  Runtime rt(std::move(o));
  EXPECT_EQ(rt.config().stack_size, 256u * 1024);
  const std::size_t used = rt.block_on([] { return MeasuredUse(200 * 1024); });
  EXPECT_GE(used, 200u * 1024);
  // Twice in a row on recycled stacks, and in several fibers at once.
  std::vector<JoinHandle<std::size_t>> hs;
  for (int i = 0; i < 4; ++i) hs.push_back(rt.spawn([] { return MeasuredUse(200 * 1024); }));
  for (auto& h : hs) EXPECT_GE(h.join(), 200u * 1024);
  EXPECT_TRUE(NoLeaks(rt));
}

TEST(Stack, EnvStackSizeIsUsable) {
  ScopedEnv env("UPCALL_STACK_SIZE", "256K");
  Options o;
  o.cores = 1;
  Runtime rt(std::move(o));
  EXPECT_EQ(rt.config().stack_size, 256u * 1024);
  EXPECT_GE(rt.block_on([] { return MeasuredUse(200 * 1024); }), 200u * 1024);
  EXPECT_TRUE(NoLeaks(rt));
}

TEST(Stack, DefaultStackFitsFortyKiB) {
  ScopedEnv env("UPCALL_STACK_SIZE", nullptr);
  Options o;
  o.cores = 1;
  Runtime rt(std::move(o));
  EXPECT_EQ(rt.config().stack_size, 64u * 1024);
  EXPECT_GE(rt.block_on([] { return MeasuredUse(40 * 1024); }), 40u * 1024);
  EXPECT_TRUE(NoLeaks(rt));
}

using StackReuse = RuntimeTest;

TEST_P(StackReuse, SequentialSpawnsFromAThreadReuseStacks) {
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(rt().spawn([i] { return i; }).join(), i);
  // One slab holds ~240 default stacks; without reuse this would be 10,000.
  EXPECT_LE(rt().impl()->stacks.slots_mapped(), 1000u);
  EXPECT_TRUE(NoLeaks(rt()));
  EXPECT_EQ(rt().stacks_in_use(), 0u);
}

TEST_P(StackReuse, SequentialSpawnsFromAFiberReuseStacks) {
  rt().block_on([] {
    for (int i = 0; i < 10000; ++i) spawn([] { this_task::yield(); }).join();
  });
  EXPECT_LE(rt().impl()->stacks.slots_mapped(), 1000u);
  EXPECT_TRUE(NoLeaks(rt()));
}

TEST_P(StackReuse, GuardPageSitsBelowEachStack) {
  const rt::StackPool& pool = rt().impl()->stacks;
  std::vector<JoinHandle<bool>> hs;
  for (int i = 0; i < 50; ++i) {
    hs.push_back(rt().spawn([&pool] {
      rt::Activation* a = rt::current_activation();
      if (!a || !a->current) return false;
      rt::Fiber* f = a->current;
      volatile char local = 0;
      const char* here = const_cast<const char*>(&local);
      const bool guard_below = pool.is_guard_address(f->slot_base) &&
                               pool.is_guard_address(f->slot_base + pool.page_size() - 1);
      const bool usable_above = !pool.is_guard_address(f->slot_base + pool.page_size());
      const bool on_own_stack = here > f->slot_base + pool.page_size() && here < f->stack_top;
      return guard_below && usable_above && on_own_stack &&
             f->stack_usable + 4096 >= pool.usable_size() - 4096;
    }));
  }
  for (auto& h : hs) EXPECT_TRUE(h.join());
}

UPCALL_INSTANTIATE_CORES(StackReuse);

}  // namespace
}  // namespace upcall::test
