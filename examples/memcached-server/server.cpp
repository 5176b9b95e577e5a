// Accept loop and connection fibers (server.hpp).
//
// A connection fiber reads whatever has arrived, lets the Session handle every complete request
// in it, and writes all their replies with one write (pipelined requests cost one syscall each
// way per batch). It waits for nothing but its own socket: a client that stops reading blocks
// only its own fiber in write_all, a client that sends half a request only its own read, and no
// store lock is held across either. There is no idle timeout (pooled clients keep connections).
#include "server.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>

#include <upcall/upcall.hpp>

namespace mc {
namespace {

constexpr std::size_t kInitialBuffer = 16 * 1024;  // a read's worth of pipelined small requests
constexpr int kMaxLingering = 256;                 // refused connections drained at once
const char kTooMany[] = "ERROR Too many open connections\r\n";

std::atomic<int> g_lingering{0};  // relaxed: refused connections being drained
std::atomic<int> g_next_id{0};    // relaxed: connection ids for -v logs

void serve(upcall::net::TcpStream s, ServerContext ctx, int id) {
  s.set_nodelay(true);
  Session session(ctx.store, ctx.stats, ctx.info, id);
  std::size_t cap = kInitialBuffer;
  std::unique_ptr<char[]> buf(new char[cap]);  // uninitialised: pages are touched by reads only
  std::size_t have = 0;
  std::string out;
  const char* why = "client closed";
  for (;;) {
    if (have == cap) {  // a large value or a long get line: grow (the parser bounds both)
      std::unique_ptr<char[]> bigger(new char[cap * 2]);
      std::memcpy(bigger.get(), buf.get(), have);
      buf = std::move(bigger);
      cap *= 2;
    }
    std::error_code ec;
    const std::size_t n = s.read_some(buf.get() + have, cap - have, ec);
    if (ec) {
      why = "read error";
      break;
    }
    if (n == 0) break;
    have += n;
    std::size_t used = 0;
    do {  // more than once only when the replies filled up (Session::reply_full)
      used += session.process(buf.get() + used, have - used, out);
      if (!out.empty()) {
        s.write_all(out.data(), out.size(), ec);
        if (ec) break;
        out.clear();
      }
    } while (session.reply_full() && !session.wants_close());
    if (ec) {
      why = "write error";
      break;
    }
    if (out.capacity() > 2 * Session::kMaxBatchReply) out.shrink_to_fit();
    session.flush_counters();
    if (session.wants_close()) {
      why = "closed by the server";
      break;
    }
    std::memmove(buf.get(), buf.get() + used, have - used);
    have -= used;
    if (have == 0 && cap > kInitialBuffer) {
      cap = kInitialBuffer;
      buf.reset(new char[cap]);
    }
  }
  session.flush_counters();
  ctx.stats.curr_connections.fetch_sub(1, std::memory_order_relaxed);
  if (ctx.info.verbosity.load(std::memory_order_relaxed) >= 1)
    std::fprintf(stderr, "<%d connection closed (%s)\n", id, why);
}

// memcached's refusal past -c: the error line, then close. The client may already have sent
// requests; closing with them unread would reset the connection and could destroy our error
// line before the client reads it, so the socket is drained for up to a second first.
void refuse(upcall::net::TcpStream s) {
  std::error_code ec;
  s.write_all(kTooMany, sizeof kTooMany - 1, ec, upcall::io::Limits::within(std::chrono::milliseconds(100)));
  s.shutdown(SHUT_WR);
  char sink[4096];
  const auto lim = upcall::io::Limits::within(std::chrono::seconds(1));
  while (!ec && s.read_some(sink, sizeof sink, ec, lim) > 0) {
  }
  g_lingering.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

void crawl_expired(Store& store, std::chrono::milliseconds period) {
  for (;;) {
    upcall::this_task::sleep_for(period);
    for (int i = 0; i < Store::kShards; ++i) {
      store.reclaim_dead(i);
      upcall::this_task::yield();  // one shard's lock at a time, other fibers in between
    }
  }
}

void accept_loop(upcall::net::TcpListener& listener, ServerContext ctx) {
  for (;;) {
    std::error_code ec;
    upcall::net::TcpStream s = listener.accept(ec);
    if (ec) {
      // EMFILE/ENFILE/ENOBUFS/ENOMEM: say so (once a second at most), back off, go on.
      static auto last = std::chrono::steady_clock::time_point{};
      const auto now = std::chrono::steady_clock::now();
      if (now - last > std::chrono::seconds(1)) {
        std::fprintf(stderr, "memcached-server: accept: %s; still serving\n", ec.message().c_str());
        last = now;
      }
      upcall::this_task::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    const int verbose = ctx.info.verbosity.load(std::memory_order_relaxed);
    if (ctx.stats.curr_connections.load(std::memory_order_relaxed) >=
        static_cast<std::int64_t>(ctx.info.max_conns)) {
      ctx.stats.add(kRejectedConnections);
      if (verbose >= 1)
        std::fprintf(stderr, "memcached-server: too many open connections (-c %zu): refused\n",
                     ctx.info.max_conns);
      if (g_lingering.fetch_add(1, std::memory_order_relaxed) >= kMaxLingering) {
        // A flood: answer without draining (the line may be lost to a reset, never a stall).
        g_lingering.fetch_sub(1, std::memory_order_relaxed);
        std::error_code ignored;
        s.write_all(kTooMany, sizeof kTooMany - 1, ignored,
                    upcall::io::Limits::within(std::chrono::milliseconds(10)));
        continue;
      }
      upcall::spawn([s = std::move(s)]() mutable { refuse(std::move(s)); });
      continue;
    }
    ctx.stats.curr_connections.fetch_add(1, std::memory_order_relaxed);
    ctx.stats.add(kTotalConnections);
    const int id = g_next_id.fetch_add(1, std::memory_order_relaxed) + 1;
    if (verbose >= 1) std::fprintf(stderr, "<%d new connection\n", id);
    upcall::spawn([s = std::move(s), ctx, id]() mutable { serve(std::move(s), ctx, id); });
  }
}

}  // namespace mc
