// Files: the few that gort opens itself (the reports it writes at exit, the
// /proc and /sys files it reads), and the process's name. See os.h for the
// contract: 0 or a negative errno, errno left as it was, no allocation.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/base.h"
#include "os.h"

int gort__os_open_write(const char *path) {
  int saved = errno;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int r = fd >= 0 ? fd : -errno;
  errno = saved;
  return r;
}

int gort__os_open_read(const char *path) {
  int saved = errno;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int r = fd >= 0 ? fd : -errno;
  errno = saved;
  return r;
}

int gort__os_close(int fd) {
  int saved = errno;
  int r = close(fd) == 0 ? 0 : -errno;
  errno = saved;
  return r;
}

int64_t gort__os_read(int fd, void *buf, size_t size) {
  int saved = errno;
  ssize_t n;
  do n = read(fd, buf, size);
  while (n < 0 && errno == EINTR);
  int64_t r = n >= 0 ? n : -errno;
  errno = saved;
  return r;
}

int64_t gort__os_read_file(const char *path, char *buf, size_t size) {
  if (size == 0) return -EINVAL;
  int fd = gort__os_open_read(path);
  if (fd < 0) return fd;
  size_t len = 0;
  int64_t n = 0;
  while (len < size - 1 && (n = gort__os_read(fd, buf + len, size - 1 - len)) > 0) len += (size_t)n;
  gort__os_close(fd);
  buf[len] = '\0';
  return n < 0 ? n : (int64_t)len;
}

// Whether the process may write path, found by doing it: permissions alone
// do not say (root may write anywhere, but not create a file in /proc or
// on a read-only mount). An existing file is opened for writing without
// truncating it; a FIFO, socket or device is not opened (opening a FIFO
// waits for a reader), only its permissions are checked; a new file is
// created and removed at once, so a process that dies before it writes
// leaves nothing behind.
static int check(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return -EISDIR;
    if (!S_ISREG(st.st_mode)) return faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0 ? 0 : -errno;
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return -errno;
    close(fd);
    return 0;
  }
  if (errno != ENOENT) return -errno;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno == EEXIST ? 0 : -errno;  // EEXIST: someone made it meanwhile
  close(fd);
  unlink(path);
  return 0;
}

int gort__os_check_writable(const char *path) {
  int saved = errno;
  int r = check(path);
  errno = saved;
  return r;
}

size_t gort__os_program_name(char *buf, size_t size) {
  if (size == 0) return 0;
  // glibc sets this (argv[0]'s last component) before any constructor; the
  // first malloc may come earlier, from the dynamic loader.
  const char *name = program_invocation_short_name;
  size_t n = 0;
  if (name != NULL && name[0] != '\0') {
    while (name[n] != '\0' && n < size - 1) buf[n] = name[n], n++;
    buf[n] = '\0';
    return n;
  }
  int64_t r = gort__os_read_file("/proc/self/comm", buf, size);
  n = r > 0 ? (size_t)r : 0;
  while (n > 0 && buf[n - 1] == '\n') n--;
  buf[n] = '\0';
  return n;
}

void *gort__os_map_file(const char *path, size_t *size, int *err) {
  int saved = errno;
  void *p = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    *err = -errno;
  } else if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
    *err = -EINVAL;
  } else {
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      *err = -errno;
      p = NULL;
    } else {
      *size = (size_t)st.st_size;
    }
  }
  if (fd >= 0) close(fd);
  errno = saved;
  return p;
}

int gort__os_unmap_file(void *p, size_t size) {
  int saved = errno;
  int r = munmap(p, size) == 0 ? 0 : -errno;
  errno = saved;
  return r;
}
