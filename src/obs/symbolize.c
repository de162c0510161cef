// Symbolization for the leak report: module, function, file and line of a
// program counter, without addr2line and without allocating.
//
// A leak report is read by a person, often from a CI log where nobody can
// run a symbolizer afterwards, so it names each frame itself, as
// LeakSanitizer does:
//   1. dladdr1 finds the loaded object holding the PC and its link map (the
//      load bias, l_addr).
//   2. The object's file is mapped read-only (the main program's through
//      /proc/self/exe). Its function symbols (.symtab, else .dynsym: a
//      stripped program keeps only its exported names) are sorted once; a
//      PC's function is the symbol covering PC - bias. If the file has a
//      build id and /usr/lib/debug/.build-id/xx/rest.debug exists (Debian's
//      -dbgsym packages), that file's symbols and line tables are used.
//   3. File and line come from .debug_line (DWARF 2 to 5), whose line
//      programs are run once per object for all the report's PCs at once:
//      each row range [row, next row) of a sequence assigns its file and
//      line to the PCs inside it. Compressed debug sections (zlib) are not
//      read: those frames keep function and module only.
//   4. Failing all that, dladdr's own nearest dynamic symbol, else
//      module+offset, which `addr2line -e module offset` resolves later.
// Names are not demangled (C++ frames read as _ZN...).
//
// Every buffer is mapped from the OS and unmapped by gort__sym_release;
// lookups run in normal context after the leak check's world has
// restarted (dladdr takes the loader's lock).

#define _GNU_SOURCE
#include "symbolize.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "../base/base.h"
#include "../os/os.h"

#define MAX_MODULES 256
#define ARENA_BYTES ((size_t)4 << 20)  // composed paths and names

typedef struct {
  uintptr_t addr;  // module-relative
  uint32_t size;
  uint32_t name;   // offset in the string table
} fsym_t;

typedef struct {
  const uint8_t *p;
  size_t size;
} sect_t;

typedef struct {
  const void *lm;          // the link map: the key
  uintptr_t bias;
  const char *path;        // as loaded
  void *file;              // mapped ELF (the debug file if found, else the object)
  size_t file_size;
  void *obj;               // the object's own file when file is a debug file
  size_t obj_size;
  fsym_t *syms;
  size_t nsyms, syms_bytes;
  const char *strtab;
  sect_t line, line_str, str;
  bool read;
} module_t;

static struct {
  module_t mods[MAX_MODULES];
  int nmods;
  char *arena;
  size_t arena_used;
  char exe[4096];
} sy;

// ---- helpers ----------------------------------------------------------------------

static void swap_bytes(uint8_t *a, uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint8_t t = a[i];
    a[i] = b[i];
    b[i] = t;
  }
}

static void sift(uint8_t *base, size_t root, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  for (;;) {
    size_t child = 2 * root + 1;
    if (child >= n) return;
    if (child + 1 < n && cmp(base + child * size, base + (child + 1) * size) < 0) child++;
    if (cmp(base + root * size, base + child * size) >= 0) return;
    swap_bytes(base + root * size, base + child * size, size);
    root = child;
  }
}

void gort__heapsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
  uint8_t *b = base;
  if (n < 2) return;
  for (size_t i = n / 2; i-- > 0;) sift(b, i, n, size, cmp);
  for (size_t end = n - 1; end > 0; end--) {
    swap_bytes(b, b + end * size, size);
    sift(b, 0, end, size, cmp);
  }
}

static const char *arena_str(const char *a, const char *sep, const char *b) {
  if (sy.arena == NULL) {
    int err;
    sy.arena = gort__os_reserve(0, ARENA_BYTES, 4096, &err);
    if (sy.arena == NULL) return b;
  }
  size_t la = a ? strlen(a) : 0, ls = a ? strlen(sep) : 0, lb = strlen(b);
  if (sy.arena_used + la + ls + lb + 1 > ARENA_BYTES) return b;
  char *out = sy.arena + sy.arena_used;
  if (a) memcpy(out, a, la), memcpy(out + la, sep, ls);
  memcpy(out + la + ls, b, lb + 1);
  sy.arena_used += la + ls + lb + 1;
  return out;
}

