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
  poll,  // never sleep: keep polling for work, after a few microseconds at SCHED_IDLE so any
         // other process gets the CPU at once (a grant then costs no kernel wake-up)
};

// Which cores a runtime may use (README "Core reallocation"). A runtime owns the cores it was
// started with (Options::cores / cpus); its budget chooses, at any time, which of them may run
// fibers and how many stay awake. Runtime::set_core_budget changes it while running.
struct UPCALL_API CoreBudget {
  // Cores that never give their CPU back: when idle they poll instead of parking. 0..max.
  int min_cores = 0;
  // Cores that may run fibers: the first max_cores of the runtime's cores whose CPU is in
  // `cpus`. 0 means all of them.
  int max_cores = 0;
  // cpulist ("0-3,6") restricting the runtime's cores to those CPUs; empty means all of the
  // runtime's CPUs. Must name at least one CPU the runtime started with.
  std::string cpus;
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
  // UPCALL_STANDBY / --upcall-standby: eager|lazy (bpf activations; README "Scheduler
  // activations"). eager (default): a core's standby is woken whenever its holder leaves an
  // idle park, so a block is taken over in ~2 us; that wake-up costs each unpark a futex wake
  // and two context switches. lazy: the standby stays asleep until the kernel reports that the
  // holder blocked (the alert path, tens of microseconds); nothing per unpark. For servers that
  // park between requests and rarely block, next to other work on their CPUs.
  std::optional<std::string> standby;
  // UPCALL_CONGESTION_US / --upcall-congestion-us: the congestion interval in microseconds
  // (README "Core reallocation"). A core whose ready fiber or I/O completion has waited longer
  // than this gets a parked core granted. 0 turns congestion grants off: then every new ready
  // fiber wakes a parked core at once when no core is searching (the Go rule). Default 5.
  std::optional<unsigned> congestion_us;
  // The core budget at start (min/max cores, CPU set); unset: every core, none reserved.
  std::optional<CoreBudget> budget;
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
  unsigned congestion_us = 0;   // congestion interval; 0: congestion grants off
  std::string activations;      // effective activation backend: "bpf", "fallback" or "off"
  std::string io;               // effective I/O backend: "none" until the reactor exists
  bool lazy_standby = false;    // UPCALL_STANDBY=lazy
  std::string policy;           // "fifo" or the custom policy's name()
  std::string guard;            // "madvise" (MADV_GUARD_INSTALL) or "mprotect"

  // One line: "upcall: cores=2 cpus=0-1 stack=64KiB idle=spin:50us activations=off io=none
  // policy=fifo guard=madvise congestion=5us" (congestion only when on). Every example prints
  // it first.
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
