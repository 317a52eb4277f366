#!/usr/bin/env bash
# valgrind_static.sh - memcheck with buddyslab linked in ($BUILD/libbuddyslab.a)
# instead of preloaded (valgrind.sh covers LD_PRELOAD).
#
# A dynamic executable with the archive linked in exports malloc & co itself, and
# memcheck (since 3.12) replaces the allocation functions exported by ANY object,
# the main executable included, not only libc.so / ld.so. So the option is the
# same as for preloading: --soname-synonyms=somalloc=nouserintercepts keeps
# buddyslab (memcheck then intercepts libc.so only, whose malloc nobody calls),
# and buddyslab's client requests describe its blocks. (somalloc=NONE would do
# the opposite: replace the executable's malloc.) Without any option the program
# runs on memcheck's malloc: bsl_owns() says 0.
#
# A fully static executable (gcc -static) cannot load memcheck's preload
# library, so nothing is replaced and no option is needed: buddyslab's client
# requests are the only heap information memcheck gets. Leaks, uses after free
# (and overflows) are reported, but "ERROR SUMMARY: 0 errors" is out of reach
# for any fully static glibc program, glibc's own malloc included (which
# memcheck does not see at all: "0 allocs"), for reasons that are Valgrind's:
#  - glibc carves the initial thread's static TLS from brk and relies on the
#    kernel's zero fill for .tbss; memcheck marks brk memory undefined, so every
#    read of a TLS variable is "Conditional jump ... uninitialised value(s)"
#    (buddyslab's tcache_pop/free, glibc's __libc_cleanup_push_defer) and
#    "set_robust_list(head) points to uninitialised byte(s)" at start-up;
#  - without the preload library no string function is replaced, so glibc's
#    SSE/AVX2 strcspn/strlen report uninitialised or past-the-end reads;
#  - __libc_freeres is not run at exit, and the leak scan only reads writable
#    segments: static glibc keeps its pointers to three start-up blocks (16,
#    40 and 128 bytes, from _dl_init_paths and _dl_find_object_init) in RELRO,
#    mprotected read-only at start-up, so those blocks are "definitely lost",
#    and a few others "still reachable".
# That case is a SKIP, and a FAIL only for an invalid access or free outside
# glibc's string functions.
#
# Cases, for each link mode: buddyslab is the allocator (bsl_owns of a block is 1
# under memcheck), a leak of 100 bytes is "definitely lost: 100 bytes in 1 blocks"
# in leak(), a read and a write after free are "Invalid read"/"Invalid write" in a
# block "free'd", a write one byte past the requested size of a slab object, a
# page run and a large block is an "Invalid write ... 0 bytes after a block of
# size N", a clean program has no error and no leak; and the leak cases of
# valgrind_leaks.bash: exact LEAK SUMMARY figures for the dynamic executable,
# the figures of the blocks that valgrind_leaks.c allocated for the fully
# static one (glibc's own blocks above come on top).
# Optimised build only (as valgrind.sh: the debug checkers read free lists).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$top/build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
A=$B/libbuddyslab.a
case "$B" in *debug*) echo "SKIP valgrind_static: run on the optimised build only"; exit 0;; esac
command -v valgrind >/dev/null || { echo "SKIP valgrind_static: valgrind missing"; exit 0; }
[ -f "$A" ] || { echo "FAIL valgrind_static: no $A"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buddyslab.h"
__attribute__((noinline)) static void leak(void)
{
	char *lost = malloc(100);       /* the leak, the first object of its slab */
	memset(lost, 1, 100);
}
__attribute__((noinline)) static void use_after_free(void)
{
	char *p = malloc(64);
	memset(p, 7, 64);
	free(p);
	/* 24 and 40 bytes in: more than memcheck's 16-byte default redzone away
	 * from the neighbouring objects (buddyslab packs objects with no gap, and
	 * memcheck describes an address within 16 bytes of a live block by that
	 * block, not by the freed one) */
	volatile char c = p[24];
	(void)c;
	((volatile char *)p)[40] = 1;
}
__attribute__((noinline)) static void overflow(void)
{
	/* one byte past the request of a slab object, a page run and a large
	 * block; one statement each, so memcheck reports three contexts */
	char *a = malloc(100), *b = malloc(20000), *c = malloc(200000);
	((volatile char *)a)[100] = 1;
	((volatile char *)b)[20000] = 1;
	((volatile char *)c)[200000] = 1;
	free(a); free(b); free(c);
}
int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "clean";
	void *probe = malloc(100);
	struct bsl_stats st;
	bsl_stats(&st);
	printf("allocator %s\n", bsl_owns(probe) == 1 && st.nmalloc_slab > 0 ? "buddyslab" : "other");
	free(probe);
	if (!strcmp(mode, "leak")) leak();
	if (!strcmp(mode, "uaf")) use_after_free();
	if (!strcmp(mode, "overflow")) overflow();
	char *r = realloc(NULL, 10);
	strcpy(r, "ok");
	r = realloc(r, 5000);
	r = realloc(r, 200000);
	puts(r);
	free(r);
	return 0;
}
C

