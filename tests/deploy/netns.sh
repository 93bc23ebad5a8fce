#!/usr/bin/env bash
# tests/deploy/netns.sh: the deployment test of issue 8 on one machine,
# network namespaces as hosts (root only), joined by veth pairs to a bridge
# inside a hub namespace (ev-hub), so the host's own network is never
# touched. Hosts:
#   ev-lb          HAProxy (deploy/haproxy/haproxy.cfg, addresses substituted), wrk
#   ev-api1, -api2 apid, reading PostgreSQL and Redis from ev-dbr
#   ev-db          PostgreSQL primary, Redis primary
#   ev-dbr         db-replica: a PostgreSQL streaming replica (pg_basebackup -R,
#                  a replication slot) and a Redis replica (replicaof)
#   ev-realtime    realtimed: polls the simulator, writes the Redis primary
#   ev-ingest      ingestd: migrations and `ingestd chargers` on the primary
#   ev-upstream    bin/upstream-sim, standing in for the public API
# Releases are deployed with deploy/deploy.sh from a throwaway git repository
# (v1, v2 and v3-broken, whose apid exits at start); the ingest host deploys
# first (migrations), then each apid host, as .github/workflows/cd.yml does.
#
# Phases, each under its own paced wrk run (tests/deploy/load.lua: 1 thread,
# WRK_CONNECTIONS connections, a /stations box query by default) through the
# balancer:
#   rest       nothing happens: the p99 at rest
#   ingest     a second `ingestd chargers` (the simulator's next epoch) lands
#              on the primary; both apids must pick it up from the replica by
#              polling ingest_run (NOTIFY does not reach a standby)
#   rolling    deploy/rolling.sh restarts both apids ROLLS times: the p99
#              during restarts, at most P99_RATIO_MAX x the p99 at rest
#   bluegreen  deploy/bluegreen.sh switches BG_SWITCHES times (canary 10)
#              between apid on 8080 and on 8081 of the same two hosts
#   deploy     deploy.sh v2 (good) on ingest, api1, api2, then v3-broken:
#              api1 must roll back to v2 by itself (exit 1) and api2 keep v2
# Passes when every phase saw requests and no non-2xx response, no socket
# error (connect, read: also a body cut short, write, timeout) and no
# truncated body (a 2xx body shorter than the smallest answer or not ending
# the JSON document), and the p99 ratio holds.
#
# A restart without systemd: start the new apid on the same port
# (SO_REUSEPORT), wait for its port file, then SIGTERM the old one, which
# turns /readyz 503, keeps serving APID_SHUTDOWN_GRACE_SECONDS, closes its
# listener and drains. A new apid that exits before its port file appears
# fails the restart and the old one keeps serving.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: sudo tests/deploy/netns.sh [--quick] [--both] [options]
  --quick            CI size: 2 rolling restarts, 1 blue/green switch, short phases
  --both             run the whole test with net.ipv4.tcp_migrate_req 0, then 1,
                     and print both sets of figures (fails if either fails)
  --rolls N          ROLLS: rolling restarts of both apids (default 10, quick 2; 1..50)
  --switches N       BG_SWITCHES: blue/green switches (default 3, quick 1; 0..10)
  --rest-seconds S   REST_SECONDS: the at-rest load run (default 20, quick 8)
  --path PATH        WRK_PATH: request driven through the balancer (default a
                     /stations box query)
  WRK_CONNECTIONS    open connections (default 4, 1 thread)
  WRK_DELAY_MS       pause of each connection between requests (default 5)
  TCP_MIGRATE_REQ    net.ipv4.tcp_migrate_req in the apid hosts (0 or 1, default 0)
  SIM_CHARGERS       chargers in the simulator (default 10000)
  P99_RATIO_MAX      allowed p99 during restarts / p99 at rest (default 2)
