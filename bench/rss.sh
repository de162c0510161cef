#!/usr/bin/env bash
# RSS over time after freeing a 1 GiB heap, side by side (see bench/rssbench.c).
set -u
. "$(dirname "$0")/allocators.sh"
for mode in all keep10; do
  echo "free $mode: RSS MiB (peak, right after, 1 s, 5 s, after the release call)"
  printf "%-10s %7s %7s %7s %7s %7s  %s\n" allocator peak after 1s 5s call "call"
  for a in glibc gort mimalloc jemalloc tcmalloc; do
    [ -n "${LIB[$a]}" ] && [ ! -e "${LIB[$a]}" ] && continue
    read -r peak t0 t1 t5 tc how < <(LD_PRELOAD="${LIB[$a]}" build/bench/rssbench "$mode")
    printf "%-10s %7s %7s %7s %7s %7s  %s\n" "$a" "$peak" "$t0" "$t1" "$t5" "$tc" "$how"
  done
  echo
done
