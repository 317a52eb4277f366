#!/usr/bin/env bash
# report_output.sh - where buddyslab's own text goes, and which signals it takes.
#
# Cases (each a PASS/FAIL line; SKIP where a tool is missing):
#   fd2_reused_data_file        the program closes fd 2, opens a data file (it gets fd 2),
#                               writes it, exits with stats:1: the file is byte-identical,
#                               the report (with the pid in its header) is on the original stderr
#   private_fd_taken_over       the program closes every descriptor above 2 and fd 2, and puts
#                               its data file on all those numbers: the file is unchanged
#   private_fd_closed_fd2_kept  the private descriptor closed, fd 2 still the start-up stderr:
#                               the report goes to fd 2
#   abort_fd2_reused            a double free after fd 2 became a data file, with stats:1:
#                               the file is unchanged, the message is on the original stderr
#   abort_fd2_reused_no_private the same without stats: the message goes to fd 2 (the
#                               documented exception: the data file)
#   report_broken_pipe_dropped  stats:1 with stderr a pipe nobody reads: the report is dropped,
#                               the program exits 0 (not killed by SIGPIPE)
#   coreutils_<prog>            sort cat head uniq wc ls (they close stderr before exit) with
#                               stats:1: their output, and the report on stderr
#   stats_file_relative_chdir   stats_file:rel/path, the program chdirs: the report is appended
#                               under the start-up directory, nothing on stderr; twice -> 2 reports
#   stats_file_unwritable       stats_file in a missing directory: dropped silently, exit 0
#   stats_file_fd2_reused       stats_file and a program whose fd 2 is a data file: file unchanged
#   stats_signal_11_refused     stats_signal:11 refused with a warning naming SIGSEGV; a write
#                               through NULL then kills the program with SIGSEGV
#   stats_signal_6_refused      stats_signal:6 refused (SIGABRT); abort() kills, no report
#   stats_signal_32_refused     stats_signal:32 refused: reserved by glibc
#   stats_signal_65_refused     stats_signal:65: above SIGRTMAX, the range named
#   stats_signal_10_works       stats_signal:10 (SIGUSR1) prints the report, the program goes on
#   report_one_write            strace -f -e trace=write: the exit report is one write() call,
#                               into the private descriptor (SKIP without a working strace)
#   reports_of_children_whole   9 processes exit at once with stats:1 into one file: 9 whole
#                               reports, every line well formed
#   trimmed_keys                " stats : 1 , decay_ms : 200 " is accepted, no warning
#   warning_names_key_value_range  bad values: the warning names the key, the value and the range
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
LIB=${LIB:-$top/build/libbuddyslab.so}
case $LIB in /*) ;; *) LIB=$PWD/$LIB ;; esac
tmp=$(mktemp -d /tmp/bsl_report.XXXXXX); trap 'rm -rf "$tmp"' EXIT
ulimit -c 0 2>/dev/null   # the SIGSEGV and SIGABRT cases dump no core

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; shift; for l in "$@"; do printf '  %s\n' "$l" >&2; done; }
skip() { echo "SKIP $1: $2"; }

cat > "$tmp/prog.c" <<'C'
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

static void churn(void)   /* something for the report to show */
{
	for (int i = 0; i < 1000; i++) {
		sink = malloc(16 + i % 500);
		if (i % 3)
			free(sink);
	}
}

static void put(int fd, const char *s) { if (write(fd, s, strlen(s)) < 0) _exit(5); }

static void pattern(int fd)   /* the data: 200 numbered lines */
{
	char line[64];
	for (int i = 0; i < 200; i++) {
		snprintf(line, sizeof line, "data line %d of the program's own file\n", i);
		put(fd, line);
	}
}

static void data_on_fd2(const char *path)   /* fd 2 becomes the program's data file */
{
	close(2);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd != 2)
		_exit(3);
	pattern(2);
}

