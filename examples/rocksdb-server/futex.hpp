// The two futex calls the threads scheduler waits with (no spinning: a waiter sleeps in the
// kernel until woken). Private futexes on a 32-bit word.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace rocksdb_server {

// Sleeps while *word == expected, at most timeout_ns (<= 0: no limit). Spurious returns happen.
inline void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns = 0) {
  timespec ts{timeout_ns / 1'000'000'000, timeout_ns % 1'000'000'000};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected,
          timeout_ns > 0 ? &ts : nullptr, nullptr, 0);
}

inline void futex_wake(std::atomic<uint32_t>* word, int n = 1) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
}

}  // namespace rocksdb_server
