// upcall/barrier.hpp: drop-in for std::barrier<CompletionFunction>, a reusable phase barrier.
// Each phase waits for `expected` arrivals; the last arrival runs the completion function on
// its own context, then starts the next phase and releases the waiters. Waiting suspends a
// calling fiber (blocks a plain thread). The phase bookkeeping and waiting are the non-template
// detail::BarrierCore (runtime/sync/barrier.cpp); this header only adds the completion type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "upcall/detail/config.hpp"
#include "upcall/detail/wait.hpp"

namespace upcall {

namespace detail {

class UPCALL_API BarrierCore {
 public:
  explicit BarrierCore(std::ptrdiff_t expected) noexcept : expected_(expected), pending_(expected) {}
  BarrierCore(const BarrierCore&) = delete;
  BarrierCore& operator=(const BarrierCore&) = delete;

  // Arrives n times (drop: and leaves the following phases). The arrival that completes the
  // phase calls complete(ctx) before the next phase starts. Returns the phase arrived at.
  std::uint64_t arrive(std::ptrdiff_t n, bool drop, void (*complete)(void*) noexcept, void* ctx);
  // Returns once `phase` has completed. May suspend.
  void wait(std::uint64_t phase);

 private:
  SpinLock spin_;  // guards everything below
  std::ptrdiff_t expected_;  // arrivals per phase (arrive_and_drop lowers it)
  std::ptrdiff_t pending_;   // arrivals still missing in this phase
  std::uint64_t phase_ = 0;  // completed phases
  WaitList waiters_;         // waiting for phase_ to complete
};

struct EmptyCompletion {
  void operator()() noexcept {}
};

}  // namespace detail

template <class CompletionFunction = detail::EmptyCompletion>
class barrier {
  static_assert(std::is_nothrow_invocable_v<CompletionFunction&>,
                "std::barrier requires a completion function invocable without throwing");

 public:
  class arrival_token {
   public:
    arrival_token(arrival_token&&) noexcept = default;
    arrival_token& operator=(arrival_token&&) noexcept = default;

   private:
    friend class barrier;
    explicit arrival_token(std::uint64_t p) noexcept : phase_(p) {}
    std::uint64_t phase_;
  };

  static constexpr std::ptrdiff_t max() noexcept {
    return std::numeric_limits<std::ptrdiff_t>::max();
  }

  // Precondition (std): 0 <= expected <= max().
  explicit barrier(std::ptrdiff_t expected, CompletionFunction f = CompletionFunction())
      : core_(expected), completion_(std::move(f)) {}
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;

  [[nodiscard]] arrival_token arrive(std::ptrdiff_t update = 1) {
    return arrival_token(core_.arrive(update, false, &run_completion, this));
  }
  void wait(arrival_token&& token) const { core_.wait(token.phase_); }
  void arrive_and_wait() { core_.wait(core_.arrive(1, false, &run_completion, this)); }
  void arrive_and_drop() { (void)core_.arrive(1, true, &run_completion, this); }

 private:
  static void run_completion(void* self) noexcept { static_cast<barrier*>(self)->completion_(); }
  mutable detail::BarrierCore core_;
  CompletionFunction completion_;
};

}  // namespace upcall
