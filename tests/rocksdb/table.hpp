// Parsing of the stage table rocksdb-server prints, for the tests.
#pragma once

#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace rocksdb_test {

inline const char* kHeader =
    "Stage                        Total Requests     Throughput (req/s)     Min (us)     50% (us)"
    "     99% (us)     99.5% (us)   99.9% (us)   Max (us)";
inline const char* kRows[] = {"Ingress Queue Time", "Repeatable Handle Time", "Worker Queue Time",
                              "Worker Handle Time", "Total"};

struct Row {
  long long requests = -1, throughput = -1;
  long long v[6] = {};  // min, 50, 99, 99.5, 99.9, max (us)
};

// Rows by name; empty when the header is missing.
inline std::map<std::string, Row> parse_table(const std::string& out) {
  std::map<std::string, Row> rows;
  const auto h = out.find(kHeader);
  if (h == std::string::npos) return rows;
  std::istringstream in(out.substr(h));
  std::string line;
  while (std::getline(in, line)) {
    for (const char* name : kRows) {
      const std::string n = name;
      if (line.compare(0, n.size(), n) != 0 || line.size() < 29) continue;
      if (line.substr(n.size(), 29 - n.size()).find_first_not_of(' ') != std::string::npos)
        continue;  // "Total" must not match a longer name
      std::istringstream f(line.substr(29));
      Row r;
      f >> r.requests >> r.throughput;
      for (long long& x : r.v) f >> x;
      if (f) rows[n] = r;
    }
  }
  return rows;
}

}  // namespace rocksdb_test
