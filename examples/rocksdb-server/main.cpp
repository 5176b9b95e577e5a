// upcall_rocksdb_server: Google ghOSt's RocksDB experiment (the seed document) on upcall, on a
// real embedded RocksDB. Requests (GET: a point lookup; RANGE: an iterator scan), each padded
// with synthetic CPU work to a fixed service time, arrive as a Poisson process, wait in an
// ingress queue, are handed by a dispatcher to one of --num_workers workers, and every stage is
// timed from the scheduled arrival (no coordinated omission). --scheduler=threads runs each
// worker on its own kernel thread (the kernel's scheduler, CFS/EEVDF, decides); --scheduler=
// upcall runs them as fibers that run short requests to completion and slice long ones every
// --slice. It prints the seed's table. With --port it serves the same requests over TCP
// (wire.hpp) to a load generator instead (examples/loadgen --protocol rocksdb).
//
//   upcall_rocksdb_server --scheduler=cfs --throughput=40000 --num_workers=20 --batch=1
#include <sys/resource.h>

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <string>

#include <upcall/options.hpp>

#include "experiment.hpp"
#include "network.hpp"

using namespace rocksdb_server;

namespace {
constexpr double kMaxRequests = 30e6;

double process_cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
bool upcall_mode_requested(const Flags& f) { return f.scheduler == Scheduler::upcall; }
}  // namespace

int main(int argc, char** argv) {
  upcall::Options opts;
  Flags f;
  std::string error;
  try {
    opts.parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rocksdb-server: %s\n", e.what());
    return 1;
  }
  if (!parse_flags(argc, argv, f, error)) {
    std::fprintf(stderr, "rocksdb-server: %s\n", error.c_str());
    return 1;
  }
  if (upcall_mode_requested(f)) {
    try {
      (void)upcall::resolve_config(opts);  // a bad --upcall-* flag fails here, before the fill
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rocksdb-server: %s\n", e.what());
      return 1;
    }
  }
  if (f.help) {
    std::fputs(usage(), stdout);
    return 0;
  }
  // The whole schedule is made up front (about 80 bytes a request): refuse what cannot fit.
  const double expected =
      f.throughput * static_cast<double>(f.discard_ns + f.experiment_ns) / 1e9;
  if (f.port <= 0 && expected > kMaxRequests) {
    std::fprintf(stderr, "rocksdb-server: --throughput x (--discard_duration + "
                 "--experiment_duration) is %.0f requests, more than %.0f: lower one of them\n",
                 expected, kMaxRequests);
    return 1;
  }
  const bool upcall_mode = f.scheduler == Scheduler::upcall;
  std::printf("rocksdb-server: scheduler=%s num_workers=%d worker_cpus=%s batch=%d "
              "throughput=%.0f range_query_ratio=%g get_duration=%s range_duration=%s "
              "slice=%s%s experiment_duration=%s discard_duration=%s\n",
              upcall_mode ? "upcall" : "threads", f.num_workers,
              f.worker_cpus.empty() ? "all" : upcall::format_cpulist(f.worker_cpus).c_str(),
              f.batch, f.throughput, f.range_query_ratio, format_duration(f.get_ns).c_str(),
              format_duration(f.range_ns).c_str(), format_duration(f.slice_ns).c_str(),
              upcall_mode ? "" : " (upcall only)", format_duration(f.experiment_ns).c_str(),
              format_duration(f.discard_ns).c_str());
  std::fflush(stdout);
  if (f.port > 0) block_stop_signals();  // before RocksDB starts its threads
  auto db = Database::open(f.db_path, f.num_keys, f.value_size, error);
  if (!db) {
    std::fprintf(stderr, "rocksdb-server: %s\n", error.c_str());
    return 1;
  }
  Spinner spinner;
  spinner.calibrate();
  Handler handler(*db, f, spinner);
  if (f.port > 0) {
    try {
      return serve(f, handler, opts);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rocksdb-server: %s\n", e.what());
      return 1;
    }
  }

  std::vector<Request> reqs = make_schedule(f);
  ScheduleSource src(reqs);
  RunSpec spec;
  spec.src = &src;
  spec.deadline = f.discard_ns + f.experiment_ns + kDrainNs;
  spec.drain_end = spec.deadline;
  spec.poll_idle = true;
  double load1 = -1;
  getloadavg(&load1, 1);
  const double cpu0 = process_cpu_seconds();
  try {
    spec.t0 = mono_ns();
    if (upcall_mode)
      run_upcall(f, handler, spec, opts);
    else
      run_threads(f, handler, spec);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rocksdb-server: %s\n", e.what());
    return 1;
  }
  const double wall = static_cast<double>(mono_ns() - spec.t0) / 1e9;
  const double cpu = process_cpu_seconds() - cpu0;
  std::vector<const Request*> measured;
  int64_t not_found = 0, unfinished = 0;
  const int64_t from = f.discard_ns, to = f.discard_ns + f.experiment_ns;
  for (const Request& r : reqs) {
    if (r.arrival < from || r.arrival >= to) continue;
    if (r.finished == 0) {
      ++unfinished;
      continue;
    }
    measured.push_back(&r);
    if (r.result < 0) ++not_found;
  }
  print_table(measured, static_cast<double>(f.experiment_ns) / 1e9, stdout);
  if (unfinished)
    std::printf("warning: %lld of %lld requests of the measured interval were still queued %s "
                "after the last arrival (overload); the table leaves them out\n",
                static_cast<long long>(unfinished),
                static_cast<long long>(unfinished + static_cast<int64_t>(measured.size())),
                format_duration(kDrainNs).c_str());
  // How much CPU the run got: on a busy machine the kernel shares the CPUs with other
  // processes, and a comparison of the two schedulers says little.
  std::printf("cpu: this process used %.1f s of CPU in %.1f s (%.2f CPUs); load average %.1f at "
              "the start%s\n",
              cpu, wall, wall > 0 ? cpu / wall : 0, load1,
              load1 > 1.5 ? " (a busy machine: other processes took CPU time)" : "");
  if (not_found) {
    std::fprintf(stderr, "rocksdb-server: %lld lookups found no key: the database is damaged\n",
                 static_cast<long long>(not_found));
    return 3;
  }
  return 0;
}
