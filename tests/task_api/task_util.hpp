// Helpers shared by the task API tests: polling from a plain thread, and a destructor counter
// that proves an unwinding ran the task's destructors.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

namespace upcall::test {

// Polls `pred` from the calling (plain) thread for up to `within`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds within = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Counts destructor runs.
struct DtorFlag {
  std::atomic<int>* n;
  explicit DtorFlag(std::atomic<int>* c) : n(c) {}
  DtorFlag(const DtorFlag&) = delete;
  ~DtorFlag() { n->fetch_add(1); }
};

}  // namespace upcall::test
