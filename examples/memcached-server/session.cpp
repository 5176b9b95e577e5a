// What each request does and what it answers (session.hpp).
#include "session.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cinttypes>
#include <cstdio>

#include <upcall/this_task.hpp>

namespace mc {

constexpr const char* kVersion = "1.6.18";  // the memcached release whose behaviour we follow

ServerStats::Slot& ServerStats::slot() {
  const int c = upcall::this_task::core();
  return slots_[c < 0 ? 0 : c % kSlots];
}

void ServerStats::add(const std::array<std::uint64_t, kCounterCount>& local) {
  Slot& s = slot();
  for (int i = 0; i < kCounterCount; ++i)
    if (local[i]) s.v[i].fetch_add(local[i], std::memory_order_relaxed);
}

void ServerStats::add(Counter c, std::uint64_t n) {
  slot().v[c].fetch_add(n, std::memory_order_relaxed);
}

std::uint64_t ServerStats::sum(Counter c) const {
  std::uint64_t t = 0;
  for (const Slot& s : slots_) t += s.v[c].load(std::memory_order_relaxed);
  return t;
}

void ServerStats::reset() {
  for (Slot& s : slots_)
    for (auto& v : s.v)
      if (&v - s.v != kTotalConnections) v.store(0, std::memory_order_relaxed);
}

Session::Session(Store& store, ServerStats& stats, ServerInfo& info, int id)
    : store_(store), stats_(stats), info_(info), id_(id) {
  limits_.item_max = store.item_max();
}

void Session::flush_counters() {
  stats_.add(local_);
  local_.fill(0);
}

std::size_t Session::process(const char* in, std::size_t n, std::string& out) {
  std::size_t off = 0;
  count(kBytesRead, n);  // the caller passes each byte once, then keeps only the unconsumed tail
  const std::size_t out_before = out.size();
  if (!started_ && n > 0) {
    started_ = true;
    // memcached picks the binary protocol by this first byte; we speak text only.
    if (static_cast<unsigned char>(in[0]) == 0x80) {
      out += "SERVER_ERROR binary protocol is not supported; use the text protocol\r\n";
      close_ = true;
      return n;
    }
  }
  Request r;
  reply_full_ = false;
  while (off < n && !close_) {
    if (out.size() - out_before >= kMaxBatchReply) {
      reply_full_ = true;
      break;
    }
    if (swallow_) {
      const std::size_t k = std::min(swallow_, n - off);
      off += k;
      swallow_ -= k;
      continue;
    }
    const ParseResult pr = parse_request(in + off, n - off, limits_, r);
    if (pr.status == ParseResult::kIncomplete) break;
    if (info_.verbosity.load(std::memory_order_relaxed) >= 2) {
      std::string_view line(in + off, pr.consumed);
      line = line.substr(0, line.find('\n'));
      std::fprintf(stderr, "<%d %.*s\n", id_, static_cast<int>(std::min<std::size_t>(line.size(), 200)),
                   line.data());
    }
    off += pr.consumed;
    if (pr.status == ParseResult::kError) {
      if (pr.drop_key) store_.remove(pr.key);
      if (!pr.noreply) {
        out += pr.error;
        out += "\r\n";
      }
      swallow_ = pr.swallow;
      close_ = pr.close;
      continue;
    }
    const std::size_t before = out.size();
    execute(r, out);
    if (r.noreply) out.resize(before);
  }
  // Bytes not consumed come back in the next call: count only what was used.
  local_[kBytesRead] -= n - off;
  count(kBytesWritten, out.size() - out_before);
  return off;
}

void Session::retrieve(const Request& r, std::string& out) {
  const bool with_cas = r.op == Op::gets || r.op == Op::gats;
  const bool touch = r.op == Op::gat || r.op == Op::gats;
  for_each_key(r.keys, [&](std::string_view key) {
    count(kCmdGet);
    if (touch) count(kCmdTouch);
    const bool hit = store_.get(key, with_cas, out, touch ? &r.exptime : nullptr);
    count(hit ? kGetHits : kGetMisses);
    if (touch) count(hit ? kTouchHits : kTouchMisses);
  });
  out += "END\r\n";
}

void Session::execute(const Request& r, std::string& out) {
  switch (r.op) {
    case Op::get:
    case Op::gets:
    case Op::gat:
    case Op::gats:
      return retrieve(r, out);
    case Op::set:
    case Op::add:
    case Op::replace:
    case Op::append:
    case Op::prepend:
    case Op::cas: {
      count(kCmdSet);
      const StoreStatus st = store_.store(r.op, r.key, r.flags, r.exptime, r.data, r.cas);
      if (r.op == Op::cas && st == StoreStatus::stored) count(kCasHits);
      if (r.op == Op::cas && st == StoreStatus::exists) count(kCasBadval);
      if (r.op == Op::cas && st == StoreStatus::not_found) count(kCasMisses);
      switch (st) {
        case StoreStatus::stored: out += "STORED\r\n"; break;
        case StoreStatus::not_stored: out += "NOT_STORED\r\n"; break;
        case StoreStatus::exists: out += "EXISTS\r\n"; break;
        case StoreStatus::not_found: out += "NOT_FOUND\r\n"; break;
        case StoreStatus::too_large: out += "SERVER_ERROR object too large for cache\r\n"; break;
        case StoreStatus::no_memory: out += "SERVER_ERROR out of memory storing object\r\n"; break;
      }
      return;
    }
    case Op::del: {
      const bool hit = store_.remove(r.key);
      count(hit ? kDeleteHits : kDeleteMisses);
      out += hit ? "DELETED\r\n" : "NOT_FOUND\r\n";
      return;
    }
    case Op::incr:
    case Op::decr: {
      const bool incr = r.op == Op::incr;
      std::uint64_t v = 0;
      const DeltaStatus st = store_.delta(r.key, incr, r.delta, v);
      if (st == DeltaStatus::ok) {
        count(incr ? kIncrHits : kDecrHits);
        char num[24];
        out.append(num, std::to_chars(num, num + sizeof num, v).ptr);
        out += "\r\n";
      } else if (st == DeltaStatus::not_found) {
        count(incr ? kIncrMisses : kDecrMisses);
        out += "NOT_FOUND\r\n";
      } else if (st == DeltaStatus::non_numeric) {
        out += "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
      } else {
        out += "SERVER_ERROR out of memory\r\n";
      }
      return;
    }
    case Op::touch: {
      count(kCmdTouch);
      const bool hit = store_.touch(r.key, r.exptime);
      count(hit ? kTouchHits : kTouchMisses);
      out += hit ? "TOUCHED\r\n" : "NOT_FOUND\r\n";
      return;
    }
    case Op::flush_all:
      count(kCmdFlush);
      store_.flush_all(r.exptime);
      out += "OK\r\n";
      return;
    case Op::version:
      out += "VERSION ";
      out += kVersion;
      out += "\r\n";
      return;
    case Op::verbosity:
      info_.verbosity.store(static_cast<int>(std::min<std::uint32_t>(r.level, 10)),
                            std::memory_order_relaxed);
      out += "OK\r\n";
      return;
    case Op::stats:
      return stats(r.arg, out);
    case Op::quit:
      close_ = true;
      return;
    case Op::shutdown:
      out += "ERROR: shutdown not enabled\r\n";
      return;
  }
}

void Session::stats(std::string_view arg, std::string& out) {
  char line[160];
  auto stat = [&](const char* name, std::uint64_t v) {
    std::snprintf(line, sizeof line, "STAT %s %" PRIu64 "\r\n", name, v);
    out += line;
  };
  auto stat_s = [&](const char* name, const std::string& v) {
    out += "STAT ";
    out += name;
    out += ' ';
    out += v;
    out += "\r\n";
  };
  if (arg == "reset") {
    stats_.reset();
    out += "RESET\r\n";
    return;
  }
  if (arg == "settings") {
    stat("maxbytes", store_.max_bytes());
    stat("maxconns", info_.max_conns);
    stat("tcpport", static_cast<std::uint64_t>(info_.port));
    stat("udpport", 0);
    stat_s("inter", info_.interface);
    stat("verbosity", static_cast<std::uint64_t>(info_.verbosity.load(std::memory_order_relaxed)));
    stat_s("evictions", info_.evict ? "on" : "off");
    stat("num_threads", static_cast<std::uint64_t>(info_.threads));
    stat("item_size_max", store_.item_max());
    stat_s("cas_enabled", "yes");
    stat_s("binding_protocol", "ascii");
    out += "END\r\n";
    return;
  }
  if (arg == "items" || arg == "slabs" || arg == "sizes" || arg == "conns") {
    out += "END\r\n";  // no slab allocator: nothing to list
    return;
  }
  if (!arg.empty()) {
    out += "ERROR\r\n";
    return;
  }
  flush_counters();  // this connection's own counts so far are included
  const StoreStats st = store_.stats();
  const std::int64_t now = SystemClock().now_ms();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  stat("pid", static_cast<std::uint64_t>(info_.pid));
  stat("uptime", static_cast<std::uint64_t>((now - info_.started_ms) / 1000));
  stat("time", static_cast<std::uint64_t>(now / 1000));
  stat_s("version", kVersion);
  stat("pointer_size", sizeof(void*) * 8);
  std::snprintf(line, sizeof line, "STAT rusage_user %ld.%06ld\r\nSTAT rusage_system %ld.%06ld\r\n",
                static_cast<long>(ru.ru_utime.tv_sec), static_cast<long>(ru.ru_utime.tv_usec),
                static_cast<long>(ru.ru_stime.tv_sec), static_cast<long>(ru.ru_stime.tv_usec));
  out += line;
  stat("max_connections", info_.max_conns);
  const auto curr = stats_.curr_connections.load(std::memory_order_relaxed);
  stat("curr_connections", static_cast<std::uint64_t>(curr < 0 ? 0 : curr));
  stat("total_connections", stats_.sum(kTotalConnections));
  stat("rejected_connections", stats_.sum(kRejectedConnections));
  stat("connection_structures", static_cast<std::uint64_t>(curr < 0 ? 0 : curr));
  stat("cmd_get", stats_.sum(kCmdGet));
  stat("cmd_set", stats_.sum(kCmdSet));
  stat("cmd_flush", stats_.sum(kCmdFlush));
  stat("cmd_touch", stats_.sum(kCmdTouch));
  stat("get_hits", stats_.sum(kGetHits));
  stat("get_misses", stats_.sum(kGetMisses));
  stat("get_expired", st.get_expired);
  stat("get_flushed", st.get_flushed);
  stat("delete_misses", stats_.sum(kDeleteMisses));
  stat("delete_hits", stats_.sum(kDeleteHits));
  stat("incr_misses", stats_.sum(kIncrMisses));
  stat("incr_hits", stats_.sum(kIncrHits));
  stat("decr_misses", stats_.sum(kDecrMisses));
  stat("decr_hits", stats_.sum(kDecrHits));
  stat("cas_misses", stats_.sum(kCasMisses));
  stat("cas_hits", stats_.sum(kCasHits));
  stat("cas_badval", stats_.sum(kCasBadval));
  stat("touch_hits", stats_.sum(kTouchHits));
  stat("touch_misses", stats_.sum(kTouchMisses));
  stat("auth_cmds", 0);
  stat("auth_errors", 0);
  stat("bytes_read", stats_.sum(kBytesRead));
  stat("bytes_written", stats_.sum(kBytesWritten));
  stat("limit_maxbytes", store_.max_bytes());
  stat("accepting_conns", 1);
  stat("threads", static_cast<std::uint64_t>(info_.threads));
  stat("bytes", st.bytes);
  stat("curr_items", st.curr_items);
  stat("total_items", st.total_items);
  stat("expired_unfetched", st.expired_unfetched);
  stat("evictions", st.evictions);
  stat("reclaimed", st.reclaimed);
  out += "END\r\n";
}

}  // namespace mc
