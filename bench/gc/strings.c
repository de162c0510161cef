/* Short strings: a table of SLOTS slots, each holding a noscan string of 1
 * to 15 bytes; N times, a new string of random length, filled, replaces a
 * random slot's (the malloc build frees the old one). Strings under 16
 * bytes go to gort's and Go's tiny allocators (gc/tiny.c: packed several
 * to a 16-byte block); bdwgc and malloc give each at least 16 bytes.
 *
 * Usage: strings-IMPL [SLOTS [N]]   (default 65536 20000000)
 * The checksum is the sum of the bytes of the strings left in the table
 * (the same for every implementation: same random numbers, same order).
 */
#include "gcb.h"

static uint64_t rng = 7;

int main(int argc, char **argv) {
  uint64_t slots = argc > 1 ? strtoull(argv[1], NULL, 10) : 65536;
  uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000000;
  if (slots == 0) gcb_die("SLOTS must be positive");
  gcb_init();
  unsigned char **table = gcb_alloc(slots * sizeof *table);
  unsigned char *lens = gcb_alloc_noscan(slots);
  memset(lens, 0, slots);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t r = gcb_rand(&rng);
    uint64_t k = r % slots, len = 1 + (r >> 32) % 15;
    unsigned char *s = gcb_alloc_noscan(len);
    memset(s, (int)(r >> 48) & 0xff, len);
    gcb_free(table[k]);
    gcb_store(table[k], s);
    lens[k] = (unsigned char)len;
    gcb_tick();
  }
  uint64_t checksum = 0;
  for (uint64_t k = 0; k < slots; k++)
    for (unsigned j = 0; j < lens[k]; j++) checksum += table[k][j];
  gcb_finish("strings", checksum);
#if GCB_MANUAL
  for (uint64_t k = 0; k < slots; k++) gcb_free(table[k]);
  gcb_free(lens);
  gcb_free(table);
#endif
  return 0;
}
