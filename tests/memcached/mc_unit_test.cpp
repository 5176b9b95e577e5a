// Unit tests of memcached-server's parser, store and session, driven in-process (no sockets):
// the parser on byte strings, the store with a fake clock (expiry), a small -m (LRU eviction)
// and cas uniques, the session on whole request streams.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol.hpp"
#include "session.hpp"
#include "store.hpp"

namespace {

using mc::Op;
using mc::ParseResult;

ParseResult parse(const std::string& s, mc::Request& r, std::size_t item_max = 1 << 20) {
  mc::ParserLimits lim;
  lim.item_max = item_max;
  return mc::parse_request(s.data(), s.size(), lim, r);
}

TEST(McParser, StorageCommandWithData) {
  mc::Request r;
  const std::string in = "set k 5 10 3 noreply\r\nabc\r\nget k\r\n";  // the views point here
  auto p = parse(in, r);
  ASSERT_EQ(p.status, ParseResult::kRequest);
  EXPECT_EQ(p.consumed, 27u);
  EXPECT_EQ(r.op, Op::set);
  EXPECT_EQ(r.key, "k");
  EXPECT_EQ(r.flags, 5u);
  EXPECT_EQ(r.exptime, 10);
  EXPECT_EQ(r.data, "abc");
  EXPECT_TRUE(r.noreply);
}

TEST(McParser, IncompleteUntilTheDataBlockEnds) {
  mc::Request r;
  const std::string full = "cas k 0 0 3 42\r\nabc\r\n";
  for (std::size_t n = 0; n < full.size(); ++n)
    EXPECT_EQ(mc::parse_request(full.data(), n, {}, r).status, ParseResult::kIncomplete) << n;
  auto p = parse(full, r);
  ASSERT_EQ(p.status, ParseResult::kRequest);
  EXPECT_EQ(r.cas, 42u);
}

TEST(McParser, ErrorStrings) {
  mc::Request r;
  EXPECT_STREQ(parse("bogus\r\n", r).error, "ERROR");
  EXPECT_STREQ(parse("set k 0 0\r\n", r).error, "ERROR");
  EXPECT_STREQ(parse("set k x 0 1\r\n", r).error, "CLIENT_ERROR bad command line format");
  EXPECT_STREQ(parse("get " + std::string(251, 'k') + "\r\n", r).error,
               "CLIENT_ERROR bad command line format");
  auto chunk = parse("set k 0 0 1\r\nxy\r\n", r);
  EXPECT_STREQ(chunk.error, "CLIENT_ERROR bad data chunk");
  EXPECT_EQ(chunk.consumed, 16u);  // the line and 1 + 2 bytes, as memcached
  auto big = parse("set k 0 0 2000\r\n", r, 1024);
  EXPECT_STREQ(big.error, "SERVER_ERROR object too large for cache");
  EXPECT_EQ(big.swallow, 2002u);
  EXPECT_TRUE(big.drop_key);
  EXPECT_STREQ(parse("incr k x\r\n", r).error, "CLIENT_ERROR invalid numeric delta argument");
  EXPECT_STREQ(parse("touch k x\r\n", r).error, "CLIENT_ERROR invalid exptime argument");
  auto quiet = parse("set k x 0 1 noreply\r\n", r);
  EXPECT_TRUE(quiet.noreply);
  auto longline = parse(std::string(3000, 'x'), r);
  EXPECT_EQ(longline.status, ParseResult::kError);
  EXPECT_TRUE(longline.close);
  EXPECT_EQ(parse("get " + std::string(3000, 'a'), r).status, ParseResult::kIncomplete);
}

TEST(McParser, KeysOfAGet) {
  mc::Request r;
  const std::string in = "gets  a bb   ccc \r\n";
  ASSERT_EQ(parse(in, r).status, ParseResult::kRequest);
  std::string seen;
  mc::for_each_key(r.keys, [&](std::string_view k) { seen += std::string(k) + ","; });
  EXPECT_EQ(seen, "a,bb,ccc,");
}

TEST(McParser, Numbers) {
  std::uint64_t u;
  std::int64_t i;
  EXPECT_TRUE(mc::parse_u64("18446744073709551615", u));
  EXPECT_FALSE(mc::parse_u64("18446744073709551616", u));
  EXPECT_FALSE(mc::parse_u64("-1", u));
  EXPECT_TRUE(mc::parse_i64("-9223372036854775808", i));
  EXPECT_FALSE(mc::parse_i64("9223372036854775808", i));
  EXPECT_FALSE(mc::parse_i64("", i));
}

class FakeClock : public mc::Clock {
 public:
  std::int64_t now_ms() const override { return t; }
  std::int64_t t = 1'800'000'000'000;  // 2027
};

struct StoreFixture : ::testing::Test {
  FakeClock clock;
  mc::StoreConfig config() {
    mc::StoreConfig c;
    c.clock = &clock;
    return c;
  }
  static std::string get(mc::Store& s, std::string_view k) {
    std::string out;
    s.get(k, false, out);
    return out;
  }
};

TEST_F(StoreFixture, ExpiryRelativeAbsoluteNegative) {
  mc::Store s(config());
  s.store(Op::set, "rel", 0, 10, "v", 0);
  s.store(Op::set, "abs", 0, clock.t / 1000 + 20, "v", 0);
  s.store(Op::set, "neg", 0, -1, "v", 0);
  s.store(Op::set, "never", 0, 0, "v", 0);
  EXPECT_EQ(get(s, "neg"), "");
  clock.t += 9'999;
  EXPECT_NE(get(s, "rel"), "");
  clock.t += 1;
  EXPECT_EQ(get(s, "rel"), "");
  EXPECT_NE(get(s, "abs"), "");
  clock.t += 10'000;
  EXPECT_EQ(get(s, "abs"), "");
  clock.t += 1'000'000'000;
  EXPECT_NE(get(s, "never"), "");
  EXPECT_EQ(s.stats().get_expired, 2u);
}

TEST_F(StoreFixture, TouchAndDelayedFlush) {
  mc::Store s(config());
  s.store(Op::set, "a", 0, 1, "v", 0);
  EXPECT_TRUE(s.touch("a", 100));
  clock.t += 50'000;
  EXPECT_NE(get(s, "a"), "");
  s.flush_all(10);
  clock.t += 9'000;
  EXPECT_NE(get(s, "a"), "");
  clock.t += 1'000;
  EXPECT_EQ(get(s, "a"), "");
  s.store(Op::set, "b", 0, 0, "v", 0);
  EXPECT_NE(get(s, "b"), "");
}

TEST_F(StoreFixture, CasUniques) {
  mc::Store s(config());
  s.store(Op::set, "k", 0, 0, "v1", 0);
  std::string out;
  s.get("k", true, out);
  const std::uint64_t cas = std::stoull(out.substr(out.rfind(' ', out.find('\r')) + 1));
  EXPECT_EQ(s.store(Op::cas, "k", 0, 0, "v2", cas + 1), mc::StoreStatus::exists);
  EXPECT_EQ(s.store(Op::cas, "k", 0, 0, "v2", cas), mc::StoreStatus::stored);
  EXPECT_EQ(s.store(Op::cas, "k", 0, 0, "v3", cas), mc::StoreStatus::exists);
  EXPECT_EQ(s.store(Op::cas, "nokey", 0, 0, "v", cas), mc::StoreStatus::not_found);
  EXPECT_EQ(get(s, "k"), "VALUE k 0 2\r\nv2\r\n");
}

TEST_F(StoreFixture, LruEvictionKeepsHotItems) {
  mc::StoreConfig c = config();
  c.max_bytes = 1 << 20;
  c.item_max = 64 << 10;
  mc::Store s(c);
  const std::string v(4000, 'x');
  s.store(Op::set, "hot", 0, 0, v, 0);
  for (int i = 0; i < 2000; ++i) {
    clock.t += 1;
    ASSERT_EQ(s.store(Op::set, "k" + std::to_string(i), 0, 0, v, 0), mc::StoreStatus::stored);
    if (i % 10 == 0) {
      ASSERT_NE(get(s, "hot"), "") << "hot item evicted after " << i << " sets";
    }
  }
  const mc::StoreStats st = s.stats();
  EXPECT_LE(st.bytes, c.max_bytes);
  EXPECT_GT(st.evictions, 1000u);
  EXPECT_EQ(get(s, "k0"), "");
  EXPECT_NE(get(s, "k1999"), "");
}

TEST_F(StoreFixture, NoEvictionMeansOutOfMemory) {
  mc::StoreConfig c = config();
  c.max_bytes = 1 << 20;
  c.item_max = 64 << 10;
  c.evict = false;
  mc::Store s(c);
  const std::string v(4000, 'x');
  int stored = 0;
  while (s.store(Op::set, "k" + std::to_string(stored), 0, 0, v, 0) == mc::StoreStatus::stored)
    ++stored;
  EXPECT_GT(stored, 200);
  EXPECT_EQ(s.store(Op::set, "more", 0, 0, v, 0), mc::StoreStatus::no_memory);
  EXPECT_NE(get(s, "k0"), "");
}

TEST_F(StoreFixture, IncrDecr) {
  mc::Store s(config());
  std::uint64_t v = 0;
  s.store(Op::set, "n", 7, 0, "18446744073709551614", 0);
  EXPECT_EQ(s.delta("n", true, 3, v), mc::DeltaStatus::ok);
  EXPECT_EQ(v, 1u);
  EXPECT_EQ(s.delta("n", false, 5, v), mc::DeltaStatus::ok);
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(get(s, "n"), "VALUE n 7 1\r\n0\r\n");
  s.store(Op::set, "s", 0, 0, "12abc", 0);
  EXPECT_EQ(s.delta("s", true, 1, v), mc::DeltaStatus::non_numeric);
  EXPECT_EQ(s.delta("missing", true, 1, v), mc::DeltaStatus::not_found);
}

TEST(McSession, PipelinedBatchAndSplitDelivery) {
  mc::Store store(mc::StoreConfig{});
  mc::ServerStats stats;
  mc::ServerInfo info;
  const std::string in = "set a 0 0 1\r\n1\r\nget a b\r\nincr a 9\r\ndelete a\r\nbogus\r\n";
  const std::string want =
      "STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\n10\r\nDELETED\r\nERROR\r\n";
  {
    mc::Session s(store, stats, info);
    std::string out;
    EXPECT_EQ(s.process(in.data(), in.size(), out), in.size());
    EXPECT_EQ(out, want);
  }
  // The same bytes one at a time give the same replies.
  mc::Session s(store, stats, info);
  std::string out, buf;
  for (char ch : in) {
    buf += ch;
    buf.erase(0, s.process(buf.data(), buf.size(), out));
  }
  EXPECT_EQ(out, want);
  EXPECT_TRUE(buf.empty());
}

TEST(McSession, TooLargeValueIsSwallowedAndOldValueDropped) {
  mc::StoreConfig c;
  c.item_max = 1024;
  mc::Store store(c);
  mc::ServerStats stats;
  mc::ServerInfo info;
  mc::Session s(store, stats, info);
  std::string out;
  const std::string in = "set k 0 0 1\r\nx\r\nset k 0 0 2000\r\n" + std::string(2000, 'y') +
                         "\r\nget k\r\nquit\r\nget k\r\n";
  const std::size_t used = s.process(in.data(), in.size(), out);
  EXPECT_EQ(out, "STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n");
  EXPECT_TRUE(s.wants_close());
  EXPECT_LT(used, in.size());
}

TEST(McSession, StatsReportsCounters) {
  mc::Store store(mc::StoreConfig{});
  mc::ServerStats stats;
  mc::ServerInfo info;
  mc::Session s(store, stats, info);
  std::string out;
  const std::string in = "set a 0 0 1\r\n1\r\nget a\r\nget b\r\nstats\r\n";
  s.process(in.data(), in.size(), out);
  EXPECT_NE(out.find("STAT cmd_set 1\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("STAT get_hits 1\r\n"), std::string::npos);
  EXPECT_NE(out.find("STAT get_misses 1\r\n"), std::string::npos);
  EXPECT_NE(out.find("STAT curr_items 1\r\n"), std::string::npos);
  EXPECT_NE(out.find("STAT limit_maxbytes 67108864\r\n"), std::string::npos);
}

}  // namespace

namespace {

TEST(McStoreCrawler, ReclaimsExpiredItemsWithoutAccess) {
  struct Clock : mc::Clock {
    std::int64_t now_ms() const override { return t; }
    std::int64_t t = 1'800'000'000'000;
  } clock;
  mc::StoreConfig c;
  c.clock = &clock;
  mc::Store s(c);
  for (int i = 0; i < 1000; ++i) s.store(Op::set, "e" + std::to_string(i), 0, i % 2 ? 5 : 0, "v", 0);
  const std::uint64_t bytes = s.stats().bytes;
  clock.t += 6'000;
  std::size_t freed = 0;
  for (int i = 0; i < mc::Store::kShards; ++i) freed += s.reclaim_dead(i);
  EXPECT_EQ(freed, 500u);
  const mc::StoreStats st = s.stats();
  EXPECT_EQ(st.curr_items, 500u);
  EXPECT_EQ(st.reclaimed, 500u);
  EXPECT_LT(st.bytes, bytes);
}

}  // namespace

#include "settings.hpp"

namespace {

bool parse_flags(std::vector<std::string> args, mc::Settings& s, std::string& error) {
  args.insert(args.begin(), "memcached-server");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return mc::parse_settings(static_cast<int>(argv.size()), argv.data(), s, error);
}

TEST(McSettings, MemcachedFlags) {
  mc::Settings s;
  std::string error;
  ASSERT_TRUE(parse_flags({"-p", "1234", "-l", "127.0.0.1", "-m", "128", "-c", "10", "-t", "2",
                           "-I", "2m", "-U", "0", "-u", "nobody", "-vv", "-M"},
                          s, error))
      << error;
  EXPECT_EQ(s.port, 1234);
  EXPECT_EQ(s.listen, "127.0.0.1");
  EXPECT_EQ(s.max_bytes, 128u << 20);
  EXPECT_EQ(s.max_conns, 10u);
  EXPECT_EQ(s.threads, 2);
  EXPECT_EQ(s.item_max, 2u << 20);
  EXPECT_EQ(s.user, "nobody");
  EXPECT_EQ(s.verbose, 2);
  EXPECT_FALSE(s.evict);
  mc::Settings l;
  ASSERT_TRUE(parse_flags({"--port=99", "-c50", "--memory-limit=8"}, l, error)) << error;
  EXPECT_EQ(l.port, 99);
  EXPECT_EQ(l.max_conns, 50u);
  EXPECT_EQ(l.max_bytes, 8u << 20);
}

TEST(McSettings, BadFlagsSayWhy) {
  std::string error;
  mc::Settings s1, s2, s3, s4, s5;
  EXPECT_FALSE(parse_flags({"-x"}, s1, error));
  EXPECT_NE(error.find("unknown flag '-x'"), std::string::npos) << error;
  EXPECT_FALSE(parse_flags({"-p", "70000"}, s2, error));
  EXPECT_NE(error.find("-p"), std::string::npos) << error;
  EXPECT_FALSE(parse_flags({"-U", "11211"}, s3, error));
  EXPECT_NE(error.find("UDP"), std::string::npos) << error;
  EXPECT_FALSE(parse_flags({"-m", "1", "-I", "1m"}, s4, error));
  EXPECT_NE(error.find("half of -m"), std::string::npos) << error;
  EXPECT_FALSE(parse_flags({"-c"}, s5, error));
  EXPECT_NE(error.find("needs a value"), std::string::npos) << error;
}

}  // namespace

namespace {

TEST(McSession, RepliesToAPipelineOfLargeGetsComeInBoundedBatches) {
  mc::Store store(mc::StoreConfig{});
  mc::ServerStats stats;
  mc::ServerInfo info;
  mc::Session s(store, stats, info);
  std::string out;
  const std::string set = "set big 0 0 300000\r\n" + std::string(300000, 'b') + "\r\n";
  s.process(set.data(), set.size(), out);
  out.clear();
  std::string gets;
  for (int i = 0; i < 100; ++i) gets += "get big\r\n";
  std::size_t used = 0, replies = 0;
  while (used < gets.size()) {
    used += s.process(gets.data() + used, gets.size() - used, out);
    EXPECT_LE(out.size(), mc::Session::kMaxBatchReply + 300100);  // one reply past the cap
    for (std::size_t at = 0; (at = out.find("END\r\n", at)) != std::string::npos; at += 5) ++replies;
    out.clear();
  }
  EXPECT_EQ(replies, 100u);
}

}  // namespace
