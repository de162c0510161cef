#!/usr/bin/env bash
# The leak check (#14, obs/leakcheck.c) end to end. The programs in
# test/leak/ have known leaks; each is built twice, preloading
# libgort.so and linked with libgort.a, and run with GORT_LEAKCHECK=1.
# The reports must name the allocating function with the right byte and
# object counts, direct and indirect (compared as totals per function,
# since gort groups by whole stacks); the same totals as LeakSanitizer's
# (Debian's liblsan0, preloaded; skipped when absent) and as valgrind's
# definitely+indirectly lost on git (skipped without valgrind). Then the
# exit status, suppressions, the report and profile files, bad input,
# signals, fork, checks while threads churn, and sqlite3, git and python3
# runs. Prints PASS/FAIL/SKIP lines.
set -u
LIB="$B/libgort.so"
ARCHIVE="$B/libgort.a"
SRC=$(cd "$(dirname "$0")/../leak" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
LSAN=$(ls /usr/lib/x86_64-linux-gnu/liblsan.so.0 2>/dev/null || true)

pass() { echo "PASS preload/leakcheck_$1"; }
fail() {
  echo "FAIL preload/leakcheck_$1"
  [ -n "${2:-}" ] && [ -f "$2" ] && sed 's/^/  /' "$2" | head -40
}
skip() { echo "SKIP preload/leakcheck_$1 ($2)"; }

# ---- building ---------------------------------------------------------------------

progs="list tree thread interior roots dlopen clean fork churn forkcheck memo dlchurn manykeys"
# Linked statically, a program exports malloc and free only where a shared
# library of its link needs them; -rdynamic makes the dlopen'ed library's
# calls reach gort's heap as well.
for p in $progs; do
  cc -g -O1 -pthread -I"$SRC" "$SRC/$p.c" -o "$T/$p.pre" -ldl 2>"$T/cc.err" &&
    cc -g -O1 -pthread -I"$SRC" "$SRC/$p.c" -o "$T/$p.static" "$ARCHIVE" -rdynamic -ldl -lpthread 2>>"$T/cc.err" ||
    { fail "programs_build ($p)" "$T/cc.err"; exit 0; }
done
cc -g -O1 -shared -fPIC "$SRC/libleaky.c" -o "$T/libleaky.so" || { fail programs_build; exit 0; }
cc -g -O1 -shared -fPIC "$SRC/libbig.c" -o "$T/libbig.so" || { fail programs_build; exit 0; }
# Optimized, so that the helpers are inlined (their frames come from .debug_info).
for mode in pre static; do
  extra=()
  [ "$mode" = static ] && extra=("$ARCHIVE" -rdynamic -ldl -lpthread)
  cc -g -O2 -pthread -I"$SRC" "$SRC/inline.c" -o "$T/inline.$mode" "${extra[@]}" 2>"$T/cc.err" ||
    { fail "programs_build (inline)" "$T/cc.err"; exit 0; }
done

# run NAME MODE ENV... : runs $T/NAME.MODE with GORT_LEAKCHECK=1 (unless
# the environment given sets it), stdout to $T/out, stderr to $T/err; the
# exit status in $rc. MODE pre preloads libgort.so.
run() {
  local name=$1 mode=$2
  shift 2
  local pre=()
  [ "$mode" = pre ] && pre=(LD_PRELOAD="$LIB")
  env GORT_LEAKCHECK=1 "$@" "${pre[@]}" timeout 120 "$T/$name.$mode" "$T/libleaky.so" >"$T/out" 2>"$T/err"
  rc=$?
}

# totals FILE: one line per leak group's kind and first program frame,
# "Direct make_list 32 1", summed over groups and sorted. Frames of the
# allocator (gort's, glibc's names, LeakSanitizer's interceptors) are
# passed over, so the same leaks give the same lines for gort and LSan.
totals() {
  awk '
    /^(Direct|Indirect) leak of [0-9]+ byte/ { kind = $1; bytes = $4; objs = $7; want = 1; next }
    want && /^ +#[0-9]+ / {
      fn = ""
      for (i = 1; i <= NF; i++) if ($i == "in") { fn = $(i + 1); break }
      if (fn ~ /^(__interceptor_|__libc_)?(malloc|calloc|realloc|memalign|posix_memalign|aligned_alloc|valloc)$/ || fn ~ /^_Zn[wa]m/) next
      if (fn == "") fn = "?"
      key = kind " " fn; b[key] += bytes; o[key] += objs; want = 0
    }
    END { for (k in b) print k, b[k], o[k] }' "$1" | sort
}

