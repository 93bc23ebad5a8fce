#!/usr/bin/env bash
# stores.sh: throwaway PostgreSQL and Redis servers in a directory, on loopback.
# The one place that knows how to start, stop and kill the test stores; used by
# tests/run.sh (the shared pair), by itest.c (private instances for restart and
# kill tests) and by deploy/dev/run-local.sh (make run).
#
#   stores.sh pg-start DIR [PORT]       initdb (or copy STORES_PG_TEMPLATE) if DIR/pg
#                                       is empty, start; prints the URL
#   stores.sh pg-template DIR           initdb a cluster to copy; prints its data dir
#   stores.sh redis-start DIR [PORT] [PASSWORD]   start; prints the URL
#   stores.sh pg-stop|pg-kill DIR       clean stop | SIGKILL
#   stores.sh redis-stop|redis-kill DIR
#   stores.sh stop DIR                  stop both, whichever run in DIR
#
# PostgreSQL refuses to run as root: as root, DIR/pg is owned by and run as the
# `postgres` user (created by the postgresql-15 package). fsync is off: these
# are throwaway servers. A port of 0 or none picks a free one.
set -euo pipefail

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}

die() { echo "stores.sh: $*" >&2; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Below the ephemeral range (32768-60999): the suite's own outgoing
# connections could take a port from there before the server binds it.
free_port() {
	local p tries=0
	while [ $tries -lt 200 ]; do
		p=$((10000 + RANDOM % 22000))
		if ! port_in_use "$p"; then echo "$p"; return; fi
		tries=$((tries + 1))
	done
	die "no free port found"
}

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A new cluster in DIR/pg/data: a copy of STORES_PG_TEMPLATE when that names
# one (tests/run.sh makes it once per run with pg-template: initdb costs
# about 2 CPU seconds, and a run starts several private servers), else initdb.
pg_init() {
	local dir=$1 template=${STORES_PG_TEMPLATE:-}
	if [ -n "$template" ] && [ -f "$template/PG_VERSION" ]; then
		as_pg cp -a "$template" "$dir/pg/data" && return 0
		rm -rf "$dir/pg/data"
	fi
	as_pg "$PGBIN/initdb" -D "$dir/pg/data" -U postgres --auth=trust -E UTF8 \
		--locale=C.UTF-8 --no-sync >"$dir/pg/initdb.log" 2>&1 ||
		{ cat "$dir/pg/initdb.log" >&2; die "initdb failed"; }
}

# A cluster never started, for STORES_PG_TEMPLATE; prints its data dir.
pg_template() {
	local dir=$1
	[ -x "$PGBIN/initdb" ] || die "PostgreSQL server binaries not found (install postgresql-15; run make deps)"
	pg_own_dir "$dir"
	STORES_PG_TEMPLATE= pg_init "$dir"
	echo "$dir/pg/data"
}

pg_own_dir() {
	local dir=$1
	mkdir -p "$dir/pg"
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || die "user postgres missing (install postgresql-15)"
		chown postgres "$dir" "$dir/pg"
		chmod 0755 "$dir"
	fi
}

pg_start() {
	local dir=$1 port=${2:-0}
	[ -x "$PGBIN/postgres" ] || die "PostgreSQL server binaries not found (install postgresql-15; run make deps)"
	pg_own_dir "$dir"
	[ -f "$dir/pg/data/PG_VERSION" ] || pg_init "$dir"
	[ "$port" != 0 ] || port=$(cat "$dir/pg/port" 2>/dev/null || free_port)
	echo "$port" >"$dir/pg/port"
	as_pg "$PGBIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 60 \
		-o "-p $port -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off \
-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
-c shared_buffers=256MB -c max_wal_size=4GB -c log_min_messages=warning" start \
		>/dev/null || { tail -n 20 "$dir/pg/server.log" >&2; die "postgres did not start"; }
	echo "postgresql://postgres@127.0.0.1:$port/postgres"
}

pg_stop() {
	local dir=$1 mode=${2:-fast}
	[ -f "$dir/pg/data/postmaster.pid" ] || return 0
	if [ "$mode" = kill ]; then
		local pid; pid=$(head -n 1 "$dir/pg/data/postmaster.pid")
		kill -KILL "$pid" 2>/dev/null || true
		# children exit when the postmaster dies; wait so the port is free
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
		pkill -KILL -f -- "-D $dir/pg/data" 2>/dev/null || true
		for _ in $(seq 1 100); do pgrep -f -- "$dir/pg" >/dev/null || break; sleep 0.05; done
	else
		as_pg "$PGBIN/pg_ctl" -D "$dir/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			pg_stop "$dir" kill
	fi
}

redis_start() {
	local dir=$1 port=${2:-0} pass=${3:-}
	command -v redis-server >/dev/null || die "redis-server not found (install redis-server; run make deps)"
	mkdir -p "$dir/redis"
	[ "$port" != 0 ] || port=$(cat "$dir/redis/port" 2>/dev/null || free_port)
	echo "$port" >"$dir/redis/port"
	local args=(--port "$port" --bind 127.0.0.1 --dir "$dir/redis" --daemonize yes
		--pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log"
		--save "" --appendonly no --protected-mode no)
	if [ -n "$pass" ]; then
		# the password goes through a config file, never argv
		umask 077
		printf 'requirepass "%s"\n' "$pass" >"$dir/redis/auth.conf"
		args=("$dir/redis/auth.conf" "${args[@]}")
	fi
	redis-server "${args[@]}" >/dev/null || die "redis-server did not start"
	for _ in $(seq 1 200); do
		port_in_use "$port" && break
		sleep 0.05
	done
	port_in_use "$port" || { tail -n 20 "$dir/redis/redis.log" >&2; die "redis did not listen on $port"; }
	if [ -n "$pass" ]; then echo "redis://:$pass@127.0.0.1:$port/0"; else echo "redis://127.0.0.1:$port/0"; fi
}

redis_stop() {
	local dir=$1 sig=${2:-TERM}
	[ -f "$dir/redis/redis.pid" ] || return 0
	local pid; pid=$(cat "$dir/redis/redis.pid")
	kill -"$sig" "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$dir/redis/redis.pid"
}

# A port picked here can still be taken by a parallel test before the server
# binds it: with no port asked for and none remembered, try up to 3 ports.
start_on_free_port() {
	local fn=$1 kind=$2 dir=$3 port=$4
	shift 4
	if [ "$port" != 0 ] || [ -f "$dir/$kind/port" ]; then "$fn" "$dir" "$port" "$@"; return; fi
	local attempt
	for attempt in 1 2 3; do
		( "$fn" "$dir" 0 "$@" ) && return 0
		rm -f "$dir/$kind/port"
		echo "stores.sh: retrying $kind on another port" >&2
	done
	return 1
}

cmd=${1:-}; dir=${2:-}
# A port for a server of a benchmark's own (nginx), from the same range.
[ "$cmd" = free-port ] && { free_port; exit 0; }
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: stores.sh free-port | pg-start|pg-template|redis-start|pg-stop|pg-kill|redis-stop|redis-kill|stop DIR [PORT] [PASSWORD]"
case "$cmd" in
pg-start) start_on_free_port pg_start pg "$dir" "${3:-0}" ;;
pg-template) pg_template "$dir" ;;
redis-start) start_on_free_port redis_start redis "$dir" "${3:-0}" "${4:-}" ;;
pg-stop) pg_stop "$dir" fast ;;
pg-kill) pg_stop "$dir" kill ;;
redis-stop) redis_stop "$dir" TERM ;;
redis-kill) redis_stop "$dir" KILL ;;
stop) redis_stop "$dir" TERM; pg_stop "$dir" fast ;;
*) die "unknown command $cmd" ;;
esac
