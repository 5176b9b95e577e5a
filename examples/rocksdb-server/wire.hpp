// The rocksdb-server network protocol (README "The RocksDB experiment"), shared by the server
// and the load generator's rocksdb protocol (examples/loadgen/rocksdb_protocol.cpp). Header-only,
// no dependencies, so the loadgen (which does not link upcall or RocksDB) can include it.
//
// Every message is little-endian with a fixed 16-byte header; one request is answered by one
// response, in order on each connection.
//   request  (16 bytes): u8 type ('G' GET, 'R' RANGE), u8[3] zero, u32 key index,
//                        u64 id (any value; echoed)
//   response (16 bytes + body): u8 status ('K' found, 'N' not found, 'E' error),
//                        u8 type (echoed), u16 zero, u32 n, u64 id (echoed), then
//                        GET: n bytes, the value; RANGE: no body, n = keys scanned.
// A request whose type is neither 'G' nor 'R' gets status 'E' and the connection is closed.
// Values are value_of(key, size): any reader can check them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace wire {

inline constexpr std::size_t kHeader = 16;
inline constexpr char kGet = 'G', kRange = 'R';
inline constexpr char kFound = 'K', kNotFound = 'N', kError = 'E';

struct Request {
  char type = kGet;
  uint32_t key = 0;
  uint64_t id = 0;
};

struct Response {
  char status = kFound;
  char type = kGet;
  uint32_t n = 0;
  uint64_t id = 0;
};

inline void put32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline void put64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline uint32_t get32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}
inline uint64_t get64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

inline void encode(const Request& r, char* out) {
  std::memset(out, 0, kHeader);
  out[0] = r.type;
  put32(out + 4, r.key);
  put64(out + 8, r.id);
}
inline Request decode_request(const char* p) { return {p[0], get32(p + 4), get64(p + 8)}; }

inline void encode(const Response& r, char* out) {
  std::memset(out, 0, kHeader);
  out[0] = r.status;
  out[1] = r.type;
  put32(out + 4, r.n);
  put64(out + 8, r.id);
}
inline Response decode_response(const char* p) { return {p[0], p[1], get32(p + 4), get64(p + 8)}; }

// The database's key for index i.
inline std::string key_of(int64_t i) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "key%010lld", static_cast<long long>(i));
  return buf;
}

// The value stored under key index i: `size` printable bytes derived from i (splitmix64).
inline std::string value_of(int64_t i, std::size_t size) {
  std::string v(size, '\0');
  uint64_t x = static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
  for (std::size_t k = 0; k < size; ++k) {
    if (k % 8 == 0) {
      x += 0x9e3779b97f4a7c15ULL;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      x = z ^ (z >> 31);
    }
    v[k] = static_cast<char>('a' + ((x >> (8 * (k % 8))) & 0xff) % 26);
  }
  return v;
}

}  // namespace wire
