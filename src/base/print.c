// Malloc-free printing.
//
// gort prints from inside malloc, before libc is set up, and on fatal paths,
// so it cannot use stdio (which allocates and takes locks). This is a small
// printf subset that formats into a stack buffer and writes with write(2).

#include <errno.h>
#include <stdarg.h>
#include <unistd.h>

#include "base.h"

typedef struct {
  char *buf;
  size_t size;  // capacity, including the final NUL
  size_t len;   // characters produced (may exceed size - 1; extra is dropped)
} out_t;

static void put(out_t *o, char c) {
  if (o->len + 1 < o->size) o->buf[o->len] = c;
  o->len++;
}

static void put_str(out_t *o, const char *s, int width, bool left) {
  if (s == NULL) s = "(null)";
  int n = 0;
  while (s[n]) n++;
  if (!left)
    for (int i = n; i < width; i++) put(o, ' ');
  while (*s) put(o, *s++);
  if (left)
    for (int i = n; i < width; i++) put(o, ' ');
}

static void put_uint(out_t *o, unsigned long long v, unsigned base, int width, char pad) {
  char tmp[24];
  int n = 0;
  do {
    unsigned d = (unsigned)(v % base);
    tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v != 0);
  while (width-- > n) put(o, pad);
  while (n > 0) put(o, tmp[--n]);
}

static void put_int(out_t *o, long long v, int width, char pad) {
  if (v < 0) {
    put(o, '-');
    put_uint(o, 0ULL - (unsigned long long)v, 10, width - 1, pad);
  } else {
    put_uint(o, (unsigned long long)v, 10, width, pad);
  }
}

static void format(out_t *o, const char *fmt, va_list ap) {
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      put(o, *fmt);
      continue;
    }
    fmt++;
    char pad = ' ';
    int width = 0;
    bool left = false;
    if (*fmt == '-') left = true, fmt++;
    if (*fmt == '0') pad = '0', fmt++;
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    int longs = 0;
    bool size_t_arg = false;
    while (*fmt == 'l') longs++, fmt++;
    if (*fmt == 'z') size_t_arg = true, fmt++;
    switch (*fmt) {
      case 's': put_str(o, va_arg(ap, const char *), width, left); break;
      case 'c': put(o, (char)va_arg(ap, int)); break;
      case 'p':
        put_str(o, "0x", 0, false);
        put_uint(o, (uintptr_t)va_arg(ap, void *), 16, width, pad);
        break;
      case 'd':
      case 'i': {
        long long v = size_t_arg ? (long long)va_arg(ap, ptrdiff_t)
                      : longs >= 2 ? va_arg(ap, long long)
                      : longs == 1 ? va_arg(ap, long)
                                   : va_arg(ap, int);
        put_int(o, v, width, pad);
        break;
      }
      case 'u':
      case 'x': {
        unsigned long long v = size_t_arg ? va_arg(ap, size_t)
                               : longs >= 2 ? va_arg(ap, unsigned long long)
                               : longs == 1 ? va_arg(ap, unsigned long)
                                            : va_arg(ap, unsigned);
        put_uint(o, v, *fmt == 'x' ? 16 : 10, width, pad);
        break;
      }
      case '%': put(o, '%'); break;
      case '\0': return;
      default: put(o, '%'); put(o, *fmt); break;
    }
  }
}

size_t gort__vsnprint(char *buf, size_t size, const char *fmt, va_list ap) {
  out_t o = {buf, size, 0};
  format(&o, fmt, ap);
  if (size > 0) buf[o.len < size ? o.len : size - 1] = '\0';
  return o.len < size ? o.len : (size ? size - 1 : 0);
}

size_t gort__snprint(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t n = gort__vsnprint(buf, size, fmt, ap);
  va_end(ap);
  return n;
}

// Returns 0 or a negative errno. A failing stderr is ignored by the
// callers (there is nothing sensible to do about it); a failing output
// file is reported (obs/report.c). errno is left as it was.
static int write_all(int fd, const char *p, size_t n) {
  int saved = errno, err = 0;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      err = w < 0 ? -errno : -EIO;
      break;
    }
    p += w;
    n -= (size_t)w;
  }
  errno = saved;
  return err;
}

int gort__vprint_fd(int fd, const char *fmt, va_list ap) {
  char buf[1024];
  size_t n = gort__vsnprint(buf, sizeof buf, fmt, ap);
  return write_all(fd, buf, n);
}

int gort__print_fd(int fd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int err = gort__vprint_fd(fd, fmt, ap);
  va_end(ap);
  return err;
}

void gort__print(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  gort__vprint_fd(2, fmt, ap);
  va_end(ap);
}
