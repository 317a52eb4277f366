#!/usr/bin/env bash
# static_full.sh - the C tests linked fully statically (gcc -static): libc.a's own
# malloc must not be pulled in beside libbuddyslab.a (no duplicate symbols, no
# second heap), and the programs must behave exactly as in the normal build.
# test_fork's two signal-handler cases run in the direct builds only (time).
# Cases are reported as "static/<program>/<case>"; a program that fails to link or
# exits non-zero without a FAIL line is one FAIL.
# Env (from scripts/run-tests): BUILD = build dir holding libbuddyslab.a.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
BUILD=${BUILD:-$top/build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
lib=$BUILD/libbuddyslab.a
if [ ! -f /usr/lib/x86_64-linux-gnu/libc.a ]; then echo "SKIP static_full: no libc.a (libc6-dev)"; exit 0; fi
if [ ! -f "$lib" ]; then echo "FAIL static_full: no $lib"; exit 1; fi
tmp=$(mktemp -d /tmp/bsl_static.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
for t in test_static test_api test_threads test_fork; do
	if ! gcc -std=gnu11 -O1 -g -fno-builtin -I"$top/include" -I"$top/src" -I"$top/test" -static \
		-o "$tmp/$t" "$top/test/$t.c" "$lib" -lpthread -ldl -lm 2>"$tmp/$t.link"; then
		echo "FAIL static/$t/link"
		grep -v "warning: Using" "$tmp/$t.link" | head -n 20 >&2
		failures=$((failures + 1))
		continue
	fi
	args=(); [ $t = test_fork ] && args=(-fork_from_signal_handler -fork_from_signal_handler_bg)
	out=$(cd "$tmp" && timeout -k 5 280 "./$t" "${args[@]}" 2>"$tmp/$t.err"); rc=$?
	printf '%s\n' "$out" | sed -n -E "s@^(PASS|FAIL|SKIP) @\1 static/$t/@p"
	nf=$(printf '%s\n' "$out" | grep -c '^FAIL ')
	if [ "$nf" -gt 0 ] || [ $rc -ne 0 ]; then
		failures=$((failures + 1))
		tail -n 20 "$tmp/$t.err" | sed "s|^|  [static/$t] |" >&2
		if [ "$nf" -eq 0 ]; then echo "FAIL static/$t (exit status $rc without a FAIL line)"; fi
	fi
done
[ $failures -eq 0 ]
