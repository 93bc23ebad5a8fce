#!/usr/bin/env bash
# apid_feed.sh: the change feed under load, in one run.
#   1,000 Server-Sent Events clients of GET /stations/changes (ssewatch.c);
#   a status change written to ev:changes as realtimed writes it (XADD) must
#   reach every one of them within 1 s (5 rounds: p50/p99/max per round),
#   while wrk -t2 -c64 asks for a /stations box of about 100 stations; the
#   same wrk run without the streams, just before, is the reference (p99 and
#   requests/s, and their ratio).
# Sizes: 10,000 stations of 2 chargers in a 1 x 1 degree area; 10 s wrk runs
# (BENCH_QUICK=1: 5 s, 500 clients). Starts its own PostgreSQL and Redis
# (tests/harness/stores.sh) in a temp dir; everything it started is stopped
# on exit. Run it under `flock /tmp/bench.lock` on a shared machine.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${TEST_BIN:-$ROOT/bin}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	CLIENTS=500 DURATION=5s
else
	CLIENTS=1000 DURATION=10s
fi
WRK=(wrk -t2 -c64 -d"$DURATION" --latency)

for tool in wrk psql redis-cli curl cc; do
	command -v "$tool" >/dev/null || { echo "apid_feed.sh: $tool not found (make deps)" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TMP=$(mktemp -d /tmp/apid-feed-bench.XXXXXX)
chmod 0755 "$TMP" # the stores run as postgres
APID_PID= WRK_PID=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$WRK_PID" ] && kill "$WRK_PID" 2>/dev/null && wait "$WRK_PID" 2>/dev/null
	[ -n "$APID_PID" ] && kill -TERM "$APID_PID" 2>/dev/null && wait "$APID_PID" 2>/dev/null
	"$ROOT/tests/harness/stores.sh" stop "$TMP/stores" >/dev/null 2>&1 || true
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cc -O2 -o "$TMP/ssewatch" "$ROOT/tests/bench/ssewatch.c" -lhiredis

mkdir -p "$TMP/stores"
PG_ADMIN=$("$ROOT/tests/harness/stores.sh" pg-start "$TMP/stores")
REDIS_URL=$("$ROOT/tests/harness/stores.sh" redis-start "$TMP/stores")
REDIS_PORT=${REDIS_URL##*:}; REDIS_PORT=${REDIS_PORT%%/*}
PG_URL=${PG_ADMIN%/postgres}/feedbench
psql -qX "$PG_ADMIN" -c "CREATE DATABASE feedbench" >/dev/null
DATABASE_URL=$PG_URL INGESTD_MIGRATIONS_DIR=$ROOT/migrations LOG_LEVEL=warn "$BIN/ingestd" migrate
psql -qX "$PG_URL" -c "DO \$\$ BEGIN CREATE ROLE feedbench_ro LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
	GRANT evcharger_ro TO feedbench_ro;" >/dev/null
RO_URL=postgresql://feedbench_ro@${PG_ADMIN#postgresql://postgres@}
RO_URL=${RO_URL%/postgres}/feedbench
psql -qX "$PG_URL" <<'SQL' >/dev/null
SELECT setseed(0.3);
INSERT INTO station (stat_id, name, addr, lat, lng, busi_id, content_hash)
SELECT 'BS' || lpad(i::text, 7, '0'), 'station ' || i, '서울특별시 중구 ' || i,
	round((37.0 + random())::numeric, 6), round((126.5 + random())::numeric, 6), 'ME', '\x00'
FROM generate_series(1, 10000) AS i;
INSERT INTO charger (stat_id, chger_id, chger_type, output_kw, stat, stat_upd_dt, content_hash)
SELECT 'BS' || lpad(i::text, 7, '0'), '0' || k, '04', 50, 2, now(), '\x00'
FROM generate_series(1, 10000) AS i, generate_series(1, 2) AS k;
INSERT INTO ingest_run (job, status, finished_at) VALUES ('chargers', 'ok', now());
SQL
BOX="/stations?latitude=37.5&longitude=127&latitudeDelta=0.05&longitudeDelta=0.05"

APID_PORT_FILE=$TMP/apid.port
DATABASE_URL=$RO_URL REDIS_URL=$REDIS_URL APID_PORT=0 APID_BIND=127.0.0.1 \
	APID_PORT_FILE=$APID_PORT_FILE APID_SHUTDOWN_GRACE_SECONDS=0 APID_MODEL_POLL_SECONDS=3600 \
	APID_FEED_MAX_CLIENTS=$((CLIENTS + 100)) LOG_FORMAT=json "$BIN/apid" >"$TMP/apid.log" 2>&1 &
APID_PID=$!
for _ in $(seq 1 300); do
	[ -s "$APID_PORT_FILE" ] && curl -sf "http://127.0.0.1:$(cat "$APID_PORT_FILE")/readyz" >/dev/null && break
	sleep 0.1
done
PORT=$(cat "$APID_PORT_FILE")
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$TMP/apid.log"; exit 1; }
BOX_STATIONS=$(curl -sf "http://127.0.0.1:$PORT$BOX" | grep -o '"stationId"' | wc -l)

# wrk's requests/s and p99 (ms); fails on socket errors or non-2xx answers.
wrk_figures() {
	local out=$1
	if grep -q 'Socket errors\|Non-2xx' "$out"; then cat "$out" >&2; exit 1; fi
	local rps p99
	rps=$(awk '/Requests\/sec/ {print $2}' "$out")
	p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$out")
	echo "$rps $p99"
}

"${WRK[@]}" "http://127.0.0.1:$PORT$BOX" >"$TMP/wrk-alone.txt"
read -r RPS_ALONE P99_ALONE < <(wrk_figures "$TMP/wrk-alone.txt")

"${WRK[@]}" "http://127.0.0.1:$PORT$BOX" >"$TMP/wrk-feed.txt" &
WRK_PID=$!
sleep 0.5
WATCH_RC=0
"$TMP/ssewatch" "$PORT" "$CLIENTS" 5 "$REDIS_PORT" | tee "$TMP/watch.txt" || WATCH_RC=$?
wait "$WRK_PID"
WRK_PID=
read -r RPS_FEED P99_FEED < <(wrk_figures "$TMP/wrk-feed.txt")

WORST=$(awk '/^round/ {for (i = 1; i <= NF; i++) if ($i == "max") {v = $(i + 1); if (v > m) m = v}} END {print m + 0}' "$TMP/watch.txt")
echo "box of $BOX_STATIONS stations, wrk -t2 -c64 -d$DURATION:"
printf '  alone:                %9.0f req/s  p99 %6.2f ms\n' "$RPS_ALONE" "$P99_ALONE"
printf '  with %4d SSE streams: %9.0f req/s  p99 %6.2f ms\n' "$CLIENTS" "$RPS_FEED" "$P99_FEED"
printf '  ratio: %.2f x the requests/s, p99 %.2f x\n' \
	"$(echo "$RPS_FEED / $RPS_ALONE" | bc -l)" "$(echo "$P99_FEED / $P99_ALONE" | bc -l)"
echo "  a status change reached all $CLIENTS streams within $WORST ms (worst of 5 rounds)"
[ "$WATCH_RC" = 0 ] || { echo "apid_feed.sh: a stream was not reached" >&2; exit 1; }
