#!/usr/bin/env bash
# sim_throughput.sh: how fast bin/upstream-sim serves JSON, against nginx
# serving a static file of the same size to the same client (curl), plus the
# 37M-charger start-up figures (time to first answer, RSS over 20 random
# pages). Prints figures; fails only when something does not run.
#   BENCH_QUICK=1  fewer pages (CI keeps the script from rotting)
#   BENCH_PAGES=N  pages of 9999 rows per measurement (default 40)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SIM=$ROOT/bin/upstream-sim
PAGES=${BENCH_PAGES:-40}
[ "${BENCH_QUICK:-0}" = 1 ] && PAGES=5
ROWS=9999

[ -x "$SIM" ] || { echo "sim_throughput: $SIM missing (run make)" >&2; exit 1; }
command -v curl >/dev/null || { echo "sim_throughput: curl missing" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d /tmp/simbench.XXXXXX)
chmod 0755 "$WORK"
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }

# Start the simulator on port 0; sets SIM_PID and SIM_PORT.
start_sim() {
	local portfile=$WORK/port.$RANDOM
	"$SIM" --port 0 --port-file "$portfile" "$@" 2>>"$WORK/sim.log" &
	SIM_PID=$!
	PIDS+=("$SIM_PID")
	local i
	for i in $(seq 1 500); do
		[ -s "$portfile" ] && break
		sleep 0.01
	done
	[ -s "$portfile" ] || { echo "sim_throughput: simulator did not start" >&2; cat "$WORK/sim.log" >&2; exit 1; }
	SIM_PORT=$(cat "$portfile")
}

stop_pid() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# Below the ephemeral range, where CI's tests beside the benchmarks take
# ports for their outgoing connections (tests/harness/stores.sh).
free_port() { "$ROOT/tests/harness/stores.sh" free-port; }

# Fetch the URLs given on stdin with one curl process (keep-alive, one at a
# time); prints "bytes seconds".
fetch_all() {
	local args=() url
	while read -r url; do args+=(-o /dev/null "$url"); done
	curl -s -w '%{size_download} %{time_total}\n' "${args[@]}" |
		awk '{b += $1; t += $2} END {printf "%d %.6f\n", b, t}'
}

mbps() { awk -v b="$1" -v t="$2" 'BEGIN {printf "%.1f", (t > 0 ? b / t / 1e6 : 0)}'; }

# ---- simulator throughput ----
start_sim --chargers 1000000 --seed 1
base="http://127.0.0.1:$SIM_PORT/B552584/EvCharger/getChargerInfo?serviceKey=test-key&numOfRows=$ROWS&dataType=JSON"
curl -s -o "$WORK/page.json" "$base&pageNo=1" # warm-up; also the static file for nginx
read -r sim_bytes sim_secs < <(for p in $(seq 1 "$PAGES"); do echo "$base&pageNo=$((p % 100 + 1))"; done | fetch_all)
stop_pid "$SIM_PID"
sim_mbps=$(mbps "$sim_bytes" "$sim_secs")

# ---- nginx, same client, a static file of the same size ----
mkdir -p "$WORK/www" "$WORK/nginx-tmp"
cp "$WORK/page.json" "$WORK/www/page.json"
chmod -R a+rX "$WORK/www"
NGINX_PORT=$(free_port)
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 64; }
http {
	access_log off;
	sendfile on;
	default_type application/json;
	client_body_temp_path $WORK/nginx-tmp/body;
	proxy_temp_path $WORK/nginx-tmp/proxy;
	fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
	uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
	scgi_temp_path $WORK/nginx-tmp/scgi;
	server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; }
}
EOF
nginx_mbps=n/a ratio=n/a
if [ -x "$NGINX" ]; then
	"$NGINX" -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" -g 'daemon off;' &
	NGINX_PID=$!
	PIDS+=("$NGINX_PID")
	for i in $(seq 1 300); do
		curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/page.json" && break
		sleep 0.01
	done
	curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/page.json" ||
		{ echo "sim_throughput: nginx did not answer on port $NGINX_PORT" >&2; cat "$WORK/nginx-error.log" >&2; exit 1; }
	read -r ng_bytes ng_secs < <(for p in $(seq 1 "$PAGES"); do echo "http://127.0.0.1:$NGINX_PORT/page.json"; done | fetch_all)
	stop_pid "$NGINX_PID"
	nginx_mbps=$(mbps "$ng_bytes" "$ng_secs")
	ratio=$(awk -v a="$sim_mbps" -v b="$nginx_mbps" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
else
	echo "sim_throughput: nginx not installed (package nginx-light); no ratio" >&2
fi

# ---- 37M chargers: first answer, RSS over 20 random pages ----
t0=$(now)
start_sim --chargers 37000000 --seed 1
first=""
for i in $(seq 1 1000); do
	if curl -sf -o /dev/null "http://127.0.0.1:$SIM_PORT/B552584/EvCharger/getChargerInfo?serviceKey=test-key&numOfRows=10&dataType=JSON"; then
		first=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}')
		break
	fi
	sleep 0.005
done
[ -n "$first" ] || { echo "sim_throughput: no answer at 37M" >&2; exit 1; }
peak=0
for i in $(seq 1 20); do
	p=$((RANDOM % 3700 + 1))
	curl -sf -o /dev/null "http://127.0.0.1:$SIM_PORT/B552584/EvCharger/getChargerInfo?serviceKey=test-key&pageNo=$p&numOfRows=$ROWS&dataType=JSON"
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SIM_PID/status")
	[ "$rss" -gt "$peak" ] && peak=$rss
done
stop_pid "$SIM_PID"

echo "upstream-sim JSON: $sim_mbps MB/s over $PAGES pages of $ROWS rows ($sim_bytes bytes, one curl, keep-alive)"
echo "nginx static file of the same size: $nginx_mbps MB/s; ratio sim/nginx: $ratio"
echo "37,000,000 chargers: first answer ${first} s after start; peak RSS $((peak / 1024)) MiB over 20 random pages of $ROWS rows"
