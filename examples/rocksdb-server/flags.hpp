// rocksdb-server's command line: the ghOSt RocksDB experiment's flags (README "The RocksDB
// experiment"), their defaults and their parsing. Parsing checks each value on its own; it does
// not open the database or start anything. Durations take units (ns, us, ms, s); a bare number
// is seconds, as in the seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rocksdb_server {

enum class Scheduler { upcall, threads };

struct Flags {
  Scheduler scheduler = Scheduler::upcall;  // --scheduler=upcall|threads (ghost|cfs)
  std::string db_path;                      // --rocksdb_db_path (default /tmp/upcall_rocksdb_<uid>)
  double throughput = 20000;                // --throughput: offered req/s (Poisson)
  int num_workers = 20;                     // --num_workers
  std::vector<int> worker_cpus;             // --worker_cpus: cpulist; empty = all CPUs
  int batch = 1;                            // --batch: requests handed to a worker at once
  double range_query_ratio = 0;             // --range_query_ratio: share of RANGE requests
  int64_t get_ns = 10'000;                  // --get_duration
  int64_t range_ns = 10'000'000;            // --range_duration
  int64_t experiment_ns = 10'000'000'000;   // --experiment_duration
  int64_t discard_ns = 2'000'000'000;       // --discard_duration
  int64_t slice_ns = 30'000;                // --slice: upcall handlers yield at this interval
  int64_t num_keys = 1'000'000;             // --num_keys: keys in the database
  int value_size = 100;                     // --value_size: bytes per value
  int range_keys = 100;                     // --range_keys: keys a RANGE request scans
  int port = -1;                            // --port: serve the network protocol (wire.hpp)
  uint64_t seed = 1;                        // --seed: arrival schedule and keys
  bool help = false;
};

// Parses argv ("--flag=value" or "--flag value"). --upcall-* flags must have been removed
// already (upcall::Options::parse_args). On error returns false and sets `error` to one line
// naming the flag.
bool parse_flags(int argc, char** argv, Flags& out, std::string& error);

// "10us", "5s", "1.5ms", "3" (seconds) -> ns. False on bad syntax or a negative value.
bool parse_duration(const std::string& text, int64_t& ns);
// 30000 -> "30us", 10000000 -> "10ms", 2500000000 -> "2.5s".
std::string format_duration(int64_t ns);

const char* usage();

}  // namespace rocksdb_server
