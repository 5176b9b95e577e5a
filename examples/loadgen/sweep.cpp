// Sweep mode (sweep.hpp).
#include "sweep.hpp"

#include <spawn.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <vector>

#include "client.hpp"
#include "report.hpp"

extern char** environ;

namespace loadgen {
namespace {

constexpr const char* kCsvHeader =
    "target,offered_rps,achieved_rps,requests,completed,mismatches,failed,timeouts,p50_us,"
    "p90_us,p99_us,p999_us,max_us,client_lag_p99_us";

struct Row {
  std::string target;
  double offered = 0, achieved = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, lag99 = 0;
  uint64_t requests = 0, completed = 0, mismatches = 0, failed = 0, timeouts = 0;
};

std::string csv_line(const Row& r) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s,%.1f,%.1f,%llu,%llu,%llu,%llu,%llu,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f",
                r.target.c_str(), r.offered, r.achieved, (unsigned long long)r.requests,
                (unsigned long long)r.completed, (unsigned long long)r.mismatches,
                (unsigned long long)r.failed, (unsigned long long)r.timeouts, r.p50, r.p90, r.p99,
                r.p999, r.max, r.lag99);
  return buf;
}

// A run counts as meeting the SLO when p99 is within it and every measured request was answered.
bool meets(const Row& r, double slo_us) {
  return r.completed > 0 && r.completed == r.requests && r.p99 <= slo_us;
}

int run_gnuplot(const std::string& script_path, std::string& error) {
  const char* argv[] = {"gnuplot", script_path.c_str(), nullptr};
  pid_t pid;
  if (posix_spawnp(&pid, "gnuplot", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
    error = "cannot run gnuplot (Debian: apt-get install gnuplot-nox)";
    return -1;
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    error = "gnuplot failed on " + script_path;
    return -1;
  }
  return 0;
}

}  // namespace

std::string gnuplot_script(const Options& o, const std::string& csv, const std::string& png) {
  std::vector<std::string> names;
  for (const auto& t : o.targets) names.push_back(t.name);
  if (names.empty()) names.push_back("server");
  std::string s;
  s += "set terminal pngcairo size 1000,640 font 'sans,10'\n";
  s += "set output '" + png + "'\n";
  s += "set datafile separator ','\nset termoption noenhanced\n";
  s += "set key outside right top\nset grid\nset logscale y\n";
  s += "set xlabel 'offered load (k requests/s)'\nset ylabel 'latency (us, log scale)'\n";
  s += "set title 'upcall_loadgen sweep: " + o.protocol.name + ", " + std::to_string(o.conns) +
       " connections'\n";
  s += "plot ";
  const char* pct[] = {"p50", "p99", "p99.9"};
  const int col[] = {9, 11, 12};
  for (size_t t = 0; t < names.size(); ++t)
    for (int p = 0; p < 3; ++p) {
      // One target's rows only (awk), so each target's points join into lines.
      s += "\"< awk -F, '$1==\\\"" + names[t] + "\\\"' " + csv + "\" using ($2/1000):" +
           std::to_string(col[p]) + " with linespoints lc " + std::to_string(t + 1) + " dt " +
           std::to_string(p + 1) + " pt " + std::to_string(p + 5) + " title '" + names[t] + " " +
           pct[p] + "', ";
    }
  char slo[64];
  std::snprintf(slo, sizeof slo, "%g", o.slo_us);
  s += std::string(slo) + " with lines lc rgb 'gray' dt 4 title 'p99 bound " + slo + " us'\n";
  return s;
}

