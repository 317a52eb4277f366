#!/usr/bin/env bash
# install.sh - make install / make uninstall (dist/install.mk), pkg-config and
# the launcher, as a user would meet them.
#
# 1. make install DESTDIR=$tmp/stage (PREFIX /usr/local):
#    install_layout      exactly the 8 expected paths, the two links, the
#                        library's soname libbuddyslab.so.MAJOR, modes
#    install_substituted the .pc file, launcher and man page name the final
#                        paths (no DESTDIR, no @PLACEHOLDER@ left)
#    pkgconfig           --modversion is the header's version; --cflags --libs
#                        and --static (adds -lpthread), with PKG_CONFIG_PATH and
#                        PKG_CONFIG_SYSROOT_DIR pointing into the staging tree
#    man_page            groff renders it without a warning; it names every
#                        BUDDYSLAB_CONF key of src/config.c and every bsl_*
#                        function of include/buddyslab.h
#    build_{c,cxx}_{shared,static}  a C and a C++ program built with pkg-config
#                        run on buddyslab (bsl_owns of malloc'd / new'd blocks,
#                        bsl_version() == "buddyslab " BUDDYSLAB_VERSION); shared
#                        ones need libbuddyslab.so.MAJOR by its soname
#    uninstall_destdir   nothing left under DESTDIR but empty directories
# 2. make install PREFIX=$tmp/root (no DESTDIR), the launcher from there:
#    launcher_*          exit status passes through; --conf (repeated), --stats,
#                        --secure reach buddyslab (bsl_config_print, the report at
#                        exit) in a program not linked with it; an existing
#                        LD_PRELOAD and BUDDYSLAB_CONF are kept; --version;
#                        --help; --profile PREFIX writes PREFIX.PID.0.heap at exit;
#                        an empty --profile, an unknown option, a bad --conf and no
#                        program exit 2
#    uninstall_prefix    nothing left under the prefix but empty directories
# Env (from scripts/run-tests): BUILD = build/ or build/debug (make install
# is run with the matching flavour, so it finds the library up to date).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
BUILD=$(cd "$BUILD" && pwd)
if [ "$BUILD" = "$top/build" ]; then flavour=()
elif [ "$BUILD" = "$top/build/debug" ]; then flavour=(DEBUG=1)
else echo "SKIP install: BUILD=$BUILD is neither build/ nor build/debug of this checkout"; exit 0
fi
command -v pkg-config >/dev/null || { echo "FAIL install: pkg-config missing (scripts/install-deps test)"; exit 1; }
command -v groff >/dev/null || { echo "FAIL install: groff missing (scripts/install-deps test)"; exit 1; }
tmp=$(mktemp -d /tmp/bsl_install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; failures=$((failures + 1)); shift; for l in "$@"; do printf '  %s\n' "$l" >&2; done; }
version_part() { sed -n "s/^#define BUDDYSLAB_VERSION_$1 *\([0-9][0-9]*\).*/\1/p" "$top/include/buddyslab.h"; }
major=$(version_part MAJOR)
version=$major.$(version_part MINOR).$(version_part PATCH)
case $version in [0-9]*.[0-9]*.[0-9]*) ;; *) echo "FAIL install: no version in buddyslab.h ($version)"; exit 1;; esac
mk() { make -s --no-print-directory -C "$top" "${flavour[@]}" "$@"; }

# ------------------------------------------------------------ 1. DESTDIR
stage=$tmp/stage
if ! mk install DESTDIR="$stage" >"$tmp/install.log" 2>&1; then
	fail install_destdir "$(tail -20 "$tmp/install.log")"; exit 1