# ---- known leaks, both builds ---------------------------------------------------------

expect_totals() {  # case name, program, expected totals (lines)
  local name=$1 prog=$2 want=$3 mode
  for mode in pre static; do
    run "$prog" "$mode"
    local got
    got=$(totals "$T/err")
    if [ "$rc" = 23 ] && [ "$got" = "$want" ]; then
      pass "${name}_$mode"
    else
      echo "  want (status 23): $want" >"$T/why"
      echo "  got (status $rc): $got" >>"$T/why"
      cat "$T/err" >>"$T/why"
      fail "${name}_$mode" "$T/why"
    fi
  done
}

expect_totals dropped_list_is_one_direct_and_nine_indirect list "Direct make_list 32 1
Indirect make_list 288 9"
expect_totals dropped_tree_root_is_one_direct_the_rest_indirect tree "Direct make_tree 24 1
Indirect make_tree 720 30"
expect_totals leak_in_an_exited_thread_is_found thread "Direct thread_fn 777 1"
expect_totals leak_in_a_dlopened_library_names_it dlopen "Direct leaky_make 333 1"

for mode in pre static; do
  run list "$mode"
  if grep -q "in make_list .*test/leak/list.c:[0-9]" "$T/err" &&
     grep -q "^SUMMARY: gort: 320 byte(s) leaked in 10 allocation(s).$" "$T/err" && grep -q "list: done" "$T/out"; then
    pass "report_has_file_line_and_one_line_summary_$mode"
  else
    fail "report_has_file_line_and_one_line_summary_$mode" "$T/err"
  fi
  run dlopen "$mode"
  if grep -q "in leaky_make .*libleaky.c:[0-9]" "$T/err" && ! grep -q "444 byte" "$T/err"; then
    pass "dlopened_library_frames_and_data_$mode"
  else
    fail "dlopened_library_frames_and_data_$mode" "$T/err"
  fi
  run interior "$mode"
  if grep -q "interior: kept 0 leaks, dropped 2 leaks" "$T/out" &&
     grep -q "were reached only through pointers into their middle and counted as reachable" "$T/out"; then
    pass "interior_pointer_keeps_a_block_and_the_report_says_so_$mode"
  else
    cat "$T/out" >>"$T/err"
    fail "interior_pointer_keeps_a_block_and_the_report_says_so_$mode" "$T/err"
  fi
  run roots "$mode"
  if grep -qx "roots: 0 2 5" "$T/out"; then
    pass "register_global_static_and_tls_are_roots_$mode"
  else
    cat "$T/out" >>"$T/err"
    fail "register_global_static_and_tls_are_roots_$mode" "$T/err"
  fi
  run clean "$mode"
  if [ "$rc" = 0 ] && [ ! -s "$T/err" ] && grep -q "clean: done" "$T/out"; then
    pass "clean_program_reports_nothing_and_exits_0_$mode"
  else
    fail "clean_program_reports_nothing_and_exits_0_$mode (status $rc)" "$T/err"
  fi
  # (glibc's second-level key arrays may be reported: the status is not
  # checked, only that every allocation ran.)
  run manykeys "$mode"
  if [ "$rc" -lt 128 ] && grep -q "manykeys: done" "$T/out"; then
    pass "a_key_past_the_32nd_registers_its_memo_without_recursing_$mode"
  else
    fail "a_key_past_the_32nd_registers_its_memo_without_recursing_$mode (status $rc)" "$T/err"
  fi
  run churn "$mode"
  if grep -qx "churn: 0 bad checks" "$T/out"; then
    pass "checks_while_threads_allocate_and_free_$mode"
  else
    cat "$T/out" >>"$T/err"
    fail "checks_while_threads_allocate_and_free_$mode" "$T/err"
  fi
  pre=()
  [ "$mode" = pre ] && pre=(LD_PRELOAD="$LIB")
  env GORT_LEAKCHECK=1 "${pre[@]}" timeout 120 "$T/dlchurn.$mode" "$T/libleaky.so" "$T/libbig.so" >"$T/out" 2>"$T/err"
  if grep -q "^dlchurn: 0 bad checks" "$T/out"; then
    pass "checks_beside_dlopen_and_dlclose_scan_only_mapped_segments_$mode"
  else
    cat "$T/out" >>"$T/err"
    fail "checks_beside_dlopen_and_dlclose_scan_only_mapped_segments_$mode" "$T/err"
  fi