Exit: 0 pass; 1 fail; 64 usage; 75 another run holds /tmp/ev-netns.lock; 77 not root
or a tool missing. Run it under `flock /tmp/bench.lock` on a shared machine.
USAGE
}
QUICK=0 BOTH=0
ROLLS=${ROLLS:-} BG_SWITCHES=${BG_SWITCHES:-} REST_SECONDS=${REST_SECONDS:-}
WRK_PATH=${WRK_PATH:-/stations?latitude=37.55&longitude=126.98&latitudeDelta=0.03&longitudeDelta=0.03}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-4}
WRK_DELAY_MS=${WRK_DELAY_MS:-5}
TCP_MIGRATE_REQ=${TCP_MIGRATE_REQ:-0}
SIM_CHARGERS=${SIM_CHARGERS:-10000}
P99_RATIO_MAX=${P99_RATIO_MAX:-2}
args=("$@")
while (($#)); do
	case $1 in
	--quick) QUICK=1; shift ;;
	--both) BOTH=1; shift ;;
	--rolls) ROLLS=${2:?}; shift 2 ;;
	--switches) BG_SWITCHES=${2:?}; shift 2 ;;
	--rest-seconds) REST_SECONDS=${2:?}; shift 2 ;;
	--path) WRK_PATH=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 64 ;;
	esac
done
if ((QUICK)); then
	: "${ROLLS:=2}" "${BG_SWITCHES:=1}" "${REST_SECONDS:=8}"
else
	: "${ROLLS:=10}" "${BG_SWITCHES:=3}" "${REST_SECONDS:=20}"
fi
[[ $TCP_MIGRATE_REQ == [01] && $BG_SWITCHES =~ ^[0-9]$|^10$ && $ROLLS =~ ^[0-9]+$ &&
	$REST_SECONDS =~ ^[0-9]+$ && $WRK_CONNECTIONS =~ ^[0-9]+$ && $WRK_DELAY_MS =~ ^[0-9]+$ &&
	$SIM_CHARGERS =~ ^[0-9]+$ && $P99_RATIO_MAX =~ ^[0-9]+(\.[0-9]+)?$ ]] || { usage >&2; exit 64; }
((ROLLS >= 1 && ROLLS <= 50 && REST_SECONDS >= 3 && REST_SECONDS <= 300 &&
	WRK_CONNECTIONS >= 1 && WRK_CONNECTIONS <= 64)) || { usage >&2; exit 64; }
[[ $(id -u) == 0 ]] || { echo "netns.sh: needs root (ip netns)" >&2; exit 77; }
for tool in ip haproxy wrk redis-server redis-cli psql curl git; do
	command -v "$tool" >/dev/null || { echo "netns.sh: $tool not installed" >&2; exit 77; }
done

# --both: the whole test once per tcp_migrate_req value, figures of both at the end.
if ((BOTH)); then
	rest=()
	for a in "${args[@]}"; do [[ $a == --both ]] || rest+=("$a"); done
	rc=0 results=()
	for m in 0 1; do
		out=$(mktemp)
		TCP_MIGRATE_REQ=$m "${BASH_SOURCE[0]}" "${rest[@]}" 2>&1 | tee "$out" || rc=1
		results+=("$(grep '^RESULT ' "$out" || echo "RESULT tcp_migrate_req=$m: no result (failed early)")")
		rm -f "$out"
	done
	printf '%s\n' "${results[@]}"
	exit "$rc"
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${TEST_BIN:-$root/bin}
for b in apid ingestd realtimed upstream-sim; do
	[[ -x $bin/$b ]] || { echo "netns.sh: $bin/$b missing (make all)" >&2; exit 77; }
done
pgbin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin | sort -V | tail -n 1)
[[ -x $pgbin/pg_basebackup ]] || { echo "netns.sh: PostgreSQL server binaries missing" >&2; exit 77; }
# One run at a time: the namespace names are fixed.
exec 8>/tmp/ev-netns.lock
flock -n 8 || { echo "netns.sh: another run holds /tmp/ev-netns.lock" >&2; exit 75; }

hosts=(lb api1 api2 db dbr realtime ingest upstream)
declare -A ip=([lb]=10.77.0.1 [api1]=10.77.0.11 [api2]=10.77.0.12 [db]=10.77.0.20 [dbr]=10.77.0.21
	[realtime]=10.77.0.30 [ingest]=10.77.0.31 [upstream]=10.77.0.40)
