// The rocksdb protocol: requests to examples/rocksdb-server (its wire.hpp is the format).
// --protocol rocksdb[:range=R,keys=N]: each request is a RANGE with probability R (default 0)
// and a GET otherwise, for a key index uniform in [0, N) (default 1000000, the server's default
// --num_keys). A GET's response must carry the key's value (wire::value_of), a RANGE's a
// non-zero count; ids, types and order are checked. --size is not used.
#include <cstdlib>
#include <deque>

#include "../rocksdb-server/wire.hpp"
#include "poisson.hpp"
#include "protocol.hpp"

namespace loadgen {
namespace {

struct RocksdbParams {
  double range_ratio = 0;
  uint64_t keys = 1'000'000;
};

class RocksdbSession final : public Session {
 public:
  RocksdbSession(const RocksdbParams& p, uint64_t seed) : p_(p), rng_(seed) {}

  void encode(std::string& out) override {
    wire::Request r;
    r.type = rng_.uniform() < p_.range_ratio ? wire::kRange : wire::kGet;
    r.key = static_cast<uint32_t>(rng_.next() % p_.keys);
    r.id = next_id_++;
    char buf[wire::kHeader];
    wire::encode(r, buf);
    out.append(buf, sizeof buf);
    expected_.push_back(r);
  }

  ParseResult parse(const char* data, size_t n) override {
    if (expected_.empty()) return {n ? ParseResult::kError : ParseResult::kIncomplete, 0};
    if (n < wire::kHeader) return {ParseResult::kIncomplete, 0};
    const wire::Response a = wire::decode_response(data);
    const wire::Request q = expected_.front();
    if (a.status != wire::kFound && a.status != wire::kNotFound && a.status != wire::kError)
      return {ParseResult::kError, 0};
    const size_t body = a.status == wire::kFound && a.type == wire::kGet ? a.n : 0;
    if (body > (64u << 20)) return {ParseResult::kError, 0};
    if (n < wire::kHeader + body) return {ParseResult::kIncomplete, 0};
    expected_.pop_front();
    bool ok = a.id == q.id && a.type == q.type && a.status == wire::kFound;
    if (ok && q.type == wire::kGet)
      ok = wire::value_of(q.key, body) == std::string(data + wire::kHeader, body);
    if (ok && q.type == wire::kRange) ok = a.n > 0;
    return {ok ? ParseResult::kOk : ParseResult::kMismatch, wire::kHeader + body};
  }

  size_t outstanding() const override { return expected_.size(); }

 private:
  RocksdbParams p_;
  Rng rng_;
  uint64_t next_id_ = 1;
  std::deque<wire::Request> expected_;
};

class RocksdbProtocol final : public Protocol {
 public:
  explicit RocksdbProtocol(const RocksdbParams& p) : p_(p) {}
  const char* name() const override { return "rocksdb"; }
  std::unique_ptr<Session> new_session(uint64_t seed) const override {
    return std::make_unique<RocksdbSession>(p_, seed);
  }

 private:
  RocksdbParams p_;
};

}  // namespace

// "rocksdb" or "rocksdb:range=0.005,keys=1000000"; nullptr with `error` on a bad parameter.
std::unique_ptr<Protocol> make_rocksdb_protocol(const ProtocolConfig& config, std::string& error) {
  RocksdbParams p;
  std::string rest = config.name.size() > 7 ? config.name.substr(7) : "";
  if (!rest.empty() && rest[0] != ':') {
    error = "unknown --protocol '" + config.name + "'";
    return nullptr;
  }
  if (!rest.empty()) rest = rest.substr(1);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string item = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    const size_t eq = item.find('=');
    const std::string k = item.substr(0, eq), v = eq == std::string::npos ? "" : item.substr(eq + 1);
    char* end = nullptr;
    if (k == "range") {
      p.range_ratio = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(p.range_ratio >= 0 && p.range_ratio <= 1)) {
        error = "--protocol rocksdb: range=" + v + " is not a ratio in [0, 1]";
        return nullptr;
      }
    } else if (k == "keys") {
      p.keys = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end || p.keys == 0 || p.keys > 0xffffffffULL) {
        error = "--protocol rocksdb: keys=" + v + " is not a key count 1..4294967295";
        return nullptr;
      }
    } else {
      error = "--protocol rocksdb: unknown parameter '" + k + "' (known: range, keys)";
      return nullptr;
    }
  }
  return std::make_unique<RocksdbProtocol>(p);
}

}  // namespace loadgen
