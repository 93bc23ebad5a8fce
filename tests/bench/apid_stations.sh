#!/usr/bin/env bash
# apid_stations.sh: apid against nginx serving the same bytes, in one run.
#   GET /stations for a box of about 100 stations, GET /stations/{id},
#   GET /stations/{id}/statistics over stations with congestion counters,
#   each with wrk -t2 -c64 (10 s; 1 s with BENCH_QUICK=1), against nginx
#   (nginx-light, non-daemon on a free port) serving static files of the
#   same bytes with the same wrk settings; then two read-model rebuilds under
#   /stations load (no request may fail): each rebuild's wall time and its
#   builder thread's CPU time (the part that does not depend on what else
#   the machine runs), against the target, and apid's RSS.
# Sizes: 500,000 chargers with counters for 230,000 (BENCH_QUICK=1: 20,000
# and 5,000, the stations of one 5,000-station batch of counters: CI runs it
# beside the tests; BENCH_CHARGERS=N sets the chargers). BENCH_ONLY=rebuild skips
# the nginx comparisons and the statistics run. Starts its own PostgreSQL
# and Redis (tests/harness/stores.sh) in a temp dir; everything it started
# is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${TEST_BIN:-$ROOT/bin}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	CHARGERS=20000 COUNTED=5000 DURATION=1s
else
	CHARGERS=500000 COUNTED=230000 DURATION=10s
fi
CHARGERS=${BENCH_CHARGERS:-$CHARGERS}
ONLY=${BENCH_ONLY:-}
[ "$ONLY" = rebuild ] && COUNTED=0
# The issue's targets for a rebuild under load (seconds, and p99 in ms).
REBUILD_TARGET_S=5 REBUILD_P99_TARGET_MS=50
WRK=(wrk -t2 -c64 -d"$DURATION" --latency)