static int fd_limit(void)
{
	struct rlimit r;
	if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur > 65536)
		return 65536;
	return (int)r.rlim_cur;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	const char *arg = argc > 2 ? argv[2] : "";
	printf("pid %d\n", (int)getpid());
	fflush(stdout);
	churn();
	if (!strcmp(mode, "pattern")) {
		pattern(1);
	} else if (!strcmp(mode, "fd2data")) {
		data_on_fd2(arg);
	} else if (!strcmp(mode, "takeover") || !strcmp(mode, "closeabove2")) {
		/* every descriptor above 2 (buddyslab's private one among them) */
		static int open_fds[65536];
		int n = 0, lim = fd_limit();
		for (int fd = 3; fd < lim; fd++)
			if (fcntl(fd, F_GETFD) >= 0)
				open_fds[n++] = fd;
		for (int i = 0; i < n; i++)
			close(open_fds[i]);
		if (!strcmp(mode, "takeover")) {
			data_on_fd2(arg);
			for (int i = 0; i < n; i++)
				if (dup2(2, open_fds[i]) != open_fds[i])
					_exit(4);
		}
		printf("closed %d\n", n);
	} else if (!strcmp(mode, "doublefree")) {
		data_on_fd2(arg);
		sink = malloc(32);   /* through a volatile: the compiler keeps both frees */
		free(sink);
		free(sink);
		puts("survived");
	} else if (!strcmp(mode, "chdir")) {
		if (chdir(arg) != 0)
			return 6;
	} else if (!strcmp(mode, "segv")) {
		*(volatile int *)sink = 0;   /* sink is set below to NULL first */
	} else if (!strcmp(mode, "abort")) {
		abort();
	} else if (!strcmp(mode, "raise")) {
		raise(atoi(arg));
		puts("alive");
	} else if (!strcmp(mode, "brokenpipe")) {
		/* a child (this program, preloaded too) whose stderr is a pipe nobody reads */
		int p[2];
		if (pipe(p) != 0)
			return 7;
		close(p[0]);
		pid_t pid = fork();
		if (pid == 0) {
			signal(SIGPIPE, SIG_DFL);
			dup2(p[1], 2);
			close(p[1]);
			execl(argv[0], argv[0], "quiet", (char *)NULL);
			_exit(9);
		}
		close(p[1]);
		int st;
		if (waitpid(pid, &st, 0) != pid)
			return 8;
		if (WIFEXITED(st))
			printf("child exit %d\n", WEXITSTATUS(st));
		else
			printf("child signal %d\n", WTERMSIG(st));
	} else if (!strcmp(mode, "children")) {
		/* atoi(arg) children, all exit the moment the parent closes the pipe */
		int p[2];
		if (pipe(p) != 0)
			return 7;
		int n = atoi(arg);
		for (int i = 0; i < n; i++) {
			pid_t pid = fork();
			if (pid == 0) {
				char c;
				close(p[1]);
				churn();
				if (read(p[0], &c, 1) < 0)
					_exit(8);
				exit(0);
			}
		}
		close(p[0]);
		close(p[1]);
		for (int i = 0; i < n; i++)
			wait(NULL);
	}
	fflush(stdout);
	return 0;
}
C
sed -i 's|\*(volatile int \*)sink = 0;|sink = NULL; *(volatile int *)sink = 0;|' "$tmp/prog.c"
cc -O1 -o "$tmp/prog" "$tmp/prog.c" || { fail build "cc failed"; exit 1; }
"$tmp/prog" pattern | tail -n +2 > "$tmp/expected"   # the data a program writes

# run CONF ARGS...: the program preloaded, stdout in $tmp/out, stderr in $tmp/err; rc in $rc.
# stdin is /dev/null so that fds 0 and 1 are open and a new file gets fd 2 once it is closed.
run() {
	local conf=$1; shift
	timeout -k 5 120 env LD_PRELOAD="$LIB" BUDDYSLAB_CONF="$conf" "$tmp/prog" "$@" \
		</dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	pid=$(sed -n 's/^pid //p' "$tmp/out")
}
has_report() {   # FILE PID: a whole report of process PID in FILE
	grep -q "^buddyslab stats: pid $2 allocated " "$1" && grep -q '^buddyinfo:' "$1" &&
		grep -q '^slabinfo:' "$1" && grep -q '^kmalloc-16k ' "$1"
}
nreports() { grep -c '^buddyslab stats: pid ' "$1"; }

# ------------------------------------------------------ fd 2 reused by the program
run stats:1 fd2data "$tmp/data"
if [ $rc -eq 0 ] && cmp -s "$tmp/data" "$tmp/expected" && has_report "$tmp/err" "$pid"; then
	pass fd2_reused_data_file
else
	fail fd2_reused_data_file "rc $rc; data file $(cmp "$tmp/data" "$tmp/expected" 2>&1 | head -1)" \
		"data size $(stat -c %s "$tmp/data") (want $(stat -c %s "$tmp/expected")); stderr:" \
		"$(head -n 3 "$tmp/err")"
