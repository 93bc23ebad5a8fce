#!/usr/bin/env bash
# run.sh: build (make fuzz-build) and run every libFuzzer harness
# tests/fuzz/fuzz_<name>.c for FUZZ_SECONDS each (default 60), FUZZ_JOBS
# harnesses at a time (default 2: CI gives each harness its 60 s in half the
# wall time), with its seed corpus tests/fuzz/corpus/<name>/ (plus
# tests/data/ files for the parsers they feed). New inputs go to a scratch
# corpus, never into the repo; a crash leaves its input in
# build/fuzz/crashes/ and fails the run. Prints the executions per harness,
# in harness order, once all have finished.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
if ! [[ $JOBS =~ ^[1-9][0-9]*$ ]]; then
	echo "run.sh: FUZZ_JOBS must be a positive integer, got '$JOBS'" >&2
	exit 2
fi
OUT=$ROOT/build/fuzz
mkdir -p "$OUT/crashes"
scratch=$(mktemp -d /tmp/evfuzz.XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
	rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One harness; its exit status goes to $scratch/<name>.rc.
run_one() {
	local bin=$1 name=$2
	local seeds=("$ROOT/tests/fuzz/corpus/$name")
	case $name in
	upstream_page) seeds+=("$ROOT/tests/data/upstream") ;;
	json) seeds+=("$ROOT/tests/data/json" "$ROOT/tests/data/upstream") ;;
	esac
	local existing=() seed
	for seed in "${seeds[@]}"; do [ -d "$seed" ] && existing+=("$seed"); done
	mkdir -p "$scratch/$name"
	"$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
		-artifact_prefix="$OUT/crashes/$name-" -print_final_stats=1 \
		"$scratch/$name" "${existing[@]}" >"$scratch/$name.log" 2>&1
	echo $? >"$scratch/$name.rc"
}

names=()
for bin in "$OUT"/fuzz_*; do
	[ -x "$bin" ] && [[ $bin != *.o && $bin != *.d ]] || continue
	name=${bin##*/fuzz_}
	names+=("$name")
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
	run_one "$bin" "$name" &
	pids+=($!)
done
wait

status=0
for name in "${names[@]}"; do
	log=$scratch/$name.log
	rc=$(cat "$scratch/$name.rc" 2>/dev/null || echo 1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	if [ "$rc" -ne 0 ]; then
		status=1
		echo "fuzz $name: FAILED after ${execs:-?} executions"
		grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -n 10 | sed 's/^/   /'
		tail -n 5 "$log" | sed 's/^/   | /'
	else
		echo "fuzz $name: ${execs:-?} executions in ${SECONDS_EACH}s, no crash"
	fi
done
exit $status