for tool in wrk nginx psql redis-cli curl; do
	command -v "$tool" >/dev/null || { echo "apid_stations.sh: $tool not found (make deps)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/apid-bench.XXXXXX)
chmod 0755 "$TMP"
APID_PID= NGINX_PID=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$APID_PID" ] && kill -TERM "$APID_PID" 2>/dev/null && wait "$APID_PID" 2>/dev/null
	[ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
	"$ROOT/tests/harness/stores.sh" stop "$TMP/stores" >/dev/null 2>&1 || true
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Below the ephemeral range, where CI's tests beside the benchmarks take
# ports for their outgoing connections (tests/harness/stores.sh).
free_port() { "$ROOT/tests/harness/stores.sh" free-port; }

# ---- stores and data ----
mkdir -p "$TMP/stores"
PG_ADMIN=$("$ROOT/tests/harness/stores.sh" pg-start "$TMP/stores")
REDIS_URL=$("$ROOT/tests/harness/stores.sh" redis-start "$TMP/stores")
REDIS_PORT=${REDIS_URL##*:}; REDIS_PORT=${REDIS_PORT%%/*}
PG_URL=${PG_ADMIN%/postgres}/bench
psql -qX "$PG_ADMIN" -c "CREATE DATABASE bench" >/dev/null
DATABASE_URL=$PG_URL INGESTD_MIGRATIONS_DIR=$ROOT/migrations LOG_LEVEL=warn "$BIN/ingestd" migrate
psql -qX "$PG_URL" -c "DO \$\$ BEGIN CREATE ROLE bench_ro LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
	GRANT evcharger_ro TO bench_ro;" >/dev/null
RO_URL=postgresql://bench_ro@${PG_ADMIN#postgresql://postgres@}
RO_URL=${RO_URL%/postgres}/bench

# Station i has 1 + i % 6 chargers (3.5 on average); 30% of the stations
# crowd a Seoul-sized area, as real data does.
STATIONS=$(( CHARGERS * 2 / 7 ))
t0=$(date +%s.%N)
psql -qX "$PG_URL" <<SQL >/dev/null
SELECT setseed(0.7);
INSERT INTO station (stat_id, name, addr, location, use_time, lat, lng, busi_id, bnm, busi_nm,
	busi_call, zcode, parking_free, limit_yn, content_hash)
SELECT 'BS' || lpad(i::text, 7, '0'),
	(ARRAY['강남', '역삼', '서초', '해운대', '수원', '분당', '일산', '부평', '동탄', '판교'])[1 + i % 10]
		|| ' 공영주차장 충전소 ' || i,
	(ARRAY['서울특별시 강남구', '서울특별시 서초구', '부산광역시 해운대구', '경기도 수원시',
		'경기도 성남시', '인천광역시 부평구'])[1 + (i / 7) % 6] || ' 테헤란로 ' || (i % 500),
	'지하 1층', '24시간',
	round((CASE WHEN i % 10 < 3 THEN 37.45 + random() * 0.25 ELSE 33.2 + random() * 5.3 END)::numeric, 6),
	round((CASE WHEN i % 10 < 3 THEN 126.80 + random() * 0.40 ELSE 126.0 + random() * 3.5 END)::numeric, 6),
	(ARRAY['ME', 'GN', 'PI', 'EV', 'SF', 'HE'])[1 + i % 6],
	(ARRAY['환경부', 'GS', '차지비', '에버온', 'SK', '현대'])[1 + i % 6],
	(ARRAY['환경부', 'GS칼텍스', '차지비', '에버온', 'SK일렉링크', '현대자동차'])[1 + i % 6],
	'1661-9408', '11', i % 2 = 0, i % 9 = 0, '\x00'
FROM generate_series(1, $STATIONS) AS i;
INSERT INTO charger (stat_id, chger_id, chger_type, output_kw, method, stat, stat_upd_dt,
	content_hash)
SELECT 'BS' || lpad(i::text, 7, '0'), lpad(k::text, 2, '0'),
	(ARRAY['01', '02', '04', '05', '06', '07'])[1 + (k + i) % 6],
	(ARRAY[7, 50, 100, 200, 11, 22])[1 + (k * 3 + i) % 6],
	(ARRAY['단독', '동시', ''])[1 + k % 3],
	(ARRAY[2, 3, 2, 9, 1, 2])[1 + (k + i) % 6],
	now() - random() * interval '1 day', '\x00'
FROM generate_series(1, $STATIONS) AS i, generate_series(1, 6) AS k
WHERE k <= 1 + i % 6;
INSERT INTO ingest_run (job, status, finished_at) VALUES ('chargers', 'ok', now());
ANALYZE station;
ANALYZE charger;
SQL
NCHARGERS=$(psql -qtAX "$PG_URL" -c "SELECT count(*) FROM charger")
t1=$(date +%s.%N)
printf 'data: %d stations, %d chargers generated in %.1f s\n' "$STATIONS" "$NCHARGERS" "$(echo "$t1 - $t0" | bc)"

# Congestion counters (rkeys.h layout 2: 168 slots of three big-endian u12,
# samples, uses and out of service, then the u32 last-sample second) for the
# chargers of the first stations, written by a Lua loop in batches. Two u12
# counters a and b pack into 3 bytes: a >> 4, (a & 15) << 4 | b >> 8, b & 255.
cat >"$TMP/counters.lua" <<'LUA'
local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
local counters = {}
for slot = 0, 167 do
	local samples = 20 + (slot * 7) % 40
	local uses = (slot * 13) % (samples + 1)
	counters[#counters + 1] = samples
	counters[#counters + 1] = uses
	counters[#counters + 1] = (slot * 5) % (samples - uses + 1)
end
local parts = {}
for i = 1, #counters, 2 do
	local a, b = counters[i], counters[i + 1]
	parts[#parts + 1] = string.char(math.floor(a / 16), (a % 16) * 16 + math.floor(b / 256), b % 256)
end
parts[#parts + 1] = string.char(0, 0, 0, 0)
local value = table.concat(parts)
local n = 0
for i = first, last do
	local id = string.format('BS%07d', i)
	for k = 1, 1 + i % 6 do
		redis.call('SET', 'ev:cg:' .. id .. ':' .. string.format('%02d', k), value)
		n = n + 1
	end
end
return n
LUA
counted=0 i=1
while [ "$counted" -lt "$COUNTED" ]; do
	n=$(redis-cli -p "$REDIS_PORT" --eval "$TMP/counters.lua" , "$i" $((i + 4999)))
	counted=$((counted + n)); i=$((i + 5000))
done
COUNTED_STATIONS=$((i - 1))
echo "redis: congestion counters for $counted chargers ($COUNTED_STATIONS stations)"

# A box of about 100 stations around a Seoul point: widen until it holds 100.
LAT=37.575 LNG=127.0
DELTA=$(psql -qtAX "$PG_URL" <<SQL
SELECT d FROM (SELECT d, (SELECT count(*) FROM station WHERE lat BETWEEN $LAT - d AND $LAT + d
	AND lng BETWEEN $LNG - d AND $LNG + d) AS n
	FROM generate_series(1, 400) AS g, LATERAL (SELECT round(g * 0.0005, 4) AS d) x) y
WHERE n >= 100 ORDER BY d LIMIT 1
SQL
)
BOX="/stations?latitude=$LAT&longitude=$LNG&latitudeDelta=$DELTA&longitudeDelta=$DELTA"

# ---- apid ----
APID_PORT_FILE=$TMP/apid.port
DATABASE_URL=$RO_URL REDIS_URL=$REDIS_URL APID_PORT=0 APID_BIND=127.0.0.1 \
	APID_PORT_FILE=$APID_PORT_FILE APID_SHUTDOWN_GRACE_SECONDS=0 APID_MODEL_POLL_SECONDS=3600 \
	LOG_FORMAT=json "$BIN/apid" >"$TMP/apid.log" 2>&1 &
APID_PID=$!
for _ in $(seq 1 600); do
	[ -s "$APID_PORT_FILE" ] && curl -sf "http://127.0.0.1:$(cat "$APID_PORT_FILE")/readyz" >/dev/null && break
	sleep 0.1
done
PORT=$(cat "$APID_PORT_FILE")
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$TMP/apid.log"; exit 1; }
BUILD1=$(grep -o 'built from run [0-9]*: [0-9]* stations, [0-9]* chargers in [0-9.]* s' "$TMP/apid.log" | head -1)
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$APID_PID/status")

STATION=$(psql -qtAX "$PG_URL" -c "SELECT stat_id FROM station WHERE stat_id <= 'BS0000100' ORDER BY stat_id DESC LIMIT 1")
curl -sf "http://127.0.0.1:$PORT$BOX" -o "$TMP/box.json"
curl -sf "http://127.0.0.1:$PORT/stations/$STATION" -o "$TMP/station.json"
BOX_STATIONS=$(grep -o '"stationId"' "$TMP/box.json" | wc -l)

# statistics over the stations with counters, one at random per request
cat >"$TMP/stats.lua" <<LUA
math.randomseed(42)
request = function()
	local path = string.format("/stations/BS%07d/statistics?dayOfWeek=%s", math.random(1, $COUNTED_STATIONS),
		({"monday", "tuesday", "friday", "sunday"})[math.random(1, 4)])
	return wrk.format("GET", path)
end
LUA

# ---- nginx: the same bytes, static ----
NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx/html" "$TMP/nginx/logs" "$TMP/nginx/tmp"
cp "$TMP/box.json" "$TMP/nginx/html/box.json"
cp "$TMP/station.json" "$TMP/nginx/html/station.json"
cat >"$TMP/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	default_type application/json;
	keepalive_requests 1000000;
	client_body_temp_path $TMP/nginx/tmp/body;
	proxy_temp_path $TMP/nginx/tmp/proxy;
	fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
	uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
	scgi_temp_path $TMP/nginx/tmp/scgi;
	server {
		listen 127.0.0.1:$NGINX_PORT;
		root $TMP/nginx/html;
	}
}
CONF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$NGINX_PORT/box.json" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$NGINX_PORT/box.json" >/dev/null ||
	{ echo "apid_stations.sh: nginx did not answer on port $NGINX_PORT" >&2; cat "$TMP/nginx/logs/error.log" >&2; exit 1; }

# ---- runs ----
# wrk's p99 (from its --latency output on stdin) in ms.
p99_ms() {
	awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}'
}
# wrk's requests/s and p99 in ms; fails on socket errors or non-2xx answers.
run_wrk() {
	local out
	out=$("${WRK[@]}" "$@" 2>&1)
	local rps p99 errors
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p99=$(p99_ms <<<"$out")
	errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
	if [ -n "$errors" ]; then echo "wrk errors: $errors" >&2; fi
	echo "$rps $p99 ${errors:+ERR}"
}

echo "wrk: ${WRK[*]}"
for v in A_BOX A_ST A_SS N_BOX N_ST; do printf -v "${v}_RPS" '%s' -; printf -v "${v}_P99" '%s' -; printf -v "${v}_ERR" '%s' ''; done
if [ "$ONLY" != rebuild ]; then
	read -r A_BOX_RPS A_BOX_P99 A_BOX_ERR < <(run_wrk "http://127.0.0.1:$PORT$BOX")
	read -r N_BOX_RPS N_BOX_P99 N_BOX_ERR < <(run_wrk "http://127.0.0.1:$NGINX_PORT/box.json")
	read -r A_ST_RPS A_ST_P99 A_ST_ERR < <(run_wrk "http://127.0.0.1:$PORT/stations/$STATION")
	read -r N_ST_RPS N_ST_P99 N_ST_ERR < <(run_wrk "http://127.0.0.1:$NGINX_PORT/station.json")
	read -r A_SS_RPS A_SS_P99 A_SS_ERR < <(run_wrk -s "$TMP/stats.lua" "http://127.0.0.1:$PORT")
fi

# rebuilds under load: two loads land (NOTIFY) while wrk runs, the second
# after the first build is done; wrk runs long enough for both to end
# under load even at twice the target (checked below).
builds_logged() { grep -c 'built from run' "$TMP/apid.log" || true; }
if [ "$QUICK" = 1 ]; then R_DURATION=6; else R_DURATION=$((2 * REBUILD_TARGET_S * 2 + 2)); fi
wrk -t2 -c64 -d"${R_DURATION}s" --latency "http://127.0.0.1:$PORT$BOX" >"$TMP/wrk-rebuild.txt" 2>&1 &
WRK_PID=$!
sleep 1
for _ in 1 2; do
	before=$(builds_logged)
	psql -qX "$PG_URL" -c "INSERT INTO ingest_run (job, status, finished_at) VALUES ('chargers', 'ok', now());
		SELECT pg_notify('ingest_chargers', currval('ingest_run_id_seq')::text);" >/dev/null
	for _ in $(seq 1 300); do [ "$(builds_logged)" -gt "$before" ] && break; sleep 0.1; done
done
R_UNDER_LOAD=yes
kill -0 "$WRK_PID" 2>/dev/null || R_UNDER_LOAD="no: wrk ended before the last rebuild"
wait "$WRK_PID"
R_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk-rebuild.txt")
R_P99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk-rebuild.txt")
R_P99_MS=$(p99_ms <"$TMP/wrk-rebuild.txt")
LOAD_AVG=$(cut -d' ' -f1-3 /proc/loadavg)
R_ERR=$(grep -E 'Non-2xx|Socket errors' "$TMP/wrk-rebuild.txt" || echo none)
BUILDS=$(grep -o 'chargers in [0-9.]* s' "$TMP/apid.log" | awk '{print $3}' | tr '\n' ' ')
BUILDS_CPU=$(grep -o 'builder CPU [0-9.]* s' "$TMP/apid.log" | awk '{print $3}' | tr '\n' ' ')
# the rebuilds under load are the builds after the first
REBUILDS=$(sed 's/^[^ ]* //' <<<"$BUILDS") REBUILDS_CPU=$(sed 's/^[^ ]* //' <<<"$BUILDS_CPU")
REBUILD_MAX=$(tr ' ' '\n' <<<"$REBUILDS" | sort -g | tail -1)
REBUILD_CPU_MAX=$(tr ' ' '\n' <<<"$REBUILDS_CPU" | sort -g | tail -1)
HWM_KB=$(awk '/VmHWM/ {print $2}' "/proc/$APID_PID/status")
RSS2_KB=$(awk '/VmRSS/ {print $2}' "/proc/$APID_PID/status")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "apid_stations: $NCHARGERS chargers, box of $BOX_STATIONS stations ($(stat -c %s "$TMP/box.json") bytes), station answer $(stat -c %s "$TMP/station.json") bytes"
printf '%-34s %12s %10s %10s\n' "" "req/s" "p99 ms" "errors"
printf '%-34s %12s %10s %10s\n' "apid GET /stations (box)" "$A_BOX_RPS" "$A_BOX_P99" "${A_BOX_ERR:-0}"
printf '%-34s %12s %10s %10s\n' "nginx static, same bytes" "$N_BOX_RPS" "$N_BOX_P99" "${N_BOX_ERR:-0}"
printf '%-34s %12s %10s %10s\n' "apid GET /stations/{id}" "$A_ST_RPS" "$A_ST_P99" "${A_ST_ERR:-0}"
printf '%-34s %12s %10s %10s\n' "nginx static, same bytes" "$N_ST_RPS" "$N_ST_P99" "${N_ST_ERR:-0}"
printf '%-34s %12s %10s %10s\n' "apid GET /stations/{id}/statistics" "$A_SS_RPS" "$A_SS_P99" "${A_SS_ERR:-0}"
printf '%-34s %12s %10s %10s\n' "apid /stations during 2 rebuilds" "$R_RPS" "$R_P99" "$R_ERR"
echo "ratio apid/nginx req/s: box $(ratio "$A_BOX_RPS" "$N_BOX_RPS"), station $(ratio "$A_ST_RPS" "$N_ST_RPS")"
echo "ratio apid/nginx p99: box $(ratio "$A_BOX_P99" "$N_BOX_P99"), station $(ratio "$A_ST_P99" "$N_ST_P99")"
echo "read model: first build: $BUILD1; rebuild times (s): $BUILDS"
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "") print "n/a"; else if (v + 0 <= t) print "meets"; else print "misses" }'; }
echo "rebuild under load: ${REBUILDS:-none} s wall (target <= $REBUILD_TARGET_S s: $(verdict "$REBUILD_MAX" "$REBUILD_TARGET_S")), builder CPU ${REBUILDS_CPU:-none} s (max $REBUILD_CPU_MAX); under load to the end: $R_UNDER_LOAD; p99 during rebuilds $R_P99_MS ms (target < $REBUILD_P99_TARGET_MS ms: $(verdict "$R_P99_MS" "$REBUILD_P99_TARGET_MS")); load average $LOAD_AVG on $(nproc) cores"
echo "apid RSS: $((RSS_KB / 1024)) MiB after the first build, $((RSS2_KB / 1024)) MiB after the rebuilds, peak $((HWM_KB / 1024)) MiB"
[ -z "${A_BOX_ERR}${A_ST_ERR}${A_SS_ERR}${N_BOX_ERR}${N_ST_ERR}" ] && [ "$R_ERR" = none ]
