// upcall/options.hpp: how a Runtime is configured, and the effective configuration it ends up
// with. Owns the one configuration table of the project (README "Configuration"): every knob can
// be given as a Runtime option, a command-line flag or an environment variable, with precedence
// Runtime option > command-line flag > environment > default. It does not start anything.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "upcall/detail/config.hpp"

namespace upcall {

class Policy;

// What an idle core does before it gives its CPU back to the machine.
enum class IdleMode {
  park,  // spin for spin_us, then sleep in the kernel until woken
  poll,  // never sleep: keep polling for work (lowest wake-up latency, burns the CPU)
};

// Requested settings. Unset fields are filled from command-line flags, then from the
// environment, then from defaults. Thread-compatible value type.
struct UPCALL_API Options {
  std::optional<int> cores;                // UPCALL_CORES / --upcall-cores: number of cores
  std::optional<std::string> cpus;         // UPCALL_CPUS / --upcall-cpus: cpulist, e.g. "0-3,6"
  std::optional<std::size_t> stack_size;   // UPCALL_STACK_SIZE / --upcall-stack-size: bytes,
                                           // suffixes K/M accepted ("64K")
  std::optional<std::string> idle;         // UPCALL_IDLE / --upcall-idle: park|poll|spin:<us>
  std::optional<std::string> activations;  // UPCALL_ACTIVATIONS: bpf|fallback|off (default bpf)
  std::optional<std::string> io;           // UPCALL_IO: uring|epoll
  // Scheduling policy; nullptr selects the built-in per-core FIFO + work stealing policy.
  std::shared_ptr<Policy> policy;
  // Quiet: do not print the one-line configuration banner to stderr at start.
  bool quiet = true;
  // Consume the kernel's message stream about this runtime's threads (bpf activations only):
  // count it in RuntimeStats::kernel_events and keep the last messages for
  // Runtime::recent_kernel_events(). Also on when the policy wants_kernel_events().
  bool kernel_events = false;

  // Fills the fields that are still unset from --upcall-* flags found in argv, and removes
  // those flags from argv (argc is updated). Unknown --upcall-* flags throw
  // std::invalid_argument naming the flag. Other arguments are left alone.
  Options& parse_args(int& argc, char** argv);
};

// The configuration a Runtime actually runs with, after precedence and validation.
struct UPCALL_API EffectiveConfig {
  int cores = 0;
  std::vector<int> cpus;        // cpus[i] is the CPU core i is bound to
  std::size_t stack_size = 0;   // usable bytes per fiber stack (guard page not included)
  IdleMode idle = IdleMode::park;
  unsigned spin_us = 0;         // spin budget before parking (park mode)
  std::string activations;      // effective activation backend: "bpf", "fallback" or "off"
  std::string io;               // effective I/O backend: "none" until the reactor exists
  std::string policy;           // "fifo" or the custom policy's name()
  std::string guard;            // "madvise" (MADV_GUARD_INSTALL) or "mprotect"

  // One line: "upcall: cores=2 cpus=0-1 stack=64KiB idle=spin:50us activations=off io=none
  // policy=fifo guard=madvise". Every example prints it first.
  std::string describe() const;
};

// Resolves `opts` against argv-less sources (environment, defaults, the process affinity mask).
// Throws std::invalid_argument with a message naming the offending variable or option, e.g.
// "UPCALL_CORES=3 asks for more cores than CPUs in the affinity mask (0-1)".
UPCALL_API EffectiveConfig resolve_config(const Options& opts);

// Parses Linux cpulist syntax ("0-3,8,10-11"). Throws std::invalid_argument on bad syntax.
UPCALL_API std::vector<int> parse_cpulist(const std::string& text);
UPCALL_API std::string format_cpulist(const std::vector<int>& cpus);

}  // namespace upcall
