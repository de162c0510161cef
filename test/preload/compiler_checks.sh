#!/usr/bin/env bash
# What the allocation attributes (include/gort/api.h) buy a program built
# against gort's headers: a dropped result is a warning, an overflow the
# compiler can see is a warning (-Wstringop-overflow), and one it cannot
# see is caught at run time by _FORTIFY_SOURCE. (Not an LD_PRELOAD test; it
# lives here because it builds and runs programs, as the others do.)
set -u
LIBA="$B/libgort.a"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
CC="cc -std=gnu11 -Iinclude"

cat > "$T/unused.c" <<'C'
#include "gort/alloc.h"
int main(void) { gort_malloc(10); return 0; }
C
if $CC -c -Werror=unused-result "$T/unused.c" -o "$T/unused.o" 2>"$T/err"; then
  echo "FAIL preload/a_dropped_gort_malloc_result_is_a_warning (compiled cleanly)"
elif grep -q "ignoring return value of .gort_malloc." "$T/err"; then
  echo "PASS preload/a_dropped_gort_malloc_result_is_a_warning"
else
  echo "FAIL preload/a_dropped_gort_malloc_result_is_a_warning: $(head -3 "$T/err")"
fi

cat > "$T/overflow.c" <<'C'
#include <string.h>
#include "gort/alloc.h"
char *f(void) { char *p = gort_malloc(10); if (p) memset(p, 0, 20); return p; }
C
if $CC -O2 -c -Werror=stringop-overflow "$T/overflow.c" -o "$T/overflow.o" 2>"$T/err"; then
  echo "FAIL preload/an_overflow_of_a_gort_block_is_a_compile_time_warning (compiled cleanly)"
elif grep -q "stringop-overflow" "$T/err"; then
  echo "PASS preload/an_overflow_of_a_gort_block_is_a_compile_time_warning"
else
  echo "FAIL preload/an_overflow_of_a_gort_block_is_a_compile_time_warning: $(head -3 "$T/err")"
fi

cat > "$T/fortify.c" <<'C'
#include <stdio.h>
#include <string.h>
#include "gort/alloc.h"
int main(int argc, char **argv) {
  char *p = gort_malloc(8);
  if (p == NULL) return 1;
  strcpy(p, argc > 1 ? argv[1] : "ok");  /* the size is known only at run time */
  puts(p);
  gort_free(p);
  return 0;
}
C
if ! $CC -O2 -D_FORTIFY_SOURCE=2 "$T/fortify.c" -o "$T/fortify" "$LIBA" -lpthread 2>"$T/err"; then
  echo "FAIL preload/fortify_source_catches_an_overflow_of_a_gort_block (cannot build): $(head -3 "$T/err")"
else
  ok=$("$T/fortify" 2>&1)
  # (In an inner shell whose stderr is dropped: bash reports the abort.)
  rc=$(bash -c '"$0" "far more than eight bytes" >"$1" 2>&1; echo $?' "$T/fortify" "$T/out" 2>/dev/null)
  if [ "$ok" = ok ] && [ $rc -eq 134 ] && grep -q "buffer overflow detected" "$T/out"; then
    echo "PASS preload/fortify_source_catches_an_overflow_of_a_gort_block"
  else
    echo "FAIL preload/fortify_source_catches_an_overflow_of_a_gort_block (short run: '$ok'; long run exit $rc): $(head -3 "$T/out")"
  fi
fi
