#!/usr/bin/env bash
# postgresql.sh - a PostgreSQL server of its own on the allocator under test: initdb,
# pgbench's TPC-B-like load, then the books must balance and the indexes must check.
#
# Debian's PostgreSQL (the newest /usr/lib/postgresql/*/bin). The server never runs as
# root: as root (CI) it runs as the system user "postgres" (or "nobody"), in a data
# directory under $T that the user owns; the library is copied into $T so that user
# can read it wherever the checkout is. Port: a free one on 127.0.0.1; the Unix socket
# sits in $T too, so a server of the machine's own on 5432 is never touched.
# Cases (each program preloaded: initdb, the postmaster and its backends, pgbench):
#   postgresql-initdb       initdb -D ... succeeds
#   postgresql-alloc        libbuddyslab in the postmaster's /proc/PID/maps (not, for glibc)
#   postgresql-pgbench-init pgbench -i -s 2: 200,000 accounts
#   postgresql-pgbench      pgbench -T 20 -c 4 -j 2: exit 0, transactions done, none failed
#   postgresql-balance      sum(abalance) = sum(tbalance) = sum(bbalance) = sum(history.delta),
#                           history rows = transactions pgbench reported
#   postgresql-queries      a sort, a hash aggregate and a self-join over the accounts give
#                           the numbers they must
#   postgresql-amcheck      pg_amcheck (heap and every btree, heapallindexed) finds nothing
#   postgresql-shutdown     a fast shutdown, exit 0, no backend died of a signal, no
#                           buddyslab message in the server log
. "$(dirname "$0")/lib.bash"
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ] || [ ! -x "$bindir/postgres" ] || ! command -v pgbench >/dev/null; then
	skip postgresql "no PostgreSQL server (package postgresql)"; exit 0
fi
PGBENCH=$bindir/pgbench; [ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench)

# who runs the server, and how
as_user() { "$@"; }
if [ "$(id -u)" = 0 ]; then
	user=postgres; id -u $user >/dev/null 2>&1 || user=nobody
	as_user() { runuser -u "$user" -- "$@"; }
fi
cp "$LIB" "$T/libbuddyslab.so" 2>/dev/null; chmod 644 "$T/libbuddyslab.so" 2>/dev/null
srv_lib=$T/libbuddyslab.so
if [ "$ALLOC" = buddyslab ]; then srv_env=(env LD_PRELOAD="$srv_lib"); else srv_env=(env -u LD_PRELOAD); fi
mkdir -p "$T/pg/sock"
[ "$(id -u)" = 0 ] && chown -R "$user" "$T/pg"
data=$T/pg/data log=$T/pg/server.log

if as_user "${srv_env[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-sync \
	>"$T/initdb.log" 2>&1; then
	pass postgresql-initdb
else
	fail_tail postgresql-initdb "$T/initdb.log" "initdb failed"; finish
fi

port=$(free_port)
as_user "${srv_env[@]}" "$bindir/postgres" -D "$data" -p "$port" -c listen_addresses=127.0.0.1 \
	-c unix_socket_directories="$T/pg/sock" -c fsync=off -c shared_buffers=64MB \
	-c max_connections=20 -c logging_collector=off >"$log" 2>&1 &
on_exit 'pg_stop'
pg_stop() {   # stop the server if it still runs
	local pid; pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null) || return 0
	kill -INT "$pid" 2>/dev/null || return 0
	local i; for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
}
ready=no
for ((i = 0; i < 600; i++)); do
	if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres 2>/dev/null; then ready=yes; break; fi
	sleep 0.1
done
if [ $ready = no ]; then
	fail_tail postgresql-start "$log" "the server did not accept connections on port $port within 60 s"; finish
fi
pm=$(head -n 1 "$data/postmaster.pid")
check_alloc postgresql "$pm"

