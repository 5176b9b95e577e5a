// Sweep mode of the load generator: offered-load steps, one run per step and target, a CSV
// row per run and a gnuplot PNG of p50/p99/p99.9 against offered load.
//
// Owns the order of runs (targets alternate within each step, the order reversed every other
// step, so that machine noise is shared and neither target always runs first), the CSV, the
// summary (per target: the highest offered load whose p99 stays within --slo-us with every
// request answered, and the p99 at half that load), and the gnuplot script. Each run is an
// ordinary run_load with fresh connections.
#pragma once

#include <string>

#include "options.hpp"
#include "protocol.hpp"

namespace loadgen {

// Returns the process exit status (0 ok, 2 setup failure with `error` set, 3 mismatches).
int run_sweep(const Options& options, const Protocol& protocol, std::string& error);

// The gnuplot script drawing `csv` (the columns run_sweep writes) into `png`.
std::string gnuplot_script(const Options& options, const std::string& csv, const std::string& png);

}  // namespace loadgen
