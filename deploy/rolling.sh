#!/usr/bin/env bash
# rolling.sh: restart apid hosts one at a time behind the load balancer.
# For each host: drain it in the balancer (or rely on apid's own SIGTERM
# drain), restart it, wait until its /readyz answers 200, put it back, next.
# Stops at the first host that does not come back ready: the hosts not yet
# touched keep serving, and the exit code is nonzero.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: deploy/rolling.sh [options] HOST...

Restart apid on each HOST in turn, one at a time.

Options (each also an environment variable):
  --restart-cmd CMD    RESTART_CMD   command restarting one host's apid (required);
                                     {host} is replaced by the host name, e.g.
                                     'ssh {host} sudo systemctl restart apid.service'
  --ready-url URL      READY_URL     readiness URL template
                                     (default http://{host}:8080/readyz)
  --drain-cmd CMD      DRAIN_CMD     take {host} out of the balancer before the restart
                                     (default with HAPROXY_SOCKET: "set server
                                     apid/{host} state drain"; else none: apid's
                                     SIGTERM turns /readyz 503 and the balancer's
                                     health check takes it out)
  --enable-cmd CMD     ENABLE_CMD    put {host} back (default with HAPROXY_SOCKET:
                                     "set server apid/{host} state ready")
  --drain-seconds N    DRAIN_SECONDS wait after draining, for in-flight requests (default 3)
  --ready-timeout N    READY_TIMEOUT seconds to wait for 200 from the ready URL (default 60)
  --settle-seconds N   SETTLE_SECONDS wait after a host is back before the next (default 2)
  --haproxy-socket P   HAPROXY_SOCKET HAProxy runtime API socket (needs socat)
  --backend NAME       LB_BACKEND    HAProxy backend name (default apid)
  -h, --help           this text

Exit codes: 0 all hosts restarted and ready; 1 a host failed (later hosts
untouched); 64 bad usage.
USAGE
}

RESTART_CMD=${RESTART_CMD:-}
default_ready_url='http://{host}:8080/readyz'
READY_URL=${READY_URL:-$default_ready_url}
DRAIN_CMD=${DRAIN_CMD:-}
ENABLE_CMD=${ENABLE_CMD:-}
DRAIN_SECONDS=${DRAIN_SECONDS:-3}
READY_TIMEOUT=${READY_TIMEOUT:-60}
SETTLE_SECONDS=${SETTLE_SECONDS:-2}
HAPROXY_SOCKET=${HAPROXY_SOCKET:-}
LB_BACKEND=${LB_BACKEND:-apid}
hosts=()

die_usage() { echo "rolling.sh: $*" >&2; usage >&2; exit 64; }
log() { printf '%s rolling: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

while (($#)); do
	case $1 in
	--restart-cmd) RESTART_CMD=${2:?}; shift 2 ;;
	--ready-url) READY_URL=${2:?}; shift 2 ;;
	--drain-cmd) DRAIN_CMD=${2:?}; shift 2 ;;
	--enable-cmd) ENABLE_CMD=${2:?}; shift 2 ;;
	--drain-seconds) DRAIN_SECONDS=${2:?}; shift 2 ;;
	--ready-timeout) READY_TIMEOUT=${2:?}; shift 2 ;;
	--settle-seconds) SETTLE_SECONDS=${2:?}; shift 2 ;;
	--haproxy-socket) HAPROXY_SOCKET=${2:?}; shift 2 ;;
	--backend) LB_BACKEND=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	--) shift; hosts+=("$@"); break ;;
	-*) die_usage "unknown option $1" ;;
	*) hosts+=("$1"); shift ;;
	esac
done
((${#hosts[@]})) || die_usage "no hosts"
[[ -n $RESTART_CMD ]] || die_usage "--restart-cmd (RESTART_CMD) is required"
for n in "$DRAIN_SECONDS" "$READY_TIMEOUT" "$SETTLE_SECONDS"; do
	[[ $n =~ ^[0-9]+$ ]] || die_usage "not a whole number of seconds: $n"
done

haproxy_api() {
	printf '%s\n' "$1" | socat -t 2 stdio "unix-connect:$HAPROXY_SOCKET"
}
if [[ -n $HAPROXY_SOCKET ]]; then
	command -v socat >/dev/null || die_usage "--haproxy-socket needs socat"
	[[ -n $DRAIN_CMD ]] || DRAIN_CMD="haproxy_api 'set server $LB_BACKEND/{host} state drain'"
	[[ -n $ENABLE_CMD ]] || ENABLE_CMD="haproxy_api 'set server $LB_BACKEND/{host} state ready'"
fi
export HAPROXY_SOCKET
export -f haproxy_api

# Run a command template with {host} replaced.
run_for() {
	local template=$1 host=$2
	bash -c "${template//\{host\}/$host}"
}

# Poll the ready URL once a second (each try bounded to 2 s) until it
# answers 200 or the timeout passes.
wait_ready() {
	local host=$1 url=${READY_URL//\{host\}/$1} deadline=$((SECONDS + READY_TIMEOUT)) code
	while ((SECONDS < deadline)); do
		code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)
		[[ $code == 200 ]] && return 0
		sleep 1
	done
	log "$host: $url not 200 within ${READY_TIMEOUT}s (last: ${code:-none})"
	return 1
}

started=$SECONDS
for host in "${hosts[@]}"; do
	t0=$SECONDS
	if [[ -n $DRAIN_CMD ]]; then
		log "$host: draining"
		run_for "$DRAIN_CMD" "$host"
		sleep "$DRAIN_SECONDS"
	fi
	log "$host: restarting"
	if ! run_for "$RESTART_CMD" "$host"; then
		log "$host: restart command failed; stopping here"
		exit 1
	fi
	wait_ready "$host" || { log "$host: left drained; stopping here"; exit 1; }
	[[ -z $ENABLE_CMD ]] || run_for "$ENABLE_CMD" "$host"
	log "$host: ready again after $((SECONDS - t0))s"
	sleep "$SETTLE_SECONDS"
done
log "${#hosts[@]} host(s) restarted in $((SECONDS - started))s"
