#!/usr/bin/env bash
# memcheck checks programs running on gort: with the annotated library
# (make VALGRIND=1), a use after free and a leak are reported as with glibc,
# and a clean program runs clean. --soname-synonyms=somalloc=nouserintercepts
# stops valgrind from replacing gort's malloc with its own: the test checks
# that the block memcheck names lies in gort's heap (from 0x5c300000000).
set -u
VLIB="$B/../build/valgrind/libgort.so"
[ -f "$VLIB" ] || VLIB="$(dirname "$B")/valgrind/libgort.so"
[ -f "$VLIB" ] || VLIB=build/valgrind/libgort.so
if ! command -v valgrind >/dev/null || [ ! -f "$VLIB" ]; then
  echo "SKIP preload/valgrind (valgrind or build/valgrind/libgort.so missing)"
  exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat > "$T/bad.c" <<'C'
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  char *p = malloc(64);
  strcpy(p, "hello");
  free(p);
  volatile char c = p[3];          /* use after free */
  void *first = malloc(1000);      /* starts a span: see src/alloc/vg.h */
  void *leak = malloc(1000);       /* never freed */
  leak = NULL;
  free(first);
  char *q = calloc(10, 10);
  q = realloc(q, 5000);
  free(q);
  return c == 'l' ? 0 : 0;
}
C
cat > "$T/good.c" <<'C'
#include <stdlib.h>
#include <string.h>
int main(void) {
  for (int i = 0; i < 1000; i++) { char *p = malloc(i + 1); memset(p, 1, i + 1); p = realloc(p, 2 * i + 2); free(p); }
  void *a = aligned_alloc(256, 1000); free(a);
  return 0;
}
C
cc -g -O0 -o "$T/bad" "$T/bad.c" && cc -g -O0 -o "$T/good" "$T/good.c" || { echo "FAIL preload/valgrind (compile)"; exit 0; }
VG="valgrind --soname-synonyms=somalloc=nouserintercepts --leak-check=full"
out=$(LD_PRELOAD="$VLIB" $VG "$T/bad" 2>&1)
if echo "$out" | grep -q "Invalid read of size 1" && echo "$out" | grep -qE "Address 0x5c[0-9a-f]{9} .* free'd" &&
   echo "$out" | grep -q "1,024 bytes in 1 blocks are definitely lost"; then
  echo "PASS preload/valgrind_reports_use_after_free_and_leaks_on_gort"
else
  echo "FAIL preload/valgrind_reports_use_after_free_and_leaks_on_gort: $(echo "$out" | tail -15)"
fi
out=$(LD_PRELOAD="$VLIB" $VG --error-exitcode=9 "$T/good" 2>&1)
if [ $? -eq 0 ] && echo "$out" | grep -q "ERROR SUMMARY: 0 errors"; then
  echo "PASS preload/valgrind_is_clean_on_a_clean_program"
else
  echo "FAIL preload/valgrind_is_clean_on_a_clean_program: $(echo "$out" | tail -15)"
fi
