#!/usr/bin/env bash
# `make demo`: the project's main demonstration, in about a minute on a 2-CPU machine.
#  1. Google ghOSt's RocksDB experiment (the seed document) on a real embedded RocksDB: the same
#     offered load of GET and RANGE requests run first with one kernel thread per worker
#     (--scheduler=threads, the seed's CFS run), then with the workers as upcall fibers
#     (--scheduler=upcall, the seed's ghOSt run); both tables, and the ratio of their Total p99.
#  2. The blocking demo: handlers that call a read(2) nobody wrapped, with scheduler activations
#     on and off: requests served per second, the largest stall, and the upcall latency.
#  3. The runtime tour (examples/demo/main.cpp): fibers on every core, a fiber blocked in read(2)
#     while its core keeps running others, and the runtime's counters.
# Usage: examples/demo/demo.sh [BUILD_DIR]. Environment: DEMO_THROUGHPUT (req/s, default 16000),
# DEMO_RANGE_RATIO (default 0.005), DEMO_DURATION (default 10s), DEMO_DB (the database
# directory, default /tmp/upcall_rocksdb_<uid>; created and filled on the first run).
set -euo pipefail
BUILD=${1:-build}
SERVER=$BUILD/examples/rocksdb-server/upcall_rocksdb_server
BLOCKING=$BUILD/examples/blocking-demo/upcall_blocking_demo
TOUR=$BUILD/examples/demo/upcall_demo
for b in "$SERVER" "$BLOCKING" "$TOUR"; do
  [[ -x $b ]] || { echo "demo: $b is missing (build first: make build)" >&2; exit 1; }
done
THROUGHPUT=${DEMO_THROUGHPUT:-16000}
RATIO=${DEMO_RANGE_RATIO:-0.005}
DURATION=${DEMO_DURATION:-10s}
DB=${DEMO_DB:-/tmp/upcall_rocksdb_$(id -u)}
FLAGS=(--rocksdb_db_path="$DB" --throughput="$THROUGHPUT" --num_workers=20 --batch=1
       --range_query_ratio="$RATIO" --experiment_duration="$DURATION" --discard_duration=2s)

echo "== 1. The ghOSt RocksDB experiment: $THROUGHPUT req/s, 20 workers, GET 10us," \
     "RANGE 10ms with probability $RATIO"
echo "-- --scheduler=threads (one kernel thread per worker; the kernel's scheduler decides)"
threads_out=$("$SERVER" --scheduler=threads "${FLAGS[@]}" 2>&1) || { echo "$threads_out"; exit 1; }
echo "$threads_out"
echo
echo "-- --scheduler=upcall (workers are fibers: short requests run to completion, long ones yield every 30us)"
upcall_out=$("$SERVER" --scheduler=upcall "${FLAGS[@]}" 2>&1) || { echo "$upcall_out"; exit 1; }
echo "$upcall_out"
# Total row: Total, requests, throughput, min, 50%, 99% (field 6), 99.5%, 99.9%, max.
p99() { awk '$1 == "Total" && NF == 9 { print $6 }' <<<"$1"; }
t=$(p99 "$threads_out"); u=$(p99 "$upcall_out")
if [[ -n $t && -n $u ]]; then
  awk -v t="$t" -v u="$u" 'BEGIN {
    if (u > 0 && t >= u) r = sprintf("upcall is %.1fx lower", t / u)
    else if (u > 0) r = sprintf("upcall is %.1fx HIGHER", u / (t > 0 ? t : 1))
    else r = "upcall below 1 us"
    printf "Total p99: threads %d us, upcall %d us: %s\n", t, u, r }'
fi
load=$(cut -d" " -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 1.5) }'; then
  echo "(load average $load: other processes share these CPUs, and the kernel gives the 21 threads of"
  echo " 'threads' more of them than upcall's two core threads; compare on a quiet machine)"
fi
echo
echo "== 2. The blocking demo: 1 in 100 requests calls a read(2) nobody wrapped, answered after 20 ms"
"$BLOCKING" --duration=2s
echo
echo "== 3. The runtime tour"
"$TOUR"
