#!/usr/bin/env bash
# valgrind.sh - memcheck with buddyslab as the allocator
# (--soname-synonyms=somalloc=nouserintercepts): a deliberate leak and a
# deliberate use after free are reported, and a write one byte past the
# requested size of a slab object, a page run and a large block; a clean
# program and python3 run with no error. The leak cases of valgrind_leaks.bash
# give memcheck's numbers exactly ("definitely lost" / "still reachable"), with
# buddyslab preloaded and, as a check of the program and its table, with
# memcheck's own malloc. valgrind_static.sh: the same with libbuddyslab.a linked
# in. Optimised build only (the debug build's checkers read free
# lists, which memcheck would rightly flag as slow-path noise).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$top/build}
LIB=${LIB:-$B/libbuddyslab.so}
case "$B" in *debug*) echo "SKIP valgrind_memcheck: run on the optimised build only"; exit 0;; esac
command -v valgrind >/dev/null || { echo "SKIP valgrind_memcheck: valgrind missing"; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) static void leak(void)
{
	char *lost = malloc(100);       /* the leak, the first object of its slab */
	memset(lost, 1, 100);
}
int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "leak") == 0)
		leak();
	char *p = malloc(64);
	strcpy(p, "hello");
	free(p);
	if (argc > 1 && strcmp(argv[1], "uaf") == 0) {
		volatile char c = p[3];
		(void)c;
	}
	if (argc > 1 && strcmp(argv[1], "overflow") == 0) {
		/* one byte past the request of a slab object, a page run and a large
		 * block; one statement each, so memcheck reports three contexts */
		char *a = malloc(100), *b = malloc(20000), *c = malloc(200000);
		((volatile char *)a)[100] = 1;
		((volatile char *)b)[20000] = 1;
		((volatile char *)c)[200000] = 1;
		free(a); free(b); free(c);
	}
	char *r = realloc(NULL, 10);
	r = realloc(r, 5000);
	r = realloc(r, 200000);
	free(r);
	puts("ok");
	return 0;
}
C
cc -g -O0 -o "$tmp/prog" "$tmp/prog.c" || exit 1
vg() { LD_PRELOAD="$LIB" valgrind --soname-synonyms=somalloc=nouserintercepts --leak-check=full "$@" 2>&1; }

out=$(vg "$tmp/prog")
if grep -q "ERROR SUMMARY: 0 errors" <<<"$out" && grep -q "total heap usage: [1-9]" <<<"$out" &&
   grep -q "All heap blocks were freed" <<<"$out"; then
	echo "PASS valgrind_clean_program"
else
	echo "FAIL valgrind_clean_program"; tail -20 <<<"$out" >&2
fi
out=$(vg "$tmp/prog" leak)
if grep -q "definitely lost: 100 bytes in 1 blocks" <<<"$out"; then
	echo "PASS valgrind_reports_leak"
else
	echo "FAIL valgrind_reports_leak"; tail -20 <<<"$out" >&2
fi
out=$(vg "$tmp/prog" uaf)
if grep -q "Invalid read of size 1" <<<"$out" && grep -qE "free_(tiers_)?slow" <<<"$out"; then
	echo "PASS valgrind_reports_use_after_free"
else
	echo "FAIL valgrind_reports_use_after_free"; tail -20 <<<"$out" >&2
fi
out=$(vg "$tmp/prog" overflow)
ok=1
for n in 100 20,000 200,000; do
	if ! grep -qE "is 0 bytes after a (recently re-allocated )?block of size $n alloc'd" <<<"$out"; then
		ok=0; echo "  a write one byte past malloc($n) was not reported" >&2
	fi
done
if [ $ok = 1 ]; then
	echo "PASS valgrind_reports_overflow"
else
	echo "FAIL valgrind_reports_overflow"; grep -E "Invalid|ERROR SUMMARY" <<<"$out" >&2
fi
py=$(python3 -c 'import sys; print(sys.executable)')   # the real binary, not a shim script
out=$(vg --error-exitcode=9 "$py" -c "import json; d={i: str(i) for i in range(20000)}; print(len(json.loads(json.dumps(d))))")
if grep -q "^20000$" <<<"$out" && grep -q "ERROR SUMMARY: 0 errors" <<<"$out" &&
   grep -q "total heap usage: [1-9]" <<<"$out"; then
	echo "PASS valgrind_python3_clean"
else
	echo "FAIL valgrind_python3_clean"; grep -E "Invalid|uninit|ERROR SUMMARY" <<<"$out" | head >&2
fi

. "$top/test/valgrind_leaks.bash"
if leaks_build "$tmp/leaks"; then
	leaks_check memcheck_malloc exact "$tmp/leaks"
	LEAKS_ENV=(LD_PRELOAD="$LIB")
	LEAKS_LAYOUT=1 leaks_check preload exact "$tmp/leaks" --soname-synonyms=somalloc=nouserintercepts
else
	echo "FAIL valgrind_leaks_build"
fi
