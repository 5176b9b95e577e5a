#!/usr/bin/python3
"""Integration tests of memcached-server with real clients, also run against the real memcached.

  mc_integration.py --server ours|memcached --bin PATH --suite NAME [--memcslap PATH]

Starts the server on a free loopback port (ours: -p 0, the port read from its "listening on"
line; memcached: a port found free just before), runs one suite, stops the server by PID.
Suites: pymemcache (every command through python3-pymemcache), errors (raw lines and the exact
error replies), pipeline, eviction (-m 2), nomem (-M), flood (connections past -c), slow (a
stalled client does not stall others), memcslap, memccapable and libmemcached (the
libmemcached-tools clients), telnet, loadgen (upcall_loadgen's memcached and sweep modes),
user (-u nobody as root; exit 77 = skipped otherwise). Exit 0 = pass; a
failure prints one line saying what differed.
"""
import argparse, os, re, signal, socket, subprocess, sys, time

ARGS = None


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Server:
    def __init__(self, extra):
        self.proc = None
        if ARGS.server == "ours":
            cmd = [ARGS.bin, "-p", "0", "-l", "127.0.0.1", "-t", "2", "-U", "0"] + extra
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            line = self.proc.stdout.readline()
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if not m:
                err = self.proc.stderr.read() if self.proc.poll() is not None else ""
                fail("server did not start: %r %r" % (line, err))
            self.port = int(m.group(1))
        else:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
            s.close()
            cmd = [ARGS.bin, "-p", str(self.port), "-l", "127.0.0.1", "-t", "2", "-U", "0", "-u", "root"] + extra
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                fail("memcached did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)


def conn(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def talk(port, data, expect_len=None, wait=0.5, until=None):
    """Sends data on a fresh connection; returns what came back: everything up to end of stream,
    or the first expect_len bytes, or up to the reply ending in `until`, each waiting up to 10 s
    (a loaded machine); without any of them, until `wait` seconds pass quietly."""
    s = conn(port)
    s.sendall(data)
    out = b""
    bounded = expect_len is not None or until is not None
    s.settimeout(10 if bounded else wait)
    try:
        while True:
            b = s.recv(1 << 20)
            if not b:
                out += b"<EOF>"
                break
            out += b
            if expect_len is not None and len(out) >= expect_len:
                break
            if until is not None and out.endswith(until):
                break
    except socket.timeout:
        pass
    s.close()
    return out


def suite_pymemcache(srv):
    from pymemcache.client.base import Client
    c = Client(("127.0.0.1", srv.port), connect_timeout=5, timeout=5, default_noreply=False)
    check(c.version().startswith(b"1."), "version")
    check(c.flush_all() is True, "flush_all")
    # set/get, flags via the serde-less client (bytes), get_many
    check(c.set("a", b"1") is True, "set")
    check(c.get("a") == b"1", "get after set")
    check(c.get("missing") is None, "get miss")
    c.set("b", b"two")
    check(c.get_many(["a", "b", "nope"]) == {"a": b"1", "b": b"two"}, "get_many")
    # add / replace
    check(c.add("a", b"x") is False, "add existing -> NOT_STORED")
    check(c.add("c", b"3") is True, "add new")
    check(c.replace("zz", b"x") is False, "replace missing")
    check(c.replace("c", b"33") is True and c.get("c") == b"33", "replace existing")
    # append / prepend
    check(c.append("c", b"4") is True and c.get("c") == b"334", "append")
    check(c.prepend("c", b"2") is True and c.get("c") == b"2334", "prepend")
    check(c.append("nokey", b"x") is False, "append missing")
    # cas: success, conflict, missing
    v, cas = c.gets("c")
    check(v == b"2334" and cas is not None, "gets")
    check(c.cas("c", b"new", cas) is True, "cas with the current unique")
    check(c.cas("c", b"again", cas) is False, "cas with a stale unique -> EXISTS")
    check(c.get("c") == b"new", "value after cas conflict")
    check(c.cas("nokey", b"v", b"1") is None, "cas on a missing key -> NOT_FOUND")
    _, cas2 = c.gets("c")
    check(cas2 != cas, "cas unique changes on update")
    r = c.gets_many(["a", "c"])
    check(set(r) == {"a", "c"} and r["c"][0] == b"new", "gets_many")
    # delete
    check(c.delete("a") is True and c.get("a") is None, "delete")
    check(c.delete("a") is False, "delete missing -> NOT_FOUND")
    # incr / decr incl. wrap, floor, non-numeric and missing
    c.set("n", b"10")
    check(c.incr("n", 5) == 15, "incr")
    check(c.decr("n", 20) == 0, "decr stops at 0")
    c.set("n", b"18446744073709551615")
    check(c.incr("n", 2) == 1, "incr wraps at 2^64")
    check(c.incr("nokey", 1) is None, "incr missing")
    c.set("s", b"abc")
    try:
        c.incr("s", 1)
        fail("incr on non-numeric value did not fail")
    except Exception as e:
        check("non-numeric" in str(e), "incr non-numeric error: %s" % e)
    out = talk(srv.port, b"incr n abc\r\n", until=b"\r\n")
    check(out == b"CLIENT_ERROR invalid numeric delta argument\r\n", "bad delta: %r" % out)
    # noreply: replies suppressed, effects happen
    c.set("q", b"quiet", noreply=True)
    c.delete("nonexistent", noreply=True)
    c.incr("n", 1, noreply=True)
    check(c.get("q") == b"quiet", "set noreply took effect")
    # memcached may pad a value that got shorter with spaces (protocol.txt allows it).
    check(c.get("n").rstrip() == b"2", "incr noreply took effect")
    out = talk(srv.port, b"set k 0 0 1 noreply\r\nx\r\nappend k 0 0 1 noreply\r\ny\r\nget k\r\n",
               until=b"END\r\n")
    check(out == b"VALUE k 0 2\r\nxy\r\nEND\r\n", "raw noreply: %r" % out)
    # 100 kB values
    big = bytes(range(256)) * 400  # 102400 bytes
    check(c.set("big", big) is True and c.get("big") == big, "100 kB value")
    # touch and expiry (incl. negative = expired at once, absolute unix time)
    c.set("e", b"v", expire=2)
    check(c.get("e") == b"v", "value present before expiry")
    c.set("neg", b"v", expire=-1)
    check(c.get("neg") is None, "negative exptime expires at once")
    c.set("abs", b"v", expire=int(time.time()) + 2)
    c.set("absp", b"v", expire=2592001)  # over 30 days: a Unix time, long past
    check(c.get("absp") is None, "absolute exptime in the past expires at once")
    c.set("t", b"v", expire=2)
    check(c.touch("t", 100) is True, "touch existing")
    check(c.touch("nokey", 10) is False, "touch missing")
    time.sleep(3.2)
    check(c.get("e") is None, "expired after exptime")
    check(c.get("abs") is None, "expired after absolute exptime")
    check(c.get("t") == b"v", "touch extended the exptime")
    out = talk(srv.port, b"gat 100 t\r\ngats 100 t\r\nversion\r\n", until=b"\r\nVERSION ")
    out = out[:out.rindex(b"VERSION ")] if b"VERSION " in out else out
    check(re.fullmatch(rb"VALUE t 0 1\r\nv\r\nEND\r\nVALUE t 0 1 \d+\r\nv\r\nEND\r\n", out), "gat/gats: %r" % out)
    # flags
    out = talk(srv.port, b"set f 4294967295 0 1\r\nz\r\nget f\r\n", until=b"END\r\n")
    check(out == b"STORED\r\nVALUE f 4294967295 1\r\nz\r\nEND\r\n", "flags: %r" % out)
    # stats
    st = c.stats()
    for k in [b"pid", b"uptime", b"curr_items", b"total_items", b"bytes", b"curr_connections",
              b"total_connections", b"cmd_get", b"cmd_set", b"get_hits", b"get_misses",
              b"evictions", b"limit_maxbytes", b"threads"]:
        check(k in st, "stats lacks %s" % k)
    check(st[b"get_hits"] > 0 and st[b"get_misses"] > 0 and st[b"cmd_set"] > 10, "stats counts: %r" % st)
    check(st[b"pid"] == srv.proc.pid, "stats pid")
    check(st[b"limit_maxbytes"] == 64 * 1024 * 1024, "limit_maxbytes")
    # verbosity, flush_all (now and delayed), quit
    check(talk(srv.port, b"verbosity 0\r\n", until=b"\r\n") == b"OK\r\n", "verbosity")
    check(c.flush_all() is True and c.get("b") is None and c.get("big") is None, "flush_all")
    c.set("d", b"v")
    # memcached rounds the flush time down by a second on a clock it updates once a second.
    check(talk(srv.port, b"flush_all 4\r\n", until=b"\r\n") == b"OK\r\n", "delayed flush_all")
    check(c.get("d") == b"v", "item visible before the delayed flush")
    time.sleep(5.2)
    check(c.get("d") is None, "item gone after the delayed flush")
    c.set("after", b"v")
    check(c.get("after") == b"v", "items stored after the flush time stay")
    check(talk(srv.port, b"quit\r\nget after\r\n", expect_len=1 << 30) == b"<EOF>", "quit closes without a reply")
    c.quit()


# Raw request -> exact reply, as memcached 1.6.18 answers (verified against it by this suite).
ERRORS = [
    (b"\r\n", b"ERROR\r\n"),
    (b"bogus\r\n", b"ERROR\r\n"),
    (b"GET k\r\n", b"ERROR\r\n"),
    (b"\x00\x01\x02garbage\r\n", b"ERROR\r\n"),
    (b"set k\r\n", b"ERROR\r\n"),
    (b"get\r\n", b"ERROR\r\n"),
    (b"incr k\r\n", b"ERROR\r\n"),
    (b"touch k\r\n", b"ERROR\r\n"),
    (b"cas k 0 0 1\r\nx\r\n", b"ERROR\r\nERROR\r\n"),
    (b"set k 0 0 1 2 3\r\nx\r\n", b"ERROR\r\nERROR\r\n"),
    (b"set k 0 0 x\r\nab\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    (b"set k 0 0 -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"set k abc 0 1\r\nx\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    (b"set " + b"k" * 251 + b" 0 0 1\r\nx\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    (b"get " + b"k" * 251 + b"\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"cas k 0 0 1 abc\r\nx\r\n", b"CLIENT_ERROR bad command line format\r\nERROR\r\n"),
    (b"set k 0 0 2\r\nabc\r\nget k\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"),
    (b"set k 0 0 2000000\r\n" + b"x" * 2000000 + b"\r\nget k\r\n",
     b"SERVER_ERROR object too large for cache\r\nEND\r\n"),
    (b"set n 0 0 2\r\nab\r\nincr n 1\r\n",
     b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
    (b"incr n -1\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
    (b"incr n 18446744073709551616\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
    (b"delete k 5\r\n", b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
    (b"delete k 0\r\n", b"NOT_FOUND\r\n"),
    (b"flush_all x\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (b"touch k x\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (b"verbosity\r\nverbosity x\r\n", b"ERROR\r\nCLIENT_ERROR bad command line format\r\n"),
    (b"set k abc 0 1 noreply\r\nx\r\n", b"ERROR\r\n"),
    (b"set k 0 0 1 noreply\r\nxy\r\nget k\r\n", b"ERROR\r\nEND\r\n"),
    (b"shutdown\r\n", b"ERROR: shutdown not enabled\r\n"),
    (b"stats bogus\r\n", b"ERROR\r\n"),
    (b"stats reset\r\n", b"RESET\r\n"),
    (b"set k 0 0 1\nx\r\nget k\n", b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n"),
    (b"set  k  0 0 1\r\nx\r\nget  k \r\n", b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n"),
    (b"set n 0 0 3\r\n12 \r\nincr n 1\r\n", b"STORED\r\n13\r\n"),
]


def suite_errors(srv):
    for req, want in ERRORS:
        talk(srv.port, b"flush_all\r\n", until=b"\r\n")
        got = talk(srv.port, req, expect_len=len(want))
        check(got == want, "%r: want %r, got %r" % (req[:60], want, got[:200]))
    # A connection survives every error above: all on one connection, then a good command.
    s = conn(srv.port)
    s.sendall(b"".join(r for r, _ in ERRORS if len(r) < 1000) + b"set ok 0 0 2\r\nok\r\nget ok\r\n")
    s.settimeout(5)
    buf = b""
    while not buf.endswith(b"VALUE ok 0 2\r\nok\r\nEND\r\n"):
        b = s.recv(65536)
        check(b, "connection closed while replying to bad input: %r" % buf[-200:])
        buf += b
    s.close()
    # A line over 2048 bytes that is not a get: memcached closes the connection; we say why first.
    out = talk(srv.port, b"x" * 3000, expect_len=1 << 30)  # until the close
    want = b"<EOF>" if ARGS.server == "memcached" else b"CLIENT_ERROR line too long\r\n<EOF>"
    check(out == want, "long line: %r" % out[:100])
    # A long get line is fine.
    out = talk(srv.port, b"get " + b"a " * 1500 + b"\r\n", until=b"\r\n")
    check(out == b"END\r\n", "long get line: %r" % out[:100])
    # Binary garbage: an error or a close, and the server still serves.
    talk(srv.port, bytes(range(256)) * 16)
    check(talk(srv.port, b"version\r\n", until=b"\r\n").startswith(b"VERSION "), "server alive after garbage")


def suite_pipeline(srv):
    s = conn(srv.port)
    n = 2000
    req = b"".join(b"set p%d 0 0 %d\r\n%d\r\n" % (i, len(b"%d" % i), i) for i in range(n))
    req += b"".join(b"get p%d\r\n" % i for i in range(n))
    s.sendall(req)
    want = b"STORED\r\n" * n + b"".join(b"VALUE p%d 0 %d\r\n%d\r\nEND\r\n" % (i, len(b"%d" % i), i) for i in range(n))
    got = b""
    s.settimeout(10)
    while len(got) < len(want):
        b = s.recv(1 << 20)
        check(b, "closed mid-pipeline")
        got += b
    check(got == want, "pipelined replies differ")
    s.close()


def suite_eviction(srv):
    from pymemcache.client.base import Client
    c = Client(("127.0.0.1", srv.port), connect_timeout=5, timeout=5, default_noreply=False)
    value = b"v" * 10000
    n = 800  # 8 MB through a 2 MB cache
    for i in range(n):
        check(c.set("ev%d" % i, value) is True, "set %d under memory pressure" % i)
    st = c.stats()
    check(st[b"evictions"] > 0, "no evictions: %r" % st)
    check(st[b"bytes"] <= 2 * 1024 * 1024, "bytes over -m: %d" % st[b"bytes"])
    check(c.get("ev0") is None, "oldest item survived")
    check(c.get("ev%d" % (n - 1)) == value, "newest item evicted")
    # LRU, not FIFO: an item kept hot survives while newer ones push the others out.
    c.set("hot", value)
    for i in range(n):
        c.set("ev2_%d" % i, value)
        if i % 20 == 0:
            check(c.get("hot") == value, "hot item evicted at %d" % i)


def suite_nomem(srv):
    from pymemcache.client.base import Client
    c = Client(("127.0.0.1", srv.port), connect_timeout=5, timeout=5, default_noreply=False)
    value = b"v" * 10000
    for i in range(400):
        try:
            c.set("nm%d" % i, value)
        except Exception as e:
            check("out of memory storing object" in str(e), "wrong error: %s" % e)
            check(c.get("nm0") == value, "-M evicted the oldest item")
            out = talk(srv.port, b"set x 0 0 10000\r\n" + value + b"\r\n", until=b"\r\n")
            check(out == b"SERVER_ERROR out of memory storing object\r\n", "raw: %r" % out)
            return
    fail("-M -m 2: 4 MB stored without an out-of-memory error")


def suite_flood(srv):
    limit = 20
    held = []
    for _ in range(limit // 4):  # memcached counts a few descriptors of its own against -c
        s = conn(srv.port)
        s.sendall(b"version\r\n")
        check(s.recv(100).startswith(b"VERSION"), "connection under the limit works")
        held.append(s)
    refused = 0
    extra = []
    for _ in range(limit * 3):
        try:
            s = conn(srv.port)
        except OSError:
            refused += 1
            continue
        extra.append(s)
    for s in extra:
        s.settimeout(2)
        try:
            s.sendall(b"version\r\n")
            got = b""
            while True:
                b = s.recv(100)
                if not b:
                    break
                got += b
                if got.startswith(b"VERSION") and got.endswith(b"\r\n"):
                    break
        except OSError:
            got = b"<reset>"
        if got == b"ERROR Too many open connections\r\n":
            refused += 1
        else:
            check(got.startswith(b"VERSION"), "a connection got neither service nor the refusal: %r" % got)
    check(refused >= limit, "only %d of %d connections past -c %d were refused" % (refused, len(extra), limit))
    for s in held:  # the ones inside the limit still work
        s.sendall(b"version\r\n")
        check(s.recv(100).startswith(b"VERSION"), "held connection broken by the flood")
    for s in held + extra:
        s.close()
    time.sleep(0.5)
    check(talk(srv.port, b"version\r\n", until=b"\r\n").startswith(b"VERSION"), "new connection after the flood closed")


def suite_slow(srv):
    # One client sends half a request and stops; another requests a 500 kB value again and again
    # and never reads. Neither may stall a third client.
    stalled = conn(srv.port)
    stalled.sendall(b"set half 0 0 100\r\nonly part")
    talk(srv.port, b"set huge 0 0 500000\r\n" + b"h" * 500000 + b"\r\n", until=b"\r\n")
    hog = conn(srv.port)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.settimeout(0.5)
    try:
        for _ in range(200):
            hog.send(b"get huge\r\n" * 10)
    except OSError:
        pass
    t0 = time.time()
    for i in range(200):
        out = talk(srv.port, b"set s%d 0 0 1\r\nx\r\nget s%d\r\n" % (i, i), until=b"END\r\n")
        check(out == b"STORED\r\nVALUE s%d 0 1\r\nx\r\nEND\r\n" % i, "third client: %r" % out)
    check(time.time() - t0 < 30, "third client took %.1f s for 200 round trips" % (time.time() - t0))
    stalled.close()
    hog.close()


def suite_memcslap(srv):
    srvs = "--servers=127.0.0.1:%d" % srv.port
    for test in ("set", "get"):
        r = subprocess.run([ARGS.memcslap, srvs, "--concurrency=8", "--execute-number=500",
                            "--test=" + test], capture_output=True, text=True, timeout=120)
        out = r.stdout + r.stderr
        check(r.returncode == 0, "memcslap --test=%s exit %d: %s" % (test, r.returncode, out[-500:]))
        check(re.search(r"Time to %s +\d+ keys by +8 threads" % test, out), "memcslap output: %s" % out[-500:])
        check("fail" not in out.lower() and "error" not in out.lower(), "memcslap reported errors: %s" % out[-500:])
    from pymemcache.client.base import Client
    st = Client(("127.0.0.1", srv.port), timeout=5).stats()
    check(st[b"cmd_set"] >= 8 * 500 and st[b"cmd_get"] >= 8 * 500, "memcslap traffic not seen in stats: %r" % st)


def tool(name):
    return os.path.join(os.path.dirname(ARGS.memcslap), name)


def suite_memccapable(srv):
    # libmemcached's own protocol conformance tester, ASCII part (we speak no binary protocol).
    r = subprocess.run([tool("memccapable"), "-a", "-h", "127.0.0.1", "-p", str(srv.port), "-t", "10"],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    check(r.returncode == 0 and "All tests passed" in out, "memccapable: %s" % out[-800:])
    check("[pass]" in out and "[fail]" not in out, "memccapable: %s" % out[-800:])


def suite_libmemcached(srv):
    # The libmemcached command-line clients, file in, file out.
    import tempfile
    srvs = "--servers=127.0.0.1:%d" % srv.port
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "blob.bin")
        data = os.urandom(200000)
        with open(path, "wb") as f:
            f.write(data)
        def run(*a):
            r = subprocess.run([tool(a[0])] + list(a[1:]), capture_output=True, timeout=60, cwd=d)
            return r.returncode, r.stdout, r.stderr
        rc, out, err = run("memccp", srvs, path)
        check(rc == 0, "memccp: %r" % err)
        rc, out, err = run("memccat", srvs, "blob.bin")
        # memccat ends its output with a newline of its own.
        check(rc == 0 and out in (data, data + b"\n"), "memccat returned %d bytes, rc %d: %r" % (len(out), rc, err[:200]))
        rc, out, err = run("memcexist", srvs, "blob.bin")
        check(rc == 0, "memcexist of a stored key: rc %d" % rc)
        rc, out, err = run("memctouch", srvs, "--expire=100", "blob.bin")
        check(rc == 0, "memctouch: rc %d %r" % (rc, err))
        rc, out, err = run("memcstat", srvs)
        check(rc == 0 and b"curr_items" in out and b"pid" in out, "memcstat: %r" % out[:300])
        rc, out, err = run("memcrm", srvs, "blob.bin")
        check(rc == 0, "memcrm: %r" % err)
        rc, out, err = run("memcexist", srvs, "blob.bin")
        check(rc != 0, "memcexist after memcrm says the key exists")
        run("memccp", srvs, path)
        rc, out, err = run("memcflush", srvs)
        check(rc == 0, "memcflush: %r" % err)
        rc, out, err = run("memccat", srvs, "blob.bin")
        check(rc != 0 or out == b"", "memccat after memcflush still got the value")


def suite_telnet(srv):
    # What a person types into telnet: lines with CRLF, a value, the replies on the terminal.
    # telnet sends each typed newline as CRLF and shows CRLF replies as newlines.
    script = b"set greeting 0 0 5\nhello\nget greeting\nbogus\nincr greeting 1\n"
    p = subprocess.Popen(["telnet", "127.0.0.1", str(srv.port)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    p.stdin.write(script)
    p.stdin.flush()
    time.sleep(1.0)
    p.stdin.close()  # telnet exits at end of input
    out = p.stdout.read()
    p.wait(10)
    want = (b"STORED\nVALUE greeting 0 5\nhello\nEND\nERROR\n"
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\n")
    check(want in out, "telnet session: %r" % out)


def suite_loadgen(srv):
    # upcall_loadgen's memcached mode: every get checked byte for byte, no mismatch, no failure;
    # then a two-step sweep with CSV and PNG.
    import json, tempfile
    lg = ARGS.loadgen
    r = subprocess.run([lg, "--port", str(srv.port), "--protocol", "memcached", "--conns", "8",
                        "--rate", "2000", "--duration", "1", "--warmup", "0.2", "--keys", "500",
                        "--key-size", "16", "--value-size", "100", "--get-ratio", "0.9",
                        "--timeout", "10", "--json"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "loadgen exit %d: %s" % (r.returncode, r.stderr))
    j = json.loads(r.stdout)
    # Correctness only (the machine may be loaded): every measured request answered, none wrong.
    check(j["mismatches"] == 0 and j["failed"] == 0 and j["timeouts"] == 0 and
          j["completed"] == j["requests"] and j["completed"] > 500, "loadgen: %r" % j)
    from pymemcache.client.base import Client
    st = Client(("127.0.0.1", srv.port), timeout=5).stats()
    check(st[b"curr_items"] >= 500, "preload did not set every key: %r" % st[b"curr_items"])
    check(st[b"get_hits"] > 0.9 * st[b"cmd_get"], "gets missed: %r" % st)
    with tempfile.TemporaryDirectory() as d:
        csv, png = os.path.join(d, "s.csv"), os.path.join(d, "s.png")
        r = subprocess.run([lg, "--protocol", "memcached", "--conns", "4", "--duration", "0.5",
                            "--warmup", "0.1", "--keys", "100", "--sweep", "500,1000",
                            "--target", "a=127.0.0.1:%d" % srv.port, "--target", "b=127.0.0.1:%d" % srv.port,
                            "--timeout", "10", "--csv", csv, "--plot", png],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, "sweep exit %d: %s %s" % (r.returncode, r.stdout, r.stderr))
        rows = open(csv).read().splitlines()
        check(rows[0].startswith("target,offered_rps,") and len(rows) == 5, "csv: %r" % rows)
        check([x.split(",")[0] for x in rows[1:]] == ["a", "b", "b", "a"], "targets not alternated: %r" % rows)
        check(open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n", "no PNG written")
        check("sweep: a: " in r.stdout and "sweep: b: " in r.stdout, "no SLO summary: %s" % r.stdout)


def suite_user(srv):
    # -u: a root server switches to the user after binding and still serves.
    with open("/proc/%d/status" % srv.proc.pid) as f:
        uid = next(line.split()[1] for line in f if line.startswith("Uid:"))
    import pwd
    check(int(uid) == pwd.getpwnam("nobody").pw_uid, "-u nobody: the server runs as uid %s" % uid)
    out = talk(srv.port, b"set u 0 0 1\r\nx\r\nget u\r\n", until=b"END\r\n")
    check(out == b"STORED\r\nVALUE u 0 1\r\nx\r\nEND\r\n", "after -u: %r" % out)


SUITES = {
    "pymemcache": (suite_pymemcache, []),
    "errors": (suite_errors, []),
    "pipeline": (suite_pipeline, []),
    "eviction": (suite_eviction, ["-m", "2"]),
    "nomem": (suite_nomem, ["-m", "2", "-M"]),
    "flood": (suite_flood, ["-c", "20"]),
    "slow": (suite_slow, []),
    "memcslap": (suite_memcslap, []),
    "memccapable": (suite_memccapable, []),
    "libmemcached": (suite_libmemcached, []),
    "telnet": (suite_telnet, []),
    "loadgen": (suite_loadgen, []),
    "user": (suite_user, ["-u", "nobody"]),
}


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--server", choices=["ours", "memcached"], required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--suite", choices=sorted(SUITES), required=True)
    p.add_argument("--memcslap", default="/usr/bin/memcslap")
    p.add_argument("--loadgen", default="")
    ARGS = p.parse_args()
    fn, extra = SUITES[ARGS.suite]
    if ARGS.suite == "user" and os.geteuid() != 0:
        print("SKIP: -u only switches users when the server starts as root")
        sys.exit(77)
    if ARGS.suite == "flood" and ARGS.server == "memcached":
        extra = ["-c", "40"]  # memcached's own descriptors (pipes, epoll, listener) count too
    srv = Server(extra)
    try:
        fn(srv)
        check(srv.proc.poll() is None, "server exited during the suite")
    finally:
        srv.stop()
    print("PASS %s against %s" % (ARGS.suite, ARGS.server))


if __name__ == "__main__":
    main()
