#!/usr/bin/env bash
# tests/deploy/scripts.sh: drive rolling.sh, bluegreen.sh and deploy.sh
# without systemd, HAProxy or root. Instances are files behind one loopback
# HTTP server (python3 -m http.server): GET /<host>/readyz is 200 while
# <host> "runs" (the file exists), 404 otherwise; the balancer is a weight
# file per host. deploy.sh builds from a throwaway git repo whose "apid"
# is a shell script, a broken version exiting 1 at start.
# Every wait is bounded; the whole run takes about a minute.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d)
server_pid=
cleanup() {
	[[ -z $server_pid ]] || kill "$server_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
fails=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
eq() { # label got want
	if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: got '$2', wanted '$3'"; fi
}
expect_rc() { # want label cmd...
	local want=$1 label=$2 rc=0
	shift 2
	timeout 120 "$@" >"$work/out" 2>&1 || rc=$?
	if [[ $rc == "$want" ]]; then pass "$label (rc $rc)"; else
		fail "$label: rc $rc, wanted $want"
		sed 's/^/     /' "$work/out"
	fi
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/www"
(cd "$work/www" && exec python3 -m http.server --bind 127.0.0.1 "$port" >/dev/null 2>&1) &
server_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

www=$work/www
export READY_URL="http://127.0.0.1:$port/{host}/readyz"
start="mkdir -p $www/{host} && touch $www/{host}/readyz && echo {host} >>$work/started"
stop="rm -f $www/{host}/readyz && echo {host} >>$work/stopped"
weight="echo {weight} >$www/{host}.weight"

# --- rolling.sh
for h in api1 api2; do mkdir -p "$www/$h" && touch "$www/$h/readyz"; done
# Restart: down now, ready again a second later.
restart="rm -f $www/{host}/readyz; (sleep 1; touch $www/{host}/readyz) & echo {host} >>$work/restarted"
expect_rc 0 "rolling: two hosts" "$root/deploy/rolling.sh" --restart-cmd "$restart" \
	--drain-cmd "echo drain {host} >>$work/lb" --enable-cmd "echo ready {host} >>$work/lb" \
	--drain-seconds 0 --settle-seconds 0 --ready-timeout 10 api1 api2
eq "rolling: order api1, api2" "$(tr '\n' ' ' <"$work/restarted")" "api1 api2 "
eq "rolling: drained and re-enabled each in turn" "$(tr '\n' ' ' <"$work/lb")" \
	"drain api1 ready api1 drain api2 ready api2 "
: >"$work/restarted"
expect_rc 1 "rolling: a host that never comes back stops the roll" "$root/deploy/rolling.sh" \
	--restart-cmd "rm -f $www/{host}/readyz; echo {host} >>$work/restarted" \
	--drain-seconds 0 --settle-seconds 0 --ready-timeout 2 api1 api2
eq "rolling: api2 untouched" "$(tr '\n' ' ' <"$work/restarted")" "api1 "
expect_rc 64 "rolling: no hosts is a usage error" "$root/deploy/rolling.sh" --restart-cmd true
expect_rc 0 "rolling: --help" "$root/deploy/rolling.sh" --help

# --- bluegreen.sh
reset_bg() {
	rm -rf "$www"/api* "$www"/blue* "$www"/green* "$work/started" "$work/stopped"
	for h in blue1 blue2; do mkdir -p "$www/$h" && touch "$www/$h/readyz" && echo 100 >"$www/$h.weight"; done
	for h in green1 green2; do echo 0 >"$www/$h.weight"; done
}
weights() { local h; for h in blue1 blue2 green1 green2; do printf '%s=%s ' "$h" "$(cat "$www/$h.weight")"; done; }
bg=("$root/deploy/bluegreen.sh" --blue "blue1,blue2" --green "green1,green2" --start-cmd "$start"
	--stop-cmd "$stop" --weight-cmd "$weight" --drain-seconds 1 --ready-timeout 5)
reset_bg
expect_rc 0 "bluegreen: switch" "${bg[@]}"
eq "bluegreen: weights" "$(weights)" "blue1=0 blue2=0 green1=100 green2=100 "
eq "bluegreen: blue stopped, green up" "$(cd "$www" && echo */readyz)" "green1/readyz green2/readyz"
reset_bg
expect_rc 0 "bluegreen: --canary-weight 10" "${bg[@]}" --canary-weight 10 --canary-seconds 2
eq "bluegreen: canary then full switch" "$(weights)" "blue1=0 blue2=0 green1=100 green2=100 "
reset_bg
expect_rc 1 "bluegreen: failing smoke check rolls back" "${bg[@]}" --check-cmd false
eq "bluegreen: rolled back to blue" "$(weights)" "blue1=100 blue2=100 green1=0 green2=0 "
eq "bluegreen: blue serving, green stopped" "$(cd "$www" && echo */readyz)" "blue1/readyz blue2/readyz"
reset_bg
# green2 dies during the canary: rollback before blue is touched.
expect_rc 1 "bluegreen: green failing during the canary rolls back" "${bg[@]}" --canary-weight 5 \
	--canary-seconds 6 --start-cmd "$start; if [ {host} = green2 ]; then (sleep 2; rm -f $www/{host}/readyz) & fi"
eq "bluegreen: canary rollback kept blue" "$(weights)" "blue1=100 blue2=100 green1=0 green2=0 "
eq "bluegreen: blue still serving" "$(cd "$www" && echo */readyz)" "blue1/readyz blue2/readyz"
expect_rc 0 "bluegreen: --help" "$root/deploy/bluegreen.sh" --help

# --- deploy.sh
repo=$work/repo
git init -q "$repo"
mkrev() { # tag exit-code
	cat >"$repo/Makefile" <<MK
# $1
all:
	mkdir -p bin && printf '#!/bin/sh\nexit $2\n' >bin/apid && chmod +x bin/apid
MK
	git -C "$repo" add Makefile
	git -C "$repo" -c user.name=t -c user.email=t@t commit -qm "$1"
	git -C "$repo" tag "$1"
}
mkrev v1 0
mkrev v2 0
mkrev v3-broken 1
for i in 4 5 6; do mkrev "v$i" 0; done
dr=("$root/deploy/deploy.sh" --root "$work/opt" --repo "$repo" --keep 3 --build-cmd "make -s all"
	--migrate-cmd "echo {version} >>$work/migrated" --restart-cmd "echo restart >>$work/restarts"
	--health-cmd "{release}/bin/apid" --health-timeout 3 --health-stable 1)
cur() { basename "$(readlink -f "$work/opt/current")"; }
expect_rc 0 "deploy: v1 on an empty host" "${dr[@]}" v1
expect_rc 0 "deploy: v2" "${dr[@]}" v2
eq "deploy: current is v2" "$(cur)" v2
expect_rc 1 "deploy: broken v3 rolls back" "${dr[@]}" v3-broken
eq "deploy: current back on v2" "$(cur)" v2
expect_rc 3 "deploy: unknown version fails the build, nothing switched" "${dr[@]}" v9
eq "deploy: still v2" "$(cur)" v2
expect_rc 3 "deploy: failing migration, nothing switched" "${dr[@]}" --migrate-cmd false v4
eq "deploy: still v2 after a failed migration" "$(cur)" v2
for v in v4 v5 v6; do sleep 1; expect_rc 0 "deploy: $v" "${dr[@]}" "$v"; done
eq "deploy: keeps the last 3 builds" "$(cd "$work/opt/releases" && echo *)" "v4 v5 v6"
expect_rc 0 "deploy: re-deploying current only checks health" "${dr[@]}" v6
expect_rc 64 "deploy: bad version name" "${dr[@]}" ../x
expect_rc 0 "deploy: --help" "$root/deploy/deploy.sh" --help

if command -v shellcheck >/dev/null; then
	expect_rc 0 "shellcheck" shellcheck "$root"/deploy/*.sh "$root"/tests/deploy/*.sh
fi
echo "$fails failure(s)"
((fails == 0))
