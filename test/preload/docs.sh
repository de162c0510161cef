#!/usr/bin/env bash
# The docs say only what is so (#15):
#   - docs/METRICS.md, docs/gort.3 and docs/gort.7 are what the generators
#     print from the metric and option tables and the public headers (make
#     docs), and the man pages render without a warning;
#   - the man page generator keeps the headers' headings, lists and code
#     blocks, and leaves out the gort__ functions that macros need;
#   - every gort_ function and type, public header, GORT_ name, file path and
#     `make` target that README.md, docs/*.md and the public headers' comments
#     name exists, and every libc name in docs/MALLOC.md's table is exported.
set -u
TOOLS="$B/tools"
DOCS="README.md docs/*.md"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

stale=""
"$TOOLS/mkmetricsdoc" | cmp -s - docs/METRICS.md || stale+=" docs/METRICS.md"
"$TOOLS/mkman" 3 | cmp -s - docs/gort.3 || stale+=" docs/gort.3"
"$TOOLS/mkman" 7 | cmp -s - docs/gort.7 || stale+=" docs/gort.7"
if [ -z "$stale" ]; then
  echo "PASS preload/generated_docs_are_current"
else
  echo "FAIL preload/generated_docs_are_current (run make docs):$stale"
fi

if command -v groff >/dev/null; then
  for p in docs/gort.3 docs/gort.7; do
    warn=$(groff -man -Tutf8 -ww -z "$p" 2>&1)
    if [ -z "$warn" ] && [ "$(groff -man -Tutf8 "$p" 2>/dev/null | wc -l)" -gt 20 ]; then
      echo "PASS preload/man_page_renders_cleanly: $p"
    else
      echo "FAIL preload/man_page_renders_cleanly: $p: $warn"
    fi
  done
else
  echo "SKIP preload/man_page_renders_cleanly (groff not installed)"
fi

# The generator on a header of every shape the real ones use: a heading
# that runs over two lines and holds a period ("time.After"), a list whose
# items run over lines, a code block, a paragraph after them, and a gort__
# function that a macro needs (exported, but not part of the page).
mkdir -p "$T/fix/include/gort"
printf '#include "gort/x.h"\n' >"$T/fix/include/gort.h"
cat >"$T/fix/include/gort/x.h" <<'H'
/* gort: timers (Go: time.After,
 * time.Ticker).
 *
 * Rules:
 *   - the first rule runs
 *     over two lines;
 *   - the second rule.
 * After the list.
 *
 *   int code = 1;
 *     int deeper = 2;
 */
GORT_API int gort_x(int a);
GORT_API int gort__x_at(int a, const char *file);
H
(cd "$T/fix" && "$TOOLS/mkman" 3) >"$T/x.3" 2>"$T/x.err"
sec=$(sed -n '/^\.SS "Timers/,/^\.SH METRICS/p' "$T/x.3")
bad=""
grep -qx '.SS "Timers (Go: time.After, time.Ticker)"' "$T/x.3" || bad+=" heading;"
[ "$(echo "$sec" | grep -c '^\.IP \\(bu 2$')" -eq 2 ] || bad+=" two list items;"
echo "$sec" | grep -A2 '^\.IP' | grep -qx 'over two lines;' || bad+=" item continued;"
echo "$sec" | grep -B1 -x 'After the list\.' | grep -qx '\.PP' || bad+=" paragraph after the list;"
echo "$sec" | grep -A2 -x '\.nf' | grep -qx 'int code = 1;' || bad+=" code block;"
echo "$sec" | grep -qx '  int deeper = 2;' || bad+=" code indentation;"
grep -q 'gort__x_at' "$T/x.3" && bad+=" gort__ function shown;"
grep -q 'gort_x(int a)' "$T/x.3" || bad+=" gort_x missing;"
if command -v groff >/dev/null; then
  warn=$(groff -man -Tutf8 -ww -z "$T/x.3" 2>&1)
  [ -z "$warn" ] || bad+=" groff: $warn"
fi
if [ -z "$bad" ]; then
  echo "PASS preload/man_page_generator_keeps_headings_lists_and_code"
else
  echo "FAIL preload/man_page_generator_keeps_headings_lists_and_code:$bad $(cat "$T/x.err")"
fi

# Public comments: the text of the headers' /* */ comments.
comments() { sed -n '/\/\*/,/\*\//p' include/gort.h include/gort/*.h; }

missing=""
# gort_ names: a function declared in a public header, or a type defined there.
for n in $( (cat $DOCS; comments) | grep -ohE '\bgort_[a-z0-9_]+' | sort -u); do
  grep -qE "\b$n *\(|typedef .*\b$n\b|\} *$n;" include/gort/*.h || missing+=" $n"
done
# Headers.
for h in $( (cat $DOCS; comments) | grep -ohE '\bgort(/[a-z_]+)?\.h\b' | sort -u); do
  [ -f "include/$h" ] || missing+=" $h"
done
# GORT_ names: an option, a GORT_DEBUG key's variable, or a name the code uses.
for n in $( (cat $DOCS; comments) | grep -ohE '\bGORT_[A-Z0-9_]+' | sort -u); do
  grep -rqw "$n" include src test/harness Makefile || missing+=" $n"
done
# Paths in the tree (a trailing period or comma ends the sentence, not the name).
for p in $(cat $DOCS | grep -ohE '\b(src|test|tools|bench|examples|docs|include)/[A-Za-z0-9_./-]*[A-Za-z0-9_]' | sort -u); do
  [ -e "$p" ] || missing+=" $p"
done
# make targets, as `make x` in the docs.
for t in $(cat $DOCS | grep -ohE '`make [a-z][a-z-]*' | sed 's/`make //' | sort -u); do
  grep -qE "^([^:=]* )?$t( [^:=]*)?:" Makefile || missing+=" make:$t"
done
if [ -z "$missing" ]; then
  echo "PASS preload/every_name_the_docs_give_exists"
else
  echo "FAIL preload/every_name_the_docs_give_exists: missing:$missing"
fi

# docs/MALLOC.md's table of the libc surface: the first column's names.
nm -D --defined-only "$B/libgort.so" | awk '{print $3}' | sed 's/@.*//' | sort -u >"$T/exports"
names=$(sed -n '/^## The API surface/,/^## /p' docs/MALLOC.md | grep '^| `' | cut -d'|' -f2 |
  grep -ohE '`[a-z_][a-z0-9_]*' | tr -d '`' | grep -vxE 'operator|new|delete' | sort -u)  # C++: exports.sh
absent=$(for n in $names; do grep -qx "$n" "$T/exports" || echo "$n"; done | tr '\n' ' ')
if [ -n "$names" ] && [ -z "$absent" ]; then
  echo "PASS preload/every_libc_name_in_malloc_md_is_exported ($(echo $names | wc -w) names)"
else
  echo "FAIL preload/every_libc_name_in_malloc_md_is_exported: not exported: $absent"
fi
