// Formatting of a run's results (report.hpp). Latencies are printed in microseconds with one
// decimal (the histogram's precision is 1%, so more digits would be noise above 10 us).
#include "report.hpp"

#include <cstdarg>
#include <cstdio>

namespace loadgen {
namespace {

std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

double us(int64_t ns) { return static_cast<double>(ns) / 1e3; }

double achieved_rps(const Options& o, const Results& r) {
  return static_cast<double>(r.responses_in_window) / o.duration_s;
}

// JSON string escaping for the few free-text fields (host, error text).
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\', out += ch;
    else if (static_cast<unsigned char>(ch) < 0x20) out += fmt("\\u%04x", ch);
    else out += ch;
  }
  return out + "\"";
}

}  // namespace

std::string format_text(const Options& o, const Results& r) {
  const Histogram& h = r.latency;
  std::string s;
  s += fmt("loadgen: %s %s:%d conns=%d threads=%d pipeline=%d size=%zu duration=%gs warmup=%gs\n",
           o.protocol.name.c_str(), o.host.c_str(), o.port, o.conns, o.threads, o.pipeline,
           o.protocol.size, o.duration_s, o.warmup_s);
  if (o.protocol.name == "memcached")
    s += fmt("  memcached: get-ratio=%g keys=%llu key-size=%zu value-size=%zu (size unused)\n",
             o.protocol.get_ratio, (unsigned long long)o.protocol.keys, o.protocol.key_size,
             o.protocol.value_size);
  s += fmt("  offered %.1f req/s, achieved %.1f req/s (%llu responses in the measured %gs)\n",
           o.rate, achieved_rps(o, r), (unsigned long long)r.responses_in_window, o.duration_s);
  s += fmt("  requests %llu: completed %llu, mismatches %llu, failed %llu, timeouts %llu\n",
           (unsigned long long)r.scheduled, (unsigned long long)r.completed,
           (unsigned long long)r.mismatches, (unsigned long long)r.failed,
           (unsigned long long)r.timeouts);
  s += fmt("  latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
           us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)),
           us(h.percentile(99.9)), us(h.max()), h.mean() / 1e3);
  s += fmt("  client lag us (arrival noticed late by the client): p99 %.1f  max %.1f\n",
           us(r.client_lag.percentile(99)), us(r.client_lag.max()));
  if (r.conn_errors || r.warmup_mismatches)
    s += fmt("  connection errors %llu (reconnected %llu; first: %s), warm-up mismatches %llu\n",
             (unsigned long long)r.conn_errors, (unsigned long long)r.reconnects,
             r.first_error.empty() ? "-" : r.first_error.c_str(),
             (unsigned long long)r.warmup_mismatches);
  if (!r.precise_timer)
    s += "  note: no epoll_pwait2 (kernel < 5.11): arrivals were issued with 1 ms granularity\n";
  return s;
}

std::string format_json(const Options& o, const Results& r) {
  const Histogram& h = r.latency;
  std::string s = "{";
  s += fmt("\"protocol\":\"%s\",\"host\":%s,\"port\":%d,\"conns\":%d,\"threads\":%d,"
           "\"pipeline\":%d,\"size\":%zu,\"duration_s\":%g,\"warmup_s\":%g,",
           o.protocol.name.c_str(), quoted(o.host).c_str(), o.port, o.conns, o.threads,
           o.pipeline, o.protocol.size, o.duration_s, o.warmup_s);
  s += fmt("\"offered_rps\":%.1f,\"achieved_rps\":%.1f,\"requests\":%llu,\"completed\":%llu,"
           "\"mismatches\":%llu,\"failed\":%llu,\"timeouts\":%llu,",
           o.rate, achieved_rps(o, r), (unsigned long long)r.scheduled,
           (unsigned long long)r.completed, (unsigned long long)r.mismatches,
           (unsigned long long)r.failed, (unsigned long long)r.timeouts);
  s += fmt("\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
           "\"mean_us\":%.1f,",
           us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)),
           us(h.percentile(99.9)), us(h.max()), h.mean() / 1e3);
  s += fmt("\"client_lag_p99_us\":%.1f,\"client_lag_max_us\":%.1f,\"conn_errors\":%llu,"
           "\"reconnects\":%llu,\"warmup_mismatches\":%llu,\"precise_timer\":%s,",
           us(r.client_lag.percentile(99)), us(r.client_lag.max()),
           (unsigned long long)r.conn_errors, (unsigned long long)r.reconnects,
           (unsigned long long)r.warmup_mismatches, r.precise_timer ? "true" : "false");
  s += "\"first_error\":" + quoted(r.first_error) + "}";
  return s;
}

}  // namespace loadgen