# Print the error block (up to the next blank report line) that starts with $1.
error_block() { awk -v pat="$1" '
	index($0, pat) { on = 1 }
	on && /^==[0-9]+== *$/ { exit }
	on { print }' ; }

# Invalid accesses/frees whose first frame is not a glibc string function.
own_invalid() { awk '
	/== (Invalid (read|write|free)|Mismatched)/ { pending = $0; next }
	pending != "" && /== +at 0x/ {
		if ($0 !~ /: __(mem|str|stp|raw|wcs|wmem)[a-z0-9_]* \(/) print pending "\n" $0
		pending = ""
	}' ; }

run_cases() {   # label, exe, valgrind options...
	local label=$1 exe=$2; shift 2
	local out blk ok
	vg() { valgrind "$@" --leak-check=full "$exe" "$mode" 2>&1; }

	mode=clean; out=$(vg "$@")
	if grep -q "^allocator buddyslab$" <<<"$out" && grep -q "^ok$" <<<"$out"; then
		echo "PASS valgrind_${label}_buddyslab_is_the_allocator"
	else
		echo "FAIL valgrind_${label}_buddyslab_is_the_allocator"; grep -E "^allocator|ERROR SUMMARY" <<<"$out" >&2
	fi
	if [ "$label" = static_full ]; then
		# See the SKIP reason: the errors are memcheck's view of static glibc.
		# Ours would be an invalid access or free anywhere but in one of
		# glibc's vectorised string functions (which memcheck cannot replace
		# in a static program, and which read aligned words past a string's end).
		bad=$(own_invalid <<<"$out")
		if [ -n "$bad" ]; then
			echo "FAIL valgrind_${label}_clean_program"; printf '%s\n' "$bad" | head -20 >&2
		else
			echo "SKIP valgrind_${label}_clean_program: memcheck reports false errors in every fully static glibc program, glibc's malloc included (Valgrind limitation, see valgrind_static.sh: static TLS in brk seen as undefined, string functions not replaced, no __libc_freeres, read-only RELRO not scanned for leaks); no invalid access outside glibc's string functions"
		fi
	else
		if grep -q "ERROR SUMMARY: 0 errors" <<<"$out" && grep -q "total heap usage: [1-9]" <<<"$out" &&
		   grep -q "All heap blocks were freed" <<<"$out"; then
			echo "PASS valgrind_${label}_clean_program"
		else
			echo "FAIL valgrind_${label}_clean_program"; tail -20 <<<"$out" >&2
		fi
	fi

	mode=leak; out=$(vg "$@")
	blk=$(error_block "100 bytes in 1 blocks are definitely lost" <<<"$out")
	if grep -q "by 0x[0-9A-F]*: leak (prog.c:" <<<"$blk" &&
	   { [ "$label" = static_full ] || grep -q "definitely lost: 100 bytes in 1 blocks" <<<"$out"; }; then
		echo "PASS valgrind_${label}_reports_leak"
	else
		echo "FAIL valgrind_${label}_reports_leak"; grep -E "lost|ERROR SUMMARY" <<<"$out" >&2
	fi

	mode=uaf; out=$(vg "$@")
	ok=1
	for kind in "Invalid read of size 1" "Invalid write of size 1"; do
		blk=$(error_block "$kind" <<<"$out")
		if ! grep -q "use_after_free (prog.c:" <<<"$blk" ||
		   ! grep -q "bytes inside a block of size 64 free'd" <<<"$blk"; then
			ok=0; echo "  [$label] expected \"$kind\" in a block of size 64 free'd:" >&2
			printf '%s\n' "${blk:-  (none)}" | head -12 >&2
		fi
	done
	if [ $ok = 1 ]; then echo "PASS valgrind_${label}_reports_use_after_free"
	else echo "FAIL valgrind_${label}_reports_use_after_free"; fi

	mode=overflow; out=$(vg "$@")
	ok=1
	for n in 100 20,000 200,000; do
		if ! grep -qE "is 0 bytes after a (recently re-allocated )?block of size $n alloc'd" <<<"$out"; then
			ok=0; echo "  [$label] a write one byte past malloc($n) was not reported" >&2
		fi
	done
	if [ $ok = 1 ]; then echo "PASS valgrind_${label}_reports_overflow"
	else echo "FAIL valgrind_${label}_reports_overflow"; grep -E "Invalid|ERROR SUMMARY" <<<"$out" >&2; fi
}

# A normal dynamic executable with the archive linked in.
if cc -g -O0 -I"$top/include" -o "$tmp/prog_dyn" "$tmp/prog.c" "$A" -lpthread 2>"$tmp/link.err"; then
	run_cases static_link "$tmp/prog_dyn" --soname-synonyms=somalloc=nouserintercepts
else
	echo "FAIL valgrind_static_link_build"; cat "$tmp/link.err" >&2
fi
. "$top/test/valgrind_leaks.bash"
if leaks_build "$tmp/leaks_dyn" "$A" -lpthread 2>"$tmp/link.err"; then
	LEAKS_LAYOUT=1 leaks_check static_link exact "$tmp/leaks_dyn" --soname-synonyms=somalloc=nouserintercepts
else
	echo "FAIL valgrind_static_link_leaks_build"; cat "$tmp/link.err" >&2
fi

# A fully static executable.
if [ ! -f /usr/lib/x86_64-linux-gnu/libc.a ]; then
	echo "SKIP valgrind_static_full: no libc.a (libc6-dev)"
elif cc -g -O0 -static -I"$top/include" -o "$tmp/prog_static" "$tmp/prog.c" "$A" -lpthread 2>"$tmp/link.err"; then
	run_cases static_full "$tmp/prog_static"
	if leaks_build "$tmp/leaks_static" -static "$A" -lpthread 2>"$tmp/link.err"; then
		LEAKS_LAYOUT=1 leaks_check static_full records "$tmp/leaks_static"
	else
		echo "FAIL valgrind_static_full_leaks_build"; grep -v "warning: Using" "$tmp/link.err" >&2
	fi
else
	echo "FAIL valgrind_static_full_build"; grep -v "warning: Using" "$tmp/link.err" >&2
fi