export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
psql_q() { under "$ALLOC" timeout -k 5 300 "$bindir/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

if under "$ALLOC" timeout -k 5 600 "$PGBENCH" -i -s 2 -q >"$T/init.log" 2>&1 &&
	[ "$(psql_q -c 'SELECT count(*) FROM pgbench_accounts' 2>>"$T/init.log")" = 200000 ]; then
	pass postgresql-pgbench-init
else
	fail_tail postgresql-pgbench-init "$T/init.log" "pgbench -i -s 2 failed or the accounts are not 200,000"; finish
fi

under "$ALLOC" timeout -k 5 120 "$PGBENCH" -T 20 -c 4 -j 2 -n >"$T/bench.log" 2>&1
rc=$?
done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$T/bench.log")
failed_tx=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$T/bench.log")
if [ $rc -eq 0 ] && [ "${done_tx:-0}" -gt 0 ] && [ "${failed_tx:-0}" = 0 ]; then
	pass postgresql-pgbench
	note "postgresql: pgbench -T 20 -c 4 -j 2: $done_tx transactions, $(grep -o 'tps = [0-9.]*' "$T/bench.log" | head -n 1)"
else
	fail_tail postgresql-pgbench "$T/bench.log" "exit status $rc, transactions ${done_tx:-?}, failed ${failed_tx:-?}"
fi

# Every TPC-B transaction adds one delta to an account, its teller and its branch and
# records it in history: all four sums must agree, and history holds one row per transaction.
sums=$(psql_q -c "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' ||
	(SELECT sum(tbalance) FROM pgbench_tellers) || ' ' || (SELECT sum(bbalance) FROM pgbench_branches)
	|| ' ' || (SELECT coalesce(sum(delta), 0) FROM pgbench_history) || ' ' || (SELECT count(*) FROM pgbench_history)" 2>&1)
read -r sa st sb sh nh <<<"$sums"
if [ -n "${nh:-}" ] && [ "$sa" = "$st" ] && [ "$st" = "$sb" ] && [ "$sb" = "$sh" ] && [ "$nh" = "${done_tx:-}" ]; then
	pass postgresql-balance
	note "postgresql: balances $sa in accounts, tellers, branches and history; $nh history rows"
else
	fail postgresql-balance "accounts, tellers, branches, history sums and history rows: $sums" \
		"(pgbench reported ${done_tx:-?} transactions)"
fi

# Queries whose answers are known: 200,000 distinct md5s of the account ids (a sort of
# 200,000 text values), a hash aggregate over aid % 1000, a join of the table with itself.
got=$(psql_q -c "SET work_mem = '64MB'" -c "SELECT count(DISTINCT md5(aid::text)) FROM pgbench_accounts" \
	-c "SELECT count(*), sum(n) FROM (SELECT aid % 1000 AS k, count(*) AS n FROM pgbench_accounts GROUP BY 1) g" \
	-c "SELECT count(*) FROM pgbench_accounts a JOIN pgbench_accounts b ON b.aid = a.aid + 1" 2>&1 | tr '\n' ' ')
if [ "$got" = "200000 1000|200000 199999 " ]; then
	pass postgresql-queries
else
	fail postgresql-queries "expected '200000 1000|200000 199999 ', got '$got'"
fi

if [ -x "$bindir/pg_amcheck" ]; then
	if under "$ALLOC" timeout -k 5 300 "$bindir/pg_amcheck" --install-missing --heapallindexed \
		--rootdescend postgres >"$T/amcheck.log" 2>&1; then
		pass postgresql-amcheck
	else
		fail_tail postgresql-amcheck "$T/amcheck.log" "pg_amcheck found a problem or failed"
	fi
else
	skip postgresql-amcheck "no pg_amcheck in $bindir"
fi

as_user "$bindir/pg_ctl" stop -D "$data" -m fast -w -t 60 >"$T/stop.log" 2>&1
rc=$?
sleep 0.2
if [ $rc -eq 0 ] && ! kill -0 "$pm" 2>/dev/null &&
	! grep -qE 'terminated by signal|was terminated|TRAP:|^buddyslab' "$log"; then
	pass postgresql-shutdown
else
	fail_tail postgresql-shutdown "$log" "pg_ctl stop: exit status $rc; server log:"
fi
finish
