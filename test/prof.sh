#!/usr/bin/env bash
# prof.sh - heap profiles (BUDDYSLAB_CONF=prof:1) read back with google-pprof.
# test/prof_sites.c allocates 60%, 30% and 10% of its bytes in three
# functions from four threads and keeps only some of site_thirty's blocks;
# google-pprof --text must give each function its share of the allocated
# bytes within 4 points, the total within 10%, and the in-use bytes to
# site_thirty. Also: the dump at exit (prof_final), on a signal
# (prof_signal), every prof_interval bytes, from a forked child, under
# secure:1, in a static link, and bsl_prof_dump refused with prof:0.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$top/build}
LIB=${LIB:-$B/libbuddyslab.so}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if ! command -v google-pprof >/dev/null; then
	echo "SKIP prof: google-pprof missing (package google-perftools)"; exit 0
fi
pass() { echo "PASS prof_$1${2:+ $2}"; }
fail() { echo "FAIL prof_$1: $2"; }
cc -O1 -g -I"$top/include" -o "$tmp/shared" "$top/test/prof_sites.c" "$LIB" \
	-Wl,-rpath,"$(dirname "$LIB")" -lpthread || { fail build "cc (shared)"; exit 1; }
cc -O1 -g -I"$top/include" -o "$tmp/static" "$top/test/prof_sites.c" "$B/libbuddyslab.a" \
	-lpthread || { fail build "cc (static)"; exit 1; }
RATE=8192

# shares NAME PROGRAM PROFILE [MODE]: the allocated-bytes split and total
shares() {
	local name=$1 prog=$2 prof=$3
	google-pprof --text --alloc_space "$prog" "$prof" >"$tmp/$name.txt" 2>"$tmp/$name.err"
	python3 - "$tmp/$name.txt" "$name" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"Total: ([\d.]+) MB", text)
got = {}
for line in text.splitlines():
    f = line.split()
    if len(f) >= 6 and f[-1] in ("site_sixty", "site_thirty", "site_ten"):
        got[f[-1]] = float(f[1].rstrip("%"))
want = {"site_sixty": 60, "site_thirty": 30, "site_ten": 10}
total = float(m.group(1)) * 1024 * 1024 if m else 0
exp = 4 * 25000 * 1000
bad = [f"{k} {got.get(k, 0):.1f}% (want {v}%)" for k, v in want.items() if abs(got.get(k, 0) - v) > 4]
if not m or abs(total - exp) > exp * 0.10:
    bad.append(f"total {total / 1e6:.1f} MB (want {exp / 1e6:.0f} MB within 10%)")
shown = ", ".join(f"{k} {got.get(k, 0):.1f}%" for k in want) + f", total {total / 1e6:.1f} MB"
print(("PASS prof_" if not bad else "FAIL prof_") + sys.argv[2] + f" ({shown})" + ("" if not bad else ": " + "; ".join(bad)))
PY
}

# 1. preloaded (linked with the .so), an explicit dump
PROF_OUT=$tmp/a.heap BUDDYSLAB_CONF=prof:1,prof_sample:$RATE,prof_final:0 "$tmp/shared" >"$tmp/a.out"
if head -n 1 "$tmp/a.heap" 2>/dev/null | grep -q "^heap profile: .* @ heap_v2/$RATE$" &&
   grep -q '^MAPPED_LIBRARIES:$' "$tmp/a.heap"; then
	pass format
else
	fail format "no heap_v2 header or MAPPED_LIBRARIES in $tmp/a.heap"
fi
shares alloc_shares "$tmp/shared" "$tmp/a.heap"
google-pprof --text --inuse_space "$tmp/shared" "$tmp/a.heap" >"$tmp/inuse.txt" 2>/dev/null
python3 - "$tmp/inuse.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"Total: ([\d.]+) MB", text)
share = 0
for line in text.splitlines():
    f = line.split()
    if len(f) >= 6 and f[-1] == "site_thirty":
        share = float(f[1].rstrip("%"))
total = float(m.group(1)) * 1024 * 1024 if m else 0
exp = 4 * 1000 * 300
ok = share >= 95 and abs(total - exp) <= exp * 0.25
print(("PASS" if ok else "FAIL") + f" prof_inuse (site_thirty {share:.1f}% of {total / 1e6:.2f} MB in use; "
      f"kept {exp / 1e6:.2f} MB)")
PY

# 2. the dump at exit, prof_prefix
BUDDYSLAB_CONF=prof:1,prof_sample:$RATE,prof_prefix:$tmp/final "$tmp/shared" >/dev/null
f=$(ls "$tmp"/final.*.0.heap 2>/dev/null | head -n 1)
if [ -n "$f" ] && head -n 1 "$f" | grep -q '^heap profile:'; then pass final; else fail final "no $tmp/final.PID.0.heap"; fi

# 3. on a signal (SIGUSR1 = 10), then at exit: two dumps
BUDDYSLAB_CONF=prof:1,prof_sample:$RATE,prof_signal:10,prof_prefix:$tmp/sig "$tmp/shared" signal >/dev/null
n=$(ls "$tmp"/sig.*.heap 2>/dev/null | wc -l)
if [ "$n" -eq 2 ]; then pass signal; else fail signal "$n dumps, want 2 (signal, exit)"; fi

# 4. every 20 MB of the 100 MB allocated (estimated from the samples)
BUDDYSLAB_CONF=prof:1,prof_sample:$RATE,prof_interval:20m,prof_final:0,prof_prefix:$tmp/iv "$tmp/shared" >/dev/null
n=$(ls "$tmp"/iv.*.heap 2>/dev/null | wc -l)
if [ "$n" -ge 3 ] && [ "$n" -le 7 ]; then pass interval "($n dumps)"; else fail interval "$n dumps, want about 5"; fi

# 5. a forked child's own dump
PROF_OUT=$tmp/f.heap BUDDYSLAB_CONF=prof:1,prof_sample:$RATE,prof_final:0 "$tmp/shared" fork >/dev/null
if [ -s "$tmp/f.heap.child" ] &&
   google-pprof --text --alloc_space "$tmp/shared" "$tmp/f.heap.child" 2>/dev/null | grep -q site_sixty; then
	pass fork
else
	fail fork "no child profile naming site_sixty"
fi

# 6. secure:1 and a static link
PROF_OUT=$tmp/s.heap BUDDYSLAB_CONF=prof:1,prof_sample:$RATE,prof_final:0,secure:1 "$tmp/shared" >/dev/null
shares secure_shares "$tmp/shared" "$tmp/s.heap"
PROF_OUT=$tmp/st.heap BUDDYSLAB_CONF=prof:1,prof_sample:$RATE,prof_final:0 "$tmp/static" >/dev/null
shares static_shares "$tmp/static" "$tmp/st.heap"

# 7. profiling off
r=$("$tmp/shared" off)
if [ "$r" = refused ]; then pass off; else fail off "bsl_prof_dump with prof:0: $r"; fi
