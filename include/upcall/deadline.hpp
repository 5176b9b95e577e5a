// upcall/deadline.hpp: turning the std::chrono arguments of the std-compatible timed waits
// (try_lock_for, wait_until, sleep_for, ...) into the one kind of deadline every upcall wait
// takes: a std::chrono::steady_clock::time_point (CLOCK_MONOTONIC, the runtime's timer clock).
// It owns only the conversions: saturation of huge durations (hours::max() means "forever",
// never an overflow) and the std rule for time points of other clocks (system_clock, user
// clocks): wait against the steady clock, then re-check the caller's clock, so a clock that is
// set back or forward is honoured as std::condition_variable honours it. It waits for nothing.
#pragma once

#include <chrono>
#include <type_traits>

namespace upcall::detail {

using SteadyTime = std::chrono::steady_clock::time_point;

// now + d, rounded up to the steady clock's tick, saturated at SteadyTime::max(). A zero or
// negative d gives now (the wait then only polls).
template <class Rep, class Period>
SteadyTime deadline_after(const std::chrono::duration<Rep, Period>& d) {
  using SD = std::chrono::steady_clock::duration;
  const SteadyTime now = std::chrono::steady_clock::now();
  if (d <= d.zero()) return now;
  // Compared in floating point: converting hours::max() to nanoseconds would overflow.
  const std::chrono::duration<long double> room = SteadyTime::max() - now;
  if (std::chrono::duration<long double>(d) >= room) return SteadyTime::max();
  return now + std::chrono::ceil<SD>(d);
}

// A steady_clock time point of any duration type, rounded up and saturated.
template <class Duration>
SteadyTime steady_deadline(const std::chrono::time_point<std::chrono::steady_clock, Duration>& t) {
  using SD = std::chrono::steady_clock::duration;
  const std::chrono::duration<long double> since = t.time_since_epoch();
  if (since >= std::chrono::duration<long double>(SteadyTime::max().time_since_epoch()))
    return SteadyTime::max();
  if (since <= std::chrono::duration<long double>(SteadyTime::min().time_since_epoch()))
    return SteadyTime::min();
  return SteadyTime(std::chrono::ceil<SD>(t.time_since_epoch()));
}

// Runs `attempt(steady_deadline)` (true = success, false = its deadline passed) until it
// succeeds or `t` has passed on Clock. For steady_clock that is one call; for other clocks the
// remaining time is re-measured on Clock after each timed-out attempt. Returns the last result.
template <class Clock, class Duration, class Attempt>
bool until_clock(const std::chrono::time_point<Clock, Duration>& t, Attempt&& attempt) {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    return attempt(steady_deadline(t));
  } else {
    for (;;) {
      const auto now = Clock::now();
      if (now >= t) return attempt(std::chrono::steady_clock::now());  // one last poll
      if (attempt(deadline_after(t - now))) return true;
    }
  }
}

}  // namespace upcall::detail
