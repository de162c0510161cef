#!/usr/bin/env bash
# Heap profiles and stats at exit: a program with a known allocation
# site (100 MiB in 1 KiB blocks by one function, kept) runs under
# LD_PRELOAD with GORT_HEAPPROFILE; the gzip stream passes gzip -t and
# go tool pprof -top names that function first, within 10% of 100 MiB;
# so too linked with libgort.a, and linked fully static.
set -u
LIB="$B/libgort.so"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cat > "$T/prog.c" <<'C'
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/stat.h>
static void *keep[102400];
__attribute__((noinline)) void allocate_hundred_mib(void) {
  for (int i = 0; i < 102400; i++) { keep[i] = malloc(1024); memset(keep[i], 1, 1024); }
}
__attribute__((noinline)) void churn_elsewhere(void) {
  for (int i = 0; i < 300000; i++) { void *volatile p = malloc(300); free(p); }
}
int main(int argc, char **argv) {
  allocate_hundred_mib();
  churn_elsewhere();
  if (argc > 1) {
    // The exit writes the profile too: only one found before it shows
    // that the signal wrote one (exit status 3 if none in 10 s). The path
    // comes as the argument: gort marks GORT_HEAPPROFILE for the children
    // by renaming it in this process's environment (outpath.c).
    const char *path = argv[1];
    struct stat st;
    raise(SIGUSR2);
    int found = 0;
    for (int i = 0; i < 1000 && !found; i++) {
      found = path != NULL && stat(path, &st) == 0 && st.st_size > 0;
      if (!found) usleep(10000);
    }
    usleep(300000);  // the writer thread's last bytes, before the exit writes again
    return found ? 0 : 3;
  }
  return 0;
}
C
cc -g -O1 -o "$T/prog" "$T/prog.c" || { echo "FAIL preload/heap_profile (cannot compile)"; exit 0; }

# At the default rate (512 KiB) 100 MiB gives about 200 samples: the
# estimate's standard error is about 7%, and a 10% band would fail one run
# in six. At 32 KiB there are about 3200 samples (error about 1.8%), so the
# band is over five standard errors wide.
GORT_MEMPROFILERATE=32KiB GORT_HEAPPROFILE="$T/heap.pb.gz" LD_PRELOAD="$LIB" "$T/prog" 2>"$T/err"
if ! gzip -t "$T/heap.pb.gz" 2>>"$T/err"; then
  echo "FAIL preload/heap_profile_is_valid_gzip: $(cat "$T/err")"
else
  echo "PASS preload/heap_profile_is_valid_gzip"
fi

if command -v go >/dev/null; then
  top=$(cd "$T" && go tool pprof -top -unit=B "$T/prog" "$T/heap.pb.gz" 2>&1)
  first=$(echo "$top" | awk '/flat%/ {getline; print; exit}')
  bytes=$(echo "$first" | awk '{print $1}' | tr -d 'B')
  if echo "$first" | grep -q allocate_hundred_mib &&
     awk -v b="$bytes" 'BEGIN { exit !(b > 104857600 * 0.9 && b < 104857600 * 1.1) }'; then
    echo "PASS preload/pprof_names_the_allocation_site ($first)"
  else
    echo "FAIL preload/pprof_names_the_allocation_site: $top"
  fi
else
  echo "SKIP preload/pprof_names_the_allocation_site (go not installed)"
fi

# Linked with libgort.a, gort's code is the program's own and no module
# range tells its frames apart: they headed every stack (pprof put all the
# bytes in stack_bucket) until the profiler learned them (mprof.c,
# learn_own). The same for a fully static program, whose stacks could not
# be walked past their first frame at all (unwind.c, add_static_program).
for link in archive static; do
  extra=(); [ "$link" = static ] && extra=(-static)
  if ! cc -g -O1 "${extra[@]}" -o "$T/prog_$link" "$T/prog.c" "$B/libgort.a" -lpthread 2>"$T/err"; then
    echo "FAIL preload/pprof_names_the_allocation_site_$link (cannot link): $(head -c 300 "$T/err")"
    continue
  fi
  rm -f "$T/heap.pb.gz"
  GORT_MEMPROFILERATE=32KiB GORT_HEAPPROFILE="$T/heap.pb.gz" "$T/prog_$link" 2>"$T/err"
  if ! command -v go >/dev/null; then
    echo "SKIP preload/pprof_names_the_allocation_site_$link (go not installed)"
    continue
  fi
  top=$(cd "$T" && go tool pprof -top -unit=B "$T/prog_$link" "$T/heap.pb.gz" 2>&1)
  first=$(echo "$top" | awk '/flat%/ {getline; print; exit}')
  bytes=$(echo "$first" | awk '{print $1}' | tr -d 'B')
  if echo "$first" | grep -q allocate_hundred_mib &&
     awk -v b="$bytes" 'BEGIN { exit !(b > 104857600 * 0.9 && b < 104857600 * 1.1) }' &&
     ! echo "$top" | grep -qE ' (stack_bucket|sample|sample_alloc|gort__malloc_slow|malloc)$'; then
    echo "PASS preload/pprof_names_the_allocation_site_$link ($first)"
  else
    echo "FAIL preload/pprof_names_the_allocation_site_$link: $top"
  fi
done

rm -f "$T/heap.pb.gz"
GORT_HEAPPROFILE="$T/heap.pb.gz" GORT_DEBUG=profsignal=1 LD_PRELOAD="$LIB" "$T/prog" "$T/heap.pb.gz" 2>"$T/err"
rc=$?
if [ $rc -eq 0 ] && [ -s "$T/heap.pb.gz" ] && gzip -t "$T/heap.pb.gz"; then
  echo "PASS preload/sigusr2_writes_a_profile"
else
  echo "FAIL preload/sigusr2_writes_a_profile (rc $rc): $(cat "$T/err")"
fi

GORT_HEAPPROFILE=/nonexistent/dir/heap.pb.gz LD_PRELOAD="$LIB" "$T/prog" 2>"$T/err"
rc=$?
if [ $rc -eq 0 ] && grep -q "gort: warning: GORT_HEAPPROFILE: cannot write /nonexistent/dir/heap.pb.gz: No such file or directory" "$T/err"; then
  echo "PASS preload/bad_profile_path_warns_and_the_program_goes_on"
else
  echo "FAIL preload/bad_profile_path_warns_and_the_program_goes_on (rc $rc): $(cat "$T/err")"
fi

GORT_STATS=1 GORT_STATS_FILE="$T/stats.txt" LD_PRELOAD="$LIB" "$T/prog" 2>"$T/err"
if grep -q "gort:   HeapAlloc" "$T/stats.txt" 2>/dev/null && grep -q "gort:   Mallocs" "$T/stats.txt"; then
  echo "PASS preload/stats_at_exit_go_to_the_stats_file"
else
  echo "FAIL preload/stats_at_exit_go_to_the_stats_file: $(cat "$T/stats.txt" "$T/err" 2>&1 | head -5)"
fi
GORT_STATS=1 LD_PRELOAD="$LIB" "$T/prog" 2>"$T/err"
if grep -q "gort: memory summary" "$T/err"; then
  echo "PASS preload/stats_at_exit_go_to_stderr"
else
  echo "FAIL preload/stats_at_exit_go_to_stderr"
fi
