// Parsing of rocksdb-server's flags (flags.hpp).
#include "flags.hpp"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include <upcall/options.hpp>

namespace rocksdb_server {
namespace {

bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return end && *end == '\0' && errno != ERANGE && std::isfinite(out);
}

bool parse_int(const std::string& s, long long lo, long long hi, long long& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoll(s.c_str(), &end, 10);
  return end && *end == '\0' && errno != ERANGE && out >= lo && out <= hi;
}

// "200000", "200k", "1.5M" -> a count.
bool parse_scaled(const std::string& s, double& out) {
  if (s.empty()) return false;
  std::string num = s;
  double mul = 1;
  const char last = s.back();
  if (last == 'k' || last == 'K') mul = 1e3;
  if (last == 'm' || last == 'M') mul = 1e6;
  if (mul != 1) num.pop_back();
  if (!parse_double(num, out)) return false;
  out *= mul;
  return true;
}

}  // namespace

bool parse_duration(const std::string& text, int64_t& ns) {
  static const struct {
    const char* suffix;
    double scale;
  } units[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}};
  std::string num = text;
  double scale = 1e9;  // a bare number is seconds
  for (const auto& u : units) {
    const std::string suf = u.suffix;
    if (text.size() > suf.size() && text.compare(text.size() - suf.size(), suf.size(), suf) == 0) {
      // "ms" must not be read as "m" + "s": the table lists two-letter units first.
      num = text.substr(0, text.size() - suf.size());
      scale = u.scale;
      break;
    }
  }
  double v;
  if (!parse_double(num, v) || v < 0 || v * scale > 1e18) return false;
  ns = static_cast<int64_t>(std::llround(v * scale));
  return true;
}

