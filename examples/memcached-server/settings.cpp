// memcached-compatible flag parsing (settings.hpp).
#include "settings.hpp"

#include <cstdint>
#include <string_view>

#include "protocol.hpp"

namespace mc {
namespace {

// A size: digits with an optional k/m/g suffix (binary), in units of `unit` without a suffix.
bool parse_size(std::string_view s, std::size_t unit, std::size_t& out) {
  std::size_t mult = unit;
  if (!s.empty()) {
    const char c = s.back();
    if (c == 'k' || c == 'K') mult = 1u << 10;
    else if (c == 'm' || c == 'M') mult = 1u << 20;
    else if (c == 'g' || c == 'G') mult = std::size_t{1} << 30;
    if (mult != unit) s.remove_suffix(1);
  }
  std::uint64_t v;
  if (!parse_u64(s, v) || v > (std::size_t{1} << 44) / mult) return false;
  out = static_cast<std::size_t>(v) * mult;
  return true;
}

}  // namespace

const char* settings_usage() {
  return "usage: memcached-server [memcached flags] [--upcall-* flags]\n"
         "  -p, --port=<num>          TCP port to listen on (default 11211; 0 picks a free one)\n"
         "  -l, --listen=<addr>       interface to listen on (default 0.0.0.0)\n"
         "  -m, --memory-limit=<mb>   item memory in megabytes (default 64)\n"
         "  -c, --conn-limit=<num>    max simultaneous connections (default 1024)\n"
         "  -t, --threads=<num>       cores to run on (default 4, at most the CPUs available)\n"
         "  -I, --max-item-size=<n>   largest item, k/m suffixes (default 1m, min 1k, max 1g)\n"
         "  -U, --udp-port=0          UDP is not supported: only 0 is accepted\n"
         "  -u, --user=<name>         as root: switch to this user after binding the port\n"
         "  -M, --disable-evictions   when memory is full, refuse stores instead of evicting\n"
         "  -v, -vv                   log connections and errors (-vv: every request) to stderr\n"
         "  -V, --version, -h, --help\n"
         "upcall runtime flags (--upcall-cores etc.) are described in the upcall README.\n";
}

bool parse_settings(int argc, char** argv, Settings& o, std::string& error) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string name, value;
    bool has_value = false;
    if (arg.starts_with("--")) {
      const auto eq = arg.find('=');
      name = arg.substr(0, eq);
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        has_value = true;
      }
    } else if (arg.size() >= 2 && arg[0] == '-') {
      name = arg.substr(0, 2);
      if (arg.size() > 2 && arg[1] != 'v') {
        value = arg.substr(2);
        has_value = true;
      }
    } else {
      error = "unexpected argument '" + arg + "' (see --help)";
      return false;
    }
    auto is = [&](const char* s, const char* l) { return name == s || name == l; };
    if (is("-h", "--help")) { o.help = true; continue; }
    if (is("-V", "--version")) { o.version = true; continue; }
    if (is("-M", "--disable-evictions")) { o.evict = false; continue; }
    if (is("-v", "--verbose")) {
      if (arg.find_first_not_of('v', 1) != std::string::npos && name == "-v") {
        error = "bad flag '" + arg + "' (-v, -vv or -vvv)";
        return false;
      }
      o.verbose += name == "-v" ? static_cast<int>(arg.size() - 1) : 1;
      continue;
    }
    static const char* const kValued[] = {"-p", "--port", "-l", "--listen", "-m",
                                          "--memory-limit", "-c", "--conn-limit", "-t",
                                          "--threads", "-I", "--max-item-size", "-U",
                                          "--udp-port", "-u", "--user"};
    bool known = false;
    for (const char* k : kValued) known |= name == k;
    if (!known) {
      error = "unknown flag '" + arg + "' (see --help)";
      return false;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        error = "flag " + name + " needs a value (see --help)";
        return false;
      }
      value = argv[++i];
    }
    auto bad = [&](const std::string& what) {
      error = "bad value '" + value + "' for " + name + ": " + what;
      return false;
    };
    std::uint64_t n = 0;
    std::size_t sz = 0;
    if (is("-p", "--port")) {
      if (!parse_u64(value, n) || n > 65535) return bad("expected a port 0..65535");
      o.port = static_cast<int>(n);
    } else if (is("-l", "--listen")) {
      if (value.empty()) return bad("expected an address");
      if (value.find(',') != std::string::npos)
        return bad("one address only (several -l addresses are not supported)");
      o.listen = value;
    } else if (is("-m", "--memory-limit")) {
      if (!parse_size(value, 1u << 20, sz) || sz < (1u << 20))
        return bad("expected megabytes >= 1 (or a k/m/g size)");
      o.max_bytes = sz;
    } else if (is("-c", "--conn-limit")) {
      if (!parse_u64(value, n) || n < 1 || n > 10'000'000) return bad("expected 1..10000000");
      o.max_conns = static_cast<std::size_t>(n);
    } else if (is("-t", "--threads")) {
      if (!parse_u64(value, n) || n < 1 || n > 4096) return bad("expected 1..4096 threads");
      o.threads = static_cast<int>(n);
    } else if (is("-I", "--max-item-size")) {
      if (!parse_size(value, 1, sz) || sz < 1024 || sz > (std::size_t{1} << 30))
        return bad("expected 1k .. 1g");
      o.item_max = sz;
    } else if (is("-U", "--udp-port")) {
      if (value != "0") return bad("UDP is not supported; use -U 0");
    } else if (is("-u", "--user")) {
      if (value.empty()) return bad("expected a user name");
      o.user = value;
    } else {
      error = "unknown flag '" + arg + "' (see --help)";
      return false;
    }
  }
  if (o.item_max > o.max_bytes / 2) {
    error = "-I " + std::to_string(o.item_max) + " is more than half of -m (" +
            std::to_string(o.max_bytes >> 20) + " MB): raise -m or lower -I";
    return false;
  }
  return true;
}

}  // namespace mc
