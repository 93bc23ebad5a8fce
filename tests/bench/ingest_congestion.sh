#!/usr/bin/env bash
# ingest_congestion.sh: `ingestd congestion` end to end, Redis to PostgreSQL.
# For each size (N1 then N2 chargers, 168 rows each) it prints, in one run:
#   - rows/s of the snapshot (ingestd's whole run: SCAN, GETs, COPY, primary
#     keys, ANALYZE, ATTACH, swap) and its peak RSS (VmHWM);
#   - rows/s of plain `COPY FROM STDIN` (psql \copy) of the same rows,
#     pre-rendered from the snapshot in the order ingestd sends them, into the
#     same table layout: (a) a table with the primary key in place, (b) a
#     bare table, then the primary key built (as ingestd does); the ratio is
#     taken against the faster of the two (target >= 0.7); the bare COPY
#     alone is printed too;
#   - the statistics query (one station x weekday, 24 hours, per charger
#     class via charger.output_kw >= 50) with EXPLAIN ANALYZE on the
#     snapshot: execution and planning time (target <= 5 ms);
#   - the restore: Redis flushed, `ingestd congestion --restore`, seconds,
#     keys back and peak RSS.
# N1 = 8,929 chargers (1.5M rows, one weekday's scale), N2 = 230,000
# (38.6M rows); BENCH_QUICK=1: 500 and 2,000. BENCH_SIZES="N ..." overrides.
# Starts its own PostgreSQL and Redis (tests/harness/stores.sh); a trap stops
# both and removes the directory. Needs about 12 GB of disk at N2.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${BENCH_QUICK:-0}" = 1 ]; then SIZES=${BENCH_SIZES:-"500 2000"}; else
	SIZES=${BENCH_SIZES:-"8929 230000"}; fi
