#!/usr/bin/env bash
# bluegreen.sh: switch apid traffic from the blue instances to green ones.
#   1. start green (the new version) while blue serves;
#   2. check green: /readyz 200 on each, plus an optional smoke command;
#   3. optionally a canary: green at a small weight beside blue, watched for
#      a while (readiness and the smoke command keep passing);
#   4. switch the balancer: green full weight, blue weight 0;
#   5. drain blue (wait for its in-flight requests), check green once more,
#      then stop blue.
# Any failed check before blue is stopped rolls back: blue back to full
# weight, green to 0, green stopped; exit 1. Blue is never stopped before
# green has carried all traffic through the drain wait.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: deploy/bluegreen.sh [options] --blue HOST[,HOST...] --green HOST[,HOST...]

Options (each also an environment variable):
  --blue LIST             BLUE_HOSTS      instances serving now (comma-separated)
  --green LIST            GREEN_HOSTS     instances to switch to
  --start-cmd CMD         START_CMD       start one instance, {host} replaced (required)
  --stop-cmd CMD          STOP_CMD        stop one instance (SIGTERM: apid drains) (required)
  --weight-cmd CMD        WEIGHT_CMD      give {host} the balancer weight {weight} (0-256);
                                          default with HAPROXY_SOCKET: runtime API
                                          "set weight apid/{host} {weight}"
  --ready-url URL         READY_URL       readiness URL template (default http://{host}:8080/readyz)
  --check-cmd CMD         CHECK_CMD       extra smoke check of {host}, e.g. a query
                                          through its port (default none)
  --canary-weight N       CANARY_WEIGHT   first give green weight N (1-99) against blue's
                                          100 for CANARY_SECONDS, then switch fully (default 0:
                                          no canary)
  --canary-seconds N      CANARY_SECONDS  length of the canary watch (default 60)
  --drain-seconds N       DRAIN_SECONDS   wait after the switch before stopping blue (default 10)
  --ready-timeout N       READY_TIMEOUT   seconds for green to become ready (default 60)
  --keep-blue             KEEP_BLUE=1     switch but do not stop blue (instant switch back)
  --haproxy-socket PATH   HAPROXY_SOCKET  HAProxy runtime API socket (needs socat)
  --backend NAME          LB_BACKEND      HAProxy backend (default apid)
  -h, --help              this text

Exit codes: 0 switched (blue stopped unless --keep-blue); 1 a check failed and
traffic was rolled back to blue; 2 the rollback itself failed (page someone);
64 bad usage.
USAGE
}

BLUE_HOSTS=${BLUE_HOSTS:-}
GREEN_HOSTS=${GREEN_HOSTS:-}
START_CMD=${START_CMD:-}
STOP_CMD=${STOP_CMD:-}
WEIGHT_CMD=${WEIGHT_CMD:-}
default_ready_url='http://{host}:8080/readyz'
READY_URL=${READY_URL:-$default_ready_url}
CHECK_CMD=${CHECK_CMD:-}
CANARY_WEIGHT=${CANARY_WEIGHT:-0}
CANARY_SECONDS=${CANARY_SECONDS:-60}
DRAIN_SECONDS=${DRAIN_SECONDS:-10}
READY_TIMEOUT=${READY_TIMEOUT:-60}
KEEP_BLUE=${KEEP_BLUE:-0}
HAPROXY_SOCKET=${HAPROXY_SOCKET:-}
LB_BACKEND=${LB_BACKEND:-apid}

die_usage() { echo "bluegreen.sh: $*" >&2; usage >&2; exit 64; }
log() { printf '%s bluegreen: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

while (($#)); do
	case $1 in
	--blue) BLUE_HOSTS=${2:?}; shift 2 ;;
	--green) GREEN_HOSTS=${2:?}; shift 2 ;;
	--start-cmd) START_CMD=${2:?}; shift 2 ;;
	--stop-cmd) STOP_CMD=${2:?}; shift 2 ;;
	--weight-cmd) WEIGHT_CMD=${2:?}; shift 2 ;;
	--ready-url) READY_URL=${2:?}; shift 2 ;;
	--check-cmd) CHECK_CMD=${2:?}; shift 2 ;;
	--canary-weight) CANARY_WEIGHT=${2:?}; shift 2 ;;
	--canary-seconds) CANARY_SECONDS=${2:?}; shift 2 ;;
	--drain-seconds) DRAIN_SECONDS=${2:?}; shift 2 ;;
	--ready-timeout) READY_TIMEOUT=${2:?}; shift 2 ;;
	--keep-blue) KEEP_BLUE=1; shift ;;
	--haproxy-socket) HAPROXY_SOCKET=${2:?}; shift 2 ;;
	--backend) LB_BACKEND=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) die_usage "unknown argument $1" ;;
	esac
