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

# Single-threaded workloads run on one fixed CPU, the same for every
# allocator: where the virtual CPUs are not alike (on the VM of 2026-12-02
# the same single-thread loop ran 1.6x slower on CPU 1 than on CPU 0,
# every time), an unpinned run lands on either and its times are two
# clusters, and a median then says which CPU an allocator drew more
# often. BENCH_CPU names the CPU (default: the lowest one this process
# may use); BENCH_CPU= (empty) leaves every workload unpinned.
BENCH_CPU=${BENCH_CPU-$(python3 -c 'import os; print(min(os.sched_getaffinity(0)))' 2>/dev/null)}
# The command prefix for a single-threaded workload ("" if unpinned).
pin_single() {
  if [ -n "$BENCH_CPU" ] && command -v taskset >/dev/null 2>&1; then echo "taskset -c $BENCH_CPU"; fi
}
