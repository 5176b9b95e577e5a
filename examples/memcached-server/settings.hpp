// memcached-server's command line: memcached's own flags, so that the server drops in where
// memcached runs (the --upcall-* flags are taken out before, by upcall::Options::parse_args).
// Owns the settings, their defaults (memcached's) and the one-line errors for bad values.
#pragma once

#include <cstddef>
#include <string>

namespace mc {

struct Settings {
  int port = 11211;                  // -p, --port
  std::string listen = "0.0.0.0";    // -l, --listen (memcached's default: every interface)
  std::size_t max_bytes = 64u << 20; // -m, --memory-limit (megabytes)
  std::size_t max_conns = 1024;      // -c, --conn-limit
  int threads = 4;                   // -t, --threads (cores; capped at the CPUs we may use)
  std::size_t item_max = 1u << 20;   // -I, --max-item-size (k/m suffixes)
  std::string user;                  // -u, --user: drop root privileges to this user
  int verbose = 0;                   // -v, -vv
  bool evict = true;                 // -M, --disable-evictions: errors instead of evicting
  bool help = false;                 // -h, --help
  bool version = false;              // -V, --version
};

// Parses argv. On a bad or unknown flag returns false with `error` set to one line.
bool parse_settings(int argc, char** argv, Settings& out, std::string& error);

const char* settings_usage();

}  // namespace mc
