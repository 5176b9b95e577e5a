// The load generator's rocksdb protocol (examples/loadgen/rocksdb_protocol.cpp) against
// hand-made responses in the server's wire format: a right answer parses as kOk, a wrong value,
// id or status as kMismatch, a short one as kIncomplete, garbage as kError; bad parameters fail.
#include <gtest/gtest.h>

#include <string>

#include "../../examples/rocksdb-server/wire.hpp"
#include "protocol.hpp"

namespace {

std::unique_ptr<loadgen::Protocol> make(const std::string& name, std::string* err = nullptr) {
  loadgen::ProtocolConfig c;
  c.name = name;
  std::string e;
  auto p = loadgen::make_protocol(c, e);
  if (err) *err = e;
  return p;
}

// The answer a correct server gives to the request in req[0, 16).
std::string answer(const char* req, std::size_t value_size, char status = wire::kFound) {
  const wire::Request q = wire::decode_request(req);
  wire::Response a;
  a.status = status;
  a.type = q.type;
  a.id = q.id;
  std::string body;
  if (status == wire::kFound) {
    if (q.type == wire::kGet) body = wire::value_of(q.key, value_size);
    a.n = q.type == wire::kGet ? static_cast<uint32_t>(body.size()) : 100;
  }
  std::string out(wire::kHeader, '\0');
  wire::encode(a, out.data());
  return out + body;
}

}  // namespace

TEST(RocksdbProtocol, RightAnswersParseAndWrongOnesAreMismatches) {
  auto p = make("rocksdb:range=0.5,keys=1000");
  ASSERT_TRUE(p);
  auto s = p->new_session(7);
  int gets = 0, ranges = 0;
  for (int i = 0; i < 200; ++i) {
    std::string req;
    s->encode(req);
    ASSERT_EQ(req.size(), wire::kHeader);
    const wire::Request q = wire::decode_request(req.data());
    ASSERT_LT(q.key, 1000u);
    (q.type == wire::kGet ? gets : ranges)++;
    const std::string a = answer(req.data(), 100);
    // Byte by byte: incomplete until the whole response is there.
    EXPECT_EQ(s->parse(a.data(), a.size() - 1).status, loadgen::ParseResult::kIncomplete);
    const auto r = s->parse(a.data(), a.size());
    EXPECT_EQ(r.status, loadgen::ParseResult::kOk);
    EXPECT_EQ(r.consumed, a.size());
  }
  EXPECT_GT(gets, 50);
  EXPECT_GT(ranges, 50);
  EXPECT_EQ(s->outstanding(), 0u);

  // A GET answered with another key's value, and an answer with the wrong id.
  auto g = make("rocksdb:keys=1000")->new_session(1);
  std::string req;
  g->encode(req);
  std::string a = answer(req.data(), 100);
  a[wire::kHeader] ^= 1;
  EXPECT_EQ(g->parse(a.data(), a.size()).status, loadgen::ParseResult::kMismatch);
  req.clear();
  g->encode(req);
  a = answer(req.data(), 100);
  a[8] ^= 1;  // id
  EXPECT_EQ(g->parse(a.data(), a.size()).status, loadgen::ParseResult::kMismatch);
  req.clear();
  g->encode(req);
  a = answer(req.data(), 100, wire::kNotFound);
  EXPECT_EQ(g->parse(a.data(), a.size()).status, loadgen::ParseResult::kMismatch);
  // Garbage status byte, and bytes with nothing outstanding.
  req.clear();
  g->encode(req);
  a = answer(req.data(), 100);
  a[0] = 'x';
  EXPECT_EQ(g->parse(a.data(), a.size()).status, loadgen::ParseResult::kError);
  auto idle = make("rocksdb")->new_session(1);
  EXPECT_EQ(idle->parse("0123456789abcdef", 16).status, loadgen::ParseResult::kError);
}

TEST(RocksdbProtocol, BadParametersAreOneLineErrors) {
  for (const char* bad : {"rocksdb:range=2", "rocksdb:keys=0", "rocksdb:keys=x", "rocksdb:zap=1",
                          "rocksdbx"}) {
    std::string err;
    EXPECT_FALSE(make(bad, &err)) << bad;
    EXPECT_FALSE(err.empty()) << bad;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
}