std::string format_duration(int64_t ns) {
  char buf[64];
  auto fmt = [&](double v, const char* unit) {
    std::snprintf(buf, sizeof buf, "%g%s", v, unit);
    return std::string(buf);
  };
  if (ns >= 1'000'000'000) return fmt(static_cast<double>(ns) / 1e9, "s");
  if (ns >= 1'000'000) return fmt(static_cast<double>(ns) / 1e6, "ms");
  if (ns >= 1'000) return fmt(static_cast<double>(ns) / 1e3, "us");
  return fmt(static_cast<double>(ns), "ns");
}

const char* usage() {
  return "usage: upcall_rocksdb_server [flags] [--upcall-* runtime flags]\n"
         "The ghOSt RocksDB experiment: Poisson GET/RANGE requests on an embedded RocksDB,\n"
         "dispatched to workers; prints the latency of each stage. Durations take ns/us/ms/s\n"
         "(a bare number is seconds).\n"
         "  --scheduler=upcall|threads   workers as upcall fibers or kernel threads (aliases\n"
         "                               ghost = upcall, cfs = threads) (upcall)\n"
         "  --rocksdb_db_path=DIR        database; created and filled if absent (/tmp/upcall_rocksdb_<uid>)\n"
         "  --throughput=N               offered load, requests/s, Poisson (20000)\n"
         "  --num_workers=N              workers (20)\n"
         "  --worker_cpus=LIST           cpulist for the workers (all CPUs)\n"
         "  --batch=N                    requests handed to a worker at once (1)\n"
         "  --range_query_ratio=R        share of RANGE requests, 0..1 (0)\n"
         "  --get_duration=D             service time of a GET (10us)\n"
         "  --range_duration=D           service time of a RANGE (10ms)\n"
         "  --experiment_duration=D      measured interval (10s)\n"
         "  --discard_duration=D         run before the measured interval, not measured (2s)\n"
         "  --slice=D                    upcall: long handlers yield at this interval (30us)\n"
         "  --num_keys=N --value_size=B  database shape (1000000 keys of 100 bytes)\n"
         "  --range_keys=N               keys one RANGE request scans (100)\n"
         "  --port=P                     serve the network protocol on 127.0.0.1:P instead of\n"
         "                               generating load in process; SIGINT/SIGTERM prints the table\n"
         "  --seed=S                     arrival schedule and keys (1)\n";
}

bool parse_flags(int argc, char** argv, Flags& o, std::string& error) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      error = "unexpected argument '" + arg + "' (see --help)";
      return false;
    }
    std::string name = arg, value;
    const auto eq = arg.find('=');
    if (eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      error = name + " needs a value";
      return false;
    }
    auto bad = [&](const char* what) {
      error = name + "=" + value + ": " + what;
      return false;
    };
    long long n;
    double d;
    int64_t ns;
    if (name == "--scheduler") {
      if (value == "upcall" || value == "ghost")
        o.scheduler = Scheduler::upcall;
      else if (value == "threads" || value == "cfs")
        o.scheduler = Scheduler::threads;
      else
        return bad("expected upcall or threads (aliases ghost, cfs)");
    } else if (name == "--rocksdb_db_path") {
      if (value.empty()) return bad("expected a directory");
      o.db_path = value;
    } else if (name == "--throughput") {
      if (!parse_scaled(value, d) || d <= 0 || d > 1e8) return bad("expected requests/s > 0");
      o.throughput = d;
    } else if (name == "--num_workers") {
      if (!parse_int(value, 1, 10000, n)) return bad("expected 1..10000 workers");
      o.num_workers = static_cast<int>(n);
    } else if (name == "--worker_cpus") {
      try {
        o.worker_cpus = upcall::parse_cpulist(value);
      } catch (const std::exception& e) {
        return bad(e.what());
      }
      if (o.worker_cpus.empty()) return bad("expected a cpulist such as 0-1");
      const long ncpu = sysconf(_SC_NPROCESSORS_CONF);
      for (int c : o.worker_cpus)
        if (c < 0 || c >= ncpu) return bad("CPU out of range for this machine");
    } else if (name == "--batch") {
      if (!parse_int(value, 1, 1024, n)) return bad("expected 1..1024");
      o.batch = static_cast<int>(n);
    } else if (name == "--range_query_ratio") {
      if (!parse_double(value, d) || d < 0 || d > 1) return bad("expected a ratio in [0, 1]");
      o.range_query_ratio = d;
    } else if (name == "--get_duration" || name == "--range_duration" ||
               name == "--experiment_duration" || name == "--discard_duration" ||
               name == "--slice") {
      if (!parse_duration(value, ns)) return bad("expected a duration such as 10us, 5s or 3");
      if (name == "--get_duration") o.get_ns = ns;
      if (name == "--range_duration") o.range_ns = ns;
      if (name == "--experiment_duration") {
        if (ns <= 0) return bad("must be > 0");
        o.experiment_ns = ns;
      }
      if (name == "--discard_duration") o.discard_ns = ns;
      if (name == "--slice") {
        if (ns < 1000) return bad("must be at least 1us");
        o.slice_ns = ns;
      }
    } else if (name == "--num_keys") {
      if (!parse_scaled(value, d) || d < 1 || d > 1e9 || d != std::floor(d))
        return bad("expected 1..1e9 keys");
      o.num_keys = static_cast<int64_t>(d);
    } else if (name == "--value_size") {
      if (!parse_int(value, 1, 1 << 20, n)) return bad("expected 1..1048576 bytes");
      o.value_size = static_cast<int>(n);
    } else if (name == "--range_keys") {
      if (!parse_int(value, 1, 1 << 20, n)) return bad("expected 1..1048576 keys");
      o.range_keys = static_cast<int>(n);
    } else if (name == "--port") {
      if (!parse_int(value, 1, 65535, n)) return bad("expected a port 1..65535");
      o.port = static_cast<int>(n);
    } else if (name == "--seed") {
      if (!parse_int(value, 0, INT64_MAX, n)) return bad("expected an integer >= 0");
      o.seed = static_cast<uint64_t>(n);
    } else {
      error = "unknown flag " + name + " (see --help)";
      return false;
    }
  }
  if (o.db_path.empty()) o.db_path = "/tmp/upcall_rocksdb_" + std::to_string(getuid());
  return true;
}

}  // namespace rocksdb_server
