// examples/memcached-server: a memcached-compatible cache server on upcall fibers.
//
// It speaks memcached's text protocol (get/gets/gat/gats, set/add/replace/append/prepend/cas,
// delete, incr/decr, touch, flush_all, version, stats, verbosity, quit, noreply) to unmodified
// clients (memcslap, libmemcached, pymemcache, telnet), takes memcached's flags (-p -l -m -c -t
// -I -U 0 -u -M -v) and answers malformed input with memcached's exact error strings. It shows a
// real server on the runtime: one fiber per connection written as blocking code (server.cpp), a
// sharded store under upcall::mutex (store.hpp), and a pure parser that a fuzzer drives
// (protocol.hpp, fuzz/).
//
//   memcached-server [-p 11211] [-l 0.0.0.0] [-m 64] [-c 1024] [-t 4] [-I 1m] [--upcall-* flags]
// Prints the upcall configuration line (stderr) first, then "memcached-server: listening on
// ADDR:PORT ..." on stdout.
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <cstdio>
#include <string>
#include <thread>

#include <upcall/upcall.hpp>

#include "server.hpp"
#include "settings.hpp"

namespace {

// How often dead (expired, flushed) items are swept; a pass holds one shard lock at a time.
constexpr std::chrono::milliseconds kCrawlPeriod{1000};

// memcached's -u: a root process switches to `user` once the port is bound.
bool drop_privileges(const std::string& user, std::string& error) {
  if (user.empty() || geteuid() != 0 || user == "root") return true;
  const passwd* pw = getpwnam(user.c_str());
  if (!pw) {
    error = "can't find the user '" + user + "' to switch to";
    return false;
  }
  if (setgroups(0, nullptr) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
    error = "failed to switch to user '" + user + "'";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  upcall::Options opts;
  mc::Settings settings;
  std::string error;
  try {
    opts.parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memcached-server: %s\n", e.what());
    return 2;
  }
  if (!mc::parse_settings(argc, argv, settings, error)) {
    std::fprintf(stderr, "memcached-server: %s\n", error.c_str());
    return 2;
  }
  if (settings.help) {
    std::fputs(mc::settings_usage(), stdout);
    return 0;
  }
  if (settings.version) {
    std::puts("memcached-server 1.6.18-compatible (upcall)");
    return 0;
  }
  // -t is memcached's worker thread count: our cores. More cores than CPUs is an error for
  // upcall, so a memcached command line with -t 8 on a smaller machine gets every CPU instead.
  if (!opts.cores) {
    int cpus = static_cast<int>(std::thread::hardware_concurrency());
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
    opts.cores = std::clamp(settings.threads, 1, std::max(cpus, 1));
  }
  // Idle cores park unless told otherwise (--upcall-idle / UPCALL_IDLE): like memcached, which
  // sleeps in epoll, the server usually shares its machine (here with the load generator), and
  // congestion grants wake a parked core within microseconds (README "Core reallocation").
  // Measured (bench/RESULTS.md, run T): the runtime's default spin:50 took the client's CPU and
  // halved the highest load with p99 <= 500 us (10k vs 40k req/s).
  if (!opts.idle && !std::getenv("UPCALL_IDLE")) opts.idle = "park";
  // For the same reason the standby stays asleep after an idle park (UPCALL_STANDBY=lazy): the
  // server never blocks in unwrapped calls, and waking the standby at every unpark tripled its
  // p99 next to a SCHED_IDLE antagonist (bench/RESULTS.md, "Lazy standby").
  if (!opts.standby && !std::getenv("UPCALL_STANDBY")) opts.standby = "lazy";
  // Connections need descriptors: raise the soft limit to the hard one.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < settings.max_conns + 32)
    std::fprintf(stderr,
                 "memcached-server: -c %zu but only %llu file descriptors (ulimit -n): accept "
                 "will fail before the limit\n",
                 settings.max_conns, static_cast<unsigned long long>(rl.rlim_cur));

  upcall::net::TcpListener listener;
  try {
    const std::string& a = settings.listen;
    upcall::net::SocketAddress at;
    try {
      at = upcall::net::SocketAddress::parse(
          a.find(':') != std::string::npos ? "[" + a + "]:" + std::to_string(settings.port)
                                           : a + ":" + std::to_string(settings.port));
    } catch (const std::invalid_argument&) {  // a host name, as memcached's -l takes
      const auto found = upcall::net::resolve(a, std::to_string(settings.port));
      if (found.empty()) throw std::runtime_error("no address for '" + a + "'");
      at = found.front();
    }
    listener = upcall::net::TcpListener::bind(at, 1024);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memcached-server: cannot listen on %s port %d: %s\n",
                 settings.listen.c_str(), settings.port, e.what());
    return 1;
  }
  if (!drop_privileges(settings.user, error)) {
    std::fprintf(stderr, "memcached-server: %s\n", error.c_str());
    return 1;
  }

  mc::StoreConfig sc;
  sc.max_bytes = settings.max_bytes;
  sc.item_max = settings.item_max;
  sc.evict = settings.evict;
  mc::Store store(sc);
  mc::ServerStats stats;
  mc::ServerInfo info;
  info.pid = getpid();
  info.started_ms = mc::SystemClock().now_ms();
  info.port = listener.local_address().port();
  info.interface = settings.listen;
  info.max_conns = settings.max_conns;
  info.threads = *opts.cores;
  info.evict = settings.evict;
  info.verbosity.store(settings.verbose, std::memory_order_relaxed);

  opts.quiet = false;  // the configuration line first
  try {
    upcall::Runtime rt(opts);
    rt.block_on([&] {
      std::printf("memcached-server: listening on %s (io=%s threads=%d -m %zu MB -c %zu -I %zu)\n",
                  listener.local_address().to_string().c_str(),
                  std::string(upcall::io::backend()).c_str(), info.threads,
                  settings.max_bytes >> 20, settings.max_conns, settings.item_max);
      std::fflush(stdout);
      upcall::spawn([&store] { mc::crawl_expired(store, kCrawlPeriod); });
      mc::accept_loop(listener, mc::ServerContext{store, stats, info});
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memcached-server: %s\n", e.what());
    return 1;
  }
}
