#!/usr/bin/env bash
# Installs upcall from build dir $1 into a scratch prefix, then builds and runs a separate
# project against it twice: through find_package(upcall) and through pkg-config, and checks
# that a std program ported by a namespace swap prints what the std original prints. Prints
# the plain "N passed, N failed" line.
set -uo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
check() {  # name, command...
  local name=$1
  shift
  if "$@" >"$work/$name.log" 2>&1; then
    passed=$((passed + 1))
    echo "install: $name ok"
  else
    failed=$((failed + 1))
    echo "install: $name FAILED"
    cat "$work/$name.log"
  fi
}
check install cmake --install "$build" --prefix "$work/prefix"
check find_package bash -c "cmake -S '$here/consumer' -B '$work/consumer' -G Ninja \
  -DCMAKE_PREFIX_PATH='$work/prefix' && cmake --build '$work/consumer' && \
  '$work/consumer/consumer' | grep -q 'consumer: sum=5050'"
check ported_by_namespace_swap bash -c "'$work/consumer/ported_std' > '$work/std.out' && \
  '$work/consumer/ported_upcall' > '$work/upcall.out' && test -s '$work/std.out' && \
  diff '$work/std.out' '$work/upcall.out'"
libdir=$(ls -d "$work"/prefix/lib*/pkgconfig 2>/dev/null | head -n1)
check pkg_config bash -c "PKG_CONFIG_PATH='$libdir' g++ -std=c++20 '$here/consumer/main.cpp' \
  -o '$work/pc_consumer' \$(PKG_CONFIG_PATH='$libdir' pkg-config --cflags --libs upcall) \
  -Wl,-rpath,'$work/prefix/lib' && '$work/pc_consumer' | grep -q 'consumer: sum=5050'"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