// ---- ELF --------------------------------------------------------------------------

static const Elf64_Ehdr *elf_header(const void *file, size_t size) {
  const Elf64_Ehdr *eh = file;
  if (size < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64)
    return NULL;
  if (eh->e_shoff == 0 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
      eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) > size || eh->e_shstrndx >= eh->e_shnum)
    return NULL;
  return eh;
}

static const Elf64_Shdr *sections(const void *file) {
  return (const Elf64_Shdr *)((const uint8_t *)file + ((const Elf64_Ehdr *)file)->e_shoff);
}

static sect_t section(const void *file, size_t size, const char *name) {
  const Elf64_Ehdr *eh = elf_header(file, size);
  sect_t none = {NULL, 0};
  if (eh == NULL) return none;
  const Elf64_Shdr *sh = sections(file), *strs = &sh[eh->e_shstrndx];
  for (int i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_name >= strs->sh_size || strs->sh_offset + strs->sh_size > size) continue;
    const char *n = (const char *)file + strs->sh_offset + sh[i].sh_name;
    if (strcmp(n, name) != 0 || sh[i].sh_type == SHT_NOBITS || (sh[i].sh_flags & SHF_COMPRESSED)) continue;
    if (sh[i].sh_offset + sh[i].sh_size > size) return none;
    return (sect_t){(const uint8_t *)file + sh[i].sh_offset, sh[i].sh_size};
  }
  return none;
}

// The path of the separate debug file named by the build id, if it exists.
static bool debug_file(const void *file, size_t size, char *out, size_t outsize) {
  sect_t n = section(file, size, ".note.gnu.build-id");
  if (n.p == NULL || n.size < 16) return false;
  const Elf64_Nhdr *nh = (const Elf64_Nhdr *)n.p;
  const uint8_t *id = n.p + sizeof *nh + GORT_ALIGN_UP(nh->n_namesz, 4u);
  if (nh->n_type != NT_GNU_BUILD_ID || nh->n_descsz < 2 || id + nh->n_descsz > n.p + n.size) return false;
  static const char hex[] = "0123456789abcdef";
  size_t k = gort__snprint(out, outsize, "/usr/lib/debug/.build-id/%c%c/", hex[id[0] >> 4], hex[id[0] & 15]);
  for (uint32_t i = 1; i < nh->n_descsz && k + 3 < outsize; i++) {
    out[k++] = hex[id[i] >> 4];
    out[k++] = hex[id[i] & 15];
  }
  if (k + 7 > outsize) return false;
  memcpy(out + k, ".debug", 7);
  return access(out, R_OK) == 0;
}

static int sym_cmp(const void *a, const void *b) {
  uintptr_t x = ((const fsym_t *)a)->addr, y = ((const fsym_t *)b)->addr;
  return x < y ? -1 : x > y;
}

// The function symbols of a file's symbol table of the given type.
static void read_symbols(module_t *m, const void *file, size_t size, uint32_t type) {
  const Elf64_Ehdr *eh = elf_header(file, size);
  if (eh == NULL) return;
  const Elf64_Shdr *sh = sections(file);
  for (int i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type != type || sh[i].sh_link >= eh->e_shnum) continue;
    const Elf64_Shdr *st = &sh[sh[i].sh_link];
    if (sh[i].sh_offset + sh[i].sh_size > size || st->sh_offset + st->sh_size > size) return;
    const Elf64_Sym *syms = (const Elf64_Sym *)((const uint8_t *)file + sh[i].sh_offset);
    size_t n = sh[i].sh_size / sizeof *syms, k = 0;
    int err;
    m->syms_bytes = GORT_ALIGN_UP(n * sizeof(fsym_t) + 1, (size_t)4096);
    m->syms = gort__os_reserve(0, m->syms_bytes, 4096, &err);
    if (m->syms == NULL) return;
    for (size_t j = 0; j < n; j++) {
      int t = ELF64_ST_TYPE(syms[j].st_info);
      if ((t != STT_FUNC && t != STT_GNU_IFUNC) || syms[j].st_shndx == SHN_UNDEF || syms[j].st_value == 0 ||
          syms[j].st_name >= st->sh_size)
        continue;
      m->syms[k++] = (fsym_t){syms[j].st_value, (uint32_t)syms[j].st_size, syms[j].st_name};
    }
    m->nsyms = k;
    m->strtab = (const char *)file + st->sh_offset;
    gort__heapsort(m->syms, k, sizeof *m->syms, sym_cmp);
    return;
  }
}

