// Writing heap profiles in pprof's format (Go: runtime/pprof/protomem.go).
//
// The output is profile.proto (github.com/google/pprof/proto/profile.proto)
// in a gzip stream. gort encodes both itself, without zlib: the protobuf is
// a handful of varint and length-delimited fields, and gzip permits
// "stored" deflate blocks, so the stream is valid (gzip -t, go tool pprof)
// at the cost of no compression. Every buffer is mmap'd, never from the
// heap being profiled.
//
// Values are scaled from samples to estimates as Go does: a bucket whose
// sampled objects average s bytes was sampled with probability
// 1 - exp(-s / rate), so its counts are divided by that.

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../base/base.h"
#include "../alloc/alloc_init.h"
#include "../os/os.h"
#include "gort/prof.h"
#include "mprof.h"
#include "pprof.h"

// ---- a growable buffer of mmap'd memory ---------------------------------------

typedef struct {
  uint8_t *p;
  size_t len, cap;
  int err;  // sticky -errno
} buf_t;

static void buf_reserve(buf_t *b, size_t more) {
  if (b->err || b->len + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : 1 << 16;
  while (cap < b->len + more) cap *= 2;
  int err;
  uint8_t *q = gort__os_reserve(0, cap, 4096, &err);
  if (q == NULL) {
    b->err = err;
    return;
  }
  if (b->p != NULL) {
    memcpy(q, b->p, b->len);
    gort__os_unmap(b->p, b->cap);
  }
  b->p = q;
  b->cap = cap;
}

static void buf_put(buf_t *b, const void *data, size_t n) {
  buf_reserve(b, n);
  if (b->err) return;
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void buf_free(buf_t *b) {
  if (b->p != NULL) gort__os_unmap(b->p, b->cap);
  b->p = NULL;
  b->len = b->cap = 0;
}

// ---- protobuf ------------------------------------------------------------------

static void pb_varint(buf_t *b, uint64_t v) {
  uint8_t tmp[10];
  int n = 0;
  do {
    tmp[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
    v >>= 7;
  } while (v != 0);
  buf_put(b, tmp, (size_t)n);
}

static void pb_uint(buf_t *b, int field, uint64_t v) {
  pb_varint(b, (uint64_t)field << 3);
  pb_varint(b, v);
}

static void pb_bytes(buf_t *b, int field, const void *data, size_t n) {
  pb_varint(b, (uint64_t)field << 3 | 2);
  pb_varint(b, n);
  buf_put(b, data, n);
}

static void pb_msg(buf_t *b, int field, buf_t *sub) {
  pb_bytes(b, field, sub->p, sub->len);
  if (sub->err) b->err = sub->err;
  sub->len = 0;
}

// ---- the heap profile's strings ------------------------------------------------------

enum { S_EMPTY, S_ALLOC_OBJECTS, S_COUNT, S_ALLOC_SPACE, S_BYTES, S_INUSE_OBJECTS, S_INUSE_SPACE, S_SPACE,
       S_FIXED };
static const char *const heap_strings[S_FIXED] = {
    "", "alloc_objects", "count", "alloc_space", "bytes", "inuse_objects", "inuse_space", "space"};

// ---- mappings from /proc/self/maps ---------------------------------------------------

#define MAX_MAPPINGS 512
typedef struct {
  uintptr_t lo, hi, off;
  char path[256];
} mapping_t;

struct pprof_writer {
  const pprof_spec_t *spec;
  buf_t out;         // the encoded Profile
  buf_t sub, sub2;   // scratch for nested messages
  mapping_t *maps;   // mmap'd, MAX_MAPPINGS
  int nmaps;
  uintptr_t *locs;   // pc of each location id - 1 (open addressing by pc)
  size_t loc_cap, nlocs;
  uint64_t *loc_ids;
  int64_t rate;
};
typedef pprof_writer_t writer_t;

static int read_maps(writer_t *w) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  buf_t text = {0};
  char chunk[4096];
  ssize_t n;
  while ((n = read(fd, chunk, sizeof chunk)) > 0) buf_put(&text, chunk, (size_t)n);
  close(fd);
  buf_put(&text, "", 1);
  if (text.err) return text.err;
  for (char *line = (char *)text.p; *line && w->nmaps < MAX_MAPPINGS;) {
    char *end = strchr(line, '\n');
    if (end) *end = '\0';
    // start-end perms offset dev inode path
    uintptr_t lo = 0, hi = 0, off = 0;
    char *s = line;
    while (*s && *s != '-') lo = lo * 16 + (uintptr_t)(*s <= '9' ? *s - '0' : (*s | 32) - 'a' + 10), s++;
    s++;
    while (*s && *s != ' ') hi = hi * 16 + (uintptr_t)(*s <= '9' ? *s - '0' : (*s | 32) - 'a' + 10), s++;
    s++;
    bool exec = s[2] == 'x';
    while (*s && *s != ' ') s++;
    s++;
    while (*s && *s != ' ') off = off * 16 + (uintptr_t)(*s <= '9' ? *s - '0' : (*s | 32) - 'a' + 10), s++;
    for (int field = 0; field < 2 && *s; field++) {  // dev, inode
      while (*s == ' ') s++;
      while (*s && *s != ' ') s++;
    }
    while (*s == ' ') s++;
    if (exec && *s == '/') {
      mapping_t *m = &w->maps[w->nmaps++];
      m->lo = lo, m->hi = hi, m->off = off;
      gort__snprint(m->path, sizeof m->path, "%s", s);
    }
    if (!end) break;
    line = end + 1;
  }
  buf_free(&text);
  return 0;
}

static int mapping_of(const writer_t *w, uintptr_t pc) {
  for (int i = 0; i < w->nmaps; i++)
    if (pc >= w->maps[i].lo && pc < w->maps[i].hi) return i + 1;
  return 0;
}

// The location id of pc, adding it if new. Ids are 1-based.
static uint64_t location_id(writer_t *w, uintptr_t pc) {
  size_t j = (size_t)(pc * 0x9E3779B97F4A7C15ULL) & (w->loc_cap - 1);
  while (w->locs[j] != 0) {
    if (w->locs[j] == pc) return w->loc_ids[j];
    j = (j + 1) & (w->loc_cap - 1);
  }
  if (w->nlocs + 1 >= w->loc_cap / 2) return 0;  // full: leave the frame out
  w->locs[j] = pc;
  w->loc_ids[j] = ++w->nlocs;
  return w->loc_ids[j];
}

// exp(-x) for x >= 0 without libm: 2^(-x/ln2), integer part by shifting
// the exponent, fraction by a short series.
static double exp_neg(double x) {
  if (x > 700) return 0;
  double y = x / 0.6931471805599453;
  int k = (int)y;
  double f = (y - k) * 0.6931471805599453;  // exp(-f), f in [0, ln 2)
  double e = 1 - f * (1 - f / 2 * (1 - f / 3 * (1 - f / 4 * (1 - f / 5 * (1 - f / 6)))));
  while (k-- > 0) e *= 0.5;
  return e;
}

void gort__pprof_sample(pprof_writer_t *w, const uintptr_t *pcs, uint32_t depth, const int64_t *values,
                        int nvalues, int label_key, int label_str) {
  buf_t *s = &w->sub, *p = &w->sub2;
  for (uint32_t i = 0; i < depth; i++) {
    // pprof symbolizes each address as the call: step back into it from
    // the return address, except for the innermost frame.
    uint64_t id = location_id(w, pcs[i] - (i > 0));
    if (id != 0) pb_varint(p, id);
  }
  pb_msg(s, 1, p);  // location_id, packed
  for (int i = 0; i < nvalues; i++) pb_varint(p, (uint64_t)values[i]);
  pb_msg(s, 2, p);  // value, packed
  if (label_key != 0) {
    pb_uint(p, 1, (uint64_t)label_key);
    pb_uint(p, 2, (uint64_t)label_str);
    pb_msg(s, 3, p);  // label
  }
  pb_msg(&w->out, 2, s);
}

static void write_sample(const bucket_t *b, void *arg) {
  writer_t *w = arg;
  if (b->allocs == 0) return;
  double avg = (double)b->alloc_bytes / (double)b->allocs;
  double scale = w->rate > 0 ? 1 / (1 - exp_neg(avg / (double)w->rate)) : 1;
  uint64_t live = b->allocs - b->frees, live_bytes = b->alloc_bytes - b->free_bytes;
  int64_t v[4] = {(int64_t)((double)b->allocs * scale + 0.5), (int64_t)((double)b->alloc_bytes * scale + 0.5),
                  (int64_t)((double)live * scale + 0.5), (int64_t)((double)live_bytes * scale + 0.5)};
  gort__pprof_sample(w, b->pcs, b->depth, v, 4, 0, 0);
}

static void value_type(writer_t *w, int field, int type, int unit) {
  pb_uint(&w->sub, 1, (uint64_t)type);
  pb_uint(&w->sub, 2, (uint64_t)unit);
  pb_msg(&w->out, field, &w->sub);
}

static void heap_samples(pprof_writer_t *w, void *arg) {
  (void)arg;
  gort__mprof_foreach(write_sample, w);
}

static int encode(writer_t *w) {
  const pprof_spec_t *sp = w->spec;
  for (int i = 0; i < sp->ntypes; i++) value_type(w, 1, sp->types[i][0], sp->types[i][1]);
  sp->samples(w, sp->arg);
  for (int i = 0; i < w->nmaps; i++) {
    const mapping_t *m = &w->maps[i];
    pb_uint(&w->sub, 1, (uint64_t)i + 1);
    pb_uint(&w->sub, 2, m->lo);
    pb_uint(&w->sub, 3, m->hi);
    pb_uint(&w->sub, 4, m->off);
    pb_uint(&w->sub, 5, (uint64_t)sp->nstrings + (uint64_t)i);  // filename
    pb_msg(&w->out, 3, &w->sub);
  }
  for (size_t j = 0; j < w->loc_cap; j++) {
    if (w->locs[j] == 0) continue;
    pb_uint(&w->sub, 1, w->loc_ids[j]);
    int m = mapping_of(w, w->locs[j]);
    if (m != 0) pb_uint(&w->sub, 2, (uint64_t)m);
    pb_uint(&w->sub, 3, w->locs[j]);
    pb_msg(&w->out, 4, &w->sub);
  }
  for (int i = 0; i < sp->nstrings; i++) pb_bytes(&w->out, 6, sp->strings[i], strlen(sp->strings[i]));
  for (int i = 0; i < w->nmaps; i++) pb_bytes(&w->out, 6, w->maps[i].path, strlen(w->maps[i].path));
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  pb_uint(&w->out, 9, (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec);
  value_type(w, 11, sp->period_type, sp->period_unit);
  pb_uint(&w->out, 12, (uint64_t)(sp->period > 0 ? sp->period : 1));
  pb_uint(&w->out, 14, (uint64_t)sp->default_type);  // default_sample_type (a string index)
  return w->out.err | w->sub.err | w->sub2.err;
}

// ---- gzip with stored deflate blocks ---------------------------------------------------

static uint32_t crc_table[256];

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

static uint32_t crc32(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return k < 0 ? -errno : -EIO;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static int write_gzip(int fd, const buf_t *data) {
  static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  if (crc_table[1] == 0) crc_init();
  int err = write_all(fd, header, sizeof header);
  size_t off = 0;
  do {
    size_t n = data->len - off > 65535 ? 65535 : data->len - off;
    bool last = off + n == data->len;
    uint8_t hdr[5] = {last, (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)~n, (uint8_t)(~n >> 8)};
    if (!err) err = write_all(fd, hdr, 5);
    if (!err && n > 0) err = write_all(fd, data->p + off, n);
    off += n;
  } while (off < data->len && !err);
  uint32_t crc = crc32(data->p, data->len), size = (uint32_t)data->len;
  uint8_t trailer[8] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24),
                        (uint8_t)size, (uint8_t)(size >> 8), (uint8_t)(size >> 16), (uint8_t)(size >> 24)};
  if (!err) err = write_all(fd, trailer, sizeof trailer);
  return err;
}

int gort__pprof_write(int fd, const pprof_spec_t *spec) {
  gort__start_ensure();
  writer_t w = {0};
  w.spec = spec;
  w.rate = spec->period;
  int err;
  w.maps = gort__os_reserve(0, MAX_MAPPINGS * sizeof(mapping_t), 4096, &err);
  w.loc_cap = 1 << 16;
  w.locs = gort__os_reserve(0, w.loc_cap * sizeof *w.locs, 4096, &err);
  w.loc_ids = gort__os_reserve(0, w.loc_cap * sizeof *w.loc_ids, 4096, &err);
  if (w.maps == NULL || w.locs == NULL || w.loc_ids == NULL) {
    err = -ENOMEM;
  } else if ((err = read_maps(&w)) == 0 && (err = encode(&w)) == 0) {
    err = write_gzip(fd, &w.out);
  }
  buf_free(&w.out), buf_free(&w.sub), buf_free(&w.sub2);
  if (w.maps) gort__os_unmap(w.maps, MAX_MAPPINGS * sizeof(mapping_t));
  if (w.locs) gort__os_unmap(w.locs, w.loc_cap * sizeof *w.locs);
  if (w.loc_ids) gort__os_unmap(w.loc_ids, w.loc_cap * sizeof *w.loc_ids);
  return err;
}

int gort_heap_profile_write(int fd) {
  static const int types[4][2] = {
      {S_ALLOC_OBJECTS, S_COUNT}, {S_ALLOC_SPACE, S_BYTES}, {S_INUSE_OBJECTS, S_COUNT}, {S_INUSE_SPACE, S_BYTES}};
  pprof_spec_t spec = {.strings = heap_strings, .nstrings = S_FIXED, .types = types, .ntypes = 4,
                       .period_type = S_SPACE, .period_unit = S_BYTES, .period = gort__mprof_rate(),
                       .default_type = S_INUSE_SPACE, .samples = heap_samples};
  return gort__pprof_write(fd, &spec);
}
