// examples/echo-server: a TCP echo server on upcall fibers. One fiber accepts, one fiber per
// connection reads and writes back whatever arrives; the code reads like thread-per-connection
// blocking code and runs on the io_uring reactor (or the epoll one: UPCALL_IO=epoll). It shows
// the I/O API (upcall/net.hpp) and the error handling a server needs: descriptor exhaustion
// (EMFILE/ENFILE) and buffer shortage (ENOBUFS/ENOMEM) are reported and the server keeps
// serving after a short back-off; resets and half-closed peers end only their connection.
//
//   upcall_echo_server [--port N] [--cores N] [--bind ADDR] [--upcall-* flags]
// Listens on 127.0.0.1:7000 by default; prints its configuration line first.
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <upcall/upcall.hpp>

namespace {

void usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--port N] [--cores N] [--bind ADDR] [--upcall-* flags]\n", argv0);
  std::exit(2);
}

long parse_number(const char* flag, const char* text, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (!*text || *end || v < lo || v > hi) {
    std::fprintf(stderr, "echo-server: %s expects a number in %ld..%ld, got '%s'\n", flag, lo, hi,
                 text);
    std::exit(2);
  }
  return v;
}

void serve(upcall::net::TcpStream s) {
  char buf[16384];
  for (;;) {
    std::error_code ec;
    const std::size_t n = s.read_some(buf, sizeof buf, ec);
    if (ec || n == 0) return;  // reset or end of stream: only this connection ends
    s.write_all(buf, n, ec);
    if (ec) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  upcall::Options opts;
  try {
    opts.parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo-server: %s\n", e.what());
    return 2;
  }
  long port = 7000;
  std::string bind_addr = "127.0.0.1";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage(argv[0]);
    if (a == "--port") port = parse_number("--port", argv[++i], 0, 65535);
    else if (a == "--cores") opts.cores = static_cast<int>(parse_number("--cores", argv[++i], 1, 4096));
    else if (a == "--bind") bind_addr = argv[++i];
    else usage(argv[0]);
  }
  // Many connections need many descriptors: raise the soft limit to the hard one.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  // The standby stays asleep after an idle park (UPCALL_STANDBY=lazy) unless told otherwise:
  // an echo server never blocks in unwrapped calls, and the eager wake-up at every unpark
  // doubled its context switches (bench/RESULTS.md, run U: 13.3k vs 6.5k switches/s, 35 vs 27
  // us of server CPU per request at 10k req/s).
  if (!opts.standby && !std::getenv("UPCALL_STANDBY")) opts.standby = "lazy";
  opts.quiet = false;  // the configuration line first
  try {
    upcall::Runtime rt(opts);
    const auto at = upcall::net::SocketAddress::parse(
        bind_addr.find(':') != std::string::npos ? "[" + bind_addr + "]:" + std::to_string(port)
                                                 : bind_addr + ":" + std::to_string(port));
    rt.block_on([&] {
      auto listener = upcall::net::TcpListener::bind(at);
      std::printf("echo-server: listening on %s (io=%s)\n",
                  listener.local_address().to_string().c_str(),
                  std::string(upcall::io::backend()).c_str());
      std::fflush(stdout);
      for (;;) {
        std::error_code ec;
        upcall::net::TcpStream s = listener.accept(ec);
        if (ec) {
          // EMFILE/ENFILE/ENOBUFS/ENOMEM: say so (once a second at most), back off, go on.
          static auto last = std::chrono::steady_clock::time_point{};
          const auto now = std::chrono::steady_clock::now();
          if (now - last > std::chrono::seconds(1)) {
            std::fprintf(stderr, "echo-server: accept: %s; still serving\n", ec.message().c_str());
            last = now;
          }
          upcall::this_task::sleep_for(std::chrono::milliseconds(1));
          continue;
        }
        upcall::spawn([s = std::move(s)]() mutable { serve(std::move(s)); });
      }
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo-server: %s\n", e.what());
    return 1;
  }
}
