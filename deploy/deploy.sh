#!/usr/bin/env bash
# deploy.sh VERSION: deploy one git version of evcharger on this host.
#   1. build VERSION (a tag, branch or commit of REPO) into
#      $DEPLOY_ROOT/releases/<version> (kept: a re-deploy does not rebuild);
#   2. run `ingestd migrate` from the new build (migrations are expand-only
#      while the old version still runs: see docs/operations.md);
#   3. point $DEPLOY_ROOT/current at the new build (atomic rename), the
#      units' ExecStart= run $DEPLOY_ROOT/current/bin/<role>;
#   4. restart the role the zero-downtime way (apid: socket-activated
#      restart, the socket stays open; realtimed: restart; ingestd: nothing,
#      the next timer run uses the new build);
#   5. check health; on failure point `current` back at the previous build,
#      restart again and exit 1;
#   6. keep the last KEEP builds, delete older ones (never current/previous).
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: deploy/deploy.sh [options] VERSION

Build VERSION (git tag, branch or commit) and make it this host's ROLE.

Options (each also an environment variable):
  --role ROLE          ROLE             apid, realtimed or ingestd (default apid)
  --root DIR           DEPLOY_ROOT      releases/ and current live here (default /opt/evcharger)
  --repo URL|DIR       REPO             git repository to build from (default: this
                                        script's checkout)
  --keep K             KEEP             builds kept (default 5, at least 2)
  --env-file FILE      ENV_FILE         settings for `ingestd migrate`
                                        (default /etc/evcharger/ingestd.env if readable)
  --build-cmd CMD      BUILD_CMD        build in the current directory (default
                                        'make -j2 all'); {version} is replaced
  --migrate-cmd CMD    MIGRATE_CMD      default '{release}/bin/ingestd migrate'
                                        (INGESTD_MIGRATIONS_DIR={release}/migrations);
                                        'true' skips it (hosts without DB rights)
  --restart-cmd CMD    RESTART_CMD      default per role: apid 'systemctl restart apid.service',
                                        realtimed 'systemctl restart realtimed.service',
                                        ingestd 'true'
  --health-cmd CMD     HEALTH_CMD       succeeds when the role is healthy; default per role:
                                        apid: GET HEALTH_URL answers 200; realtimed:
                                        'systemctl is-active --quiet realtimed.service';
                                        ingestd: '{release}/bin/ingestd migrate --status'
  --health-url URL     HEALTH_URL       apid readiness (default http://127.0.0.1:8080/readyz)
  --health-timeout N   HEALTH_TIMEOUT   seconds for the health check to pass (default 60)
  --health-stable N    HEALTH_STABLE    it must then keep passing this long (default 5):
                                        catches a build that starts, then crashes
  -h, --help           this text
{release} in any command is the new build's directory.

Exit codes: 0 deployed and healthy; 1 failed, rolled back to the previous build
(or nothing to roll back to); 2 failed and the rollback failed too; 3 build or
migration failed (nothing switched); 64 bad usage; 75 another deploy holds the lock.
USAGE
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROLE=${ROLE:-apid}
DEPLOY_ROOT=${DEPLOY_ROOT:-/opt/evcharger}
REPO=${REPO:-$(dirname "$script_dir")}
KEEP=${KEEP:-5}
ENV_FILE=${ENV_FILE:-}
BUILD_CMD=${BUILD_CMD:-make -j2 all}
MIGRATE_CMD=${MIGRATE_CMD:-}
RESTART_CMD=${RESTART_CMD:-}
HEALTH_CMD=${HEALTH_CMD:-}
HEALTH_URL=${HEALTH_URL:-http://127.0.0.1:8080/readyz}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-60}
HEALTH_STABLE=${HEALTH_STABLE:-5}
version=

die_usage() { echo "deploy.sh: $*" >&2; usage >&2; exit 64; }
log() { printf '%s deploy[%s]: %s\n' "$(date -u +%H:%M:%S)" "$ROLE" "$*" >&2; }

while (($#)); do
	case $1 in
	--role) ROLE=${2:?}; shift 2 ;;
	--root) DEPLOY_ROOT=${2:?}; shift 2 ;;
	--repo) REPO=${2:?}; shift 2 ;;
	--keep) KEEP=${2:?}; shift 2 ;;
	--env-file) ENV_FILE=${2:?}; shift 2 ;;
	--build-cmd) BUILD_CMD=${2:?}; shift 2 ;;
	--migrate-cmd) MIGRATE_CMD=${2:?}; shift 2 ;;
	--restart-cmd) RESTART_CMD=${2:?}; shift 2 ;;
	--health-cmd) HEALTH_CMD=${2:?}; shift 2 ;;
	--health-url) HEALTH_URL=${2:?}; shift 2 ;;
	--health-timeout) HEALTH_TIMEOUT=${2:?}; shift 2 ;;
	--health-stable) HEALTH_STABLE=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	-*) die_usage "unknown option $1" ;;
	*) [[ -z $version ]] || die_usage "one VERSION only"; version=$1; shift ;;
	esac
done
[[ -n $version ]] || die_usage "VERSION is required"
# A release directory name: no slashes or leading dots from a branch name.
[[ $version =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die_usage "VERSION must match [A-Za-z0-9][A-Za-z0-9._-]*"
case $ROLE in apid | realtimed | ingestd) ;; *) die_usage "unknown role $ROLE" ;; esac
for n in "$KEEP" "$HEALTH_TIMEOUT" "$HEALTH_STABLE"; do
	[[ $n =~ ^[0-9]+$ ]] || die_usage "not a whole number: $n"
done
((KEEP >= 2)) || die_usage "--keep must be at least 2 (current and previous)"

