// The echo protocol: a request is `size` random bytes (fresh per request), the response must be
// the same bytes. Framing is implicit: responses arrive in order and each is exactly as long as
// its request, so a lost, duplicated or reordered byte shows up as a mismatch.
#include <deque>

#include <cstring>

#include "poisson.hpp"
#include "protocol.hpp"

namespace loadgen {
namespace {

class EchoSession final : public Session {
 public:
  EchoSession(size_t size, uint64_t seed) : size_(size), rng_(seed) {}

  void encode(std::string& out) override {
    std::string payload(size_, '\0');
    size_t i = 0;
    for (; i + 8 <= size_; i += 8) {
      const uint64_t r = rng_.next();
      std::memcpy(payload.data() + i, &r, 8);
    }
    if (i < size_) {
      const uint64_t r = rng_.next();
      std::memcpy(payload.data() + i, &r, size_ - i);
    }
    out += payload;
    expected_.push_back(std::move(payload));
  }

  ParseResult parse(const char* data, size_t n) override {
    if (expected_.empty()) return {n ? ParseResult::kError : ParseResult::kIncomplete, 0};
    if (n < size_) return {ParseResult::kIncomplete, 0};
    const bool same = std::memcmp(data, expected_.front().data(), size_) == 0;
    expected_.pop_front();
    return {same ? ParseResult::kOk : ParseResult::kMismatch, size_};
  }

  size_t outstanding() const override { return expected_.size(); }

 private:
  size_t size_;
  Rng rng_;
  std::deque<std::string> expected_;  // payloads sent and not yet echoed, oldest first
};

class EchoProtocol final : public Protocol {
 public:
  explicit EchoProtocol(size_t size) : size_(size) {}
  const char* name() const override { return "echo"; }
  std::unique_ptr<Session> new_session(uint64_t seed) const override {
    return std::make_unique<EchoSession>(size_, seed);
  }

 private:
  size_t size_;
};

}  // namespace

std::unique_ptr<Protocol> make_protocol(const ProtocolConfig& config, std::string& error) {
  if (config.name == "echo") {
    if (config.size == 0) {
      error = "--size must be at least 1 byte for --protocol echo";
      return nullptr;
    }
    return std::make_unique<EchoProtocol>(config.size);
  }
  if (config.name == "memcached") return make_memcached_protocol(config, error);
  if (config.name.rfind("rocksdb", 0) == 0) return make_rocksdb_protocol(config, error);
  error = "unknown --protocol '" + config.name + "' (known: echo, memcached, rocksdb*)";
  return nullptr;
}

}  // namespace loadgen