done

# memo_paths FILE: per block size of memo.c, "SIZE BLOCKS", or "SIZE bad
# FRAMES" for a group whose frames up to run are not that size's path.
memo_paths() {
  awk '
    BEGIN {
      want[24] = "alloc_here via_left run"; want[72] = "alloc_here via_right run"
      want[40] = "direct_a run"; want[56] = "direct_b run"
      want[88] = "alloc_here common twin_a run"; want[104] = "alloc_here common twin_b run"
      want[152] = "alloc_here common twin_b run"
      want[120] = "alloc_here deep deep run"; want[136] = "alloc_here deep deep deep deep run"
    }
    function done_group() {
      if (size == "") return
      if (chain != want[size]) print size, "bad", chain
      n[size] += objs; size = ""
    }
    /^(Direct|Indirect) leak of [0-9]+ byte/ { done_group(); size = $4 / $7; objs = $7; chain = ""; open = 1; next }
    open && /^ +#[0-9]+ / {
      for (i = 1; i <= NF; i++) if ($i == "in") { fn = $(i + 1); break }
      if (chain !~ / run$/ && chain != "run") chain = chain == "" ? fn : chain " " fn
      next
    }
    { done_group(); open = 0 }
    END { done_group(); for (s in n) print s, n[s] }' "$1" | sort -n
}

# Kept walks (obs/unwind.c) reuse a stack's id when the stack repeats word
# for word; paths that differ only inside, only far out, or by depth must
# each keep their own stack.
for mode in pre static; do
  run memo "$mode"
  got=$(memo_paths "$T/err")
  want="24 50
40 50
56 50
72 50
88 50
104 50
120 50
136 50
152 25"
  if [ "$rc" = 23 ] && [ "$got" = "$want" ]; then
    pass "alternating_paths_keep_their_own_stacks_$mode"
  else
    { echo "  want: $want"; echo "  got (status $rc): $got"; cat "$T/err"; } >"$T/why"
    fail "alternating_paths_keep_their_own_stacks_$mode" "$T/why"
  fi
done

