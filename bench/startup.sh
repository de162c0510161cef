#!/usr/bin/env bash
# Start-up and fork under each allocator (LD_PRELOAD), what a shell or git,
# which start hundreds of processes, pays per process: the mean time of
# /bin/true and of `git --version` over N runs, and bench/forkwait.c's
# fork+exit+wait and the faults its child takes before it could exec.
# Interleaved REPS times; medians. Usage: bench/startup.sh [REPS] [N]
set -u
REPS=${1:-3}
N=${2:-300}
. "$(dirname "$0")/allocators.sh"
ALLOCS=${ALLOCS:-"glibc gort mimalloc jemalloc tcmalloc"}
BIN=build/bench/forkwait
[ -x "$BIN" ] || { echo "startup: $BIN missing; make $BIN" >&2; exit 1; }
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
mean_us() {  # mean_us LIB cmd...: mean wall time of N runs, in us
  local lib=$1; shift
  local s e
  s=$(date +%s%N)
  for _ in $(seq "$N"); do LD_PRELOAD="$lib" "$@" >/dev/null 2>&1; done
  e=$(date +%s%N)
  echo $(((e - s) / N / 1000))
}
for r in $(seq "$REPS"); do
  for a in $ALLOCS; do
    lib=${LIB[$a]}
    [ -n "$lib" ] && [ ! -e "$lib" ] && continue
    t=$(mean_us "$lib" /bin/true)
    g=-
    command -v git >/dev/null && g=$(mean_us "$lib" git --version)
    read -r _ f c < <(LD_PRELOAD="$lib" "$BIN" 1000)
    echo "$a $t $g $f $c" >> "$raw"
  done
done
python3 - "$raw" "$ALLOCS" <<'PY'
import sys, statistics
raw, allocs = sys.argv[1], sys.argv[2].split()
d = {}
for line in open(raw):
    a, *v = line.split()
    d.setdefault(a, []).append(v)
print("%-10s %12s %16s %18s %14s" % ("allocator", "/bin/true us", "git --version us", "fork+exit+wait us", "child faults"))
for a in allocs:
    if a not in d: continue
    col = lambda i: statistics.median(float(x[i]) for x in d[a] if x[i] != "-") if any(x[i] != "-" for x in d[a]) else float("nan")
    print("%-10s %12.0f %16.0f %18.1f %14.0f" % (a, col(0), col(1), col(2), col(3)))
PY