static void read_module(module_t *m) {
  m->read = true;
  const char *path = m->path[0] != '\0' ? m->path : "/proc/self/exe";
  int err;
  m->obj = gort__os_map_file(path, &m->obj_size, &err);
  if (m->obj == NULL || elf_header(m->obj, m->obj_size) == NULL) return;
  char dbg[512];
  if (debug_file(m->obj, m->obj_size, dbg, sizeof dbg)) m->file = gort__os_map_file(dbg, &m->file_size, &err);
  if (m->file == NULL || elf_header(m->file, m->file_size) == NULL) {
    if (m->file != NULL) gort__os_unmap_file(m->file, m->file_size);
    m->file = m->obj, m->file_size = m->obj_size;
    m->obj = NULL;
  }
  read_symbols(m, m->file, m->file_size, SHT_SYMTAB);
  if (m->nsyms == 0 && m->obj != NULL) read_symbols(m, m->obj, m->obj_size, SHT_SYMTAB);
  if (m->nsyms == 0) read_symbols(m, m->obj ? m->obj : m->file, m->obj ? m->obj_size : m->file_size, SHT_DYNSYM);
  m->line = section(m->file, m->file_size, ".debug_line");
  m->line_str = section(m->file, m->file_size, ".debug_line_str");
  m->str = section(m->file, m->file_size, ".debug_str");
}

static module_t *module_of(uintptr_t pc) {
  Dl_info info;
  struct link_map *lm = NULL;
  if (dladdr1((void *)pc, &info, (void **)&lm, RTLD_DL_LINKMAP) == 0 || lm == NULL) return NULL;
  for (int i = 0; i < sy.nmods; i++)
    if (sy.mods[i].lm == lm) return &sy.mods[i];
  if (sy.nmods == MAX_MODULES) return NULL;
  module_t *m = &sy.mods[sy.nmods++];
  memset(m, 0, sizeof *m);
  m->lm = lm;
  m->bias = lm->l_addr;
  m->path = lm->l_name != NULL ? lm->l_name : "";
  if (m->path[0] == '\0') {
    ssize_t k = readlink("/proc/self/exe", sy.exe, sizeof sy.exe - 1);
    sy.exe[k > 0 ? k : 0] = '\0';
    m->path = "";
  }
  return m;
}

static const char *module_name(const module_t *m) { return m->path[0] != '\0' ? m->path : sy.exe; }

static const fsym_t *find_symbol(const module_t *m, uintptr_t a) {
  size_t lo = 0, hi = m->nsyms;
  if (hi == 0 || a < m->syms[0].addr) return NULL;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (m->syms[mid].addr <= a) lo = mid; else hi = mid;
  }
  const fsym_t *s = &m->syms[lo];
  return s->size == 0 || a - s->addr < s->size ? s : NULL;
}

// ---- DWARF line tables ---------------------------------------------------------------

typedef struct {
  const uint8_t *p, *end;
  bool bad;
} rd_t;

