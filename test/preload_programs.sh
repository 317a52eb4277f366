#!/usr/bin/env bash
# preload_programs.sh - real programs run with LD_PRELOAD=libbuddyslab.so.
#
# For each program (python3, git, gcc, perl, make, sqlite3) two cases:
#   PASS/FAIL <prog>            the program's output is exactly what is expected
#   PASS/FAIL <prog>-buddyslab  proof buddyslab was the allocator: with
#                               BUDDYSLAB_CONF=stats:1 it prints its slabinfo view
#                               (lines starting "kmalloc-") to stderr at exit
# A program that is not installed is a SKIP. Each run has a 120 s timeout.
# Env (from scripts/run-tests): LIB = path of libbuddyslab.so (may be relative to
# the caller's directory); default: ../build/libbuddyslab.so next to this script.
set -u
here=$(cd "$(dirname "$0")" && pwd)
LIB=${LIB:-$here/../build/libbuddyslab.so}
case $LIB in /*) ;; *) LIB=$PWD/$LIB ;; esac
failures=0

tmp=$(mktemp -d /tmp/bsl_preload.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; failures=$((failures + 1)); shift; for l in "$@"; do echo "  $l" >&2; done; }
skip() { echo "SKIP $1: $2"; }

if [ ! -f "$LIB" ]; then
	for p in python3 git gcc perl make sqlite3; do fail "$p" "no library at $LIB"; done
	exit 1
fi

# run NAME EXPECTED_STDOUT_FILE COMMAND... : runs in $tmp/NAME, stdout/stderr captured
run() {
	local name=$1 expect=$2; shift 2
	local dir=$tmp/$name
	mkdir -p "$dir"
	( cd "$dir" && timeout -k 5 120 env LD_PRELOAD="$LIB" BUDDYSLAB_CONF=stats:1 "$@" ) \
		>"$tmp/$name.out" 2>"$tmp/$name.err"
	local rc=$?
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		fail "$name" "timed out after 120 s" "$(tail -n 5 "$tmp/$name.err")"
	elif [ $rc -ne 0 ]; then
		fail "$name" "exit status $rc" "$(grep -v '^buddyslab' "$tmp/$name.err" | tail -n 15)"
	elif ! diff -u "$expect" "$tmp/$name.out" >"$tmp/$name.diff"; then
		fail "$name" "unexpected output:" "$(head -n 30 "$tmp/$name.diff")"
	else
		pass "$name"
	fi
	# proof it ran on buddyslab: the stats:1 slabinfo view at exit
	if grep -q '^kmalloc-16' "$tmp/$name.err" && grep -q '^buddyslab' "$tmp/$name.err"; then
		pass "$name-buddyslab"
	else
		fail "$name-buddyslab" "no 'kmalloc-16' / 'buddyslab' lines on stderr with BUDDYSLAB_CONF=stats:1:" \
			"$(head -n 10 "$tmp/$name.err")"
	fi
}

have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- python3
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3 || true)
if [ -n "$py" ]; then
	cat >"$tmp/dict.py" <<'EOF'
import json
n = 10**6
d = {str(i): i * i for i in range(n)}
s = json.dumps(d)
e = json.loads(s)
assert e == d
lst = [[i, str(i), {"k": i}] for i in range(100000)]
assert json.loads(json.dumps(lst)) == lst
print(len(e), sum(e.values()), len(s))
# threads and fork (multiprocessing) while the heap is big
import threading, multiprocessing as mp
def work(k):
    return sum(len(str(i) * (i % 7)) for i in range(k, k + 20000))
res = [0] * 4
def tw(j):
    res[j] = work(j * 20000)
ts = [threading.Thread(target=tw, args=(j,)) for j in range(4)]
for t in ts: t.start()
for t in ts: t.join()
ctx = mp.get_context("fork")
with ctx.Pool(2) as pool:
    out = pool.map(work, [j * 20000 for j in range(4)])
print(res == out, sum(out))
EOF
	# sum of i^2 for i < 10^6 = (n-1)n(2n-1)/6 = 333332833333500000; len(json.dumps(d)):
	# per entry '"i": i*i' is len(i)+len(i*i)+4, plus ', ' between entries, plus '{}'
	python_len=$(perl -e 'my $t=0; for my $i (0..999999){ $t += length($i) + length($i*$i) + 6 } print $t - 2 + 2' 2>/dev/null)
	# the threads/multiprocessing line: sum over i < 80000 of len(str(i)) * (i % 7)
	mp_sum=$(perl -e 'my $t=0; for my $i (0..79999){ $t += length($i) * ($i % 7) } print $t')
	printf '1000000 333332833333500000 %s\nTrue %s\n' "$python_len" "$mp_sum" >"$tmp/python3.expect"
	run python3 "$tmp/python3.expect" "$py" "$tmp/dict.py"
else
	skip python3 "not installed"; skip python3-buddyslab "not installed"
fi

# ---------------------------------------------------------------- git
if have git; then
	cat >"$tmp/git.sh" <<'EOF'
set -e
export HOME=$PWD GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' GIT_COMMITTER_DATE='2020-01-01T00:00:00Z'
git init -q -b main repo
cd repo
git config user.email t@example.invalid
git config user.name tester
for i in $(seq 1 200); do echo "file $i" > f$i.txt; done
git add .
git commit -q -m "first commit under buddyslab"
echo change >> f1.txt
git commit -q -am "second commit"
git log --format='%s' 
git rev-list --count HEAD
git show --stat HEAD | grep -c 'f1.txt'
git gc -q
set +e
git fsck --no-progress --strict >fsck.out
echo "fsck $? $(wc -l < fsck.out)"
EOF
	printf 'second commit\nfirst commit under buddyslab\n2\n1\nfsck 0 0\n' >"$tmp/git.expect"
	run git "$tmp/git.expect" bash "$tmp/git.sh"
else
	skip git "not installed"; skip git-buddyslab "not installed"
fi

# ---------------------------------------------------------------- gcc
if have gcc; then
	cat >"$tmp/prog.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void)
{
	unsigned long sum = 0;
	for (int i = 0; i < 1000; i++) {
		char *p = malloc(i + 1);
		memset(p, i & 0x7f, i + 1);
		sum += (unsigned char)p[i];
		free(p);
	}
	printf("hello from gcc %lu\n", sum);
	return 0;
}
EOF
	cat >"$tmp/gcc.sh" <<EOF
set -e
gcc -O2 -Wall -o prog "$tmp/prog.c"
./prog
EOF
	# sum of (i & 0x7f) for i < 1000
	s=0; for ((i = 0; i < 1000; i++)); do s=$((s + (i & 0x7f))); done
	echo "hello from gcc $s" >"$tmp/gcc.expect"
	run gcc "$tmp/gcc.expect" bash "$tmp/gcc.sh"
else
	skip gcc "not installed"; skip gcc-buddyslab "not installed"
fi

# ---------------------------------------------------------------- perl
if have perl; then
	cat >"$tmp/t.pl" <<'EOF'
use strict; use warnings;
my %h;
for my $i (0 .. 199999) { $h{"key$i"} = $i * 3; }
my @k = sort { $h{$a} <=> $h{$b} } keys %h;
my $n = grep { /^key\d*7$/ } @k;
my $s = 0; $s += $h{$_} for @k;
my $str = join(",", @k[0 .. 4]);
(my $r = $str) =~ s/key(\d+)/<$1>/g;
print scalar(@k), " $n $s $r\n";
EOF
	# 200000 keys; those ending in 7: 20000; sum 3*sum(0..199999) = 59999700000
	echo "200000 20000 59999700000 <0>,<1>,<2>,<3>,<4>" >"$tmp/perl.expect"
	run perl "$tmp/perl.expect" perl "$tmp/t.pl"
else
	skip perl "not installed"; skip perl-buddyslab "not installed"
fi

# ---------------------------------------------------------------- make
if have make; then
	mkdir -p "$tmp/make"
	cat >"$tmp/make/Makefile" <<'EOF'
WORDS := $(foreach i,1 2 3 4 5 6 7 8 9 10,w$(i))
all: b.txt
	@cat b.txt
a.txt:
	@echo $(words $(WORDS)) $(lastword $(WORDS)) > $@
b.txt: a.txt
	@sed 's/w/word-/' $< > $@
	@echo $(patsubst w%,%,$(filter w1%,$(WORDS))) >> $@
EOF
	printf '10 word-10\n1 10\n' >"$tmp/make.expect"
	run make "$tmp/make.expect" make -s -C "$tmp/make"
else
	skip make "not installed"; skip make-buddyslab "not installed"
fi

# ---------------------------------------------------------------- sqlite3
if have sqlite3; then
	{
		echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER, s TEXT);"
		echo "BEGIN;"
		for ((i = 1; i <= 10000; i++)); do echo "INSERT INTO t(v, s) VALUES($i, 'row$i');"; done
		echo "COMMIT;"
		echo "CREATE INDEX ts ON t(s);"
		echo "SELECT sum(v), count(*), max(length(s)) FROM t;"
		echo "SELECT v FROM t WHERE s = 'row4242';"
	} >"$tmp/q.sql"
	printf '50005000|10000|8\n4242\n' >"$tmp/sqlite3.expect"
	run sqlite3 "$tmp/sqlite3.expect" sh -c "sqlite3 '$tmp/db.sqlite' < '$tmp/q.sql'"
else
	skip sqlite3 "not installed"; skip sqlite3-buddyslab "not installed"
fi

[ $failures -eq 0 ]
