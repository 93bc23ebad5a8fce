#!/usr/bin/env bash
# run.sh: the test runner behind `make test`.
#   tests/run.sh [all|unit|integration]   (make test / make test SAN=1 set
#                                           TEST_BIN and TEST_BUILD)
#   (TESTS=cfg,migrate runs binaries whose
#                                           name contains one of the words)
# Starts one throwaway PostgreSQL and one Redis for the integration tests
# (tests/harness/stores.sh), runs every test binary with a timeout, and always
# stops the stores, kills what the tests left and removes the temp dir: after a
# pass, a failure, or Ctrl-C. Prints one closing line "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=${1:-all}
B=${TEST_BUILD:-$ROOT/build}/tests
export TEST_BIN=${TEST_BIN:-$ROOT/bin}
BIN_TIMEOUT=${TEST_BINARY_TIMEOUT:-900}
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60}
export TEST_ROOT=$ROOT
# ASan/UBSan (make SAN=1): any report fails the test binary.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

TMPROOT=$(mktemp -d /tmp/evtest.XXXXXX)
export TEST_TMPDIR=$TMPROOT/tmp
mkdir -p "$TEST_TMPDIR" "$TMPROOT/logs"
echo "harness: $TMPROOT"
chmod 0755 "$TMPROOT"

declare -A running_name=() running_t0=() # test binaries running: pid -> name, start second
cleanup() {
	local rc=$?
	# a second Ctrl-C must not cut the clean-up short (it takes seconds)
	trap - EXIT
	trap '' INT TERM
	# the running test binaries: each timeout(1) leads its own process group
	local pid
	# (each is a subshell whose child timeout(1) leads its own process group
	# and passes the signal on to all of it)
	for pid in "${!running_name[@]}"; do pkill -TERM -P "$pid" 2>/dev/null; done
	# private stores started by itest live under TEST_TMPDIR; stop them all
	for d in "$TMPROOT/stores" "$TEST_TMPDIR"/*/; do
		[ -d "$d" ] && "$ROOT/tests/harness/stores.sh" stop "$d" >/dev/null 2>&1
	done
	# anything a test spawned that still runs (its argv names our temp dir)
	pkill -KILL -f -- "$TMPROOT" 2>/dev/null
	sleep 0.2
	pkill -KILL -f -- "$TMPROOT" 2>/dev/null
	rm -rf "$TMPROOT"
	exit $rc
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

selected() {
	local name=$1
	[ -z "${TESTS:-}" ] && return 0
	local w
	IFS=, read -ra words <<<"$TESTS"
	for w in "${words[@]}"; do [[ $name == *"$w"* ]] && return 0; done
	return 1
}

# Test binaries run JOBS at a time (TEST_JOBS; most of their time is spent
# waiting on servers and timers, not on the CPU). Each one's summary is printed
# when it ends. Tests share the stores safely: every test makes its own
# database, uses its own Redis db index, or starts private servers.
JOBS=${TEST_JOBS:-4}
passed=0 failed=0 failed_bins=()

report_bin() {
	local name=$1 rc=$2 t0=$3 log=$TMPROOT/logs/$1.log
	local line p f
	line=$(grep -E '^RESULT ' "$log" | tail -n 1)
	p=$(sed -n 's/.*passed=\([0-9]*\).*/\1/p' <<<"$line")
	f=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$line")
	p=${p:-0} f=${f:-0}
	echo "== $name"
	if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
		echo "   sanitizer report in $name" && f=$((f + 1))
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # crash or timeout without a summary
	passed=$((passed + p)) failed=$((failed + f))
	local cpu
	cpu=$(cat "$TMPROOT/logs/$1.cpu" 2>/dev/null)
	grep -E '^[0-9]+%: Checks' "$log" | sed "s/\$/ ($((SECONDS - t0)) s, cpu ${cpu:-?} s)/; s/^/   /"
	if [ "$f" -ne 0 ]; then
		failed_bins+=("$name")
		grep -vE '^(RESULT|Running suite)' "$log" | tail -n 40 | sed 's/^/   | /'
	fi
}

# Waits for one running binary (whichever ends first) and reports it.
reap_one() {
	local pid rc
	wait -n -p pid "${!running_name[@]}"
	rc=$?
	report_bin "${running_name[$pid]}" "$rc" "${running_t0[$pid]}"
	unset "running_name[$pid]" "running_t0[$pid]"
}