static uint64_t rd_u(rd_t *r, int n) {
  if (r->p + n > r->end) {
    r->bad = true;
    r->p = r->end;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= (uint64_t)r->p[i] << (8 * i);
  r->p += n;
  return v;
}

static uint64_t rd_uleb(rd_t *r) {
  uint64_t v = 0;
  for (int shift = 0; r->p < r->end; shift += 7) {
    uint8_t b = *r->p++;
    if (shift < 64) v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
  r->bad = true;
  return v;
}

static int64_t rd_sleb(rd_t *r) {
  int64_t v = 0;
  int shift = 0;
  uint8_t b = 0x80;
  while (r->p < r->end && (b & 0x80)) {
    b = *r->p++;
    if (shift < 64) v |= (int64_t)(b & 0x7f) << shift;
    shift += 7;
  }
  if (shift < 64 && (b & 0x40)) v |= -((int64_t)1 << shift);
  return v;
}

static const char *rd_str(rd_t *r) {
  const char *s = (const char *)r->p;
  const uint8_t *z = memchr(r->p, 0, (size_t)(r->end - r->p));
  if (z == NULL) {
    r->bad = true;
    r->p = r->end;
    return "";
  }
  r->p = z + 1;
  return s;
}

#define MAX_FILES 4096
#define MAX_DIRS 1024

typedef struct {
  const module_t *m;
  sym_t **want;  // sorted by module-relative pc - 1
  uintptr_t *key;
  size_t n;
  const char *dirs[MAX_DIRS];
  const char *files[MAX_FILES];
  uint32_t file_dir[MAX_FILES];
  uint32_t ndirs, nfiles;
  int version;
  bool offset64;
} lines_t;

static const char *str_at(sect_t s, uint64_t off) {
  if (s.p == NULL || off >= s.size || memchr(s.p + off, 0, s.size - off) == NULL) return "";
  return (const char *)s.p + off;
}

// A DWARF 5 entry's attribute value: a string (path) or a number.
static bool read_form(lines_t *L, rd_t *r, uint64_t form, const char **s, uint64_t *u) {
  *s = NULL, *u = 0;
  switch (form) {
    case 0x08: *s = rd_str(r); return true;                                        // string
    case 0x1f: *s = str_at(L->m->line_str, rd_u(r, L->offset64 ? 8 : 4)); return true;  // line_strp
    case 0x0e: *s = str_at(L->m->str, rd_u(r, L->offset64 ? 8 : 4)); return true;  // strp
    case 0x0b: *u = rd_u(r, 1); return true;
    case 0x05: *u = rd_u(r, 2); return true;
    case 0x06: *u = rd_u(r, 4); return true;
    case 0x07: *u = rd_u(r, 8); return true;
    case 0x0f: *u = rd_uleb(r); return true;
    case 0x1e: rd_u(r, 8), rd_u(r, 8); return true;                                 // data16 (MD5)
    case 0x09: r->p += rd_uleb(r); if (r->p > r->end) r->bad = true; return !r->bad;  // block
    default: return false;
  }
}

// DWARF 5's directory or file table: formats, then entries.
static bool read_entries(lines_t *L, rd_t *r, bool files) {
  uint8_t nfmt = (uint8_t)rd_u(r, 1);
  uint64_t fmt[16][2];
  if (nfmt > 16) return false;
  for (int i = 0; i < nfmt; i++) fmt[i][0] = rd_uleb(r), fmt[i][1] = rd_uleb(r);
  uint64_t count = rd_uleb(r);
  for (uint64_t e = 0; e < count && !r->bad; e++) {
    const char *path = "";
    uint64_t dir = 0;
    for (int i = 0; i < nfmt; i++) {
      const char *s;
      uint64_t u;
      if (!read_form(L, r, fmt[i][1], &s, &u)) return false;
      if (fmt[i][0] == 1 && s != NULL) path = s;  // DW_LNCT_path
      if (fmt[i][0] == 2) dir = u;                // DW_LNCT_directory_index
    }
    if (files && L->nfiles < MAX_FILES) L->file_dir[L->nfiles] = (uint32_t)dir, L->files[L->nfiles++] = path;
    if (!files && L->ndirs < MAX_DIRS) L->dirs[L->ndirs++] = path;
  }
  return !r->bad;
}

static const char *file_name(lines_t *L, uint64_t f) {
  if (L->version < 5) f -= 1;  // 1-based before DWARF 5
  if (f >= L->nfiles) return NULL;
  const char *name = L->files[f];
  uint32_t d = L->file_dir[f];
  if (name[0] == '/' || d >= L->ndirs || L->dirs[d][0] == '\0') return name;
  // DWARF 4's directory 0 is the compilation directory, which the line
  // table does not name: the file then stays relative.
  return arena_str(L->dirs[d], "/", name);
}

// Assigns file and line to the wanted PCs in [lo, hi).
static void assign(lines_t *L, uintptr_t lo, uintptr_t hi, uint64_t file, uint64_t line) {
  if (hi <= lo || L->n == 0 || lo > L->key[L->n - 1] || hi <= L->key[0]) return;
  size_t a = 0, b = L->n;  // first key >= lo
  while (a < b) {
    size_t mid = a + (b - a) / 2;
    if (L->key[mid] < lo) a = mid + 1; else b = mid;
  }
  const char *name = NULL;
  for (size_t i = a; i < L->n && L->key[i] < hi; i++) {
    if (L->want[i]->file != NULL) continue;
    if (name == NULL && (name = file_name(L, file)) == NULL) return;
    L->want[i]->file = name;
    L->want[i]->line = (uint32_t)line;
  }
}

static void run_unit(lines_t *L, rd_t *r) {
  uint64_t len = rd_u(r, 4);
  L->offset64 = len == 0xffffffff;
  if (L->offset64) len = rd_u(r, 8);
  if (r->bad || len > (uint64_t)(r->end - r->p)) {
    r->bad = true;
    return;
  }
  rd_t u = {r->p, r->p + len, false};
  r->p += len;
  L->version = (int)rd_u(&u, 2);
  if (L->version < 2 || L->version > 5) return;
  if (L->version >= 5) rd_u(&u, 2);  // address_size, segment_selector_size
  uint64_t hlen = rd_u(&u, L->offset64 ? 8 : 4);
  const uint8_t *prog = u.p + hlen;
  uint8_t min_inst = (uint8_t)rd_u(&u, 1);
  if (L->version >= 4) rd_u(&u, 1);  // maximum_operations_per_instruction
  rd_u(&u, 1);                        // default_is_stmt
  int8_t line_base = (int8_t)rd_u(&u, 1);
  uint8_t line_range = (uint8_t)rd_u(&u, 1), opcode_base = (uint8_t)rd_u(&u, 1);
  uint8_t lengths[256] = {0};
  for (int i = 1; i < opcode_base; i++) lengths[i] = (uint8_t)rd_u(&u, 1);
  L->ndirs = L->nfiles = 0;
  if (L->version >= 5) {
    if (!read_entries(L, &u, false) || !read_entries(L, &u, true)) return;
  } else {
    L->dirs[L->ndirs++] = "";  // the compilation directory
    for (const char *d; !u.bad && *(d = rd_str(&u)) != '\0';)
      if (L->ndirs < MAX_DIRS) L->dirs[L->ndirs++] = d;
    for (const char *f; !u.bad && *(f = rd_str(&u)) != '\0';) {
      uint64_t dir = rd_uleb(&u);
      rd_uleb(&u), rd_uleb(&u);
      if (L->nfiles < MAX_FILES) L->file_dir[L->nfiles] = (uint32_t)dir, L->files[L->nfiles++] = f;
    }
  }
  if (u.bad || prog > u.end || line_range == 0) return;
  u.p = prog;
  uint64_t addr = 0, file = 1, line = 1, row_addr = 0, row_file = 1, row_line = 1;
  bool have_row = false;
#define EMIT()                                                          \
  do {                                                                  \
    if (have_row) assign(L, row_addr, addr, row_file, row_line);        \
    row_addr = addr, row_file = file, row_line = line, have_row = true; \
  } while (0)
  while (u.p < u.end && !u.bad) {
    uint8_t op = (uint8_t)rd_u(&u, 1);
    if (op >= opcode_base) {
      uint8_t adj = (uint8_t)(op - opcode_base);
      addr += (uint64_t)(adj / line_range) * min_inst;
      line += (uint64_t)(line_base + adj % line_range);
      EMIT();
      continue;
    }
    switch (op) {
      case 0: {
        uint64_t n = rd_uleb(&u);
        const uint8_t *next = u.p + n;
        if (n == 0 || next > u.end) return;
        uint8_t sub = (uint8_t)rd_u(&u, 1);
        if (sub == 1) {  // end_sequence
          if (have_row) assign(L, row_addr, addr, row_file, row_line);
          have_row = false;
          addr = 0, file = 1, line = 1;
        } else if (sub == 2) {
          addr = rd_u(&u, (int)(n - 1) > 8 ? 8 : (int)(n - 1));
        }
        u.p = next;
        break;
      }
      case 1: EMIT(); break;                                       // copy
      case 2: addr += rd_uleb(&u) * min_inst; break;               // advance_pc
      case 3: line += (uint64_t)rd_sleb(&u); break;                // advance_line
      case 4: file = rd_uleb(&u); break;                           // set_file
      case 8: addr += (uint64_t)((255 - opcode_base) / line_range) * min_inst; break;  // const_add_pc
      case 9: addr += rd_u(&u, 2); break;                          // fixed_advance_pc
      default:
        for (int i = 0; i < lengths[op]; i++) rd_uleb(&u);
    }
  }
#undef EMIT
}

static int want_cmp(const void *a, const void *b) {
  const sym_t *x = *(sym_t *const *)a, *y = *(sym_t *const *)b;
  return x->module_off < y->module_off ? -1 : x->module_off > y->module_off;
}

// Lines for every frame of module m (want[0..n), its frames).
static void resolve_lines(const module_t *m, sym_t **want, size_t n) {
  if (m->line.p == NULL || n == 0) return;
  int err;
  size_t bytes = GORT_ALIGN_UP(sizeof(lines_t) + n * sizeof(uintptr_t), (size_t)4096);
  lines_t *L = gort__os_reserve(0, bytes, 4096, &err);
  if (L == NULL) return;
  L->m = m;
  L->want = want;
  L->key = (uintptr_t *)(L + 1);
  L->n = n;
  gort__heapsort(want, n, sizeof *want, want_cmp);
  for (size_t i = 0; i < n; i++) L->key[i] = want[i]->module_off - 1;  // the call, not the return address
  rd_t r = {m->line.p, m->line.p + m->line.size, false};
  while (r.p < r.end && !r.bad) run_unit(L, &r);
  gort__os_unmap(L, bytes);
}

// ---- the API ----------------------------------------------------------------------

void gort__sym_resolve(sym_t *syms, size_t n) {
  int err;
  size_t bytes = GORT_ALIGN_UP(n * sizeof(sym_t *) + 1, (size_t)4096);
  sym_t **byfile = gort__os_reserve(0, bytes, 4096, &err);
  for (size_t i = 0; i < n; i++) {
    sym_t *s = &syms[i];
    uintptr_t pc = s->pc;
    memset(s, 0, sizeof *s);
    s->pc = pc;
    module_t *m = module_of(pc - 1);
    if (m == NULL) continue;
    if (!m->read) read_module(m);
    s->module = module_name(m);
    s->module_off = pc - m->bias;
    const fsym_t *f = find_symbol(m, pc - 1 - m->bias);
    if (f != NULL) {
      s->func = m->strtab + f->name;
      s->func_off = pc - m->bias - f->addr;
    } else {
      Dl_info info;
      if (dladdr((void *)(pc - 1), &info) != 0 && info.dli_sname != NULL && info.dli_saddr != NULL) {
        s->func = info.dli_sname;
        s->func_off = pc - (uintptr_t)info.dli_saddr;
      }
    }
  }
  if (byfile == NULL) return;
  for (int k = 0; k < sy.nmods; k++) {
    size_t nw = 0;
    for (size_t i = 0; i < n; i++)
      if (syms[i].module != NULL && module_name(&sy.mods[k]) == syms[i].module) byfile[nw++] = &syms[i];
    resolve_lines(&sy.mods[k], byfile, nw);
  }
  gort__os_unmap(byfile, bytes);
}

void gort__sym_release(void) {
  for (int i = 0; i < sy.nmods; i++) {
    module_t *m = &sy.mods[i];
    if (m->syms != NULL) gort__os_unmap(m->syms, m->syms_bytes);
    if (m->file != NULL) gort__os_unmap_file(m->file, m->file_size);
    if (m->obj != NULL) gort__os_unmap_file(m->obj, m->obj_size);
  }
  sy.nmods = 0;
  if (sy.arena != NULL) gort__os_unmap(sy.arena, ARENA_BYTES);
  sy.arena = NULL;
  sy.arena_used = 0;
}
