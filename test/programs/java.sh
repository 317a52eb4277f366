#!/usr/bin/env bash
# java.sh - the JVM on the allocator under test: JavaWorkload.java (ConcurrentHashMap
# under threads that come and go, Deflater/Inflater round trips with half the native
# zlib state freed by the Cleaner thread, direct ByteBuffers).
#
# The JDK on PATH (openjdk 17 here), through its single-file source launcher, so the
# compiler runs on the allocator under test as well. -Xmx1g.
# Cases:
#   java-alloc   libbuddyslab in the JVM's /proc/self/maps (not, for glibc)
#   java         the workload exits 0 within 300 s and ends "java workload ok 4200000"
#                (10 rounds x 8 threads x 50,000 merges, plus 10 x 20,000 distinct keys)
. "$(dirname "$0")/lib.bash"
if ! command -v java >/dev/null || ! java -version 2>&1 | grep -qE 'version "(1[1-9]|[2-9][0-9])'; then
	skip java "no java 11 or later (package openjdk-17-jdk-headless)"; exit 0
fi
want="java workload ok 4200000"
( cd "$T" && under "$ALLOC" timeout -k 10 300 java -Xmx1g "$programs_dir/JavaWorkload.java" "$T/java.maps" ) \
	>"$T/java.log" 2>&1
rc=$?
check_maps java "$T/java.maps"
got=$(tail -n 1 "$T/java.log")
if [ $rc -eq 0 ] && [ "$got" = "$want" ]; then
	pass java; note "$(java -version 2>&1 | head -n 1): $(head -n 3 "$T/java.log" | tr '\n' ';')"
else
	fail_tail java "$T/java.log" "exit status $rc; want last line '$want', got '$got'"
fi
finish
