// runtime/activations/procfs_backend.cpp: the fallback backend. No status words: the state of
// a thread comes from /proc/self/task/<tid>/stat (a file read, ~5-10 us), so it is consulted
// only by the watchdog (watchdog.cpp) for a holder that already looks stuck. Intents are kept
// in a per-slot array so the watchdog can skip intentional waits.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>
#include <thread>
#include <sched.h>

#include "runtime/activations/backend.hpp"

namespace upcall::rt {

char procfs_thread_state(int tid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  // "tid (comm) S ...": comm may contain spaces and parentheses, so take the last ')'.
  const char* rp = std::strrchr(buf, ')');
  if (!rp || rp[1] != ' ') return 0;
  return rp[2];
}

namespace {

constexpr std::uint32_t kSlots = 4096;

class ProcfsBackend final : public ActivationBackend {
 public:
  ProcfsBackend() : tids_(kSlots), intents_(kSlots) {}
  const char* name() const override { return "fallback"; }

  int register_thread(int tid, KernelEventSink*, int, void*) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::uint32_t s = 0; s < kSlots; ++s) {
      if (tids_[s].load(std::memory_order_relaxed) != 0) continue;
      tids_[s].store(tid, std::memory_order_relaxed);
      intents_[s].store(0, std::memory_order_relaxed);
      return static_cast<int>(s);
    }
    return -ENOSPC;
  }
  void unregister_thread(int, std::uint32_t slot) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (slot < kSlots) tids_[slot].store(0, std::memory_order_relaxed);
  }
  int read(std::uint32_t slot, StatusView* out) const override {
    if (slot >= kSlots) return -EINVAL;
    const int tid = tids_[slot].load(std::memory_order_relaxed);
    if (tid == 0) return -ENOENT;
    out->intent = intents_[slot].load(std::memory_order_acquire);
    out->seq = 0;
    out->last_switch_ns = 0;
    switch (procfs_thread_state(tid)) {
      case 'R': out->state = ThreadRunState::running; out->prev_state = 0; break;
      case 'S': out->state = ThreadRunState::blocked; out->prev_state = 0x1; break;
      case 'D': out->state = ThreadRunState::blocked; out->prev_state = 0x2; break;
      case 'T': out->state = ThreadRunState::blocked; out->prev_state = 0x4; break;
      case 't': out->state = ThreadRunState::blocked; out->prev_state = 0x8; break;
      case 0: return -ESRCH;
      default: out->state = ThreadRunState::dead; out->prev_state = 0x80; break;
    }
    return 0;
  }
  void set_intent(std::uint32_t slot, std::uint32_t intent) override {
    if (slot < kSlots) intents_[slot].store(intent, std::memory_order_release);
  }

 private:
  std::mutex mu_;  // guards slot allocation
  std::vector<std::atomic<int>> tids_;
  std::vector<std::atomic<std::uint32_t>> intents_;
};

}  // namespace

std::shared_ptr<ActivationBackend> procfs_backend() {
  static std::shared_ptr<ActivationBackend> instance = std::make_shared<ProcfsBackend>();
  return instance;
}

}  // namespace upcall::rt

namespace upcall::rt {

bool can_leave_sched_idle(std::string* why) {
  static std::once_flag once;
  static int result = 0;
  std::call_once(once, [] {
    std::thread t([] {
      sched_param p{};
      p.sched_priority = 0;
      if (sched_setscheduler(0, SCHED_IDLE, &p) != 0) {
        result = errno;
        return;
      }
      result = sched_setscheduler(0, SCHED_OTHER, &p) == 0 ? 0 : errno;
    });
    t.join();
  });
  if (result != 0 && why) *why = std::strerror(result);
  return result == 0;
}

}  // namespace upcall::rt
