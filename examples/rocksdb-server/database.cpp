// The embedded RocksDB of the experiment (database.hpp).
#include "database.hpp"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "wire.hpp"

namespace rocksdb_server {
namespace {

// The marker key sorts before every "key..." key; its value states the shape.
constexpr const char* kMetaKey = "!upcall_rocksdb_server";
constexpr int kFillBatch = 10'000;

std::string shape_of(int64_t num_keys, int value_size) {
  return "keys=" + std::to_string(num_keys) + " value_size=" + std::to_string(value_size);
}

rocksdb::Options make_options() {
  rocksdb::Options o;
  o.create_if_missing = true;
  // The whole database fits in the block cache: requests measure scheduling and CPU work, not
  // the page cache. No background work runs during the experiment (the fill compacts first).
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(512 << 20);
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  o.max_background_jobs = 2;
  o.write_buffer_size = 64 << 20;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.stats_dump_period_sec = 0;
  return o;
}

}  // namespace

Database::~Database() { delete db_; }

std::unique_ptr<Database> Database::open(const std::string& path, int64_t num_keys,
                                         int value_size, std::string& error) {
  namespace fs = std::filesystem;
  std::unique_ptr<Database> d(new Database);
  d->num_keys_ = num_keys;
  d->value_size_ = value_size;
  const std::string want = shape_of(num_keys, value_size);
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  if (exists && !fs::is_directory(path, ec)) {
    error = "--rocksdb_db_path=" + path + " exists and is not a directory";
    return nullptr;
  }
  const bool empty = !exists || fs::is_empty(path, ec);
  rocksdb::Options opts = make_options();
  if (!empty) {
    if (!fs::exists(fs::path(path) / "CURRENT", ec)) {
      error = "--rocksdb_db_path=" + path +
              " is a non-empty directory that is not a RocksDB database; choose another path";
      return nullptr;
    }
    rocksdb::Status s = rocksdb::DB::Open(opts, path, &d->db_);
    if (!s.ok()) {
      error = "cannot open the database at " + path + ": " + s.ToString();
      return nullptr;
    }
    std::string shape;
    s = d->db_->Get(rocksdb::ReadOptions(), kMetaKey, &shape);
    if (s.ok() && shape == want) return d;  // reuse
    if (!s.ok() && !s.IsNotFound()) {
      error = "cannot read the database at " + path + ": " + s.ToString();
      return nullptr;
    }
    delete d->db_;
    d->db_ = nullptr;
    if (s.IsNotFound()) {
      error = "--rocksdb_db_path=" + path +
              " holds a RocksDB database this program did not make; choose another path";
      return nullptr;
    }
    std::fprintf(stderr, "rocksdb-server: the database at %s has %s, rebuilding it with %s\n",
                 path.c_str(), shape.c_str(), want.c_str());
    s = rocksdb::DestroyDB(path, opts);
    if (!s.ok()) {
      error = "cannot remove the old database at " + path + ": " + s.ToString();
      return nullptr;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  rocksdb::Status s = rocksdb::DB::Open(opts, path, &d->db_);
  if (!s.ok()) {
    error = "cannot create the database at " + path + ": " + s.ToString();
    return nullptr;
  }
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;  // the fill is flushed below; a crash mid-fill leaves no marker key
  for (int64_t i = 0; i < num_keys;) {
    rocksdb::WriteBatch b;
    for (int k = 0; k < kFillBatch && i < num_keys; ++k, ++i)
      b.Put(wire::key_of(i), wire::value_of(i, static_cast<std::size_t>(value_size)));
    s = d->db_->Write(wo, &b);
    if (!s.ok()) break;
  }
  if (s.ok()) s = d->db_->Flush(rocksdb::FlushOptions());
  if (s.ok()) s = d->db_->CompactRange(rocksdb::CompactRangeOptions(), nullptr, nullptr);
  // The marker goes last, and durably: its presence means the fill completed.
  if (s.ok()) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    s = d->db_->Put(sync, kMetaKey, want);
  }
  if (s.ok()) s = d->db_->Flush(rocksdb::FlushOptions());
  if (!s.ok()) {
    error = "cannot fill the database at " + path + ": " + s.ToString();
    return nullptr;
  }
  std::fprintf(stderr, "rocksdb-server: created %s at %s in %.1f s\n", want.c_str(), path.c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return d;
}

int Database::get(int64_t key, std::string* out) const {
  rocksdb::PinnableSlice v;
  const std::string k = wire::key_of(key);
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), k, &v);
  if (!s.ok()) return -1;
  if (out) out->assign(v.data(), v.size());
  return static_cast<int>(v.size());
}

int Database::range(int64_t key, int count) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  int seen = 0;
  it->Seek(wire::key_of(key));
  while (seen < count) {
    if (!it->Valid()) {
      if (!it->status().ok()) break;
      it->Seek(wire::key_of(0));  // wrap around
      if (!it->Valid()) break;
    }
    ++seen;
    it->Next();
  }
  return seen;
}

}  // namespace rocksdb_server
