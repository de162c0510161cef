#!/usr/bin/env bash
# Real programs from Debian under LD_PRELOAD=$B/libgort.so: python3,
# sqlite3 and git on generated workloads. Prints PASS/FAIL/SKIP lines.
set -u
LIB="$B/libgort.so"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
if [ -z "$PY" ]; then
  echo "SKIP preload/python3_workloads (python3 not installed)"
  PY=false  # the python3 cases below are skipped
fi

check() {  # name, command...
  local name=$1
  shift
  if out=$("$@" 2>&1); then
    if echo "$out" | grep -q "gort: "; then
      echo "FAIL preload/$name (gort printed: $(echo "$out" | grep 'gort: ' | head -2))"
    else
      echo "PASS preload/$name"
    fi
  else
    # The last non-empty lines (python's test runner ends with blank ones),
    # and all of it in a file beside the build.
    echo "FAIL preload/$name (exit $?): $(echo "$out" | grep -v '^[[:space:]]*$' | tail -12)"
    echo "$out" >"$B/preload_$name.out" 2>/dev/null
  fi
}

check_py() { [ "$PY" = false ] || check "$@"; }

cat > "$T/work.py" <<'PY'
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
ts = [threading.Thread(target=work, args=(3000, outs[i])) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
db = sqlite3.connect(":memory:")
db.execute("create table t(a, b)")
db.executemany("insert into t values (?, ?)", ((i, "v" * (i % 500)) for i in range(50000)))
assert db.execute("select count(*), sum(length(b)) from t").fetchone()[0] == 50000
big = [bytearray(random.randint(1, 100000)) for _ in range(2000)]
del big
assert sum(len(o) for o in outs) == 12000
print("ok")
PY
check_py python3_workload env LD_PRELOAD="$LIB" "$PY" "$T/work.py"
check_py python3_workload_hardened env GORT_DEBUG=harden=1 LD_PRELOAD="$LIB" "$PY" "$T/work.py"
check_py python3_unittest env LD_PRELOAD="$LIB" "$PY" -c "
import unittest, doctest, json, collections
class T(unittest.TestCase):
    def test_json(self):
        for i in range(2000): self.assertEqual(json.loads(json.dumps({'a': [i] * i})), {'a': [i] * i})
    def test_dicts(self):
        d = {str(i): list(range(i % 100)) for i in range(100000)}
        self.assertEqual(len(d), 100000)
r = unittest.TextTestRunner(verbosity=0).run(unittest.defaultTestLoader.loadTestsFromTestCase(T))
raise SystemExit(0 if r.wasSuccessful() else 1)"

# Modules of python3's own test suite (Debian's libpython3.11-testsuite).
# SIGINT back to its default first: a suite started in the background by
# a non-interactive shell inherits it ignored, and then test_threading's
# interrupt_main cases fail with or without gort (seen in every
# background clean-clone run of 2026-12-05; perl-base is essential).
if "$PY" -c "import test.test_json" 2>/dev/null; then
  check python3_test_suite_modules perl -e '$SIG{INT} = "DEFAULT"; exec @ARGV or die "exec: $!"' \
    env LD_PRELOAD="$LIB" "$PY" -m test -q \
    test_json test_re test_dict test_list test_threading test_collections test_bytes
else
  echo "SKIP preload/python3_test_suite_modules (libpython3-testsuite not installed)"
fi

if command -v sqlite3 >/dev/null; then
  check sqlite3_workload env LD_PRELOAD="$LIB" sqlite3 "$T/db.sqlite" "
    pragma journal_mode=wal;
    create table t(id integer primary key, a text, b blob);
    with recursive c(x) as (select 1 union all select x+1 from c where x < 200000)
      insert into t(a, b) select hex(randomblob(20)), randomblob(x % 700) from c;
    create index ia on t(a);
    delete from t where id % 3 = 0;
    vacuum;
    select count(*) from t;
    pragma integrity_check;"
else
  echo "SKIP preload/sqlite3_workload (sqlite3 not installed)"
fi

if command -v git >/dev/null; then
  (
    cd "$T" && mkdir repo && cd repo || exit 1
    export LD_PRELOAD="$LIB" GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t
    git init -q . || exit 1
    for c in $(seq 1 20); do
      for f in $(seq 1 30); do seq $((c * f)) > "f$f.txt"; done
      git add -A && git commit -qm "commit $c" || exit 1
    done
    git gc -q && git fsck --strict 2>&1 && test "$(git rev-list --count HEAD)" = 20 &&
      git log -p | wc -l >/dev/null
  ) >"$T/git.log" 2>&1 && ! grep -q "gort: " "$T/git.log" && echo "PASS preload/git_repository" ||
    echo "FAIL preload/git_repository: $(tail -3 "$T/git.log")"
else
  echo "SKIP preload/git_repository (git not installed)"
fi
