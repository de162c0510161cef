// The memory limit of the process's cgroup: the default of GORT_MEMLIMIT
// (scavenger.c), as the limit a container or a systemd service runs under.
//
// Where the limit is. A process belongs to one cgroup per hierarchy, named
// in /proc/self/cgroup by its path from the hierarchy's root: "0::/path"
// for cgroup v2, "N:memory:/path" for v1's memory controller. The limit
// that binds is the smallest set on that path: a service with MemoryMax=
// under a slice, or a container inside a pod, finds it on a parent. So:
//   1. Read the process's paths in /proc/self/cgroup (v2, and v1 memory).
//   2. Find where each hierarchy is mounted in /proc/self/mountinfo (type
//      cgroup2, or cgroup with the memory option). A mount's root field is
//      the hierarchy path it shows (a bind mount or a cgroup namespace
//      shows a subtree), so the process's directory is the mount point
//      plus its path below that root.
//   3. Walk from that directory up to the mount point, reading memory.max
//      and memory.high (v2: "max" is none) or memory.limit_in_bytes (v1:
//      none is a huge number, the largest page count in bytes), and keep
//      the smallest. A hybrid system has both; the smaller counts.
// memory.high counts as a limit too: above it the kernel throttles and
// reclaims, which is what a soft limit is meant to stay clear of.
//
// This runs at start-up inside the first malloc, so it allocates nothing
// and keeps to about 6 KiB of stack: files are read through a fixed
// buffer, line by line, and a line too long for it (overlay mounts list
// their layers) is skipped, as no cgroup line is that long. A file that
// cannot be read means no limit from it.

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "os.h"

#define LINE_BYTES 1024
#define PATH_BYTES 1024  // a longer cgroup path counts as no limit
#define V1_UNLIMITED ((int64_t)1 << 62)

typedef struct {
  int fd;
  size_t pos, len;
  char buf[1024];
} reader_t;

// The next line of r into line, without its newline; false at the end.
static bool next_line(reader_t *r, char *line, size_t size) {
  size_t n = 0;
  bool any = false, overlong = false;
  for (;;) {
    if (r->pos == r->len) {
      int64_t got = gort__os_read(r->fd, r->buf, sizeof r->buf);
      if (got <= 0) break;
      r->pos = 0;
      r->len = (size_t)got;
    }
    char c = r->buf[r->pos++];
    any = true;
    if (c == '\n') {
      if (!overlong) break;
      n = 0, any = false, overlong = false;  // skip the long line, read the next
      continue;
    }
    if (n + 1 < size) line[n++] = c;
    else overlong = true;
  }
  line[n] = '\0';
  return any && !overlong;
}

// Splits off the next space-separated field of *s.
static char *field(char **s) {
  char *f = *s;
  while (**s != '\0' && **s != ' ') (*s)++;
  if (**s == ' ') *(*s)++ = '\0';
  return f;
}

// mountinfo writes space, tab, newline and backslash as \ooo.
static void unescape(char *s) {
  char *o = s;
  for (; *s; s++) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
        s[3] <= '7') {
      *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
      s += 3;
    } else {
      *o++ = *s;
    }
  }
  *o = '\0';
}

static bool has_item(const char *list, const char *item) {
  size_t n = strlen(item);
  for (const char *p = list; *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, item, n) == 0) return true;
    if (end == NULL) break;
    p = end + 1;
  }
  return false;
}

static bool join(char *out, size_t size, const char *a, const char *b, const char *c) {
  size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
  if (la + lb + lc >= size) return false;
  memcpy(out, a, la);
  memcpy(out + la, b, lb);
  memcpy(out + la + lb, c, lc + 1);
  return true;
}

typedef struct {
  char v2[PATH_BYTES];  // the process's path in the v2 hierarchy ("" if none)
  char v1[PATH_BYTES];  // in the v1 memory hierarchy ("" if none)
} paths_t;

static void read_paths(const char *root, paths_t *p, char *line) {
  p->v2[0] = p->v1[0] = '\0';
  char path[PATH_BYTES];
  if (!join(path, sizeof path, root, "/proc/self/cgroup", "")) return;
  reader_t r = {.fd = gort__os_open_read(path)};
  if (r.fd < 0) return;
  while (next_line(&r, line, LINE_BYTES)) {
    char *s = line, *id = field(&s);
    char *colon = strchr(id, ':');  // "id:controllers:path", no spaces
    if (colon == NULL) continue;
    char *ctl = colon + 1, *cpath = strchr(ctl, ':');
    if (cpath == NULL) continue;
    *cpath++ = '\0';
    *colon = '\0';
    bool v2 = strcmp(id, "0") == 0 && *ctl == '\0';
    char *dst = v2 ? p->v2 : has_item(ctl, "memory") ? p->v1 : NULL;
    if (dst != NULL && strlen(cpath) < PATH_BYTES) strcpy(dst, cpath);
  }
  gort__os_close(r.fd);
}

