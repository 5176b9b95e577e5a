#!/usr/bin/env bash
# bench/colocation/run.sh: the co-location experiment (README "Core reallocation"): a server
# under the load generator at several offered loads, next to a SCHED_IDLE antagonist, with the
# upcall server in park mode (congestion grants), always spinning, in SCHED_IDLE poll mode, and
# as plain kernel threads; prints a table and writes results.csv + colocation.png (gnuplot-nox).
# Start it from one session (not through setsid): with autogroups, SCHED_IDLE only ranks a
# thread within its session (see colocation.py).
#
#   bash bench/colocation/run.sh [BUILD_DIR] [options of colocation.py]
#
# Examples:
#   bash bench/colocation/run.sh build                        # echo protocol, upcall echo server
#   bash bench/colocation/run.sh build --protocol memcached   # upcall memcached-server vs memcached
#   bash bench/colocation/run.sh build --rates 5000,20000,50000 --duration 20 --out /tmp/coloc
# Defaults: --protocol echo, --rates 2000,10000,30000, --duration 10 (s), --conns 50, all CPUs,
# port 23100. Needs the build's examples (echo-server, loadgen, antagonist, memcached-server for
# --protocol memcached) and bench/echo's upcall_echo_epoll; `python3 colocation.py --help`
# lists every option (--server / --kernel-server / --antagonist take any command).
# Run it on a quiet machine; as root the upcall servers get the bpf activation backend.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=build
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then BUILD=$1; shift; fi
exec python3 "$HERE/colocation.py" --build "$BUILD" "$@"