releases=$DEPLOY_ROOT/releases
release=$releases/$version
mkdir -p "$releases"
exec 9>"$DEPLOY_ROOT/.deploy.lock"
flock -n 9 || { log "another deploy is running"; exit 75; }

if [[ -z $ENV_FILE && -r /etc/evcharger/ingestd.env ]]; then ENV_FILE=/etc/evcharger/ingestd.env; fi
if [[ -z $MIGRATE_CMD ]]; then
	MIGRATE_CMD='INGESTD_MIGRATIONS_DIR={release}/migrations {release}/bin/ingestd migrate'
	if [[ -n $ENV_FILE ]]; then MIGRATE_CMD="set -a; . '$ENV_FILE'; set +a; $MIGRATE_CMD"; fi
fi
if [[ -z $RESTART_CMD ]]; then
	case $ROLE in
	apid) RESTART_CMD='systemctl restart apid.service' ;;
	realtimed) RESTART_CMD='systemctl restart realtimed.service' ;;
	ingestd) RESTART_CMD=true ;;
	esac
fi
if [[ -z $HEALTH_CMD ]]; then
	case $ROLE in
	apid) HEALTH_CMD="test \"\$(curl -s -o /dev/null -m 2 -w '%{http_code}' '$HEALTH_URL')\" = 200" ;;
	realtimed) HEALTH_CMD='systemctl is-active --quiet realtimed.service' ;;
	ingestd) HEALTH_CMD="${MIGRATE_CMD} --status >/dev/null" ;;
	esac
fi

# Run a command template with {release} and {version} replaced. Without the
# lock's fd: a daemon the restart command starts must not hold the lock.
run_tpl() {
	local cmd=${1//\{release\}/$2}
	cmd=${cmd//\{version\}/$version}
	bash -c "$cmd" 9>&-
}

# Healthy within HEALTH_TIMEOUT, then still healthy for HEALTH_STABLE.
check_health() {
	local rel=$1 deadline=$((SECONDS + HEALTH_TIMEOUT)) stable_until
	until run_tpl "$HEALTH_CMD" "$rel" 2>/dev/null; do
		((SECONDS < deadline)) || { log "health: not healthy within ${HEALTH_TIMEOUT}s"; return 1; }
		sleep 1
	done
	stable_until=$((SECONDS + HEALTH_STABLE))
	while ((SECONDS < stable_until)); do
		sleep 1
		run_tpl "$HEALTH_CMD" "$rel" 2>/dev/null || { log "health: passed, then failed"; return 1; }
	done
}

switch_to() { # atomic: a rename replaces the symlink in one step
	ln -sfn "releases/$(basename "$1")" "$DEPLOY_ROOT/current.new"
	mv -T "$DEPLOY_ROOT/current.new" "$DEPLOY_ROOT/current"
}

# 1. Build (once per version; a half-built tree never gets the final name).
if [[ -f $release/.built ]]; then
	log "$version already built in $release"
else
	tmp=$releases/.build-$version.$$
	rm -rf "$tmp"
	mkdir -p "$tmp"
	log "building $version from $REPO"
	if ! {
		git -C "$REPO" fetch --quiet --tags origin 2>/dev/null || true
		git -C "$REPO" archive --format=tar "$version" | tar -x -C "$tmp" &&
			git -C "$REPO" rev-parse --verify --quiet "$version^{commit}" >"$tmp/.commit" &&
			(cd "$tmp" && run_tpl "$BUILD_CMD" "$tmp")
	}; then
		rm -rf "$tmp"
		log "build of $version failed; nothing changed"
		exit 3
	fi
	date -u +%FT%TZ >"$tmp/.built"
	rm -rf "$release"
	mv -T "$tmp" "$release"
fi

previous=
if [[ -L $DEPLOY_ROOT/current ]]; then
	previous=$(readlink -f "$DEPLOY_ROOT/current")
fi
if [[ $previous == "$(readlink -f "$release")" ]]; then
	log "$version is already current; checking health only"
	check_health "$release" || exit 1
	exit 0
fi

# 2. Migrate before the switch: the old build keeps running on the expanded schema.
log "migrating with $version"
if ! run_tpl "$MIGRATE_CMD" "$release"; then
	log "migration failed; still on ${previous:-nothing}"
	exit 3
fi

# 3-5. Switch, restart, check; roll back on failure.
t0=$SECONDS
switch_to "$release"
log "current -> $version; restarting"
if run_tpl "$RESTART_CMD" "$release" && check_health "$release"; then
	log "$version healthy after $((SECONDS - t0))s"
else
	if [[ -z $previous ]]; then
		log "$version unhealthy and no previous build to roll back to"
		exit 1
	fi
	log "ROLLBACK: $version unhealthy; back to $(basename "$previous")"
	switch_to "$previous"
	if run_tpl "$RESTART_CMD" "$previous" && check_health "$previous"; then
		log "rolled back to $(basename "$previous") in $((SECONDS - t0))s"
		exit 1
	fi
	log "ROLLBACK FAILED: $(basename "$previous") unhealthy too"
	exit 2
fi

# 6. Keep the last KEEP builds (newest first by build time), never current
# or previous.
mapfile -t all < <(cd "$releases" && for d in */; do
	d=${d%/}
	[[ -f $d/.built ]] && printf '%s %s\n' "$(stat -c %Y "$d/.built")" "$d"
done | sort -rn | cut -d' ' -f2-)
kept=0
for d in "${all[@]}"; do
	path=$(readlink -f "$releases/$d")
	if [[ $path == "$(readlink -f "$release")" || $path == "$previous" ]] || ((kept < KEEP)); then
		kept=$((kept + 1))
		continue
	fi
	log "removing old build $d"
	rm -rf "${releases:?}/$d"
done
