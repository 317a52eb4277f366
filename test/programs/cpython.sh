#!/usr/bin/env bash
# cpython.sh - CPython 3.11's own regression suite, every test file, under the allocator
# under test, with PYTHONMALLOC=malloc so that every Python object goes through it.
#
# Debian's interpreter, /usr/bin/python3.11, and its suite (libpython3.11-testsuite):
# never the python3 on PATH, which may be another build. Steps:
#  1. the whole suite: python3.11 -m test -j2 --timeout 300 -i '*VSOCK*', default
#     resources (none: no GUI, network, largefile or cpu-heavy cases). The VSOCK cases are
#     ignored by pattern, not by file: on a VM with /dev/vsock and no peer
#     ThreadedVSOCKSocketStreamTest hangs under any allocator, and the rest of
#     test_socket still runs.
#  2. each file that did not pass there (failed, crashed, timed out) is decided alone,
#     one file per run, never by a list written in advance:
#       run 1 under $ALLOC                       passes -> PASS (noted: failed only in -j2)
#       (buddyslab) once under glibc             fails  -> SKIP: fails under glibc too
#       runs 2 and 3 under $ALLOC                one passes -> PASS (noted: flaky)
#       every run under $ALLOC failed            -> FAIL
#     so a file counts against buddyslab only when it failed in the -j2 run, in all
#     three runs alone under buddyslab, and passed under glibc. Every decision is
#     printed with the runs' results and the tail of the last failing output.
# Cases: "PASS cpython/test_x" per file that passed, "SKIP cpython/test_x: why" per
# file regrtest skipped (its reason is in its log) or that fails under glibc too,
# "FAIL cpython/test_x" per file decided against the allocator; "cpython-alloc" proves
# the allocator (libbuddyslab in the interpreter's maps, or not for glibc), and
# "cpython-regrtest" fails when the suite itself did not finish (no summary).
# CPYTHON_TESTS="test_a test_b" runs those files only (by hand, while debugging).
# With PROGRAMS_RESULTS set (scripts/run-programs), the counts go to
# $PROGRAMS_RESULTS/cpython.$ALLOC for the comparison table.
. "$(dirname "$0")/lib.bash"
PY=/usr/bin/python3.11
if ! [ -x $PY ] || ! $PY -c 'import test.libregrtest, test.test_grammar' 2>/dev/null; then
	skip cpython "no $PY with its test suite (package libpython3.11-testsuite)"; exit 0
fi
ARGS=(--timeout 300 -i '*VSOCK*')
JOBS=${CPYTHON_JOBS:-2}
read -r -a SELECT <<<"${CPYTHON_TESTS:-}"   # by hand only: a few files instead of all
SUITE_TIMEOUT=${CPYTHON_SUITE_TIMEOUT:-3000}   # seconds for the whole -j2 run
DEADLINE=${CPYTHON_DEADLINE:-4200}   # seconds from the start after which no rerun starts
# The suite's own view of a clean environment: no PYTHON* variable of the caller's
# (PYTHONUNBUFFERED or PYTHONDONTWRITEBYTECODE fail test_cmd_line and test_compileall
# under any allocator), only PYTHONMALLOC=malloc.
for v in $(compgen -e | grep '^PYTHON'); do unset "$v"; done
export PYTHONMALLOC=malloc
mkdir -p "$T/work" "$T/tmp"

# Which allocator the interpreter runs on, as seen from inside it.
under "$ALLOC" $PY -c 'import sys; open(sys.argv[1], "w").write(open("/proc/self/maps").read())' "$T/py.maps"
check_maps cpython "$T/py.maps"

# run_suite ALLOC LOG SECONDS ARGS... : regrtest in its own working and temp directory
run_suite() {
	local a=$1 log=$2 secs=$3; shift 3
	rm -rf "$T/work" "$T/tmp"; mkdir -p "$T/work" "$T/tmp"
	( cd "$T/work" && TMPDIR="$T/tmp" under "$a" timeout -k 30 "$secs" \
		$PY -m test "${ARGS[@]}" "$@" ) >"$log" 2>&1
}
joined() { local IFS=';'; echo "$*" | sed 's/;/; /g'; }

