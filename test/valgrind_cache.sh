#!/usr/bin/env bash
# valgrind_cache.sh - memcheck sees the objects of a named cache (bsl_cache_*)
# as blocks: a program that frees all it takes runs clean (constructed objects
# reused are defined, the ctor's and dtor's accesses are fine), a read after
# bsl_cache_free, a write one byte past the object and a lost object are
# reported. Optimised build only, like valgrind.sh.
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
check valgrind_cache_leak "$(vg "$tmp/prog" leak)" "definitely lost: 192 bytes in 1 blocks"
