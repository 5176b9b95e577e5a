// The memcached text protocol parser (protocol.hpp). The token counts and the order of the
// checks follow memcached 1.6's process_command_ascii, so that the same bad line gets the same
// reply from both servers.
#include "protocol.hpp"

#include <cstring>

namespace mc {
namespace {

constexpr const char* kError = "ERROR";
constexpr const char* kBadFormat = "CLIENT_ERROR bad command line format";
constexpr const char* kBadChunk = "CLIENT_ERROR bad data chunk";
constexpr const char* kTooLarge = "SERVER_ERROR object too large for cache";
constexpr const char* kBadExptime = "CLIENT_ERROR invalid exptime argument";
constexpr const char* kBadDelta = "CLIENT_ERROR invalid numeric delta argument";
constexpr const char* kBadDelete =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
constexpr const char* kLineTooLong = "CLIENT_ERROR line too long";
constexpr const char* kNoShutdown = "ERROR: shutdown not enabled";

// Words of a request line. Past kMaxWords the count saturates (no command takes that many, so
// the reply is ERROR); retrieval commands read their key list from `rest` instead.
constexpr int kMaxWords = 8;
struct Words {
  std::string_view w[kMaxWords];
  int count = 0;
  bool more = false;  // more words than kMaxWords
};

Words split(std::string_view line) {
  Words t;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    if (i == line.size()) break;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (t.count == kMaxWords) {
      t.more = true;
      break;
    }
    t.w[t.count++] = line.substr(i, j - i);
    i = j;
  }
  return t;
}

// The text after the first `skip` words (for key lists).
std::string_view after_words(std::string_view line, int skip) {
  std::size_t i = 0;
  for (int k = 0; k < skip; ++k) {
    while (i < line.size() && line[i] == ' ') ++i;
    while (i < line.size() && line[i] != ' ') ++i;
  }
  return line.substr(i);
}

bool is_get_line(const char* data, std::size_t n) {
  std::size_t i = 0;
  while (i < n && i <= 100 && data[i] == ' ') ++i;
  std::string_view s(data + i, n - i);
  return s.starts_with("get ") || s.starts_with("gets ");
}

ParseResult error(std::size_t consumed, const char* text, bool noreply = false) {
  ParseResult r;
  r.status = ParseResult::kError;
  r.consumed = consumed;
  r.error = text;
  r.noreply = noreply;
  return r;
}

ParseResult ok(std::size_t consumed) {
  ParseResult r;
  r.status = ParseResult::kRequest;
  r.consumed = consumed;
  return r;
}

bool last_is_noreply(const Words& t) { return t.count > 0 && t.w[t.count - 1] == "noreply"; }

bool parse_i32(std::string_view s, std::int64_t& out) {
  std::int64_t v;
  if (!parse_i64(s, v) || v < INT32_MIN || v > INT32_MAX) return false;
  out = v;
  return true;
}

ParseResult parse_retrieval(Op op, std::string_view line, const Words& t, std::size_t used,
                            Request& r) {
  const bool touch = op == Op::gat || op == Op::gats;
  if (t.count < (touch ? 3 : 2)) return error(used, kError);
  if (touch && !parse_i32(t.w[1], r.exptime)) return error(used, kBadExptime);
  r.op = op;
  r.keys = after_words(line, touch ? 2 : 1);
  bool bad = false;
  for_each_key(r.keys, [&](std::string_view k) { bad |= k.size() > kMaxKeyLength; });
  if (bad) return error(used, kBadFormat);
  return ok(used);
}

ParseResult parse_storage(Op op, const char* data, std::size_t n, const Words& t,
                          std::size_t used, const ParserLimits& lim, Request& r) {
  const bool cas = op == Op::cas;
  if (t.more || !(t.count == (cas ? 6 : 5) || t.count == (cas ? 7 : 6))) return error(used, kError);
  const bool noreply = last_is_noreply(t);
  std::uint64_t flags;
  std::int64_t vlen;
  if (t.w[1].size() > kMaxKeyLength || !parse_u64(t.w[2], flags) || flags > UINT32_MAX ||
      !parse_i32(t.w[3], r.exptime) || !parse_i32(t.w[4], vlen))
    return error(used, kBadFormat, noreply);
  if (cas && !parse_u64(t.w[5], r.cas)) return error(used, kBadFormat, noreply);
  if (vlen < 0 || vlen > INT32_MAX - 2) return error(used, kBadFormat, noreply);
  const std::size_t len = static_cast<std::size_t>(vlen);
  if (t.w[1].size() + len + kItemOverhead > lim.item_max) {
    ParseResult e = error(used, kTooLarge, noreply);
    e.swallow = len + 2;
    e.key = t.w[1];
    e.drop_key = op == Op::set;  // memcached drops the old value: no stale data after a refusal
    return e;
  }
  if (n - used < len + 2) return {};  // the data block is not all here yet
  const char* block = data + used;
  if (block[len] != '\r' || block[len + 1] != '\n') return error(used + len + 2, kBadChunk, noreply);
  r.op = op;
  r.key = t.w[1];
  r.flags = static_cast<std::uint32_t>(flags);
  r.data = std::string_view(block, len);
  r.noreply = noreply;
  return ok(used + len + 2);
}

}  // namespace

const char* op_name(Op op) {
  static const char* const names[] = {"get",    "gets",    "gat",     "gats",      "set",
                                      "add",    "replace", "append",  "prepend",   "cas",
                                      "delete", "incr",    "decr",    "touch",     "flush_all",
                                      "version", "stats",  "verbosity", "quit",    "shutdown"};
  return names[static_cast<int>(op)];
}

bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

bool parse_i64(std::string_view s, std::int64_t& out) {
  const bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  std::uint64_t v;
  if (!parse_u64(s, v)) return false;
  if (v > static_cast<std::uint64_t>(INT64_MAX) + (neg ? 1 : 0)) return false;
  out = neg ? static_cast<std::int64_t>(0 - v) : static_cast<std::int64_t>(v);
  return true;
}

ParseResult parse_request(const char* data, std::size_t n, const ParserLimits& lim, Request& r) {
  r = Request{};
  const void* nl = std::memchr(data, '\n', n);
  if (!nl) {
    // No end of line yet. A line that cannot be a request is refused now rather than buffered.
    const std::size_t cap = is_get_line(data, n) ? kMaxGetLineLength : kMaxLineLength;
    if (n > cap) {
      ParseResult e = error(n, kLineTooLong);
      e.close = true;
      return e;
    }
    return {};
  }
  const std::size_t eol = static_cast<std::size_t>(static_cast<const char*>(nl) - data);
  const std::size_t used = eol + 1;
  if (eol > (is_get_line(data, eol) ? kMaxGetLineLength : kMaxLineLength)) {
    ParseResult e = error(used, kLineTooLong);
    e.close = true;
    return e;
  }
  std::string_view line(data, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const Words t = split(line);
  if (t.count == 0) return error(used, kError);
  const std::string_view cmd = t.w[0];

  if (cmd == "get") return parse_retrieval(Op::get, line, t, used, r);
  if (cmd == "gets") return parse_retrieval(Op::gets, line, t, used, r);
  if (cmd == "gat") return parse_retrieval(Op::gat, line, t, used, r);
  if (cmd == "gats") return parse_retrieval(Op::gats, line, t, used, r);
  if (cmd == "set") return parse_storage(Op::set, data, n, t, used, lim, r);
  if (cmd == "add") return parse_storage(Op::add, data, n, t, used, lim, r);
  if (cmd == "replace") return parse_storage(Op::replace, data, n, t, used, lim, r);
  if (cmd == "append") return parse_storage(Op::append, data, n, t, used, lim, r);
  if (cmd == "prepend") return parse_storage(Op::prepend, data, n, t, used, lim, r);
  if (cmd == "cas") return parse_storage(Op::cas, data, n, t, used, lim, r);

  if (cmd == "incr" || cmd == "decr") {
    if (t.more || (t.count != 3 && t.count != 4)) return error(used, kError);
    const bool noreply = last_is_noreply(t);
    if (t.w[1].size() > kMaxKeyLength) return error(used, kBadFormat, noreply);
    if (!parse_u64(t.w[2], r.delta)) return error(used, kBadDelta, noreply);
    r.op = cmd == "incr" ? Op::incr : Op::decr;
    r.key = t.w[1];
    r.noreply = noreply;
    return ok(used);
  }
  if (cmd == "delete") {
    if (t.more || t.count < 2 || t.count > 4) return error(used, kError);
    bool noreply = false;
    if (t.count > 2) {
      const bool hold_is_zero = t.w[2] == "0";
      noreply = last_is_noreply(t);
      const bool valid = (t.count == 3 && (hold_is_zero || noreply)) ||
                         (t.count == 4 && hold_is_zero && noreply);
      if (!valid) return error(used, kBadDelete, noreply);
    }
    if (t.w[1].size() > kMaxKeyLength) return error(used, kBadFormat, noreply);
    r.op = Op::del;
    r.key = t.w[1];
    r.noreply = noreply;
    return ok(used);
  }
  if (cmd == "touch") {
    if (t.more || (t.count != 3 && t.count != 4)) return error(used, kError);
    const bool noreply = last_is_noreply(t);
    if (t.w[1].size() > kMaxKeyLength) return error(used, kBadFormat, noreply);
    if (!parse_i32(t.w[2], r.exptime)) return error(used, kBadExptime, noreply);
    r.op = Op::touch;
    r.key = t.w[1];
    r.noreply = noreply;
    return ok(used);
  }
  if (cmd == "flush_all") {
    if (t.more || t.count > 3) return error(used, kError);
    const bool noreply = last_is_noreply(t);
    if (t.count != (noreply ? 2 : 1) && !parse_i32(t.w[1], r.exptime))
      return error(used, kBadExptime, noreply);
    r.op = Op::flush_all;
    r.noreply = noreply;
    return ok(used);
  }
  if (cmd == "verbosity") {
    if (t.more || (t.count != 2 && t.count != 3)) return error(used, kError);
    const bool noreply = last_is_noreply(t);
    std::uint64_t level;
    if (!parse_u64(t.w[1], level) || level > UINT32_MAX) return error(used, kBadFormat, noreply);
    r.op = Op::verbosity;
    r.level = static_cast<std::uint32_t>(level);
    r.noreply = noreply;
    return ok(used);
  }
  if (cmd == "stats") {
    r.op = Op::stats;
    r.arg = t.count > 1 ? after_words(line, 1) : std::string_view{};
    while (!r.arg.empty() && r.arg.front() == ' ') r.arg.remove_prefix(1);
    return ok(used);
  }
  if (cmd == "version") {
    r.op = Op::version;
    return ok(used);
  }
  if (cmd == "quit") {
    r.op = Op::quit;
    return ok(used);
  }
  if (cmd == "shutdown") return error(used, kNoShutdown);
  return error(used, kError);
}

}  // namespace mc
