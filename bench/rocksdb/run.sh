#!/usr/bin/env bash
# The RocksDB experiment's benchmark (issue: "Find threads' capacity, then 50% and 80% of it"):
#  1. For each mix (GET only; GET + RANGE with --range_query_ratio=0.005), find the capacity of
#     --scheduler=threads on this machine: the highest offered load it sustains, by doubling then
#     bisection to 5%. Sustained = no request left unfinished, achieved throughput >= 98% of the
#     offered load, and Total p50 below 1 ms (a queue that grows during the run pushes the median
#     far above that).
#  2. At 50% and 80% of that capacity, run both schedulers (threads, then upcall) at the same
#     offered load and keep both tables.
#  3. Print a summary: Total p99 of each and the ratio threads/upcall (the issue's bar: >= 10x at
#     80%, never worse at 50%).
# Usage: bench/rocksdb/run.sh [BUILD_DIR] [OUT_DIR]. Needs a quiet machine (check `uptime`).
# Environment: BENCH_DURATION (measured seconds per run, default 10), SEARCH_DURATION (per
# capacity probe, default 4), BENCH_DB (database directory, default /tmp/upcall_rocksdb_<uid>).
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-$BUILD/bench-rocksdb-$(date -u +%Y%m%dT%H%M%SZ)}
SERVER=$BUILD/examples/rocksdb-server/upcall_rocksdb_server
[[ -x $SERVER ]] || { echo "bench/rocksdb: $SERVER missing (build first)" >&2; exit 1; }
DURATION=${BENCH_DURATION:-10}
SEARCH=${SEARCH_DURATION:-4}
DB=${BENCH_DB:-/tmp/upcall_rocksdb_$(id -u)}
mkdir -p "$OUT"
echo "bench/rocksdb: $(date -u), $(nproc) CPUs, load: $(uptime | sed 's/.*load average: //')" | tee "$OUT/summary.txt"

# run <file> <scheduler> <throughput> <ratio> <seconds>: one experiment, output kept in <file>.
run() {
  "$SERVER" --scheduler="$2" --rocksdb_db_path="$DB" --throughput="$3" --num_workers=20 \
    --batch=1 --range_query_ratio="$4" --experiment_duration="$5" --discard_duration=2s \
    >"$1" 2>&1
}
field() {  # field <file> <row first word> <column>: a number from the table
  awk -v row="$2" -v col="$3" '$1 == row && NF == 9 { print $col }' "$1"
}
sustained() {  # sustained <file> <offered>
  local f=$1 offered=$2 tput p50
  grep -q '^warning:' "$f" && return 1
  tput=$(field "$f" Total 3); p50=$(field "$f" Total 5)
  [[ -n $tput && -n $p50 ]] || return 1
  awk -v t="$tput" -v o="$offered" -v p="$p50" 'BEGIN { exit !(t >= 0.98 * o && p < 1000) }'
}

for ratio in 0 0.005; do
  mix=$([[ $ratio == 0 ]] && echo get || echo range$ratio)
  # Capacity of threads: double until it fails, then bisect between the last good and the bad.
  lo=0; hi=0; rate=$([[ $ratio == 0 ]] && echo 20000 || echo 5000)
  while :; do
    if run "$OUT/probe-$mix-$rate.txt" threads "$rate" "$ratio" "$SEARCH" &&
       sustained "$OUT/probe-$mix-$rate.txt" "$rate"; then
      lo=$rate; rate=$((rate * 2))
      ((rate > 2000000)) && { hi=$rate; break; }
    else
      hi=$rate; break
    fi
  done
  while ((hi - lo > hi / 20)); do
    rate=$(((lo + hi) / 2))
    if run "$OUT/probe-$mix-$rate.txt" threads "$rate" "$ratio" "$SEARCH" &&
       sustained "$OUT/probe-$mix-$rate.txt" "$rate"; then lo=$rate; else hi=$rate; fi
  done
  ((lo > 0)) || { echo "bench/rocksdb: threads sustains none of the loads tried ($mix)" | tee -a "$OUT/summary.txt"; continue; }
  echo "$mix: threads capacity $lo req/s (fails at $hi)" | tee -a "$OUT/summary.txt"
  for pct in 50 80; do
    rate=$((lo * pct / 100))
    for s in threads upcall; do
      run "$OUT/$mix-$pct-$s.txt" "$s" "$rate" "$ratio" "$DURATION" || true
    done
    t=$(field "$OUT/$mix-$pct-threads.txt" Total 6); u=$(field "$OUT/$mix-$pct-upcall.txt" Total 6)
    awk -v m="$mix" -v p="$pct" -v r="$rate" -v t="${t:-nan}" -v u="${u:-nan}" 'BEGIN {
      printf "%s at %d%% (%d req/s): Total p99 threads %s us, upcall %s us, ratio %.1fx\n",
             m, p, r, t, u, (u > 0 ? t / u : 0) }' | tee -a "$OUT/summary.txt"
  done
done
echo "tables: $OUT/{get,range0.005}-{50,80}-{threads,upcall}.txt" | tee -a "$OUT/summary.txt"