int run_sweep(const Options& o, const Protocol& protocol, std::string& error) {
  std::vector<Options::Target> targets = o.targets;
  if (targets.empty()) targets.push_back({"server", o.host, o.port});
  for (const auto& t : targets) {
    Options run = o;
    run.host = t.host;
    run.port = t.port;
    if (run_preload(run, protocol, error) != 0) {
      error = t.name + ": " + error;
      return 2;
    }
  }
  std::string csv_path = o.csv;
  if (!o.plot.empty() && (csv_path.empty() || csv_path == "-")) csv_path = o.plot + ".csv";
  std::ofstream csv;
  if (!csv_path.empty() && csv_path != "-") {
    csv.open(csv_path);
    if (!csv) {
      error = "cannot write " + csv_path;
      return 2;
    }
    csv << kCsvHeader << "\n";
  }
  const bool csv_stdout = o.csv == "-";
  if (csv_stdout) std::printf("%s\n", kCsvHeader);
  std::vector<Row> rows;
  bool mismatched = false;
  for (size_t step = 0; step < o.sweep.size(); ++step) {
    for (size_t k = 0; k < targets.size(); ++k) {
      const auto& t = targets[step % 2 == 0 ? k : targets.size() - 1 - k];
      Options run = o;
      run.host = t.host;
      run.port = t.port;
      run.rate = o.sweep[step];
      Results r;
      if (run_load(run, protocol, r, error) != 0) {
        error = t.name + ": " + error;
        return 2;
      }
      Row row;
      row.target = t.name;
      row.offered = run.rate;
      row.achieved = static_cast<double>(r.responses_in_window) / run.duration_s;
      row.requests = r.scheduled;
      row.completed = r.completed;
      row.mismatches = r.mismatches;
      row.failed = r.failed;
      row.timeouts = r.timeouts;
      row.p50 = r.latency.percentile(50) / 1e3;
      row.p90 = r.latency.percentile(90) / 1e3;
      row.p99 = r.latency.percentile(99) / 1e3;
      row.p999 = r.latency.percentile(99.9) / 1e3;
      row.max = static_cast<double>(r.latency.max()) / 1e3;
      row.lag99 = r.client_lag.percentile(99) / 1e3;
      mismatched |= r.mismatches || r.warmup_mismatches;
      rows.push_back(row);
      if (csv.is_open()) csv << csv_line(row) << "\n" << std::flush;
      if (csv_stdout) std::printf("%s\n", csv_line(row).c_str());
      if (o.json) {
        std::string j = format_json(run, r);
        j.insert(1, "\"target\":\"" + t.name + "\",");
        std::printf("%s\n", j.c_str());
      } else if (!csv_stdout) {
        std::printf("%-12s offered %9.0f achieved %9.0f  p50 %8.1f  p99 %8.1f  p99.9 %8.1f us%s\n",
                    t.name.c_str(), row.offered, row.achieved, row.p50, row.p99, row.p999,
                    row.completed == row.requests ? "" : "  (not all answered)");
      }
      std::fflush(stdout);
    }
  }
  // The summary goes to stderr when stdout carries CSV or JSON.
  FILE* sum = (csv_stdout || o.json) ? stderr : stdout;
  for (const auto& t : targets) {
    double best = 0;
    for (const Row& r : rows)
      if (r.target == t.name && meets(r, o.slo_us) && r.offered > best) best = r.offered;
    const Row* half = nullptr;
    for (const Row& r : rows)
      if (r.target == t.name && best > 0 &&
          (!half || std::abs(r.offered - best / 2) < std::abs(half->offered - best / 2)))
        half = &r;
    if (best == 0) {
      std::fprintf(sum, "sweep: %s: no step kept p99 <= %g us\n", t.name.c_str(), o.slo_us);
    } else {
      std::fprintf(sum,
                   "sweep: %s: highest offered load with p99 <= %g us: %.0f req/s; p99 at %.0f "
                   "req/s (nearest step to half): %.1f us\n",
                   t.name.c_str(), o.slo_us, best, half->offered, half->p99);
    }
  }
  if (!o.plot.empty()) {
    csv.close();
    const std::string gp = o.plot + ".gp";
    std::ofstream(gp) << gnuplot_script(o, csv_path, o.plot);
    if (run_gnuplot(gp, error) != 0) return 2;
    std::fprintf(sum, "sweep: plot written to %s (data %s, script %s)\n", o.plot.c_str(),
                 csv_path.c_str(), gp.c_str());
  }
  return mismatched ? 3 : 0;
}

}  // namespace loadgen
