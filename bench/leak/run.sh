#!/usr/bin/env bash
# The leak check's cost (#14): time and peak RSS of each workload under
#   gort        LD_PRELOAD=build/libgort.so
#   gort+leak   the same with GORT_LEAKCHECK=1 (every allocation's stack
#               recorded, the check at exit)
#   lsan        LeakSanitizer preloaded (Debian's liblsan0)
#   valgrind    valgrind --leak-check=full (glibc's malloc under memcheck)
# on the allocator workloads of bench/allocbench.c and on python3,
# sqlite3 and git. Whole-process wall time and max RSS (/usr/bin/time),
# so the exit-time check is included; the median of REPS runs, variants
# interleaved. A variant that crashes or runs past TIMEOUT (120 s) is shown
# so, and not run again on that workload (LeakSanitizer's realloc runs for
# minutes).
# Not part of `make test` (timing); run it on a quiet machine.
#
# Usage: bench/leak/run.sh [REPS] [SCALE]   (defaults 3 and 0.25)
#   VARIANTS="gort gort+leak lsan valgrind"   WORKLOADS="churn larson ..."
set -u
cd "$(dirname "$0")/../.."
REPS=${1:-${REPS:-3}}
SCALE=${2:-${SCALE:-0.25}}
TIMEOUT=${TIMEOUT:-120}
VARIANTS=${VARIANTS:-"gort gort+leak lsan valgrind"}
WORKLOADS=${WORKLOADS:-"churn larson prodcons realloc pair python3 sqlite3 git"}
LIB=${LIB:-$PWD/build/libgort.so}  # LIB=path compares another build
LSAN=/usr/lib/x86_64-linux-gnu/liblsan.so.0
[ -e "$LIB" ] || make -s -j2 >/dev/null
[ -x build/bench/allocbench ] || make -s build/bench/allocbench >/dev/null
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
[ -e "$LSAN" ] || { echo "bench/leak: lsan skipped: $LSAN missing (apt-get install liblsan0)" >&2; VARIANTS=${VARIANTS/lsan/}; }
command -v valgrind >/dev/null || { echo "bench/leak: valgrind skipped (apt-get install valgrind)" >&2; VARIANTS=${VARIANTS/valgrind/}; }

cat >"$T/work.py" <<'PY'
import json, re, threading, hashlib, sqlite3, collections, zlib, random
random.seed(1)
def work(n, out):
    d = collections.Counter()
    for i in range(n):
        s = json.dumps({"k": [random.random() for _ in range(20)], "s": "x" * random.randint(1, 3000)})
        d[len(re.findall(r"[0-9]+", s))] += 1
        out.append(hashlib.sha256(zlib.compress(s.encode())).hexdigest())
    return d
outs = [[] for _ in range(4)]
ts = [threading.Thread(target=work, args=(2000, outs[i])) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
db = sqlite3.connect(":memory:")
db.execute("create table t(a, b)")
db.executemany("insert into t values (?, ?)", ((i, "v" * (i % 500)) for i in range(50000)))
big = [bytearray(random.randint(1, 100000)) for _ in range(2000)]
print("ok")
PY
SQL="pragma journal_mode=wal; create table t(id integer primary key, a text, b blob);
with recursive c(x) as (select 1 union all select x+1 from c where x < 100000)
  insert into t(a, b) select hex(randomblob(20)), randomblob(x % 700) from c;
create index ia on t(a); select count(*) from t where a like 'A%';"

# cmd WORKLOAD: the command line of a workload.
cmd() {
  case $1 in
    python3) echo "/usr/bin/python3 $T/work.py" ;;
    sqlite3) echo "sqlite3 $T/db.sqlite" ;;
    git) echo "git -C $PWD log -p --stat -n 400" ;;  # gort's own history
    *) echo "build/bench/allocbench $1 $SCALE" ;;
  esac
}

# one VARIANT WORKLOAD: prints "seconds KiB", or "crash N" / "timeout".
one() {
  local v=$1 w=$2 pre=() env=() c
  c=$(cmd "$w")
  rm -f "$T/db.sqlite"
  case $v in
    gort) pre=(env LD_PRELOAD="$LIB") ;;
    gort+leak) pre=(env LD_PRELOAD="$LIB" GORT_LEAKCHECK=exitcode=0) ;;
    lsan) pre=(env LD_PRELOAD="$LSAN" LSAN_OPTIONS=exitcode=0) ;;
    valgrind) pre=(valgrind -q --leak-check=full --error-exitcode=0) ;;
  esac
  local extra=()
  [ "$w" = sqlite3 ] && extra=("$SQL")
  # shellcheck disable=SC2086
  /usr/bin/time -f "TIME %e %M" -o "$T/time" timeout "$TIMEOUT" "${pre[@]}" $c "${extra[@]}" >/dev/null 2>"$T/err"
  local st=$?
  if [ "$st" = 124 ]; then echo timeout; return; fi
  if [ "$st" -ne 0 ]; then echo "crash $st"; return; fi
  awk '/^TIME/ { print $2, $3 }' "$T/time"
}

raw="$T/raw"
declare -A failed  # a variant that timed out or crashed on a workload is not run again on it
for w in $WORKLOADS; do
  for r in $(seq "$REPS"); do
    for v in $VARIANTS; do
      [ -n "${failed[$v/$w]:-}" ] && continue
      out=$(one "$v" "$w")
      case $out in timeout|crash*) failed[$v/$w]=1 ;; esac
      echo "$v $w $out" >>"$raw"
    done
  done
done
echo "leak check cost: median of $REPS runs, allocbench at scale $SCALE; wall seconds and max RSS MiB (ratio to gort)"
python3 - "$raw" "$VARIANTS" "$WORKLOADS" <<'PY'
import sys, statistics
raw, variants, workloads = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
res = {}
for line in open(raw):
    f = line.split()
    res.setdefault((f[0], f[1]), []).append(f[2:])
def cell(v, w, i):
    runs = res.get((v, w), [])
    ok = [r for r in runs if len(r) == 2 and r[0] not in ("crash", "timeout")]
    if not ok:
        return runs[0][0] + ("" if runs[0][0] == "timeout" else " " + runs[0][1]) if runs else "-", None
    x = statistics.median(float(r[i]) for r in ok)
    return x, x
print("%-10s" % "workload" + "".join("%24s" % v for v in variants))
for what, i, unit in (("time", 0, 1.0), ("rss", 1, 1024.0)):
    for w in workloads:
        base = cell("gort", w, i)[1]
        row = "%-10s" % (w + (" t" if i == 0 else " rss"))
        for v in variants:
            shown, x = cell(v, w, i)
            if x is None:
                row += "%24s" % shown
            else:
                r = " (%.2fx)" % (x / base) if base else ""
                row += "%24s" % (("%.2f" % (x / unit)) + r)
        print(row)
PY
