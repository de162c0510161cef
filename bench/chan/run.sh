#!/usr/bin/env bash
# Channels, select and mutexes: gort and Go 1.19 side by side, in one run
# (#11). Both at 2 Ps (GORT_MAXPROCS=2, GOMAXPROCS=2). Usage: run.sh [scale]
# after make bench-chan. Go is skipped with a message if it was not built.
set -u
B=${B:-build/bench/chan}
SCALE=${1:-1}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
GORT_MAXPROCS=2 "$B/chanbench" "$SCALE" >"$T/gort" || { echo "chanbench failed" >&2; exit 1; }
if [ -x "$B/chango" ]; then
  GOMAXPROCS=2 "$B/chango" "$SCALE" >"$T/go"
else
  echo "bench-chan: Go skipped (no $B/chango: apt-get install golang-go)" >&2
  : >"$T/go"
fi
printf '%-18s %14s %14s %-14s %s\n' workload gort go unit "gort vs go"
while read -r name val unit; do
  g=$(awk -v n="$name" '$1 == n { print $2 }' "$T/go")
  ratio=-
  if [ -n "$g" ]; then
    # ns/... : lower is better; M.../s : higher is better. Print how many
    # times better gort is (above 1: gort better).
    case $unit in
      ns/*) ratio=$(awk -v a="$val" -v b="$g" 'BEGIN { printf "%.2fx", b / a }') ;;
      *) ratio=$(awk -v a="$val" -v b="$g" 'BEGIN { printf "%.2fx", a / b }') ;;
    esac
  fi
  printf '%-18s %14s %14s %-14s %s\n' "$name" "$val" "${g:--}" "$unit" "$ratio"
done <"$T/gort"
