// libFuzzer target for memcached-server's parser (protocol.hpp): any bytes, as one connection's
// stream. Besides the sanitizers' checks it asserts the parser's contract:
//  1. it never consumes more than it was given, and every non-incomplete result consumes bytes;
//  2. a request's views (key, keys, data, arg) lie inside the input;
//  3. delivery does not matter: the stream parsed as a whole and parsed as it would arrive in
//     two reads (split at a point taken from the input) give the same results in order.
// Built with clang -fsanitize=fuzzer (tests/memcached/CMakeLists.txt); CI runs it 20 s from the
// seeds in fuzz/seeds (each starts with the two control bytes described below).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "protocol.hpp"

namespace {

struct Event {
  int status;
  std::size_t consumed, swallow;
  std::string summary;  // op, key, data, numbers
};

void require(bool ok) {
  if (!ok) std::abort();
}

bool inside(std::string_view v, const char* base, std::size_t n) {
  return v.empty() || (v.data() >= base && v.data() + v.size() <= base + n);
}

// Runs the stream through the parser as the session does, handing it `cut` bytes first and the
// rest later (cut = n: all at once).
std::vector<Event> run(const std::string& in, std::size_t cut, std::size_t item_max) {
  mc::ParserLimits lim;
  lim.item_max = item_max;
  std::vector<Event> ev;
  std::string buf;
  std::size_t fed = 0, swallow = 0;
  bool closed = false;
  auto feed = [&](std::size_t upto) {
    buf.append(in, fed, upto - fed);
    fed = upto;
    std::size_t off = 0;
    while (off < buf.size() && !closed) {
      if (swallow) {
        const std::size_t k = std::min(swallow, buf.size() - off);
        off += k;
        swallow -= k;
        continue;
      }
      mc::Request r;
      const mc::ParseResult p = mc::parse_request(buf.data() + off, buf.size() - off, lim, r);
      require(p.consumed <= buf.size() - off);
      if (p.status == mc::ParseResult::kIncomplete) {
        require(p.consumed == 0);
        break;
      }
      require(p.consumed > 0);
      const char* base = buf.data() + off;
      Event e{p.status, p.consumed, p.swallow, {}};
      if (p.status == mc::ParseResult::kRequest) {
        require(inside(r.key, base, p.consumed) && inside(r.keys, base, p.consumed) &&
                inside(r.data, base, p.consumed) && inside(r.arg, base, p.consumed));
        e.summary = std::string(mc::op_name(r.op)) + "|" + std::string(r.key) + "|" +
                    std::string(r.keys) + "|" + std::string(r.data) + "|" + std::string(r.arg) +
                    "|" + std::to_string(r.flags) + "|" + std::to_string(r.exptime) + "|" +
                    std::to_string(r.cas) + "|" + std::to_string(r.delta) + "|" +
                    std::to_string(r.noreply);
        mc::for_each_key(r.keys, [&](std::string_view k) {
          require(!k.empty() && k.size() <= mc::kMaxKeyLength && k.find(' ') == k.npos);
        });
      } else {
        require(p.error && std::strlen(p.error) > 0);
        e.summary = std::string(p.error) + "|" + std::to_string(p.noreply) + "|" +
                    std::to_string(p.close);
        swallow = p.swallow;
        closed = p.close;
      }
      ev.push_back(e);
      off += p.consumed;
    }
    buf.erase(0, off);
  };
  feed(cut);
  feed(in.size());
  return ev;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // The first two bytes choose the split point and a small -I so that "too large" is reachable.
  const std::size_t item_max = 1024u << (data[0] & 7);
  const std::string in(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::size_t cut = in.empty() ? 0 : data[1] % (in.size() + 1);
  const auto whole = run(in, in.size(), item_max);
  const auto split = run(in, cut, item_max);
  // "line too long" closes the connection and consumes what was buffered, which depends on the
  // split; everything else must match exactly.
  require(whole.size() == split.size());
  for (std::size_t i = 0; i < whole.size(); ++i) {
    const bool closing = whole[i].summary.ends_with("|1") && whole[i].status == mc::ParseResult::kError;
    require(whole[i].status == split[i].status && whole[i].summary == split[i].summary &&
            (closing || whole[i].consumed == split[i].consumed));
  }
  return 0;
}
