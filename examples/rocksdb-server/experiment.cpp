// Shared parts of the experiment (experiment.hpp): schedule, work calibration, idle FIFO, table.
#include "experiment.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>

namespace rocksdb_server {

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

namespace {
// splitmix64-seeded xorshift*: small and reproducible with any standard library.
struct Rng {
  explicit Rng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ULL + 0x2545F4914F6CDD1DULL) {
    if (!s) s = 1;
  }
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  uint64_t s;
};
}  // namespace

std::vector<Request> make_schedule(const Flags& f) {
  const double end = static_cast<double>(f.discard_ns + f.experiment_ns);
  const double mean_gap = 1e9 / f.throughput;
  std::vector<Request> reqs;
  reqs.reserve(static_cast<std::size_t>(end / mean_gap * 1.01 + 1000));
  Rng rng(f.seed);
  double t = 0;
  for (;;) {
    t += -std::log1p(-rng.uniform()) * mean_gap;
    if (t >= end) break;
    Request& r = reqs.emplace_back();
    r.arrival = static_cast<int64_t>(t);
    r.type = rng.uniform() < f.range_query_ratio ? wire::kRange : wire::kGet;
    r.key = static_cast<uint32_t>(rng.next() % static_cast<uint64_t>(f.num_keys));
  }
  return reqs;
}

void Spinner::burn(uint64_t units) {
  uint64_t x = units;
  for (uint64_t i = 0; i < units; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    asm volatile("" : "+r"(x));  // keeps the loop from being folded away
  }
}

void Spinner::calibrate() {
  constexpr uint64_t kUnits = 200'000;
  int64_t best = INT64_MAX;
  for (int i = 0; i < 15; ++i) {
    const int64_t t0 = mono_ns();
    burn(kUnits);
    best = std::min(best, mono_ns() - t0);
  }
  units_per_ns_ = static_cast<double>(kUnits) / static_cast<double>(std::max<int64_t>(best, 1));
}

IdleNode* IdleQueue::pop() {
  IdleNode* tail = tail_;
  IdleNode* next = tail->next.load(std::memory_order_acquire);
  if (tail == &stub_) {
    if (!next) return nullptr;
    tail_ = next;
    tail = next;
    next = next->next.load(std::memory_order_acquire);
  }
  if (next) {
    tail_ = next;
    return tail;
  }
  if (tail != head_.load(std::memory_order_acquire)) return nullptr;  // a push is half done
  push(&stub_);
  next = tail->next.load(std::memory_order_acquire);
  if (next) {
    tail_ = next;
    return tail;
  }
  return nullptr;
}

void print_table(const std::vector<const Request*>& measured, double seconds, std::FILE* out) {
  struct Row {
    const char* name;
    int64_t (*span)(const Request&);
  };
  static const Row rows[] = {
      {"Ingress Queue Time", [](const Request& r) { return r.taken - r.arrival; }},
      {"Repeatable Handle Time", [](const Request& r) { return r.handed - r.taken; }},
      {"Worker Queue Time", [](const Request& r) { return r.started - r.handed; }},
      {"Worker Handle Time", [](const Request& r) { return r.finished - r.started; }},
      {"Total", [](const Request& r) { return r.finished - r.arrival; }},
  };
  std::fprintf(out,
               "Stage                        Total Requests     Throughput (req/s)     Min (us)     "
               "50%% (us)     99%% (us)     99.5%% (us)   99.9%% (us)   Max (us)\n");
  std::fprintf(out, "%s\n", std::string(144, '-').c_str());
  const auto n = static_cast<unsigned long long>(measured.size());
  const auto tput = static_cast<unsigned long long>(
      seconds > 0 ? std::llround(static_cast<double>(measured.size()) / seconds) : 0);
  std::vector<int64_t> v(measured.size());
  for (const Row& row : rows) {
    for (std::size_t i = 0; i < measured.size(); ++i) v[i] = row.span(*measured[i]);
    std::sort(v.begin(), v.end());
    // Nearest rank: the smallest value with at least p of the requests at or below it.
    auto pct = [&](double p) -> long long {
      if (v.empty()) return 0;
      std::size_t idx = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
      idx = idx ? idx - 1 : 0;
      return static_cast<long long>(std::max<int64_t>(v[std::min(idx, v.size() - 1)], 0) / 1000);
    };
    std::fprintf(out, "%-29s%-19llu%-23llu%-13lld%-13lld%-13lld%-13lld%-13lld%lld\n", row.name, n,
                 tput, pct(0), pct(0.5), pct(0.99), pct(0.995), pct(0.999), pct(1.0));
  }
}

}  // namespace rocksdb_server