note "cpython: $PY -m test -j$JOBS ${ARGS[*]} under $ALLOC, PYTHONMALLOC=malloc ($(date +%T))"
start=$(date +%s)
run_suite "$ALLOC" "$T/suite.log" "$SUITE_TIMEOUT" -j"$JOBS" "${SELECT[@]}"
rc=$?
note "cpython: the -j$JOBS run took $(($(date +%s) - start)) s, exit status $rc"
$PY -m test --list-tests "${ARGS[@]}" "${SELECT[@]}" >"$T/all.txt" 2>/dev/null

# The summary regrtest prints at the end: "N tests failed:" and the names below it, etc.
/usr/bin/python3 - "$T/suite.log" "$T/all.txt" "$T" <<'PY'
import re, sys
log, all_txt, out = sys.argv[1:]
text = open(log, errors="replace").read()
sections = {"failed": [], "skipped": [], "run no tests": [], "altered": [], "omitted": []}
ok = 0
if "== Tests result:" not in text:
    open(out + "/nosummary", "w").close()
summary = text.split("== Tests result:")[-1]
cur = None
for line in summary.splitlines():
    m = re.match(r"(?:All )?(\d+) tests? OK\.$", line)
    if m:
        ok = int(m.group(1)); cur = None; continue
    m = re.match(r"\d+ tests? (failed|skipped|run no tests|altered the execution environment|omitted):$", line)
    if m:
        cur = m.group(1).split()[0] if m.group(1).startswith("altered") else m.group(1); continue
    if cur and line.startswith("    "):
        sections[cur] += line.split()
    else:
        cur = None
names = [l.strip() for l in open(all_txt) if l.strip().startswith("test")]
notgood = set().union(*sections.values())
good = [n for n in names if n not in notgood]
for key, lst in [("good", good)] + list(sections.items()):
    with open(out + "/" + key.replace(" ", "_") + ".txt", "w") as f:
        f.write("".join(n + "\n" for n in lst))
with open(out + "/okcount", "w") as f:
    f.write("%s %d\n" % (ok, len(good)))
PY

if [ -e "$T/nosummary" ]; then
	fail_tail cpython-regrtest "$T/suite.log" "the -j$JOBS run ended without its summary (exit status $rc)"
	finish
fi
pass cpython-regrtest
read -r ok_printed ok_derived <"$T/okcount"
note "cpython: the -j$JOBS run: $ok_printed files OK, $(wc -l <"$T/failed.txt") failed," \
	"$(wc -l <"$T/skipped.txt") skipped, $(wc -l <"$T/run_no_tests.txt") ran no tests," \
	"$(wc -l <"$T/altered.txt") altered the environment (counted as passed)," \
	"$(wc -l <"$T/omitted.txt") omitted, of $(wc -l <"$T/all.txt")"
if [ "$ok_printed" != "$ok_derived" ]; then
	note "cpython: regrtest counted $ok_printed files OK, the list less the others gives $ok_derived"
fi

npass=0 nfail=0 nskip=0 flaky=() both=() against=() crashed=()
while read -r t; do pass "cpython/$t"; npass=$((npass + 1)); done < <(cat "$T/good.txt")
while read -r t; do
	why=$(sed -n "s/^$t skipped -- //p" "$T/suite.log" | head -n 1)
	skip "cpython/$t" "regrtest skipped it: ${why:-see its log}"
	nskip=$((nskip + 1))
done < <(cat "$T/skipped.txt")
while read -r t; do skip "cpython/$t" "regrtest: it ran no test"; nskip=$((nskip + 1)); done <"$T/run_no_tests.txt"

# alone ALLOC TEST N : one file alone; its log is $T/alone.TEST.ALLOC.N. Past the
# deadline no rerun starts and the files left undecided fail: a run that long has
# gone wrong (in CI, make test-programs must end within CI's 90 minutes).
alone() {
	run_suite "$1" "$T/alone.$2.$1.$3" 600 -W "$2"
}
late() { [ $(($(date +%s) - start)) -gt "$DEADLINE" ]; }
explain() {   # log: its failing cases and fatal errors, then its last lines before the summary
	echo "    --- $(basename "$1"): failing cases and fatal errors"
	grep -E '^(FAIL|ERROR): |^Fatal Python error|^buddyslab|^Timeout \(| crashed \(Exit code' "$1" | head -n 20 | sed 's/^/    | /'
	echo "    --- its last 40 lines before the summary"
	sed '/^== Tests result/,$d' "$1" | tail -n 40 | sed 's/^/    | /'
}

