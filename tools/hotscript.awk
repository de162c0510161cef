# Rewrites the linker's default script for shared objects (on stdin) for
# libgort.so's layout (Makefile, $(B)/gort.ld; tools/mkhottext.sh says why):
#   - the lines of the file `hot` (src/shim/hot.ld) go first in .text;
#   - .fini moves up to follow .init, so that the exit code shares the first
#     fault-around window of the text with .init and the PLT instead of
#     costing one of its own at the far end.
# Exits non-zero when the script lacks either place, and then the Makefile
# links with the default script.
{ line[NR] = $0 }
/^  \.init[ \t]+:/ { init = NR }
/^  \.fini[ \t]+:/ { fini = NR }
/^  \.text[ \t]+:/ { text = NR }
END {
  if (!init || !fini || !text || line[init + 1] != "  {" || line[text + 1] != "  {") exit 1
  for (e = fini; e <= NR && line[e] != "  }"; e++) ;
  for (ie = init; ie <= NR && line[ie] != "  }"; ie++) ;
  if (e > NR || ie > NR) exit 1
  for (i = 1; i <= NR; i++) {
    if (i >= fini && i <= e) continue
    print line[i]
    if (i == ie) for (j = fini; j <= e; j++) print line[j]
    if (i == text + 1) while ((getline l < hot) > 0) print l
  }
}
