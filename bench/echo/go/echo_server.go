// upcall_echo_go: the Go peer of upcall's echo server (bench/echo/run.sh): one goroutine per
// connection, each reading into its own 64 KiB buffer and writing back what it read, on Go's
// netpoller. GOMAXPROCS is set to --threads (alias --cores); Go cannot pin its threads, so the
// harness pins the whole process with taskset. The copy is an explicit Read/Write loop, not
// io.Copy, which on Linux may splice(2) socket to socket inside the kernel and would not be the
// user-space echo the other servers do.
//
//	upcall_echo_go --port N [--threads N | --cores N] [--host 127.0.0.1]
//
// --port 0 picks a free port; prints "upcall_echo_go: listening on HOST:PORT threads=N" once
// listening. Runs until killed. Built by bench/echo/CMakeLists.txt with GO111MODULE=off
// (standard library only, nothing downloaded).
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
)

func serve(c net.Conn) {
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	buf := make([]byte, 64*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	port := flag.Int("port", -1, "port to listen on (0 picks a free port)")
	threads := flag.Int("threads", 1, "GOMAXPROCS")
	flag.IntVar(threads, "cores", 1, "alias of --threads")
	host := flag.String("host", "127.0.0.1", "address to listen on")
	flag.Parse()
	if *port < 0 || *port > 65535 || *threads < 1 {
		fmt.Fprintln(os.Stderr, "upcall_echo_go: usage: --port N [--threads N] [--host ADDR]")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(*threads)
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "upcall_echo_go: %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("upcall_echo_go: listening on %s threads=%d\n", ln.Addr().String(), *threads)
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go serve(c)
	}
}
