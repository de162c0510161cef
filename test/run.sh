#!/usr/bin/env bash
# Runs every test program of a build (B=build dir) and every case in it,
# each in its own process; prints one line per case and, last, the totals
# as "N passed, N failed". Usage: test/run.sh [tier ...] (unit api wrong
# stress preload; default all).
set -u
B=${B:-build}
B=$(cd "$B" && pwd)  # absolute: tests preload $B/libgort.so from other directories
export B
tiers=${*:-unit api wrong stress preload}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for tier in $tiers; do
  if [ "$tier" = preload ]; then
    [ "${MODE:-release}" = tsan ] && continue
    for t in test/preload/*.sh; do
      [ -e "$t" ] || continue
      B="$B" bash "$t" 2>&1 | tee -a "$out" | grep -E '^(PASS|FAIL|SKIP) ' || true
    done
    continue
  fi
  for bin in "$B"/test/"$tier"/*; do
    [ -x "$bin" ] && [ -f "$bin" ] || continue
    case "$bin" in *.o) continue ;; esac
    timeout 900 "$bin" 2>&1 | tee -a "$out" | grep -E '^(PASS|FAIL) |^  ' || true
  done
done
passed=$(grep -c '^PASS ' "$out")
failed=$(grep -c '^FAIL ' "$out")
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
