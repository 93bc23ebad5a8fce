#!/usr/bin/env bash
# tests/deploy/netns.sh: the deployment test on one machine, network
# namespaces as hosts (root only). Hosts: ev-lb (HAProxy from
# deploy/haproxy/haproxy.cfg, wrk), ev-api1 and ev-api2 (apid), ev-db
# (PostgreSQL and Redis), joined by veth pairs to a bridge inside a hub
# namespace (ev-hub), so the host's own network is never touched.
# While wrk drives bounded load through the balancer, deploy/rolling.sh
# restarts both apids ROLLS times; the test passes when wrk saw no non-2xx
# response, no socket error and no timeout.
#
# A restart without systemd: start the new apid on the same port
# (SO_REUSEPORT), wait for its port file, then SIGTERM the old one, which
# turns /readyz 503, keeps serving APID_SHUTDOWN_GRACE_SECONDS, closes its
# listener and drains.
#
# Then deploy/bluegreen.sh switches BG_SWITCHES times (canary 10 first)
# between apid on 8080 and on 8081 of the same two hosts, through HAProxy's
# runtime API.
#
# Not covered yet (issue 8): realtime, ingest and db-replica hosts, the
# broken-build rollback through deploy.sh, the p99-during-restart figure.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: sudo tests/deploy/netns.sh [--rolls N] [--wrk-seconds S] [--path /healthz]
  ROLLS        rolling restarts of both apids (default 10, at most 50)
  WRK_SECONDS  upper bound of the load run (default 300, at most 900)
  WRK_PATH     request path driven through the balancer (default /healthz)
  WRK_CONNECTIONS  open connections (default 8, 1 thread)
  BG_SWITCHES  blue/green switches after the rolling restarts (default 3, at most 10)
  TCP_MIGRATE_REQ  net.ipv4.tcp_migrate_req in the apid hosts (0 or 1, default 0);
                   the acceptance runs the test once with each
USAGE
}
ROLLS=${ROLLS:-10}
WRK_SECONDS=${WRK_SECONDS:-300}
WRK_PATH=${WRK_PATH:-/healthz}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-8}
TCP_MIGRATE_REQ=${TCP_MIGRATE_REQ:-0}
BG_SWITCHES=${BG_SWITCHES:-3}
while (($#)); do
	case $1 in
	--rolls) ROLLS=${2:?}; shift 2 ;;
	--wrk-seconds) WRK_SECONDS=${2:?}; shift 2 ;;
	--path) WRK_PATH=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 64 ;;
	esac
