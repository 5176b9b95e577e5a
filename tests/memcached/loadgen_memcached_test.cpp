// upcall_loadgen's memcached protocol and sweep options (examples/loadgen), in-process: the
// requests it encodes, how it judges replies (hit, miss, wrong value, error line, garbage,
// partial), and the parsing of its new flags.
#include <gtest/gtest.h>

#include <string>

#include "options.hpp"
#include "protocol.hpp"

namespace {

std::unique_ptr<loadgen::Protocol> proto(double get_ratio, uint64_t keys = 10) {
  loadgen::ProtocolConfig c;
  c.name = "memcached";
  c.get_ratio = get_ratio;
  c.keys = keys;
  c.key_size = 8;
  c.value_size = 30;
  std::string error;
  auto p = loadgen::make_protocol(c, error);
  EXPECT_TRUE(p) << error;
  return p;
}

TEST(LoadgenMemcached, SetThenGetIsCheckedByteForByte) {
  auto p = proto(0.0);  // sets only
  auto s = p->new_session(1);
  std::string out;
  s->encode(out);
  ASSERT_TRUE(out.starts_with("set k")) << out;
  // "set kXXXXXXX 0 0 30\r\n<value>\r\n": the value a get of that key must return.
  const std::string key = out.substr(4, 8);
  const std::string value = out.substr(out.find("\r\n") + 2, 30);
  EXPECT_EQ(s->parse("STORED\r\n", 8).status, loadgen::ParseResult::kOk);

  auto g = proto(1.0)->new_session(1);  // the same seed picks the same key
  std::string req;
  g->encode(req);
  ASSERT_EQ(req, "get " + key + "\r\n");
  const std::string hit = "VALUE " + key + " 0 30\r\n" + value + "\r\nEND\r\n";
  for (size_t n = 0; n < hit.size(); ++n)
    ASSERT_EQ(g->parse(hit.data(), n).status, loadgen::ParseResult::kIncomplete) << n;
  auto r = g->parse(hit.data(), hit.size());
  EXPECT_EQ(r.status, loadgen::ParseResult::kOk);
  EXPECT_EQ(r.consumed, hit.size());

  std::string wrong = hit;
  wrong[wrong.find("\r\n") + 3] ^= 1;
  g->encode(req);
  EXPECT_EQ(g->parse(wrong.data(), wrong.size()).status, loadgen::ParseResult::kMismatch);
  g->encode(req);
  EXPECT_EQ(g->parse("END\r\n", 5).status, loadgen::ParseResult::kOk);  // a miss is fine
  g->encode(req);
  EXPECT_EQ(g->parse("SERVER_ERROR out of memory\r\n", 28).status,
            loadgen::ParseResult::kMismatch);
  g->encode(req);
  EXPECT_EQ(g->parse("HTTP/1.1 400\r\n", 14).status, loadgen::ParseResult::kError);
}

TEST(LoadgenMemcached, GetRatioIsHonoured) {
  auto s = proto(0.9, 1000)->new_session(7);
  std::string out;
  int gets = 0;
  for (int i = 0; i < 10000; ++i) {
    out.clear();
    s->encode(out);
    gets += out.starts_with("get ");
  }
  EXPECT_NEAR(gets, 9000, 300);
}

TEST(LoadgenMemcached, BadConfigurationsAreRefused) {
  loadgen::ProtocolConfig c;
  c.name = "memcached";
  c.keys = 100000;
  c.key_size = 4;  // "k" + 5 digits does not fit
  std::string error;
  EXPECT_FALSE(loadgen::make_protocol(c, error));
  EXPECT_NE(error.find("--key-size"), std::string::npos) << error;
}

TEST(LoadgenOptions, SweepTargetsAndMemcachedFlags) {
  const char* argv[] = {"lg", "--protocol", "memcached", "--get-ratio", "0.5", "--key-size", "20",
                        "--value-size", "1K", "--keys", "5k", "--sweep", "10k:30k:10k",
                        "--target", "up=127.0.0.1:21000", "--target", "mc=[::1]:21001",
                        "--csv", "out.csv", "--plot", "out.png", "--slo-us", "300"};
  loadgen::Options o;
  std::string error;
  ASSERT_TRUE(loadgen::parse_options(sizeof argv / sizeof *argv, argv, o, error)) << error;
  EXPECT_EQ(o.protocol.get_ratio, 0.5);
  EXPECT_EQ(o.protocol.key_size, 20u);
  EXPECT_EQ(o.protocol.value_size, 1024u);
  EXPECT_EQ(o.protocol.keys, 5000u);
  ASSERT_EQ(o.sweep.size(), 3u);
  EXPECT_EQ(o.sweep[2], 30000);
  ASSERT_EQ(o.targets.size(), 2u);
  EXPECT_EQ(o.targets[1].host, "::1");
  EXPECT_EQ(o.targets[1].port, 21001);
  EXPECT_EQ(o.slo_us, 300);

  const char* bad[] = {"lg", "--port", "1", "--csv", "x.csv"};
  loadgen::Options o1, o2, o3;
  EXPECT_FALSE(loadgen::parse_options(5, bad, o1, error));
  EXPECT_NE(error.find("--sweep"), std::string::npos) << error;
  const char* bad2[] = {"lg", "--port", "1", "--sweep", "10k,-5"};
  EXPECT_FALSE(loadgen::parse_options(5, bad2, o2, error));
  const char* bad3[] = {"lg", "--sweep", "1k", "--target", "nocolon"};
  EXPECT_FALSE(loadgen::parse_options(5, bad3, o3, error));
}

}  // namespace
