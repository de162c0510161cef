#!/usr/bin/env bash
# Generates src/shim/hot.ld, the list of input sections that puts the
# functions an ordinary malloc program runs into one run at the front of
# libgort.so's text (`make hottext` runs this; the Makefile puts the list
# into the linker's own script, through tools/hotscript.awk).
#
# Why: the kernel maps a file's pages around each page fault (fault-around:
# 64 KiB windows by default, more where the page cache holds large folios),
# and start-up and the allocator's paths ran code in every window of the
# library's 260 KiB of text, so all of it was resident in every process:
# about 200 KiB more RSS than mimalloc's whole library (60 KiB of text), and
# a fault of 10 us or more on our VMs for each window. The 300-odd functions
# such programs run are 80 KiB together.
#
# The layout: first the constructors and destructors (.text.startup.*,
# .text.exit.*: every process runs them), then the functions the simplest
# program runs (start-up, one thread's malloc and free: the first profile
# below), so that they share the first window with .init, .fini and the
# PLT, which every program touches; then what the others ran. .fini moves
# from the end of the text to beside .init (hotscript.awk), since every
# process runs it at exit. What a program runs beyond the list (the
# collector, goroutines, reports) maps windows of its own, as before.
#
# How: every program below runs under callgrind with libgort.so preloaded,
# and the functions of libgort.so that ran in any of them are listed by the
# sections -ffunction-sections gives them. gort's own threads (clone(2),
# which callgrind does not follow) are covered by the direct calls from
# their entries; a function listed before that still exists stays listed
# (some run only when a timer fires first). A function missing from the
# list is only placed with the rest; test/preload/hottext.sh checks the
# layout and fails when a malloc program maps most of the text again: then
# run `make hottext`. Callgrind (valgrind) needs the functions inside
# .text: an output section of their own left them nameless in its reports.
#
# Usage: tools/mkhottext.sh BUILD_DIR > src/shim/hot.ld
set -euo pipefail
B=${1:-build}
LIB=$B/libgort.so
command -v valgrind >/dev/null || { echo "mkhottext: needs valgrind" >&2; exit 1; }
for b in allocbench classic classic_cxx; do
  [ -x "$B/bench/$b" ] || { echo "mkhottext: make $B/bench/$b first" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
# Each run's processes (children too: a shell's, a fork's child) write a
# profile each, cg.<run>.<pid>; names are left mangled (C++'s operators).
run() {
  i=$((i + 1))
  GORT_DEBUG=scavdelay=1 LD_PRELOAD=$PWD/$LIB valgrind -q --tool=callgrind --trace-children=yes \
    --demangle=no --callgrind-out-file="$tmp/cg.$i.%p" "$@" >/dev/null 2>"$tmp/err.$i" || true
  if ! ls "$tmp"/cg."$i".* >/dev/null 2>&1 || ! grep -qs 'libgort' "$tmp"/cg."$i".*; then
    echo "mkhottext: no profile of libgort.so from: $*" >&2
    cat "$tmp/err.$i" >&2
    exit 1
  fi
}
for w in pair churn prodcons larson falseshare realloc; do run "$B/bench/allocbench" "$w" 0.02; done
for w in rptest thread-2t; do run "$B/bench/classic" "$w" 0.01; done
run "$B/bench/classic_cxx" larson-sized 0.01
run python3 -c 'import json, threading; t = threading.Thread(target=lambda: json.dumps(list(range(10000)))); t.start(); t.join()'
# A large block freed, then a pause: the scavenger returns its pages.
run python3 -c 'import time; x = [bytearray(1 << 20) for i in range(64)]; del x; time.sleep(0.5)'
# A fork, whose child runs the fork handlers, and signal handlers installed.
run python3 -c 'import os, signal; signal.signal(signal.SIGUSR1, lambda *a: None); pid = os.fork()
if pid == 0: os._exit(0)
os.waitpid(pid, 0)'
run sh -c 'echo x | sort | uniq > /dev/null'
# The functions of the file's first profile (the simplest program: start-up,
# one thread's malloc and free) go first, so that they share the window that
# also holds the PLT, which every program touches; the others' follow.
names() {
  python3 - "$@" <<'EOF' | sort -u
import re, sys
# callgrind's output names each object and function once, then by number.
for path in sys.argv[1:]:
    obs, fns, ob = {}, {}, ""
    for line in open(path, errors="replace"):
        m = re.match(r"(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if not m:
            continue
        kind, num, name = m.groups()
        table = obs if kind.endswith("ob") else fns
        if name is not None:
            table[num] = name
        if kind == "ob":
            ob = obs.get(num, "")
        elif kind == "fn" and "libgort.so" in ob:
            fn = fns.get(num, "")
            if re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", fn):
                print(fn)
EOF
}
names "$tmp"/cg.1.* > "$tmp/first"
# gort's own threads are made with clone(2), which callgrind does not follow:
# the scavenger's code (and the pools' hook it calls through a pointer) is
# found instead from its entry, by the direct calls and jumps in the code.
objdump -d --no-show-raw-insn "$LIB" | python3 -c '
import re, sys
calls, fn = {}, None
for line in sys.stdin:
    m = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
    if m:
        fn = m.group(1); calls.setdefault(fn, set()); continue
    m = re.search(r"\s(?:call|jmp|j[a-z]+)\s+[0-9a-f]+ <([^>+]+)(?:\+0x[0-9a-f]+)?>", line)
    if m and fn and m.group(1) != fn and "@plt" not in m.group(1):
        calls[fn].add(m.group(1))
seen, todo = set(), ["scavenger_main", "scavenger_cycle"]
while todo:
    f = todo.pop()
    if f in seen or f not in calls: continue
    seen.add(f); todo.extend(calls[f])
print("\n".join(sorted(n for n in seen if re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", n))))
' > "$tmp/threads"
# A function that ran in an earlier generation, and still exists, stays: some
# run only when a timer fires first (the scavenger), and one run misses them.
nm "$LIB" | awk '$2 ~ /^[tTW]$/ { print $3 }' | sort -u > "$tmp/defined"
if [ -f src/shim/hot.ld ]; then
  sed -nE 's/^    \*\(\.text\.([A-Za-z_][A-Za-z0-9_.]*)\)$/\1/p' src/shim/hot.ld | sort -u |
    comm -12 - "$tmp/defined" > "$tmp/kept"
else
  : > "$tmp/kept"
fi
{ names "$tmp"/cg.*; cat "$tmp/kept" "$tmp/threads"; } | sort -u | comm -23 - "$tmp/first" > "$tmp/rest"
# A section per function: X's own, or for GCC's cold part X.cold, the
# .text.unlikely.X it is put in. Constructors (gort__noscan_ctor_<line>)
# are in .text.startup, which goes whole.
sections() { grep -v '^gort__noscan_ctor_' "$1" | sed -E 's/^(.*)\.cold$/unlikely.\1/; s/.*/    *(.text.&)/'; }
# The entry points' fast paths first, side by side and malloc on a 64-byte
# line start, as they were before the list (shim.c and new.cc's order):
# placed apart in the list's order (malloc at 0xc590, free at 0x7ba0),
# glibc's bench-malloc-simple shape (classic simple-1t: batches of malloc,
# then of free) ran 1.5x as long (0.050 -> 0.074-0.079 s, 3 runs each);
# side by side but malloc at 0x6be0, allocbench pair ran 3-5% longer
# (0.203 against 0.193-0.199 s); aligned, both as before (4 runs each).
entries="malloc free calloc realloc _Znwm _ZdlPv _ZdlPvm _Znam _ZdaPv"
for e in $entries; do if grep -qx "$e" "$tmp/defined"; then echo "$e"; fi; done > "$tmp/entries"
for f in first rest; do grep -vxF -f "$tmp/entries" "$tmp/$f" > "$tmp/$f.x" || true; mv "$tmp/$f.x" "$tmp/$f"; done
for f in entries first rest; do sections "$tmp/$f"; done > "$tmp/body"
echo "/* Generated by tools/mkhottext.sh ($(wc -l < "$tmp/body") functions); see there. The"
echo "   Makefile puts these lines at the top of .text in the linker's own script. */"
echo "    *(.text.startup .text.startup.* .text.exit .text.exit.*)"
echo "    *crtbeginS.o(.text .text.*)"
echo "    *libc_nonshared.a:*(.text .text.*)"
echo "    . = ALIGN(64);"
cat "$tmp/body"
