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
  void *first = malloc(1000);      /* starts a span: see src/base/vg.h */
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
# Goroutines, a channel and collected objects, with collections: gort's
# collector writes free slots and reads what conservative marking reads,
# which memcheck reported by the thousand until its entry points and
# threads suspended reporting (src/base/vg.h).
cat > "$T/runtime.c" <<'C'
#include <gort/alloc.h>
#include <gort/chan.h>
#include <gort/gc.h>
#include <gort/sched.h>
#include <gort/sync.h>
#include <stdio.h>
#include <string.h>
typedef struct node { struct node *next; long v; char *name; } node;
static gort_chan_t *c;
static gort_waitgroup_t wg;
static void producer(void *arg) {
  (void)arg;
  for (long i = 0; i < 2000; i++) {
    node *n = gort_gc_alloc(sizeof *n);
    n->v = i;
    n->name = gort_gc_alloc_noscan(i % 2 ? 5 : 40);
    strcpy(n->name, "node");
    gort_chan_send(c, &n);
  }
  gort_waitgroup_done(&wg);
}
int main(void) {
  c = gort_chan_make(sizeof(node *), 16);
  gort_waitgroup_add(&wg, 1);
  gort_go(producer, NULL);
  node *head = NULL;
  for (long i = 0; i < 2000; i++) {
    node *n;
    gort_chan_recv(c, &n);
    if (i % 2 == 0) { n->next = head; head = n; }
    if (i % 500 == 0) gort_gc_collect();
  }
  gort_waitgroup_wait(&wg);
  gort_chan_free(c);  /* a collected object freed by hand */
  void **keep = gort_gc_alloc_uncollectable(64 * sizeof(void *));  /* freed with gort_free */
  for (int k = 0; k < 20000; k++) { char *junk = gort_gc_alloc(100); junk[0] = 1; keep[k % 64] = junk; }
  gort_gc_collect();
  long sum = 0;
  for (node *n = head; n; n = n->next) { sum += n->v; if (strcmp(n->name, "node") != 0) return 2; }
  for (int k = 0; k < 64; k++) if (((char *)keep[k])[0] != 1) return 3;  /* kept alive by keep */
  gort_free(keep);
  return sum == 999000 ? 0 : 1;
}
C
cat > "$T/gcbad.c" <<'C'
#include <gort/alloc.h>
#include <gort/gc.h>
int main(void) {
  char *u = gort_gc_alloc_uncollectable(48);  /* the program's to free */
  gort_free(u);
  volatile char c1 = u[5];                     /* use after free */
  char *g = gort_gc_alloc(48);                 /* collected, freed by hand */
  gort_free(g);
  volatile char c2 = g[20];                    /* use after free (past the link gort keeps) */
  void *first = gort_gc_alloc_uncollectable(200);  /* starts a span: see src/base/vg.h */
  void *volatile leak = gort_gc_alloc_uncollectable(200);  /* never freed */
  leak = NULL;
  gort_free(first);
  return c1 + c2 == 0 ? 0 : 0;
}
C
cc -g -O0 -o "$T/bad" "$T/bad.c" && cc -g -O0 -o "$T/good" "$T/good.c" &&
  cc -g -O0 -Iinclude -o "$T/runtime" "$T/runtime.c" "$(dirname "$VLIB")/libgort-valgrind.so.0" \
    -Wl,-rpath,"$(cd "$(dirname "$VLIB")" && pwd)" -lpthread &&
  cc -g -O0 -Iinclude -o "$T/gcbad" "$T/gcbad.c" "$(dirname "$VLIB")/libgort-valgrind.so.0" \
    -Wl,-rpath,"$(cd "$(dirname "$VLIB")" && pwd)" -lpthread || { echo "FAIL preload/valgrind (compile)"; exit 0; }
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
out=$($VG --suppressions=docs/valgrind.supp --error-exitcode=9 "$T/runtime" 2>&1)
if [ $? -eq 0 ] && echo "$out" | grep -q "ERROR SUMMARY: 0 errors"; then
  echo "PASS preload/valgrind_is_clean_on_goroutines_channels_and_collected_objects"
else
  echo "FAIL preload/valgrind_is_clean_on_goroutines_channels_and_collected_objects: $(echo "$out" | grep -A8 -m3 -E "Invalid|uninitialised|lost in" ; echo "$out" | tail -3)"
fi
out=$($VG --suppressions=docs/valgrind.supp "$T/gcbad" 2>&1)
if [ "$(echo "$out" | grep -c "Invalid read of size 1")" -eq 2 ] &&
   echo "$out" | grep -qE "20[0-9] bytes in 1 blocks are definitely lost"; then
  echo "PASS preload/valgrind_reports_use_after_free_and_leaks_of_collector_objects"
else
  echo "FAIL preload/valgrind_reports_use_after_free_and_leaks_of_collector_objects: $(echo "$out" | grep -E "Invalid|lost" ; echo "$out" | tail -3)"
fi