fi

run stats:1 takeover "$tmp/data"
if [ $rc -eq 0 ] && cmp -s "$tmp/data" "$tmp/expected" && grep -q '^closed [1-9]' "$tmp/out"; then
	pass private_fd_taken_over
else
	fail private_fd_taken_over "rc $rc; $(grep closed "$tmp/out"); data $(stat -c %s "$tmp/data")" \
		"bytes (want $(stat -c %s "$tmp/expected")); tail:" "$(tail -n 2 "$tmp/data")"
fi

run stats:1 closeabove2
if [ $rc -eq 0 ] && grep -q '^closed [1-9]' "$tmp/out" && has_report "$tmp/err" "$pid"; then
	pass private_fd_closed_fd2_kept
else
	fail private_fd_closed_fd2_kept "rc $rc; $(grep closed "$tmp/out"); stderr:" "$(head -n 3 "$tmp/err")"
fi

run stats:1 doublefree "$tmp/data"
if [ $rc -eq 134 ] && cmp -s "$tmp/data" "$tmp/expected" && grep -q '^buddyslab: double free 0x' "$tmp/err"; then
	pass abort_fd2_reused
else
	fail abort_fd2_reused "rc $rc; data $(stat -c %s "$tmp/data") bytes (want $(stat -c %s "$tmp/expected"))" \
		"stderr: $(head -n 3 "$tmp/err")" "data tail: $(tail -n 2 "$tmp/data")"
fi

run "" doublefree "$tmp/data"
head -c "$(stat -c %s "$tmp/expected")" "$tmp/data" > "$tmp/data.head"
if [ $rc -eq 134 ] && cmp -s "$tmp/data.head" "$tmp/expected" &&
   tail -c +$(($(stat -c %s "$tmp/expected") + 1)) "$tmp/data" | grep -q '^buddyslab: double free 0x'; then
	pass abort_fd2_reused_no_private
else
	fail abort_fd2_reused_no_private "rc $rc; data tail:" "$(tail -n 2 "$tmp/data")"
fi

# a report into a pipe whose reader is gone is dropped: the program does not die of SIGPIPE
run stats:1 brokenpipe
if [ $rc -eq 0 ] && grep -q '^child exit 0$' "$tmp/out"; then
	pass report_broken_pipe_dropped
else
	fail report_broken_pipe_dropped "rc $rc; $(grep child "$tmp/out")"
fi

# ------------------------------------------- programs that close stderr before exit
printf 'pear\napple\nfig\napple\n' > "$tmp/in.txt"
coreutil() {   # NAME EXPECTED_STDOUT COMMAND...
	local name=$1 want=$2; shift 2
	local out
	out=$(cd "$tmp" && timeout -k 5 120 env LD_PRELOAD="$LIB" BUDDYSLAB_CONF=stats:1 "$@" \
		</dev/null 2>"$tmp/$name.err")
	local r=$?
	if ! command -v "$1" >/dev/null 2>&1; then
		skip "coreutils_$name" "$1 not installed"
	elif [ $r -eq 0 ] && [ "$out" = "$want" ] && [ "$(nreports "$tmp/$name.err")" -eq 1 ] &&
	     grep -q '^kmalloc-16 ' "$tmp/$name.err"; then
		pass "coreutils_$name"
	else
		fail "coreutils_$name" "rc $r, stdout '$out' (want '$want'); stderr:" "$(head -n 3 "$tmp/$name.err")"
	fi
}
coreutil sort "$(printf 'apple\napple\nfig\npear')" sort in.txt
coreutil cat "$(cat "$tmp/in.txt")" cat in.txt
coreutil head "$(printf 'pear\napple')" head -n 2 in.txt
coreutil uniq "$(printf 'pear\napple\nfig\napple')" uniq in.txt
coreutil wc "4 in.txt" wc -l in.txt
coreutil ls "in.txt" ls in.txt

# ---------------------------------------------------------------------- stats_file
mkdir -p "$tmp/start/rep" "$tmp/elsewhere/rep"
( cd "$tmp/start" && run stats:1,stats_file:rep/r.txt chdir "$tmp/elsewhere" &&
  echo "$rc $pid" > "$tmp/rc1" && run stats:1,stats_file:rep/r.txt chdir "$tmp/elsewhere" &&
  echo "$rc $pid" > "$tmp/rc2" )
