#!/usr/bin/env bash
# The collector's benchmarks (issue 9): GCBench, binary-trees, the
# large-heap cache and short strings (the tiny allocators), each for gort,
# bdwgc, Go and malloc/free, REPS times,
# interleaved (workload by workload, every implementation once per rep),
# then a side-by-side table of medians with ratios to bdwgc.
#
# Usage: bench/gc/run.sh [REPS]          (default 3)
# Environment:
#   IMPLS="gort bdwgc go malloc"  (also: gort-stw, gort with GORT_DEBUG=gcdirty=none;
#     gort-wb, gort with barriered objects and gort_gc_write_ptr;
#     gort-mprotect, gort with GORT_DEBUG=gcdirty=mprotect;
#     gort-huge, gort with GORT_DEBUG=hugepages=1;
#     bdwgc-inc, bdwgc in its incremental mode)  WORKLOADS="gcbench bintree largeheap strings"
#   GCBENCH_ARGS=16  BINTREE_ARGS=18  LARGEHEAP_ARGS="1024 4000000"  STRINGS_ARGS="65536 20000000"
#     (smaller for a quick look: GCBENCH_ARGS=12 BINTREE_ARGS=12 LARGEHEAP_ARGS="64 200000")
#   TIMEOUT=900 (seconds per run)   GCB_NOBUILD=1 (do not run make bench-gc first)
# An implementation whose program was not built (gort before its collector
# is in build/libgort.a, bdwgc without libgc-dev, Go without golang-go) is
# skipped with a message. Every result line and each run's stderr are kept
# in build/bench/gc/results/. Exit status 1 if a run failed or the
# checksums of one workload differ.
set -u
cd "$(dirname "$0")/../.." || exit 2
REPS=${1:-${REPS:-3}}
IMPLS=${IMPLS:-"gort bdwgc go malloc"}
WORKLOADS=${WORKLOADS:-"gcbench bintree largeheap strings"}
declare -A ARGS=(
  [gcbench]="${GCBENCH_ARGS:-16}"
  [bintree]="${BINTREE_ARGS:-18}"
  [largeheap]="${LARGEHEAP_ARGS:-1024 4000000}"
  [strings]="${STRINGS_ARGS:-65536 20000000}"
)
TIMEOUT=${TIMEOUT:-900}
B=build/bench/gc
OUT=$B/results
mkdir -p "$OUT"

if [ -z "${GCB_NOBUILD:-}" ]; then
  if ! make --no-print-directory bench-gc > "$OUT/make.log" 2>&1; then
    cat "$OUT/make.log" >&2
    echo "bench/gc: make bench-gc failed" >&2
    exit 2
  fi
  grep '^bench-gc:' "$OUT/make.log" >&2
fi

prog() {  # prog IMPL WORKLOAD: the command line, empty if not built
  local bin pre=""
  case $1 in
    go) bin=$B/gcgo ;;
    bdwgc-inc) bin=$B/$2-bdwgc pre="env GCB_BDW_INCREMENTAL=1" ;;   # bdwgc's incremental mode
    gort-stw) bin=$B/$2-gort pre="env GORT_DEBUG=gcdirty=none" ;;    # gort marking with the world stopped
    gort-mprotect) bin=$B/$2-gort pre="env GORT_DEBUG=gcdirty=mprotect" ;;  # gort's fallback dirty tracker
    gort-huge) bin=$B/$2-gort pre="env GORT_DEBUG=hugepages=1" ;;   # big reservations on huge pages
    *) bin=$B/$2-$1 ;;
  esac
  [ -x "$bin" ] || return 0
  if [ "$1" = go ]; then echo "$bin $2 ${ARGS[$2]}"; else echo "$pre $bin ${ARGS[$2]}"; fi
}

declare -A WHY=(
  [gort]="gort's collector is not linked into build/libgort.a yet (make bench-gc says why)"
  [bdwgc]="libgc-dev missing? (apt-get install libgc-dev)"
  [bdwgc-inc]="libgc-dev missing? (apt-get install libgc-dev)"
  [gort-stw]="gort's collector is not linked into build/libgort.a yet"
  [gort-mprotect]="gort's collector is not linked into build/libgort.a yet"
  [gort-wb]="gort's collector is not linked into build/libgort.a yet"
  [go]="no go command? (apt-get install golang-go)"
  [malloc]="make bench-gc failed?"
)
RUN_IMPLS=""
for i in $IMPLS; do
  missing=""
  for w in $WORKLOADS; do [ -n "$(prog "$i" "$w")" ] || missing="$missing $w"; done
  if [ -n "$missing" ]; then
    echo "bench/gc: skipping $i:$missing not built: ${WHY[$i]:-}" >&2
  else
    RUN_IMPLS="$RUN_IMPLS $i"
  fi
