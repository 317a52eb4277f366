#!/usr/bin/env bash
# redis.sh - a Redis server of its own on the allocator under test: a known data set of
# 12,000+ keys of 1 B .. 1 MiB written, churned, hammered by redis-benchmark, then every
# key read back and compared byte for byte.
#
# Debian's redis-server on a free port of 127.0.0.1, no persistence (no RDB, no AOF,
# its own directory under $T), deletes freed lazily by its background
# thread (so blocks are freed by other threads than the ones that allocated them).
# Debian links Redis with jemalloc; preloaded, malloc/free/realloc/malloc_usable_size
# bind to buddyslab and jemalloc only answers the mallctl statistics calls.
# Cases:
#   redis-start      the server answers PING
#   redis-alloc      libbuddyslab in the server's /proc/PID/maps (not, for glibc)
#   redis-write      redis_data.py write: every command answered without error
#   redis-benchmark  redis-benchmark, bounded by request count (-n), exits 0, twice:
#                    the default commands with 100-byte values, SET/GET of 64 KiB values
#   redis-verify     redis_data.py verify: every key of the data set as written
#   redis-shutdown   SHUTDOWN NOSAVE: the server exits 0, no crash report in its log
. "$(dirname "$0")/lib.bash"
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
	skip redis "no redis-server / redis-benchmark (packages redis-server, redis-tools)"; exit 0
fi
data=$(dirname "$0")/redis_data.py
port=$(free_port)
mkdir -p "$T/redis"
"${ALLOC_ENV[@]}" redis-server --port "$port" --bind 127.0.0.1 --protected-mode no \
	--save '' --appendonly no --dir "$T/redis" --logfile "$T/redis.log" --daemonize no \
	--lazyfree-lazy-user-del yes --lazyfree-lazy-server-del yes --maxmemory 0 &
srv=$!
on_exit 'kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null'
if wait_port "$port" 30 && [ "$(timeout 10 redis-cli -p "$port" ping 2>&1)" = PONG ]; then
	pass redis-start
else
	fail_tail redis-start "$T/redis.log" "the server did not answer PING on port $port"; finish
fi
pid=$(/usr/bin/python3 "$data" "$port" pid)
check_alloc redis "$pid"

t0=$(date +%s)
if timeout -k 5 600 /usr/bin/python3 "$data" "$port" write >"$T/write.log" 2>&1; then
	pass redis-write; note "redis: $(tail -n 1 "$T/write.log")"
else
	fail_tail redis-write "$T/write.log" "writing the data set failed"
fi

note "redis: writing took $(($(date +%s) - t0)) s"; t0=$(date +%s)
bench_ok=yes
under "$ALLOC" timeout -k 5 300 redis-benchmark -p "$port" -n 20000 -c 16 -P 4 -r 10000 -q \
	-t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset \
	>"$T/bench1.log" 2>&1 || bench_ok=no
under "$ALLOC" timeout -k 5 300 redis-benchmark -p "$port" -n 4000 -c 8 -r 1000 -d 65536 -q \
	-t set,get >"$T/bench2.log" 2>&1 || bench_ok=no
if [ $bench_ok = yes ] && grep -q 'requests per second' "$T/bench1.log" && grep -q 'requests per second' "$T/bench2.log"; then
	pass redis-benchmark
else
	cat "$T/bench1.log" "$T/bench2.log" >"$T/bench.log"
	fail_tail redis-benchmark "$T/bench.log" "redis-benchmark failed"
fi

note "redis: redis-benchmark took $(($(date +%s) - t0)) s"; t0=$(date +%s)
if timeout -k 5 600 /usr/bin/python3 "$data" "$port" verify >"$T/verify.log" 2>&1; then
	pass redis-verify; note "redis: $(tail -n 1 "$T/verify.log")"
else
	fail_tail redis-verify "$T/verify.log" "the data read back differs from the data written"
fi

note "redis: verifying took $(($(date +%s) - t0)) s"
timeout 30 redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
timeout 60 tail --pid="$pid" -f /dev/null
wait "$srv"; rc=$?
if [ $rc -eq 0 ] && ! grep -qE 'crashed by signal|REDIS BUG REPORT|^buddyslab' "$T/redis.log"; then
	pass redis-shutdown
else
	fail_tail redis-shutdown "$T/redis.log" "the server exited with status $rc; its log:"
fi
finish
