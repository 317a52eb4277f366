#!/usr/bin/env bash
# cxx_link.sh - C++ programs get buddyslab's operator new/delete (src/cxx.c)
# however they are linked, and C programs do without libstdc++.
#
# cx.cc never names malloc, free or any bsl_* function (checked with nm -u),
# so only its references to operator new/delete can pull buddyslab out of
# libbuddyslab.a. It is linked four ways:
#   static   g++ -static cx.o libbuddyslab.a      (glibc's _int_malloc must be absent)
#   archive  g++ cx.o libbuddyslab.a              (_Znwm defined in the executable)
#   shared   g++ cx.o -lbuddyslab                 (libbuddyslab.so.0, by its soname)
#   preload  g++ cx.o, run with LD_PRELOAD=$LIB
# and each must show, by behaviour alone, that buddyslab serves its new:
#   <way>_report     BUDDYSLAB_CONF=stats:1 prints buddyslab's report at exit
#   <way>_new_block  deleting a new'd block twice aborts with "buddyslab: double free"
#                    (buddyslab's free knows the block as one of its own, freed)
#   <way>_bad_alloc  new of 2^62 bytes calls the new-handler until it removes
#                    itself, then throws std::bad_alloc (static: libstdc++'s
#                    handler and throw helper linked in through cxx-archive.o's
#                    strong references)
# and the same program linked without buddyslab prints no report (the control).
# C without libstdc++ (nostdcxx.c, linked with libbuddyslab.so, which references
# libstdc++ only weakly): no libstdc++ mapped; the operators work by their mangled
# names; nothrow new of 2^62 bytes is NULL; throwing new of it aborts with
# buddyslab's message; a C++ plug-in dlopen'd with RTLD_LOCAL (libstdc++ arrives
# after start-up, outside the global scope) gets new from buddyslab and
# std::bad_alloc after its handler ran.
# test_cxx.cc linked with libbuddyslab.so: its cases as "so/test_cxx/<case>".
# Env (from scripts/run-tests): BUILD = build dir, LIB = its libbuddyslab.so.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
LIB=${LIB:-$BUILD/libbuddyslab.so}
case $LIB in /*) ;; *) LIB=$PWD/$LIB ;; esac
A=$BUILD/libbuddyslab.a
for f in "$A" "$LIB" "$BUILD/libbuddyslab.so.0"; do
	[ -e "$f" ] || { echo "FAIL cxx_link: no $f"; exit 1; }
done
tmp=$(mktemp -d /tmp/bsl_cxx_link.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; failures=$((failures + 1)); shift; for l in "$@"; do printf '  %s\n' "$l" >&2; done; }

cat > "$tmp/cx.cc" <<'CC'
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>
static volatile size_t vz;
static int calls;
static void handler() { if (++calls == 2) std::set_new_handler(nullptr); }
int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "run";
	if (!strcmp(mode, "double")) {
		int *volatile p = new int(1);
		delete p;
		delete p;           /* buddyslab aborts here */
		puts("survived");
		return 0;
	}
	if (!strcmp(mode, "huge")) {
		std::set_new_handler(handler);
		try {
			char *c = new char[((size_t)1 << 62) + vz];
			delete[] c;
			puts("allocated");
		} catch (const std::bad_alloc &) {
			printf("bad_alloc after %d handler calls\n", calls);
		}
		return 0;
	}
	std::map<int, std::string> m;
	for (int i = 0; i < 2000; i++) m[i] = std::string((size_t)(i % 300), 'a');
	std::vector<long> v(100000, 7);
	long sum = 0;
	for (long x : v) sum += x;
	printf("ok %zu %ld\n", m.size(), sum);
	return 0;
}
CC
cat > "$tmp/nostdcxx.c" <<'C'
#include <dlfcn.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include "buddyslab.h"
/* the operators by their mangled names (src/cxx.c) */
void *_Znwm(size_t), *_Znam(size_t), *_ZnwmRKSt9nothrow_t(size_t, const void *);
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t, size_t, const void *);
void *_ZnwmSt11align_val_t(size_t, size_t);
void _ZdlPv(void *), _ZdaPvm(void *, size_t), _ZdlPvSt11align_val_t(void *, size_t);
static volatile size_t vz;
int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "run";
	char line[512];
	int stdcxx = 0;
	FILE *maps = fopen("/proc/self/maps", "r");
	while (maps && fgets(line, sizeof line, maps))
		stdcxx |= strstr(line, "libstdc++") != NULL;
	if (maps) fclose(maps);
	printf("libstdc++ %s\n", stdcxx ? "mapped" : "absent");
	fflush(stdout);   /* the abort case never returns */
	if (!strcmp(mode, "abort")) {
		_Znwm(((size_t)1 << 62) + vz);
		puts("returned");
		return 0;
	}
	if (!strcmp(mode, "plugin")) {
		void *h = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);
		if (!h) { printf("dlopen: %s\n", dlerror()); return 1; }
		void *(*plug_new)(void) = (void *(*)(void))dlsym(h, "plug_new");
		int (*plug_huge)(void) = (int (*)(void))dlsym(h, "plug_huge");
		if (!plug_new || !plug_huge) { puts("dlsym failed"); return 1; }
		void *p = plug_new();
		printf("plugin new %s\n", bsl_owns(p) == 1 ? "buddyslab" : "other");
		printf("plugin huge %d\n", plug_huge());
		return 0;
	}
	int ok = 1;
	void *a = _Znwm(100), *b = _Znam(20000), *c = _ZnwmSt11align_val_t(300, 4096);
	ok &= bsl_owns(a) == 1 && bsl_owns(b) == 1 && bsl_owns(c) == 1 && ((uintptr_t)c & 4095) == 0;
	_ZdlPv(a); _ZdaPvm(b, 20000); _ZdlPvSt11align_val_t(c, 4096);
	ok &= _ZnwmRKSt9nothrow_t(((size_t)1 << 62) + vz, NULL) == NULL;
	ok &= _ZnamSt11align_val_tRKSt9nothrow_t(SIZE_MAX + vz, 64, NULL) == NULL;
	printf("operators %s\n", ok ? "ok" : "wrong");
	return 0;
}
C
cat > "$tmp/plug.cc" <<'CC'
#include <cstddef>
#include <new>
static volatile size_t vz;
static int calls;
static void handler() { if (++calls == 3) std::set_new_handler(nullptr); }
extern "C" void *plug_new() { return new int(5); }
extern "C" int plug_huge()       /* 10 * handler calls + 1 if bad_alloc was caught */
{
	std::set_new_handler(handler);
	try {
		char *c = new char[((size_t)1 << 62) + vz];
		delete[] c;
		return 10 * calls;
	} catch (const std::bad_alloc &) {
		return 10 * calls + 1;
	}
}
CC

