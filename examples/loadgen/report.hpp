// The load generator's report: the text summary and the one-line JSON form of a run's Results.
#pragma once

#include <string>

#include "client.hpp"
#include "options.hpp"

namespace loadgen {

// Human-readable, several lines ending in '\n'.
std::string format_text(const Options& options, const Results& results);
// One JSON object on one line, no trailing newline; flat (no nesting), so that shell scripts
// can pick fields with grep. Latencies in microseconds (keys *_us); bench/README.md lists them.
std::string format_json(const Options& options, const Results& results);

}  // namespace loadgen
