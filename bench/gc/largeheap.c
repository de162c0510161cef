/* A large-heap cache: a table of slots, each holding 1-3 entries; an entry
 * is a small scanned object (key, length, pointer) whose value, 64-1024
 * bytes, is a noscan object filled with a byte of its key. The table is
 * filled until about LIVE MiB are in use (the table, 24 bytes per entry
 * header and the values, counted as requested), then R random
 * replacements each give one slot 1-3 new entries; the old ones become
 * garbage (the malloc build frees them). At the end every entry is walked
 * and its value checked.
 *
 * Usage: largeheap-IMPL [LIVE_MIB [R]]   (defaults 1024 and 4000000)
 * Random numbers: splitmix64, seeded 1, drawn in the same order by the Go
 * version. Checksum: the sum over live entries of key ^ len, plus their
 * number (the same for every implementation).
 */
#include "gcb.h"

typedef struct entry {
  uint64_t key;
  uint64_t len;
  unsigned char *val;  /* noscan, len bytes */
} entry;

typedef struct slot {
  entry *e[3];
} slot;

enum { MIN_VAL = 64, MAX_VAL = 1024, HDR = 24 };

static uint64_t rng = 1;
static uint64_t next_rand(void) { return gcb_rand(&rng); }

static uint64_t live_bytes;  /* requested bytes of entries and values */

static entry *new_entry(void) {
  uint64_t key = next_rand();
  uint64_t len = MIN_VAL + next_rand() % (MAX_VAL - MIN_VAL + 1);
  entry *e = gcb_alloc(sizeof *e);
  unsigned char *v = gcb_alloc_noscan(len);
  memset(v, (int)(key & 0xff), len);
  e->key = key;
  e->len = len;
  gcb_store(e->val, v);
  live_bytes += HDR + len;
  return e;
}

static void fill_slot(slot *s) {
  int n = 1 + (int)(next_rand() % 3);
  for (int k = 0; k < 3; k++) gcb_store(s->e[k], k < n ? new_entry() : NULL);
}

static void drop_entry(entry *e) {
  if (e == NULL) return;
  live_bytes -= HDR + e->len;
#if GCB_MANUAL
  gcb_free(e->val);
  gcb_free(e);
#endif
}

int main(int argc, char **argv) {
  uint64_t live_mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
  uint64_t repl = argc > 2 ? strtoull(argv[2], NULL, 10) : 4000000;
  if (live_mib == 0) gcb_die("LIVE_MIB must be positive");
  /* Expected bytes per slot: its table entry and two entries of 544. */
  uint64_t per_slot = sizeof(slot) + 2 * (HDR + (MIN_VAL + MAX_VAL) / 2);
  uint64_t nslots = (live_mib << 20) / per_slot;
  gcb_init();

  slot *table = gcb_alloc(nslots * sizeof(slot));
  live_bytes = nslots * sizeof(slot);
  for (uint64_t i = 0; i < nslots; i++) fill_slot(&table[i]);
  uint64_t t_filled = gcb_now_ns();
  fprintf(stderr, "%llu slots, %.1f MiB live after the fill (%.2f s)\n",
          (unsigned long long)nslots, (double)live_bytes / 1048576.0,
          (double)(t_filled - gcb_start_ns) / 1e9);

  for (uint64_t r = 0; r < repl; r++) {
    slot *s = &table[next_rand() % nslots];
    slot old = *s;
    fill_slot(s);
    for (int k = 0; k < 3; k++) drop_entry(old.e[k]);
  }

  uint64_t checksum = 0, entries = 0;
  for (uint64_t i = 0; i < nslots; i++) {
    for (int k = 0; k < 3; k++) {
      const entry *e = table[i].e[k];
      if (e == NULL) continue;
      gcb_tick();
      unsigned char b = (unsigned char)(e->key & 0xff);
      if (e->len < MIN_VAL || e->len > MAX_VAL || e->val[0] != b || e->val[e->len - 1] != b ||
          e->val[e->len / 2] != b)
        gcb_die("an entry's value was overwritten");
      checksum += e->key ^ e->len;
      entries++;
    }
  }
  checksum += entries;
  fprintf(stderr, "%llu entries, %.1f MiB live at the end, replacements %.2f s\n",
          (unsigned long long)entries, (double)live_bytes / 1048576.0,
          (double)(gcb_now_ns() - t_filled) / 1e9);
  gcb_finish("largeheap", checksum);
#if GCB_MANUAL
  for (uint64_t i = 0; i < nslots; i++)
    for (int k = 0; k < 3; k++) drop_entry(table[i].e[k]);
  gcb_free(table);
#endif
  return 0;
}
