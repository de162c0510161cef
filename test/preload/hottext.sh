#!/usr/bin/env bash
# libgort.so's layout (tools/mkhottext.sh): the functions every malloc
# program runs come first in .text, .fini sits beside .init, and so a
# program that only allocates keeps a part of the library's text resident,
# not all of it (the kernel maps a file's pages around each fault, so one
# call into every corner of the text used to map all 260 KiB).
set -u
LIB="$B/libgort.so"
fail() { echo "FAIL preload/$1: $2"; }
# A build whose linker is not GNU ld keeps the default layout, by design
# (the Makefile leaves $B/gort.ld empty then): nothing here to check.
if [ -f "$B/gort.ld" ] && [ ! -s "$B/gort.ld" ]; then
  echo "SKIP preload/hot_functions_lead_the_text (the linker's default layout: not GNU ld)"
  echo "SKIP preload/malloc_program_maps_part_of_the_text (the linker's default layout: not GNU ld)"
  exit 0
fi

# The link used the rewritten script: malloc and free lie in the first 64 KiB
# of .text, and .fini before .text, not after it.
# (readelf's "[ 9]" has a space in it: the index goes before the fields are read.)
section_addr() { readelf -SW "$LIB" | sed 's/^ *\[ *[0-9]*\] *//' | awk -v s="$1" '$1 == s { print $3; exit }'; }
text_lo=$((16#$(section_addr .text)))
fini=$((16#$(section_addr .fini)))
far=""
for f in malloc free calloc gort__start_slow; do
  a=$(nm "$LIB" | awk -v f="$f" '$3 == f { print $1; exit }')
  if [ -z "$a" ] || [ $((16#$a - text_lo)) -ge 65536 ]; then far="$far $f@${a:-none}"; fi
done
if [ -z "$far" ] && [ "$fini" -lt "$text_lo" ]; then
  echo "PASS preload/hot_functions_lead_the_text"
else
  fail hot_functions_lead_the_text "text at $(printf %x "$text_lo"), .fini at $(printf %x "$fini"), far:$far"
fi

# At run time: python3 on gort, which runs start-up, threads' caches, the
# profiler's sampling and frees of every size, maps under three quarters of
# the library's text pages (all of them before; 26-40 of 65 on our
# machines, whose kernel maps more than 64 KiB around a fault). Only for
# the build the list is made from, GCC's -O2: other compilers and the
# debug build (-O1, more checks) name and inline other functions.
producer=$(readelf --debug-dump=info "$LIB" 2>/dev/null | grep -m1 DW_AT_producer)
if ! echo "$producer" | grep -q 'GNU C.* -O2'; then
  echo "SKIP preload/malloc_program_maps_part_of_the_text (not a GCC -O2 build: the list is that build's)"
elif command -v python3 >/dev/null; then
  out=$(LD_PRELOAD="$LIB" python3 - <<'EOF'
import struct, json
data = json.dumps([str(i) * 10 for i in range(20000)])  # some work on gort's heap
present = total = 0
with open("/proc/self/maps") as m, open("/proc/self/pagemap", "rb") as pm:
    for line in m:
        f = line.split()
        if len(f) >= 6 and f[1] == "r-xp" and "libgort" in f[5]:
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            for a in range(lo, hi, 4096):
                pm.seek(a // 4096 * 8)
                present += struct.unpack("<Q", pm.read(8))[0] >> 63
                total += 1
print(present, total)
EOF
  )
  read -r present total <<< "$out"
  if [ -n "${total:-}" ] && [ "$total" -gt 0 ] && [ $((present * 4)) -lt $((total * 3)) ]; then
    echo "PASS preload/malloc_program_maps_part_of_the_text"
  else
    fail malloc_program_maps_part_of_the_text "$present of ${total:-?} text pages present"
  fi
else
  echo "SKIP preload/malloc_program_maps_part_of_the_text (no python3)"
fi
# And the simplest program: one thread, malloc and free of a few sizes,
# some samples taken and freed (the profiler at its default rate), its own
# text pages counted at the end of its work. The hot list covers all of
# that, so it stays in the list's first windows: 16 of 65 pages here. A
# function that the list does not name (a helper the compiler kept out of
# line after a change, say) costs a window of its own far away: 39 of 65
# when the profiler's block_shard was one.
if echo "$producer" | grep -q 'GNU C.* -O2' && command -v cc >/dev/null; then
  T=$(mktemp -d)
  cat > "$T/plain.c" <<'EOF'
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
  static void *keep[256];
  for (int i = 0; i < 200000; i++) {  // about 100 MB: some 200 samples
    int k = i & 255;
    free(keep[k]);
    keep[k] = malloc(16 + (size_t)(i % 61) * 16);
  }
  for (int k = 0; k < 256; k++) free(keep[k]);
  FILE *m = fopen("/proc/self/maps", "r");
  int pm = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY);
  char line[512];
  unsigned present = 0, total = 0;
  while (fgets(line, sizeof line, m)) {
    uintptr_t lo, hi;
    char perm[8];
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3 || !strstr(line, "libgort") || strcmp(perm, "r-xp")) continue;
    for (uintptr_t a = lo; a < hi; a += 4096) {
      uint64_t e = 0;
      // (syscall, not pread: gort wraps pread, and calling it would map its window)
      if (syscall(SYS_pread64, pm, &e, 8, (off_t)(a >> 12) * 8) == 8) present += (unsigned)(e >> 63);
      total++;
    }
  }
  printf("%u %u\n", present, total);
  return 0;
}
EOF
  if cc -std=gnu11 -O1 "$T/plain.c" -o "$T/plain" 2>"$T/err"; then
    read -r present total <<< "$(LD_PRELOAD="$LIB" "$T/plain")"
    if [ -n "${total:-}" ] && [ "$total" -gt 0 ] && [ $((present * 2)) -lt "$total" ]; then
      echo "PASS preload/plain_malloc_program_maps_under_half_the_text"
    else
      fail plain_malloc_program_maps_under_half_the_text "$present of ${total:-?} text pages present"
    fi
  else
    fail plain_malloc_program_maps_under_half_the_text "cc failed: $(head -c 300 "$T/err")"
  fi
  rm -rf "$T"
else
  echo "SKIP preload/plain_malloc_program_maps_under_half_the_text (not a GCC -O2 build, or no cc)"
fi
