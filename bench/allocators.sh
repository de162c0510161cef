# Sourced by the allocator benchmarks: where each allocator's library is,
# for LD_PRELOAD. glibc's is the process's own, so its entry is empty.
# Paths are those of Debian 12's packages (libmimalloc-dev, libjemalloc-dev,
# libgoogle-perftools-dev); run from the project root after `make`.
LIBDIR=/usr/lib/x86_64-linux-gnu
declare -A LIB=(
  [glibc]=""
  [gort]="$PWD/build/libgort.so"
  [mimalloc]="$LIBDIR/libmimalloc.so.2"
  [jemalloc]="$LIBDIR/libjemalloc.so.2"
  [tcmalloc]="$LIBDIR/libtcmalloc_minimal.so.4"
)
