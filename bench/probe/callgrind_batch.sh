#!/bin/bash
# callgrind_batch.sh LIB [SIZE...] - instructions per malloc+free pair in a loop of
# 1,000 mallocs then 1,000 frees (batch.c), LIB preloaded ("" for glibc). The count is the
# difference between a 20-round and a 10-round run, so start-up cancels out.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
lib=$1; shift
bin=$(mktemp); trap 'rm -f "$bin"' EXIT
cc -O2 -o "$bin" "$dir/batch.c"
run() { LD_PRELOAD=$lib valgrind --tool=callgrind --callgrind-out-file=/dev/null \
	--soname-synonyms=somalloc=nouserintercepts "$bin" "$1" "$2" 2>&1 | sed -n 's/.*Collected : *//p'; }
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(16 200 1000 4000 16000)
for n in "${sizes[@]}"; do
	a=$(run "$n" 10); b=$(run "$n" 20)
	echo "$n $(( (b - a) / 10000 ))"
done
