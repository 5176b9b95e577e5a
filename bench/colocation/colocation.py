#!/usr/bin/env python3
"""bench/colocation/colocation.py: the co-location experiment of core reallocation (README
"Core reallocation", runtime/DESIGN.md section 15). Run it through bench/colocation/run.sh.

A latency-critical server runs under the open-loop load generator (examples/loadgen) at several
offered loads, next to a batch antagonist (examples/antagonist, --mode=threads --policy=idle:
SCHED_IDLE threads, so the kernel gives them only what the server leaves; at nice 0 they would
time-slice with the server). Three servers on the same CPUs:
  park    the upcall server, UPCALL_IDLE=park: idle cores park at once, congestion grants
  spin    the upcall server with every core always spinning at normal priority
          (UPCALL_IDLE=spin:1000000, grants off): the latency reference
  poll    the upcall server, UPCALL_IDLE=poll, grants off: idle cores poll at SCHED_IDLE, so
          they share the CPU with the SCHED_IDLE antagonist as equals
  kernel  plain kernel threads: the epoll server of bench/echo (echo), or memcached itself
          (memcached protocol), pinned to the same CPUs with taskset
Per offered load it measures:
  1. the park server alone: its CPU time over the measured run (/proc/<pid>/stat utime+stime),
     so "CPU the server does not need" = cores x wall - that CPU time;
  2. the antagonist alone: its solo rate (units/s);
  3. each server with the antagonist: the server's p50/p99/p99.9 (loadgen --json) and the
     antagonist's units/s.
Criteria (the issue's): antagonist rate >= 0.8 x solo x (unneeded CPU / (cores x wall)) with
the park server, and the park server's p99 within 2x of the always-spinning server's p99.
Prints a table, writes results.csv and colocation.png (gnuplot) into the output directory.

Everything runs in this script's session: with autogroups on (kernel.sched_autogroup_enabled),
SCHED_IDLE only ranks a thread within its session's group, so an antagonist started from
another session (another terminal, setsid) competes with the server as an equal.

The load generator shares the machine: on a 2-CPU machine it runs on the same CPUs (at normal
priority), so part of "cores x wall" goes to it; the table shows the server's own CPU time.
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def die(msg):
    print(f"colocation: {msg}", file=sys.stderr)
    sys.exit(2)


def cpu_seconds(pid):
    """utime + stime of a process and its threads (fields 14, 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def wait_port(port, proc, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def parse_cpus(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out += list(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


class Server:
    def __init__(self, argv, env, port, log):
        self.argv, self.env, self.port, self.log = argv, env, port, log
        self.proc = None

    def __enter__(self):
        # Same session as the antagonist and the load generator: with autogroups
        # (kernel.sched_autogroup_enabled=1) a new session is a scheduling group of its own, and
        # SCHED_IDLE only ranks a thread within its group; the antagonist's group would then
        # take its fair half of the CPU from the server's (measured: the server got ~2%).
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self.log, stderr=self.log)
        if not wait_port(self.port, self.proc):
            self.stop()
            die(f"server did not listen on port {self.port}: {' '.join(self.argv)} "
                f"(see {self.log.name})")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc):
        self.stop()


def start_loadgen(a, port, rate):
    argv = [a.loadgen, "--port", str(port), "--protocol", a.protocol, "--rate", str(rate),
            "--conns", str(a.conns), "--duration", f"{a.duration}s", "--warmup", "1s", "--json"]
    return argv, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def loadgen_result(argv, proc):
    out, err = proc.communicate(timeout=a_timeout(argv))
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        die(f"loadgen failed ({proc.returncode}): {' '.join(argv)}\n{err.strip()}")
    return json.loads(lines[-1])


def a_timeout(argv):
    return float(argv[argv.index("--duration") + 1].rstrip("s")) + 60


def start_antagonist(a, duration):
    argv = shlex.split(a.antagonist) + [f"--cpus={a.cpus}", f"--duration={duration}s",
                                        "--mode=threads", "--policy=idle", "--json"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def antagonist_rate(proc):
    out, err = proc.communicate(timeout=120)
    lines = [l for l in out.splitlines() if l.strip().startswith("{")]
    if proc.returncode != 0 or not lines:
        die(f"antagonist failed ({proc.returncode}): {err.strip()}")
    return float(json.loads(lines[-1])["units_per_sec"])


def server_argv(a, mode, port):
    ncpu = len(parse_cpus(a.cpus))
    env = dict(os.environ)
    fmt = {"port": port, "cpus": a.cpus, "threads": ncpu}
    if mode == "kernel":
        cmd = a.kernel_server.format(**fmt)
        return ["taskset", "-c", a.cpus] + shlex.split(cmd), env
    env["UPCALL_IDLE"] = "spin:1000000" if mode == "spin" else mode
    env["UPCALL_CONGESTION_US"] = str(a.congestion_us if mode == "park" else 0)
    return shlex.split(a.server.format(**fmt)), env


def measure(a, mode, rate, with_antagonist, log):
    """One run. The antagonist runs (and the server's CPU time is taken) exactly over the load
    generator's measured interval: it starts when the 1 s warm-up ends and lasts --duration."""
    # A fresh port per run: a server's listening port may linger (TIME_WAIT, a slow exit).
    measure.runs = getattr(measure, "runs", 0) + 1
    port = a.port + measure.runs
    argv, env = server_argv(a, mode, port)
    with Server(argv, env, port, log) as s:
        time.sleep(0.3)
        lg_argv, lg = start_loadgen(a, port, rate)
        time.sleep(1.0)  # the warm-up
        c0, t0 = cpu_seconds(s.proc.pid), time.time()
        if with_antagonist:
            rate_ant = antagonist_rate(start_antagonist(a, a.duration))
        else:
            rate_ant = None
            time.sleep(a.duration)
        c1, t1 = cpu_seconds(s.proc.pid), time.time()
        res = loadgen_result(lg_argv, lg)
    return {"p50": res["p50_us"], "p99": res["p99_us"], "p999": res["p999_us"],
            "achieved": res["achieved_rps"], "timeouts": res["timeouts"], "failed": res["failed"],
            "server_cpu_s": c1 - c0, "wall_s": t1 - t0, "antagonist": rate_ant}


def plot(out_dir, rows, modes):
    if not shutil.which("gnuplot"):
        print("colocation: gnuplot not found (apt-get install gnuplot-nox): no plot")
        return
    data = os.path.join(out_dir, "plot.dat")
    with open(data, "w") as f:
        for r in rows:
            f.write(" ".join(str(x) for x in [r["rate"]] +
                             [r[m]["p99"] for m in modes] + [r[m]["antagonist"] for m in modes] +
                             [r["expected_antagonist"]]) + "\n")
    n = len(modes)
    p99 = ", ".join(f"'{data}' u 1:{i + 2} w lp t '{m}'" for i, m in enumerate(modes))
    ant = ", ".join(f"'{data}' u 1:{n + i + 2} w lp t '{m}'" for i, m in enumerate(modes))
    ant += f", '{data}' u 1:{2 * n + 2} w l dt 2 t 'its share x solo'"
    script = f"""set terminal pngcairo size 1100,450 noenhanced
set output '{os.path.join(out_dir, "colocation.png")}'
set multiplot layout 1,2 title 'co-location: server next to a SCHED_IDLE antagonist'
set xlabel 'offered load (req/s)'
set ylabel 'server p99 (us)'
set logscale y
set key top left
plot {p99}
unset logscale y
set ylabel 'antagonist (units/s)'
plot {ant}
unset multiplot
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        print(f"colocation: gnuplot failed: {r.stderr.strip()}")
    else:
        print(f"plot: {os.path.join(out_dir, 'colocation.png')}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default="build")
    p.add_argument("--protocol", choices=["echo", "memcached"], default="echo")
    p.add_argument("--rates", default="2000,10000,30000", help="offered loads, req/s")
    p.add_argument("--duration", type=float, default=10, help="measured seconds per run")
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--cpus", default=None, help="server and antagonist CPUs (default: all)")
    p.add_argument("--port", type=int, default=23100, help="first port; each run takes the next")
    p.add_argument("--congestion-us", type=int, default=5)
    p.add_argument("--modes", default="park,spin,poll,kernel")
    p.add_argument("--server", default=None,
                   help="upcall server command; {port} {cpus} {threads} are replaced")
    p.add_argument("--kernel-server", default=None,
                   help="kernel-thread server command; {port} {cpus} {threads} are replaced")
    p.add_argument("--antagonist", default=None, help="antagonist command (the contract of "
                   "examples/antagonist: --cpus --duration --mode --policy --json)")
    p.add_argument("--loadgen", default=None)
    p.add_argument("--out", default="colocation-out")
    a = p.parse_args()
    b = a.build
    if a.cpus is None:
        a.cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    if a.protocol == "echo":
        a.server = a.server or f"{b}/examples/echo-server/upcall_echo_server --port {{port}} " \
                               f"--upcall-cpus={{cpus}}"
        a.kernel_server = a.kernel_server or f"{b}/bench/echo/upcall_echo_epoll --port {{port}} " \
                                             f"--threads {{threads}}"
    else:
        a.server = a.server or f"{b}/examples/memcached-server/upcall_memcached_server " \
                               f"-p {{port}} -t {{threads}} --upcall-cpus={{cpus}}"
        # -u root: memcached refuses to run as root without -u (ignored when not root).
        a.kernel_server = a.kernel_server or "memcached -p {port} -t {threads} -U 0 -l 127.0.0.1 -u root"
    a.antagonist = a.antagonist or f"{b}/examples/antagonist/upcall_antagonist"
    a.loadgen = a.loadgen or f"{b}/examples/loadgen/upcall_loadgen"
    modes = a.modes.split(",")
    for m in modes:
        if m not in ("park", "spin", "poll", "kernel"):
            die(f"--modes: unknown mode '{m}' (park, spin, poll, kernel)")
    for what, cmd in (("server", a.server), ("kernel server", a.kernel_server),
                      ("antagonist", a.antagonist), ("loadgen", a.loadgen)):
        exe = shlex.split(cmd)[0]
        if not (shutil.which(exe) or os.access(exe, os.X_OK)):
            die(f"{what} not found: {exe} (build it, or pass --{what.replace(' ', '-')})")
    rates = [int(float(x)) for x in a.rates.split(",")]
    ncores = len(parse_cpus(a.cpus))
    os.makedirs(a.out, exist_ok=True)
    log = open(os.path.join(a.out, "servers.log"), "w")
    print(f"co-location: protocol={a.protocol} cpus={a.cpus} rates={rates} "
          f"duration={a.duration}s conns={a.conns}; load average "
          f"{open('/proc/loadavg').read().split()[0]} (compare only runs from a quiet machine)")
    ant = start_antagonist(a, a.duration)
    solo = antagonist_rate(ant)
    print(f"antagonist alone: {solo:.0f} units/s")
    rows = []
    for rate in rates:
        row = {"rate": rate}
        alone = measure(a, "park", rate, False, log)
        unneeded = max(0.0, ncores * alone["wall_s"] - alone["server_cpu_s"])
        frac = unneeded / (ncores * alone["wall_s"])
        row["server_alone_cpu_s"] = alone["server_cpu_s"]
        row["unneeded_frac"] = frac
        row["expected_antagonist"] = solo * frac
        for m in modes:
            row[m] = measure(a, m, rate, True, log)
        rows.append(row)
        print(f"  rate {rate}: done")
    # Table.
    print()
    hdr = f"{'rate':>7} {'unneeded':>8} |"
    for m in modes:
        hdr += f" {m + ' p99':>10} {m + ' p99.9':>11} {m + ' ant/s':>11} |"
    hdr += f" {'ant/expected':>12} {'p99 park/spin':>13}"
    print(hdr)
    csv = ["rate,unneeded_frac,expected_antagonist," + ",".join(
        f"{m}_p50,{m}_p99,{m}_p999,{m}_achieved,{m}_antagonist,{m}_server_cpu_s" for m in modes)]
    for r in rows:
        line = f"{r['rate']:>7} {r['unneeded_frac'] * 100:7.0f}% |"
        for m in modes:
            line += f" {r[m]['p99']:10.1f} {r[m]['p999']:11.1f} {r[m]['antagonist']:11.0f} |"
        ratio = (r["park"]["antagonist"] / r["expected_antagonist"]
                 if "park" in modes and r["expected_antagonist"] > 0 else float("nan"))
        p99r = (r["park"]["p99"] / r["spin"]["p99"]
                if "park" in modes and "spin" in modes and r["spin"]["p99"] > 0 else float("nan"))
        line += f" {ratio:12.2f} {p99r:13.2f}"
        print(line)
        csv.append(",".join(str(x) for x in [r["rate"], r["unneeded_frac"], r["expected_antagonist"]] +
                            sum(([r[m]["p50"], r[m]["p99"], r[m]["p999"], r[m]["achieved"],
                                  r[m]["antagonist"], r[m]["server_cpu_s"]] for m in modes), [])))
    print("\ncriteria: ant/expected >= 0.8 (park server; expected = solo rate x unneeded share), "
          "p99 park/spin <= 2")
    with open(os.path.join(a.out, "results.csv"), "w") as f:
        f.write("\n".join(csv) + "\n")
    print(f"csv: {os.path.join(a.out, 'results.csv')}")
    plot(a.out, rows, modes)


if __name__ == "__main__":
    main()