CXXF="-std=gnu++17 -O1 -g"
if ! g++ $CXXF -c -o "$tmp/cx.o" "$tmp/cx.cc" 2>"$tmp/cc.err"; then
	fail cxx_link_compile "$(head -20 "$tmp/cc.err")"; exit 1
fi
named=$(nm -u "$tmp/cx.o" | grep -E ' (malloc|free|calloc|realloc|posix_memalign|aligned_alloc|memalign|bsl_[a-z_]*)$')
if [ -z "$named" ] && nm -u "$tmp/cx.o" | grep -q ' _Znwm$'; then
	pass cxx_link_names_no_malloc
else
	fail cxx_link_names_no_malloc "cx.o names: $named"
fi

link() {   # name, g++ arguments after the object
	local name=$1; shift
	if g++ -o "$tmp/$name" "$tmp/cx.o" "$@" 2>"$tmp/$name.link"; then return 0; fi
	fail "${name}_link" "$(grep -v 'warning: Using' "$tmp/$name.link" | head -20)"
	return 1
}
run() {   # exe, mode, extra env...: stdout+stderr in $out, status in $rc
	local exe=$1 mode=$2; shift 2
	out=$(cd "$tmp" && env "$@" timeout -k 5 120 "$exe" "$mode" 2>&1); rc=$?
}
behaviour() {   # way, exe, env...
	local way=$1 exe=$2; shift 2
	run "$exe" run BUDDYSLAB_CONF=stats:1 "$@"
	if [ $rc -eq 0 ] && grep -q '^ok 2000 700000$' <<<"$out" && grep -q '^buddyslab stats: ' <<<"$out" &&
	   grep -q '^kmalloc-' <<<"$out"; then
		pass "${way}_report"
	else
		fail "${way}_report" "status $rc" "$(head -5 <<<"$out")"
	fi
	run "$exe" double "$@"
	if [ $rc -eq 134 ] && grep -q '^buddyslab: double free 0x' <<<"$out" && ! grep -q survived <<<"$out"; then
		pass "${way}_new_block"
	else
		fail "${way}_new_block" "status $rc (134 = SIGABRT expected)" "$(head -5 <<<"$out")"
	fi
	run "$exe" huge "$@"
	if [ $rc -eq 0 ] && grep -q '^bad_alloc after 2 handler calls$' <<<"$out"; then
		pass "${way}_bad_alloc"
	else
		fail "${way}_bad_alloc" "status $rc" "$(head -5 <<<"$out")"
	fi
}

if [ ! -f /usr/lib/x86_64-linux-gnu/libc.a ]; then
	echo "SKIP static_*: no libc.a (libc6-dev)"
