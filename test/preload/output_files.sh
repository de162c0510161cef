#!/usr/bin/env bash
# Output files of process trees under LD_PRELOAD (src/obs/outpath.c): each
# process keeps its own file (the first the path as given, the processes
# it starts and forks path.<pid>), %p and %e are expanded, the summary
# names its process, bad paths are reported at start-up with the error's
# text, write errors at exit, and settings that would do nothing say so.
set -u
LIB="$B/libgort.so"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# tree: the root prints "started", runs two children through the shell and
# forks one without exec; every process allocates, then exits with 3 (the
# root) or 0.
cat > "$T/tree.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
  char *keep = strdup("x");
  if (argc > 1) return keep == NULL;
  fprintf(stderr, "started\n");
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "'%s' child; '%s' child", argv[0], argv[0]);
  if (system(cmd) != 0) return 1;
  pid_t pid = fork();
  if (pid == 0) exit(0);
  waitpid(pid, NULL, 0);
  return 3;
}
C
cc -O1 -o "$T/tree" "$T/tree.c" || { echo "FAIL preload/output_files (cannot compile)"; exit 0; }
cd "$T" || exit 0

run() {  # env... : runs the tree under gort; stderr in $T/err, status in $rc
  env "$@" LD_PRELOAD="$LIB" "$T/tree" 2>"$T/err"
  rc=$?
}

# 1. Each process of the tree keeps its summary.
run GORT_STATS=1 GORT_STATS_FILE=stats.txt
files=$(ls stats.txt* 2>/dev/null | wc -l)
root=$(head -1 stats.txt 2>/dev/null)
others=$(cat stats.txt.* 2>/dev/null | grep -c "^gort: memory summary of pid [0-9]* (tree)$")
mismatch=$(for f in stats.txt.*; do p=${f#stats.txt.}; head -1 "$f" | grep -q "of pid $p (tree)" || echo "$f"; done)
if [ "$rc" -eq 3 ] && [[ "$root" =~ ^"gort: memory summary of pid "[0-9]+" (tree)"$ ]] && [ "$others" -ge 3 ] &&
   [ -z "$mismatch" ] && [ "$files" -eq $((others + 1)) ]; then
  echo "PASS preload/each_process_of_a_tree_keeps_its_own_stats_file"
else
  echo "FAIL preload/each_process_of_a_tree_keeps_its_own_stats_file (exit $rc; $files files; root: '$root'; $others others; misnamed: $mismatch): $(ls; cat "$T/err")"
fi
if ! grep -q "^gORT_STATS_FILE=stats.txt$" <(env GORT_STATS=1 GORT_STATS_FILE=stats.txt LD_PRELOAD="$LIB" sh -c 'exec env' 2>/dev/null); then
  echo "FAIL preload/children_inherit_the_marked_variable: $(env GORT_STATS=1 GORT_STATS_FILE=stats.txt LD_PRELOAD="$LIB" sh -c 'exec env' 2>&1 | grep -i ort_)"
else
  echo "PASS preload/children_inherit_the_marked_variable"
fi
rm -f stats.txt*

# 2. %p and %e.
run GORT_HEAPPROFILE="$T/heap.%e.%p.pb.gz"
n=$(ls heap.tree.*.pb.gz 2>/dev/null | wc -l)
bad=$(for f in heap.tree.*.pb.gz; do gzip -t "$f" 2>/dev/null || echo "$f"; done)
if [ "$rc" -eq 3 ] && [ "$n" -ge 4 ] && [ -z "$bad" ] && ! [ -e heap.pb.gz ]; then
  echo "PASS preload/percent_p_and_percent_e_name_each_profile"
else
  echo "FAIL preload/percent_p_and_percent_e_name_each_profile (exit $rc; $n profiles, bad: $bad): $(ls; cat "$T/err")"
fi
rm -f heap.*

# 3. A bad path is reported once per process at start-up, with the text.
run GORT_HEAPPROFILE=/nonexistent/dir/heap.pb.gz
first=$(head -1 "$T/err")
if [ "$rc" -eq 3 ] &&
   [ "$first" = "gort: warning: GORT_HEAPPROFILE: cannot write /nonexistent/dir/heap.pb.gz: No such file or directory; no profile will be written" ] &&
   [ "$(grep -c 'heap.pb.gz' "$T/err")" -eq "$(grep -c 'cannot write' "$T/err")" ]; then
  echo "PASS preload/bad_profile_path_is_reported_at_start_with_the_error_text"
else
  echo "FAIL preload/bad_profile_path_is_reported_at_start_with_the_error_text (exit $rc): $(cat "$T/err")"
fi
run GORT_STATS=1 GORT_STATS_FILE=/nonexistent/stats.txt
if [ "$rc" -eq 3 ] && head -1 "$T/err" | grep -q "^gort: warning: GORT_STATS_FILE: cannot write /nonexistent/stats.txt: No such file or directory; the summary will go to stderr$" &&
   grep -q "^gort: memory summary of pid" "$T/err"; then
  echo "PASS preload/bad_stats_path_is_reported_at_start_and_the_summary_goes_to_stderr"
else
  echo "FAIL preload/bad_stats_path_is_reported_at_start_and_the_summary_goes_to_stderr (exit $rc): $(head -5 "$T/err")"
fi

# 4. Write errors are reported.
env GORT_STATS=1 GORT_STATS_FILE=/dev/full LD_PRELOAD="$LIB" /bin/true 2>"$T/err"
if [ "$(cat "$T/err")" = "gort: warning: GORT_STATS_FILE: writing /dev/full failed: No space left on device" ]; then
  echo "PASS preload/stats_file_write_errors_are_reported"
else
  echo "FAIL preload/stats_file_write_errors_are_reported: $(cat "$T/err")"
fi

env GORT_HEAPPROFILE=/dev/full LD_PRELOAD="$LIB" /bin/true 2>"$T/err"
if [ "$(cat "$T/err")" = "gort: warning: GORT_HEAPPROFILE: writing /dev/full failed: No space left on device (at exit)" ]; then
  echo "PASS preload/heap_profile_write_errors_are_reported"
else
  echo "FAIL preload/heap_profile_write_errors_are_reported: $(cat "$T/err")"
fi

# 5. Settings that would do nothing say so, once each.
env GORT_STATS_FILE=s.txt LD_PRELOAD="$LIB" /bin/true 2>"$T/err"
if [ "$(cat "$T/err")" = "gort: warning: GORT_STATS_FILE is set but GORT_STATS is not: no summary is written (set GORT_STATS=1)" ] &&
   ! [ -e s.txt ]; then
  echo "PASS preload/stats_file_without_stats_warns"
else
  echo "FAIL preload/stats_file_without_stats_warns: $(cat "$T/err")"
fi
env GORT_HEAPPROFILE=h.pb.gz GORT_MEMPROFILERATE=0 LD_PRELOAD="$LIB" /bin/true 2>"$T/err"
if [ "$(cat "$T/err")" = "gort: warning: GORT_HEAPPROFILE is set but GORT_MEMPROFILERATE turns sampling off: the profile will have no samples" ]; then
  echo "PASS preload/heap_profile_without_sampling_warns"
else
  echo "FAIL preload/heap_profile_without_sampling_warns: $(cat "$T/err")"
fi