log() { printf '%s netns[%s]: %s\n' "$(date -u +%H:%M:%S)" "$TCP_MIGRATE_REQ" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
in_ns() { local h=$1; shift; ip netns exec "ev-$h" "$@"; }
delete_namespaces() {
	local h
	for h in "${hosts[@]}" hub; do
		{ ip netns pids "ev-$h" 2>/dev/null | xargs -r kill -KILL; } 2>/dev/null || true
	done
	for _ in $(seq 50); do # SIGKILL is not instant: no process may outlive its directory
		[[ -z $(for h in "${hosts[@]}"; do ip netns pids "ev-$h" 2>/dev/null; done) ]] && break
		sleep 0.1
	done
	for h in "${hosts[@]}" hub; do ip netns del "ev-$h" 2>/dev/null || true; done
}
# Left over by a run killed with SIGKILL (we hold the lock: none is running).
delete_namespaces

work=$(mktemp -d /tmp/ev-netns.XXXXXX)
chmod 755 "$work"
cleanup() {
	set +e
	trap - EXIT INT TERM
	local f
	for f in "$work"/*.pid; do [[ -e $f ]] && kill -KILL "$(cat "$f")" 2>/dev/null; done
	[[ -d $work/db/pg ]] && "$root/tests/harness/stores.sh" pg-stop "$work/db" >/dev/null 2>&1
	[[ -f $work/dbr/data/postmaster.pid ]] &&
		runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/dbr/data" -m immediate -w -t 20 stop >/dev/null 2>&1
	delete_namespaces
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- network: a bridge in ev-hub, one veth pair per host
ip netns add ev-hub
in_ns hub ip link add br0 type bridge
in_ns hub ip link set br0 up
in_ns hub ip link set lo up
for h in "${hosts[@]}"; do
	ip netns add "ev-$h"
	ip link add "evh-$h" type veth peer name "evb-$h"
	ip link set "evh-$h" netns "ev-$h"
	ip link set "evb-$h" netns ev-hub
	in_ns hub ip link set "evb-$h" master br0 up
	in_ns "$h" ip link set lo up
	in_ns "$h" ip addr add "${ip[$h]}/24" dev "evh-$h"
	in_ns "$h" ip link set "evh-$h" up
done
for h in api1 api2; do in_ns "$h" sysctl -q -w "net.ipv4.tcp_migrate_req=$TCP_MIGRATE_REQ"; done

# --- db: PostgreSQL primary (initdb by the harness script, then on the bridge,
# open to the subnet for queries and replication) and the Redis primary
mkdir -p "$work/db" "$work/redis-db" "$work/redis-dbr"
in_ns db "$root/tests/harness/stores.sh" pg-start "$work/db" 5432 >/dev/null
in_ns db "$root/tests/harness/stores.sh" pg-stop "$work/db"
printf '%s\n' "host all all 10.77.0.0/24 trust" "host replication all 10.77.0.0/24 trust" \
	>>"$work/db/pg/data/pg_hba.conf"
in_ns db runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/db/pg/data" -l "$work/db/pg/server.log" \
	-w -t 60 -o "-p 5432 -k $work/db/pg -c listen_addresses=${ip[db]} -c fsync=off \
-c wal_level=replica -c max_wal_senders=4 -c max_replication_slots=4" start >/dev/null
primary="postgresql://postgres@${ip[db]}:5432/postgres"
in_ns db redis-server --bind "${ip[db]}" --port 6379 --protected-mode no --save '' --appendonly no \
	--dir "$work/redis-db" --repl-diskless-sync yes --repl-diskless-sync-delay 0 \
	--daemonize yes --pidfile "$work/redis-db.pid" --logfile "$work/redis-db/redis.log"

# --- db-replica: pg_basebackup -R (streams WAL through a slot) as postgres into
# a directory it owns; a Redis replica of the primary
mkdir -p "$work/dbr"
chown postgres "$work/dbr"
in_ns dbr runuser -u postgres -- "$pgbin/pg_basebackup" -h "${ip[db]}" -p 5432 -U postgres \
	-D "$work/dbr/data" -R -X stream -C -S ev_replica --no-sync >"$work/basebackup.log" 2>&1 ||
	{ cat "$work/basebackup.log"; fail "pg_basebackup"; }
in_ns dbr runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/dbr/data" -l "$work/dbr/server.log" \
	-w -t 60 -o "-p 5432 -k $work/dbr -c listen_addresses=${ip[dbr]} -c fsync=off \
-c hot_standby=on -c hot_standby_feedback=on" start >/dev/null
replica="postgresql://postgres@${ip[dbr]}:5432/postgres"
[[ $(in_ns dbr psql -qtA "$replica" -c 'SELECT pg_is_in_recovery()') == t ]] || fail "replica not in recovery"
in_ns dbr redis-server --bind "${ip[dbr]}" --port 6379 --protected-mode no --save '' --appendonly no \
	--dir "$work/redis-dbr" --replicaof "${ip[db]}" 6379 --replica-read-only yes \
	--daemonize yes --pidfile "$work/redis-dbr.pid" --logfile "$work/redis-dbr/redis.log"
for _ in $(seq 100); do
	in_ns dbr redis-cli -h "${ip[dbr]}" info replication 2>/dev/null | grep -q 'master_link_status:up' && break
	sleep 0.2
done
in_ns dbr redis-cli -h "${ip[dbr]}" info replication | grep -q 'master_link_status:up' || fail "Redis replica not linked"
log "db primary and db-replica up (PostgreSQL slot ev_replica, Redis replicaof)"

# --- upstream: the simulator stands in for the public API
ip netns exec ev-upstream "$bin/upstream-sim" --bind "${ip[upstream]}" --port 8000 --port-file "$work/sim.port" \
	--seed 1 --chargers "$SIM_CHARGERS" --keys deploy-test-key --clock real >"$work/sim.log" 2>&1 &
echo $! >"$work/sim.pid"
disown
for _ in $(seq 100); do [[ -s $work/sim.port ]] && break; sleep 0.1; done
[[ -s $work/sim.port ]] || { cat "$work/sim.log"; fail "upstream-sim did not start"; }
sim="http://${ip[upstream]}:8000"
export UPSTREAM_URL=$sim/B552584/EvCharger UPSTREAM_KEYS=deploy-test-key LOG_FORMAT=json

# --- releases: a throwaway repository with v1, v2 (good) and v3-broken (its
# apid exits at start); build.sh copies this checkout's binaries and migrations
export EV_WORK=$work EV_BIN=$bin EV_ROOT=$root
repo=$work/repo
git init -q "$repo"
mkrel() { # tag broken(0|1)
	cat >"$repo/build.sh" <<'SH'
#!/bin/sh
set -e
mkdir -p bin
cp "$EV_BIN/apid" "$EV_BIN/ingestd" "$EV_BIN/realtimed" bin/
cp -r "$EV_ROOT/migrations" .
SH
	echo "echo 'release $1' >RELEASE" >>"$repo/build.sh"
	if (($2)); then
		cat >>"$repo/build.sh" <<'SH'
printf '#!/bin/sh\necho "apid: broken build, exiting" >&2\nexit 1\n' >bin/apid
SH
	fi
	git -C "$repo" add build.sh
	git -C "$repo" -c user.name=netns -c user.email=netns@localhost commit -qm "$1"
	git -C "$repo" tag "$1"
}
mkrel v1 0
mkrel v2 0
mkrel v3-broken 1
# deploy.sh on one host: ROLE HOST VERSION [deploy.sh options]
deploy_on() {
	local role=$1 h=$2 v=$3
	shift 3
	in_ns "$h" "$root/deploy/deploy.sh" --role "$role" --root "$work/opt-$h" --repo "$repo" \
		--build-cmd 'sh build.sh' --health-timeout 30 --health-stable 3 "$@" "$v"
}
deploy_ingest() { # VERSION: migrations on the primary, health = migrate --status
	DATABASE_URL=$primary deploy_on ingestd ingest "$1" --restart-cmd true
}

# --- ingest: migrations (the v1 deploy), then the first load
deploy_ingest v1 2>>"$work/deploy.log" || { tail "$work/deploy.log"; fail "deploy v1 on ingest"; }
ingest_run() { # one `ingestd chargers` on the ingest host; prints the new ingest_run id
	DATABASE_URL=$primary in_ns ingest "$work/opt-ingest/current/bin/ingestd" chargers \
		>>"$work/ingest.log" 2>&1 || { tail "$work/ingest.log" >&2; return 1; }
	in_ns ingest psql -qtA "$primary" -c \
		"SELECT max(id) FROM ingest_run WHERE job = 'chargers' AND status = 'ok'"
}
run1=$(ingest_run) || fail "first ingestd chargers"
log "ingest: first load, ingest_run $run1"

# --- realtime: realtimed polls the simulator into the Redis primary
REDIS_URL="redis://${ip[db]}:6379/0" REALTIMED_POLL_INTERVAL=5 REALTIMED_ADMIN_PORT=9102 \
	REALTIMED_PORT_FILE=$work/realtimed.port ip netns exec ev-realtime "$bin/realtimed" \
	>"$work/realtimed.log" 2>&1 &
echo $! >"$work/realtimed.pid"
disown
xlen=0
for _ in $(seq 150); do
	xlen=$(in_ns dbr redis-cli -h "${ip[dbr]}" XLEN ev:changes 2>/dev/null || echo 0)
	((xlen > 0)) && break
	sleep 0.2
done
((xlen > 0)) || { tail "$work/realtimed.log"; fail "no live state reached the Redis replica"; }
log "realtime: realtimed's change stream on the Redis replica ($xlen entries)"

# --- apid: starts and restarts without systemd (exported for the scripts' bash -c)
export DATABASE_URL=$replica REDIS_URL="redis://${ip[dbr]}:6379/0"
export APID_NOTIFY_CHANNEL='' APID_MODEL_POLL_SECONDS=2
export APID_SHUTDOWN_GRACE_SECONDS=3 APID_DRAIN_SECONDS=10
inst_host() { case $1 in api1 | green1 | *.11 | *.11:*) echo api1 ;; *) echo api2 ;; esac; }
inst_name() { # address[:port] or name -> api1 api2 (8080) green1 green2 (8081)
	case $1 in
	*.11 | *.11:8080) echo api1 ;; *.12 | *.12:8080) echo api2 ;;
	*.11:8081) echo green1 ;; *.12:8081) echo green2 ;; *) echo "$1" ;;
	esac
}
apid_start() { # instance: runs its host's current release; fails if it exits first
	local h=$1 n ns port=8080 pid
	n=$(date +%s%N)
	ns=$(inst_host "$h")
	[[ $h != green* ]] || port=8081
	APID_PORT=$port APID_PORT_FILE=$EV_WORK/$h.$n.port setsid ip netns exec "ev-$ns" \
		"$EV_WORK/opt-$ns/current/bin/apid" >>"$EV_WORK/$h.log" 2>&1 </dev/null &
	pid=$!
	for _ in $(seq 300); do
		[[ -s $EV_WORK/$h.$n.port ]] && { echo "$pid" >"$EV_WORK/$h.pid.new"; return 0; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	echo "apid $h did not start: $(tail -n 1 "$EV_WORK/$h.log")" >&2
	return 1
}
apid_stop() { # pid: SIGTERM (apid drains), bounded wait
	kill -TERM "$1" 2>/dev/null || return 0
	for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	echo "apid $1 did not exit in 30 s" >&2
	return 1
}
apid_restart() { # instance: new first (reuseport overlap), then SIGTERM the old
	local h old t0 t1
	h=$(inst_name "$1")
	old=$(cat "$EV_WORK/$h.pid" 2>/dev/null || true)
	t0=$(date +%s%N)
	apid_start "$h" || return 1
	mv "$EV_WORK/$h.pid.new" "$EV_WORK/$h.pid"
	t1=$(date +%s%N)
	[[ -z $old ]] || apid_stop "$old" || return 1
	echo "$h $(((t1 - t0) / 1000000)) $((($(date +%s%N) - t0) / 1000000))" >>"$EV_WORK/restarts.log"
}
inst_start() { local h; h=$(inst_name "$1"); apid_start "$h" && mv "$EV_WORK/$h.pid.new" "$EV_WORK/$h.pid"; }
inst_stop() { local h; h=$(inst_name "$1"); apid_stop "$(cat "$EV_WORK/$h.pid")" && rm -f "$EV_WORK/$h.pid"; }
# HAProxy's runtime API on TCP 127.0.0.1:9999 inside ev-lb (no socat needed).
hapi() { # command: its answer on stdout
	exec 3<>/dev/tcp/127.0.0.1/9999
	printf '%s\n' "$1" >&3
	timeout 2 cat <&3 || true
	exec 3>&-
}
lb_weight() { hapi "set weight apid/$(inst_name "$1") $2" >/dev/null; }
export -f inst_host inst_name apid_start apid_stop apid_restart inst_start inst_stop hapi lb_weight

# --- apid hosts: v1 deployed by deploy.sh, which starts apid and checks /readyz
for h in api1 api2; do
	deploy_on apid "$h" v1 --migrate-cmd true --restart-cmd "apid_restart $h" \
		--health-url "http://127.0.0.1:8080/readyz" 2>>"$work/deploy.log" ||
		{ tail "$work/deploy.log" "$work/$h.log"; fail "deploy v1 on $h"; }
done
: >"$work/restarts.log"

# --- lb: the repository's HAProxy config with this test's addresses
sed -e "s|unix@\?/run/haproxy/admin.sock|ipv4@127.0.0.1:9999|" -e "s|/run/haproxy/admin.sock|ipv4@127.0.0.1:9999|" -e '/^\tuser haproxy/d' -e '/^\tgroup haproxy/d' \
	-e '/^\tdaemon/d' -e 's|log /dev/log local0|log stderr local0 warning|' \
	-e "s|server api1 10.0.0.11:8080|server api1 ${ip[api1]}:8080|" \
	-e "s|server api2 10.0.0.12:8080|server api2 ${ip[api2]}:8080|" \
	-e "s|server green1 10.0.0.21:8080|server green1 ${ip[api1]}:8081|" \
	-e "s|server green2 10.0.0.22:8080|server green2 ${ip[api2]}:8081|" \
	-e 's| mode 660||' -e 's| expose-fd listeners||' -e 's|maxconn 20000|maxconn 4000|' \
	"$root/deploy/haproxy/haproxy.cfg" >"$work/haproxy.cfg"
haproxy -c -q -f "$work/haproxy.cfg"
ip netns exec ev-lb haproxy -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
echo $! >"$work/haproxy.pid"
disown
url="http://${ip[lb]}:80"
code=
for _ in $(seq 100); do
	code=$(in_ns lb curl -s -o "$work/first.json" -m 2 -w '%{http_code}' "$url$WRK_PATH" || true)
	[[ $code == 200 ]] && break
	sleep 0.2
done
[[ $code == 200 ]] || { cat "$work/haproxy.log" "$work/first.json"; fail "balancer answers $code"; }

# The data path: ingestd's load, read through the replica, served by apid.
stations=$(grep -o '"stationId"' "$work/first.json" | wc -l)
((stations > 0)) || { head -c 300 "$work/first.json"; fail "no stations in $WRK_PATH"; }
min_bytes=$(stat -c %s "$work/first.json")
# The live state, realtimed -> Redis primary -> replica -> apid: a station's chargers carry it.
sid=$(grep -o '"stationId":"[^"]*"' "$work/first.json" | head -n 1 | cut -d'"' -f4)
in_ns lb curl -fsS -m 5 "$url/stations/$sid" -o "$work/station.json"
grep -q '"latestUpdateTime":"' "$work/station.json" ||
	{ head -c 400 "$work/station.json"; fail "station $sid carries no live state"; }
log "topology up: $stations stations in the box ($min_bytes bytes), live state on station $sid"
metric() { # instance address:port, metric name -> value
	in_ns lb curl -fsS -m 2 "http://$1/metrics" | awk -v m="$2" '$1 == m {print $2; exit}'
}

# --- phases under load: each a paced wrk run, stopped (SIGINT: wrk prints) at the end
declare -A res=()
phases=()
load_start() { # phase name
	ip netns exec ev-lb env WRK_DELAY_MS="$WRK_DELAY_MS" WRK_MIN_BYTES="$((min_bytes / 2))" \
		wrk -t1 -c"$WRK_CONNECTIONS" -d900s --timeout 5s -s "$root/tests/deploy/load.lua" \
		"$url$WRK_PATH" >"$work/wrk.$1.out" 2>&1 &
	wrk_pid=$!
	phases+=("$1")
	sleep 1
}
load_stop() { # phase name
	kill -INT "$wrk_pid" 2>/dev/null || true
	wait "$wrk_pid" || true
	local line
	line=$(grep '^EVLOAD ' "$work/wrk.$1.out") || { cat "$work/wrk.$1.out"; fail "wrk printed no figures ($1)"; }
	res[$1]=${line#EVLOAD }
	log "$1: ${res[$1]}"
	# What the balancer hid (cumulative): connection errors, server errors, retries, redispatches.
	log "$1: haproxy backend apid so far: $(in_ns lb bash -c 'hapi "show stat"' |
		awk -F, '$1 == "apid" && $2 == "BACKEND" { printf "econ=%s eresp=%s wretr=%s wredis=%s", $14, $15, $16, $17 }')"
}
field() { # phase key
	local kv
	for kv in ${res[$1]}; do [[ ${kv%%=*} == "$2" ]] && { echo "${kv#*=}"; return; }; done
	echo 0
}

# rest: the p99 reference
load_start rest
sleep "$REST_SECONDS"
load_stop rest

# ingest: the next epoch of master data lands on the primary; both apids
# (same processes: polling, not a restart) must serve it from the replica
load_start ingest
pids_before="$(cat "$work/api1.pid") $(cat "$work/api2.pid")"
in_ns upstream curl -fsS -m 5 "$sim/__admin/epoch?advance=1" >/dev/null
run2=$(ingest_run) || fail "second ingestd chargers"
t0=$SECONDS
for a in "${ip[api1]}:8080" "${ip[api2]}:8080"; do
	until [[ $(metric "$a" apid_model_run_id) == "$run2" ]]; do
		((SECONDS - t0 < 60)) || fail "$a still serves ingest_run $(metric "$a" apid_model_run_id), not $run2"
		sleep 0.5
	done
done
[[ $pids_before == "$(cat "$work/api1.pid") $(cat "$work/api2.pid")" ]] || fail "apid restarted during the ingest phase"
log "ingest: ingest_run $run2 served by both apids through the replica after $((SECONDS - t0))s" \
	"($(metric "${ip[api1]}:8080" apid_model_stations) stations)"
load_stop ingest

# rolling: ROLLS rolling restarts of both apids, from the lb host as an operator would
load_start rolling
roll_ms=()
for ((i = 1; i <= ROLLS; i++)); do
	t0=$(date +%s%N)
	in_ns lb "$root/deploy/rolling.sh" --restart-cmd 'apid_restart {host}' \
		--drain-seconds 0 --settle-seconds 2 --ready-timeout 30 \
		"${ip[api1]}" "${ip[api2]}" 2>>"$work/rolling.log" ||
		{ tail "$work/rolling.log"; fail "rolling restart $i"; }
	roll_ms+=("$((($(date +%s%N) - t0) / 1000000))")
	log "rolling restart $i/$ROLLS done in ${roll_ms[-1]} ms"
done
load_stop rolling

# bluegreen: api1/api2 (8080) <-> green1/green2 (8081), BG_SWITCHES times
live="${ip[api1]}:8080,${ip[api2]}:8080" idle="${ip[api1]}:8081,${ip[api2]}:8081"
bg_ms=()
if ((BG_SWITCHES > 0)); then
	load_start bluegreen
	for ((i = 1; i <= BG_SWITCHES; i++)); do
		t0=$(date +%s%N)
		in_ns lb "$root/deploy/bluegreen.sh" --blue "$live" --green "$idle" \
			--start-cmd 'inst_start {host}' --stop-cmd 'inst_stop {host}' \
			--weight-cmd 'lb_weight {host} {weight}' --ready-url 'http://{host}/readyz' \
			--check-cmd "curl -fsS -m 5 'http://{host}$WRK_PATH' -o /dev/null" \
			--canary-weight 10 --canary-seconds 4 --drain-seconds 5 --ready-timeout 30 \
			2>>"$work/bluegreen.log" || { tail "$work/bluegreen.log"; fail "blue/green switch $i"; }
		bg_ms+=("$((($(date +%s%N) - t0) / 1000000))")
		log "blue/green switch $i/$BG_SWITCHES done in ${bg_ms[-1]} ms"
		tmp=$live live=$idle idle=$tmp
	done
	load_stop bluegreen
fi

# deploy: as CD does, ingest first, then each apid host in turn, stopping at
# the first failure; the live instance of each host is restarted
load_start deploy
live_inst() { inst_name "$(tr , '\n' <<<"$live" | grep -F "${ip[$1]}:")"; }
live_port() { tr , '\n' <<<"$live" | grep -F "${ip[$1]}:" | cut -d: -f2; }
deploy_api() { # host version
	deploy_on apid "$1" "$2" --migrate-cmd true --restart-cmd "apid_restart $(live_inst "$1")" \
		--health-url "http://127.0.0.1:$(live_port "$1")/readyz"
}
deploy_ingest v2 2>>"$work/deploy.log" || fail "deploy v2 on ingest"
for h in api1 api2; do deploy_api "$h" v2 2>>"$work/deploy.log" || { tail "$work/deploy.log"; fail "deploy v2 on $h"; }; done
deploy_ingest v3-broken 2>>"$work/deploy.log" || fail "deploy v3-broken on ingest (its ingestd is good)"
t0=$(date +%s%N)
rc=0
deploy_api api1 v3-broken 2>>"$work/deploy.log" || rc=$?
rollback_ms=$((($(date +%s%N) - t0) / 1000000))
[[ $rc == 1 ]] || { tail "$work/deploy.log"; fail "deploy of v3-broken on api1: exit $rc, wanted 1 (rolled back)"; }
grep -q 'ROLLBACK: v3-broken unhealthy; back to v2' "$work/deploy.log" || fail "deploy.sh logged no rollback"
for h in api1 api2; do
	cur=$(basename "$(readlink -f "$work/opt-$h/current")")
	[[ $cur == v2 ]] || fail "$h runs $cur after the failed deploy, not v2"
done
code=$(in_ns lb curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$(tr , '\n' <<<"$live" | head -n 1)/readyz")
[[ $code == 200 ]] || fail "api1 not ready after the rollback ($code)"
log "deploy: v2 on ingest, api1, api2; v3-broken on api1 rolled back to v2 in $rollback_ms ms (CD stops: api2 untouched)"
load_stop deploy

# --- figures
total=0 non2xx=0 sockerr=0 truncated=0 bad=0
for p in "${phases[@]}"; do
	total=$((total + $(field "$p" requests)))
	non2xx=$((non2xx + $(field "$p" non2xx)))
	sockerr=$((sockerr + $(field "$p" sockerr)))
	truncated=$((truncated + $(field "$p" truncated)))
	(($(field "$p" requests) > 0)) || { log "phase $p served no request"; bad=1; }
done
p99_rest=$(field rest p99_us) p99_roll=$(field rolling p99_us)
ratio=$(awk -v a="$p99_roll" -v b="$p99_rest" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
ratio_ok=$(awk -v r="$ratio" -v m="$P99_RATIO_MAX" 'BEGIN { print (r <= m) ? 1 : 0 }')
median_max() { # column of restarts.log -> "median max" of its values
	cut -d' ' -f"$1" "$work/restarts.log" | sort -n | awk '{ v[NR] = $1 } END { printf "%d %d\n", v[int((NR + 1) / 2)], v[NR] }'
}
rs_n=$(wc -l <"$work/restarts.log")
read -r rs_up_med rs_up_max < <(median_max 2)
read -r rs_med rs_max < <(median_max 3)
log "per phase p99 (ms): $(for p in "${phases[@]}"; do printf '%s %.2f  ' "$p" "$(awk -v u="$(field "$p" p99_us)" 'BEGIN { print u / 1000 }')"; done)"
log "rolling restarts (ms, both hosts each): ${roll_ms[*]}; blue/green switches (ms): ${bg_ms[*]:-none}"
log "apid restarts: $rs_n, new instance serving after median $rs_up_med ms (max $rs_up_max), old drained after median $rs_med ms (max $rs_max)"
result="RESULT tcp_migrate_req=$TCP_MIGRATE_REQ requests=$total non2xx=$non2xx socket_errors=$sockerr truncated=$truncated"
result+=" p99_rest_ms=$(awk -v u="$p99_rest" 'BEGIN { printf "%.2f", u / 1000 }')"
result+=" p99_restarts_ms=$(awk -v u="$p99_roll" 'BEGIN { printf "%.2f", u / 1000 }') ratio=$ratio"
result+=" restarts=$rs_n restart_ms_median=$rs_med restart_ms_max=$rs_max rollback_ms=$rollback_ms"
echo "$result"
((ratio_ok)) || { log "p99 during restarts is ${ratio}x the p99 at rest: above $P99_RATIO_MAX"; bad=1; }
((bad == 0 && total > 0 && non2xx == 0 && sockerr == 0 && truncated == 0)) || fail "see the figures above"
log "PASS"
