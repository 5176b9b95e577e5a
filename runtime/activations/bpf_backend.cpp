// runtime/activations/bpf_backend.cpp: the bpf backend, a thin adapter over kernel-glue's
// BpfGlue. One BpfGlue per process at a time (the programs filter on our pid, then on
// registered threads), shared by the runtimes alive and closed with the last of them. Slots are handed out from a
// process-wide bitmap under a mutex (registration is off every hot path).
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <vector>

#include "bpf_glue.hpp"
#include "runtime/activations/backend.hpp"

namespace upcall::rt {

namespace {

constexpr std::uint32_t kSlots = 4096;  // activations per process (all runtimes together)

class BpfBackend final : public ActivationBackend {
 public:
  const char* name() const override { return "bpf"; }

  int open(std::string* why) {
    const int rc = glue_.open(getpid(), kSlots);
    if (rc < 0) *why = glue_.explain(rc);
    used_.assign(kSlots, false);
    return rc;
  }

  int register_thread(int tid) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::uint32_t s = 0; s < kSlots; ++s) {
      if (used_[s]) continue;
      const int rc = glue_.register_thread(tid, s);
      if (rc < 0) return rc;
      used_[s] = true;
      return static_cast<int>(s);
    }
    return -ENOSPC;
  }

  void unregister_thread(int tid, std::uint32_t slot) override {
    std::lock_guard<std::mutex> lock(mu_);
    glue_.unregister_thread(tid);
    if (slot < kSlots) used_[slot] = false;
  }

  int read(std::uint32_t slot, StatusView* out) const override {
    upcall_status_word w;
    const int rc = glue_.read_status(slot, &w);
    if (rc < 0) return rc;
    switch (w.state) {
      case UPCALL_ST_RUNNING: out->state = ThreadRunState::running; break;
      case UPCALL_ST_PREEMPTED: out->state = ThreadRunState::preempted; break;
      case UPCALL_ST_BLOCKED: out->state = ThreadRunState::blocked; break;
      case UPCALL_ST_DEAD: out->state = ThreadRunState::dead; break;
      default: out->state = ThreadRunState::unknown; break;
    }
    out->seq = w.seq;
    out->prev_state = w.prev_state;
    out->intent = w.intent;
    out->last_switch_ns = static_cast<std::int64_t>(w.last_switch_ns);
    out->cpu = static_cast<int>(w.cpu);
    return 0;
  }

  void set_intent(std::uint32_t slot, std::uint32_t intent) override {
    glue_.set_intent(slot, intent);
  }

  std::string describe_counters() const override {
    kglue::Counters c;
    if (glue_.read_counters(&c) < 0) return {};
    return "bpf events=" + std::to_string(c.events) +
           " filtered_other_process=" + std::to_string(c.filtered_tgid) +
           " filtered_other_thread=" + std::to_string(c.filtered_tid) +
           " handled=" + std::to_string(c.handled);
  }

 private:
  kglue::BpfGlue glue_;
  std::mutex mu_;
  std::vector<bool> used_;  // guarded by mu_
};

}  // namespace

std::shared_ptr<ActivationBackend> bpf_backend(std::string* why) {
  // Shared by the runtimes alive at a time; the programs detach when the last one goes (so a
  // process without a runtime adds nothing to the machine's context switches).
  static std::mutex mu;
  static std::weak_ptr<ActivationBackend> current;
  std::lock_guard<std::mutex> lock(mu);
  if (auto b = current.lock()) return b;
  auto b = std::make_shared<BpfBackend>();
  std::string failure;
  if (b->open(&failure) != 0) {
    if (why) *why = failure;
    return nullptr;
  }
  current = b;
  return b;
}

}  // namespace upcall::rt
