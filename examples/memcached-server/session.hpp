// One client connection's protocol state, without the socket: bytes in, reply bytes out.
//
// Owns what a request does (against the Store), the reply text, the command counters and the
// `stats` report. It does not own the socket or buffers (server.cpp reads into a buffer, hands
// it here, writes the replies back in one write per batch) nor the grammar (protocol.hpp).
// Because it has no I/O, unit tests feed it byte strings and compare the replies.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol.hpp"
#include "store.hpp"

namespace mc {

enum Counter : int {
  kCmdGet, kCmdSet, kCmdFlush, kCmdTouch, kGetHits, kGetMisses, kDeleteHits, kDeleteMisses,
  kIncrHits, kIncrMisses, kDecrHits, kDecrMisses, kCasHits, kCasMisses, kCasBadval, kTouchHits,
  kTouchMisses, kBytesRead, kBytesWritten, kTotalConnections, kRejectedConnections,
  kCounterCount
};

// Command counters summed over kSlots cache-line-sized slots: a session adds its batch to the
// slot of the core it runs on (relaxed atomics; fibers migrate, so two sessions may share a slot
// and the adds must be atomic), and `stats` sums the slots. No slot is written from two cores
// at once except during a migration, so the lines rarely bounce.
class ServerStats {
 public:
  static constexpr int kSlots = 16;
  void add(const std::array<std::uint64_t, kCounterCount>& local);
  void add(Counter c, std::uint64_t n = 1);
  std::uint64_t sum(Counter c) const;
  void reset();  // stats reset

  std::atomic<std::int64_t> curr_connections{0};  // relaxed: accept loop +1, connection end -1

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> v[kCounterCount] = {};
  };
  Slot& slot();
  Slot slots_[kSlots];
};

// What `stats` and `stats settings` report about the process; set before serving, read-only
// afterwards except verbosity.
struct ServerInfo {
  pid_t pid = 0;
  std::int64_t started_ms = 0;  // wall clock
  int port = 0;
  std::string interface = "127.0.0.1";
  std::size_t max_conns = 1024;
  int threads = 1;
  bool evict = true;
  std::atomic<int> verbosity{0};  // relaxed: -v, and the verbosity command
};

class Session {
 public:
  Session(Store& store, ServerStats& stats, ServerInfo& info, int id = 0);

  // Handles every complete request at the start of in[0, n), appending the replies to `out`.
  // Returns the bytes consumed; the caller keeps the rest and calls again with more bytes.
  std::size_t process(const char* in, std::size_t n, std::string& out);
  // True after quit or a fatal error: write `out`, then close.
  bool wants_close() const { return close_; }
  // True when process() stopped early because the replies reached kMaxBatchReply bytes (a
  // pipeline of gets of large values): write `out`, then call process() again on the rest
  // before reading more, so a client that does not read cannot grow the reply without bound.
  bool reply_full() const { return reply_full_; }
  static constexpr std::size_t kMaxBatchReply = 1 << 20;
  // Adds this session's counters to the shared ones (after each batch).
  void flush_counters();

 private:
  void execute(const Request& r, std::string& out);
  void retrieve(const Request& r, std::string& out);
  void stats(std::string_view arg, std::string& out);
  void count(Counter c, std::uint64_t n = 1) { local_[c] += n; }

  Store& store_;
  ServerStats& stats_;
  ServerInfo& info_;
  ParserLimits limits_;
  int id_;
  std::size_t swallow_ = 0;  // bytes of a refused value still to discard
  bool close_ = false;
  bool reply_full_ = false;
  bool started_ = false;     // seen the first byte (binary protocol check)
  std::array<std::uint64_t, kCounterCount> local_{};
};

}  // namespace mc
