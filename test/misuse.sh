#!/usr/bin/env bash
# misuse.sh - what each kind of heap misuse does, per tier, under glibc, default
# buddyslab and BUDDYSLAB_CONF=secure:1.
#   PASS/FAIL misuse/<case>/default   preloaded, BUDDYSLAB_CONF unset
#   PASS/FAIL misuse/<case>/secure    preloaded, BUDDYSLAB_CONF=secure:1
#   # note: misuse/<case>/glibc ...   glibc (no preload) differs from its column:
#                                     recorded, not asserted (glibc versions differ)
# Each case of test/misuse/misuse.c and misuse_cxx.cc is one process per mode
# (no core dump, a timeout); its outcome, one of
#   abort:<substring>   killed by SIGABRT, stderr contains the substring
#   segv                killed by SIGSEGV (inside the allocator too)
#   out:<word>          exit 0, stdout is the word
#   na                  not applicable (the driver printed "na")
# is compared with the case's line of test/misuse/expect.tsv. The secure column
# there is the specification of secure mode. Every outcome seen is written to
# $BUILD/misuse/observed.tsv (same columns). test/misuse/table prints the table
# of test/README.md and LD_PRELOAD.md from expect.tsv.
# Env (from scripts/run-tests): BUILD = build dir, LIB = its libbuddyslab.so.
# The drivers are built into $BUILD/misuse/ (make tests does it; here when
# missing or older than their sources), never into $BUILD/test/.
set -u
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
LIB=${LIB:-$BUILD/libbuddyslab.so}
case $LIB in /*) ;; *) LIB=$PWD/$LIB ;; esac
src=$here/misuse
bin=$BUILD/misuse
expect=$src/expect.tsv
tmp=$(mktemp -d /tmp/bsl_misuse.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
ulimit -c 0

if [ ! -f "$LIB" ]; then echo "FAIL misuse: no library $LIB"; exit 1; fi
mkdir -p "$bin"
if [ ! -x "$bin/misuse" ] || [ "$src/misuse.c" -nt "$bin/misuse" ]; then
	${CC:-cc} -std=gnu11 -O0 -g -Wall -Wextra -Wno-unused-parameter -fno-builtin -o "$bin/misuse" "$src/misuse.c" -ldl ||
		{ echo "FAIL misuse: misuse.c does not build"; exit 1; }
fi
if [ ! -x "$bin/misuse_cxx" ] || [ "$src/misuse_cxx.cc" -nt "$bin/misuse_cxx" ]; then
	${CXX:-c++} -std=gnu++17 -O0 -g -Wall -Wextra -Wno-unused-parameter -fno-builtin -fsized-deallocation \
		-o "$bin/misuse_cxx" "$src/misuse_cxx.cc" ||
		{ echo "FAIL misuse: misuse_cxx.cc does not build"; exit 1; }
fi

# Secure mode cannot apply where another tool owns the checks.
secure_skip=
case $BUILD in
*asan* | *ubsan* | *tsan* | *msan* | *memcheck* | *valgrind*)
	secure_skip="a sanitizer/memcheck build ($BUILD)" ;;
esac

# classify MODE DRIVER CASE: run it once, print its outcome; stderr kept in $tmp/err
classify() {
	local mode=$1 driver=$2 name=$3 rc
	local -a env
	case $mode in
	glibc) env=(env -u LD_PRELOAD -u BUDDYSLAB_CONF) ;;
	default) env=(env -u BUDDYSLAB_CONF LD_PRELOAD="$LIB") ;;
	secure) env=(env LD_PRELOAD="$LIB" BUDDYSLAB_CONF=secure:1) ;;
	esac
	# the braces take the shell's own "Segmentation fault" notice
	{ timeout -k 2 20 "${env[@]}" "$driver" "$name" </dev/null >"$tmp/out" 2>"$tmp/err"; } 2>/dev/null
	rc=$?
	case $rc in
	0) local word; word=$(tr -d '\n' <"$tmp/out")
	   if [ "$word" = na ]; then echo na; else echo "out:$word"; fi ;;
	134) echo "abort:$(grep -m1 -v '^$' "$tmp/err" | cut -c1-100)" ;;
	139) echo segv ;;
	124 | 137) echo timeout ;;
	*) if [ "$rc" -gt 128 ]; then echo "signal:$((rc - 128))"; else echo "exit:$rc"; fi ;;
	esac
}

# matches EXPECTED GOT: abort:S matches any abort whose stderr ($tmp/err) contains S
matches() {
	case $1 in
	abort:*) [[ $2 == abort:* ]] && grep -qF -- "${1#abort:}" "$tmp/err" ;;
	*) [ "$1" = "$2" ] ;;
	esac
}

# the preload takes (else "default" would be glibc): buddyslab's report at exit
if ! env LD_PRELOAD="$LIB" BUDDYSLAB_CONF=stats:1 "$bin/misuse" zero_distinct 2>&1 >/dev/null |
	grep -q '^buddyslab stats:'; then
	echo "FAIL misuse: $LIB is not the allocator when preloaded (no report at exit)"
	exit 1
fi

declare -A driver_of
for d in misuse misuse_cxx; do
	while read -r name; do driver_of[$name]=$bin/$d; done < <("$bin/$d" --list)
done

declare -A listed
: >"$bin/observed.tsv.new"
while IFS=$'\t' read -r name e_glibc e_default e_secure; do
	case $name in '' | '#'*) continue ;; esac
	listed[$name]=1
	driver=${driver_of[$name]:-}
	if [ -z "$driver" ]; then echo "FAIL misuse/$name: in expect.tsv, not in a driver"; continue; fi
	row=$name
	for mode in glibc default secure; do
		case $mode in
		glibc) want=$e_glibc ;; default) want=$e_default ;; secure) want=$e_secure ;;
		esac
		if [ $mode = secure ] && [ -n "$secure_skip" ]; then
			echo "SKIP misuse/$name/secure: $secure_skip"
			row+=$'\t-'
			continue
		fi
		got=$(classify $mode "$driver" "$name")
		row+=$'\t'$got
		if matches "$want" "$got"; then
			[ $mode = glibc ] || echo "PASS misuse/$name/$mode"
		elif [ $mode = glibc ]; then
			echo "# note: misuse/$name/glibc: expect.tsv says $want, this glibc gives $got"
		else
			echo "FAIL misuse/$name/$mode: expected $want, got $got"
			sed -n '1,3s/^/    /p' "$tmp/err" >&2
		fi
	done
	printf '%s\n' "$row" >>"$bin/observed.tsv.new"
done <"$expect"
mv "$bin/observed.tsv.new" "$bin/observed.tsv"

for name in "${!driver_of[@]}"; do
	[ -n "${listed[$name]:-}" ] || echo "FAIL misuse/$name: a driver case with no line in expect.tsv"
done

# the tables of test/README.md and LD_PRELOAD.md are test/misuse/table's output
table=$("$src/table" "$expect")
for doc in "$here/README.md" "$here/../LD_PRELOAD.md"; do
	if [[ $(<"$doc") == *"$table"* ]]; then
		echo "PASS misuse/table/$(basename "$doc")"
	else
		echo "FAIL misuse/table/$(basename "$doc"): not test/misuse/table's output (paste it again)"
	fi
done
