#!/usr/bin/env bash
# Runs every test program of a build (B=build dir) and every case in it,
# each in its own process; prints one line per case and, last, the totals
# as "N passed, N failed, N skipped". Usage: test/run.sh [tier ...] (unit
# api gc sched chan pool wrong stress preload; default all).
#
# Counting is honest: a program or script that exits non-zero (a crash
# before, between or after its cases, a bad option) without having reported
# a failing case counts as one failure of its own; a case that cannot run in
# this build says SKIP and is counted as skipped, never as passed.
set -u
B=${B:-build}
B=$(cd "$B" && pwd)  # absolute: tests preload $B/libgort.so from other directories
export B
tiers=${*:-unit api gc sched chan pool wrong stress preload}
out=$(mktemp)
one=$(mktemp)
trap 'rm -f "$out" "$one"' EXIT

# Runs "$@", appends its output to $out, shows the case lines, and adds a
# FAIL line for a non-zero exit that no FAIL line accounts for.
run_one() {
  local name=$1
  shift
  "$@" >"$one" 2>&1
  local st=$?
  cat "$one" >>"$out"
  grep -E '^(PASS|FAIL|SKIP) |^  ' "$one"
  if [ "$st" -ne 0 ] && ! grep -q '^FAIL ' "$one"; then
    echo "FAIL $name (exit status $st outside any case)" | tee -a "$out"
    tail -5 "$one" | sed 's/^/  /'
  fi
  if [ "$st" -eq 0 ] && ! grep -qE '^(PASS|SKIP) ' "$one"; then
    echo "FAIL $name (ran no case)" | tee -a "$out"
  fi
}

for tier in $tiers; do
  if [ "$tier" = gc ] && [ "${MODE:-release}" = tsan ]; then
    # ThreadSanitizer holds asynchronous signals back until the thread
    # enters an intercepted call, so the collector's stop signal can wait
    # long for a thread that spins or blocks. The graph mutator, whose
    # threads do both for minutes, is tested in the release and debug
    # builds only; the other collector tests run here, each case that
    # waits on such a thread skipped with its reason.
    for bin in "$B"/test/gc/test_gc_mutator; do
      [ -x "$bin" ] && [ -f "$bin" ] || continue
      echo "SKIP gc/$(basename "$bin") (ThreadSanitizer delays the collector's stop signal)" | tee -a "$out"
    done
  fi
  if [ "$tier" = preload ]; then
    for t in test/preload/*.sh; do
      [ -e "$t" ] || continue
      if [ "${MODE:-release}" = tsan ]; then
        echo "SKIP preload/$(basename "$t" .sh) (ThreadSanitizer build: no libc shim to preload)" | tee -a "$out"
        continue
      fi
      run_one "preload/$(basename "$t" .sh)" env B="$B" bash "$t"
    done
    continue
  fi
  for bin in "$B"/test/"$tier"/*; do
    [ -x "$bin" ] && [ -f "$bin" ] || continue
    case "$bin" in *.o) continue ;; esac
    if [ "${MODE:-release}" = tsan ] && [ "$tier/$(basename "$bin")" = gc/test_gc_mutator ]; then continue; fi
    run_one "$tier/$(basename "$bin")" timeout 900 "$bin"
  done
done
passed=$(grep -c '^PASS ' "$out")
failed=$(grep -c '^FAIL ' "$out")
skipped=$(grep -c '^SKIP ' "$out")
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
