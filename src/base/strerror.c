// Error texts without malloc.
//
// gort names the error when it cannot write an output file, at start-up and
// at exit, from inside malloc and possibly before libc is set up. libc's
// strerror may not be called there: it translates through gettext, which
// loads message catalogues and allocates (and, the first time, may call
// back into malloc while we hold a lock). So gort keeps its own table of
// the texts, in English, word for word as glibc's C locale prints them, so
// that a message reads as the one the operator knows from other programs.
//
// The table holds the errors that opening, writing and reading files and
// mapping memory can return; any other number prints as "error N".

#include <errno.h>

#include "base.h"

static const struct {
  int err;
  const char *text;
} texts[] = {
    {EPERM, "Operation not permitted"},
    {ENOENT, "No such file or directory"},
    {EINTR, "Interrupted system call"},
    {EIO, "Input/output error"},
    {ENXIO, "No such device or address"},
    {EBADF, "Bad file descriptor"},
    {EAGAIN, "Resource temporarily unavailable"},
    {ENOMEM, "Cannot allocate memory"},
    {EACCES, "Permission denied"},
    {EFAULT, "Bad address"},
    {EBUSY, "Device or resource busy"},
    {EEXIST, "File exists"},
    {EXDEV, "Invalid cross-device link"},
    {ENODEV, "No such device"},
    {ENOTDIR, "Not a directory"},
    {EISDIR, "Is a directory"},
    {EINVAL, "Invalid argument"},
    {ENFILE, "Too many open files in system"},
    {EMFILE, "Too many open files"},
    {ETXTBSY, "Text file busy"},
    {EFBIG, "File too large"},
    {ENOSPC, "No space left on device"},
    {ESPIPE, "Illegal seek"},
    {EROFS, "Read-only file system"},
    {EPIPE, "Broken pipe"},
    {ENAMETOOLONG, "File name too long"},
    {ELOOP, "Too many levels of symbolic links"},
    {EOVERFLOW, "Value too large for defined data type"},
    {EDQUOT, "Disk quota exceeded"},
    {ESTALE, "Stale file handle"},
    {EOPNOTSUPP, "Operation not supported"},
};

const char *gort__strerror(int err, char *buf, size_t size) {
  if (err < 0) err = -err;
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
    if (texts[i].err == err) return texts[i].text;
  gort__snprint(buf, size, "error %d", err);
  return buf;
}
