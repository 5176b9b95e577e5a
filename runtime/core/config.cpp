// runtime/core/config.cpp: the configuration table (README "Configuration"): parsing of
// --upcall-* flags and UPCALL_* variables, precedence (Runtime option > flag > environment >
// default), validation with messages that name the offending setting, and the banner line.
#include <sched.h>

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

#include "runtime/core/signals.hpp"
#include "upcall/options.hpp"

namespace upcall {

namespace {

// Default stack: 64 KiB of usable stack plus a guard page. Chosen in bench/RESULTS.md
// ("Stack size"): deep enough for printf/iostream/regex-heavy handlers, and since stacks are
// reserved, not committed, an idle fiber costs one page of RSS whatever this is.
constexpr std::size_t kDefaultStackSize = 64 * 1024;
constexpr std::size_t kMinStackSize = 16 * 1024;
constexpr std::size_t kMaxStackSize = std::size_t{1} << 30;
// Default idle mode: spin 50 us before parking. Waking a parked core costs 12-30 us on this
// machine kind (DESIGN.md), so short gaps are cheaper spun through (BM_Wake_ParkedCore).
constexpr unsigned kDefaultSpinUs = 50;
// Default congestion interval (README "Core reallocation"): Shenango's 5 us. A ready fiber
// that waited longer than this on a busy core gets a parked core granted.
constexpr unsigned kDefaultCongestionUs = 5;
constexpr long long kMaxCongestionUs = 1'000'000;

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

[[noreturn]] void bad(const std::string& what, const std::string& why) {
  throw std::invalid_argument("upcall: " + what + ": " + why);
}

long long parse_int(const std::string& what, const std::string& s) {
  if (s.empty()) bad(what, "empty value");
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || *end) bad(what, "'" + s + "' is not a whole number");
  return v;
}

std::size_t parse_size(const std::string& what, const std::string& s) {
  if (s.empty()) bad(what, "empty value");
  char* end = nullptr;
  errno = 0;
  if (s[0] == '-') bad(what, "'" + s + "' is negative");
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno || end == s.c_str()) bad(what, "'" + s + "' is not a size (e.g. 65536, 64K, 1M)");
  std::size_t mult = 1;
  const std::string suffix(end);
  if (suffix == "K" || suffix == "k" || suffix == "KiB")
    mult = 1024;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB")
    mult = 1024 * 1024;
  else if (!suffix.empty())
    bad(what, "'" + s + "' has an unknown suffix (use K or M)");
  if (v > (std::size_t{1} << 40) / mult) bad(what, "'" + s + "' is far too large");
  return static_cast<std::size_t>(v) * mult;
}

std::vector<int> affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int i = 0; i < CPU_SETSIZE; ++i)
    if (CPU_ISSET(i, &set)) cpus.push_back(i);
  return cpus;
}

struct Flag {
  const char* name;
  std::optional<std::string> Options::*str;
};

}  // namespace

std::vector<int> parse_cpulist(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string part;
  if (text.empty()) throw std::invalid_argument("empty cpulist");
  if (text.back() == ',') throw std::invalid_argument("trailing comma in cpulist '" + text + "'");
  while (std::getline(ss, part, ',')) {
    if (part.empty()) throw std::invalid_argument("empty element in cpulist '" + text + "'");
    const auto dash = part.find('-');
    char* end = nullptr;
    const long lo = std::strtol(part.c_str(), &end, 10);
    if (end == part.c_str() || lo < 0) throw std::invalid_argument("bad cpulist '" + text + "'");
    long hi = lo;
    if (dash != std::string::npos) {
      if (*end != '-') throw std::invalid_argument("bad cpulist '" + text + "'");
      const char* rest = part.c_str() + dash + 1;
      hi = std::strtol(rest, &end, 10);
      if (end == rest || hi < lo) throw std::invalid_argument("bad range in cpulist '" + text + "'");
    }
    if (*end) throw std::invalid_argument("bad cpulist '" + text + "'");
    if (hi >= CPU_SETSIZE) throw std::invalid_argument("CPU number too large in '" + text + "'");
    for (long c = lo; c <= hi; ++c) {
      bool dup = false;
      for (int x : out) dup |= (x == c);
      if (!dup) out.push_back(static_cast<int>(c));
    }
  }
  return out;
}

std::string format_cpulist(const std::vector<int>& cpus) {
  std::string s;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!s.empty()) s += ',';
    s += std::to_string(cpus[i]);
    if (j > i) s += "-" + std::to_string(cpus[j]);
    i = j + 1;
  }
  return s;
}

