// Echo protocol and option parsing of the load generator (examples/loadgen): what a session
// accepts and rejects in a byte stream, and which command lines are refused with which message.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "options.hpp"
#include "protocol.hpp"

namespace loadgen {
namespace {

std::unique_ptr<Protocol> echo(size_t size) {
  std::string err;
  auto p = make_protocol(ProtocolConfig{"echo", size}, err);
  EXPECT_TRUE(p) << err;
  return p;
}

TEST(EchoProtocol, EchoedStreamParsesInOrder) {
  auto p = echo(100);
  auto s = p->new_session(1);
  std::string out;
  for (int i = 0; i < 3; ++i) s->encode(out);
  ASSERT_EQ(out.size(), 300u);
  EXPECT_EQ(s->outstanding(), 3u);
  size_t off = 0;
  for (int i = 0; i < 3; ++i) {
    ParseResult r = s->parse(out.data() + off, out.size() - off);
    ASSERT_EQ(r.status, ParseResult::kOk);
    ASSERT_EQ(r.consumed, 100u);
    off += r.consumed;
  }
  EXPECT_EQ(s->outstanding(), 0u);
}

TEST(EchoProtocol, PartialResponseIsIncomplete) {
  auto s = echo(64)->new_session(2);
  std::string out;
  s->encode(out);
  for (size_t n : {0ul, 1ul, 63ul}) {
    ParseResult r = s->parse(out.data(), n);
    EXPECT_EQ(r.status, ParseResult::kIncomplete) << n;
    EXPECT_EQ(r.consumed, 0u);
  }
  EXPECT_EQ(s->parse(out.data(), 64).status, ParseResult::kOk);
}

TEST(EchoProtocol, WrongBytesAreAMismatch) {
  auto s = echo(4096)->new_session(3);
  std::string out;
  s->encode(out);
  s->encode(out);
  out[4096 + 4000] ^= 1;  // one bit of the second response
  EXPECT_EQ(s->parse(out.data(), out.size()).status, ParseResult::kOk);
  ParseResult r = s->parse(out.data() + 4096, 4096);
  EXPECT_EQ(r.status, ParseResult::kMismatch);
  EXPECT_EQ(r.consumed, 4096u);
}

TEST(EchoProtocol, ReorderedResponsesAreMismatches) {
  auto s = echo(16)->new_session(4);
  std::string out;
  s->encode(out);
  s->encode(out);
  std::string swapped = out.substr(16) + out.substr(0, 16);
  EXPECT_EQ(s->parse(swapped.data(), 32).status, ParseResult::kMismatch);
  EXPECT_EQ(s->parse(swapped.data() + 16, 16).status, ParseResult::kMismatch);
}

TEST(EchoProtocol, BytesWithNothingOutstandingAreAnError) {
  auto s = echo(8)->new_session(5);
  EXPECT_EQ(s->parse("x", 1).status, ParseResult::kError);
  EXPECT_EQ(s->parse("", 0).status, ParseResult::kIncomplete);
}

TEST(EchoProtocol, PayloadsAreRandomPerRequestAndPerSeed) {
  auto p = echo(32);
  auto a = p->new_session(6), b = p->new_session(6), c = p->new_session(7);
  std::string oa, ob, oc;
  a->encode(oa);
  a->encode(oa);
  b->encode(ob);
  c->encode(oc);
  EXPECT_NE(oa.substr(0, 32), oa.substr(32));  // two requests of one session differ
  EXPECT_EQ(oa.substr(0, 32), ob);              // same seed, same payload
  EXPECT_NE(ob, oc);
  auto odd = echo(13)->new_session(8);          // sizes that are not a multiple of 8
  std::string oo;
  odd->encode(oo);
  EXPECT_EQ(oo.size(), 13u);
}

TEST(EchoProtocol, FactoryRejectsUnknownAndEmpty) {
  std::string err;
  EXPECT_FALSE(make_protocol(ProtocolConfig{"gopher", 64}, err));
  EXPECT_NE(err.find("unknown --protocol"), std::string::npos) << err;
  EXPECT_FALSE(make_protocol(ProtocolConfig{"echo", 0}, err));
}

bool parse(std::vector<const char*> args, Options& o, std::string& err) {
  args.insert(args.begin(), "upcall_loadgen");
  return parse_options(static_cast<int>(args.size()), args.data(), o, err);
}

TEST(LoadgenOptions, ParsesValuesAndSuffixes) {
  Options o;
  std::string err;
  ASSERT_TRUE(parse({"--port", "7000", "--rate=20k", "--size", "4K", "--duration", "500ms",
                     "--warmup", "0", "--conns", "50", "--threads", "2", "--pipeline", "8",
                     "--json", "--host", "::1", "--seed", "0x10"}, o, err)) << err;
  EXPECT_EQ(o.port, 7000);
  EXPECT_DOUBLE_EQ(o.rate, 20000);
  EXPECT_EQ(o.protocol.size, 4096u);
  EXPECT_DOUBLE_EQ(o.duration_s, 0.5);
  EXPECT_DOUBLE_EQ(o.warmup_s, 0);
  EXPECT_EQ(o.conns, 50);
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(o.pipeline, 8);
  EXPECT_TRUE(o.json);
  EXPECT_EQ(o.host, "::1");
  EXPECT_EQ(o.seed, 16u);
}

TEST(LoadgenOptions, RejectsBadCommandLinesNamingTheOption) {
  struct Case {
    std::vector<const char*> args;
    const char* message_part;
  };
  const std::vector<Case> cases = {
      {{}, "--port is required"},
      {{"--port", "70000"}, "--port"},
      {{"--port", "1", "--rate", "0"}, "--rate"},
      {{"--port", "1", "--rate", "fast"}, "--rate"},
      {{"--port", "1", "--conns", "2", "--threads", "3"}, "--threads 3 is more than --conns 2"},
      {{"--port", "1", "--size", "0"}, "--size"},
      {{"--port", "1", "--duration", "-1"}, "--duration"},
      {{"--port", "1", "--pipeline", "1.5"}, "--pipeline"},
      {{"--port", "1", "--frobnicate", "1"}, "unknown option --frobnicate"},
      {{"--port"}, "needs a value"},
      {{"--port", "1", "stray"}, "unexpected argument"},
  };
  for (const Case& c : cases) {
    Options o;
    std::string err;
    EXPECT_FALSE(parse(c.args, o, err)) << c.message_part;
    EXPECT_NE(err.find(c.message_part), std::string::npos) << "got: " << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << "one line: " << err;
  }
}

}  // namespace
}  // namespace loadgen