elif link cx_static -static "$A" -lpthread; then
	if nm "$tmp/cx_static" | grep -q ' T _Znwm$' && ! nm "$tmp/cx_static" | grep -qw _int_malloc; then
		pass static_symbols
	else
		fail static_symbols "_Znwm: $(nm "$tmp/cx_static" | grep -w -e _Znwm -e _int_malloc)"
	fi
	behaviour static "$tmp/cx_static"
fi
if link cx_archive "$A" -lpthread; then
	if nm "$tmp/cx_archive" | grep -q ' T _Znwm$'; then pass archive_symbols
	else fail archive_symbols "$(nm "$tmp/cx_archive" | grep -w _Znwm)"; fi
	behaviour archive "$tmp/cx_archive"
fi
if link cx_shared -L"$BUILD" -lbuddyslab; then
	if readelf -d "$tmp/cx_shared" | grep -q 'NEEDED.*\[libbuddyslab\.so\.0\]'; then pass shared_soname
	else fail shared_soname "$(readelf -d "$tmp/cx_shared" | grep NEEDED)"; fi
	behaviour shared "$tmp/cx_shared" LD_LIBRARY_PATH="$BUILD"
fi
if link cx_plain; then
	behaviour preload "$tmp/cx_plain" LD_PRELOAD="$LIB"
	run "$tmp/cx_plain" run BUDDYSLAB_CONF=stats:1
	if [ $rc -eq 0 ] && grep -q '^ok ' <<<"$out" && ! grep -q buddyslab <<<"$out"; then
		pass control_without_buddyslab
	else
		fail control_without_buddyslab "status $rc" "$(head -5 <<<"$out")"
	fi
fi

# C without libstdc++
if gcc -std=gnu11 -O1 -g -I"$top/include" -o "$tmp/nostdcxx" "$tmp/nostdcxx.c" -L"$BUILD" -lbuddyslab \
	2>"$tmp/nostdcxx.link" &&
   g++ $CXXF -shared -fPIC -o "$tmp/plug.so" "$tmp/plug.cc" 2>>"$tmp/nostdcxx.link"; then
	export LD_LIBRARY_PATH=$BUILD
	run "$tmp/nostdcxx" run
	if [ $rc -eq 0 ] && grep -q '^libstdc++ absent$' <<<"$out" && grep -q '^operators ok$' <<<"$out"; then
		pass c_operators_without_libstdcxx
	else
		fail c_operators_without_libstdcxx "status $rc" "$out"
	fi
	run "$tmp/nostdcxx" abort
	if [ $rc -eq 134 ] && grep -q '^libstdc++ absent$' <<<"$out" &&
	   grep -q '^buddyslab: operator new: out of memory, and no libstdc++ in the process to throw std::bad_alloc$' <<<"$out"; then
		pass c_new_fails_without_libstdcxx
	else
		fail c_new_fails_without_libstdcxx "status $rc (134 = SIGABRT expected)" "$out"
	fi
	out=$(cd "$tmp" && timeout -k 5 120 ./nostdcxx plugin "$tmp/plug.so" 2>&1); rc=$?
	if [ $rc -eq 0 ] && grep -q '^libstdc++ absent$' <<<"$out" && grep -q '^plugin new buddyslab$' <<<"$out" &&
	   grep -q '^plugin huge 31$' <<<"$out"; then
		pass c_dlopen_cxx_plugin
	else
		fail c_dlopen_cxx_plugin "status $rc (want 'plugin huge 31': 3 handler calls, then bad_alloc)" "$out"
	fi
	unset LD_LIBRARY_PATH
else
	fail c_without_libstdcxx_build "$(head -20 "$tmp/nostdcxx.link")"
fi

# test_cxx against the shared library
if g++ $CXXF -Wall -fno-builtin -I"$top/include" -I"$top/test" -o "$tmp/test_cxx_so" "$top/test/test_cxx.cc" \
	-L"$BUILD" -lbuddyslab -Wl,-rpath,"$BUILD" -lpthread 2>"$tmp/test_cxx.link"; then
	out=$(cd "$tmp" && timeout -k 5 280 ./test_cxx_so 2>"$tmp/test_cxx.err"); rc=$?
	printf '%s\n' "$out" | sed -n -E 's@^(PASS|FAIL|SKIP) @\1 so/test_cxx/@p'
	nf=$(grep -c '^FAIL ' <<<"$out")
	if [ "$nf" -gt 0 ] || [ $rc -ne 0 ]; then
		failures=$((failures + 1))
		tail -n 20 "$tmp/test_cxx.err" >&2
		[ "$nf" -gt 0 ] || echo "FAIL so/test_cxx (exit status $rc without a FAIL line)"
	fi
else
	fail so/test_cxx/link "$(head -20 "$tmp/test_cxx.link")"
fi
[ $failures -eq 0 ]
