#!/usr/bin/env bash
# bench_smoke.sh - build the benchmarks, run each once with a tiny iteration
# count / scale under LD_PRELOAD=$LIB, print PASS/FAIL bench_<name>.
# No timing is checked: only that it runs, exits 0 and reports its result.
# Env (from scripts/run-tests): LIB = libbuddyslab.so, BUILD = build dir.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
LIB=${LIB:-$top/build/libbuddyslab.so}
BUILD=${BUILD:-$top/build}
case $LIB in /*) ;; *) LIB=$PWD/$LIB ;; esac
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
bin=$BUILD/bench
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

if make -s -C "$top" B="$BUILD" bench-build >"$tmp/build.log" 2>&1; then
	echo "PASS bench_build"
else
	echo "FAIL bench_build"; tail -n 20 "$tmp/build.log" >&2; exit 1
fi
if [ ! -f "$LIB" ]; then echo "SKIP bench_run: $LIB not built"; exit 0; fi

check() {   # name, command... : PASS when it exits 0, preloads cleanly and $want matches
	local name=$1; shift
	if LD_PRELOAD=$LIB timeout -k 2 15 "$@" >"$tmp/out" 2>"$tmp/err" &&
	   ! grep -q 'cannot be preloaded' "$tmp/err" && grep -Eq "$want" "$tmp/out"; then
		echo "PASS bench_$name"
	else
		echo "FAIL bench_$name"
		{ printf '  reproduce: LD_PRELOAD=%q' "$LIB"; printf ' %q' "$@"; echo; } >&2
		tail -n 5 "$tmp/out" "$tmp/err" >&2
	fi
}

families=$("$bin/micro" --benchmark_list_tests | sed 's|/.*||' | uniq)
for f in $families; do
	want="^$f" BENCH_ITERS=2 check "micro_$f" "$bin/micro" "--benchmark_filter=^$f(/|\$)"
done
for w in "$top"/bench/work/*.c; do
	w=$(basename "$w" .c)
	want="^RESULT name=$w " check "$w" "$bin/$w" -s 0.01
done