done
[[ $TCP_MIGRATE_REQ == [01] && $BG_SWITCHES =~ ^[0-9]$|^10$ ]] || { usage >&2; exit 64; }
((ROLLS >= 1 && ROLLS <= 50 && WRK_SECONDS >= 10 && WRK_SECONDS <= 900)) || { usage >&2; exit 64; }
[[ $(id -u) == 0 ]] || { echo "netns.sh: needs root (ip netns)" >&2; exit 77; }
for tool in ip haproxy wrk redis-server curl; do
	command -v "$tool" >/dev/null || { echo "netns.sh: $tool not installed" >&2; exit 77; }
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${TEST_BIN:-$root/bin}
work=$(mktemp -d /tmp/ev-netns.XXXXXX)
chmod 755 "$work"
hosts=(lb api1 api2 db)
declare -A ip=([lb]=10.77.0.1 [api1]=10.77.0.11 [api2]=10.77.0.12 [db]=10.77.0.20)
log() { printf '%s netns: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
in_ns() { local h=$1; shift; ip netns exec "ev-$h" "$@"; }

cleanup() {
	set +e
	for f in "$work"/*.pid; do
		[[ -e $f ]] && kill -KILL "$(cat "$f")" 2>/dev/null
	done
	[[ -d $work/db ]] && "$root/tests/harness/stores.sh" stop "$work/db" >/dev/null 2>&1
	for h in "${hosts[@]}" hub; do ip netns pids "ev-$h" 2>/dev/null | xargs -r kill -KILL; done
	for h in "${hosts[@]}" hub; do ip netns del "ev-$h" 2>/dev/null; done
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
in_ns lb ip neigh flush all 2>/dev/null || true

# --- db: PostgreSQL (initdb by the harness script, then on the bridge) and Redis
mkdir -p "$work/db"
in_ns db "$root/tests/harness/stores.sh" pg-start "$work/db" 5432 >/dev/null
in_ns db "$root/tests/harness/stores.sh" pg-stop "$work/db"
pgdata=$work/db/pg/data
echo "host all all 10.77.0.0/24 trust" >>"$pgdata/pg_hba.conf"
pgbin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin | sort -V | tail -n 1)
in_ns db runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdata" -l "$work/db/pg/server.log" -w -t 60 \
	-o "-p 5432 -k $work/db/pg -c listen_addresses=${ip[db]} -c fsync=off" start >/dev/null
in_ns db redis-server --bind "${ip[db]}" --port 6379 --protected-mode no --save '' \
	--daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"
export DATABASE_URL="postgresql://postgres@${ip[db]}:5432/postgres"
export REDIS_URL="redis://${ip[db]}:6379/0"
INGESTD_MIGRATIONS_DIR=$root/migrations in_ns db "$bin/ingestd" migrate >"$work/migrate.log" 2>&1 ||
	{ cat "$work/migrate.log"; exit 1; }

# --- apid: start / restart without systemd (exported for rolling.sh's bash -c)
export APID_PORT=8080 APID_SHUTDOWN_GRACE_SECONDS=3 APID_DRAIN_SECONDS=10 LOG_FORMAT=json
export EV_WORK=$work EV_BIN=$bin
apid_start() { # instance (api1 api2: port 8080; green1 green2: 8081 on the same hosts)
	local h=$1 n ns port=8080
	n=$(date +%s%N)
	case $h in api1 | green1) ns=api1 ;; *) ns=api2 ;; esac
	[[ $h != green* ]] || port=8081
	APID_PORT=$port APID_PORT_FILE=$EV_WORK/$h.$n.port setsid ip netns exec "ev-$ns" "$EV_BIN/apid" \
		>>"$EV_WORK/$h.log" 2>&1 </dev/null &
	echo $! >"$EV_WORK/$h.new.pid"
	for _ in $(seq 100); do [[ -s $EV_WORK/$h.$n.port ]] && break; sleep 0.1; done
	[[ -s $EV_WORK/$h.$n.port ]]
}
apid_restart() { # host or its address; new first (reuseport overlap), then SIGTERM the old
	local h=$1 old
	case $h in *.11) h=api1 ;; *.12) h=api2 ;; esac
	old=$(cat "$EV_WORK/$h.pid")
	apid_start "$h" || return 1
	mv "$EV_WORK/$h.new.pid" "$EV_WORK/$h.pid"
	kill -TERM "$old"
	for _ in $(seq 300); do kill -0 "$old" 2>/dev/null || return 0; sleep 0.1; done
	echo "old apid $old on $h did not exit in 30 s" >&2
	return 1
}
# Blue/green instances are named by address:port in bluegreen.sh.
inst_name() {
	case $1 in *.11:8080) echo api1 ;; *.12:8080) echo api2 ;; *.11:8081) echo green1 ;; *.12:8081) echo green2 ;; esac
}
inst_start() { local h; h=$(inst_name "$1"); apid_start "$h" && mv "$EV_WORK/$h.new.pid" "$EV_WORK/$h.pid"; }
inst_stop() { # SIGTERM (apid drains), bounded wait
	local h pid
	h=$(inst_name "$1")
	pid=$(cat "$EV_WORK/$h.pid")
	kill -TERM "$pid"
	for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}
# HAProxy's runtime API on TCP 127.0.0.1:9999 inside ev-lb (no socat needed).
hapi() {
	exec 3<>/dev/tcp/127.0.0.1/9999
	printf '%s\n' "$1" >&3
	timeout 2 cat <&3 >/dev/null || true
	exec 3>&-
}
lb_weight() { hapi "set weight apid/$(inst_name "$1") $2"; }
export -f apid_start apid_restart inst_name inst_start inst_stop hapi lb_weight
for h in api1 api2; do
	apid_start "$h" || { tail -n 20 "$work/$h.log"; exit 1; }
	mv "$work/$h.new.pid" "$work/$h.pid"
done

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
in_ns lb haproxy -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
echo $! >"$work/haproxy.pid"
url="http://${ip[lb]}:80"
code=
for _ in $(seq 100); do
	code=$(in_ns lb curl -s -o /dev/null -m 2 -w '%{http_code}' "$url$WRK_PATH" || true)
	[[ $code == 200 ]] && break
	sleep 0.2
done
[[ $code == 200 ]] || { log "balancer answers $code"; cat "$work/haproxy.log"; exit 1; }
for h in api1 api2; do
	code=$(in_ns lb curl -s -o /dev/null -m 2 -w '%{http_code}' "http://${ip[$h]}:8080/readyz" || true)
	[[ $code == 200 ]] || { log "$h /readyz $code"; tail -n 20 "$work/$h.log"; exit 1; }
done
log "topology up: lb ${ip[lb]}, api1, api2, db"

# --- load and rolling restarts
in_ns lb timeout $((WRK_SECONDS + 30)) wrk -t1 -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" --timeout 5s \
	--latency "$url$WRK_PATH" >"$work/wrk.out" 2>&1 &
wrk_pid=$!
sleep 3
durations=()
for ((i = 1; i <= ROLLS; i++)); do
	t0=$(date +%s%N)
	# From the lb host, as an operator would: its curl reaches the apids.
	in_ns lb "$root/deploy/rolling.sh" --restart-cmd 'apid_restart {host}' \
		--drain-seconds 0 --settle-seconds 2 --ready-timeout 30 \
		"${ip[api1]}" "${ip[api2]}" 2>>"$work/rolling.log" ||
		{ log "rolling restart $i failed"; tail "$work/rolling.log"; exit 1; }
	durations+=("$((($(date +%s%N) - t0) / 1000000))ms")
	log "rolling restart $i/$ROLLS done in ${durations[-1]}"
done
# Blue/green: api1/api2 (8080) <-> green1/green2 (8081), BG_SWITCHES times.
live="${ip[api1]}:8080,${ip[api2]}:8080" idle="${ip[api1]}:8081,${ip[api2]}:8081"
for ((i = 1; i <= BG_SWITCHES; i++)); do
	t0=$(date +%s%N)
	in_ns lb "$root/deploy/bluegreen.sh" --blue "$live" --green "$idle" \
		--start-cmd 'inst_start {host}' --stop-cmd 'inst_stop {host}' \
		--weight-cmd 'lb_weight {host} {weight}' --ready-url 'http://{host}/readyz' \
		--canary-weight 10 --canary-seconds 4 --drain-seconds 5 --ready-timeout 30 \
		2>>"$work/bluegreen.log" || { log "blue/green switch $i failed"; tail "$work/bluegreen.log"; exit 1; }
	durations+=("bg:$((($(date +%s%N) - t0) / 1000000))ms")
	log "blue/green switch $i/$BG_SWITCHES done in ${durations[-1]}"
	tmp=$live live=$idle idle=$tmp
done
kill -INT "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" || true
cat "$work/wrk.out"
requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
non2xx=$(awk -F': ' '/Non-2xx/ {print $2}' "$work/wrk.out")
sockerr=$(grep -o 'Socket errors:.*' "$work/wrk.out" || true)
log "tcp_migrate_req=$TCP_MIGRATE_REQ: requests ${requests:-0}, non-2xx ${non2xx:-0}, ${sockerr:-Socket errors: none}, restarts ${durations[*]}"
[[ -n $requests && $requests -gt 0 && -z $non2xx && -z $sockerr ]]