while read -r t; do
	[ -n "$t" ] || continue
	runs=() verdict=
	how=$(grep -oE "\] $t (crashed|timed out|failed)[^)]*\)?" "$T/suite.log" | tail -n 1 | sed "s/^\] $t //")
	if grep -qxF "$t" "$T/omitted.txt"; then runs=("-j$JOBS: omitted"); else runs=("-j$JOBS: ${how:-failed}"); fi
	case $how in crashed*) crashed+=("$t") ;; esac
	last="$T/suite.log"
	for n in 1 2 3; do
		if late; then runs+=("no time left for run #$n (CPYTHON_DEADLINE=$DEADLINE s)"); verdict=late; break; fi
		if alone "$ALLOC" "$t" $n; then runs+=("alone under $ALLOC #$n: pass"); verdict=pass; break; fi
		runs+=("alone under $ALLOC #$n: fail"); last="$T/alone.$t.$ALLOC.$n"
		if [ $n = 1 ] && [ "$ALLOC" = buddyslab ]; then
			if late; then runs+=("no time left for the glibc run"); verdict=late; break; fi
			if alone glibc "$t" 1; then runs+=("alone under glibc: pass")
			else runs+=("alone under glibc: fail"); verdict=both; break; fi
		fi
	done
	case $verdict in
	pass)
		if [ ${#runs[@]} -gt 2 ]; then flaky+=("$t"); fi
		note "cpython: $t: $(joined "${runs[@]}") -> PASS (not counted against $ALLOC)"
		pass "cpython/$t"; npass=$((npass + 1)) ;;
	both)
		note "cpython: $t: $(joined "${runs[@]}") -> fails under glibc too: SKIP"
		explain "$T/alone.$t.glibc.1" | head -n 30
		skip "cpython/$t" "fails under glibc too"; nskip=$((nskip + 1)); both+=("$t") ;;
	*)
		note "cpython: $t: $(joined "${runs[@]}") -> FAIL"
		why="failed in the -j$JOBS run and in all 3 runs alone under $ALLOC"
		[ "$ALLOC" = buddyslab ] && why="$why, passed alone under glibc"
		[ "$verdict" = late ] && why="failed in the -j$JOBS run and not decided before the deadline"
		fail "cpython/$t" "$why"; explain "$last"
		nfail=$((nfail + 1)); against+=("$t") ;;
	esac
done < <(cat "$T/failed.txt" "$T/omitted.txt")

note "cpython: $npass files passed, $nfail failed, $nskip skipped under $ALLOC; took $(($(date +%s) - start)) s"
note "cpython: passed only on a rerun alone after failing again: ${flaky[*]:-none}"
note "cpython: fail under glibc too: ${both[*]:-none}"
note "cpython: counted against $ALLOC: ${against[*]:-none}"
note "cpython: crashed (a signal) in the -j$JOBS run, whatever the reruns said: ${crashed[*]:-none}"
if [ -n "${PROGRAMS_RESULTS:-}" ]; then
	mkdir -p "$PROGRAMS_RESULTS"
	{
		echo "date=$(date -u +%FT%TZ) commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null)"
		echo "files=$(wc -l <"$T/all.txt")"
		echo "j2_ok=$ok_derived j2_failed=$(wc -l <"$T/failed.txt") j2_skipped=$(cat "$T/skipped.txt" "$T/run_no_tests.txt" | wc -l)"
		echo "passed=$npass failed=$nfail skipped=$nskip"
		echo "flaky=${flaky[*]:-}"
		echo "both=${both[*]:-}"
		echo "against=${against[*]:-}"
		echo "crashed=${crashed[*]:-}"
	} >"$PROGRAMS_RESULTS/cpython.$ALLOC"
fi
finish
