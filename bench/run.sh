#!/bin/bash
# bench/run.sh <build-dir>: runs every benchmark program of a Release build (`make bench` calls
# it) with repetitions, printing medians only, and the machine and its load before and after
# each program, so that a result can be judged (see bench/README.md and bench/RESULTS.md).
# Environment: REPS (default 10; the wake-up benchmarks use REPS/2, at least 3), ECHO=0 (skip
# the echo comparison, bench/echo/run.sh, which has its own settings), FILTER (a
# --benchmark_filter regex, default all). Every program runs under a timeout, so a hang in the
# runtime shows up as "exit 124" instead of a stuck build.
set -u
B=${1:-build-bench}
REPS=${REPS:-10}
FILTER=${FILTER:-.}
WREPS=$(( REPS / 2 < 3 ? 3 : REPS / 2 ))

load() { echo "-- load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min), $(vmstat 1 2 | tail -1 | awk '{print "cpu idle " $15 "%"}')"; }

run() {  # run <timeout-s> <exe> [args...]
  local t=$1 exe=$2
  shift 2
  if [ ! -x "$B/$exe" ]; then
    echo "== $exe: not built, skipped"
    return
  fi
  echo "== $exe $*"
  load
  timeout "$t" "$B/$exe" "$@"
  local rc=$?
  [ $rc -ne 0 ] && echo "== $exe: exit $rc"
  load
}

echo "== $(date -u '+%F %T UTC'); $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); kernel $(uname -r)"
run 1800 bench/upcall_bench_core --benchmark_repetitions="$REPS" \
  --benchmark_report_aggregates_only=true --benchmark_filter="$FILTER"
run 1800 bench/upcall_bench_wake --benchmark_repetitions="$WREPS" \
  --benchmark_report_aggregates_only=true --benchmark_filter="$FILTER"
run 600 bench/upcall_rss_per_fiber
run 1800 bench/upcall_bench_task_api --benchmark_repetitions="$REPS" \
  --benchmark_report_aggregates_only=true --benchmark_filter="$FILTER"
# Other areas' benchmarks, when built (their own READMEs/comments say what they measure).
run 1800 bench/channel/upcall_bench_channel --benchmark_repetitions="$REPS" \
  --benchmark_report_aggregates_only=true --benchmark_filter="$FILTER"
run 1800 bench/sync/upcall_bench_sync --benchmark_repetitions="$REPS" \
  --benchmark_report_aggregates_only=true --benchmark_filter="$FILTER"
run 1800 bench/activations/upcall_bench_activations --benchmark_repetitions="$WREPS" \
  --benchmark_report_aggregates_only=true --benchmark_filter="$FILTER"
# The echo comparison (upcall's echo server next to epoll, Asio and Go peers; ~10-15 min; its
# own script prints the load before and after and a table). ECHO=0 skips it.
if [ "${ECHO:-1}" != 0 ]; then
  echo "== bench/echo/run.sh $B"
  bash "$(dirname "$0")/echo/run.sh" "$B"
fi
