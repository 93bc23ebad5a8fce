#!/usr/bin/env bash
# run.sh: build (make fuzz-build) and run every libFuzzer harness
# tests/fuzz/fuzz_<name>.c for FUZZ_SECONDS each (default 60), with its seed
# corpus tests/fuzz/corpus/<name>/ (plus tests/data/ files for the parsers
# they feed). New inputs go to a scratch corpus, never into the repo; a crash
# leaves its input in build/fuzz/crashes/ and fails the run. Prints the
# executions per harness.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_EACH=${FUZZ_SECONDS:-60}
OUT=$ROOT/build/fuzz
mkdir -p "$OUT/crashes"
scratch=$(mktemp -d /tmp/evfuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
status=0
for bin in "$OUT"/fuzz_*; do
	[ -x "$bin" ] && [[ $bin != *.o && $bin != *.d ]] || continue
	name=${bin##*/fuzz_}
	seeds=("$ROOT/tests/fuzz/corpus/$name")
	case $name in
	upstream_page) seeds+=("$ROOT/tests/data/upstream") ;;
	json) seeds+=("$ROOT/tests/data/json" "$ROOT/tests/data/upstream") ;;
	esac
	existing=()
	for seed in "${seeds[@]}"; do [ -d "$seed" ] && existing+=("$seed"); done
	mkdir -p "$scratch/$name"
	log=$scratch/$name.log
	"$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
		-artifact_prefix="$OUT/crashes/$name-" -print_final_stats=1 \
		"$scratch/$name" "${existing[@]}" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	if [ $rc -ne 0 ]; then
		status=1
		echo "fuzz $name: FAILED after ${execs:-?} executions"
		grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -n 10 | sed 's/^/   /'
		tail -n 5 "$log" | sed 's/^/   | /'
	else
		echo "fuzz $name: ${execs:-?} executions in ${SECONDS_EACH}s, no crash"
	fi
done
exit $status
