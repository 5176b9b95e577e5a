#!/bin/bash
# bench/memcached/run.sh [build-dir]: memcached-server next to memcached 1.6, the same loadgen,
# the same machine, one sweep with the two servers alternated step by step.
#
# Workload (the issue's): 90% get / 10% set, 16 B keys, 32 B values, 10,000 keys (all set before
# the sweep, so gets hit), 50 connections, open loop with Poisson arrivals, latency from each
# request's intended send time. Both servers get 2 threads (memcached -t 2, ours -t 2 = 2 upcall
# cores) and are not pinned: the client shares the 2 CPUs with them, as in the issue's figures.
# Both servers run for the whole sweep on their own ports; upcall_loadgen --sweep alternates
# them within every step (order reversed every other step), so machine noise hits both alike.
#
# Output (OUT, default bench/memcached/out-<time>): sweep.csv (one row per step and server),
# sweep.png (p50/p99/p99.9 against offered load, both servers), sweep.png.gp, and on stdout the
# per-server summary: the highest offered load whose p99 <= P99_US with every request answered,
# and the p99 at about half that load. `uptime` before and after: measure on a quiet machine.
#
# Environment (defaults): RATES (5k,10k,20k,30k,40k,50k,60k,70k,80k,100k,120k), DURATION (5),
# WARMUP (1), CONNS (50), P99_US (500), PORT_BASE (21100), MEMCACHED (/usr/bin/memcached),
# SERVER ($B/examples/memcached-server/upcall_memcached_server), LOADGEN
# ($B/examples/loadgen/upcall_loadgen), SERVER_FLAGS (extra flags for ours, e.g.
# --upcall-idle=park).
set -eu
B=${1:-build-bench}
RATES=${RATES:-5k,10k,20k,30k,40k,50k,60k,70k,80k,100k,120k}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-50}
P99_US=${P99_US:-500}
PORT_BASE=${PORT_BASE:-21100}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
SERVER=${SERVER:-$B/examples/memcached-server/upcall_memcached_server}
LOADGEN=${LOADGEN:-$B/examples/loadgen/upcall_loadgen}
SERVER_FLAGS=${SERVER_FLAGS:-}
OUT=${OUT:-bench/memcached/out-$(date -u +%Y%m%d-%H%M%S)}

for f in "$MEMCACHED" "$SERVER" "$LOADGEN"; do
  [ -x "$f" ] || { echo "bench/memcached: missing $f (build with: make bench, or cmake --build $B)"; exit 2; }
done
command -v gnuplot >/dev/null || { echo "bench/memcached: gnuplot missing (apt-get install gnuplot-nox)"; exit 2; }
mkdir -p "$OUT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() {  # wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s)
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/memcached: nothing listens on port $1"; exit 2
}

MC_PORT=$PORT_BASE
UP_PORT=$((PORT_BASE + 1))
user_flag=()
[ "$(id -u)" = 0 ] && user_flag=(-u root)  # memcached refuses to run as root without -u
"$MEMCACHED" -t 2 -p "$MC_PORT" -l 127.0.0.1 -U 0 -m 1024 -c 4096 "${user_flag[@]}" &
pids+=($!)
# shellcheck disable=SC2086
"$SERVER" -t 2 -p "$UP_PORT" -l 127.0.0.1 -U 0 -m 1024 -c 4096 $SERVER_FLAGS >"$OUT/server.log" 2>&1 &
pids+=($!)
wait_port "$MC_PORT"
wait_port "$UP_PORT"

echo "bench/memcached: $(uptime)"
echo "bench/memcached: memcached $("$MEMCACHED" -V | cut -d' ' -f2) -t 2 on :$MC_PORT, memcached-server -t 2 on :$UP_PORT ($(head -c 200 "$OUT/server.log" | tr '\n' ' '))"
"$LOADGEN" --protocol memcached --get-ratio 0.9 --key-size 16 --value-size 32 --keys 10000 \
  --conns "$CONNS" --duration "$DURATION" --warmup "$WARMUP" --sweep "$RATES" \
  --target "memcached-server=127.0.0.1:$UP_PORT" --target "memcached=127.0.0.1:$MC_PORT" \
  --slo-us "$P99_US" --csv "$OUT/sweep.csv" --plot "$OUT/sweep.png"
echo "bench/memcached: $(uptime)"
echo "bench/memcached: results in $OUT (sweep.csv, sweep.png)"
