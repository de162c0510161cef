#!/usr/bin/env bash
# Packaging, end to end (#15): `make install` of this build's variant into
# a scratch DESTDIR with Debian's LIBDIR; the files, the links and the
# SONAME; programs built with the flags of the installed .pc, dynamically
# and statically (a C program whose only allocation is strdup's, inside
# libc, and a C++ program), each checked to run on gort (nm shows gort's
# malloc, GORT_STATS prints the summary); the other mode (debug or release)
# built from nothing by `make install` and installed beside the first under
# its own name, with CFLAGS and LDFLAGS reaching its library; the Valgrind
# build beside them; and `make uninstall` taking everything away again.
set -u
unset MAKEFLAGS MFLAGS MAKELEVEL  # a make of our own, not a part of the caller's
MODE=${MODE:-release}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
D="$T/dest"
LIBDIR=/usr/lib/x86_64-linux-gnu
DIRS="DESTDIR=$D PREFIX=/usr LIBDIR=$LIBDIR"
N=$(make -s print-LIBNAME MODE="$MODE")
V=$(make -s print-VERSION MODE="$MODE")
MAJOR=${V%%.*}
L="$D$LIBDIR"

fail() { echo "FAIL preload/$1: $2"; }

if ! make -s install MODE="$MODE" $DIRS >"$T/log" 2>&1; then
  fail install_puts_every_file_in_place "make install failed: $(tail -5 "$T/log")"
  exit 0
fi

