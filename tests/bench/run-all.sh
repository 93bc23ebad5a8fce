#!/usr/bin/env bash
# run-all.sh: every benchmark script under tests/bench/, one at a time (the
# machines have 2 cores; two benchmarks at once measure nothing).
# BENCH_QUICK=1 runs small sizes (CI: keeps the scripts from rotting; figures
# printed, not asserted).
set -uo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
status=0
for script in "$dir"/*.sh; do
	case $(basename "$script") in run-all.sh | lib.sh) continue ;; esac
	echo "--- $(basename "$script")"
	bash "$script" || { echo "benchmark $(basename "$script") failed" >&2; status=1; }
done
exit $status
