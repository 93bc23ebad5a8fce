#!/usr/bin/env bash
# run-local.sh: the local stack behind `make run`, on embedded defaults.
# PostgreSQL and Redis run from ./.run/ (not system services; data kept between
# runs), migrations are applied, and the upstream is the simulator on loopback
# unless UPSTREAM_KEYS names a real service key. Then the roles that this build
# has are started. Ctrl-C stops everything it started.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUN=${RUN_DIR:-$ROOT/.run}
mkdir -p "$RUN"
chmod 0755 "$RUN"
pids=()

stop_all() {
	trap - EXIT INT TERM
	echo
	echo "stopping..."
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	"$ROOT/tests/harness/stores.sh" stop "$RUN" || true
	echo "stopped (data kept in $RUN; remove it to start afresh)"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

pg_admin=$("$ROOT/tests/harness/stores.sh" pg-start "$RUN" "${PG_PORT:-0}")
redis_url=$("$ROOT/tests/harness/stores.sh" redis-start "$RUN" "${REDIS_PORT:-0}")
psql -q "$pg_admin" -tAc "SELECT 1 FROM pg_database WHERE datname = 'evcharger'" | grep -q 1 ||
	psql -q "$pg_admin" -c "CREATE DATABASE evcharger"
export DATABASE_URL=${pg_admin%/postgres}/evcharger
export REDIS_URL=$redis_url
echo "PostgreSQL: $DATABASE_URL"
echo "Redis:      $REDIS_URL"

"$ROOT/bin/ingestd" migrate

if [ -z "${UPSTREAM_KEYS:-}" ]; then
	rm -f "$RUN/sim.port"
	"$ROOT/bin/upstream-sim" --port 0 --port-file "$RUN/sim.port" \
		--chargers "${SIM_CHARGERS:-10000}" --keys local-dev-key --clock real \
		>"$RUN/upstream-sim.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 100); do [ -s "$RUN/sim.port" ] && break; sleep 0.05; done
	[ -s "$RUN/sim.port" ] || { echo "upstream-sim did not start; see $RUN/upstream-sim.log" >&2; exit 1; }
	export UPSTREAM_URL="http://127.0.0.1:$(cat "$RUN/sim.port")/B552584/EvCharger"
	export UPSTREAM_KEYS=local-dev-key
	echo "Upstream:   simulator at $UPSTREAM_URL ($RUN/upstream-sim.log)"
fi

have_command() { "$ROOT/bin/$1" --help 2>/dev/null | grep -qE "^  $2 "; }

if have_command ingestd chargers; then
	echo "loading charger master data (ingestd chargers)..."
	"$ROOT/bin/ingestd" chargers
fi

for role in realtimed apid; do
	"$ROOT/bin/$role" >"$RUN/$role.log" 2>&1 &
	pid=$!
	sleep 0.5
	if kill -0 "$pid" 2>/dev/null; then
		pids+=("$pid")
		echo "$role running (log: $RUN/$role.log)"
	else
		echo "$role is not available in this build: $(tail -n 1 "$RUN/$role.log")"
	fi
done
echo "APID: http://127.0.0.1:${APID_PORT:-8080}/stations?latitude=37.5&longitude=127&latitudeDelta=0.05&longitudeDelta=0.05"
echo "Ctrl-C stops everything."
while true; do sleep 3600; done
