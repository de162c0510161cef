#!/usr/bin/env bash
# gort runs under `ulimit -v 30000` wherever glibc does (#15): it reserves
# little address space at start (4 MiB of heap, a 1 MiB page map) and
# grows on demand, and when a reservation is refused it tries one of just
# the request, so a program filling its address space gets about as much
# from gort as from glibc.
set -u
LIB="$B/libgort.so"
LIMIT_KB=30000
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

limited() { (ulimit -v "$LIMIT_KB" && "$@") >/dev/null 2>"$T/err"; }

ran=0
for cmd in "ls /" "sort /etc/passwd" "awk 1 /etc/passwd" "perl -e 1" "python3 -c pass" "git --version"; do
  set -- $cmd
  command -v "$1" >/dev/null || continue
  limited "$@" || continue  # glibc cannot run it in this much either
  ran=$((ran + 1))
  if limited env LD_PRELOAD="$LIB" "$@"; then
    echo "PASS preload/runs_under_ulimit_v_${LIMIT_KB}_where_glibc_does: $cmd"
  else
    echo "FAIL preload/runs_under_ulimit_v_${LIMIT_KB}_where_glibc_does: $cmd: $(head -3 "$T/err")"
  fi
done
[ "$ran" -gt 0 ] || echo "SKIP preload/runs_under_ulimit_v_${LIMIT_KB}_where_glibc_does (no program runs in $LIMIT_KB KB under glibc here)"

# Allocates blocks of the size given until malloc fails; prints the MiB it got.
cat > "$T/fill.c" <<'C'
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  size_t size = strtoul(argv[1], NULL, 0), total = 0;
  void *p;
  while ((p = malloc(size)) != NULL) {
    memset(p, 1, size);
    total += size;
  }
  if (errno != ENOMEM) return 2;
  printf("%zu\n", total >> 20);
  return 0;
}
C
cc -O1 -o "$T/fill" "$T/fill.c" || { echo "FAIL preload/fill (cannot compile)"; exit 0; }
for size in 1000 200000; do
  glibc=$( (ulimit -v "$LIMIT_KB" && "$T/fill" "$size") 2>/dev/null)
  gort=$( (ulimit -v "$LIMIT_KB" && LD_PRELOAD="$LIB" "$T/fill" "$size") 2>&1)
  if [ -n "$glibc" ] && [[ "$gort" =~ ^[0-9]+$ ]] && [ "$gort" -ge $((glibc * 3 / 4)) ]; then
    echo "PASS preload/fills_the_address_space_under_ulimit_v_as_glibc_does ($size-byte blocks: gort $gort MiB, glibc $glibc MiB)"
  else
    echo "FAIL preload/fills_the_address_space_under_ulimit_v_as_glibc_does ($size-byte blocks: gort '$gort' MiB, glibc '$glibc' MiB)"
  fi
done

# With every allocation sampled, the profiler's registry cannot grow near
# the limit: a block it could not record must stay an ordinary block, whose
# free is no "double free" (it was, once the registry was sharded).
cat > "$T/fillfree.c" <<'C'
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  size_t size = strtoul(argv[1], NULL, 0), n = 0, cap = 1 << 20;
  void **all = malloc(cap * sizeof *all);
  void *p;
  if (all == NULL) return 3;
  while (n < cap && (p = malloc(size)) != NULL) {
    memset(p, 1, size);
    all[n++] = p;
  }
  if (n < cap && errno != ENOMEM) return 2;
  for (size_t i = 0; i < n; i++) free(all[i]);
  printf("%zu\n", n);
  return 0;
}
C
cc -O1 -o "$T/fillfree" "$T/fillfree.c" || { echo "FAIL preload/fillfree (cannot compile)"; exit 0; }
out=$( (ulimit -v "$LIMIT_KB" && GORT_MEMPROFILERATE=1 LD_PRELOAD="$LIB" "$T/fillfree" 100) 2>&1)
if [[ "$out" =~ ^[0-9]+$ ]] && [ "$out" -gt 1000 ]; then
  echo "PASS preload/sampling_everything_under_ulimit_v_frees_what_it_could_not_record ($out blocks)"
else
  echo "FAIL preload/sampling_everything_under_ulimit_v_frees_what_it_could_not_record: $(echo "$out" | head -3)"
fi