done

haproxy_api() {
	printf '%s\n' "$1" | socat -t 2 stdio "unix-connect:$HAPROXY_SOCKET"
}
if [[ -n $HAPROXY_SOCKET && -z $WEIGHT_CMD ]]; then
	command -v socat >/dev/null || die_usage "--haproxy-socket needs socat"
	WEIGHT_CMD="haproxy_api 'set weight $LB_BACKEND/{host} {weight}'"
fi
export HAPROXY_SOCKET
export -f haproxy_api

[[ -n $BLUE_HOSTS && -n $GREEN_HOSTS ]] || die_usage "--blue and --green are required"
[[ -n $START_CMD && -n $STOP_CMD ]] || die_usage "--start-cmd and --stop-cmd are required"
[[ -n $WEIGHT_CMD ]] || die_usage "--weight-cmd (or --haproxy-socket) is required"
for n in "$CANARY_WEIGHT" "$CANARY_SECONDS" "$DRAIN_SECONDS" "$READY_TIMEOUT"; do
	[[ $n =~ ^[0-9]+$ ]] || die_usage "not a whole number: $n"
done
((CANARY_WEIGHT < 100)) || die_usage "--canary-weight must be below 100"
IFS=, read -r -a blue <<<"$BLUE_HOSTS"
IFS=, read -r -a green <<<"$GREEN_HOSTS"

# Run a command template with {host} and {weight} replaced.
run_for() {
	local cmd=${1//\{host\}/$2}
	cmd=${cmd//\{weight\}/${3:-}}
	bash -c "$cmd"
}
set_weight() { # weight host...
	local w=$1 h
	shift
	for h in "$@"; do run_for "$WEIGHT_CMD" "$h" "$w" || return 1; done
}
is_ready() {
	local code
	code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "${READY_URL//\{host\}/$1}" || true)
	[[ $code == 200 ]]
}
check_green() {
	local h
	for h in "${green[@]}"; do
		is_ready "$h" || { log "check: $h not ready"; return 1; }
		if [[ -n $CHECK_CMD ]] && ! run_for "$CHECK_CMD" "$h"; then
			log "check: smoke check of $h failed"
			return 1
		fi
	done
}
wait_green_ready() {
	local h deadline=$((SECONDS + READY_TIMEOUT))
	for h in "${green[@]}"; do
		until is_ready "$h"; do
			((SECONDS < deadline)) || { log "$h not ready within ${READY_TIMEOUT}s"; return 1; }
			sleep 1
		done
	done
}
rollback() {
	log "ROLLBACK: $1; traffic back to blue"
	local ok=1 h
	set_weight 100 "${blue[@]}" || ok=0
	set_weight 0 "${green[@]}" || ok=0
	for h in "${green[@]}"; do run_for "$STOP_CMD" "$h" || ok=0; done
	if ((ok)); then exit 1; fi
	log "ROLLBACK INCOMPLETE: check the balancer by hand"
	exit 2
}

started=$SECONDS
log "starting green: ${green[*]}"
for h in "${green[@]}"; do run_for "$START_CMD" "$h" || rollback "start of $h failed"; done
wait_green_ready || rollback "green not ready"
check_green || rollback "green failed its check"

if ((CANARY_WEIGHT > 0)); then
	log "canary: green at weight $CANARY_WEIGHT against blue at 100 for ${CANARY_SECONDS}s"
	set_weight 100 "${blue[@]}" || rollback "balancer refused a weight"
	set_weight "$CANARY_WEIGHT" "${green[@]}" || rollback "balancer refused a weight"
	deadline=$((SECONDS + CANARY_SECONDS))
	while ((SECONDS < deadline)); do
		check_green || rollback "green failed during the canary"
		sleep 2
	done
fi

log "switch: green 100, blue 0"
set_weight 100 "${green[@]}" || rollback "balancer refused a weight"
set_weight 0 "${blue[@]}" || rollback "balancer refused a weight"
switched=$SECONDS
sleep "$DRAIN_SECONDS"
check_green || rollback "green failed after the switch"
if ((KEEP_BLUE)); then
	log "switched in $((switched - started))s; blue kept running (--keep-blue)"
	exit 0
fi
log "stopping blue: ${blue[*]}"
for h in "${blue[@]}"; do run_for "$STOP_CMD" "$h" || log "stop of $h failed (traffic already on green)"; done
log "switched in $((switched - started))s, done in $((SECONDS - started))s"