# run_timed CPU-FILE CMD...: runs CMD and writes the CPU seconds (user + system)
# that it and the processes it reaped used, so that a binary's cost can be read
# apart from how loaded the machine was (wall seconds depend on that).
run_timed() {
	local out=$1 rc
	shift
	"$@"
	rc=$?
	times >"$out" # not in a pipe: a forked `times` would see no children
	awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] }
		printf "%.0f\n", n }' "$out" >"$out.s" && mv "$out.s" "$out"
	return $rc
}

# run_bin BINARY [SHARDS]: SHARDS > 1 spreads the binary's tests over that many
# processes (testmain.h: TEST_SHARD), each reported on its own.
run_bin() {
	local bin=$1 shards=${2:-1} name i
	name=$(basename "$bin")
	selected "$name" || return 0
	for ((i = 0; i < shards; i++)); do
		local label=$name
		[ "$shards" -gt 1 ] && label="$name#$i"
		while [ ${#running_name[@]} -ge "$JOBS" ]; do reap_one; done
		# in the background, so that Ctrl-C is acted on at once (bash runs a
		# trap only after a foreground child ends; wait returns on the signal)
		(TEST_SHARD=$i/$shards run_timed "$TMPROOT/logs/$label.cpu" \
			timeout --kill-after=10 "$BIN_TIMEOUT" "$bin") >"$TMPROOT/logs/$label.log" 2>&1 &
		running_name[$!]=$label
		running_t0[$!]=$SECONDS
	done
}

# The shared stores' CPU seconds, which no binary's figure includes (they run
# detached): the postmaster with its ended backends, and Redis. With the
# binaries' figures, this tells a CPU-bound pass from one that waits.
stores_cpu() {
	local pg redis
	proc_cpu() { # PID: utime + stime + cutime + cstime, in seconds
		[ -n "$1" ] && [ -r "/proc/$1/stat" ] || { echo "?"; return; }
		awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.0f\n", ($12 + $13 + $14 + $15) / hz }' "/proc/$1/stat"
	}
	pg=$(proc_cpu "$(head -n 1 "$TMPROOT/stores/pg/data/postmaster.pid" 2>/dev/null)")
	redis=$(proc_cpu "$(cat "$TMPROOT/stores/redis/redis.pid" 2>/dev/null)")
	echo "stores: cpu PostgreSQL $pg s (with its ended backends), Redis $redis s"
}

reap_all() {
	while [ ${#running_name[@]} -gt 0 ]; do reap_one; done
}

if [ "$MODE" = all ] || [ "$MODE" = unit ]; then
	# Unit tests run unforked (CK_FORK=no): a fork per test, and under SAN a
	# leak check at each forked child's exit, cost 5x their CPU time; a crash
	# still fails the binary (no RESULT line), and a hang meets BIN_TIMEOUT.
	for bin in "$B"/unit/test_*; do
		[ -x "$bin" ] && [[ $bin != *.d && $bin != *.o ]] &&
			CK_FORK=no BIN_TIMEOUT=${TEST_UNIT_TIMEOUT:-300} run_bin "$bin"
	done
	reap_all
fi

if [ "$MODE" = all ] || [ "$MODE" = integration ]; then
	mkdir -p "$TMPROOT/stores"
	# one initdb per run (a nested run, test_harness's, copies its caller's)
	if [ ! -f "${STORES_PG_TEMPLATE:-}/PG_VERSION" ]; then
		STORES_PG_TEMPLATE=$("$ROOT/tests/harness/stores.sh" pg-template "$TMPROOT/pg-template") || exit 1
		export STORES_PG_TEMPLATE
	fi
	TEST_PG_URL=$("$ROOT/tests/harness/stores.sh" pg-start "$TMPROOT/stores") || exit 1
	TEST_REDIS_URL=$("$ROOT/tests/harness/stores.sh" redis-start "$TMPROOT/stores") || exit 1
	export TEST_PG_URL TEST_REDIS_URL
	echo "stores: $TEST_PG_URL $TEST_REDIS_URL"
	# Leak checks where leaks matter: every daemon and simulator a test
	# spawns (itest_spawn gives them TEST_DAEMON_ASAN_OPTIONS), and the two
	# binaries that run common/ code in-process. The other integration
	# binaries are test drivers: a leak check at the exit of each forked
	# test costs more CPU than the test, and would check only the driver.
	export TEST_DAEMON_ASAN_OPTIONS=$ASAN_OPTIONS
	DRIVER_ASAN_OPTIONS=$ASAN_OPTIONS
	[[ $ASAN_OPTIONS == *detect_leaks=1* ]] && DRIVER_ASAN_OPTIONS=${ASAN_OPTIONS//detect_leaks=1/detect_leaks=0}
	IN_PROCESS="test_pgx test_rds"
	# TEST_SIM_BIN (make test SAN=1: the plain simulator) is for the tests
	# of the roles; the simulator's own tests run the one under test.
	run_integration() { # BINARY [SHARDS]
		local opts=$DRIVER_ASAN_OPTIONS sim=${TEST_SIM_BIN:-}
		[[ " $IN_PROCESS " == *" $(basename "$1") "* ]] && opts=$ASAN_OPTIONS
		[[ $(basename "$1") == test_sim_* ]] && sim=
		ASAN_OPTIONS=$opts TEST_SIM_BIN=$sim run_bin "$@"
	}
	# The longest first, so that the short ones fill in around them; these
	# are split into shards (name:count): their tests share no fixed resource.
	slow="test_ingest_chargers:6 test_ingest_congestion:4 test_realtimed:3 test_sim_format:3
	      test_deploy_metrics:1 test_sim_model:2 test_fault_upstream_ingestd:3
	      test_fault_upstream_realtimed:3 test_realtimed_lease:2"
	# TEST_DEFER=FILE:name,name (CI: Chromium installs while the tests run)
	# starts those binaries last, once FILE exists (or after 20 min: then
	# they report what they miss); a slow one keeps its shards.
	defer=${TEST_DEFER:-}
	defer_file=${defer%%:*} deferred=" ${defer#*:} "
	deferred=${deferred//,/ }
	is_deferred() { [ -n "$defer" ] && [[ $deferred == *" $1 "* ]]; }
	shards_of() {
		local entry
		for entry in $slow; do [ "${entry%%:*}" = "$1" ] && { echo "${entry##*:}"; return; }; done
		echo 1
	}
	for entry in $slow; do
		is_deferred "${entry%%:*}" && continue
		[ -x "$B/integration/${entry%%:*}" ] && run_integration "$B/integration/${entry%%:*}" "${entry##*:}"
	done
	for bin in "$B"/integration/test_*; do
		[[ " $slow " == *" $(basename "$bin"):"* ]] && continue
		is_deferred "$(basename "$bin")" && continue
		[ -x "$bin" ] && [[ $bin != *.d && $bin != *.o ]] && run_integration "$bin"
	done
	if [ -n "$defer" ]; then
		waited=0
		while [ ! -e "$defer_file" ] && [ $waited -lt 1200 ]; do sleep 1; waited=$((waited + 1)); done
		for name in $deferred; do
			[ -x "$B/integration/$name" ] && run_integration "$B/integration/$name" "$(shards_of "$name")"
		done
	fi
	reap_all
	stores_cpu
	# The daemons the tests spawned logged here (itest_spawn): a sanitizer
	# report in any of them fails the run, even when its test passed.
	for log in "$TEST_TMPDIR"/*.log; do
		[ -f "$log" ] || continue
		if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
			echo "== sanitizer report in a spawned process: ${log##*/}"
			grep -E -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" |
				head -n 30 | sed 's/^/   | /'
			failed=$((failed + 1)) failed_bins+=("${log##*/}")
		fi
	done
fi

# No secret in any log line (issue 9). The tests configure only these fake
# secrets: service keys (UPSTREAM_KEYS, the simulator's --keys), Redis and
# PostgreSQL passwords (test_cli, test_security, test_rds, test_pgx,
# test_migrate, test_ingest_chargers, test_apid_load, test_fault_*); a new
# test with a secret uses one of them or adds its own here. Every log of the
# run is grepped for them: the test binaries' output, the daemons they
# spawned (itest_spawn) and the private stores' server logs. A hit fails the
# run, naming the file and the line.
FAKE_SECRETS=(fake-service-key-0001 fake-service-key-0002 fake-service-key-0009
	fake-svc-key-4f1c9e2a fake-db-password fake-redis-password fake-redis-pass-8b3d
	fake-redis-wrong-2e7a fake-pg-pass-5c6f SECRETPW WRONGPW 's3cret pw' 's3cret%20pw')
secret_hits=$(find "$TMPROOT" -type f -name '*.log' -print0 2>/dev/null |
	xargs -0 -r grep -F -n -H -f <(printf '%s\n' "${FAKE_SECRETS[@]}") 2>/dev/null)
if [ -n "$secret_hits" ]; then
	echo "== a secret in a log line:"
	sed "s|^$TMPROOT/||" <<<"$secret_hits" | cut -c1-300 | head -n 20 | sed 's/^/   | /'
	while IFS= read -r f; do
		failed=$((failed + 1)) failed_bins+=("secret in ${f#"$TMPROOT"/}")
	done < <(cut -d: -f1 <<<"$secret_hits" | sort -u)
fi

echo
[ ${#failed_bins[@]} -eq 0 ] || echo "failing: ${failed_bins[*]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
