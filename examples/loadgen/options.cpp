// Option parsing for the load generator (see options.hpp and usage() for the meaning of each).
#include "options.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace loadgen {
namespace {

// A number with an optional multiplier suffix; false if malformed or not finite.
bool parse_scaled(std::string_view s, double& out, bool binary) {
  if (s.empty()) return false;
  std::string str(s);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(str.c_str(), &end);
  if (end == str.c_str() || errno == ERANGE || !std::isfinite(v)) return false;
  std::string_view rest(end);
  const double k = binary ? 1024.0 : 1000.0;
  if (rest == "k" || rest == "K") v *= k;
  else if (rest == "m" || rest == "M") v *= k * k;
  else if (!rest.empty()) return false;
  out = v;
  return true;
}

// Seconds: "2", "2s", "250ms", "100us".
bool parse_seconds(std::string_view s, double& out) {
  double scale = 1;
  if (s.ends_with("ms")) { scale = 1e-3; s.remove_suffix(2); }
  else if (s.ends_with("us")) { scale = 1e-6; s.remove_suffix(2); }
  else if (s.ends_with("s")) { s.remove_suffix(1); }
  double v;
  if (!parse_scaled(s, v, false)) return false;
  out = v * scale;
  return true;
}

bool parse_int(std::string_view s, long long lo, long long hi, long long& out) {
  double v;
  if (!parse_scaled(s, v, false) || v != std::floor(v) || v < lo || v > hi) return false;
  out = static_cast<long long>(v);
  return true;
}

// "10k,20k,40k" or "FROM:TO:STEP".
bool parse_sweep(std::string_view s, std::vector<double>& out) {
  out.clear();
  if (s.find(':') != std::string_view::npos) {
    const auto a = s.find(':'), b = s.find(':', a + 1);
    double from, to, step;
    if (b == std::string_view::npos || !parse_scaled(s.substr(0, a), from, false) ||
        !parse_scaled(s.substr(a + 1, b - a - 1), to, false) ||
        !parse_scaled(s.substr(b + 1), step, false) || from <= 0 || to < from || step <= 0 ||
        (to - from) / step > 1000)
      return false;
    for (double r = from; r <= to * (1 + 1e-9); r += step) out.push_back(r);
    return true;
  }
  while (!s.empty()) {
    const auto c = s.find(',');
    double r;
    if (!parse_scaled(s.substr(0, c), r, false) || r <= 0 || r > 1e8 || out.size() >= 1000)
      return false;
    out.push_back(r);
    s = c == std::string_view::npos ? std::string_view{} : s.substr(c + 1);
  }
  return !out.empty();
}

}  // namespace

const char* usage() {
  return
      "usage: upcall_loadgen --port N [options]\n"
      "Open-loop load generator: Poisson arrivals at --rate over --conns connections; each\n"
      "request is timed from its intended send time (no coordinated omission).\n"
      "  --host H        server address (default 127.0.0.1)\n"
      "  --port N        server port (required)\n"
      "  --conns N       connections (default 1)\n"
      "  --rate R        offered requests per second over all connections, k/M suffixes (1000)\n"
      "  --duration T    measured seconds; s/ms suffixes (10)\n"
      "  --warmup T      seconds sent before the measured interval, not measured (1)\n"
      "  --timeout T     how long to wait for outstanding responses after the schedule (2)\n"
      "  --size B        message bytes, K/M suffixes (64)\n"
      "  --threads N     client threads, each an epoll loop over its connections (1)\n"
      "  --pipeline D    requests in flight per connection (1)\n"
      "  --protocol P    echo (default) or memcached (text protocol get/set mix)\n"
      "  --get-ratio F   memcached: share of gets, the rest sets (0.9)\n"
      "  --key-size B    memcached: key bytes (16)\n"
      "  --value-size B  memcached: value bytes, K/M suffixes (32)\n"
      "  --keys N        memcached: distinct keys, uniform; all set before the run (10000)\n"
      "  --no-preload    memcached: do not set every key before the run\n"
      "  --sweep RATES   sweep mode: one run per rate, \"10k,20k,40k\" or FROM:TO:STEP\n"
      "  --target N=H:P  sweep target (repeatable; runs alternate between targets per step);\n"
      "                  default: --host/--port named \"server\"\n"
      "  --csv FILE      sweep: one CSV row per run (\"-\": stdout)\n"
      "  --plot FILE     sweep: PNG of p50/p99/p99.9 against offered load (needs gnuplot)\n"
      "  --slo-us U      sweep: report the highest load with p99 <= U microseconds (500)\n"
      "  --seed S        schedule and payload seed (1)\n"
      "  --json          print one JSON line of results\n"
      "Exit status: 0 run completed, 1 bad options, 2 could not connect or set up,\n"
      "3 responses did not match their requests.\n";
}

