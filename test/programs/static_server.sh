#!/usr/bin/env bash
# static_server.sh - static_server.c linked with libbuddyslab.a (not preloaded): a
# thread-per-connection TCP server on 127.0.0.1 and 32 client threads checking every
# byte of every answer (see the header of static_server.c).
#
# Under BSL_GLIBC=1 the same source is built with -DWITH_BUDDYSLAB=0 and no library.
# Cases:
#   static_server-build   cc ... static_server.c $BUILD/libbuddyslab.a builds
#   static_server-alloc   the server's report says whose malloc it ran on (bsl_owns of a
#                         block it allocated), buddyslab or glibc as asked
#   static_server         32 threads x 4 connections x 50 requests (GEN and ECHO, 1 B ..
#                         256 KiB), no answer differs, the client and the server exit 0,
#                         the server ran 129 connections (the last one says QUIT)
#                         and 6,400 requests
. "$(dirname "$0")/lib.bash"
CC=${CC:-cc}
if [ "$ALLOC" = buddyslab ]; then link=("$BUILD/libbuddyslab.a"); def=-DWITH_BUDDYSLAB=1
else link=(); def=-DWITH_BUDDYSLAB=0; fi
if $CC -std=gnu11 -O2 -g -Wall -Wextra -pthread $def -I"$top/include" -o "$T/static_server" \
	"$programs_dir/static_server.c" "${link[@]}" -lpthread >"$T/build.log" 2>&1; then
	pass static_server-build
else
	fail_tail static_server-build "$T/build.log" "the build failed"; finish
fi
env -u LD_PRELOAD timeout -k 5 300 "$T/static_server" server "$T/port" >"$T/server.log" 2>&1 &
srv=$!
on_exit 'kill "$srv" 2>/dev/null'
for ((i = 0; i < 100; i++)); do [ -s "$T/port" ] && break; sleep 0.1; done
port=$(cat "$T/port" 2>/dev/null)
if [ -z "$port" ]; then fail_tail static_server "$T/server.log" "the server wrote no port"; finish; fi
env -u LD_PRELOAD timeout -k 5 240 "$T/static_server" client "$port" 32 4 50 >"$T/client.log" 2>&1
crc=$?
env -u LD_PRELOAD timeout 10 "$T/static_server" quit "$port"
wait "$srv"; src=$?
report=$(grep '^server:' "$T/server.log")
if grep -q "alloc: $ALLOC\$" <<<"$report"; then pass static_server-alloc
else fail static_server-alloc "want 'alloc: $ALLOC' in the server's report: ${report:-none}"; fi
if [ $crc -eq 0 ] && [ $src -eq 0 ] && grep -q ' 0 mismatches$' "$T/client.log" &&
	grep -q '^server: 129 connections, 6400 requests' <<<"$report"; then
	pass static_server; note "$(cat "$T/client.log")"; note "$report"
else
	cat "$T/client.log" >>"$T/server.log"
	fail_tail static_server "$T/server.log" "client exit status $crc, server exit status $src; server and client output:"
fi
finish
