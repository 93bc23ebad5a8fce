# tests/bench/lib.sh: the start-up every benchmark script shares (sourced).
#   bench_init NAME TOOL...   ROOT, BIN, QUICK; checks the tools; makes the temp
#                             dir $BENCH_DIR, removed on exit with every process
#                             bench_track was given and the stores
#   bench_track PID           stop PID (SIGTERM, then wait) on exit
#   bench_stores [pg] [redis] private stores in $BENCH_DIR/stores: PG_ADMIN,
#                             REDIS_URL and REDIS_PORT
#   bench_db NAME             a migrated database NAME and a login role
#                             NAME_ro in apid's read-only group: PG_URL, RO_URL
#   bench_seed_grid N SHARE   N stations of 2 chargers (output 50 kW) spread
#                             over 37..38 N, 126.5..127.5 E; a charger stands by
#                             with probability SHARE (else charging), now
#   bench_apid ENV=VALUE...   apid on the read-only role and the private Redis,
#                             on a free port, ready: APID_PID, PORT
#   wrk_figures FILE          prints "requests/s p99-ms" of a wrk --latency
#                             output; exits on socket errors or non-2xx answers
# Scripts run under `set -euo pipefail`, one at a time (run-all.sh).

bench_init() {
	local name=$1 tool
	shift
	ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	BIN=${TEST_BIN:-$ROOT/bin}
	QUICK=${BENCH_QUICK:-0}
	for tool in "$@"; do
		command -v "$tool" >/dev/null || { echo "$name: $tool not found (make deps)" >&2; exit 1; }
	done
	BENCH_DIR=$(mktemp -d "/tmp/bench-$name.XXXXXX")
	chmod 0755 "$BENCH_DIR" # the stores run as postgres
	BENCH_PIDS=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_track() {
	BENCH_PIDS+=("$1")
}

bench_cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${BENCH_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	"$ROOT/tests/harness/stores.sh" stop "$BENCH_DIR/stores" >/dev/null 2>&1 || true
	rm -rf "$BENCH_DIR"
	exit $rc
}

bench_stores() {
	mkdir -p "$BENCH_DIR/stores"
	local store
	for store in "$@"; do
		case $store in
		pg) PG_ADMIN=$("$ROOT/tests/harness/stores.sh" pg-start "$BENCH_DIR/stores") ;;
		redis)
			REDIS_URL=$("$ROOT/tests/harness/stores.sh" redis-start "$BENCH_DIR/stores")
			REDIS_PORT=${REDIS_URL##*:} REDIS_PORT=${REDIS_PORT%%/*}
			;;
		esac
	done
}

bench_db() {
	local db=$1
	PG_URL=${PG_ADMIN%/postgres}/$db
	psql -qX "$PG_ADMIN" -c "CREATE DATABASE $db" >/dev/null
	DATABASE_URL=$PG_URL INGESTD_MIGRATIONS_DIR=$ROOT/migrations LOG_LEVEL=warn "$BIN/ingestd" migrate
	psql -qX "$PG_URL" -c "DO \$\$ BEGIN CREATE ROLE ${db}_ro LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
		GRANT evcharger_ro TO ${db}_ro;" >/dev/null
	RO_URL=postgresql://${db}_ro@${PG_ADMIN#postgresql://postgres@}
	RO_URL=${RO_URL%/postgres}/$db
}

bench_seed_grid() {
	local n=$1 share=$2
	psql -qX "$PG_URL" -v n="$n" -v share="$share" <<'SQL' >/dev/null
SELECT setseed(0.3);
INSERT INTO station (stat_id, name, addr, lat, lng, busi_id, content_hash)
SELECT 'BS' || lpad(i::text, 7, '0'), 'station ' || i, '서울특별시 중구 ' || i,
	round((37.0 + random())::numeric, 6), round((126.5 + random())::numeric, 6), 'ME', '\x00'
FROM generate_series(1, :n) AS i;
INSERT INTO charger (stat_id, chger_id, chger_type, output_kw, stat, stat_upd_dt, content_hash)
SELECT 'BS' || lpad(i::text, 7, '0'), '0' || k, '04', 50,
	CASE WHEN random() < :share THEN 2 ELSE 3 END, now(), '\x00'
FROM generate_series(1, :n) AS i, generate_series(1, 2) AS k;
INSERT INTO ingest_run (job, status, finished_at) VALUES ('chargers', 'ok', now());
SQL
}

bench_apid() {
	local port_file=$BENCH_DIR/apid.port
	env DATABASE_URL="$RO_URL" REDIS_URL="$REDIS_URL" APID_PORT=0 APID_BIND=127.0.0.1 \
		APID_PORT_FILE="$port_file" APID_SHUTDOWN_GRACE_SECONDS=0 \
		APID_MODEL_POLL_SECONDS=3600 LOG_FORMAT=json "$@" "$BIN/apid" >"$BENCH_DIR/apid.log" 2>&1 &
	APID_PID=$!
	bench_track "$APID_PID"
	for _ in $(seq 1 300); do
		[ -s "$port_file" ] && curl -sf "http://127.0.0.1:$(cat "$port_file")/readyz" >/dev/null && break
		sleep 0.1
	done
	PORT=$(cat "$port_file")
	curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$BENCH_DIR/apid.log" >&2; exit 1; }
}

wrk_figures() {
	local out=$1
	if grep -q 'Socket errors\|Non-2xx' "$out"; then cat "$out" >&2; exit 1; fi
	local rps p99
	rps=$(awk '/Requests\/sec/ {print $2}' "$out")
	p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$out")
	echo "$rps $p99"
}
