// The memcached text protocol for the load generator: a get/set mix over a fixed key space.
//
// Each request is a get (share --get-ratio) or a set of a key drawn uniformly from --keys keys
// of --key-size bytes ("k" and the zero-padded index). A key's value is a pure function of its
// index (--value-size bytes), so every client writes the same value for a key and a get can be
// checked byte for byte: a hit must carry exactly that value, a miss ("END") is fine (the key
// may have been evicted or not set yet). The preload sets every key once, so gets hit.
// Replies other than the expected ones (SERVER_ERROR, CLIENT_ERROR, NOT_STORED, a wrong value)
// count as mismatches; bytes that are no memcached reply at all end the connection.
#include <charconv>
#include <cstring>
#include <deque>

#include "poisson.hpp"
#include "protocol.hpp"

namespace loadgen {
namespace {

struct Keyspace {
  size_t key_size, value_size;
  uint64_t keys;

  std::string key(uint64_t i) const {
    std::string k(key_size, '0');
    k[0] = 'k';
    char num[24];
    const auto len = static_cast<size_t>(std::to_chars(num, num + sizeof num, i).ptr - num);
    std::memcpy(k.data() + key_size - len, num, len);
    return k;
  }
  // The value of key i: a 24-byte header naming the key, then a letter pattern.
  void value(uint64_t i, std::string& out) const {
    const size_t at = out.size();
    out.resize(at + value_size);
    char* v = out.data() + at;
    for (size_t j = 0; j < value_size; ++j) v[j] = static_cast<char>('a' + (i + j) % 26);
    char num[24];
    const auto len = static_cast<size_t>(std::to_chars(num, num + sizeof num, i).ptr - num);
    std::memcpy(v, num, std::min(len, value_size));
  }
};

// Finds "\r\n" in data[from, n); returns its offset or npos.
size_t find_crlf(const char* data, size_t n, size_t from) {
  for (size_t i = from; i + 1 < n; ++i)
    if (data[i] == '\r' && data[i + 1] == '\n') return i;
  return std::string::npos;
}

class MemcachedSession final : public Session {
 public:
  MemcachedSession(const Keyspace& ks, double get_ratio, uint64_t seed)
      : ks_(ks), get_ratio_(get_ratio), rng_(seed) {}

  void encode(std::string& out) override {
    const uint64_t i = rng_.next() % ks_.keys;
    if (rng_.uniform() < get_ratio_) {
      out += "get ";
      out += ks_.key(i);
      out += "\r\n";
      expected_.push_back({true, i});
    } else {
      encode_set(i, out);
    }
  }

  void encode_preload(size_t i, std::string& out) override { encode_set(i, out); }

  ParseResult parse(const char* data, size_t n) override {
    if (expected_.empty()) return {n ? ParseResult::kError : ParseResult::kIncomplete, 0};
    const size_t eol = find_crlf(data, n, 0);
    if (eol == std::string::npos) {
      // A reply line is short; kilobytes without "\r\n" is not memcached.
      return {n > 4096 ? ParseResult::kError : ParseResult::kIncomplete, 0};
    }
    const std::string_view line(data, eol);
    const Expect e = expected_.front();
    if (line.starts_with("SERVER_ERROR") || line.starts_with("CLIENT_ERROR") || line == "ERROR" ||
        line == "NOT_STORED" || line == "EXISTS" || line == "NOT_FOUND") {
      expected_.pop_front();
      return {ParseResult::kMismatch, eol + 2};
    }
    if (!e.get) {
      if (line != "STORED") return {ParseResult::kError, 0};
      expected_.pop_front();
      return {ParseResult::kOk, eol + 2};
    }
    if (line == "END") {
      expected_.pop_front();
      return {ParseResult::kOk, eol + 2};
    }
    // "VALUE <key> <flags> <bytes>" then the data, "\r\n", "END\r\n".
    if (!line.starts_with("VALUE ")) return {ParseResult::kError, 0};
    const size_t sp = line.rfind(' ');
    size_t bytes = 0;
    if (std::from_chars(line.data() + sp + 1, line.data() + line.size(), bytes).ec != std::errc{})
      return {ParseResult::kError, 0};
    const size_t total = eol + 2 + bytes + 2 + 5;
    if (n < total) return {ParseResult::kIncomplete, 0};
    const char* block = data + eol + 2;
    if (std::memcmp(block + bytes, "\r\nEND\r\n", 7) != 0) return {ParseResult::kError, 0};
    expected_.pop_front();
    const std::string key = ks_.key(e.key);
    bool same = line.substr(6, key.size() + 1) == key + " " && bytes == ks_.value_size;
    if (same) {
      scratch_.clear();
      ks_.value(e.key, scratch_);
      same = std::memcmp(block, scratch_.data(), bytes) == 0;
    }
    return {same ? ParseResult::kOk : ParseResult::kMismatch, total};
  }

  size_t outstanding() const override { return expected_.size(); }

 private:
  struct Expect {
    bool get;
    uint64_t key;
  };

  void encode_set(uint64_t i, std::string& out) {
    char num[24];
    out += "set ";
    out += ks_.key(i);
    out += " 0 0 ";
    out.append(num, std::to_chars(num, num + sizeof num, ks_.value_size).ptr);
    out += "\r\n";
    ks_.value(i, out);
    out += "\r\n";
    expected_.push_back({false, i});
  }

  const Keyspace ks_;  // a copy (24 bytes): the session does not depend on its Protocol
  double get_ratio_;
  Rng rng_;
  std::deque<Expect> expected_;  // oldest first
  std::string scratch_;
};

class MemcachedProtocol final : public Protocol {
 public:
  MemcachedProtocol(const Keyspace& ks, double get_ratio, bool preload)
      : ks_(ks), get_ratio_(get_ratio), preload_(preload) {}
  const char* name() const override { return "memcached"; }
  std::unique_ptr<Session> new_session(uint64_t seed) const override {
    return std::make_unique<MemcachedSession>(ks_, get_ratio_, seed);
  }
  size_t preload_count() const override { return preload_ ? ks_.keys : 0; }

 private:
  Keyspace ks_;
  double get_ratio_;
  bool preload_;
};

}  // namespace

std::unique_ptr<Protocol> make_memcached_protocol(const ProtocolConfig& c, std::string& error) {
  const size_t digits = std::to_string(c.keys > 0 ? c.keys - 1 : 0).size();
  if (c.keys == 0) {
    error = "--keys must be at least 1";
    return nullptr;
  }
  if (c.key_size < 1 + digits || c.key_size > 250) {
    error = "--key-size " + std::to_string(c.key_size) + " cannot hold " +
            std::to_string(c.keys) + " distinct keys: use " + std::to_string(1 + digits) +
            " .. 250 bytes (memcached's key limit)";
    return nullptr;
  }
  if (c.value_size < 1) {
    error = "--value-size must be at least 1 byte";
    return nullptr;
  }
  if (c.get_ratio < 0 || c.get_ratio > 1) {
    error = "--get-ratio must be within 0 .. 1";
    return nullptr;
  }
  return std::make_unique<MemcachedProtocol>(Keyspace{c.key_size, c.value_size, c.keys},
                                             c.get_ratio, c.preload);
}

}  // namespace loadgen
