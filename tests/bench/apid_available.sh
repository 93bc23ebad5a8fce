#!/usr/bin/env bash
# apid_available.sh: the free-now filter's cost (issue 10), in one run.
#   GET /stations for one box of about 100 stations, with and without
#   available=true, by wrk -t2 -c64, alternated twice (A B A B) so that drift
#   of a shared machine falls on both; the best run of each is compared. The
#   target: the filtered rate within 10% of the unfiltered one (ratio >= 0.90).
# Data (bench_seed_grid): 10,000 stations of 2 chargers in a 1 x 1 degree area; each charger
# stands by with probability 0.3 (about half the stations have one free).
# 10 s runs (BENCH_QUICK=1: 1 s). Starts its own PostgreSQL and Redis; run it
# under `flock /tmp/bench.lock` on a shared machine.
set -euo pipefail
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init apid_available wrk psql curl bc
DURATION=10s
[ "$QUICK" = 1 ] && DURATION=1s
WRK=(wrk -t2 -c64 -d"$DURATION" --latency)

bench_stores pg redis
bench_db availbench
bench_seed_grid 10000 0.3
bench_apid

BOX="/stations?latitude=37.5&longitude=127&latitudeDelta=0.05&longitudeDelta=0.05"
ALL=$(curl -sf "http://127.0.0.1:$PORT$BOX" | grep -o '"stationId"' | wc -l)
FREE=$(curl -sf "http://127.0.0.1:$PORT$BOX&available=true" | grep -o '"stationId"' | wc -l)
[ "$FREE" -gt 0 ] && [ "$FREE" -lt "$ALL" ] ||
	{ echo "apid_available.sh: the filter kept $FREE of $ALL stations" >&2; exit 1; }

best_all=0 best_free=0 p99_all=0 p99_free=0
for round in 1 2; do
	for kind in all free; do
		url="http://127.0.0.1:$PORT$BOX"
		[ "$kind" = free ] && url="$url&available=true"
		"${WRK[@]}" "$url" >"$BENCH_DIR/wrk-$kind-$round.txt"
		read -r rps p99 < <(wrk_figures "$BENCH_DIR/wrk-$kind-$round.txt")
		if [ "$kind" = all ] && [ "$(echo "$rps > $best_all" | bc)" = 1 ]; then
			best_all=$rps p99_all=$p99
		elif [ "$kind" = free ] && [ "$(echo "$rps > $best_free" | bc)" = 1 ]; then
			best_free=$rps p99_free=$p99
		fi
	done
done
echo "box: $ALL stations; available=true keeps $FREE; wrk -t2 -c64 -d$DURATION, best of 2:"
printf '  unfiltered:      %9.0f req/s  p99 %6.2f ms\n' "$best_all" "$p99_all"
printf '  available=true:  %9.0f req/s  p99 %6.2f ms\n' "$best_free" "$p99_free"
printf '  ratio: %.2f x the unfiltered requests/s (target >= 0.90)\n' \
	"$(echo "$best_free / $best_all" | bc -l)"
