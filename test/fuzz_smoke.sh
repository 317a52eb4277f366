#!/usr/bin/env bash
# fuzz_smoke.sh - the libFuzzer harness (test/fuzz/) against this build's flavour:
# build it (BSL_DEBUG=1 for a build dir named .../debug), check that buddyslab went
# in renamed (no unprefixed allocation symbol defined), run the committed corpus
# (also with the caches off and immediate purging), run the known crash reproducers
# (SKIP while they still crash), then fuzz a fixed number of runs with -seed=1 from
# a scratch copy of the corpus. Nothing here checks a time.
# Env (from scripts/run-tests): BUILD = build dir (the fuzzer goes to BUILD/fuzz/).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
fz=$BUILD/fuzz
RUNS=${FUZZ_SMOKE_RUNS:-1000}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

if ! command -v clang >/dev/null; then
	echo "FAIL fuzz_build: clang missing (scripts/install-deps test installs clang)"; exit 1
fi
rt=$(clang --print-runtime-dir 2>/dev/null)/libclang_rt.fuzzer-x86_64.a
if [ ! -f "$rt" ]; then
	echo "FAIL fuzz_build: no libFuzzer runtime ($rt; package libclang-rt-14-dev)"; exit 1
fi
if make -s -j2 -C "$top" B="$BUILD" fuzz-build >"$tmp/build.log" 2>&1; then
	echo "PASS fuzz_build"
else
	echo "FAIL fuzz_build"; tail -n 20 "$tmp/build.log" >&2; exit 1
fi

# Every standard name the library exports (src/exports.map, bsl_* aside) must be
# defined only with the fz_ prefix in buddyslab's objects. The C++ operators
# (_Z* names, src/cxx.c) are not built into the fuzzer at all (test/fuzz/fuzz.mk):
# none of them may be defined, prefixed or not.
exported=$(sed -n '/global:/,/local:/p' "$top/src/exports.map" | sed 's@/\*.*\*/@@' | tr ';' '\n' |
	sed 's/global://; s/local:.*//; s/[[:space:]]//g' | grep -v -e '^$' -e '^bsl_')
names=$(printf '%s\n' $exported | grep -v '^_Z')
cxx_names=$(printf '%s\n' $exported | grep '^_Z')
names="$names $(sed -n 's/.*EXPORT [^(]*[ *]\([A-Za-z_0-9]*\)(.*alias(.*/\1/p' "$top/src/malloc.c")"
nm --defined-only "$fz"/obj/*.o 2>/dev/null | grep -v fuzz_malloc | awk 'NF == 3 { print $3 }' |
	sort -u >"$tmp/defined"
bad=""
for n in $names; do
	grep -qx "$n" "$tmp/defined" && bad="$bad $n(defined)"
	grep -qx "fz_$n" "$tmp/defined" || bad="$bad fz_$n(missing)"
done
count=$(printf '%s\n' $names | sort -u | wc -l)
for n in malloc free __libc_malloc mallopt; do   # the lists were read
	printf '%s\n' $names | grep -qx "$n" || bad="$bad $n(not in the lists)"
done
[ "$(printf '%s\n' $cxx_names | wc -l)" -eq 20 ] || bad="$bad (not 20 C++ operators in exports.map)"
for n in $cxx_names; do
	grep -q -e "^$n\$" -e "^fz_$n\$" "$tmp/defined" && bad="$bad $n(C++ operator in the fuzzer)"
done
if [ -z "$bad" ]; then
	echo "PASS fuzz_prefix ($count names, each defined only as fz_<name>)"
else
	echo "FAIL fuzz_prefix:$bad"
fi

run_corpus() {   # name, env...
	local name=$1; shift
	if env "$@" "$fz/fuzzer" "$top"/test/fuzz/corpus/* >"$tmp/$name.log" 2>&1; then
		echo "PASS $name ($(ls "$top/test/fuzz/corpus" | wc -l) inputs)"
	else
		echo "FAIL $name"; grep -E '^(fuzz_malloc|buddyslab|Running|==)' "$tmp/$name.log" | tail -n 15 >&2
	fi
}
run_corpus fuzz_corpus
run_corpus fuzz_corpus_slowpaths BUDDYSLAB_CONF=tcache:0,decay_ms:0,large_cache:0

# Known bugs (test/fuzz/README.md): each reproducer still crashing is a SKIP; once
# it runs clean, move it into corpus/ and drop its steering in fuzz_malloc.c.
# slow/ is not run here: its inputs are only slow, and no test checks a time.
for c in "$top"/test/fuzz/crashes/*; do
	[ -f "$c" ] || continue
	if FUZZ_KNOWN_BUGS=1 "$fz/fuzzer" "$c" >"$tmp/crash.log" 2>&1; then
		echo "PASS fuzz_crash_$(basename "$c"): runs clean now"
	else
		echo "SKIP fuzz_crash_$(basename "$c"): known bug, still crashes (test/fuzz/README.md)"
	fi
done

mkdir -p "$tmp/corpus" "$fz/artifacts"
cp "$top"/test/fuzz/corpus/* "$tmp/corpus/"
if "$fz/fuzzer" -seed=1 -runs="$RUNS" -print_final_stats=1 -artifact_prefix="$fz/artifacts/" \
	"$tmp/corpus" >"$tmp/run.log" 2>&1; then
	echo "PASS fuzz_run ($(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/run.log") runs," \
		"$(grep -o 'cov: [0-9]*' "$tmp/run.log" | tail -n 1))"
else
	echo "FAIL fuzz_run (-seed=1 -runs=$RUNS; the input is in $fz/artifacts/)"
	grep -E '^(fuzz_malloc|buddyslab|==|SUMMARY|artifact_prefix)' "$tmp/run.log" | tail -n 15 >&2
fi
