# lib.bash - sourced by every test/programs/*.sh: the allocator to run under, case
# lines, free ports, waiting for servers, proof of which allocator a process has.
#
# Env (from scripts/run-programs, or set by hand):
#   LIB        libbuddyslab.so to preload (default: build/libbuddyslab.so of this checkout)
#   BUILD      the build directory (default: the directory of LIB)
#   BSL_GLIBC  1 = run everything without buddyslab (glibc's malloc), for comparison
# Gives the scripts:
#   $ALLOC           "buddyslab" or "glibc": the allocator under test
#   ALLOC_ENV        the env command that puts a program on $ALLOC: "${ALLOC_ENV[@]}" CMD &
#                    leaves $! the program's own pid (env execs it), which under's does not
#   $T               a temporary directory, removed at exit (world-readable, so an
#                    unprivileged server can be given a subdirectory of it)
#   pass/fail/skip   print "PASS name" / "FAIL name" / "SKIP name: why"; fail's further
#                    arguments go to stdout as indented lines, and fail_tail NAME FILE
#                    WHY... adds FILE's last lines, so a failed CI log explains itself
#   note             a line that is not a case (decisions, figures)
#   free_port        a TCP port on 127.0.0.1 that nothing listens on
#   wait_port P S    wait up to S seconds until something accepts on 127.0.0.1:P
#   under A CMD...   run CMD with allocator A (buddyslab: LD_PRELOAD=$LIB; glibc: none)
#   check_alloc NAME PID   PASS/FAIL NAME-alloc: libbuddyslab is mapped in process PID
#                    exactly when $ALLOC is buddyslab (its /proc/PID/maps)
#   check_maps NAME FILE   the same for a copy of a process's maps that it wrote itself
#   BSL_KEEP=1       keep $T (its path is printed) to look at the logs afterwards
# Invariant: a script's exit status is 0 exactly when it printed no FAIL line.
set -u
programs_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$programs_dir/../.." && pwd)
LIB=${LIB:-$top/build/libbuddyslab.so}
case $LIB in /*) ;; *) LIB=$PWD/$LIB ;; esac
BUILD=${BUILD:-$(dirname "$LIB")}
if [ "${BSL_GLIBC:-0}" = 1 ]; then ALLOC=glibc ALLOC_ENV=(env -u LD_PRELOAD)
else ALLOC=buddyslab ALLOC_ENV=(env LD_PRELOAD="$LIB"); fi
failures=0

T=$(mktemp -d /tmp/bsl_programs.XXXXXX)
chmod 755 "$T"
cleanup_hooks=()
on_exit() { cleanup_hooks+=("$1"); }
run_cleanup() {
	local h
	for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
	if [ "${BSL_KEEP:-0}" = 1 ]; then echo "  kept $T" >&2; else rm -rf "$T"; fi
}
trap run_cleanup EXIT

pass() { echo "PASS $1"; }
fail() {
	echo "FAIL $1"; failures=$((failures + 1)); shift
	local l; for l in "$@"; do printf '    %s\n' "$l"; done
}
skip() { echo "SKIP $1: $2"; }
note() { echo "  $*"; }
fail_tail() {   # name file why... : fail, then the last $TAIL_LINES (40) lines of file
	local name=$1 file=$2 n=${TAIL_LINES:-40}; shift 2
	fail "$name" "$@"
	if [ -f "$file" ]; then
		echo "    --- last $n lines of $(basename "$file")"
		tail -n "$n" "$file" | sed 's/^/    | /'
	fi
}
finish() { [ "$failures" -eq 0 ]; exit; }

if [ "$ALLOC" = buddyslab ] && [ ! -f "$LIB" ]; then
	echo "FAIL $(basename "$0" .sh)-lib"; echo "    no library at $LIB (run make first)"; exit 1
fi

free_port() {
	/usr/bin/python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

wait_port() {   # port seconds
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

check_maps() {   # name file
	local name=$1 file=$2 mapped=no
	if [ ! -s "$file" ]; then
		fail "$name-alloc" "no process maps in $file"; return
	fi
	if grep -q 'libbuddyslab' "$file"; then mapped=yes; fi
	if { [ "$ALLOC" = buddyslab ] && [ $mapped = yes ]; } || { [ "$ALLOC" = glibc ] && [ $mapped = no ]; }; then
		pass "$name-alloc"
	else
		fail "$name-alloc" "libbuddyslab mapped: $mapped; allocator under test: $ALLOC"
	fi
}

check_alloc() {   # name pid
	cat "/proc/$2/maps" >"$T/maps.$2" 2>/dev/null
	check_maps "$1" "$T/maps.$2"
}

under() {   # buddyslab|glibc command... : run command with that allocator
	local a=$1; shift
	if [ "$a" = buddyslab ]; then env LD_PRELOAD="$LIB" "$@"; else env -u LD_PRELOAD "$@"; fi
}
