// Command-line options of the load generator: the settings, their defaults and their parsing.
// Parsing only checks each value on its own and their consistency; whether the host resolves
// or the port listens is found out by the client.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol.hpp"

namespace loadgen {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;                // required
  int conns = 1;               // connections, spread round-robin over the threads
  double rate = 1000;          // offered load, requests per second over all connections
  double duration_s = 10;      // measured interval
  double warmup_s = 1;         // sent but not measured, before the measured interval
  double timeout_s = 2;        // after the schedule ends, how long to wait for responses
  int threads = 1;             // client threads, each with its own epoll loop
  int pipeline = 1;            // requests in flight per connection
  uint64_t seed = 1;           // schedule and payloads; the same seed gives the same run
  bool json = false;           // one JSON line instead of the text report
  bool help = false;
  ProtocolConfig protocol;     // --protocol, --size, --get-ratio, --key-size, --value-size, --keys
  // Sweep mode (sweep.hpp): one run per offered rate and target.
  struct Target {
    std::string name, host;
    int port = 0;
  };
  std::vector<double> sweep;   // --sweep: offered rates; empty = one run at --rate
  std::vector<Target> targets; // --target NAME=HOST:PORT (repeatable); none = --host/--port
  std::string csv;             // --csv FILE: one row per run ("-" = stdout)
  std::string plot;            // --plot FILE.png: p50/p99/p99.9 against offered load (gnuplot)
  double slo_us = 500;         // --slo-us: the p99 bound the sweep summary reports against
};

// Parses argv (both "--opt value" and "--opt=value"). On error returns false and sets `error`
// to one line naming the option.
bool parse_options(int argc, const char* const* argv, Options& out, std::string& error);

// The --help text.
const char* usage();

}  // namespace loadgen
