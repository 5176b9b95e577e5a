// The sharded item store (store.hpp has the locking argument).
#include "store.hpp"

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>

namespace mc {

std::int64_t SystemClock::now_ms() const {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return std::int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

std::int64_t expiry_ms(std::int64_t exptime, std::int64_t now_ms) {
  constexpr std::int64_t kMaxRelative = 60 * 60 * 24 * 30;  // memcached's REALTIME_MAXDELTA
  if (exptime == 0) return 0;
  if (exptime < 0) return 1;
  if (exptime > kMaxRelative) {
    const std::int64_t at = exptime * 1000;
    return at <= now_ms ? 1 : at;
  }
  return now_ms + exptime * 1000;
}

// One item: one malloc'd block, the header then the key then the value. All fields are guarded
// by the lock of the shard whose map holds the item.
struct Store::Item {
  Item* prev;  // LRU neighbours; head = most recently used
  Item* next;
  std::uint64_t cas;
  std::int64_t exptime;  // absolute ms, 0 never
  std::int64_t time;     // ms of the last store (a delayed flush_all hides older items)
  std::int64_t atime;    // ms of the last store or hit (which LRU tail is oldest)
  std::uint32_t flags;
  std::uint32_t nkey;
  std::uint32_t nbytes;
  bool fetched;          // read since stored (expired_unfetched)

  char* key_ptr() { return reinterpret_cast<char*>(this + 1); }
  char* value_ptr() { return key_ptr() + nkey; }
  std::string_view key() { return {key_ptr(), nkey}; }
  std::string_view value() { return {value_ptr(), nbytes}; }
  std::size_t size() const { return nkey + nbytes + kItemOverhead; }
};

struct alignas(64) Store::Shard {
  upcall::mutex mu;
  // Everything below is guarded by mu. Map keys view the items' own key bytes.
  std::unordered_map<std::string_view, Item*> map;
  Item* head = nullptr;
  Item* tail = nullptr;
  std::uint64_t next_cas = 1;
  std::uint64_t total_items = 0, evictions = 0, reclaimed = 0, expired_unfetched = 0,
                get_expired = 0, get_flushed = 0;
  std::uint32_t index = 0;
};

Store::Store(const StoreConfig& config) : config_(config), shards_(new Shard[kShards]) {
  if (!config_.clock) own_clock_ = std::make_unique<SystemClock>();
  clock_ = config_.clock ? config_.clock : own_clock_.get();
  for (int i = 0; i < kShards; ++i) shards_[i].index = static_cast<std::uint32_t>(i);
}

Store::~Store() {
  for (int i = 0; i < kShards; ++i)
    for (auto& [k, it] : shards_[i].map) std::free(it);
}

Store::Shard& Store::shard_for(std::string_view key) {
  const std::size_t h = std::hash<std::string_view>{}(key);
  // The map uses the low bits of the same hash for its buckets: pick the shard from the high.
  return shards_[(h * 0x9e3779b97f4a7c15ULL) >> 58];
}

bool Store::live(const Item* it, std::int64_t now) const {
  if (it->exptime != 0 && it->exptime <= now) return false;
  const std::int64_t f = flush_at_.load(std::memory_order_relaxed);
  return !(f != 0 && now >= f && it->time < f);
}

Store::Item* Store::find_live(Shard& s, std::string_view key, std::int64_t now, bool count_get) {
  auto found = s.map.find(key);
  if (found == s.map.end()) return nullptr;
  Item* it = found->second;
  if (live(it, now)) return it;
  if (count_get) {
    if (it->exptime != 0 && it->exptime <= now) ++s.get_expired;
    else ++s.get_flushed;
  }
  if (!it->fetched && it->exptime != 0 && it->exptime <= now) ++s.expired_unfetched;
  unlink(s, it);
  return nullptr;
}

Store::Item* Store::make_item(std::string_view key, std::size_t nbytes) {
  auto* it = static_cast<Item*>(std::malloc(sizeof(Item) + key.size() + nbytes));
  if (!it) return nullptr;
  it->prev = it->next = nullptr;
  it->cas = 0;
  it->exptime = 0;
  it->time = 0;
  it->flags = 0;
  it->nkey = static_cast<std::uint32_t>(key.size());
  it->nbytes = static_cast<std::uint32_t>(nbytes);
  it->fetched = false;
  std::memcpy(it->key_ptr(), key.data(), key.size());
  return it;
}

void Store::link(Shard& s, Item* it) {
  it->atime = it->time;
  it->cas = s.next_cas++ * kShards + s.index;  // unique over all shards
  s.map.emplace(it->key(), it);
  it->prev = nullptr;
  it->next = s.head;
  if (s.head) s.head->prev = it;
  s.head = it;
  if (!s.tail) s.tail = it;
  ++s.total_items;
  bytes_.fetch_add(static_cast<std::int64_t>(it->size()), std::memory_order_relaxed);
}

void Store::unlink(Shard& s, Item* it) {
  s.map.erase(it->key());
  (it->prev ? it->prev->next : s.head) = it->next;
  (it->next ? it->next->prev : s.tail) = it->prev;
  bytes_.fetch_sub(static_cast<std::int64_t>(it->size()), std::memory_order_relaxed);
  std::free(it);
}

void Store::bump(Shard& s, Item* it, std::int64_t now) {
  it->atime = now;
  if (s.head == it) return;
  it->prev->next = it->next;
  (it->next ? it->next->prev : s.tail) = it->prev;
  it->prev = nullptr;
  it->next = s.head;
  s.head->prev = it;
  s.head = it;
}

std::size_t Store::evict_tail(Shard& s, std::int64_t now) {
  Item* it = s.tail;
  if (!it) return 0;
  const std::size_t n = it->size();
  if (live(it, now)) ++s.evictions;
  else ++s.reclaimed;
  unlink(s, it);
  return n;
}

bool Store::reserve(Shard& s, std::size_t need, std::int64_t now) {
  const auto limit = static_cast<std::int64_t>(config_.max_bytes);
  auto over = [&] {
    return bytes_.load(std::memory_order_relaxed) + static_cast<std::int64_t>(need) > limit;
  };
  if (static_cast<std::int64_t>(need) > limit) return false;
  if (!over()) return true;
  if (!config_.evict) return false;
  // Approximate global LRU: evict the oldest of the LRU tails of our shard and kEvictSample
  // other shards that are free right now (try_lock: never wait for a second lock while holding
  // ours, so no lock-order deadlock). Our own tail alone would evict a hot item of a shard that
  // holds few items in a small cache.
  while (over()) {
    Shard* best = s.tail ? &s : nullptr;
    const std::uint32_t start = sample_at_.fetch_add(1, std::memory_order_relaxed);
    for (int k = 0; k < kEvictSample; ++k) {
      Shard& o = shards_[(start + static_cast<std::uint32_t>(k) * 7) % kShards];
      if (&o == &s || &o == best || !o.mu.try_lock()) continue;
      if (o.tail && (!best || o.tail->atime < best->tail->atime)) {
        if (best && best != &s) best->mu.unlock();
        best = &o;
      } else {
        o.mu.unlock();
      }
    }
    if (!best) break;
    evict_tail(*best, now);
    if (best != &s) best->mu.unlock();
  }
  // Everything sampled was empty: sweep every shard that is free.
  for (int i = 1; i < kShards && over(); ++i) {
    Shard& o = shards_[(s.index + static_cast<std::uint32_t>(i)) % kShards];
    if (!o.mu.try_lock()) continue;
    while (over() && evict_tail(o, now) > 0) {
    }
    o.mu.unlock();
  }
  return !over();
}

StoreStatus Store::store(Op op, std::string_view key, std::uint32_t flags, std::int64_t exptime,
                         std::string_view data, std::uint64_t cas) {
  if (key.size() + data.size() + kItemOverhead > config_.item_max) return StoreStatus::too_large;
  Shard& s = shard_for(key);
  const std::int64_t t = now();
  upcall::lock_guard<upcall::mutex> g(s.mu);
  Item* old = find_live(s, key, t, false);
  switch (op) {
    case Op::add:
      if (old) {
        bump(s, old, t);
        return StoreStatus::not_stored;
      }
      break;
    case Op::replace:
    case Op::append:
    case Op::prepend:
      if (!old) return StoreStatus::not_stored;
      break;
    case Op::cas:
      if (!old) return StoreStatus::not_found;
      if (old->cas != cas) return StoreStatus::exists;
      break;
    default:
      break;
  }
  const bool concat = op == Op::append || op == Op::prepend;
  const std::size_t nbytes = data.size() + (concat ? old->nbytes : 0);
  if (key.size() + nbytes + kItemOverhead > config_.item_max) return StoreStatus::too_large;
  Item* it = make_item(key, nbytes);
  if (!it) return StoreStatus::no_memory;
  if (concat) {
    const std::string_view prev = old->value();
    char* v = it->value_ptr();
    if (op == Op::append) {
      std::memcpy(v, prev.data(), prev.size());
      std::memcpy(v + prev.size(), data.data(), data.size());
    } else {
      std::memcpy(v, data.data(), data.size());
      std::memcpy(v + data.size(), prev.data(), prev.size());
    }
    it->flags = old->flags;
    it->exptime = old->exptime;
  } else {
    std::memcpy(it->value_ptr(), data.data(), data.size());
    it->flags = flags;
    it->exptime = expiry_ms(exptime, t);
  }
  it->time = t;
  if (old) unlink(s, old);
  if (!reserve(s, it->size(), t)) {
    std::free(it);
    return StoreStatus::no_memory;
  }
  link(s, it);
  if (!live(it, t)) unlink(s, it);  // a negative or past exptime: stored, and gone at once
  return StoreStatus::stored;
}

bool Store::get(std::string_view key, bool with_cas, std::string& out, const std::int64_t* touch) {
  Shard& s = shard_for(key);
  const std::int64_t t = now();
  upcall::lock_guard<upcall::mutex> g(s.mu);
  Item* it = find_live(s, key, t, true);
  if (!it) return false;
  if (touch) {
    it->exptime = expiry_ms(*touch, t);
    if (!live(it, t)) {
      unlink(s, it);
      return false;
    }
  }
  it->fetched = true;
  bump(s, it, t);
  char num[64];
  out += "VALUE ";
  out += key;
  out += ' ';
  out.append(num, std::to_chars(num, num + sizeof num, it->flags).ptr);
  out += ' ';
  out.append(num, std::to_chars(num, num + sizeof num, it->nbytes).ptr);
  if (with_cas) {
    out += ' ';
    out.append(num, std::to_chars(num, num + sizeof num, it->cas).ptr);
  }
  out += "\r\n";
  out += it->value();
  out += "\r\n";
  return true;
}

// The numeric value of an item for incr/decr, as memcached's safe_strtoull reads it: optional
// leading whitespace, digits without overflow, then the end or whitespace.
static bool numeric_value(std::string_view v, std::uint64_t& out) {
  std::size_t i = 0;
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
  while (i < v.size() && space(v[i])) ++i;
  std::size_t j = i;
  while (j < v.size() && v[j] >= '0' && v[j] <= '9') ++j;
  if (j == i || (j < v.size() && !space(v[j]))) return false;
  return parse_u64(v.substr(i, j - i), out);
}

DeltaStatus Store::delta(std::string_view key, bool incr, std::uint64_t by, std::uint64_t& value) {
  Shard& s = shard_for(key);
  const std::int64_t t = now();
  upcall::lock_guard<upcall::mutex> g(s.mu);
  Item* old = find_live(s, key, t, false);
  if (!old) return DeltaStatus::not_found;
  std::uint64_t v;
  if (!numeric_value(old->value(), v)) return DeltaStatus::non_numeric;
  v = incr ? v + by : (by > v ? 0 : v - by);  // unsigned: incr wraps at 2^64 as memcached's
  char num[24];
  const std::size_t len = static_cast<std::size_t>(std::to_chars(num, num + sizeof num, v).ptr - num);
  Item* it = make_item(key, len);
  if (!it) return DeltaStatus::no_memory;
  std::memcpy(it->value_ptr(), num, len);
  it->flags = old->flags;
  it->exptime = old->exptime;
  it->time = t;
  it->fetched = old->fetched;
  unlink(s, old);
  if (!reserve(s, it->size(), t)) {
    std::free(it);
    return DeltaStatus::no_memory;
  }
  link(s, it);
  value = v;
  return DeltaStatus::ok;
}

bool Store::remove(std::string_view key) {
  Shard& s = shard_for(key);
  const std::int64_t t = now();
  upcall::lock_guard<upcall::mutex> g(s.mu);
  Item* it = find_live(s, key, t, false);
  if (!it) return false;
  unlink(s, it);
  return true;
}

bool Store::touch(std::string_view key, std::int64_t exptime) {
  Shard& s = shard_for(key);
  const std::int64_t t = now();
  upcall::lock_guard<upcall::mutex> g(s.mu);
  Item* it = find_live(s, key, t, false);
  if (!it) return false;
  it->exptime = expiry_ms(exptime, t);
  bump(s, it, t);
  if (!live(it, t)) unlink(s, it);
  return true;
}

void Store::flush_all(std::int64_t delay) {
  const std::int64_t t = now();
  if (delay > 0) {
    flush_at_.store(expiry_ms(delay, t), std::memory_order_relaxed);
    return;
  }
  flush_at_.store(0, std::memory_order_relaxed);
  for (int i = 0; i < kShards; ++i) {
    Shard& s = shards_[i];
    upcall::lock_guard<upcall::mutex> g(s.mu);
    while (s.tail) unlink(s, s.tail);
  }
}

std::size_t Store::reclaim_dead(int shard) {
  Shard& s = shards_[shard];
  const std::int64_t t = now();
  upcall::lock_guard<upcall::mutex> g(s.mu);
  std::size_t n = 0;
  for (Item* it = s.tail; it;) {
    Item* prev = it->prev;
    if (!live(it, t)) {
      if (!it->fetched && it->exptime != 0 && it->exptime <= t) ++s.expired_unfetched;
      ++s.reclaimed;
      unlink(s, it);
      ++n;
    }
    it = prev;
  }
  return n;
}

StoreStats Store::stats() const {
  StoreStats st;
  for (int i = 0; i < kShards; ++i) {
    Shard& s = shards_[i];
    upcall::lock_guard<upcall::mutex> g(s.mu);
    st.curr_items += s.map.size();
    st.total_items += s.total_items;
    st.evictions += s.evictions;
    st.reclaimed += s.reclaimed;
    st.expired_unfetched += s.expired_unfetched;
    st.get_expired += s.get_expired;
    st.get_flushed += s.get_flushed;
  }
  st.bytes = static_cast<std::uint64_t>(bytes_.load(std::memory_order_relaxed));
  return st;
}

}  // namespace mc