fi
lib=$stage/usr/local/lib
want="/usr/local/bin/buddyslab
/usr/local/include/buddyslab.h
/usr/local/lib/libbuddyslab.a
/usr/local/lib/libbuddyslab.so
/usr/local/lib/libbuddyslab.so.$major
/usr/local/lib/libbuddyslab.so.$version
/usr/local/lib/pkgconfig/buddyslab.pc
/usr/local/share/man/man7/buddyslab.7"
got=$(cd "$stage" && find . ! -type d | sed 's|^\.||' | sort)
why=()
[ "$got" = "$want" ] || why+=("files: $(echo $got)")
[ "$(readlink "$lib/libbuddyslab.so.$major")" = "libbuddyslab.so.$version" ] || why+=("libbuddyslab.so.$major -> $(readlink "$lib/libbuddyslab.so.$major")")
[ "$(readlink "$lib/libbuddyslab.so")" = "libbuddyslab.so.$major" ] || why+=("libbuddyslab.so -> $(readlink "$lib/libbuddyslab.so")")
readelf -d "$lib/libbuddyslab.so.$version" | grep -q "SONAME.*\[libbuddyslab\.so\.$major\]" || why+=("soname: $(readelf -d "$lib/libbuddyslab.so.$version" | grep SONAME)")
[ -x "$stage/usr/local/bin/buddyslab" ] || why+=("launcher not executable")
[ "$(stat -c %a "$stage/usr/local/include/buddyslab.h")" = 644 ] || why+=("buddyslab.h mode $(stat -c %a "$stage/usr/local/include/buddyslab.h")")
cmp -s "$BUILD/libbuddyslab.a" "$lib/libbuddyslab.a" || why+=("libbuddyslab.a differs from $BUILD's")
if [ ${#why[@]} -eq 0 ]; then pass install_layout; else fail install_layout "${why[@]}"; fi

why=()
pc=$lib/pkgconfig/buddyslab.pc
grep -qx 'libdir=/usr/local/lib' "$pc" || why+=("pc: $(grep libdir= "$pc")")
grep -qx "Version: $version" "$pc" || why+=("pc: $(grep Version: "$pc")")
grep -qx "lib='/usr/local/lib/libbuddyslab.so.$major'" "$stage/usr/local/bin/buddyslab" || why+=("launcher: $(grep "^lib=" "$stage/usr/local/bin/buddyslab")")
grep -qx "version='$version'" "$stage/usr/local/bin/buddyslab" || why+=("launcher: $(grep "^version=" "$stage/usr/local/bin/buddyslab")")
left=$(grep -l -E '@[A-Z]+@' "$pc" "$stage/usr/local/bin/buddyslab" "$stage/usr/local/share/man/man7/buddyslab.7")
[ -z "$left" ] || why+=("placeholders left in: $left")
grep -rl "$stage" "$pc" "$stage/usr/local/bin/buddyslab" "$stage/usr/local/share/man/man7/buddyslab.7" >/dev/null && why+=("DESTDIR written into a file")
if [ ${#why[@]} -eq 0 ]; then pass install_substituted; else fail install_substituted "${why[@]}"; fi

export PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage
why=()
[ "$(pkg-config --modversion buddyslab 2>&1)" = "$version" ] || why+=("modversion: $(pkg-config --modversion buddyslab 2>&1)")
flags=$(echo $(pkg-config --cflags --libs buddyslab 2>&1))   # pkgconf ends with a space
[ "$flags" = "-I$stage/usr/local/include -L$lib -lbuddyslab" ] || why+=("--cflags --libs: $flags")
sflags=$(echo $(pkg-config --static --cflags --libs buddyslab 2>&1))
[ "$sflags" = "-I$stage/usr/local/include -L$lib -lbuddyslab -lpthread" ] || why+=("--static: $sflags")
if [ ${#why[@]} -eq 0 ]; then pass pkgconfig; else fail pkgconfig "${why[@]}"; fi

man=$stage/usr/local/share/man/man7/buddyslab.7
why=()
warn=$(groff -man -Tutf8 -ww -z "$man" 2>&1)
[ -z "$warn" ] || why+=("groff: $warn")
text=$(groff -man -Tascii -P-cbou -rLL=250n "$man" 2>/dev/null)
keys=$(sed -n 's/^[[:space:]]*{ "\([a-z_]*\)", K_[A-Z]*,.*/\1/p' "$top/src/config.c" | sort -u)
funcs=$(grep -o '\bbsl_[a-z_]*(' "$top/include/buddyslab.h" | tr -d '(' | sort -u)
[ "$(echo $keys | wc -w)" -ge 10 ] || why+=("found only these keys in src/config.c: $(echo $keys)")
[ "$(echo $funcs | wc -w)" -ge 7 ] || why+=("found only these functions in buddyslab.h: $(echo $funcs)")
for w in $keys $funcs; do
	grep -qw -- "$w" <<<"$text" || why+=("not described: $w")
done
grep -q "buddyslab $version" <<<"$text" || why+=("no version")
if [ ${#why[@]} -eq 0 ]; then pass "man_page ($(echo $keys | wc -w) keys, $(echo $funcs | wc -w) functions)"
else fail man_page "${why[@]}"; fi

cat > "$tmp/app.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <buddyslab.h>
int main(void)
{
	void *p = malloc(100), *q = malloc(200000);
	int ours = bsl_owns(p) == 1 && bsl_owns(q) == 1;
	free(p);
	free(q);
	int same = strcmp(bsl_version(), "buddyslab " BUDDYSLAB_VERSION) == 0;
	printf("allocator %s\nversion %s %s\n", ours ? "buddyslab" : "other", BUDDYSLAB_VERSION,
	       same ? "matches" : bsl_version());
	return !(ours && same);
}
C
cat > "$tmp/app.cc" <<'CC'
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>
#include <buddyslab.h>
struct alignas(128) A { char c[200]; };
int main()
{
	int *i = new int(4);
	A *a = new A;
	std::vector<std::string> v(100, std::string(500, 'v'));
	bool ours = bsl_owns(i) == 1 && bsl_owns(a) == 1 && ((size_t)a & 127) == 0 &&
		    bsl_owns(v.data()) == 1 && bsl_owns(v[99].data()) == 1;
	delete i;
	delete a;
	bool same = strcmp(bsl_version(), "buddyslab " BUDDYSLAB_VERSION) == 0;
	printf("allocator %s\nversion %s %s\n", ours ? "buddyslab" : "other", BUDDYSLAB_VERSION,
	       same ? "matches" : bsl_version());
	return !(ours && same);
}
CC
build_and_run() {   # name, compiler, source, static|shared
	local name=$1 cc=$2 src=$3 how=$4 exe=$tmp/$1 out rc
	local -a fl
	if [ "$how" = static ]; then fl=(-static $(pkg-config --static --cflags --libs buddyslab))
	else fl=($(pkg-config --cflags --libs buddyslab)); fi
	if ! $cc -O1 -o "$exe" "$src" "${fl[@]}" 2>"$exe.link"; then
		fail "$name" "$cc ${fl[*]}: $(grep -v 'warning: Using' "$exe.link" | head -10)"; return
	fi
	if [ "$how" = shared ] && ! readelf -d "$exe" | grep -q "NEEDED.*\[libbuddyslab\.so\.$major\]"; then
		fail "$name" "not linked by soname: $(readelf -d "$exe" | grep NEEDED)"; return
	fi
	if [ "$how" = static ] && readelf -d "$exe" 2>/dev/null | grep -q NEEDED; then
		fail "$name" "not static: $(readelf -d "$exe" | grep NEEDED)"; return
	fi
	out=$(LD_LIBRARY_PATH=$lib timeout -k 5 60 "$exe" 2>&1); rc=$?
	if [ $rc -eq 0 ] && [ "$out" = "$(printf 'allocator buddyslab\nversion %s matches' "$version")" ]; then
		pass "$name"
	else
		fail "$name" "status $rc" "$out"
	fi
}
build_and_run build_c_shared gcc "$tmp/app.c" shared
build_and_run build_cxx_shared g++ "$tmp/app.cc" shared
if [ -f /usr/lib/x86_64-linux-gnu/libc.a ]; then
	build_and_run build_c_static gcc "$tmp/app.c" static
	build_and_run build_cxx_static g++ "$tmp/app.cc" static
else
	echo "SKIP build_*_static: no libc.a (libc6-dev)"
fi
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

empty_after_uninstall() {   # name, root, make arguments...
	local name=$1 root=$2; shift 2
	if ! mk uninstall "$@" >"$tmp/uninstall.log" 2>&1; then
		fail "$name" "$(tail -20 "$tmp/uninstall.log")"; return
	fi
	local left
	left=$(find "$root" ! -type d)
	if [ -z "$left" ] && [ -d "$root" ]; then pass "$name"; else fail "$name" "left: $left"; fi
}
empty_after_uninstall uninstall_destdir "$stage" DESTDIR="$stage"

# ------------------------------------------------------------ 2. PREFIX
root=$tmp/root
if ! mk install PREFIX="$root" LDCONFIG=true >"$tmp/install2.log" 2>&1; then
	fail install_prefix "$(tail -20 "$tmp/install2.log")"; exit 1
fi
launcher=$root/bin/buddyslab
cat > "$tmp/probe.c" <<'C'
/* not linked with buddyslab: finds it in the process, if preloaded */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv)
{
	const char *(*version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "bsl_version");
	int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "bsl_owns");
	void (*conf)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "bsl_config_print");
	void *p = malloc(50);
	printf("preloaded %s\n", version && owns && conf && owns(p) == 1 ? version() : "no");
	printf("LD_PRELOAD=%s\nBUDDYSLAB_CONF=%s\n", getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "",
	       getenv("BUDDYSLAB_CONF") ? getenv("BUDDYSLAB_CONF") : "");
	char line[512];
	FILE *maps = fopen("/proc/self/maps", "r");
	while (maps && fgets(line, sizeof line, maps))
		if (strstr(line, "dummy.so")) { puts("dummy mapped"); break; }
	if (maps) fclose(maps);
	fflush(stdout);
	if (conf) conf(1);
	free(p);
	return argc > 1 ? atoi(argv[1]) : 0;
}
C
if ! gcc -O1 -o "$tmp/probe" "$tmp/probe.c" 2>"$tmp/probe.link" ||
   ! gcc -shared -fPIC -o "$tmp/dummy.so" -x c - <<<'int bsl_test_dummy = 1;' 2>>"$tmp/probe.link"; then
	fail launcher_build "$(head -10 "$tmp/probe.link")"; exit 1
fi
reallib=$root/lib/libbuddyslab.so.$major
has() { grep -qE -- "$1" <<<"$out"; }
conf_has() { grep -qE -- "(^|[[:space:]])$1([^0-9a-z_+]|\$)" <<<"$out"; }
launch() { out=$(cd "$tmp" && timeout -k 5 60 "$@" 2>&1); rc=$?; }

launch env -u LD_PRELOAD -u BUDDYSLAB_CONF "$launcher" --conf decay_ms:0 --conf=large_cache:0 --stats -- ./probe 42
if [ $rc -eq 42 ] && has "^preloaded buddyslab $version\$" && has "^LD_PRELOAD=$reallib\$" &&
   has '^BUDDYSLAB_CONF=decay_ms:0,large_cache:0,stats:1$' && conf_has decay_ms:0 && conf_has large_cache:0 &&
   conf_has stats:1 && has 'kmalloc-'; then
	pass launcher_conf_and_status
else
	fail launcher_conf_and_status "status $rc (42 expected)" "$out"
fi
launch env LD_PRELOAD="$tmp/dummy.so" BUDDYSLAB_CONF=tcache:0 "$launcher" --conf decay_ms:5 ./probe
if [ $rc -eq 0 ] && has "^preloaded buddyslab $version\$" && has "^LD_PRELOAD=$reallib $tmp/dummy.so\$" &&
   has '^dummy mapped$' && has '^BUDDYSLAB_CONF=tcache:0,decay_ms:5$' && conf_has tcache:0 && conf_has decay_ms:5; then
	pass launcher_keeps_environment
else
	fail launcher_keeps_environment "status $rc" "$out"
fi
launch env -u BUDDYSLAB_CONF "$launcher" --secure ./probe 3
if [ $rc -eq 3 ] && has '^BUDDYSLAB_CONF=secure:1$' && conf_has 'secure:(all|guard\+canary\+fill\+shuffle\+quarantine\+size0\+sized)'; then
	pass launcher_secure
else
	fail launcher_secure "status $rc" "$out"
fi
launch "$launcher" --version
if [ $rc -eq 0 ] && [ "$out" = "buddyslab $version" ]; then pass launcher_version
else fail launcher_version "status $rc" "$out"; fi
launch "$launcher" --help
if [ $rc -eq 0 ] && has '^usage: buddyslab \[options\] \[--\] program' && has -- '--profile PREFIX'; then pass launcher_help
else fail launcher_help "status $rc" "$out"; fi
launch "$launcher" --profile "$tmp/heap" ./probe
prof=$(ls "$tmp"/heap.*.0.heap 2>/dev/null | head -n 1)
if [ $rc -eq 0 ] && has '^preloaded ' && [ -n "$prof" ] && head -n 1 "$prof" | grep -q '^heap profile: .* @ heap_v2/'; then
	pass launcher_profile
else
	fail launcher_profile "status $rc, profile '${prof:-none}'" "$out"
fi
why=()
launch "$launcher" --profile "" ./probe
[ $rc -eq 2 ] && ! has '^preloaded ' || why+=("--profile '': status $rc: $out")
launch "$launcher" --bogus ./probe
[ $rc -eq 2 ] && has "unknown option '--bogus'" && ! has '^preloaded ' || why+=("--bogus: status $rc: $out")
launch "$launcher" --conf nocolon ./probe
[ $rc -eq 2 ] && ! has '^preloaded ' || why+=("--conf nocolon: status $rc: $out")
launch "$launcher" --stats
[ $rc -eq 2 ] && has 'no program' || why+=("no program: status $rc: $out")
if [ ${#why[@]} -eq 0 ]; then pass launcher_usage_errors; else fail launcher_usage_errors "${why[@]}"; fi

empty_after_uninstall uninstall_prefix "$root" PREFIX="$root" LDCONFIG=true
[ $failures -eq 0 ]
