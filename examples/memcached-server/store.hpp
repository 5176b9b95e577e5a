// The item store of memcached-server: a sharded hash table with expiry, cas uniques, a memory
// limit and LRU eviction.
//
// Owns the items and their memory. It does not parse (protocol.hpp), format replies other than
// a get's VALUE lines, or count commands (session.hpp). Time comes from an injectable Clock so
// tests can move it.
//
// Locking: kShards shards, each an upcall::mutex over its own hash map, LRU list and counters;
// a key lives in the shard its hash picks. Every operation takes exactly one shard lock, for a
// hash lookup plus a memcpy, and never does I/O under it, so a slow client never holds a lock.
// Why not one lock, or lock-free: with 2-8 cores and 64 shards two requests meet on a shard
// rarely, and the critical sections are short enough that the mutex's brief spin covers them;
// an upcall::mutex (not a spin lock) is needed because a fiber holding it can be taken over by
// an activation when its thread blocks in the kernel (a page fault on a fresh item). The memory
// limit is one atomic byte count (relaxed: it is a budget, not a synchronisation point). An
// insert that would exceed it evicts the least recently used of the LRU tails of its own shard
// and of 8 other shards it can try_lock (never waiting for a second lock, so no lock-order
// deadlock): an approximate global LRU (as Redis samples) without a global list or lock
// (memcached's own LRU is per slab class).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include <upcall/mutex.hpp>

#include "protocol.hpp"

namespace mc {

// Wall-clock milliseconds since the Unix epoch (memcached exptimes over 30 days are Unix times).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t now_ms() const = 0;
};

// CLOCK_REALTIME_COARSE (a vDSO read, ~4 ms resolution: expiry is in seconds anyway).
class SystemClock final : public Clock {
 public:
  std::int64_t now_ms() const override;
};

struct StoreConfig {
  std::size_t max_bytes = 64u << 20;  // -m
  std::size_t item_max = 1u << 20;    // -I
  bool evict = true;                  // false with -M: refuse stores when full
  const Clock* clock = nullptr;       // nullptr: a SystemClock owned by the store
};

enum class StoreStatus { stored, not_stored, exists, not_found, too_large, no_memory };
enum class DeltaStatus { ok, not_found, non_numeric, no_memory };

struct StoreStats {
  std::uint64_t curr_items = 0, total_items = 0, bytes = 0, evictions = 0, reclaimed = 0,
                expired_unfetched = 0, get_expired = 0, get_flushed = 0;
};

// The absolute expiry in ms for a protocol exptime (memcached's rules): 0 never; negative
// expired at once; up to 30 days relative to now; above, a Unix time in seconds. Returns 0 for
// never and 1 (long past) for "already expired".
std::int64_t expiry_ms(std::int64_t exptime, std::int64_t now_ms);

class Store {
 public:
  static constexpr int kShards = 64;
  static constexpr int kEvictSample = 8;  // other shards' LRU tails compared per eviction

  explicit Store(const StoreConfig& config);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // set/add/replace/append/prepend/cas (op says which). exptime as sent by the client.
  StoreStatus store(Op op, std::string_view key, std::uint32_t flags, std::int64_t exptime,
                    std::string_view data, std::uint64_t cas);
  // On a hit appends "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n" to `out` and returns
  // true. With `touch` non-null the item's exptime becomes *touch first (gat/gats).
  bool get(std::string_view key, bool with_cas, std::string& out,
           const std::int64_t* touch = nullptr);
  // incr/decr: incr wraps at 2^64, decr stops at 0. `value` is the new value on ok.
  DeltaStatus delta(std::string_view key, bool incr, std::uint64_t by, std::uint64_t& value);
  bool remove(std::string_view key);
  bool touch(std::string_view key, std::int64_t exptime);
  // Drops every item now (delay <= 0), or makes every item stored before now + delay invisible
  // from then on.
  void flush_all(std::int64_t delay);
  // Frees the expired and flushed items of shard `shard` (0 .. kShards-1) and returns how many
  // (memcached's LRU crawler does this; without it dead items hold memory until touched or
  // evicted). Holds that shard's lock for one pass over its map.
  std::size_t reclaim_dead(int shard);
  StoreStats stats() const;

  std::size_t max_bytes() const { return config_.max_bytes; }
  std::size_t item_max() const { return config_.item_max; }

 private:
  struct Item;
  struct Shard;

  Shard& shard_for(std::string_view key);
  std::int64_t now() const { return clock_->now_ms(); }
  bool live(const Item* it, std::int64_t now) const;
  Item* find_live(Shard& s, std::string_view key, std::int64_t now, bool count_get);
  Item* make_item(std::string_view key, std::size_t nbytes);
  void link(Shard& s, Item* it);
  void unlink(Shard& s, Item* it);  // removes from map and LRU, frees, returns the bytes
  void bump(Shard& s, Item* it, std::int64_t now);
  // Makes room for `need` more bytes (see the file comment). Caller holds s.mu.
  bool reserve(Shard& s, std::size_t need, std::int64_t now);
  std::size_t evict_tail(Shard& s, std::int64_t now);  // bytes freed, 0 if empty

  StoreConfig config_;
  std::unique_ptr<SystemClock> own_clock_;
  const Clock* clock_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::int64_t> bytes_{0};     // relaxed: the -m budget, summed over shards
  std::atomic<std::int64_t> flush_at_{0};  // relaxed: delayed flush_all time in ms, 0 none
  std::atomic<std::uint32_t> sample_at_{0};  // relaxed: rotates the shards eviction samples
};

}  // namespace mc