// The directory of the process's cgroup in the mount of one hierarchy
// (v2, or v1 memory) into dir, and the length of its mount point part.
// Of several mounts, the one whose root is the longest prefix of cpath.
static bool find_dir(const char *root, const char *cpath, bool v2, char *dir, size_t *top,
                     char *line) {
  char path[PATH_BYTES];
  if (!join(path, sizeof path, root, "/proc/self/mountinfo", "")) return false;
  reader_t r = {.fd = gort__os_open_read(path)};
  if (r.fd < 0) return false;
  size_t best = 0;
  bool found = false;
  while (next_line(&r, line, LINE_BYTES)) {
    char *s = line;
    for (int i = 0; i < 3; i++) field(&s);  // id, parent, major:minor
    char *mroot = field(&s), *mpoint = field(&s);
    while (*s && strncmp(s, "- ", 2) != 0) field(&s);  // options, optional fields
    if (*s == '\0') continue;
    field(&s);
    char *fstype = field(&s);
    field(&s);  // source
    char *super = field(&s);
    if (v2 ? strcmp(fstype, "cgroup2") != 0
           : strcmp(fstype, "cgroup") != 0 || !has_item(super, "memory"))
      continue;
    unescape(mroot);
    unescape(mpoint);
    size_t rl = strcmp(mroot, "/") == 0 ? 0 : strlen(mroot);
    bool under = strncmp(cpath, mroot, rl) == 0 && (cpath[rl] == '/' || cpath[rl] == '\0');
    if (found && (!under || rl < best)) continue;
    // Not under the mount's root (a namespace shows "/"): the mount point
    // itself is the nearest directory we can name.
    const char *rel = under ? cpath + rl : "";
    if (strcmp(rel, "/") == 0) rel = "";
    if (!join(dir, PATH_BYTES, root, mpoint, rel)) continue;
    *top = strlen(root) + strlen(mpoint);
    best = under ? rl : 0;
    found = true;
  }
  gort__os_close(r.fd);
  return found;
}

// A limit file's value: "max" (v2) or a byte count; INT64_MAX for none.
static int64_t parse_limit(const char *s) {
  if (strncmp(s, "max", 3) == 0) return INT64_MAX;
  if (*s < '0' || *s > '9') return INT64_MAX;
  uint64_t v = 0;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (UINT64_MAX - 9) / 10) return INT64_MAX;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  return v >= (uint64_t)V1_UNLIMITED ? INT64_MAX : (int64_t)v;
}

static int64_t read_limit(const char *dir, const char *name) {
  char path[PATH_BYTES], buf[64];
  if (!join(path, sizeof path, dir, "/", name)) return INT64_MAX;
  return gort__os_read_file(path, buf, sizeof buf) > 0 ? parse_limit(buf) : INT64_MAX;
}

// The smallest of the named files in dir and its parents, down to top.
static int64_t walk_up(char *dir, size_t top, const char *name1, const char *name2) {
  int64_t limit = INT64_MAX;
  for (;;) {
    int64_t a = read_limit(dir, name1), b = name2 ? read_limit(dir, name2) : INT64_MAX;
    if (a < limit) limit = a;
    if (b < limit) limit = b;
    char *slash = strrchr(dir, '/');
    if (strlen(dir) <= top || slash == NULL || (size_t)(slash - dir) < top) break;
    *slash = '\0';
  }
  return limit;
}

// The larger buffers live here, not on the caller's stack: the limit is
// read lazily (alloc/scavenger.c), possibly by a goroutine, whose stack
// may be as small as 16 KiB. Calls are rare; one at a time.
static struct {
  _Atomic int busy;
  paths_t p;
  char line[LINE_BYTES], dir[PATH_BYTES];
} scratch;

int64_t gort__os_cgroup_memory_limit(const char *root) {
  if (root == NULL) root = "";
  while (atomic_exchange_explicit(&scratch.busy, 1, memory_order_acquire) != 0) sched_yield();
  paths_t *p = &scratch.p;
  char *line = scratch.line, *dir = scratch.dir;
  size_t top;
  read_paths(root, p, line);
  int64_t limit = INT64_MAX;
  if (p->v2[0] != '\0' && find_dir(root, p->v2, true, dir, &top, line)) {
    int64_t v = walk_up(dir, top, "memory.max", "memory.high");
    if (v < limit) limit = v;
  }
  if (p->v1[0] != '\0' && find_dir(root, p->v1, false, dir, &top, line)) {
    int64_t v = walk_up(dir, top, "memory.limit_in_bytes", NULL);
    if (v < limit) limit = v;
  }
  atomic_store_explicit(&scratch.busy, 0, memory_order_release);
  return limit;
}

// A fork while another thread read leaves the child's copy marked busy by
// a thread it does not have.
void gort__os_cgroup_after_fork_child(void) { atomic_store_explicit(&scratch.busy, 0, memory_order_relaxed); }
