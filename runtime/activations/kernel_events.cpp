// runtime/activations/kernel_events.cpp: a runtime's end of the kernel message stream
// (upcall/kernel_events.hpp): whether it consumes it, and what it does with each event.
// Every event arrives on the bpf backend's consumer thread (bpf_backend.cpp, steps 1-3).
#include "runtime/core/runtime_impl.hpp"
#include "runtime/core/signals.hpp"
#include "upcall/runtime.hpp"

namespace upcall {

const char* to_string(KernelEvent::Type t) noexcept {
  switch (t) {
    case KernelEvent::Type::task_new: return "TASK_NEW";
    case KernelEvent::Type::task_blocked: return "TASK_BLOCKED";
    case KernelEvent::Type::task_wakeup: return "TASK_WAKEUP";
    case KernelEvent::Type::task_preempt: return "TASK_PREEMPT";
    case KernelEvent::Type::task_on_cpu: return "TASK_ON_CPU";
    case KernelEvent::Type::task_dead: return "TASK_DEAD";
  }
  return "TASK_UNKNOWN";
}

std::vector<KernelEvent> Runtime::recent_kernel_events() const { return impl_->kevents.snapshot(); }

namespace rt {

// Called by the constructor after the backend is chosen and before any thread starts.
void RuntimeImpl::choose_kernel_events(bool requested) {
  const bool wanted = requested || (policy && policy->wants_kernel_events());
  if (!wanted) return;
  if (backend && backend->has_event_stream()) {
    kevents_on = true;
    return;
  }
  announce_once("kernel-events:" + cfg.activations,
                "upcall: kernel events were asked for, but the activation backend is " +
                    cfg.activations + " (only bpf has a message stream); none will arrive");
}

void RuntimeImpl::on_kernel_event(const KernelEvent& e) noexcept {
  kevents.add(e);
  if (policy && policy->wants_kernel_events()) policy->on_kernel_event(e);
}

}  // namespace rt
}  // namespace upcall
