#!/usr/bin/env bash
# The scheduler's benchmarks (issue #10): each workload of sched.c for gort
# and of go/sched.go for Go 1.19, REPS times interleaved, then the medians
# side by side with gort's figure as a ratio to Go's (below 1: gort is
# smaller: faster, or less memory).
#
# Usage: bench/sched/run.sh [REPS]   (default 3)
# Environment: SPAWN_N=1000000 YIELD_N=1000000 SKYNET_N=1000000
#   IDLE_N=100000 SLEEPERS_N=100000 SLEEPERS_S=2 (seconds measured)
#   MAXPROCS=2 (GORT_MAXPROCS and GOMAXPROCS; yield uses 1 P by itself)
# The machine is shared: short runs, and medians.
set -u
cd "$(dirname "$0")/../.." || exit 2
REPS=${1:-${REPS:-3}}
B=build/bench/sched
mkdir -p "$B"
make --no-print-directory build/libgort.a >/dev/null || exit 2
cc -std=gnu11 -O2 -g -pthread -Iinclude -Isrc -Wall -Wextra bench/sched/sched.c -o "$B/sched-gort" \
  build/libgort.a -lpthread || exit 2
GO=""
if command -v go >/dev/null && (cd bench/sched/go && GOCACHE=${GOCACHE:-/tmp/gort-gocache} go build -o "$OLDPWD/$B/sched-go" .); then
  GO="$B/sched-go"
else
  echo "bench/sched: Go skipped (no go command, or go build failed)" >&2
fi
MAXPROCS=${MAXPROCS:-2}
declare -A ARGS=(
  [spawn]="${SPAWN_N:-1000000}" [yield]="${YIELD_N:-1000000}" [skynet]="${SKYNET_N:-1000000}"
  [idle]="${IDLE_N:-100000}" [sleepers]="${SLEEPERS_N:-100000} ${SLEEPERS_S:-2}"
)
OUT=$B/results.txt
: >"$OUT"
for rep in $(seq "$REPS"); do
  for w in spawn yield skynet idle sleepers; do
    GORT_MAXPROCS=$MAXPROCS "$B/sched-gort" $w ${ARGS[$w]} | sed 's/^/gort /' >>"$OUT"
    [ -n "$GO" ] && GOMAXPROCS=$MAXPROCS "$GO" $w ${ARGS[$w]} | sed 's/^/go /' >>"$OUT"
  done
done
# impl workload figure value unit -> medians, side by side.
printf '%-10s %-20s %12s %12s %8s\n' workload figure gort go gort/go
awk '{ k = $2 " " $3; v[$1 " " k] = v[$1 " " k] " " $4; u[k] = $5; keys[k] = 1 }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n ? a[int((n + 1) / 2)] : "" }
  END { for (k in keys) { g = median(v["gort " k]); o = median(v["go " k]);
    split(k, kk, " "); r = (o != "" && o > 0) ? sprintf("%.2f", g / o) : "-";
    printf "%-10s %-20s %12s %12s %8s  (%s)\n", kk[1], kk[2], g, (o == "" ? "-" : o), r, u[k] } }' "$OUT" | sort
