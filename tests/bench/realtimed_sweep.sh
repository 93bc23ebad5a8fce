#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions run through traps and wait_until
# realtimed_sweep.sh: realtimed's figures against references measured in the
# same run, on a private Redis (tests/harness/stores.sh) and the simulator:
#   1. redis-benchmark -P 64 -t hset (the reference write rate), before and
#      after the sweep;
#   2. a full bootstrap sweep of N charger statuses (getChargerInfo, every
#      page, stream-parsed and applied): the Redis write rate (statuses per
#      second of Redis time spent in realtimed's write blocks: EXEC, WATCH
#      and MULTI, from INFO commandstats), the same per
#      second of Redis CPU (INFO cpu: parsing and networking included; its
#      ratio is to the reference per second of Redis CPU, measured the same
#      way) and the end to end rate (fetch + parse + write, wall clock), each
#      as a ratio to the reference;
#   3. the same statuses re-applied from realtimed's memory into a Redis
#      restarted empty: the write path alone, wall clock from the first
#      block sent to the last reply (realtimed logs it), the issue's write
#      rate and the headline ratio; beside it, the CPU seconds of Redis and
#      of realtimed in that time (which side bounds it);
#   4. how soon a status set in the simulator is visible in Redis, against
#      the issue's limit of T + 2 s;
#   5. Redis memory per charger of the congestion counters at M chargers,
#      measured with INFO memory around one sample.
# Prints figures; fails only when something does not run.
#   BENCH_QUICK=1                 small sizes (CI keeps the script from rotting)
#   BENCH_SWEEP_CHARGERS=N        default 500000 (quick: 20000)
#   BENCH_MEM_CHARGERS=M          default 230000 (quick: 20000)
#   BENCH_POLL_INTERVAL=T         default 5 s (quick: 2 s)
#   BENCH_RT_SETTINGS="K=V ..."   more settings for realtimed (e.g. REALTIMED_PIPELINE=16)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${TEST_BIN:-$ROOT/bin}
SIM=$BIN/upstream-sim
RT=$BIN/realtimed
STORES=$ROOT/tests/harness/stores.sh
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	SWEEP_N=${BENCH_SWEEP_CHARGERS:-20000} MEM_N=${BENCH_MEM_CHARGERS:-20000}
	T=${BENCH_POLL_INTERVAL:-2} HSET_N=200000 TRIALS=2
else
	SWEEP_N=${BENCH_SWEEP_CHARGERS:-500000} MEM_N=${BENCH_MEM_CHARGERS:-230000}
	T=${BENCH_POLL_INTERVAL:-5} HSET_N=2000000 TRIALS=3
fi
CLOCK_TS=20240506143000 # Monday 14:30 Korea time, for the memory phase

for tool in redis-server redis-cli redis-benchmark curl; do
	command -v "$tool" >/dev/null || { echo "realtimed_sweep: $tool missing (make deps)" >&2; exit 1; }
done
if [ ! -x "$SIM" ] || [ ! -x "$RT" ]; then
	echo "realtimed_sweep: $SIM or $RT missing (run make)" >&2
	exit 1
fi

WORK=$(mktemp -d /tmp/rtbench.XXXXXX)
chmod 0755 "$WORK"
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	"$STORES" stop "$WORK" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "realtimed_sweep: $*" >&2; [ -f "$WORK/rt.log" ] && tail -n 20 "$WORK/rt.log" >&2; exit 1; }
now() { date +%s.%N; }
calc() { awk "BEGIN {printf \"$1\", $2}"; }

