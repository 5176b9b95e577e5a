// The memcached text protocol parser: bytes in, one request (or one error reply) out.
//
// Pure: no I/O, no allocation, no store, no clock. It owns the grammar (which tokens each command
// takes, what a key and a number are, where a data block ends) and the exact error strings of
// memcached 1.6 for malformed requests, so the server, the unit tests and the fuzzer drive the
// same code. It does not own what a request does (session.hpp) or the items (store.hpp).
//
// Behaviour copied from memcached 1.6.18 as observed on the wire (tests/memcached run the same
// raw lines against both): tokens are separated by spaces; a line ends in "\n" or "\r\n"; a
// wrong number of tokens or an unknown command is "ERROR"; a bad number or a key longer than 250
// bytes is "CLIENT_ERROR bad command line format"; a data block not followed by "\r\n" is
// "CLIENT_ERROR bad data chunk" (its bytes are consumed all the same); a value larger than the
// item limit is "SERVER_ERROR object too large for cache" and its bytes are swallowed; a
// trailing "noreply" suppresses every reply of that command, errors included. Where memcached
// silently drops the connection (a line over 2048 bytes that is not a get), we send
// "CLIENT_ERROR line too long" first, then close.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mc {

constexpr std::size_t kMaxKeyLength = 250;
// A request line longer than this without "\n" is refused unless it is a get (memcached: 2048).
constexpr std::size_t kMaxLineLength = 2048;
// Longest get line accepted (memcached grows its buffer without bound; we stop somewhere).
constexpr std::size_t kMaxGetLineLength = 1 << 20;
// Bytes an item costs besides its key and value (header, cas, "\r\n"), in the -I check and the
// -m accounting; memcached's item header is 48-56 bytes, so both servers admit about the same.
constexpr std::size_t kItemOverhead = 56;

enum class Op : std::uint8_t {
  get, gets, gat, gats,                           // retrieval (keys in Request::keys)
  set, add, replace, append, prepend, cas,        // storage (data in Request::data)
  del, incr, decr, touch,                         // one key
  flush_all, version, stats, verbosity, quit, shutdown,
};

const char* op_name(Op op);

struct Request {
  Op op = Op::get;
  std::string_view key;    // the key of single-key commands
  std::string_view keys;   // retrieval: the space-separated keys, each checked (for_each_key)
  std::string_view data;   // storage: the data block without its "\r\n"
  std::string_view arg;    // stats: the sub-command ("" for plain stats)
  std::uint32_t flags = 0;
  std::int64_t exptime = 0;  // as sent: storage, touch, gat; flush_all's delay
  std::uint64_t cas = 0;     // cas: the unique the client read
  std::uint64_t delta = 0;   // incr/decr
  std::uint32_t level = 0;   // verbosity
  bool noreply = false;
};

struct ParserLimits {
  std::size_t item_max = 1 << 20;  // -I: a storage value larger than this is refused (too large)
};

struct ParseResult {
  enum Status : std::uint8_t {
    kIncomplete,  // need more bytes; consumed is 0
    kRequest,     // `consumed` bytes were one request, now in the Request
    kError,       // `consumed` bytes were one bad request: reply `error` (unless noreply)
  };
  Status status = kIncomplete;
  std::size_t consumed = 0;
  const char* error = nullptr;  // kError: the reply line without "\r\n"
  bool noreply = false;         // kError: memcached suppresses this error reply
  std::size_t swallow = 0;      // kError: bytes after `consumed` to discard (a refused value)
  bool close = false;           // kError: close the connection after the reply
  std::string_view key;         // kError from a too-large set: the key (the store drops it)
  bool drop_key = false;
};

// Parses the request at the start of data[0, n). Never reads outside it.
ParseResult parse_request(const char* data, std::size_t n, const ParserLimits& limits,
                          Request& out);

// Calls f(key) for each key of a retrieval request's key list (already validated).
template <class F>
void for_each_key(std::string_view keys, F&& f) {
  std::size_t i = 0;
  while (i < keys.size()) {
    while (i < keys.size() && keys[i] == ' ') ++i;
    std::size_t j = i;
    while (j < keys.size() && keys[j] != ' ') ++j;
    if (j > i) f(keys.substr(i, j - i));
    i = j;
  }
}

// Decimal parsing as memcached's safe_strtoull/strtol: digits only (an optional '-' for the
// signed form), no overflow. For values too: incr/decr accept trailing spaces (see store.cpp).
bool parse_u64(std::string_view s, std::uint64_t& out);
bool parse_i64(std::string_view s, std::int64_t& out);

}  // namespace mc
