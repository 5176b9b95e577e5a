// Request/response protocols the load generator speaks: the interface and the factory.
//
// A Protocol is configured once (message size, ...) and opens one Session per connection. A
// Session encodes requests into the connection's output buffer, remembers in order what each
// response must be, and parses responses from the front of the connection's input byte stream.
// Responses arrive in request order (one TCP stream, pipelined or not). The client (client.cpp)
// owns sockets, timing and counting; protocols own bytes only, so a new one (memcached text or
// binary) is one file plus a line in make_protocol. Sessions are used by one thread at a time.
// A protocol may also want the server filled before the run (memcached: every key set, so that
// gets hit): preload_count() requests, encoded by encode_preload, sent once on one connection
// and checked, not measured.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace loadgen {

struct ParseResult {
  enum Status {
    kIncomplete,  // not enough bytes yet for the oldest outstanding response; consumed is 0
    kOk,          // one response, as expected
    kMismatch,    // one well-formed response that does not match its request
    kError,       // the stream cannot be parsed (garbage, or bytes with no request outstanding)
  };
  Status status;
  size_t consumed;  // bytes of the input that belong to this response
};

class Session {
 public:
  virtual ~Session() = default;
  // Appends one request to `out` and queues what its response must be.
  virtual void encode(std::string& out) = 0;
  // Parses the response to the oldest outstanding request from data[0, n).
  virtual ParseResult parse(const char* data, size_t n) = 0;
  // Requests encoded and not yet answered.
  virtual size_t outstanding() const = 0;
  // Appends preload request i (0 <= i < Protocol::preload_count()) and queues its response.
  virtual void encode_preload(size_t /*i*/, std::string& /*out*/) {}
};

class Protocol {
 public:
  virtual ~Protocol() = default;
  virtual const char* name() const = 0;
  // A session for one connection; `seed` makes its payloads reproducible.
  virtual std::unique_ptr<Session> new_session(uint64_t seed) const = 0;
  // Requests to send before the run (see above); 0: none.
  virtual size_t preload_count() const { return 0; }
};

struct ProtocolConfig {
  std::string name = "echo";
  size_t size = 64;  // message bytes (echo: the whole request and response)
  // memcached: the request mix and the key space (memcached_protocol.cpp).
  double get_ratio = 0.9;  // --get-ratio: share of gets, the rest are sets
  size_t key_size = 16;    // --key-size: bytes per key
  size_t value_size = 32;  // --value-size: bytes per value
  uint64_t keys = 10000;   // --keys: distinct keys, chosen uniformly
  bool preload = true;     // --no-preload: do not set every key before the run
};

// The protocol called config.name, or nullptr with `error` set to a one-line reason.
std::unique_ptr<Protocol> make_protocol(const ProtocolConfig& config, std::string& error);
// One per protocol file, called by make_protocol.
std::unique_ptr<Protocol> make_memcached_protocol(const ProtocolConfig& config, std::string& error);
std::unique_ptr<Protocol> make_rocksdb_protocol(const ProtocolConfig& config, std::string& error);

}  // namespace loadgen
