#!/usr/bin/env bash
# ingest_chargers.sh: `ingestd chargers` end to end against the simulator.
# Prints, in one run:
#   - records/s of a full load of N1 records (fresh database), and the
#     records/s of plain `COPY FROM STDIN` (psql \copy) of the same rows,
#     pre-rendered from the loaded tables, into the same (empty) tables, and
#     their ratio (target >= 0.7);
#   - peak RSS of ingestd at N1 and at N2 records (VmHWM; target
#     <= 64 MiB and within 10% of each other);
#   - rows of station and charger rewritten by a second run with no upstream
#     change (n_tup_ins + n_tup_upd, and rows whose xmin changed; target 0).
# N1 = 1,500,000 and N2 = 10,000,000; BENCH_QUICK=1: 20,000 and 60,000.
# Starts its own PostgreSQL (tests/harness/stores.sh) and simulator; a trap
# stops both and removes the directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${BENCH_QUICK:-0}" = 1 ]; then N1=${BENCH_N1:-20000} N2=${BENCH_N2:-60000}; else
	N1=${BENCH_N1:-1500000} N2=${BENCH_N2:-10000000}; fi
DIR=$(mktemp -d /tmp/evbench.XXXXXX)
chmod 0755 "$DIR"
SIM_PID=
cleanup() {
	[ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
	"$ROOT/tests/harness/stores.sh" stop "$DIR" >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
now() { date +%s.%N; }
PG=$("$ROOT/tests/harness/stores.sh" pg-start "$DIR")
BASE=${PG%/postgres}
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

newdb() { # name -> migrated database URL on stdout
	psql "$PG" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1" \
		-c "CREATE DATABASE $1" >/dev/null
	DATABASE_URL="$BASE/$1" LOG_FORMAT=json "$ROOT/bin/ingestd" migrate >/dev/null 2>&1
	echo "$BASE/$1"
}

start_sim() { # chargers
	[ -n "$SIM_PID" ] && { kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null || true; }
	rm -f "$DIR/port"
	"$ROOT/bin/upstream-sim" --port 0 --port-file "$DIR/port" --seed 11 --chargers "$1" \
		--keys bench-key --clock fixed:20240601120000 >"$DIR/sim.log" 2>&1 &
	SIM_PID=$!
	for _ in $(seq 1 200); do [ -s "$DIR/port" ] && break; sleep 0.05; done
	UPSTREAM_URL="http://127.0.0.1:$(cat "$DIR/port")/B552584/EvCharger"
}

# Peak RSS: the kernel's VmHWM of the process, sampled until it exits (the
# peak is a high-water mark, so the last sample holds it).
ingest() { # db-url label -> sets SECONDS_TAKEN, RSS_KB
	local log=$DIR/$2.log
	local t0 t1 pid hwm=0 v
	t0=$(now)
	DATABASE_URL=$1 UPSTREAM_URL=$UPSTREAM_URL UPSTREAM_KEYS=bench-key LOG_FORMAT=json \
		"$ROOT/bin/ingestd" chargers >"$log" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		v=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
		[ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
		sleep 0.1
	done
	wait "$pid" || { tail -n 5 "$log" >&2; echo "ingest_chargers: ingestd failed ($2)" >&2; exit 1; }
	t1=$(now)
	SECONDS_TAKEN=$(calc "$t1 - $t0")
	RSS_KB=$hwm
}

rewritten() { # db-url -> inserted+updated tuples of station and charger so far
	psql "$1" -At -c "SELECT pg_sleep(1.2)" -c "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0)
		FROM pg_stat_user_tables WHERE relname IN ('station', 'charger')" | tail -n 1
}

echo "ingest_chargers: N1=$N1 N2=$N2 (BENCH_QUICK=${BENCH_QUICK:-0}), $(nproc) cores"

# 1. the full load at N1
start_sim "$N1"
DB1=$(newdb bench1)
ingest "$DB1" load1
LOAD_S=$SECONDS_TAKEN RSS1=$RSS_KB
RECORDS=$(psql "$DB1" -At -c "SELECT records FROM ingest_run ORDER BY id DESC LIMIT 1")
CHARGERS=$(psql "$DB1" -At -c "SELECT count(*) FROM charger")
STATIONS=$(psql "$DB1" -At -c "SELECT count(*) FROM station")

# 2. the same run again, nothing changed upstream
BEFORE=$(rewritten "$DB1")
XMIN_BEFORE=$(psql "$DB1" -At -c "SELECT md5(string_agg(xmin::text, ',' ORDER BY stat_id, chger_id)) FROM charger")
ingest "$DB1" load2
AFTER=$(rewritten "$DB1")
XMIN_AFTER=$(psql "$DB1" -At -c "SELECT md5(string_agg(xmin::text, ',' ORDER BY stat_id, chger_id)) FROM charger")
REWRITTEN=$((AFTER - BEFORE))
[ "$XMIN_BEFORE" = "$XMIN_AFTER" ] && XMIN_SAME=yes || XMIN_SAME=no
SECOND_S=$SECONDS_TAKEN

# 3. plain COPY FROM STDIN of the same rows, pre-rendered, into the same tables
COLS_S="stat_id, name, addr, addr_detail, location, use_time, lat, lng, busi_id, bnm, busi_nm, busi_call, zcode, zscode, kind, kind_detail, parking_free, limit_yn, limit_detail, del_yn, del_detail, note, traffic_yn, floor_num, floor_type, content_hash"
COLS_C="stat_id, chger_id, chger_type, output_kw, method, power_type, year, stat, stat_upd_dt, last_tsdt, last_tedt, now_tsdt, content_hash"
psql "$DB1" -c "\\copy (SELECT $COLS_S FROM station) TO '$DIR/station.copy'" \
	-c "\\copy (SELECT $COLS_C FROM charger) TO '$DIR/charger.copy'"
DB2=$(newdb bench2)
t0=$(now)
psql "$DB2" -c "\\copy station ($COLS_S) FROM '$DIR/station.copy'" \
	-c "\\copy charger ($COLS_C) FROM '$DIR/charger.copy'"
t1=$(now)
COPY_S=$(calc "$t1 - $t0")
rm -f "$DIR"/*.copy
psql "$PG" -c "DROP DATABASE bench2" >/dev/null

# 4. peak RSS at N2
psql "$PG" -c "DROP DATABASE bench1" >/dev/null
start_sim "$N2"
DB3=$(newdb bench3)
ingest "$DB3" load3
RSS2=$RSS_KB LOAD2_S=$SECONDS_TAKEN
RECORDS2=$(psql "$DB3" -At -c "SELECT records FROM ingest_run ORDER BY id DESC LIMIT 1")

LOAD_RATE=$(calc "$RECORDS / $LOAD_S")
COPY_RATE=$(calc "$CHARGERS / $COPY_S")
RATIO=$(calc "$LOAD_RATE / $COPY_RATE")
RSS_SPREAD=$(calc "($RSS2 - $RSS1) * 100 / $RSS1")
printf '\n'
printf 'load of %d records (%d chargers, %d stations): %.1f s, %.0f records/s\n' \
	"$RECORDS" "$CHARGERS" "$STATIONS" "$LOAD_S" "$LOAD_RATE"
printf 'plain COPY FROM STDIN of the same rows:        %.1f s, %.0f records/s\n' "$COPY_S" "$COPY_RATE"
printf 'ratio load / COPY: %.2f (target >= 0.70)\n' "$RATIO"
printf 'second run, no change: %.1f s, rows rewritten %d (n_tup_ins + n_tup_upd), charger xmin unchanged: %s\n' \
	"$SECOND_S" "$REWRITTEN" "$XMIN_SAME"
printf 'peak RSS: %.1f MiB at %d records, %.1f MiB at %d records (%.1f s): spread %+.1f%% (target <= 64 MiB, within 10%%)\n' \
	"$(calc "$RSS1 / 1024")" "$RECORDS" "$(calc "$RSS2 / 1024")" "$RECORDS2" "$LOAD2_S" "$RSS_SPREAD"
