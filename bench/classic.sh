#!/usr/bin/env bash
# Runs the classic workload shapes (bench/classic.c, bench/classic_cxx.cc)
# under each allocator (LD_PRELOAD), REPS times each, and prints the median
# time and peak RSS side by side. Ratios are to the fastest peer (glibc,
# mimalloc, jemalloc or tcmalloc; named in the last column) of each
# workload, for RSS too, so gort is measured against the best of the others;
# the geometric means of those ratios close each table.
# The run is interleaved: every repetition runs every workload under every
# allocator, rotating which allocator goes first, so that a slow minute on
# a shared machine lands on all of them alike.
# Usage: bench/classic.sh [REPS] [SCALE]   (defaults 5 and 1.0)
set -u
REPS=${1:-${REPS:-5}}
SCALE=${2:-${SCALE:-1.0}}
. "$(dirname "$0")/allocators.sh"
PEERS="glibc mimalloc jemalloc tcmalloc"
ALLOCS=${ALLOCS:-"glibc gort mimalloc jemalloc tcmalloc"}
WORKLOADS=${WORKLOADS:-"larson-sized xmalloc rptest simple-1t simple-2t thread-1t thread-2t"}
for a in $ALLOCS; do
  if [ -n "${LIB[$a]-}" ] && [ ! -e "${LIB[$a]}" ]; then
    echo "classic: $a not installed (${LIB[$a]}); apt-get install" \
      "libmimalloc-dev libjemalloc-dev libgoogle-perftools-dev" >&2
    ALLOCS=$(echo "$ALLOCS" | sed "s/\b$a\b//")
  fi
done
for b in build/bench/classic build/bench/classic_cxx; do
  if [ ! -x "$b" ]; then
    echo "classic: $b missing; make build/bench/classic build/bench/classic_cxx" >&2
    exit 1
  fi
done
read -r -a allocs <<< "$ALLOCS"
# The single-threaded workloads, pinned (allocators.sh, pin_single).
pin_for() { case $1 in simple-1t | thread-1t) pin_single ;; esac; }
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
echo "classic workloads: REPS=$REPS SCALE=$SCALE, $(nproc) CPUs"
for r in $(seq "$REPS"); do
  for w in $WORKLOADS; do
    bin=build/bench/classic
    [ "$w" = larson-sized ] && bin=build/bench/classic_cxx
    for i in "${!allocs[@]}"; do
      a=${allocs[$(((i + r) % ${#allocs[@]}))]}
      out=$($(pin_for "$w") env LD_PRELOAD="${LIB[$a]}" "$bin" "$w" "$SCALE") || out="$w nan 0"
      echo "$a $out" >> "$raw"
    done
  done
done
python3 - "$raw" "$ALLOCS" "$PEERS" <<'PY'
import sys, statistics, math
raw, allocs, peers = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
data = {}
for line in open(raw):
    a, w, t, rss = line.split()
    if t != "nan":
        data.setdefault(w, {}).setdefault(a, []).append((float(t), int(rss)))
    else:
        data.setdefault(w, {}).setdefault(a, [])
def med(w, a, i):
    xs = [x[i] for x in data[w].get(a, [])]
    return statistics.median(xs) if xs else None
ws = list(data)
ref = {}
for w in ws:
    ok = [a for a in allocs if a in peers and med(w, a, 0) is not None]
    ref[w] = min(ok, key=lambda a: med(w, a, 0)) if ok else None
def table(title, i, fmt):
    print(title)
    print("%-13s" % "workload" + "".join("%17s" % a for a in allocs) + "   fastest peer")
    geo = {a: [] for a in allocs}
    for w in ws:
        row = "%-13s" % w
        base = med(w, ref[w], i) if ref[w] else None
        for a in allocs:
            v = med(w, a, i)
            if v is None:
                row += "%17s" % "failed"
            elif not base:
                row += "%17s" % fmt(v)
            else:
                geo[a].append(v / base)
                row += "%17s" % ("%s (%.2fx)" % (fmt(v), v / base))
        print(row + "   " + (ref[w] or "-"))
    print("%-13s" % "geomean" + "".join(
        "%17s" % ("%.2fx" % math.exp(sum(map(math.log, geo[a])) / len(geo[a])) if geo[a] else "-")
        for a in allocs))
    print()
table("time, median seconds (ratio to the fastest peer; lower is better)", 0, lambda v: "%.3f" % v)
table("peak RSS, median MiB (ratio to the fastest peer's)", 1, lambda v: "%.1f" % (v / 1024))
PY