# The frames of a leak allocated in code inlined twice: each level, innermost
# first, at the line of its call, then the function that holds the code.
mark() { grep -n "@$1\$" "$SRC/inline.c" | cut -d: -f1; }
want_inline="new_block inline.c:$(mark block)
new_pair inline.c:$(mark pair)
make_leak inline.c:$(mark make)
main inline.c:$(mark main)"
for mode in pre static; do
  run inline "$mode"
  got=$(awk '/^Direct leak of 42 byte/ { on = 1; next } on && /^ +#[0-9]+ / {
               file = $NF; sub(/.*\//, "", file); print $4, file; if ($4 == "main") exit }' "$T/err")
  pcs=$(awk '/^Direct leak of 42 byte/ { on = 1; next } on && /^ +#[0-3] / { print $2 }' "$T/err" | sort -u | wc -l)
  if [ "$rc" = 23 ] && [ "$got" = "$want_inline" ] && [ "$pcs" = 2 ]; then
    pass "inlined_functions_are_frames_of_their_own_$mode"
  else
    { echo "  want: $want_inline"; echo "  got (status $rc, $pcs addresses): $got"; cat "$T/err"; } >"$T/why"
    fail "inlined_functions_are_frames_of_their_own_$mode" "$T/why"
  fi
done

# ---- exit status ----------------------------------------------------------------------

status_case() {  # name, want, program args..., with GORT_LEAKCHECK from $LC
  local name=$1 want=$2
  shift 2
  { env GORT_LEAKCHECK="$LC" LD_PRELOAD="$LIB" timeout 60 "$T/$1.pre" "${@:2}" >"$T/out" 2>"$T/err"; } 2>/dev/null
  rc=$?
  if [ "$rc" = "$want" ]; then pass "$name"; else echo "  status $rc, want $want" >>"$T/err"; fail "$name" "$T/err"; fi
}
LC=1 status_case exit_status_is_23_when_leaks_remain 23 list
LC=1 status_case exit_status_23_replaces_the_programs_own 23 list exit3
LC=exitcode=7 status_case exitcode_item_sets_the_status 7 list
LC=exitcode=0 status_case exitcode_0_keeps_the_programs_status 3 list exit3
LC=1 status_case no_leaks_keeps_status_0 0 clean

# The exit's other writers still write when leaks end the process: an
# atexit handler registered during libc's start-up (gort starts at the
# first malloc, often there) runs after the destructors, and the check's
# _exit(23) came first (a helper's hunt: no profile, no summary).
for mode in pre static; do
  rm -f "$T/exit.pb.gz"
  run list "$mode" GORT_HEAPPROFILE="$T/exit.pb.gz" GORT_STATS=1
  if [ "$rc" = 23 ] && [ -s "$T/exit.pb.gz" ] && gzip -t "$T/exit.pb.gz" 2>/dev/null &&
     grep -q "gort: memory summary" "$T/err"; then
    pass "heap_profile_and_stats_are_written_when_leaks_set_the_status_$mode"
  else
    echo "  status $rc; profile: $(ls -l "$T/exit.pb.gz" 2>&1)" >>"$T/err"
    fail "heap_profile_and_stats_are_written_when_leaks_set_the_status_$mode" "$T/err"
  fi
done

# ---- signals and fork ----------------------------------------------------------------

start=$(date +%s)
LC=1 status_case killed_by_sigkill_no_report_no_hang 137 list kill
if [ -s "$T/err" ]; then fail "killed_by_sigkill_writes_nothing" "$T/err"; else pass killed_by_sigkill_writes_nothing; fi
LC=1 status_case killed_by_sigterm_no_report_no_hang 143 list term
if grep -q "leak" "$T/err" || [ $(($(date +%s) - start)) -gt 60 ]; then
  fail "killed_by_signal_is_quick_and_silent" "$T/err"
else
  pass killed_by_signal_is_quick_and_silent
fi

rm -f "$T"/forkreport.*
env GORT_LEAKCHECK=1 GORT_LEAKCHECK_FILE="$T/forkreport.%p" LD_PRELOAD="$LIB" "$T/fork.pre" >"$T/out" 2>"$T/err"
files=$(ls "$T"/forkreport.* 2>/dev/null | wc -l)
child=$(grep -l "in child_leak" "$T"/forkreport.* 2>/dev/null | head -1)
parent=$(grep -L "in child_leak" "$T"/forkreport.* 2>/dev/null | head -1)
if [ "$files" = 2 ] && [ -n "$child" ] && [ -n "$parent" ] && grep -q "in parent_leak" "$parent" &&
   grep -q "child status 23" "$T/out"; then
  pass forked_child_that_exits_checks_its_own_heap
else
  cat "$T"/forkreport.* "$T/out" >>"$T/err" 2>/dev/null
  fail forked_child_that_exits_checks_its_own_heap "$T/err"
fi
rm -f "$T"/forkreport.*
env GORT_LEAKCHECK=1 GORT_LEAKCHECK_FILE="$T/forkreport.%p" LD_PRELOAD="$LIB" "$T/fork.pre" _exit >"$T/out" 2>"$T/err"
if [ "$(ls "$T"/forkreport.* 2>/dev/null | wc -l)" = 1 ] && ! grep -q child_leak "$T"/forkreport.* && grep -q "child status 0" "$T/out"; then
  pass forked_child_that_calls__exit_does_not_check
else
  cat "$T"/forkreport.* "$T/out" >>"$T/err" 2>/dev/null
  fail forked_child_that_calls__exit_does_not_check "$T/err"
fi

env GORT_LEAKCHECK=1 LD_PRELOAD="$LIB" timeout 120 "$T/forkcheck.pre" >"$T/out" 2>"$T/err"
if grep -qx "forkcheck: 20 children exited" "$T/out"; then
  pass fork_during_a_check_leaves_the_child_free_to_check
else
  cat "$T/out" >>"$T/err"
  fail fork_during_a_check_leaves_the_child_free_to_check "$T/err"
fi

# ---- suppressions -----------------------------------------------------------------------

supp_case() {  # name, program, suppression file text, want status, want summary (grep -E) or "none"
  local name=$1 prog=$2 text=$3 want=$4 summary=$5
  printf '%s\n' "$text" >"$T/supp"
  env GORT_LEAKCHECK="suppress=$T/supp" LD_PRELOAD="$LIB" "$T/$prog.pre" "$T/libleaky.so" >"$T/out" 2>"$T/err"
  rc=$?
  if [ "$rc" = "$want" ] && { { [ "$summary" = none ] && [ ! -s "$T/err" ]; } || grep -Eq "$summary" "$T/err"; }; then
    pass "$name"
  else
    echo "  status $rc, want $want" >>"$T/err"
    fail "$name" "$T/err"
  fi
}
supp_case suppression_by_function_hides_the_leak_and_status list "# the list is on purpose
leak:make_list" 0 none
supp_case suppression_template_with_anchors_and_star tree "leak:^make_t*e\$" 0 none
supp_case suppression_by_module_name dlopen "leak:libleaky.so" 0 none
supp_case suppression_by_source_file thread "leak:test/leak/thread.c" 0 none
supp_case unmatched_suppression_leaves_the_report list "leak:no_such_function" 23 "^SUMMARY: gort: 320 byte"
printf 'leak:make_list\n' >"$T/supp"
env GORT_LEAKCHECK="suppress=$T/supp,verbose=1" LD_PRELOAD="$LIB" "$T/list.pre" >"$T/out" 2>"$T/err"
if grep -Eq "^ +10 +320 make_list$" "$T/err" && grep -q "no leaks in" "$T/err"; then
  pass verbose_report_lists_the_suppressions_used
else
  fail verbose_report_lists_the_suppressions_used "$T/err"
fi
printf 'leak:make_list\nbogus line\nalso bogus\n' >"$T/supp"
env GORT_LEAKCHECK="suppress=$T/supp" LD_PRELOAD="$LIB" "$T/list.pre" >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" = 0 ] && [ "$(grep -c 'gort: warning' "$T/err")" = 1 ] &&
   grep -q "supp:2: 'bogus line' is not a suppression" "$T/err"; then
  pass bad_suppression_lines_give_one_warning
else
  fail bad_suppression_lines_give_one_warning "$T/err"
fi
env GORT_LEAKCHECK="suppress=$T/no/such/file" LD_PRELOAD="$LIB" "$T/list.pre" >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" = 23 ] && [ "$(grep -c 'gort: warning' "$T/err")" = 1 ] &&
   grep -q "cannot read the suppressions in $T/no/such/file: No such file or directory" "$T/err"; then
  pass missing_suppression_file_warns_and_checks_anyway
else
  fail missing_suppression_file_warns_and_checks_anyway "$T/err"
fi
env GORT_LEAKCHECK="defaults=0" LD_PRELOAD="$LIB" "$T/churn.pre" >"$T/out" 2>"$T/err"
if grep -q "_dl_allocate_tls" "$T/err"; then
  pass defaults_0_shows_glibcs_thread_blocks
else
  fail defaults_0_shows_glibcs_thread_blocks "$T/err"
fi

# ---- files and bad input --------------------------------------------------------------

env GORT_LEAKCHECK=1 GORT_LEAKCHECK_FILE="$T/report.%p.txt" LD_PRELOAD="$LIB" "$T/list.pre" >"$T/out" 2>"$T/err"
rc=$?
f=$(ls "$T"/report.*.txt 2>/dev/null | head -1)
if [ "$rc" = 23 ] && [ ! -s "$T/err" ] && [ -n "$f" ] && grep -q "^SUMMARY: gort: 320 byte" "$f"; then
  pass report_goes_to_the_leakcheck_file
else
  fail report_goes_to_the_leakcheck_file "$T/err"
fi
env GORT_LEAKCHECK=1 GORT_LEAKCHECK_FILE=/nonexistent/dir/report.txt LD_PRELOAD="$LIB" "$T/list.pre" >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" = 23 ] && [ "$(grep -c 'gort: warning' "$T/err")" = 1 ] &&
   grep -q "GORT_LEAKCHECK_FILE: cannot write /nonexistent/dir/report.txt: No such file or directory; the report will go to stderr" "$T/err" &&
   grep -q "^SUMMARY: gort: 320 byte" "$T/err"; then
  pass unwritable_report_path_warns_once_and_uses_stderr
else
  fail unwritable_report_path_warns_once_and_uses_stderr "$T/err"
fi
env GORT_LEAKCHECK=1,bogus GORT_LEAKCHECK_PROFILE="$T/leaks.pb.gz" LD_PRELOAD="$LIB" "$T/list.pre" >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" = 23 ] && [ "$(grep -c 'gort: warning' "$T/err")" = 1 ] &&
   grep -q "GORT_LEAKCHECK: ignoring bad item 'bogus'" "$T/err" && grep -q "^SUMMARY: gort: 320 byte" "$T/err"; then
  pass bad_leakcheck_item_warns_once_and_the_check_runs
else
  fail bad_leakcheck_item_warns_once_and_the_check_runs "$T/err"
fi
env GORT_LEAKCHECK_FILE="$T/r.txt" LD_PRELOAD="$LIB" "$T/list.pre" >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" = 0 ] && grep -q "GORT_LEAKCHECK_FILE is set but GORT_LEAKCHECK is not" "$T/err"; then
  pass leakcheck_file_without_leakcheck_says_so
else
  fail leakcheck_file_without_leakcheck_says_so "$T/err"
fi

if gzip -t "$T/leaks.pb.gz" 2>"$T/err"; then
  pass profile_is_valid_gzip
  if command -v go >/dev/null; then
    top=$(cd "$T" && go tool pprof -top -sample_index=leaked_space "$T/list.pre" "$T/leaks.pb.gz" 2>&1)
    if echo "$top" | grep -E "^ +320B .* make_list$" >/dev/null; then
      pass profile_opens_in_go_tool_pprof_and_names_the_leak
    else
      echo "$top" >"$T/why"
      fail profile_opens_in_go_tool_pprof_and_names_the_leak "$T/why"
    fi
  else
    skip profile_opens_in_go_tool_pprof_and_names_the_leak "go not installed"
  fi
else
  fail profile_is_valid_gzip "$T/err"
fi

# ---- against LeakSanitizer ------------------------------------------------------------

if [ -z "$LSAN" ]; then
  skip same_leaks_as_leaksanitizer "liblsan0 not installed"
else
  for p in list tree thread dlopen; do
    run "$p" pre
    totals "$T/err" >"$T/gort.tot"
    env LD_PRELOAD="$LSAN" timeout 120 "$T/$p.pre" "$T/libleaky.so" >/dev/null 2>"$T/lsan.err"
    totals "$T/lsan.err" >"$T/lsan.tot"
    if [ -s "$T/lsan.tot" ] && cmp -s "$T/gort.tot" "$T/lsan.tot"; then
      pass "same_leaks_as_leaksanitizer_$p"
    else
      { echo "  gort:"; cat "$T/gort.tot"; echo "  LeakSanitizer:"; cat "$T/lsan.tot" "$T/lsan.err"; } >"$T/why"
      fail "same_leaks_as_leaksanitizer_$p" "$T/why"
    fi
  done
fi

# ---- real programs ---------------------------------------------------------------------

if command -v sqlite3 >/dev/null; then
  env GORT_LEAKCHECK=1 LD_PRELOAD="$LIB" sqlite3 "$T/db.sqlite" "
    pragma journal_mode=wal;
    create table t(id integer primary key, a text, b blob);
    with recursive c(x) as (select 1 union all select x+1 from c where x < 20000)
      insert into t(a, b) select hex(randomblob(20)), randomblob(x % 700) from c;
    create index ia on t(a);
    select count(*) from t where a like 'A%';" >"$T/out" 2>"$T/err"
  rc=$?
  if [ "$rc" = 0 ] && [ ! -s "$T/err" ]; then pass sqlite3_run_reports_no_leak; else fail "sqlite3_run_reports_no_leak (status $rc)" "$T/err"; fi
else
  skip sqlite3_run_reports_no_leak "sqlite3 not installed"
fi

if command -v git >/dev/null; then
  G="$T/repo"
  git init -q "$G" && git -C "$G" config user.email t@t && git -C "$G" config user.name t
  for i in 1 2 3; do echo "$i" >"$G/f$i"; done
  git -C "$G" add . && git -C "$G" commit -qm one && echo 4 >"$G/f4" && git -C "$G" add f4 && git -C "$G" commit -qm two
  bad=""
  for c in "status" "log --oneline" "rev-parse HEAD" "show --stat HEAD" "cat-file -p HEAD"; do
    # shellcheck disable=SC2086
    env GORT_LEAKCHECK=1 LD_PRELOAD="$LIB" git -C "$G" $c >/dev/null 2>"$T/err" || bad+=" $c (status $?)"
    [ -s "$T/err" ] && bad+=" $c: $(head -3 "$T/err")"
  done
  if [ -z "$bad" ]; then pass git_runs_report_no_leak; else echo "  $bad" >"$T/why"; fail git_runs_report_no_leak "$T/why"; fi
  if command -v valgrind >/dev/null; then
    bad=""
    echo 5 >"$G/f5"
    for c in "config user.email t@t" "add f5" "diff HEAD~1"; do
      # shellcheck disable=SC2086
      env GORT_LEAKCHECK=1 LD_PRELOAD="$LIB" git -C "$G" $c >/dev/null 2>"$T/err"
      ours=$(sed -n 's/^SUMMARY: gort: \([0-9]*\) byte.*/\1/p' "$T/err")
      # shellcheck disable=SC2086
      vg=$(valgrind --leak-check=full git -C "$G" $c 2>&1 >/dev/null |
           awk '/definitely lost:|indirectly lost:/ { gsub(",", "", $4); n += $4 } END { print n + 0 }')
      [ "${ours:-0}" = "$vg" ] || bad+=" git $c: gort ${ours:-0} bytes, valgrind $vg;"
    done
    if [ -z "$bad" ]; then pass git_leaks_are_valgrinds_definitely_and_indirectly_lost; else
      echo "  $bad" >"$T/why"; fail git_leaks_are_valgrinds_definitely_and_indirectly_lost "$T/why"; fi
  else
    skip git_leaks_are_valgrinds_definitely_and_indirectly_lost "valgrind not installed"
  fi
else
  skip git_runs_report_no_leak "git not installed"
fi

PY=/usr/bin/python3
if [ -x "$PY" ] && [ -n "$LSAN" ]; then
  cat >"$T/work.py" <<'PY'
import json, re, collections, zlib, hashlib, sqlite3
d = collections.Counter()
for i in range(2000):
    s = json.dumps({"k": list(range(i % 50)), "s": "x" * (i % 3000)})
    d[len(re.findall(r"[0-9]+", s))] += 1
    hashlib.sha256(zlib.compress(s.encode())).hexdigest()
db = sqlite3.connect(":memory:")
db.execute("create table t(a, b)")
db.executemany("insert into t values (?, ?)", ((i, "v" * (i % 500)) for i in range(5000)))
print("ok")
PY
  env GORT_LEAKCHECK=exitcode=0 LD_PRELOAD="$LIB" "$PY" "$T/work.py" >/dev/null 2>"$T/err"
  ours=$(sed -n 's/^SUMMARY: gort: \(.*\)\.$/\1/p' "$T/err")
  env LD_PRELOAD="$LSAN" LSAN_OPTIONS=exitcode=0 "$PY" "$T/work.py" >/dev/null 2>"$T/lsan.err"
  theirs=$(sed -n 's/^SUMMARY: LeakSanitizer: \(.*\)\.$/\1/p' "$T/lsan.err")
  if [ "$ours" = "$theirs" ]; then
    pass "python3_leaks_at_exit_as_leaksanitizer_finds_them (${ours:-none})"
  else
    echo "  gort: ${ours:-none}; LeakSanitizer: ${theirs:-none}" >"$T/why"
    fail python3_leaks_at_exit_as_leaksanitizer_finds_them "$T/why"
  fi
else
  skip python3_leaks_at_exit_as_leaksanitizer_finds_them "needs /usr/bin/python3 and liblsan0"
fi