REDIS_URL=$("$STORES" redis-start "$WORK") || die "redis did not start"
RPORT=$(cat "$WORK/redis/port")
rcli() { redis-cli -p "$RPORT" "$@"; }
hb() { rcli hget ev:heartbeat "$1" 2>/dev/null || true; }
used_memory() { rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}'; }
# microseconds Redis spent in realtimed's write blocks (commands inside EXEC
# are timed within it). The fence script (one 2-call script per block of
# 500, a few ms per sweep) is left out: EVALSHA also counts the prune walk's
# reads, which may begin before the sweep's figures are read.
write_usec() {
	rcli info commandstats | tr -d '\r' |
		awk -F'[:,=]' '$1 ~ /^cmdstat_(exec|watch|multi)$/ {n += $5} END {print n + 0}'
}
redis_cpu() { rcli info cpu | tr -d '\r' | awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" {n += $2} END {printf "%.3f", n}'; }

# wait_until SECONDS COMMAND...: poll every 50 ms until COMMAND succeeds.
wait_until() {
	local limit=$1 t0
	shift
	t0=$(now)
	until "$@"; do
		awk -v a="$(now)" -v b="$t0" -v l="$limit" 'BEGIN {exit !(a - b > l)}' && return 1
		sleep 0.05
	done
}
have_hb() { [ -n "$(hb "$1")" ]; }

start_sim() { # args: simulator options
	"$SIM" --port 0 --port-file "$WORK/sim.port" "$@" 2>>"$WORK/sim.log" &
	SIM_PID=$!
	PIDS+=("$SIM_PID")
	wait_until 10 test -s "$WORK/sim.port" || die "simulator did not start"
	SIM_PORT=$(cat "$WORK/sim.port")
	rm -f "$WORK/sim.port"
}

# start_rt CONFIG_FILE [K=V...]: realtimed on the simulator; sets RT_PID, RT_PORT.
start_rt() {
	local conf=$1
	shift
	rm -f "$WORK/rt.port"
	env REDIS_URL="$REDIS_URL" UPSTREAM_URL="http://127.0.0.1:$SIM_PORT/B552584/EvCharger" \
		UPSTREAM_KEYS=test-key REALTIMED_ADMIN_PORT=0 REALTIMED_PORT_FILE="$WORK/rt.port" \
		REALTIMED_POLL_INTERVAL="$T" REALTIMED_STATUS_PERIOD=1 REALTIMED_LEASE_MS=3000 \
		REALTIMED_RESTORE_INGESTD= \
		LOG_FORMAT=text ${BENCH_RT_SETTINGS:-} "$@" "$RT" --config "$conf" >>"$WORK/rt.log" 2>&1 &
	RT_PID=$!
	PIDS+=("$RT_PID")
	wait_until 10 test -s "$WORK/rt.port" || die "realtimed did not start"
	RT_PORT=$(cat "$WORK/rt.port")
}
# CPU seconds (user + system) a process of ours has used so far
pid_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
rt_cpu() { pid_cpu "$RT_PID"; }
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
metric() { curl -s "http://127.0.0.1:$RT_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
log_time() { # the timestamp of the last log line matching $1, as Unix seconds
	local ts
	ts=$(grep -- "$1" "$WORK/rt.log" | tail -n 1 | cut -d' ' -f1)
	[ -n "$ts" ] && date -d "$ts" +%s.%N
}

hset_rate() {
	redis-benchmark -h 127.0.0.1 -p "$RPORT" -P 64 -t hset -n "$HSET_N" -q 2>/dev/null | tr '\r' '\n' |
		sed -n 's/^HSET: \([0-9.]*\) requests per second.*/\1/p' | tail -n 1
}

echo "realtimed_sweep: $SWEEP_N chargers swept, memory at $MEM_N, poll every $T s$([ "$QUICK" = 1 ] && echo ' (quick)')"

# ---- 1. the reference ----
C0=$(redis_cpu)
REF1=$(hset_rate)
C1=$(redis_cpu)
rcli flushall >/dev/null
[ -n "$REF1" ] || die "redis-benchmark printed no rate"

# ---- 2. the bootstrap sweep ----
: >"$WORK/empty.conf"
start_sim --chargers "$SWEEP_N" --seed 7
rcli config resetstat >/dev/null
CPU0=$(redis_cpu)
start_rt "$WORK/empty.conf" REALTIMED_SAMPLE_INTERVAL=86400
wait_until 600 have_hb sweep_ok_ms || die "the sweep did not finish"
USEC=$(write_usec)
CPU1=$(redis_cpu)
SWEEP_CPU="realtimed $(rt_cpu) s, the simulator $(pid_cpu "$SIM_PID") s, Redis $(calc %.2f "$CPU1 - $CPU0") s"
SWEEP_S=$(metric realtimed_sweep_seconds)
ITEMS=$(metric realtimed_sweep_items)
# chargers in Redis: the " <chgerId>=" entries of the station values (rkeys.h)
FIELDS=$(rcli eval "local n = 0 for _, k in ipairs(redis.call('KEYS', 'ev:st:*')) do for _ in string.gmatch(redis.call('GET', k), ' %w+=') do n = n + 1 end end return n" 0)
if [ "$ITEMS" != "$SWEEP_N" ] || [ "$FIELDS" != "$SWEEP_N" ]; then
	die "swept $ITEMS items, $FIELDS in Redis, expected $SWEEP_N"
fi
# the cleanup walk that follows a complete sweep SCANs every key (prune.c):
# the reference is not measured beside it
prune_done() { [ "$(metric realtimed_prune_walks_total)" = 1 ]; }
wait_until 120 prune_done || die "the prune walk after the sweep did not finish"
C2=$(redis_cpu)
REF2=$(hset_rate) # the benchmark's keys are apart from ev:*; measured with the sweep's keys present
C3=$(redis_cpu)
# the reference per second of Redis CPU: on a busy machine Redis does not
# get a whole core during redis-benchmark either
REF_CPU=$(calc %.0f "2 * $HSET_N / ($C1 - $C0 + $C3 - $C2)")
rcli del myhash >/dev/null
REF=$(calc %.0f "($REF1 + $REF2) / 2")
WRITE_RATE=$(calc %.0f "$ITEMS / ($USEC / 1e6)")
CPU_RATE=$(calc %.0f "$ITEMS / ($CPU1 - $CPU0)")
E2E_RATE=$(calc %.0f "$ITEMS / $SWEEP_S")
echo "reference   redis-benchmark -P 64 -t hset: $REF1 and $REF2 ops/s (mean $REF)"
echo "sweep       $ITEMS statuses; Redis time in the write blocks $(calc %.2f "$USEC / 1e6") s: Redis-time rate $WRITE_RATE statuses/s, ratio $(calc %.2f "$WRITE_RATE / $REF") (Redis time only; the issue's figure is the WRITE PATH line)"
echo "reference   per second of Redis CPU: $REF_CPU HSET/s"
echo "sweep       Redis CPU during the sweep (all of it: parsing, network, reads) $(calc %.2f "$CPU1 - $CPU0") s: $CPU_RATE statuses/s, ratio $(calc %.2f "$CPU_RATE / $REF_CPU") to the reference per Redis CPU second"
echo "sweep       end to end (fetch, parse, write) $SWEEP_S s: $E2E_RATE statuses/s, ratio $(calc %.2f "$E2E_RATE / $REF")"
echo "sweep       CPU from start to the sweep written: $SWEEP_CPU"

# ---- 3. re-apply from memory into a Redis restarted empty ----
"$STORES" redis-kill "$WORK"
RTC0=$(rt_cpu)
"$STORES" redis-start "$WORK" "$RPORT" >/dev/null
wait_until 60 have_hb sweep_ok_ms || die "the re-apply did not finish"
RTC1=$(rt_cpu)
RCPU=$(redis_cpu) # the restarted Redis: little else than the re-apply
R0=$(log_time "re-applying") R1=$(log_time "re-apply written")
WRITES_S=$(grep -- "re-apply written" "$WORK/rt.log" | tail -n 1 | sed -n 's/.*; writes \([0-9.]*\) s.*/\1/p')
[ -n "$WRITES_S" ] && [ "$(calc %d "$WRITES_S * 1000")" -gt 0 ] || die "no re-apply write time logged"
REAPPLY_RATE=$(calc %.0f "$SWEEP_N / $WRITES_S")
echo "re-apply    $SWEEP_N statuses from memory into an empty Redis: $(calc %.2f "$R1 - $R0") s from the decision (the load of what Redis holds included)"
echo "re-apply    CPU meanwhile: Redis $RCPU s (restarted: the re-apply and its startup), realtimed $(calc %.2f "$RTC1 - $RTC0") s (the polls' too)"
echo "WRITE PATH  re-apply, wall clock from the first block sent to the last reply: $WRITES_S s, $REAPPLY_RATE statuses/s, ratio $(calc %.2f "$REAPPLY_RATE / $REF") to the reference (issue: >= 0.5)"

# ---- 4. visibility of a change ----
worst=0
for trial in $(seq 1 "$TRIALS"); do
	index=$(((trial * 7919 + 12345) % SWEEP_N))
	cur=$(curl -s "http://127.0.0.1:$SIM_PORT/__admin/charger?index=$index" | sed -n 's/.*"stat":"\([0-9]\)".*/\1/p')
	next=$([ "$cur" = 5 ] && echo 4 || echo 5)
	t0=$(now)
	item=$(curl -s "http://127.0.0.1:$SIM_PORT/__admin/status?index=$index&stat=$next")
	sid=$(sed -n 's/.*"statId":"\([^"]*\)".*/\1/p' <<<"$item")
	cid=$(sed -n 's/.*"chgerId":"\([^"]*\)".*/\1/p' <<<"$item")
	upd=$(sed -n 's/.*"statUpdDt":"\([0-9]*\)".*/\1/p' <<<"$item")
	unix=$(TZ=Asia/Seoul date -d "${upd:0:8} ${upd:8:2}:${upd:10:2}:${upd:12:2}" +%s)
	want="$next:$unix"
	seen() { local v; v=" $(rcli get "ev:st:$sid") "; [[ "$v" == *" $cid=$want "* || "$v" == *" $cid=$want:q "* ]]; } # ":q": a quick charger
	wait_until $((T + 30)) seen || die "the change of $sid/$cid never reached Redis"
	took=$(calc %.2f "$(now) - $t0")
	echo "visibility  $sid/$cid set to $next: in Redis after $took s"
	worst=$(awk -v a="$took" -v b="$worst" 'BEGIN {print (a > b ? a : b)}')
done
echo "visibility  worst $worst s; limit T + 2 = $((T + 2)) s: $(awk -v a="$worst" -v l="$((T + 2))" 'BEGIN {print (a <= l ? "within" : "OVER")}')"
stop_pid "$RT_PID"
stop_pid "$SIM_PID"

# ---- 5. congestion counters' memory ----
rcli flushall >/dev/null
start_sim --chargers "$MEM_N" --seed 7 --clock "fixed:$CLOCK_TS"
printf 'REALTIMED_SAMPLE_INTERVAL=86400\n' >"$WORK/mem.conf"
start_rt "$WORK/mem.conf" REALTIMED_POLL_INTERVAL=60 REALTIMED_STATUS_PERIOD=5 \
	REALTIMED_CLOCK="fixed:$CLOCK_TS"
wait_until 600 have_hb sweep_ok_ms || die "the memory phase's sweep did not finish"
sleep 1 # the first status poll
[ -z "$(hb sample_started)" ] || die "a sample began before the baseline"
KEYS0=$(rcli dbsize)
MEM0=$(used_memory)
# one sample, 5 s from now at most: the interval is reloaded (SIGHUP)
printf 'REALTIMED_SAMPLE_INTERVAL=5\n' >"$WORK/mem.conf"
kill -HUP "$RT_PID"
have_sample() { [ "$(hb samples)" = 1 ]; }
wait_until 120 have_sample || die "no congestion sample"
MEM1=$(used_memory)
KEYS1=$(rcli dbsize)
ONE=$(rcli --scan --pattern 'ev:cg:*' | awk 'NR == 1')
echo "congestion  $MEM_N chargers: $((KEYS1 - KEYS0)) counter keys; used_memory $MEM0 -> $MEM1 bytes:" \
	"$(calc %.0f "($MEM1 - $MEM0) / $MEM_N") bytes per charger (issue: <= 1024);" \
	"MEMORY USAGE of one key $(rcli memory usage "$ONE"); value $(rcli strlen "$ONE") bytes"
echo "congestion  all of Redis (station values, counters): $(calc %.0f "$MEM1 / $MEM_N") bytes per charger"
stop_pid "$RT_PID"
stop_pid "$SIM_PID"
grep -E 'ERROR|Sanitizer|runtime error' "$WORK/rt.log" && die "realtimed logged errors"
exit 0
