#!/usr/bin/env bash
# Misuse through the libc names, one tiny program per case (the shape of
# hardened_malloc's test suite): each must abort with gort's exact message,
# in the default mode, with GORT_DEBUG=harden=1, which also catches
# overflows and writes after free, and with every block sampled.
set -u
LIB="$B/libgort.so"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cc -O0 -g -w -o "$T/misuse" test/wrong/programs/misuse.c || { echo "FAIL preload/misuse (cannot compile)"; exit 0; }

expect() {  # mode case message
  local mode=$1 case=$2 msg=$3 env=""
  [ "$mode" = hardened ] && env="GORT_DEBUG=harden=1"
  # Every block sampled: a sampled block's free takes its own way (its live
  # bit is clear: malloc.c, gort__free_owned_unlive), which must name misuse too.
  [ "$mode" = sampled ] && env="GORT_MEMPROFILERATE=1"
  out=$(env $env LD_PRELOAD="$LIB" "$T/misuse" "$case" 2>&1)
  rc=$?
  if [ $rc -eq 134 ] && printf '%s' "$out" | grep -qF "gort: fatal error: $msg"; then
    echo "PASS preload/misuse_${mode}_$case"
  else
    echo "FAIL preload/misuse_${mode}_$case (exit $rc): $out"
  fi
}

for mode in default hardened sampled; do
  expect $mode double_free_small "free(): double free 0x"
  expect $mode double_free_large "free(): double free 0x"
  expect $mode double_free_delayed "free(): double free 0x"
  expect $mode free_stack "free(): invalid pointer (not allocated by gort) 0x7"
  expect $mode free_global "free(): invalid pointer (not allocated by gort)"
  expect $mode free_mmap "free(): invalid pointer (not allocated by gort)"
  expect $mode free_unmapped "free(): invalid pointer (not allocated by gort) 0x1234560"
  expect $mode free_interior "free(): invalid pointer (not the start of a block)"
  expect $mode free_interior_large "free(): invalid pointer (not the start of a block)"
  expect $mode realloc_freed "realloc(): double free (pointer already freed)"
  expect $mode realloc_interior "realloc(): invalid pointer (not the start of a block)"
  expect $mode realloc_stack "realloc(): invalid pointer (not allocated by gort)"
  expect $mode usable_size_freed "malloc_usable_size(): pointer already freed"
done
expect hardened overflow_small "free(): heap overflow (write past the end of the block) in block 0x"
expect hardened overflow_large "free(): heap overflow (write past the end of the block) in block 0x"
expect hardened write_after_free "malloc(): write after free detected in block 0x"
expect hardened write_after_free_link "malloc(): free list corrupted (write after free?) at block 0x"

# The multithreaded stress test in hardened mode: every slow path encodes
# and checks links, canaries and fills while threads free across threads.
if GORT_DEBUG=harden=1 "$B/test/stress/test_stress_threads" > "$T/stress.log" 2>&1; then
  echo "PASS preload/stress_threads_hardened"
else
  echo "FAIL preload/stress_threads_hardened: $(grep -v '^PASS' "$T/stress.log" | head -5)"
fi
