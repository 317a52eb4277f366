#!/usr/bin/env bash
# node.sh - Node.js on the allocator under test: node_workload.js (a large object graph
# through JSON and structured clones, worker threads in waves, zlib, Buffers).
#
# The interpreter is /usr/bin/node (Debian's nodejs package, or the one the machine
# came with), run with --expose-gc so the workload can force collections.
# Cases:
#   node-alloc   libbuddyslab in node's /proc/self/maps (not, for glibc)
#   node         the workload exits 0 within 300 s and its last line carries the digest
#                of its data ("node workload ok <digest>"), the same under every
#                allocator: the data are a pure function of the seeds
. "$(dirname "$0")/lib.bash"
NODE=/usr/bin/node
if [ ! -x $NODE ]; then skip node "no $NODE (package nodejs)"; exit 0; fi
want="node workload ok 9a55f8df0653d74bcb329036b6fbc268"
( cd "$T" && under "$ALLOC" timeout -k 10 300 $NODE --expose-gc "$programs_dir/node_workload.js" "$T/node.maps" ) \
	>"$T/node.log" 2>&1
rc=$?
check_maps node "$T/node.maps"
got=$(tail -n 1 "$T/node.log")
if [ $rc -eq 0 ] && [ "$got" = "$want" ]; then
	pass node; note "node $($NODE --version): $(head -n 3 "$T/node.log" | tr '\n' ';')"
else
	fail_tail node "$T/node.log" "exit status $rc; want last line '$want', got '$got'"
fi
finish
