#!/bin/sh
# confd.sh — the side by side with confd (bench/bench_confd.c): finds or
# builds a confd binary, then runs the benchmark with CONFD pointing at it.
# Without Go or confd's source it prints "confd: skipped: <why>" and exits 0.
#
#   CONFD=/path/to/confd       use this binary
#   CONFD_SRC=/path/to/source  build from this checkout (vendored modules)
#   otherwise                  clone confd's public repository (60 s at most)
#
# The build is offline (GOFLAGS=-mod=vendor, GOPROXY=off): confd vendors its
# modules, and the Go module proxy may not be reachable. Usage:
#   bench/confd.sh ./bench/bench_confd      (make bench-confd does this)
set -u
bench=${1:?usage: confd.sh path/to/bench_confd}
skip() { echo "confd: skipped: $*"; exit 0; }

if [ -z "${CONFD:-}" ]; then
	command -v go >/dev/null 2>&1 || skip "no Go toolchain (apt-get install golang-go)"
	work=$(mktemp -d "${TMPDIR:-/tmp}/confd-build.XXXXXX") || skip "no temp dir"
	trap 'rm -rf "$work"' EXIT INT TERM
	src=${CONFD_SRC:-}
	if [ -z "$src" ]; then
		src=$work/src
		timeout 60 git clone -q --depth 1 https://github.com/kelseyhightower/confd "$src" >"$work/clone.log" 2>&1 ||
			skip "cannot fetch confd's source (set CONFD_SRC to a checkout): $(tail -n 1 "$work/clone.log")"
	fi
	[ -f "$src/go.mod" ] || skip "$src is not confd's source (no go.mod)"
	echo "confd: building from $src with $(go version)"
	(cd "$src" && GOFLAGS=-mod=vendor GOPROXY=off GOCACHE="$work/cache" GOPATH="$work/gopath" \
		timeout 600 go build -o "$work/confd" .) >"$work/build.log" 2>&1 ||
		skip "the build failed: $(tail -n 3 "$work/build.log" | tr '\n' ' ')"
	CONFD=$work/confd
fi
[ -x "$CONFD" ] || skip "$CONFD is not an executable"
CONFD=$CONFD "$bench"