# ---- the files -------------------------------------------------------------------
missing=""
[ -f "$L/lib$N.so.$V" ] && [ ! -L "$L/lib$N.so.$V" ] || missing+=" lib$N.so.$V"
[ "$(readlink "$L/lib$N.so.$MAJOR")" = "lib$N.so.$V" ] || missing+=" lib$N.so.$MAJOR->lib$N.so.$V"
[ "$(readlink "$L/lib$N.so")" = "lib$N.so.$MAJOR" ] || missing+=" lib$N.so->lib$N.so.$MAJOR"
[ -f "$L/lib$N.a" ] || missing+=" lib$N.a"
for h in include/gort.h include/gort/*.h; do [ -f "$D/usr/$h" ] || missing+=" $h"; done
[ -f "$D/usr/share/man/man3/gort.3" ] || missing+=" man3/gort.3"
[ -f "$D/usr/share/man/man7/gort.7" ] || missing+=" man7/gort.7"
[ -f "$D/usr/share/gort/valgrind.supp" ] || missing+=" share/gort/valgrind.supp"
grep -qx "libdir=$LIBDIR" "$L/pkgconfig/$N.pc" 2>/dev/null || missing+=" $N.pc with libdir=$LIBDIR"
if [ -z "$missing" ]; then
  echo "PASS preload/install_puts_every_file_in_place ($N $V in $LIBDIR)"
else
  fail install_puts_every_file_in_place "missing or wrong:$missing; installed: $(cd "$D" && find . | tr '\n' ' ')"
fi
soname=$(readelf -d "$L/lib$N.so.$V" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" = "lib$N.so.$MAJOR" ]; then
  echo "PASS preload/the_shared_library_has_the_soname_lib${N}_so_$MAJOR"
else
  fail "the_shared_library_has_the_soname_lib${N}_so_$MAJOR" "SONAME '$soname'"
fi

# ---- the flags of the installed .pc ------------------------------------------------
pc() {  # pkg-config, or the same read by hand where it is not installed
  if command -v pkg-config >/dev/null; then
    PKG_CONFIG_PATH="$L/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$D" pkg-config "$@" "$N"
    return
  fi
  local f="$L/pkgconfig/$N.pc" out="-I$D/usr/include -L$L -l$N"
  for a in "$@"; do
    [ "$a" = --static ] && out+=" $(sed -n 's/^Libs.private: //p' "$f")"
  done
  echo "$out"
}
CFLAGS_PC=$(pc --cflags)
LIBS_STATIC=$(pc --static --libs)
LIBS=$(pc --libs)

cat > "$T/version.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gort.h>
int main(void) {
  char *p = malloc(100);
  printf("%s %s\n", gort_version(), GORT_VERSION);
  free(p);
  return strcmp(gort_version(), GORT_VERSION) != 0;
}
C
if ! cc $CFLAGS_PC "$T/version.c" -o "$T/version" $LIBS 2>"$T/err"; then
  fail a_program_links_with_the_pc_flags_and_records_the_soname "cannot build: $(head -3 "$T/err")"
else
  needed=$(readelf -d "$T/version" | sed -n 's/.*(NEEDED).*\[\(libgort.*\)\]/\1/p')
  out=$(LD_LIBRARY_PATH="$L" "$T/version" 2>&1)
  if [ $? -eq 0 ] && [ "$needed" = "lib$N.so.$MAJOR" ] && [ "$out" = "$V $V" ]; then
    echo "PASS preload/a_program_links_with_the_pc_flags_and_records_the_soname"
  else
    fail a_program_links_with_the_pc_flags_and_records_the_soname "NEEDED '$needed'; printed '$out'"
  fi
fi

# ---- static linking ----------------------------------------------------------------
cat > "$T/strdup_only.c" <<'C'
#include <stdio.h>
#include <string.h>
int main(void) {
  char *s = strdup("copied by strdup");  /* the program calls no allocation function itself */
  puts(s);
  return 0;
}
C
cat > "$T/cxx.cc" <<'C'
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>
int main() {
  std::vector<std::string> v;  // operator new
  for (int i = 0; i < 1000; i++) v.push_back(std::string(100, 'x'));
  try {
    throw std::runtime_error("thrown");  // libstdc++ mallocs the exception: one heap for both
  } catch (const std::exception &e) {
    std::cout << v.size() << " " << e.what() << std::endl;
  }
  return 0;
}
C
# Checks that program $2 runs on gort: gort's malloc in its symbols, and the
# summary with at least $3 mallocs under GORT_STATS=1.
check_on_gort() {
  local name=$1 prog=$2 min=$3
  local syms
  syms=$(nm "$prog" 2>/dev/null | awk '$3 == "malloc" || $3 == "gort_malloc" { print $2 $3 }' | sort | tr '\n' ' ')
  GORT_STATS=1 "$prog" >"$T/out" 2>&1
  local rc=$? mallocs
  mallocs=$(awk '$2 == "Mallocs" { print $3 }' "$T/out")
  if [ $rc -eq 0 ] && [ "$syms" = "Tgort_malloc Tmalloc " ] &&
     grep -q "^gort: memory summary of pid" "$T/out" && [ "${mallocs:-0}" -ge "$min" ]; then
    echo "PASS preload/$name (Mallocs $mallocs)"
  else
    fail "$name" "exit $rc; nm: '$syms'; $(head -3 "$T/out")"
  fi
}
# The archive into a dynamically linked program: -l$N would take the .so.
LIBS_ARCHIVE=$(echo "$LIBS_STATIC" | sed "s|-l$N\b|$L/lib$N.a|")
if cc $CFLAGS_PC "$T/strdup_only.c" -o "$T/strdup_archive" $LIBS_ARCHIVE 2>"$T/err"; then
  check_on_gort static_archive_strdup_only_program_runs_on_gort "$T/strdup_archive" 1
else
  fail static_archive_strdup_only_program_runs_on_gort "cannot build: $(head -3 "$T/err")"
fi
if c++ $CFLAGS_PC "$T/cxx.cc" -o "$T/cxx_archive" $LIBS_ARCHIVE 2>"$T/err"; then
  check_on_gort static_archive_cxx_program_runs_on_gort "$T/cxx_archive" 1001
else
  fail static_archive_cxx_program_runs_on_gort "cannot build: $(head -3 "$T/err")"
