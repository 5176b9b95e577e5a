// The load generator's client: connections, client threads and their epoll loops.
//
// Owns sockets, the clock, the per-connection arrival schedules and the counting of what
// happened to every request. It does not own the bytes (protocol.hpp) or the report
// (report.hpp). Every counter below is about *measured* requests, those whose intended send time
// falls in the measured interval [start + warmup, start + warmup + duration), unless it says
// otherwise; for them scheduled == completed + mismatches + failed + timeouts.
#pragma once

#include <cstdint>
#include <string>

#include "histogram.hpp"
#include "options.hpp"
#include "protocol.hpp"

namespace loadgen {

struct Results {
  Histogram latency;     // completed requests: intended send time -> response parsed
  Histogram client_lag;  // how late the client itself noticed each arrival (client health)
  uint64_t scheduled = 0;   // measured requests the schedule produced
  uint64_t completed = 0;   // answered with the expected response
  uint64_t mismatches = 0;  // answered with a well-formed response that did not match
  uint64_t failed = 0;      // lost to a connection error or never sent (connection down)
  uint64_t timeouts = 0;    // no response when the wait after the schedule (--timeout) ended
  uint64_t responses_in_window = 0;  // any response received during the measured interval
  uint64_t warmup_mismatches = 0;    // mismatches among warm-up requests (not measured)
  uint64_t conn_errors = 0;          // connection failures (reset, EOF, unparseable stream)
  uint64_t reconnects = 0;           // successful reconnections after a failure
  std::string first_error;           // the first connection failure, one line
  bool precise_timer = true;         // false: epoll_pwait2 missing, millisecond wake-ups

  void merge(const Results& other);
};

// Connects --conns connections, runs the schedule on --threads threads and waits for them.
// Returns 0, or a negative errno with `error` set to one line (bad host, refused connection,
// file descriptor limit) when the run could not start.
int run_load(const Options& options, const Protocol& protocol, Results& results,
             std::string& error);

// Sends the protocol's preload requests (Protocol::preload_count) on one connection to
// options.host:port and checks every response. Returns 0, or a negative errno with `error` set
// (connection failure, a response that did not match, more than 30 s of silence).
int run_preload(const Options& options, const Protocol& protocol, std::string& error);

// Makes sure `needed` file descriptors can be open: raises the RLIMIT_NOFILE soft limit up to
// the hard limit if needed. Returns 0 or -EMFILE with `error` set.
int ensure_fd_limit(uint64_t needed, std::string& error);

}  // namespace loadgen
