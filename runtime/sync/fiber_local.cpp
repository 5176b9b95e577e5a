// runtime/sync/fiber_local.cpp: the side table behind upcall::fiber_local<T>
// (upcall/fiber_local.hpp): which context owns which values, and their destruction.
//
// Layout: kShards shards, each a std::mutex guarding a hash map from a context id (fiber id,
// or plain-thread id, sync_util.hpp) to a Record: the runtime the fiber belongs to (only a key,
// for the default runtime's shutdown) and the values in order of construction. A value is
// built and destroyed outside the shard lock (constructors and destructors may suspend or touch
// other fiber_locals). The table is never freed: thread-exit guards and the atexit shutdown of
// the default runtime use it late in the process's life.
//
// Who destroys what (the runtime has no fiber-exit hook; see the header for the user's view):
// release_fiber_locals() by the context itself (upcall::thread / jthread / async call it when
// the thread function returns); a thread_local guard for plain threads; ~fiber_local for its
// key; fiber_locals_release_runtime for what the default runtime's fibers left behind.
#include "upcall/fiber_local.hpp"

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "runtime/core/core.hpp"
#include "runtime/sync/fiber_local_table.hpp"
#include "runtime/sync/sync_util.hpp"

namespace upcall {

namespace detail {
namespace {

constexpr std::size_t kShards = 64;
// Rounds of release_fiber_locals: destructors may touch fiber_locals again and build new
// values (as PTHREAD_DESTRUCTOR_ITERATIONS, POSIX's bound of 4).
constexpr int kReleaseRounds = 4;

struct Entry {
  std::uint64_t key;
  void* value;
  void (*destroy)(void*) noexcept;
};
struct Record {
  const void* rt = nullptr;
  std::vector<Entry> entries;  // in order of construction
};
struct alignas(64) Shard {
  std::mutex mu;
  std::unordered_map<std::uint64_t, Record> map;  // guarded by mu
};

Shard* shards() {
  static Shard* s = new Shard[kShards];  // never freed: see the file comment
  return s;
}
Shard& shard_of(std::uint64_t ctx) { return shards()[(ctx ^ (ctx >> 17)) % kShards]; }

std::atomic<std::uint64_t> g_next_key{1};  // relaxed: only uniqueness matters

void destroy_entries(std::vector<Entry>& entries) noexcept {
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) it->destroy(it->value);
  entries.clear();
}

void release_context(std::uint64_t ctx) noexcept {
  Shard& sh = shard_of(ctx);
  for (int round = 0; round < kReleaseRounds; ++round) {
    Record rec;
    {
      std::lock_guard<std::mutex> lock(sh.mu);
      auto it = sh.map.find(ctx);
      if (it == sh.map.end()) return;
      rec = std::move(it->second);
      sh.map.erase(it);
    }
    destroy_entries(rec.entries);
  }
}

// Destroys a plain thread's values when it exits.
struct ThreadExitGuard {
  std::uint64_t ctx;
  ~ThreadExitGuard() { release_context(ctx); }
};

}  // namespace

std::uint64_t fiber_local_new_key() noexcept {
  return g_next_key.fetch_add(1, std::memory_order_relaxed);
}

void* fiber_local_find(std::uint64_t key) noexcept {
  const std::uint64_t ctx = current_context_id();
  Shard& sh = shard_of(ctx);
  std::lock_guard<std::mutex> lock(sh.mu);
  auto it = sh.map.find(ctx);
  if (it == sh.map.end()) return nullptr;
  for (const Entry& e : it->second.entries)
    if (e.key == key) return e.value;
  return nullptr;
}

void fiber_local_insert(std::uint64_t key, void* value, void (*destroy)(void*) noexcept) {
  const std::uint64_t ctx = current_context_id();
  if (ctx & kThreadIdBit) {
    thread_local ThreadExitGuard guard{ctx};  // registered on the thread's first value
    (void)guard;
  }
  rt::Activation* a = rt::current_activation();
  Shard& sh = shard_of(ctx);
  std::lock_guard<std::mutex> lock(sh.mu);
  Record& rec = sh.map[ctx];
  rec.rt = (ctx & kThreadIdBit) ? nullptr : (a ? a->rt : nullptr);
  rec.entries.push_back(Entry{key, value, destroy});
}

void fiber_local_erase_key(std::uint64_t key) noexcept {
  for (std::size_t i = 0; i < kShards; ++i) {
    Shard& sh = shards()[i];
    std::vector<Entry> doomed;
    {
      std::lock_guard<std::mutex> lock(sh.mu);
      for (auto it = sh.map.begin(); it != sh.map.end();) {
        auto& v = it->second.entries;
        for (auto e = v.begin(); e != v.end();) {
          if (e->key == key) {
            doomed.push_back(*e);
            e = v.erase(e);
          } else {
            ++e;
          }
        }
        it = v.empty() ? sh.map.erase(it) : std::next(it);
      }
    }
    destroy_entries(doomed);
  }
}

void fiber_locals_release_runtime(const void* rt) noexcept {
  for (std::size_t i = 0; i < kShards; ++i) {
    Shard& sh = shards()[i];
    std::vector<Record> doomed;
    {
      std::lock_guard<std::mutex> lock(sh.mu);
      for (auto it = sh.map.begin(); it != sh.map.end();) {
        if (it->second.rt == rt) {
          doomed.push_back(std::move(it->second));
          it = sh.map.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (Record& r : doomed) destroy_entries(r.entries);
  }
}

}  // namespace detail

void release_fiber_locals() noexcept { detail::release_context(detail::current_context_id()); }

}  // namespace upcall