Options& Options::parse_args(int& argc, char** argv) {
  static const char* const kNames[] = {"cores",       "cpus", "stack-size",    "idle",
                                       "activations", "io",   "congestion-us", "standby"};
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (std::strncmp(arg, "--upcall-", 9) != 0) {
      argv[out++] = argv[i];
      continue;
    }
    std::string body(arg + 9);
    std::string name = body, value;
    const auto eq = body.find('=');
    if (eq != std::string::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
    } else {
      if (i + 1 >= argc) bad("--upcall-" + name, "missing value");
      value = argv[++i];
    }
    bool known = false;
    for (const char* k : kNames) known |= (name == k);
    if (!known)
      bad("--upcall-" + name,
          "unknown flag (known: --upcall-cores, --upcall-cpus, --upcall-stack-size, "
          "--upcall-idle, --upcall-activations, --upcall-io, --upcall-congestion-us, "
          "--upcall-standby)");
    // Runtime options set in code win over flags: only fill what is unset.
    if (name == "cores" && !cores) {
      const long long n = parse_int("--upcall-cores", value);
      if (n < 1 || n > CPU_SETSIZE) bad("--upcall-cores=" + value, "must be 1 .. number of CPUs");
      cores = static_cast<int>(n);
    }
    if (name == "cpus" && !cpus) {
      try {
        parse_cpulist(value);  // validated here so the error names the flag
      } catch (const std::invalid_argument& e) {
        bad("--upcall-cpus=" + value, e.what());
      }
      cpus = value;
    }
    if (name == "stack-size" && !stack_size) stack_size = parse_size("--upcall-stack-size", value);
    if (name == "idle" && !idle) {
      if (value != "park" && value != "poll" && value.rfind("spin:", 0) != 0)
        bad("--upcall-idle=" + value, "expected park, poll or spin:<us>");
      idle = value;
    }
    if (name == "activations" && !activations) activations = value;
    if (name == "io" && !io) io = value;
    if (name == "standby" && !standby) {
      if (value != "eager" && value != "lazy") bad("--upcall-standby=" + value, "expected eager|lazy");
      standby = value;
    }
    if (name == "congestion-us" && !congestion_us) {
      const long long us = parse_int("--upcall-congestion-us", value);
      if (us < 0 || us > kMaxCongestionUs)
        bad("--upcall-congestion-us=" + value, "must be 0..1000000 (microseconds; 0 = off)");
      congestion_us = static_cast<unsigned>(us);
    }
  }
  argc = out;
  argv[argc] = nullptr;
  return *this;
}

