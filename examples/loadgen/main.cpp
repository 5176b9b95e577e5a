// upcall_loadgen: an open-loop load generator for request/response servers over TCP.
//
// Poisson arrivals at an offered rate spread over N connections, every request timed from its
// *intended* send time (so a stalled server is charged for the requests it delayed: no
// coordinated omission), a log-linear latency histogram (1% precision, 1 us .. 10 s) with
// p50/p90/p99/p99.9/max, achieved against offered load, mismatched responses, failures and
// timeouts. Plain threads and epoll: it does not use upcall, so it measures any server the same
// way (bench/echo/ compares upcall's echo server with epoll, Asio and Go peers).
//
//   upcall_loadgen --port 7000 --conns 50 --rate 20k --duration 5 --size 64 [--json]
//
// Options: --help. Protocols: echo, memcached (protocol.hpp is the interface for more). Sweep
// mode (--sweep, sweep.hpp): offered-load steps over one or more --target servers, CSV and a
// gnuplot PNG.
#include <cstdio>
#include <string>

#include "client.hpp"
#include "options.hpp"
#include "protocol.hpp"
#include "report.hpp"
#include "sweep.hpp"

int main(int argc, char** argv) {
  loadgen::Options options;
  std::string error;
  if (!loadgen::parse_options(argc, argv, options, error)) {
    std::fprintf(stderr, "loadgen: %s\n", error.c_str());
    return 1;
  }
  if (options.help) {
    std::fputs(loadgen::usage(), stdout);
    return 0;
  }
  auto protocol = loadgen::make_protocol(options.protocol, error);
  if (!protocol) {
    std::fprintf(stderr, "loadgen: %s\n", error.c_str());
    return 1;
  }
  if (!options.sweep.empty()) {
    const int rc = loadgen::run_sweep(options, *protocol, error);
    if (rc == 2) std::fprintf(stderr, "loadgen: %s\n", error.c_str());
    if (rc == 3) std::fprintf(stderr, "loadgen: some responses did not match their requests\n");
    return rc;
  }
  if (loadgen::run_preload(options, *protocol, error) != 0) {
    std::fprintf(stderr, "loadgen: %s\n", error.c_str());
    return 2;
  }
  loadgen::Results results;
  if (loadgen::run_load(options, *protocol, results, error) != 0) {
    std::fprintf(stderr, "loadgen: %s\n", error.c_str());
    return 2;
  }
  if (options.json)
    std::printf("%s\n", loadgen::format_json(options, results).c_str());
  else
    std::fputs(loadgen::format_text(options, results).c_str(), stdout);
  if (results.mismatches || results.warmup_mismatches) {
    std::fprintf(stderr, "loadgen: %llu responses did not match their requests\n",
                 (unsigned long long)(results.mismatches + results.warmup_mismatches));
    return 3;
  }
  return 0;
}