read -r rc1 pid1 < "$tmp/rc1"; read -r rc2 pid2 < "$tmp/rc2"
if [ "$rc1" = 0 ] && [ "$rc2" = 0 ] && [ -f "$tmp/start/rep/r.txt" ] &&
   [ ! -e "$tmp/elsewhere/rep/r.txt" ] && [ "$(nreports "$tmp/start/rep/r.txt")" -eq 2 ] &&
   has_report "$tmp/start/rep/r.txt" "$pid1" && has_report "$tmp/start/rep/r.txt" "$pid2" &&
   [ ! -s "$tmp/err" ]; then
	pass stats_file_relative_chdir
else
	fail stats_file_relative_chdir "rc $rc1/$rc2; start/rep: $(ls "$tmp/start/rep")," \
		"elsewhere/rep: $(ls "$tmp/elsewhere/rep"); stderr:" "$(head -n 3 "$tmp/err")"
fi

run stats:1,stats_file:"$tmp/no/such/dir/r.txt"
if [ $rc -eq 0 ] && [ ! -s "$tmp/err" ] && [ ! -e "$tmp/no" ] && grep -q "^pid $pid" "$tmp/out"; then
	pass stats_file_unwritable
else
	fail stats_file_unwritable "rc $rc; stderr:" "$(head -n 3 "$tmp/err")"
fi

rm -f "$tmp/r2.txt"
run stats:1,stats_file:"$tmp/r2.txt" fd2data "$tmp/data"
if [ $rc -eq 0 ] && cmp -s "$tmp/data" "$tmp/expected" && has_report "$tmp/r2.txt" "$pid" &&
   [ ! -s "$tmp/err" ]; then
	pass stats_file_fd2_reused
else
	fail stats_file_fd2_reused "rc $rc; data $(stat -c %s "$tmp/data") bytes (want $(stat -c %s "$tmp/expected"))"
fi

