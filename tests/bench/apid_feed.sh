#!/usr/bin/env bash
# apid_feed.sh: the change feed under load, in one run.
#   1,000 Server-Sent Events clients of GET /stations/changes (ssewatch.c);
#   a status change written to ev:changes as realtimed writes it (XADD) must
#   reach every one of them within 1 s (5 rounds: p50/p99/max per round),
#   while wrk -t2 -c64 asks for a /stations box of about 100 stations (all
#   streams are open before wrk starts; the rounds spread over its run); the
#   same wrk run without the streams, just before, is the reference (p99 and
#   requests/s, and their ratio).
# Sizes: 10,000 stations of 2 chargers in a 1 x 1 degree area; 10 s wrk runs
# (BENCH_QUICK=1: 3 s, 500 clients). Starts its own PostgreSQL and Redis
# (tests/harness/stores.sh) in a temp dir; everything it started is stopped
# on exit. Run it under `flock /tmp/bench.lock` on a shared machine.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init apid_feed wrk psql redis-cli curl cc bc
if [ "$QUICK" = 1 ]; then
	CLIENTS=500 DURATION=3s
else
	CLIENTS=1000 DURATION=10s
fi
WRK=(wrk -t2 -c64 -d"$DURATION" --latency)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TMP=$BENCH_DIR

cc -O2 -o "$TMP/ssewatch" "$ROOT/tests/bench/ssewatch.c" -lhiredis

bench_stores pg redis
bench_db feedbench
bench_seed_grid 10000 1
BOX="/stations?latitude=37.5&longitude=127&latitudeDelta=0.05&longitudeDelta=0.05"

bench_apid APID_FEED_MAX_CLIENTS=$((CLIENTS + 100))
BOX_STATIONS=$(curl -sf "http://127.0.0.1:$PORT$BOX" | grep -o '"stationId"' | wc -l)

"${WRK[@]}" "http://127.0.0.1:$PORT$BOX" >"$TMP/wrk-alone.txt"
read -r RPS_ALONE P99_ALONE < <(wrk_figures "$TMP/wrk-alone.txt")

# Every stream open first (1,000 connects are not what is measured), then
# wrk, and the rounds of changes spread over its run.
SSEWATCH_GO=$TMP/go SSEWATCH_GAP_MS=$((${DURATION%s} * 150)) \
	"$TMP/ssewatch" "$PORT" "$CLIENTS" 5 "$REDIS_PORT" >"$TMP/watch.txt" &
WATCH_PID=$!
bench_track "$WATCH_PID"
for _ in $(seq 1 600); do
	grep -q '^streams: ' "$TMP/watch.txt" 2>/dev/null && break
	kill -0 "$WATCH_PID" 2>/dev/null || break
	sleep 0.1
done
"${WRK[@]}" "http://127.0.0.1:$PORT$BOX" >"$TMP/wrk-feed.txt" &
WRK_PID=$!
bench_track "$WRK_PID"
sleep 0.5
touch "$TMP/go"
WATCH_RC=0
wait "$WATCH_PID" || WATCH_RC=$?
cat "$TMP/watch.txt"
wait "$WRK_PID"
read -r RPS_FEED P99_FEED < <(wrk_figures "$TMP/wrk-feed.txt")

WORST=$(awk '/^round/ {for (i = 1; i <= NF; i++) if ($i == "max") {v = $(i + 1); if (v > m) m = v}} END {print m + 0}' "$TMP/watch.txt")
echo "box of $BOX_STATIONS stations, wrk -t2 -c64 -d$DURATION:"
printf '  alone:                %9.0f req/s  p99 %6.2f ms\n' "$RPS_ALONE" "$P99_ALONE"
printf '  with %4d SSE streams: %9.0f req/s  p99 %6.2f ms\n' "$CLIENTS" "$RPS_FEED" "$P99_FEED"
printf '  ratio: %.2f x the requests/s, p99 %.2f x\n' \
	"$(echo "$RPS_FEED / $RPS_ALONE" | bc -l)" "$(echo "$P99_FEED / $P99_ALONE" | bc -l)"
echo "  a status change reached all $CLIENTS streams within $WORST ms (worst of 5 rounds)"
[ "$WATCH_RC" = 0 ] || { echo "apid_feed.sh: a stream was not reached" >&2; exit 1; }
