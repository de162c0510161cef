#!/usr/bin/env bash
# Real programs from Debian on each allocator (LD_PRELOAD): CPU time
# (user + system) and peak RSS, median of REPS runs, side by side.
# Workloads: a python3 script (JSON, regexes, dicts, sqlite3, threads),
# sqlite3 building and querying a 300k-row database, git committing and
# repacking a generated repository.
set -u
REPS=${REPS:-3}
. "$(dirname "$0")/allocators.sh"
ALLOCS=${ALLOCS:-"glibc gort mimalloc jemalloc tcmalloc"}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cat > "$T/py.py" <<'PY'
import json, re, collections, sqlite3, threading, random
random.seed(7)
def work(out):
    c = collections.Counter()
    for i in range(40000):
        s = json.dumps({"id": i, "tags": ["t%d" % (i % 97)] * (i % 13), "v": random.random()})
        c.update(re.findall(r"t\d+", s))
        out.append(json.loads(s))
ts, outs = [], [[] for _ in range(2)]
for o in outs:
    t = threading.Thread(target=work, args=(o,)); t.start(); ts.append(t)
[t.join() for t in ts]
db = sqlite3.connect(":memory:")
db.execute("create table t(k, v)")
db.executemany("insert into t values (?, ?)", ((i, "x" * (i % 300)) for i in range(100000)))
db.execute("select k, count(*) from t group by k % 1000").fetchall()
d = {i: [str(j) for j in range(i % 50)] for i in range(100000)}
PY
cat > "$T/sql.sql" <<'SQL'
create table t(id integer primary key, a text, b blob);
with recursive c(x) as (select 1 union all select x+1 from c where x < 300000)
  insert into t(a, b) select hex(randomblob(16)), randomblob(x % 500) from c;
create index ia on t(a);
select count(*), sum(length(b)) from t where a > '8';
select a, count(*) from t group by substr(a, 1, 3) order by 2 desc limit 5;
SQL
cat > "$T/git.sh" <<'SH'
set -e
cd "$1" && rm -rf repo && mkdir repo && cd repo
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b
git init -q .
for c in $(seq 1 30); do
  for f in $(seq 1 40); do seq $((c * f)) $((c * f + 300)) > "f$f.txt"; done
  git add -A && git commit -qm "c$c"
done
git repack -adq && git log -p > /dev/null && git fsck --no-progress > /dev/null
SH

# Runs a command REPS times; prints median "cpu_seconds peak_rss_kib".
measure() {
  "$PY" - "$REPS" "$@" <<'PY'
import os, resource, statistics, subprocess, sys
reps, cmd = int(sys.argv[1]), sys.argv[2:]
cpu, rss = [], []
for _ in range(reps):
    pid = os.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    _, status, ru = os.wait4(pid, 0)
    if status != 0:
        print("nan 0"); sys.exit(0)
    cpu.append(ru.ru_utime + ru.ru_stime); rss.append(ru.ru_maxrss)
print("%.3f %d" % (statistics.median(cpu), statistics.median(rss)))
PY
}

printf "%-8s" program; for a in $ALLOCS; do printf "%24s" "$a"; done; echo
printf "%-8s" ""; for a in $ALLOCS; do printf "%24s" "CPU s / peak RSS MiB"; done; echo
for prog in python3 sqlite3 git; do
  printf "%-8s" "$prog"
  for a in $ALLOCS; do
    case $prog in
      python3) cmd=(env LD_PRELOAD="${LIB[$a]}" "$PY" "$T/py.py") ;;
      sqlite3) cmd=(sh -c "rm -f '$T/db'; LD_PRELOAD='${LIB[$a]}' sqlite3 '$T/db' < '$T/sql.sql' > /dev/null") ;;
      git) cmd=(env LD_PRELOAD="${LIB[$a]}" bash "$T/git.sh" "$T") ;;
    esac
    read -r cpu rss < <(measure "${cmd[@]}")
    printf "%24s" "$(printf "%.2f / %.1f" "$cpu" "$(echo "$rss / 1024" | bc -l)")"
  done
  echo
done