fi
# Without the .pc's flags: any of gort that the program pulls in (here its
# operator new) brings the libc names along (base/start.c's anchor).
if c++ $CFLAGS_PC "$T/cxx.cc" -o "$T/cxx_bare" "$L/lib$N.a" -lpthread 2>"$T/err"; then
  check_on_gort static_archive_alone_cxx_program_gets_gorts_malloc_too "$T/cxx_bare" 1001
else
  fail static_archive_alone_cxx_program_gets_gorts_malloc_too "cannot build: $(head -3 "$T/err")"
fi
# Fully static (-static), where libc.a and libstdc++.a are installed.
if cc -static $CFLAGS_PC "$T/strdup_only.c" -o "$T/strdup_static" $LIBS_STATIC 2>"$T/err"; then
  check_on_gort fully_static_strdup_only_program_runs_on_gort "$T/strdup_static" 1
elif grep -q "cannot find -lc\b" "$T/err"; then
  echo "SKIP preload/fully_static_strdup_only_program_runs_on_gort (no libc.a)"
else
  fail fully_static_strdup_only_program_runs_on_gort "cannot build: $(head -3 "$T/err")"
fi
if c++ -static $CFLAGS_PC "$T/cxx.cc" -o "$T/cxx_static" $LIBS_STATIC 2>"$T/err"; then
  check_on_gort fully_static_cxx_program_runs_on_gort "$T/cxx_static" 1001
elif grep -qE "cannot find -l(c|stdc\+\+)\b" "$T/err"; then
  echo "SKIP preload/fully_static_cxx_program_runs_on_gort (no libc.a or libstdc++.a)"
else
  fail fully_static_cxx_program_runs_on_gort "cannot build: $(head -3 "$T/err")"
fi
# A fully static program that starts threads and frees enough to wake the
# scavenger (a thread of gort's own): each needs libc's pthread_create behind
# gort's, which a static link once left out ("cannot find the real
# pthread_create" at the first thread).
cat > "$T/threads.c" <<'C'
#include <gort.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void *work(void *arg) {
  char **v = malloc(4096 * sizeof *v);
  for (int i = 0; i < 4096; i++) { v[i] = malloc(4000); memset(v[i], 1, 4000); }
  for (int i = 0; i < 4096; i++) free(v[i]);
  free(v);
  long *obj = gort_gc_alloc(sizeof *obj);
  *obj = (long)arg;
  return obj;
}
int main(void) {
  pthread_t t[4];
  for (long i = 0; i < 4; i++)
    if (pthread_create(&t[i], NULL, work, (void *)i) != 0) return 2;
  long sum = 0;
  for (int i = 0; i < 4; i++) {
    void *r;
    pthread_join(t[i], &r);
    sum += *(long *)r;
  }
  gort_gc_collect();
  usleep(300 * 1000);  /* the scavenger runs */
  printf("threads %ld\n", sum);
  return sum == 6 ? 0 : 3;
}
C
if cc -static $CFLAGS_PC "$T/threads.c" -o "$T/threads_static" $LIBS_STATIC 2>"$T/err"; then
  out=$("$T/threads_static" 2>&1)
  rc=$?
  if [ $rc -eq 0 ] && [ "$out" = "threads 6" ]; then
    echo "PASS preload/fully_static_program_starts_threads_and_the_scavenger"
  else
    fail fully_static_program_starts_threads_and_the_scavenger "exit $rc: $(echo "$out" | head -3)"
  fi
elif grep -q "cannot find -lc\b" "$T/err"; then
  echo "SKIP preload/fully_static_program_starts_threads_and_the_scavenger (no libc.a)"
else
  fail fully_static_program_starts_threads_and_the_scavenger "cannot build: $(head -3 "$T/err")"
fi

