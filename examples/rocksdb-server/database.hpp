// The experiment's database: an embedded RocksDB (librocksdb-dev) that the server creates and
// fills itself, and the two request handlers' database parts: GET (a point lookup) and RANGE (an
// iterator scan). Owns the rocksdb::DB; does not know about schedulers or timing.
//
// Keys are "key%010lld" for 0 <= i < num_keys; values are wire::value_of(i, value_size), so a
// client can check every GET. A marker key records the shape, and a database of the same shape
// at the path is reused; a database this program made with another shape is rebuilt; anything
// else at the path is refused (never deleted).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace rocksdb {
class DB;
}

namespace rocksdb_server {

class Database {
 public:
  ~Database();
  // Opens, or creates and fills, the database at `path`. On failure returns nullptr with a
  // one-line `error`. Prints one line on stderr when it builds the database.
  static std::unique_ptr<Database> open(const std::string& path, int64_t num_keys, int value_size,
                                        std::string& error);

  // Point lookup of key index `key`. Returns the value's size, or -1 when absent (or on error).
  // Thread-safe. `out` receives the value when not null.
  int get(int64_t key, std::string* out = nullptr) const;
  // Scans `count` keys from key index `key` (wrapping at the end). Returns keys seen. Thread-safe.
  int range(int64_t key, int count) const;

  int64_t num_keys() const { return num_keys_; }
  int value_size() const { return value_size_; }

 private:
  Database() = default;
  rocksdb::DB* db_ = nullptr;
  int64_t num_keys_ = 0;
  int value_size_ = 0;
};

}  // namespace rocksdb_server
