#!/usr/bin/env bash
# stats_signal.sh - BUDDYSLAB_CONF=stats_signal:N prints the views when the
# process gets signal N (here SIGUSR1, from itself and from another process),
# and the process carries on; without the key the signal keeps its default.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
LIB=${LIB:-$top/build/libbuddyslab.so}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/prog.c" <<'C'
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	char *keep[1000];
	for (int i = 0; i < 1000; i++)
		keep[i] = malloc(64);
	if (argc > 1 && strcmp(argv[1], "wait") == 0) {
		printf("ready\n");
		fflush(stdout);
		for (int i = 0; i < 200; i++) {   /* keep allocating while signalled */
			free(malloc(100));
			usleep(10000);
		}
	} else {
		raise(SIGUSR1);
	}
	for (int i = 0; i < 1000; i++)
		free(keep[i]);
	puts("done");
	return 0;
}
C
cc -O1 -o "$tmp/prog" "$tmp/prog.c" || exit 1

out=$(BUDDYSLAB_CONF=stats_signal:10 LD_PRELOAD="$LIB" "$tmp/prog" 2>"$tmp/err")
if [ "$out" = "done" ] && grep -q '^kmalloc-64 ' "$tmp/err" && grep -q '^buddyslab zone' "$tmp/err" &&
   grep -q '^buddyslab stats:' "$tmp/err"; then
	echo "PASS stats_signal_raise"
else
	echo "FAIL stats_signal_raise"; cat "$tmp/err" | head -5
fi

BUDDYSLAB_CONF=stats_signal:10 LD_PRELOAD="$LIB" "$tmp/prog" wait >"$tmp/out2" 2>"$tmp/err2" &
pid=$!
for i in $(seq 50); do grep -q ready "$tmp/out2" && break; sleep 0.1; done
kill -USR1 $pid; sleep 0.2; kill -USR1 $pid
wait $pid; rc=$?
n=$(grep -c '^kmalloc-64 ' "$tmp/err2")
if [ $rc -eq 0 ] && [ "$n" -eq 2 ] && grep -q done "$tmp/out2"; then
	echo "PASS stats_signal_from_outside"
else
	echo "FAIL stats_signal_from_outside (rc $rc, $n reports)"
fi

LD_PRELOAD="$LIB" "$tmp/prog" >/dev/null 2>&1; rc=$?
if [ $rc -eq $((128 + 10)) ]; then
	echo "PASS stats_signal_off_by_default"
else
	echo "FAIL stats_signal_off_by_default (rc $rc)"
fi