done
if [ -z "$RUN_IMPLS" ]; then
  echo "bench/gc: nothing to run" >&2
  exit 2
fi

RAW=$OUT/raw.txt
{
  echo "# bench/gc/run.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -srm), $(nproc) CPUs, REPS=$REPS"
  for w in $WORKLOADS; do echo "# $w args: ${ARGS[$w]}"; done
  echo "# workload impl cpu_s wall_s maxrss_mib cycles stw_max_ms stw_p99_ms gap_probe_ms gap_mutator_ms checksum"
} > "$RAW"
failed=0
for w in $WORKLOADS; do
  for r in $(seq "$REPS"); do
    for i in $RUN_IMPLS; do
      err=$OUT/$w-$i-$r.err
      # shellcheck disable=SC2046
      line=$(timeout "$TIMEOUT" $(prog "$i" "$w") 2> "$err")
      rc=$?
      line=$(echo "$line" | awk -v i="$i" 'NF == 11 { $2 = i } { print }')  # bdwgc-inc, gort-stw, gort-mprotect
      read -r -a f <<< "$line"
      if [ $rc -ne 0 ] || [ ${#f[@]} -ne 11 ] || [ "${f[0]}" != "$w" ]; then
        echo "bench/gc: $w $i rep $r failed (exit $rc); $err says:" >&2
        tail -n 5 "$err" >&2
        failed=1
        continue
      fi
      echo "$line" >> "$RAW"
      echo "  $line" >&2
    done
  done
done

python3 - "$RAW" "$RUN_IMPLS" "$WORKLOADS" "$OUT" <<'PY' || failed=1
import os, re, statistics, sys
raw, impls, workloads, out = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
args = {}
data = {}
for line in open(raw):
    if line.startswith("#"):
        m = re.match(r"# (\w+) args: (.*)", line)
        if m: args[m.group(1)] = m.group(2).strip()
        continue
    f = line.split()
    data.setdefault(f[0], {}).setdefault(f[1], []).append(f[2:])
metrics = [("cpu_s", "CPU s", "%.2f"), ("wall_s", "wall s", "%.2f"), ("maxrss_mib", "peak RSS MiB", "%.0f"),
           ("cycles", "cycles", "%.0f"), ("stw_max_ms", "STW max ms", "%.2f"), ("stw_p99_ms", "STW p99 ms", "%.2f"),
           ("gap_probe_ms", "probe gap ms", "%.2f"), ("gap_mutator_ms", "mutator gap ms", "%.2f")]
ref = "bdwgc" if "bdwgc" in impls else None
bad = False
W = 18
print("Collector benchmarks: medians of %s (ratio to %s; lower is better)" %
      ("/".join(sorted({"%d run%s" % (len(v), "s" if len(v) > 1 else "") for d in data.values() for v in d.values()})),
       ref or "-"))
for w in workloads:
    if w not in data: continue
    print()
    print("%-16s" % ("%s %s" % (w, args.get(w, ""))) + "".join("%*s" % (W, i) for i in impls if i in data[w]))
    for k, (key, label, fmt) in enumerate(metrics):
        row = "  %-14s" % label
        base = None
        if ref in data[w]:
            base = statistics.median(float(x[k]) for x in data[w][ref])
        for i in impls:
            if i not in data[w]: continue
            v = statistics.median(float(x[k]) for x in data[w][i])
            if i == "malloc" and key in ("cycles", "stw_max_ms", "stw_p99_ms"):
                row += "%*s" % (W, "-")  # no collector
                continue
            cell = fmt % v
            if base is not None:
                cell += " (%s)" % ("%.2fx" % (v / base) if base > 0 else "-")
            row += "%*s" % (W, cell)
        print(row)
    sums = {(i, x[8]) for i in data[w] for x in data[w][i]}
    if len({s for _, s in sums}) > 1:
        bad = True
        print("  CHECKSUM MISMATCH: " + ", ".join("%s=%s" % p for p in sorted(sums)))
    else:
        print("  checksum %s (the same in every run)" % next(iter(sums))[1])
    if w == "largeheap":
        for i in impls:
            try:
                txt = open(os.path.join(out, "largeheap-%s-1.err" % i)).read()
            except OSError:
                continue
            m = re.search(r"([\d.]+) MiB live at the end", txt)
            if m:
                print("  live heap at the end: %s MiB (values and entry headers as requested)" % m.group(1))
                break
print()
print("STW: per cycle (gort: memstats pause_ns ring; bdwgc: world stopped, GC_EVENT_PRE_STOP_WORLD"
      " to POST_START_WORLD; Go: MemStats.PauseNs). Probe: a registered thread sleeping 100 us,"
      " longest oversleep. Mutator: longest interval between clock readings every 256 steps (allocations, tree nodes walked).")
print("Raw lines: %s" % raw)
sys.exit(1 if bad else 0)
PY
exit $failed