bool parse_options(int argc, const char* const* argv, Options& o, std::string& error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") { o.help = true; continue; }
    if (arg == "--json") { o.json = true; continue; }
    if (arg == "--no-preload") { o.protocol.preload = false; continue; }
    if (!arg.starts_with("--")) {
      error = "unexpected argument '" + std::string(arg) + "' (see --help)";
      return false;
    }
    std::string name, value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else {
      name = arg;
      if (i + 1 >= argc) {
        error = "option " + name + " needs a value (see --help)";
        return false;
      }
      value = argv[++i];
    }
    auto bad = [&](const char* what) {
      error = "bad value '" + value + "' for " + name + ": " + what;
      return false;
    };
    long long n;
    double d;
    if (name == "--host") {
      if (value.empty()) return bad("empty host");
      o.host = value;
    } else if (name == "--port") {
      if (!parse_int(value, 1, 65535, n)) return bad("expected a port 1..65535");
      o.port = static_cast<int>(n);
    } else if (name == "--conns") {
      if (!parse_int(value, 1, 1'000'000, n)) return bad("expected 1..1000000 connections");
      o.conns = static_cast<int>(n);
    } else if (name == "--rate") {
      if (!parse_scaled(value, d, false) || d <= 0 || d > 1e8)
        return bad("expected requests per second > 0 (at most 1e8)");
      o.rate = d;
    } else if (name == "--duration") {
      if (!parse_seconds(value, d) || d <= 0 || d > 86400) return bad("expected seconds > 0");
      o.duration_s = d;
    } else if (name == "--warmup") {
      if (!parse_seconds(value, d) || d < 0 || d > 86400) return bad("expected seconds >= 0");
      o.warmup_s = d;
    } else if (name == "--timeout") {
      if (!parse_seconds(value, d) || d <= 0 || d > 3600) return bad("expected seconds > 0");
      o.timeout_s = d;
    } else if (name == "--size") {
      if (!parse_scaled(value, d, true) || d != std::floor(d) || d < 1 || d > 64 * 1024 * 1024)
        return bad("expected 1 byte .. 64M");
      o.protocol.size = static_cast<size_t>(d);
    } else if (name == "--threads") {
      if (!parse_int(value, 1, 1024, n)) return bad("expected 1..1024 threads");
      o.threads = static_cast<int>(n);
    } else if (name == "--pipeline") {
      if (!parse_int(value, 1, 65536, n)) return bad("expected a depth 1..65536");
      o.pipeline = static_cast<int>(n);
    } else if (name == "--get-ratio") {
      if (!parse_scaled(value, d, false) || d < 0 || d > 1) return bad("expected 0 .. 1");
      o.protocol.get_ratio = d;
    } else if (name == "--key-size") {
      if (!parse_int(value, 1, 250, n)) return bad("expected 1 .. 250 bytes");
      o.protocol.key_size = static_cast<size_t>(n);
    } else if (name == "--value-size") {
      if (!parse_scaled(value, d, true) || d != std::floor(d) || d < 1 || d > 64 * 1024 * 1024)
        return bad("expected 1 byte .. 64M");
      o.protocol.value_size = static_cast<size_t>(d);
    } else if (name == "--keys") {
      if (!parse_int(value, 1, 1'000'000'000, n)) return bad("expected 1 .. 1e9 keys");
      o.protocol.keys = static_cast<uint64_t>(n);
    } else if (name == "--sweep") {
      if (!parse_sweep(value, o.sweep))
        return bad("expected rates \"10k,20k\" or FROM:TO:STEP (each > 0, at most 1000 steps)");
    } else if (name == "--target") {
      Options::Target t;
      const auto eq = value.find('=');
      const auto colon = value.rfind(':');
      if (eq == std::string::npos || eq == 0 || colon == std::string::npos || colon < eq)
        return bad("expected NAME=HOST:PORT");
      t.name = value.substr(0, eq);
      t.host = value.substr(eq + 1, colon - eq - 1);
      if (t.host.size() > 2 && t.host.front() == '[' && t.host.back() == ']')
        t.host = t.host.substr(1, t.host.size() - 2);
      if (t.host.empty() || !parse_int(value.substr(colon + 1), 1, 65535, n))
        return bad("expected NAME=HOST:PORT with a port 1..65535");
      if (t.name.find_first_of(",\"") != std::string::npos) return bad("no , or \" in NAME");
      t.port = static_cast<int>(n);
      o.targets.push_back(t);
    } else if (name == "--csv") {
      if (value.empty()) return bad("expected a file name");
      o.csv = value;
    } else if (name == "--plot") {
      if (value.empty()) return bad("expected a file name");
      o.plot = value;
    } else if (name == "--slo-us") {
      if (!parse_scaled(value, d, false) || d <= 0) return bad("expected microseconds > 0");
      o.slo_us = d;
    } else if (name == "--protocol") {
      o.protocol.name = value;
    } else if (name == "--seed") {
      char* end = nullptr;
      errno = 0;
      unsigned long long s = std::strtoull(value.c_str(), &end, 0);
      if (value.empty() || *end != '\0' || errno == ERANGE) return bad("expected an integer");
      o.seed = s;
    } else {
      error = "unknown option " + name + " (see --help)";
      return false;
    }
  }
  if (o.help) return true;
  if ((!o.csv.empty() || !o.plot.empty() || !o.targets.empty()) && o.sweep.empty()) {
    error = "--csv, --plot and --target need --sweep";
    return false;
  }
  if (o.port == 0 && o.targets.empty()) {
    error = "--port is required (see --help)";
    return false;
  }
  if (o.threads > o.conns) {
    error = "--threads " + std::to_string(o.threads) + " is more than --conns " +
            std::to_string(o.conns) + ": every thread needs at least one connection";
    return false;
  }
  return true;
}

}  // namespace loadgen