# -------------------------------------------------------------------- stats_signal
# A refused signal is reported at start-up and no handler is installed. With the
# old behaviour, signal 11 loops (the fault repeats after each report): stderr
# goes through head, so a loop ends with SIGPIPE instead of filling the disk.
refused() {   # NAME CONF WANT_RC WORD ARGS...: warning names stats_signal, the number and WORD
	local name=$1 conf=$2 want=$3 word=$4; shift 4
	local n=${conf#stats_signal:}
	timeout -k 5 60 env LD_PRELOAD="$LIB" BUDDYSLAB_CONF="$conf" "$tmp/prog" "$@" 2>&1 >"$tmp/out" </dev/null |
		head -c 100000 > "$tmp/err"
	local r=${PIPESTATUS[0]}
	local w
	w=$(grep '^buddyslab: warning: ' "$tmp/err")
	if [ "$r" -eq "$want" ] && [ "$(grep -c '^buddyslab: warning: ' "$tmp/err")" -eq 1 ] &&
	   grep -q 'stats_signal' <<<"$w" && grep -q "\"$n\"" <<<"$w" && grep -q -- "$word" <<<"$w" &&
	   [ "$(nreports "$tmp/err")" -eq 0 ]; then
		pass "$name"
	else
		fail "$name" "rc $r (want $want), $(nreports "$tmp/err") reports; stderr:" "$(head -n 3 "$tmp/err")"
	fi
}
refused stats_signal_11_refused stats_signal:11 139 SIGSEGV segv
refused stats_signal_6_refused stats_signal:6 134 SIGABRT abort
refused stats_signal_32_refused stats_signal:32 0 glibc
refused stats_signal_65_refused stats_signal:65 0 SIGRTMAX

run stats_signal:10 raise 10
if [ $rc -eq 0 ] && grep -q '^alive' "$tmp/out" && has_report "$tmp/err" "$pid" &&
   [ "$(nreports "$tmp/err")" -eq 1 ] && ! grep -q warning "$tmp/err"; then
	pass stats_signal_10_works
else
	fail stats_signal_10_works "rc $rc; stderr:" "$(head -n 3 "$tmp/err")"
fi

# --------------------------------------------------------------- one write() each
if ! command -v strace >/dev/null 2>&1; then
	skip report_one_write "strace not installed (scripts/install-deps test installs it)"
elif ! strace -f -qq -o /dev/null -e trace=write true 2>/dev/null; then
	skip report_one_write "strace cannot trace here (no ptrace permission)"
else
	timeout -k 5 120 strace -f -qq -o "$tmp/trace" -e trace=write -E LD_PRELOAD="$LIB" \
		-E BUDDYSLAB_CONF=stats:1 "$tmp/prog" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	pid=$(sed -n 's/^pid //p' "$tmp/out")
	# the program itself writes once (its pid line, to stdout)
	nw=$(grep -c 'write(' "$tmp/trace")
	nrep=$(grep -c 'write([0-9]*, "buddyslab stats: pid' "$tmp/trace")
	if [ $rc -eq 0 ] && [ "$nw" -eq 2 ] && [ "$nrep" -eq 1 ] && has_report "$tmp/err" "$pid"; then
		pass report_one_write
	else
		fail report_one_write "rc $rc; $nw write calls (want 2: the program's and the report's):" \
			"$(grep -v 'write(1,' "$tmp/trace" | head -n 5)"
	fi
fi

# 1 parent + 8 children exit at once; stderr is one regular file
run stats:1 children 8
bad=$(grep -v -E '^(buddyslab stats: pid [0-9]+ allocated .* purges [0-9]+|buddyinfo: .*|buddyslab zone +[0-9]+ .* clean [0-9]+|slabinfo: .*|kmalloc-[0-9]+k? +[0-9 ]+)$' "$tmp/err" | head -n 3)
nk=$(grep -c '^kmalloc-' "$tmp/err")
ok=1
[ $rc -eq 0 ] && [ "$(nreports "$tmp/err")" -eq 9 ] && [ -z "$bad" ] && [ $((nk % 9)) -eq 0 ] || ok=0
# each report contiguous: header, buddyinfo:, zone lines, slabinfo:, kmalloc lines
awk 'BEGIN { s = 0; bad = 0 }
     /^buddyslab stats: pid/ { if (s != 0 && s != 4) bad = 1; s = 1; next }
     /^buddyinfo:/ { if (s != 1) bad = 1; s = 2; next }
     /^buddyslab zone/ { if (s != 2) bad = 1; next }
     /^slabinfo:/ { if (s != 2) bad = 1; s = 3; next }
     /^kmalloc-/ { if (s != 3 && s != 4) bad = 1; s = 4; next }
     { bad = 1 }
     END { exit bad }' "$tmp/err" || ok=0
if [ $ok -eq 1 ]; then
	pass reports_of_children_whole
else
	fail reports_of_children_whole "rc $rc, $(nreports "$tmp/err") reports, $nk kmalloc lines; bad lines:" "$bad"
fi

# ------------------------------------------------------------------------ the keys
run " stats : 1 , decay_ms : 200 ,stats_signal:	10 "
if [ $rc -eq 0 ] && has_report "$tmp/err" "$pid" && ! grep -q warning "$tmp/err"; then
	pass trimmed_keys
else
	fail trimmed_keys "rc $rc; stderr:" "$(head -n 3 "$tmp/err")"
fi

ok=1
check_warning() {   # CONF KEY VALUE RANGE_TEXT
	run "$1"
	local w
	w=$(grep '^buddyslab: warning: ' "$tmp/err")
	if [ $rc -ne 0 ] || [ "$(wc -l < "$tmp/err")" -ne 1 ] || ! grep -qF -- "$2" <<<"$w" ||
	   ! grep -qF "\"$3\"" <<<"$w" || ! grep -qF -- "$4" <<<"$w"; then
		ok=0
		printf '  BUDDYSLAB_CONF=%s: want key %s, value "%s", range "%s"; got: %s\n' \
			"$1" "$2" "$3" "$4" "$(cat "$tmp/err")" >&2
	fi
}
check_warning "stats:2" stats 2 "0 .. 1"
check_warning "mmap_threshold:1k" mmap_threshold 1k "16k .. 4m"
check_warning "decay_ms: 5000000 " decay_ms 5000000 "-1 .. 3600000"
check_warning "thp:sometimes" thp sometimes "default, never, madvise"
check_warning "secure:guard+" secure "guard+" "canary"
check_warning "stats_signal:-1" stats_signal -1 "SIGRTMAX"
check_warning "stats_file:" stats_file "" "path"
check_warning "nosuchkey :1" "unknown key" nosuchkey "stats_file"
if [ $ok -eq 1 ]; then pass warning_names_key_value_range; else fail warning_names_key_value_range; fi
