# upcall: thin wrapper around CMake. The README's two commands are `make demo` and `make test`.
# Each target first makes sure the Debian packages it needs are installed: as root it installs
# them (running `apt-get update` when an install fails); otherwise it prints the exact
# `apt-get install` line and stops.
SHELL := /bin/bash
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

# Build and test dependencies (DESIGN.md "Dependencies").
DEPS := cmake ninja-build g++ pkg-config libboost-context-dev libboost-fiber-dev \
        libgtest-dev googletest libbenchmark-dev liburing-dev libbpf-dev bpftool clang llvm \
        libelf-dev zlib1g-dev
# memcached-server's tests: the real memcached and its clients (tests/memcached), telnet, the
# libFuzzer runtime for the parser fuzzer, and gnuplot for loadgen's sweep plot test.
DEPS += memcached libmemcached-tools python3 python3-pymemcache telnet libclang-rt-14-dev \
        gnuplot-nox
DEPS += librocksdb-dev
# Only for `make bench`: the Asio and Go peers of the echo benchmark (bench/echo); gnuplot and
# memcached (the kernel-thread peer) for bench/colocation.
BENCH_DEPS := libasio-dev golang-go gnuplot-nox memcached

.PHONY: all deps bench-deps build test test-long test-sanitizers demo bench install clean

all: build

# install_missing <packages>: as root installs the missing ones; otherwise prints the apt-get
# line and fails.
define install_missing
	@missing=""; \
	for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "upcall: missing Debian packages. Run as root:"; \
	    echo "  apt-get update && apt-get install -y$$missing"; \
	    exit 1; \
	  fi; \
	  echo "upcall: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q$$missing || { apt-get update -q && apt-get install -y -q$$missing; } \
	    || { echo "upcall: apt-get install failed"; exit 1; }; \
	fi
endef

deps:
	$(call install_missing,$(DEPS))

bench-deps:
	$(call install_missing,$(BENCH_DEPS))

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

# The test suite: unit, std, channel, kernel and stress labels, and an install of the package
# consumed by another CMake project. Tests that need the CPU to themselves run serially.
test: build
	cd $(BUILD) && ctest --output-on-failure -j 2 --timeout 600
	bash tests/install/check_install.sh $(BUILD)

# Longer suites: the whole test suite again under ThreadSanitizer and AddressSanitizer.
test-long: test-sanitizers

test-sanitizers: deps
	cmake -S . -B $(BUILD)-tsan -G Ninja -DUPCALL_SANITIZE=thread -DUPCALL_BUILD_BENCH=OFF \
	  -DUPCALL_BUILD_EXAMPLES=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD)-tsan -j $(JOBS)
	cd $(BUILD)-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  ctest --output-on-failure -j 2 --timeout 900
	cmake -S . -B $(BUILD)-asan -G Ninja -DUPCALL_SANITIZE=address -DUPCALL_BUILD_BENCH=OFF \
	  -DUPCALL_BUILD_EXAMPLES=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS="detect_leaks=1" ctest --output-on-failure -j 2 --timeout 900

demo: build
	bash examples/demo/demo.sh $(BUILD)

# Benchmarks: a Release build, results to compare with bench/RESULTS.md. bench/run.sh ends with
# the echo comparison (bench/echo/run.sh), whose Asio and Go peers need BENCH_DEPS.
bench: deps bench-deps
	cmake -S . -B $(BUILD)-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DUPCALL_BUILD_TESTS=OFF \
	  -DUPCALL_BUILD_BENCH=ON -DUPCALL_BUILD_EXAMPLES=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD)-bench -j $(JOBS)
	bash bench/run.sh $(BUILD)-bench

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD)-tsan $(BUILD)-asan $(BUILD)-bench
