#!/usr/bin/env bash
# Only gort's public API and the libc allocation names leave libgort.so
# (src/shim/gort.map), plus pthread_create (the collector learns of every
# thread through it: gc/stw.c) and the thread calls the collector wraps
# (pthread_join, pthread_exit, pthread_sigmask, sigprocmask:
# gc/pthread_wrap.c), sigaction, signal and the other calls that install a
# handler (bsd_signal, ssignal, sysv_signal, __sysv_signal, sigset:
# os/fault.c keeps gort's fault handler first and sees every handler of
# the program's), the reads that write into the heap (read, pread,
# pread64, readv, recv, recvfrom, recvmsg, and fread with its unlocked and
# checked forms: gc/dirty_mprotect.c), the
# sleeps and waits a stop takes without a signal (nanosleep, usleep, sleep,
# clock_nanosleep, thrd_sleep, poll, select, epoll_wait, __poll_chk,
# pthread_cond_wait, pthread_cond_timedwait, pthread_cond_clockwait,
# sem_timedwait: gc/blocking.c), and libgort.so needs nothing but libc.
set -u
LIB="$B/libgort.so"
syms=$(nm -D --defined-only "$LIB" | awk '{print $3}' | sort)
bad=$(echo "$syms" | grep -vE '^(gort_[a-z_0-9]+|malloc|free|calloc|realloc|reallocarray|memalign|posix_memalign|aligned_alloc|valloc|pvalloc|malloc_usable_size|cfree|__libc_(malloc|free|calloc|realloc|memalign|valloc|pvalloc)|__posix_memalign|malloc_trim|mallinfo2?|malloc_stats|malloc_info|mallopt|pthread_create|pthread_join|pthread_exit|pthread_sigmask|sigprocmask|sigaction|signal|bsd_signal|ssignal|sysv_signal|__sysv_signal|sigset|read|pread|pread64|readv|recv|recvfrom|recvmsg|fread|fread_unlocked|__fread_chk|__fread_unlocked_chk|nanosleep|usleep|sleep|clock_nanosleep|thrd_sleep|poll|select|epoll_wait|__poll_chk|pthread_cond_wait|pthread_cond_timedwait|pthread_cond_clockwait|sem_timedwait|_Zn[wa]m.*|_Zd[la]Pv.*)$' | grep -v '^GORT_' || true)
if [ -z "$bad" ] && echo "$syms" | grep -qx malloc && echo "$syms" | grep -qx gort_malloc &&
   [ "$(echo "$syms" | grep -c '^_Z')" = 20 ]; then
  echo "PASS preload/exports_only_the_api_and_libc_names"
else
  echo "FAIL preload/exports_only_the_api_and_libc_names: unexpected: $bad"
fi
needed=$(readelf -d "$LIB" | awk '/NEEDED/ {print $5}' | tr -d '[]' | tr '\n' ' ')
if [ "$needed" = "libc.so.6 " ]; then
  echo "PASS preload/libgort_so_needs_only_libc"
else
  echo "FAIL preload/libgort_so_needs_only_libc: $needed"
fi
