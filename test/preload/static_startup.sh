#!/usr/bin/env bash
# A program linked with libgort.a that calls only gort_malloc and gort_free
# (it references no malloc of its own, so the linker has no reason to pull
# in the libc shim) must still get what GORT_* asks for at start-up: the
# memory summary at exit with GORT_STATS=1, and a heap profile with
# GORT_HEAPPROFILE. (Not an LD_PRELOAD test; it lives here because it
# builds and runs a program, as the others do.)
set -u
LIBA="$B/libgort.a"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cat > "$T/prog.c" <<'C'
#include <string.h>
#include "gort/alloc.h"
static void *keep[1000];
int main(void) {
  for (int i = 0; i < 1000; i++) {
    keep[i] = gort_malloc(1024);
    memset(keep[i], 1, 1024);
  }
  for (int i = 0; i < 1000; i += 2) gort_free(keep[i]);
  return 0;
}
C
if ! cc -std=gnu11 -O1 -Iinclude -c "$T/prog.c" -o "$T/prog.o" 2>"$T/err" ||
   ! cc "$T/prog.o" -o "$T/prog" "$LIBA" -lpthread 2>>"$T/err"; then
  echo "FAIL preload/static_link_program_builds: $(cat "$T/err")"
  exit 0
fi
if nm "$T/prog.o" | grep -qE ' U (malloc|free|calloc|realloc)$'; then
  echo "FAIL preload/static_link_program_references_no_malloc: $(nm "$T/prog.o" | grep ' U ')"
  exit 0
fi

GORT_STATS=1 "$T/prog" 2>"$T/err"
rc=$?
if [ $rc -eq 0 ] && grep -q "gort: memory summary" "$T/err"; then
  echo "PASS preload/static_link_gort_stats_prints_the_summary_at_exit"
else
  echo "FAIL preload/static_link_gort_stats_prints_the_summary_at_exit (exit $rc; no \"gort: memory summary\" on stderr): $(head -c 300 "$T/err")"
fi

GORT_HEAPPROFILE="$T/heap.pb.gz" GORT_MEMPROFILERATE=1 "$T/prog" 2>"$T/err"
rc=$?
if [ $rc -eq 0 ] && [ -s "$T/heap.pb.gz" ] && gzip -t "$T/heap.pb.gz" 2>>"$T/err"; then
  echo "PASS preload/static_link_gort_heapprofile_writes_a_profile_at_exit"
else
  echo "FAIL preload/static_link_gort_heapprofile_writes_a_profile_at_exit (exit $rc; $( [ -e "$T/heap.pb.gz" ] && echo "profile of $(stat -c %s "$T/heap.pb.gz") bytes" || echo "no profile file")): $(head -c 300 "$T/err")"
fi