# ---- the other mode, installed from nothing, with CFLAGS and LDFLAGS ------------------
# `make MODE=debug install` once failed on a fresh clone, and after a release
# build installed the release library under the debug name. So the other
# mode (debug beside release, release beside debug) is built here by
# `make install` alone, from an empty build directory, with CFLAGS and
# LDFLAGS that must reach its library; it must land beside this one under
# its own name, and be the library that build made.
if [ "$MODE" = release ]; then OM=debug; else OM=release; fi
ON=$(make -s print-LIBNAME MODE="$OM")
OR=$(make -s print-REALNAME MODE="$OM")
ODIRS="$DIRS MODE=$OM B=$T/b"
if make -s -j2 install $ODIRS CFLAGS=-fstack-protector-all LDFLAGS=-Wl,-z,now >"$T/log" 2>&1; then
  osoname=$(readelf -d "$L/$OR" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  if [ "$ON" != "$N" ] && [ -f "$L/lib$N.so.$V" ] && cmp -s "$T/b/$OR" "$L/$OR" &&
     [ "$osoname" = "lib$ON.so.$MAJOR" ] && [ "$(readlink "$L/lib$ON.so")" = "lib$ON.so.$MAJOR" ] &&
     [ -f "$L/lib$ON.a" ] && grep -q "^Libs: .*-l$ON\$" "$L/pkgconfig/$ON.pc"; then
    echo "PASS preload/make_${OM}_install_builds_and_installs_beside_under_its_own_name (lib$ON)"
  else
    fail "make_${OM}_install_builds_and_installs_beside_under_its_own_name" \
      "SONAME '$osoname'; $(ls "$L" | tr '\n' ' ')"
  fi
  now=$(readelf -d "$L/$OR" | grep -cE "\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW")
  chk=$(nm -D --undefined-only "$L/$OR" | grep -c __stack_chk_fail)
  if [ "$now" -ge 1 ] && [ "$chk" -ge 1 ]; then
    echo "PASS preload/cflags_and_ldflags_reach_the_shared_library"
  else
    fail cflags_and_ldflags_reach_the_shared_library "BIND_NOW: $now, __stack_chk_fail: $chk"
  fi
else
  fail "make_${OM}_install_builds_and_installs_beside_under_its_own_name" "make install failed: $(tail -5 "$T/log")"
fi

# The Valgrind build, where it is built already (the release suite builds it).
if [ "$MODE" = release ] && [ -f "build/valgrind/libgort-valgrind.so.$V" ]; then
  make -s install VALGRIND=1 $DIRS >"$T/log" 2>&1
  if [ -f "$L/libgort-valgrind.so.$V" ] && [ -f "$L/pkgconfig/gort-valgrind.pc" ] &&
     [ "$(readelf -d "$L/libgort-valgrind.so.$V" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')" = "libgort-valgrind.so.$MAJOR" ]; then
    echo "PASS preload/the_valgrind_build_installs_beside_under_its_own_name"
  else
    fail the_valgrind_build_installs_beside_under_its_own_name "$(tail -3 "$T/log"; ls "$L")"
  fi
  make -s uninstall VALGRIND=1 $DIRS >"$T/log" 2>&1
fi

# ---- uninstall ---------------------------------------------------------------------
make -s uninstall MODE="$MODE" $DIRS >"$T/log" 2>&1
if [ ! -e "$L/lib$N.so.$V" ] && [ ! -e "$L/lib$N.a" ] && [ -f "$D/usr/include/gort.h" ] &&
   [ -f "$L/lib$ON.so.$V" ]; then
  echo "PASS preload/uninstall_keeps_what_the_other_variant_needs"
else
  fail uninstall_keeps_what_the_other_variant_needs "$(cd "$D" && find . ! -type d | tr '\n' ' ')"
fi
make -s uninstall $ODIRS >"$T/log" 2>&1
left=$(cd "$D" && find . ! -type d | tr '\n' ' ')
if [ -z "$left" ]; then
  echo "PASS preload/uninstall_leaves_nothing_behind"
else
  fail uninstall_leaves_nothing_behind "left: $left ($(tail -3 "$T/log"))"
fi
