#!/usr/bin/env bash
# Runs every allocbench workload under each allocator (LD_PRELOAD), REPS
# times each, interleaved, and prints the median time and peak RSS side by
# side, with ratios to mimalloc and the geometric means.
# Usage: bench/run.sh [REPS] [SCALE]   (defaults 5 and 1.0)
set -u
REPS=${1:-${REPS:-5}}
SCALE=${2:-${SCALE:-1.0}}
. "$(dirname "$0")/allocators.sh"
# Variants of gort for overhead figures: the same library with a switch.
declare -A ENVS=(
  [gort-noprof]="GORT_MEMPROFILERATE=0"
  [gort-noscav]="GORT_DEBUG=scavenge=0"
  [gort-harden]="GORT_DEBUG=harden=1"
)
LIB[gort-harden]="$PWD/build/libgort.so"
LIB[gort-noprof]="$PWD/build/libgort.so"
LIB[gort-noscav]="$PWD/build/libgort.so"
ALLOCS=${ALLOCS:-"glibc gort mimalloc jemalloc tcmalloc"}
WORKLOADS=${WORKLOADS:-"churn prodcons larson falseshare realloc pair"}
BIN=build/bench/allocbench
for a in $ALLOCS; do
  if [ -n "${LIB[$a]}" ] && [ ! -e "${LIB[$a]}" ]; then
    echo "bench: $a not installed (${LIB[$a]}); apt-get install libmimalloc-dev libjemalloc-dev libgoogle-perftools-dev" >&2
    ALLOCS=$(echo "$ALLOCS" | sed "s/\b$a\b//")
  fi
done
# The single-threaded workloads, pinned (allocators.sh, pin_single).
pin_for() { case $1 in churn | realloc | pair) pin_single ;; esac; }
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
for w in $WORKLOADS; do
  for r in $(seq "$REPS"); do
    for a in $ALLOCS; do
      out=$($(pin_for "$w") env ${ENVS[$a]:-} LD_PRELOAD="${LIB[$a]}" "$BIN" "$w" "$SCALE") || out="$w nan 0"
      echo "$a $out" >> "$raw"
    done
  done
done
python3 - "$raw" "$ALLOCS" <<'PY'
import sys, statistics, math
raw, allocs = sys.argv[1], sys.argv[2].split()
data = {}
for line in open(raw):
    a, w, t, rss = line.split()
    data.setdefault(w, {}).setdefault(a, []).append((float(t), int(rss)))
ws = list(data)
def med(w, a, i):
    return statistics.median(x[i] for x in data[w][a])
ref = "mimalloc" if "mimalloc" in allocs else allocs[0]
print("time, median seconds (ratio to %s; lower is better)" % ref)
print("%-11s" % "workload" + "".join("%20s" % a for a in allocs))
geo = {a: [] for a in allocs}
for w in ws:
    base = med(w, ref, 0)
    row = "%-11s" % w
    for a in allocs:
        t = med(w, a, 0)
        geo[a].append(t / base)
        row += "%20s" % ("%.3f (%.2fx)" % (t, t / base))
    print(row)
print("%-11s" % "geomean" + "".join("%20s" % ("%.2fx" % math.exp(sum(map(math.log, geo[a])) / len(geo[a]))) for a in allocs))
print()
print("peak RSS, median MiB (ratio to %s)" % ref)
print("%-11s" % "workload" + "".join("%20s" % a for a in allocs))
for w in ws:
    base = med(w, ref, 1)
    print("%-11s" % w + "".join("%20s" % ("%.1f (%.2fx)" % (med(w, a, 1) / 1024, med(w, a, 1) / base)) for a in allocs))
PY