EffectiveConfig resolve_config(const Options& o) {
  EffectiveConfig c;
  // CPUs.
  const std::vector<int> allowed = affinity_cpus();
  if (allowed.empty()) bad("affinity", "sched_getaffinity failed or the mask is empty");
  std::string cpus_src = "the process affinity mask";
  std::vector<int> cpus = allowed;
  std::optional<std::string> cpus_text = o.cpus;
  std::string cpus_what = "Options::cpus";
  if (!cpus_text && env("UPCALL_CPUS")) {
    cpus_text = env("UPCALL_CPUS");
    cpus_what = "UPCALL_CPUS";
  }
  if (cpus_text) {
    try {
      cpus = parse_cpulist(*cpus_text);
    } catch (const std::invalid_argument& e) {
      bad(cpus_what + "=" + *cpus_text, e.what());
    }
    for (int cpu : cpus) {
      bool ok = false;
      for (int a : allowed) ok |= (a == cpu);
      if (!ok)
        bad(cpus_what + "=" + *cpus_text, "CPU " + std::to_string(cpu) +
                                              " is not in the process affinity mask (" +
                                              format_cpulist(allowed) + ")");
    }
    cpus_src = cpus_what + "=" + *cpus_text;
  }
  // Cores.
  long long cores = static_cast<long long>(cpus.size());
  std::string cores_what;
  if (o.cores) {
    cores = *o.cores;
    cores_what = "Options::cores=" + std::to_string(cores);
  } else if (const char* e = env("UPCALL_CORES")) {
    cores = parse_int("UPCALL_CORES", e);
    cores_what = std::string("UPCALL_CORES=") + e;
  }
  if (cores > CPU_SETSIZE) bad(cores_what, "far more cores than this machine can have");
  if (cores < 1) bad(cores_what, "the number of cores must be at least 1");
  if (cores > static_cast<long long>(cpus.size()))
    bad(cores_what, "asks for more cores than CPUs in " + cpus_src + " (" +
                        format_cpulist(cpus) + ")");
  c.cores = static_cast<int>(cores);
  c.cpus.assign(cpus.begin(), cpus.begin() + c.cores);
  // Stack size.
  c.stack_size = kDefaultStackSize;
  if (o.stack_size)
    c.stack_size = *o.stack_size;
  else if (const char* e = env("UPCALL_STACK_SIZE"))
    c.stack_size = parse_size("UPCALL_STACK_SIZE", e);
  if (c.stack_size < kMinStackSize || c.stack_size > kMaxStackSize)
    bad("stack size " + std::to_string(c.stack_size),
        "must be between 16 KiB and 1 GiB (UPCALL_STACK_SIZE)");
  // Idle mode.
  std::string idle = "spin:" + std::to_string(kDefaultSpinUs);
  std::string idle_what = "UPCALL_IDLE";
  if (o.idle) {
    idle = *o.idle;
    idle_what = "Options::idle";
  } else if (const char* e = env("UPCALL_IDLE")) {
    idle = e;
  }
  if (idle == "park") {
    c.idle = IdleMode::park;
    c.spin_us = 0;
  } else if (idle == "poll") {
    c.idle = IdleMode::poll;
  } else if (idle.rfind("spin:", 0) == 0) {
    const long long us = parse_int(idle_what, idle.substr(5));
    if (us < 0 || us > 1'000'000) bad(idle_what + "=" + idle, "spin time must be 0..1000000 us");
    c.idle = IdleMode::park;
    c.spin_us = static_cast<unsigned>(us);
  } else {
    bad(idle_what + "=" + idle, "expected park, poll or spin:<us>");
  }
  // Activations: the requested backend; the runtime falls back (bpf -> fallback) with a
  // one-line announcement when this machine does not allow it, and reports the effective one.
  {
    std::optional<std::string> v = o.activations;
    if (!v && env("UPCALL_ACTIVATIONS")) v = env("UPCALL_ACTIVATIONS");
    c.activations = v ? *v : "bpf";
    if (c.activations != "bpf" && c.activations != "fallback" && c.activations != "off")
      bad("UPCALL_ACTIVATIONS=" + c.activations, "expected bpf|fallback|off");
  }
  // Standby wake-up (bpf activations): eager or lazy (README "Scheduler activations").
  {
    std::optional<std::string> v = o.standby;
    if (!v && env("UPCALL_STANDBY")) v = env("UPCALL_STANDBY");
    const std::string mode = v ? *v : "eager";
    if (mode != "eager" && mode != "lazy") bad("UPCALL_STANDBY=" + mode, "expected eager|lazy");
    c.lazy_standby = mode == "lazy";
  }
  // I/O: the requested backend; the runtime falls back (uring -> epoll) with a one-line
  // announcement when io_uring is not allowed here, and reports the effective one.
  {
    std::optional<std::string> v = o.io;
    if (!v && env("UPCALL_IO")) v = env("UPCALL_IO");
    c.io = v ? *v : "uring";
    if (c.io != "uring" && c.io != "epoll") bad("UPCALL_IO=" + c.io, "expected uring|epoll");
  }
  // Congestion interval (runtime/cores).
  c.congestion_us = kDefaultCongestionUs;
  if (o.congestion_us) {
    if (*o.congestion_us > kMaxCongestionUs)
      bad("Options::congestion_us=" + std::to_string(*o.congestion_us),
          "must be 0..1000000 (microseconds; 0 = off)");
    c.congestion_us = *o.congestion_us;
  } else if (const char* e = env("UPCALL_CONGESTION_US")) {
    const long long us = parse_int("UPCALL_CONGESTION_US", e);
    if (us < 0 || us > kMaxCongestionUs)
      bad(std::string("UPCALL_CONGESTION_US=") + e, "must be 0..1000000 (microseconds; 0 = off)");
    c.congestion_us = static_cast<unsigned>(us);
  }
  c.policy = "fifo";
  return c;
}

std::string EffectiveConfig::describe() const {
  std::string s = "upcall: cores=" + std::to_string(cores) + " cpus=" + format_cpulist(cpus) +
                  " stack=" + std::to_string(stack_size / 1024) + "KiB idle=";
  if (idle == IdleMode::poll)
    s += "poll";
  else if (spin_us == 0)
    s += "park";
  else
    s += "spin:" + std::to_string(spin_us) + "us";
  s += " activations=" + activations + " io=" + io + " policy=" + policy + " guard=" + guard;
  if (congestion_us) s += " congestion=" + std::to_string(congestion_us) + "us";
  if (lazy_standby && activations == "bpf") s += " standby=lazy";
  return s;
}

}  // namespace upcall