DIR=$(mktemp -d /tmp/evbench.XXXXXX)
chmod 0755 "$DIR"
cleanup() {
	"$ROOT/tests/harness/stores.sh" stop "$DIR" >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
now() { date +%s.%N; }
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

cc -O2 -o "$DIR/cgfill" "$ROOT/tests/bench/cgfill.c"
PG=$("$ROOT/tests/harness/stores.sh" pg-start "$DIR")
REDIS=$("$ROOT/tests/harness/stores.sh" redis-start "$DIR")
BASE=${PG%/postgres}
RPORT=${REDIS##*:}
RPORT=${RPORT%%/*}
rcli() { redis-cli -p "$RPORT" "$@"; }

# Run ingestd with the given arguments; sets SECONDS_TAKEN and RSS_KB (the
# kernel's VmHWM, sampled until the process exits: a high-water mark).
run_ingestd() { # db-url label args...
	local db=$1 label=$2 t0 t1 pid hwm=0 v
	shift 2
	t0=$(now)
	DATABASE_URL=$db REDIS_URL=$REDIS LOG_FORMAT=json \
		"$ROOT/bin/ingestd" congestion "$@" >"$DIR/$label.log" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		v=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
		[ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
		sleep 0.1
	done
	wait "$pid" || { tail -n 5 "$DIR/$label.log" >&2; echo "ingest_congestion: ingestd failed ($label)" >&2; exit 1; }
	t1=$(now)
	SECONDS_TAKEN=$(calc "$t1 - $t0")
	RSS_KB=$hwm
}

timed_psql() { # db-url args... -> SECONDS_TAKEN
	local t0 t1
	t0=$(now)
	psql "$@"
	t1=$(now)
	SECONDS_TAKEN=$(calc "$t1 - $t0")
}

# The statistics query of docs/congestion.md (apid's GET /stations/{id}/statistics).
STATS_SQL="SELECT c.hour, coalesce(ch.output_kw >= 50, false) AS quick, sum(c.samples) AS samples,
	sum(c.uses) AS uses FROM congestion c LEFT JOIN charger ch
	ON ch.stat_id = c.stat_id AND ch.chger_id = c.chger_id
	WHERE c.stat_id = \$1 AND c.weekday = \$2 GROUP BY 1, 2 ORDER BY 1, 2"

echo "ingest_congestion: sizes $SIZES chargers (BENCH_QUICK=${BENCH_QUICK:-0}), $(nproc) cores"
SUMMARY=()
n=0
for CHARGERS in $SIZES; do
	n=$((n + 1))
	ROWS=$((CHARGERS * 168))
	echo
	echo "== $CHARGERS chargers, $ROWS rows"
	rcli FLUSHALL >/dev/null
	t0=$(now)
	"$DIR/cgfill" "$CHARGERS" 7 | rcli --pipe >"$DIR/fill.log"
	echo "redis filled in $(calc "$(now) - $t0") s: $(rcli DBSIZE) keys, $(rcli INFO memory | sed -n 's/^used_memory_human:\(.*\)\r$/\1/p')"

	DB=bench_cg$n
	psql "$PG" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
	URL=$BASE/$DB
	DATABASE_URL=$URL LOG_FORMAT=json "$ROOT/bin/ingestd" migrate >/dev/null 2>&1
	psql "$URL" -c "CHECKPOINT"

	# 1. the snapshot
	run_ingestd "$URL" "snapshot$n"
	LOAD_S=$SECONDS_TAKEN LOAD_RSS=$RSS_KB
	LOADED=$(psql "$URL" -At -c "SELECT rows FROM congestion_snapshot WHERE is_current")
	[ "$LOADED" = "$ROWS" ] || { echo "snapshot has $LOADED rows, want $ROWS" >&2; exit 1; }
	grep -o '"msg":"congestion run [^"]*ok[^"]*"' "$DIR/snapshot$n.log" | sed 's/^"msg":/  ingestd: /'
	SIZE=$(psql "$URL" -At -c "SELECT pg_size_pretty(pg_table_size('congestion_snap.hours_1')) || ' heap, ' ||
		pg_size_pretty(pg_indexes_size('congestion_snap.hours_1')) || ' primary key'")

	# 2. the same rows, pre-rendered in the order ingestd sent them
	psql "$URL" -c "\\copy (SELECT stat_id, chger_id, weekday, hour, samples, uses, out_of_service FROM congestion_snap.hours_1
		ORDER BY stat_id, weekday, hour, chger_id) TO '$DIR/rows.copy'"
	COLS="stat_id, chger_id, weekday, hour, samples, uses, out_of_service"
	LIKE="LIKE congestion_snap.hours_1 INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
	psql "$URL" -c "CHECKPOINT" -c "CREATE TABLE copy_a ($LIKE, PRIMARY KEY (stat_id, weekday, hour, chger_id))"
	timed_psql "$URL" -c "\\copy copy_a ($COLS) FROM '$DIR/rows.copy'"
	COPY_A_S=$SECONDS_TAKEN
	psql "$URL" -c "DROP TABLE copy_a" -c "CHECKPOINT" -c "CREATE TABLE copy_b ($LIKE)"
	timed_psql "$URL" -c "\\copy copy_b ($COLS) FROM '$DIR/rows.copy'"
	COPY_BARE_S=$SECONDS_TAKEN
	timed_psql "$URL" -c "SET maintenance_work_mem = '256MB'" \
		-c "ALTER TABLE copy_b ADD PRIMARY KEY (stat_id, weekday, hour, chger_id) WITH (fillfactor = 100)"
	COPY_B_S=$(calc "$COPY_BARE_S + $SECONDS_TAKEN")
	psql "$URL" -c "DROP TABLE copy_b"
	rm -f "$DIR/rows.copy"

	# 3. the statistics query, with chargers of both classes to join
	psql "$URL" -c "INSERT INTO station (stat_id, lat, lng, content_hash)
			SELECT DISTINCT stat_id, 37.5, 127.0, '\\x00'::bytea FROM congestion_snap.chargers_1" \
		-c "INSERT INTO charger (stat_id, chger_id, output_kw, content_hash)
			SELECT stat_id, chger_id, CASE WHEN chger_id = '01' THEN 100 ELSE 7 END, '\\x00'::bytea
			FROM congestion_snap.chargers_1" -c "ANALYZE station, charger"
	STATION=$(psql "$URL" -At -c "SELECT stat_id FROM congestion_snap.chargers_1 GROUP BY stat_id
		HAVING count(*) = 8 ORDER BY stat_id OFFSET (SELECT count(*) / 16 FROM congestion_snap.chargers_1) / 8 LIMIT 1")
	SQL_ONE=${STATS_SQL//\$1/\'$STATION\'}
	SQL_ONE=${SQL_ONE//\$2/2}
	# in one session, after a first run: the caches warm as in a serving system
	psql "$URL" -At -c '\o /dev/null' -c "$SQL_ONE" -c '\o' -c "EXPLAIN (ANALYZE, BUFFERS) $SQL_ONE" \
		>"$DIR/explain$n.txt"
	EXEC_MS=$(sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p' "$DIR/explain$n.txt")
	PLAN_MS=$(sed -n 's/^Planning Time: \([0-9.]*\) ms$/\1/p' "$DIR/explain$n.txt")
	PREPARED_MS=$(psql "$URL" -At -c "PREPARE s(text, int) AS $STATS_SQL" \
		-c "EXPLAIN (ANALYZE) EXECUTE s('$STATION', 2)" -c "EXPLAIN (ANALYZE) EXECUTE s('$STATION', 2)" |
		sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p' | tail -n 1)
	echo "statistics query for station $STATION, Wednesday (EXPLAIN ANALYZE, warm):"
	sed 's/^/  | /' "$DIR/explain$n.txt"

	# 4. the restore
	rcli FLUSHALL >/dev/null
	run_ingestd "$URL" "restore$n" --restore
	RESTORE_S=$SECONDS_TAKEN RESTORE_RSS=$RSS_KB
	RESTORED=$(rcli DBSIZE)
	[ "$RESTORED" = "$CHARGERS" ] || { echo "restore wrote $RESTORED keys, want $CHARGERS" >&2; exit 1; }
	psql "$PG" -c "DROP DATABASE $DB" >/dev/null

	LOAD_RATE=$(calc "$ROWS / $LOAD_S")
	A_RATE=$(calc "$ROWS / $COPY_A_S")
	B_RATE=$(calc "$ROWS / $COPY_B_S")
	BARE_RATE=$(calc "$ROWS / $COPY_BARE_S")
	BEST=$(calc "($A_RATE > $B_RATE) ? $A_RATE : $B_RATE")
	RATIO=$(calc "$LOAD_RATE / $BEST")
	LINE=$(printf '%d rows (%d chargers): snapshot %.1f s, %.0f rows/s, peak RSS %.1f MiB; plain COPY (a) with key %.0f rows/s, (b) bare + key %.0f rows/s (bare COPY alone %.0f rows/s); ratio %.2f (target >= 0.70); %s; query %.3f ms (+ %.3f ms planning; prepared %.3f ms); restore %.1f s, %.0f counters/s, peak RSS %.1f MiB' \
		"$ROWS" "$CHARGERS" "$LOAD_S" "$LOAD_RATE" "$(calc "$LOAD_RSS / 1024")" "$A_RATE" "$B_RATE" \
		"$BARE_RATE" "$RATIO" "$SIZE" "$EXEC_MS" "$PLAN_MS" "$PREPARED_MS" "$RESTORE_S" \
		"$(calc "$CHARGERS / $RESTORE_S")" "$(calc "$RESTORE_RSS / 1024")")
	echo "$LINE"
	SUMMARY+=("$LINE")
done
echo
echo "summary:"
printf '  %s\n' "${SUMMARY[@]}"
