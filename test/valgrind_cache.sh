#!/usr/bin/env bash
# valgrind_cache.sh - memcheck sees the objects of a named cache (bsl_cache_*)
# as blocks: a program that frees all it takes runs clean (constructed objects
# reused are defined, the ctor's and dtor's accesses are fine), a read after
# bsl_cache_free, a write one byte past the object and a lost object are
# reported, and so is a read of a field the constructor left unset in an
# object reused after bsl_cache_free (its V-bits are kept while it is free),
# while the fields the ctor set and the values written before the free stay
# defined. Optimised build only, like valgrind.sh.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$top/build}
LIB=${LIB:-$B/libbuddyslab.so}
case "$B" in *debug*) echo "SKIP valgrind_cache: run on the optimised build only"; exit 0;; esac
command -v valgrind >/dev/null || { echo "SKIP valgrind_cache: valgrind missing"; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/prog.c" <<'C'
#include <stdio.h>
#include <string.h>
#include "buddyslab.h"
struct obj { long magic; char buf[184]; };
static int ctor(void *p, void *arg, int flags) { struct obj *o = p; o->magic = 42; memset(o->buf, 1, sizeof o->buf); return 0; }
static void dtor(void *p, void *arg) { struct obj *o = p; if (o->magic != 42) puts("bad dtor"); }
/* A constructor that leaves a field unset: memcheck must see it undefined in
 * an object reused after bsl_cache_free (not only in a new one), and see the
 * fields the ctor set and the values the program left defined. */
struct half { long set, unset, written; };
static int half_ctor(void *p, void *arg, int flags) { ((struct half *)p)->set = 7; return 0; }
static void half_dtor(void *p, void *arg) { if (((struct half *)p)->set != 7) puts("bad half dtor"); }
__attribute__((noinline)) static int read_unset(struct half *h) { return h->unset == 5; }
static void uninit(void)
{
	bsl_cache_t *c = bsl_cache_create("vg-half", sizeof(struct half), 0, half_ctor, half_dtor, NULL);
	struct half *a = bsl_cache_alloc(c, 0);
	a->written = 3;
	bsl_cache_free(c, a);
	struct half *b = bsl_cache_alloc(c, 0);
	if (b == a && b->set == 7 && b->written == 3)
		puts("kept");
	if (read_unset(b))
		puts("five");
	bsl_cache_free(c, b);
	bsl_cache_destroy(c);
}
__attribute__((noinline)) static void lose(bsl_cache_t *c) { struct obj *o = bsl_cache_alloc(c, 0); o->buf[0] = 2; }
int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	bsl_cache_t *c = bsl_cache_create("vg-objs", sizeof(struct obj), 0, ctor, dtor, NULL);
	struct obj *v[100];
	long sum = 0;
	for (int r = 0; r < 3; r++) {
		for (int i = 0; i < 100; i++) { v[i] = bsl_cache_alloc(c, 0); sum += v[i]->magic + v[i]->buf[7]; }
		for (int i = 0; i < 100; i++) bsl_cache_free(c, v[i]);
	}
	struct obj *o = bsl_cache_alloc(c, 0);
	if (strcmp(mode, "overflow") == 0)
		((volatile char *)o)[sizeof *o] = 1;
	bsl_cache_free(c, o);
	if (strcmp(mode, "uaf") == 0) { volatile long x = o->magic; (void)x; }
	if (strcmp(mode, "uninit") == 0) uninit();
	if (strcmp(mode, "leak") == 0) lose(c);
	else bsl_cache_destroy(c);
	printf("ok %ld\n", sum);
	return 0;
}
C
cc -g -O0 -I"$top/include" -o "$tmp/prog" "$tmp/prog.c" "$LIB" -Wl,-rpath,"$(dirname "$LIB")" || exit 1
vg() { LD_PRELOAD="$LIB" valgrind --soname-synonyms=somalloc=nouserintercepts --leak-check=full "$@" 2>&1; }
check() {   # name, output, pattern...
	local name=$1 out=$2; shift 2
	for pat in "$@"; do
		if ! grep -qE "$pat" <<<"$out"; then
			echo "FAIL $name"; echo "  missing: $pat" >&2; grep -E "Invalid|uninit|lost|ERROR SUMMARY|ok" <<<"$out" | head >&2; return
		fi
	done
	echo "PASS $name"
}
check valgrind_cache_clean "$(vg "$tmp/prog")" "ERROR SUMMARY: 0 errors" "^ok 12900$" "All heap blocks were freed|in use at exit: 0 bytes"
check valgrind_cache_use_after_free "$(vg "$tmp/prog" uaf)" "Invalid read of size 8" "bsl_cache_free"
check valgrind_cache_overflow "$(vg "$tmp/prog" overflow)" "Invalid write of size 1" "0 bytes after a (recently re-allocated )?block of size 192 alloc'd"
check valgrind_cache_uninit_reused "$(vg "$tmp/prog" uninit)" "^kept$" \
	"Conditional jump or move depends on uninitialised value" "at 0x[0-9A-F]+: uninit \\(prog.c" "ERROR SUMMARY: 1 errors"
check valgrind_cache_leak "$(vg "$tmp/prog" leak)" "definitely lost: 192 bytes in 1 blocks"
