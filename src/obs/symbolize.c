// Symbolization for the leak report: module, function, file and line of a
// program counter, and the functions inlined there, without addr2line and
// without allocating.
//
// A leak report is read by a person, often from a CI log where nobody can
// run a symbolizer afterwards, so it names each frame itself, as
// LeakSanitizer does:
//   1. dladdr1 finds the loaded object holding the PC and its link map (the
//      load bias, l_addr); in a fully static program, which dladdr knows
//      nothing of, dl_iterate_phdr's first entry, the program itself.
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
//   4. Functions inlined at the PC come from .debug_info (DWARF 2 to 5,
//      split DWARF aside): the DW_TAG_inlined_subroutine entries whose
//      ranges hold it, read only in the units whose ranges do. Each is a
//      frame of its own at the same PC, innermost first, at the line of
//      its call (LeakSanitizer's report, addr2line -i): the frame's
//      function becomes the innermost inlined one, and sym_t.inl lists
//      the rest out to the symbol's function.
//   5. Failing all that, dladdr's own nearest dynamic symbol, else
//      module+offset, which `addr2line -e module offset` resolves later.
// Names are not demangled (C++ frames read as _ZN...).
//
// Rejected for inlined frames: running addr2line -i (binutils may be
// absent where the report is read, it rereads all the debug info for
// each run, and the report would depend on a fork and exec at exit);
// .debug_aranges to find the unit (optional, often missing; the units'
// own ranges are as quick to test).
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
#include <sys/auxv.h>
#include <unistd.h>

#include "../base/base.h"
#include "../base/noscan.h"
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
  sect_t info, abbrev, ranges, rnglists, addr, str_offsets;  // for inlined frames
  bool read;
} module_t;

static struct {
  module_t mods[MAX_MODULES];
  int nmods;
  char *arena;
  size_t arena_used;
  char exe[4096];
  bool exe_by_name;  // open exe, not /proc/self/exe (module_for)
} sy;
GORT_NOSCAN(sy)

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

// n bytes of the arena, 8-aligned; NULL when it is full.
static void *arena_alloc(size_t n) {
  if (sy.arena == NULL) {
    int err;
    sy.arena = gort__os_reserve(0, ARENA_BYTES, 4096, &err);
    if (sy.arena == NULL) return NULL;
  }
  size_t at = GORT_ALIGN_UP(sy.arena_used, (size_t)8);
  if (at + n > ARENA_BYTES) return NULL;
  sy.arena_used = at + n;
  return sy.arena + at;
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

// Any type but NOBITS: gold and clang type .eh_frame SHT_X86_64_UNWIND.
const Elf64_Shdr *gort__elf_section(const void *file, size_t size, const char *name) {
  const Elf64_Ehdr *eh = elf_header(file, size);
  if (eh == NULL) return NULL;
  const Elf64_Shdr *sh = sections(file), *strs = &sh[eh->e_shstrndx];
  for (int i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_name >= strs->sh_size || strs->sh_offset + strs->sh_size > size) continue;
    const char *n = (const char *)file + strs->sh_offset + sh[i].sh_name;
    if (strcmp(n, name) != 0 || sh[i].sh_type == SHT_NOBITS || (sh[i].sh_flags & SHF_COMPRESSED)) continue;
    return sh[i].sh_offset + sh[i].sh_size > size ? NULL : &sh[i];
  }
  return NULL;
}

static sect_t section(const void *file, size_t size, const char *name) {
  const Elf64_Shdr *sh = gort__elf_section(file, size, name);
  if (sh == NULL) return (sect_t){NULL, 0};
  return (sect_t){(const uint8_t *)file + sh->sh_offset, sh->sh_size};
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
  const char *path = m->path[0] != '\0' ? m->path : sy.exe_by_name ? sy.exe : "/proc/self/exe";
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
  m->info = section(m->file, m->file_size, ".debug_info");
  m->abbrev = section(m->file, m->file_size, ".debug_abbrev");
  m->ranges = section(m->file, m->file_size, ".debug_ranges");
  m->rnglists = section(m->file, m->file_size, ".debug_rnglists");
  m->addr = section(m->file, m->file_size, ".debug_addr");
  m->str_offsets = section(m->file, m->file_size, ".debug_str_offsets");
}

typedef struct {
  uintptr_t pc, bias;
  bool found;
} exe_find_t;

static int exe_holds(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  exe_find_t *f = arg;
  for (size_t i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && f->pc >= lo && f->pc - lo < ph->p_memsz) {
      f->found = true;
      f->bias = info->dlpi_addr;
    }
  }
  return 1;  // the program is listed first: only it is asked
}

static module_t *module_of(uintptr_t pc) {
  Dl_info info;
  struct link_map *lm = NULL;
  uintptr_t bias = 0;
  const char *path = "";
  if (dladdr1((void *)pc, &info, (void **)&lm, RTLD_DL_LINKMAP) != 0 && lm != NULL) {
    bias = lm->l_addr;
    path = lm->l_name != NULL ? lm->l_name : "";
  } else {
    // A fully static program (no ld.so): dladdr knows nothing, and the
    // PCs are the program's own.
    exe_find_t f = {pc, 0, false};
    if (gort__os_loaded_by_ld_so() || (dl_iterate_phdr(exe_holds, &f), !f.found)) return NULL;
    lm = (struct link_map *)&sy;  // the key of the one module
    bias = f.bias;
  }
  for (int i = 0; i < sy.nmods; i++)
    if (sy.mods[i].lm == lm) return &sy.mods[i];
  if (sy.nmods == MAX_MODULES) return NULL;
  module_t *m = &sy.mods[sy.nmods++];
  memset(m, 0, sizeof *m);
  m->lm = lm;
  m->bias = bias;
  m->path = path;
  if (m->path[0] == '\0') {
    // The program. Started as `ld.so ./prog`, /proc/self/exe is ld.so (its
    // symbols named the program's frames), and AT_EXECFN, which ld.so sets
    // to the program's path as given, is the one name there is.
    const char *fn = (const char *)getauxval(AT_EXECFN);
    sy.exe_by_name = getauxval(AT_BASE) == 0 && gort__os_loaded_by_ld_so() && fn != NULL;
    if (sy.exe_by_name) {
      size_t k = strnlen(fn, sizeof sy.exe - 1);
      memcpy(sy.exe, fn, k);
      sy.exe[k] = '\0';
    } else {
      ssize_t k = readlink("/proc/self/exe", sy.exe, sizeof sy.exe - 1);
      sy.exe[k > 0 ? k : 0] = '\0';
    }
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

// Runs the line program of the unit at r (and moves r past it); with
// files_only, stops after its header, with the file table read.
static void run_unit(lines_t *L, rd_t *r, bool files_only) {
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
  if (u.bad || prog > u.end || line_range == 0 || files_only) return;
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
  while (r.p < r.end && !r.bad) run_unit(L, &r, false);
  gort__os_unmap(L, bytes);
}

// ---- inlined frames (.debug_info) -----------------------------------------------------

// A PC inside code that the compiler inlined is, to the reader, several
// frames: the inlined function at the line the line table gives, then
// each function it was inlined into, at the line of that call. The line
// table alone names none of them but the innermost file and line; the
// function symbol names only the outermost. .debug_info has the rest: a
// DW_TAG_inlined_subroutine per inlined call, nested as the calls were,
// with its address ranges, its function (DW_AT_abstract_origin) and its
// call site (DW_AT_call_file, DW_AT_call_line). resolve_inlines walks the
// units whose ranges hold a wanted PC, DIE by DIE, and gives each PC the
// chain of inlined calls around it (LeakSanitizer's report shows the same
// frames, from llvm-symbolizer). Split DWARF (.dwo) and type units are
// not read; a reference to another unit leaves that level unnamed ("??").

#define MAX_INLINE 16  // levels kept per PC; deeper nests keep their innermost ones

enum {
  TAG_INLINED = 0x1d, TAG_SUBPROGRAM = 0x2e, TAG_CU = 0x11, TAG_PARTIAL = 0x3c,
  AT_NAME = 0x03, AT_STMT_LIST = 0x10, AT_LOW_PC = 0x11, AT_HIGH_PC = 0x12, AT_ORIGIN = 0x31,
  AT_SPEC = 0x47, AT_RANGES = 0x55, AT_CALL_FILE = 0x58, AT_CALL_LINE = 0x59,
  AT_LINKAGE = 0x6e, AT_STR_OFFSETS_BASE = 0x72, AT_ADDR_BASE = 0x73, AT_RNGLISTS_BASE = 0x74,
};

typedef struct {
  uint64_t code;
  uint32_t tag, spec0, nspec;
  bool children;
} abbrev_t;

typedef struct {
  uint32_t name, form;
  int64_t implicit;  // DW_FORM_implicit_const's value
} aspec_t;

typedef struct {
  const char *func;       // the inlined function
  uint32_t call_file;     // where it was called: the unit's line table's file index,
  uint32_t call_line;     // and line
  const char *file;       // call_file's name, looked up when a wanted PC is inside
} level_t;

typedef struct {
  const module_t *m;
  sym_t **want;
  uintptr_t *key;      // sorted: want[i]'s pc - 1, module-relative
  size_t n;
  level_t *levels;     // MAX_INLINE per wanted PC, outermost first
  uint8_t *nlevels;
  abbrev_t *abbrevs;
  aspec_t *specs;
  size_t nabbrevs, nspecs, cap_abbrevs, cap_specs;
  // The unit being read.
  const uint8_t *unit, *unit_end;  // from its header's first byte
  int version;
  bool offset64;
  uint8_t addr_size;
  uint64_t base, str_offsets_base, addr_base, rnglists_base, stmt_list;
  bool have_stmt;
  lines_t *files;  // the unit's line table header (its file names), read when first needed
} info_t;

// An attribute's value: a number (addresses, constants, references,
// offsets) or a string.
typedef struct {
  uint64_t u;
  const char *s;
  uint32_t form;
} aval_t;

static bool read_abbrevs(info_t *I, uint64_t off) {
  I->nabbrevs = I->nspecs = 0;
  if (I->m->abbrev.p == NULL || off >= I->m->abbrev.size) return false;
  rd_t r = {I->m->abbrev.p + off, I->m->abbrev.p + I->m->abbrev.size, false};
  for (;;) {
    uint64_t code = rd_uleb(&r);
    if (code == 0 || r.bad) return !r.bad;
    if (I->nabbrevs == I->cap_abbrevs) return false;
    abbrev_t *a = &I->abbrevs[I->nabbrevs++];
    a->code = code;
    a->tag = (uint32_t)rd_uleb(&r);
    a->children = rd_u(&r, 1) != 0;
    a->spec0 = (uint32_t)I->nspecs;
    for (;;) {
      uint32_t name = (uint32_t)rd_uleb(&r), form = (uint32_t)rd_uleb(&r);
      if (r.bad) return false;
      if (name == 0 && form == 0) break;
      if (I->nspecs == I->cap_specs) return false;
      aspec_t *sp = &I->specs[I->nspecs++];
      sp->name = name, sp->form = form, sp->implicit = form == 0x21 ? rd_sleb(&r) : 0;
    }
    a->nspec = (uint32_t)I->nspecs - a->spec0;
  }
}

static const abbrev_t *find_abbrev(const info_t *I, uint64_t code) {
  if (code - 1 < I->nabbrevs && I->abbrevs[code - 1].code == code) return &I->abbrevs[code - 1];  // GCC's: dense
  for (size_t i = 0; i < I->nabbrevs; i++)
    if (I->abbrevs[i].code == code) return &I->abbrevs[i];
  return NULL;
}

static uint64_t rd_offset(const info_t *I, rd_t *r) { return rd_u(r, I->offset64 ? 8 : 4); }

static const char *str_index(const info_t *I, uint64_t i) {
  size_t w = I->offset64 ? 8 : 4;
  uint64_t at = I->str_offsets_base + i * w;
  sect_t so = I->m->str_offsets;
  if (so.p == NULL || at + w > so.size) return NULL;
  rd_t r = {so.p + at, so.p + so.size, false};
  return str_at(I->m->str, rd_u(&r, (int)w));
}

static uint64_t addr_index(const info_t *I, uint64_t i) {
  uint64_t at = I->addr_base + i * I->addr_size;
  sect_t a = I->m->addr;
  if (a.p == NULL || at + I->addr_size > a.size) return 0;
  rd_t r = {a.p + at, a.p + a.size, false};
  return rd_u(&r, I->addr_size);
}

// Reads one attribute value of the given form (skipping blocks and
// expressions); false on a form it does not know, which ends the unit.
static bool read_attr(const info_t *I, rd_t *r, uint32_t form, int64_t implicit, aval_t *v) {
  v->u = 0, v->s = NULL, v->form = form;
  switch (form) {
    case 0x01: v->u = rd_u(r, I->addr_size); return true;                      // addr
    case 0x03: r->p += rd_u(r, 2); break;                                       // block2
    case 0x04: r->p += rd_u(r, 4); break;                                       // block4
    case 0x05: v->u = rd_u(r, 2); return true;                                  // data2
    case 0x06: v->u = rd_u(r, 4); return true;                                  // data4
    case 0x07: v->u = rd_u(r, 8); return true;                                  // data8
    case 0x08: v->s = rd_str(r); return true;                                   // string
    case 0x09: case 0x18: r->p += rd_uleb(r); break;                            // block, exprloc
    case 0x0a: r->p += rd_u(r, 1); break;                                       // block1
    case 0x0b: case 0x0c: case 0x11: v->u = rd_u(r, 1); return true;            // data1, flag, ref1
    case 0x0d: v->u = (uint64_t)rd_sleb(r); return true;                        // sdata
    case 0x0e: v->s = str_at(I->m->str, rd_offset(I, r)); return true;          // strp
    case 0x0f: case 0x15: case 0x22: case 0x23: v->u = rd_uleb(r); return true; // udata, ref_udata, loclistx, rnglistx
    case 0x10: v->u = I->version == 2 ? rd_u(r, I->addr_size) : rd_offset(I, r); return true;  // ref_addr
    case 0x12: v->u = rd_u(r, 2); return true;                                  // ref2
    case 0x13: case 0x1c: v->u = rd_u(r, 4); return true;                       // ref4, ref_sup4
    case 0x14: case 0x20: case 0x24: v->u = rd_u(r, 8); return true;            // ref8, ref_sig8, ref_sup8
    case 0x16: return read_attr(I, r, (uint32_t)rd_uleb(r), 0, v);              // indirect
    case 0x17: case 0x1d: case 0x1f20: case 0x1f21: v->u = rd_offset(I, r); return true;  // sec_offset, strp_sup, GNU alt
    case 0x19: v->u = 1; return true;                                           // flag_present
    case 0x1a: case 0x1f02: v->s = str_index(I, rd_uleb(r)); return true;       // strx
    case 0x1b: case 0x1f01: v->u = addr_index(I, rd_uleb(r)); return true;      // addrx
    case 0x1e: rd_u(r, 8), rd_u(r, 8); return true;                             // data16
    case 0x1f: v->s = str_at(I->m->line_str, rd_offset(I, r)); return true;     // line_strp
    case 0x21: v->u = (uint64_t)implicit; return true;                          // implicit_const
    case 0x25: case 0x26: case 0x27: case 0x28:                                 // strx1..4
      v->s = str_index(I, rd_u(r, (int)(form - 0x24)));
      return true;
    case 0x29: case 0x2a: case 0x2b: case 0x2c:                                 // addrx1..4
      v->u = addr_index(I, rd_u(r, (int)(form - 0x28)));
      return true;
    default: r->bad = true; return false;
  }
  if (r->p > r->end) r->bad = true;
  return !r->bad;
}

static bool is_ref(uint32_t form) { return (form >= 0x11 && form <= 0x15) || form == 0x10; }

// The unit-relative offset a reference names, or 0 if it leaves the unit.
static uint64_t ref_in_unit(const info_t *I, const aval_t *v) {
  if (v->form != 0x10) return v->u;
  uint64_t unit_off = (uint64_t)(I->unit - I->m->info.p);
  if (v->u < unit_off || v->u >= unit_off + (uint64_t)(I->unit_end - I->unit)) return 0;
  return v->u - unit_off;
}

// The name of the DIE at unit offset off, following abstract origins and
// specifications (a few hops), or NULL.
static const char *die_name(const info_t *I, uint64_t off, int hops) {
  if (off == 0 || off >= (uint64_t)(I->unit_end - I->unit) || hops > 4) return NULL;
  rd_t r = {I->unit + off, I->unit_end, false};
  const abbrev_t *a = find_abbrev(I, rd_uleb(&r));
  if (a == NULL) return NULL;
  const char *name = NULL;
  uint64_t next = 0;
  for (uint32_t i = 0; i < a->nspec; i++) {
    const aspec_t *sp = &I->specs[a->spec0 + i];
    aval_t v;
    if (!read_attr(I, &r, sp->form, sp->implicit, &v)) return NULL;
    if (sp->name == AT_NAME && v.s != NULL) name = v.s;
    else if ((sp->name == AT_ORIGIN || sp->name == AT_SPEC) && is_ref(v.form)) next = ref_in_unit(I, &v);
  }
  return name != NULL ? name : die_name(I, next, hops + 1);
}

// Calls fn(I, lo, hi, arg) for each module-relative range of a DIE:
// [low, high) or its range list.
typedef void range_fn(info_t *I, uint64_t lo, uint64_t hi, void *arg);

static void each_range(info_t *I, const aval_t *ranges, uint64_t low, uint64_t high, bool high_is_len,
                       bool have_low, range_fn *fn, void *arg) {
  if (ranges == NULL) {
    if (have_low) fn(I, low, high_is_len ? low + high : high, arg);
    return;
  }
  uint64_t base = I->base;
  if (I->version < 5) {  // .debug_ranges: pairs, (~0, base) selects a base
    sect_t s = I->m->ranges;
    if (s.p == NULL || ranges->u >= s.size) return;
    rd_t r = {s.p + ranges->u, s.p + s.size, false};
    for (int k = 0; k < 100000 && !r.bad; k++) {
      uint64_t a = rd_u(&r, I->addr_size), b = rd_u(&r, I->addr_size);
      if (r.bad || (a == 0 && b == 0)) return;
      if (a == (I->addr_size == 8 ? UINT64_MAX : UINT32_MAX)) base = b;
      else fn(I, base + a, base + b, arg);
    }
    return;
  }
  sect_t s = I->m->rnglists;
  uint64_t off = ranges->u;
  if (s.p == NULL) return;
  if (ranges->form == 0x23) {  // rnglistx: an index into the offsets after rnglists_base
    size_t w = I->offset64 ? 8 : 4;
    uint64_t at = I->rnglists_base + off * w;
    if (at + w > s.size) return;
    rd_t ri = {s.p + at, s.p + s.size, false};
    off = I->rnglists_base + rd_u(&ri, (int)w);
  }
  if (off >= s.size) return;
  rd_t r = {s.p + off, s.p + s.size, false};
  for (int k = 0; k < 100000 && !r.bad; k++) {
    uint64_t a, b;
    switch (rd_u(&r, 1)) {
      case 0: return;                                                               // end_of_list
      case 1: base = addr_index(I, rd_uleb(&r)); break;                            // base_addressx
      case 2: a = addr_index(I, rd_uleb(&r)), b = addr_index(I, rd_uleb(&r)); fn(I, a, b, arg); break;
      case 3: a = addr_index(I, rd_uleb(&r)), b = rd_uleb(&r); fn(I, a, a + b, arg); break;
      case 4: a = rd_uleb(&r), b = rd_uleb(&r); fn(I, base + a, base + b, arg); break;  // offset_pair
      case 5: base = rd_u(&r, I->addr_size); break;                                // base_address
      case 6: a = rd_u(&r, I->addr_size), b = rd_u(&r, I->addr_size); fn(I, a, b, arg); break;
      case 7: a = rd_u(&r, I->addr_size), b = rd_uleb(&r); fn(I, a, a + b, arg); break;
      default: return;
    }
  }
}

// The first wanted key >= lo.
static size_t first_key(const info_t *I, uint64_t lo) {
  size_t a = 0, b = I->n;
  while (a < b) {
    size_t mid = a + (b - a) / 2;
    if (I->key[mid] < lo) a = mid + 1; else b = mid;
  }
  return a;
}

static void range_has_key(info_t *I, uint64_t lo, uint64_t hi, void *arg) {
  size_t i = first_key(I, lo);
  if (i < I->n && I->key[i] < hi) *(bool *)arg = true;
}

// Appends the inlined call to the chain of each wanted PC in [lo, hi).
static const char *call_file_name(info_t *I, uint32_t f);

static void range_add_level(info_t *I, uint64_t lo, uint64_t hi, void *arg) {
  level_t *lv = arg;
  for (size_t i = first_key(I, lo); i < I->n && I->key[i] < hi; i++) {
    if (lv->file == NULL) lv->file = call_file_name(I, lv->call_file);
    uint8_t *k = &I->nlevels[i];
    if (*k < MAX_INLINE) I->levels[i * MAX_INLINE + (*k)++] = *lv;
  }
}

// The attributes of one DIE that the walk needs.
typedef struct {
  aval_t ranges;
  uint64_t low, high, origin, stmt_list;
  const char *name;
  uint32_t call_file, call_line;
  bool have_ranges, have_low, have_high, high_is_len, have_origin, have_stmt;
} die_t;

static bool read_die(info_t *I, rd_t *r, const abbrev_t *a, die_t *d) {
  memset(d, 0, sizeof *d);
  for (uint32_t i = 0; i < a->nspec; i++) {
    const aspec_t *sp = &I->specs[a->spec0 + i];
    aval_t v;
    if (!read_attr(I, r, sp->form, sp->implicit, &v)) return false;
    switch (sp->name) {
      case AT_LOW_PC: d->low = v.u, d->have_low = true; break;
      case AT_HIGH_PC: d->high = v.u, d->have_high = true, d->high_is_len = sp->form != 0x01 && !(sp->form >= 0x29 && sp->form <= 0x2c) && sp->form != 0x1b; break;
      case AT_RANGES: d->ranges = v, d->have_ranges = true; break;
      case AT_ORIGIN: if (is_ref(v.form)) d->origin = ref_in_unit(I, &v), d->have_origin = true; break;
      case AT_NAME: if (v.s != NULL) d->name = v.s; break;
      case AT_CALL_FILE: d->call_file = (uint32_t)v.u; break;
      case AT_CALL_LINE: d->call_line = (uint32_t)v.u; break;
      case AT_STMT_LIST: d->stmt_list = v.u, d->have_stmt = true; break;
      case AT_STR_OFFSETS_BASE: I->str_offsets_base = v.u; break;
      case AT_ADDR_BASE: I->addr_base = v.u; break;
      case AT_RNGLISTS_BASE: I->rnglists_base = v.u; break;
      default: break;
    }
  }
  return true;
}

#define FILES_BYTES GORT_ALIGN_UP(sizeof(lines_t), (size_t)4096)

// Reads one unit (at r) for the wanted PCs in its ranges; moves r past it.
static void read_unit_dies(info_t *I, rd_t *r);
static void read_unit(info_t *I, rd_t *r) {
  I->files = NULL;
  read_unit_dies(I, r);
  if (I->files != NULL) gort__os_unmap(I->files, FILES_BYTES);
  I->files = NULL;
}

static void read_unit_dies(info_t *I, rd_t *r) {
  const uint8_t *start = r->p;
  uint64_t len = rd_u(r, 4);
  I->offset64 = len == 0xffffffff;
  if (I->offset64) len = rd_u(r, 8);
  if (r->bad || len > (uint64_t)(r->end - r->p)) {
    r->bad = true;
    return;
  }
  rd_t u = {r->p, r->p + len, false};
  r->p += len;
  I->unit = start, I->unit_end = u.end;
  I->version = (int)rd_u(&u, 2);
  uint64_t abbrev_off;
  if (I->version >= 5) {
    uint8_t type = (uint8_t)rd_u(&u, 1);
    I->addr_size = (uint8_t)rd_u(&u, 1);
    abbrev_off = rd_offset(I, &u);
    if (type != 1 && type != 3) return;  // compile and partial units only
  } else if (I->version >= 2) {
    abbrev_off = rd_offset(I, &u);
    I->addr_size = (uint8_t)rd_u(&u, 1);
  } else {
    return;
  }
  if (u.bad || (I->addr_size != 4 && I->addr_size != 8) || !read_abbrevs(I, abbrev_off)) return;
  I->base = I->str_offsets_base = I->addr_base = I->rnglists_base = 0;
  I->have_stmt = false;
  // The unit's own DIE: its ranges decide whether the rest is read.
  const abbrev_t *a = find_abbrev(I, rd_uleb(&u));
  die_t d;
  if (a == NULL || (a->tag != TAG_CU && a->tag != TAG_PARTIAL) || !read_die(I, &u, a, &d)) return;
  I->base = d.have_low ? d.low : 0;
  I->stmt_list = d.stmt_list, I->have_stmt = d.have_stmt;
  bool any = !d.have_ranges && !d.have_low;  // no ranges said: read it
  each_range(I, d.have_ranges ? &d.ranges : NULL, d.low, d.high, d.high_is_len, d.have_low && d.have_high,
             range_has_key, &any);
  if (!any) return;
  int depth = a->children ? 1 : 0;
  while (depth > 0 && u.p < u.end && !u.bad) {
    uint64_t code = rd_uleb(&u);
    if (code == 0) {
      depth--;
      continue;
    }
    if ((a = find_abbrev(I, code)) == NULL || !read_die(I, &u, a, &d)) return;
    if (a->children) depth++;
    if (a->tag != TAG_INLINED) continue;
    level_t lv = {.func = d.have_origin ? die_name(I, d.origin, 0) : d.name, .call_file = d.call_file,
                  .call_line = d.call_line, .file = NULL};
    if (lv.func == NULL) lv.func = "??";
    each_range(I, d.have_ranges ? &d.ranges : NULL, d.low, d.high, d.high_is_len, d.have_low && d.have_high,
               range_add_level, &lv);
  }
}

// The name of file f of the current unit's line table, or NULL.
static const char *call_file_name(info_t *I, uint32_t f) {
  if (!I->have_stmt || I->m->line.p == NULL || I->stmt_list >= I->m->line.size) return NULL;
  if (I->files == NULL) {
    int err;
    I->files = gort__os_reserve(0, FILES_BYTES, 4096, &err);
    if (I->files == NULL) return NULL;
    I->files->m = I->m;
    rd_t r = {I->m->line.p + I->stmt_list, I->m->line.p + I->m->line.size, false};
    run_unit(I->files, &r, true);
  }
  return file_name(I->files, f);
}

// Gives each wanted PC of module m the functions inlined at it (sym_t's
// inl): the innermost becomes the frame's function, at the line table's
// file and line; each level out is a frame at the call site of the level
// inside it, the last one in the function the symbol names.
static void resolve_inlines(const module_t *m, sym_t **want, size_t n) {
  if (m->info.p == NULL || m->abbrev.p == NULL || n == 0) return;
  size_t cap_abbrevs = m->abbrev.size / 4 + 1, cap_specs = m->abbrev.size / 2 + 1;
  size_t bytes = GORT_ALIGN_UP(sizeof(info_t) + n * (sizeof(uintptr_t) + MAX_INLINE * sizeof(level_t) + 1) +
                                   cap_abbrevs * sizeof(abbrev_t) + cap_specs * sizeof(aspec_t) + 64,
                               (size_t)4096);
  int err;
  info_t *I = gort__os_reserve(0, bytes, 4096, &err);
  if (I == NULL) return;
  I->m = m;
  I->want = want;
  I->n = n;
  I->abbrevs = (abbrev_t *)(I + 1);
  I->specs = (aspec_t *)(I->abbrevs + cap_abbrevs);
  I->levels = (level_t *)(I->specs + cap_specs);
  I->key = (uintptr_t *)(I->levels + n * MAX_INLINE);
  I->nlevels = (uint8_t *)(I->key + n);
  I->cap_abbrevs = cap_abbrevs, I->cap_specs = cap_specs;
  gort__heapsort(want, n, sizeof *want, want_cmp);
  for (size_t i = 0; i < n; i++) I->key[i] = want[i]->module_off - 1;  // the call, not the return address
  rd_t r = {m->info.p, m->info.p + m->info.size, false};
  while (r.p < r.end && !r.bad) read_unit(I, &r);
  for (size_t i = 0; i < n; i++) {
    uint32_t k = I->nlevels[i];
    const level_t *L = &I->levels[i * MAX_INLINE];
    sym_t *s = want[i];
    sym_frame_t *f = k > 0 ? arena_alloc(k * sizeof *f) : NULL;
    if (f == NULL) continue;
    for (uint32_t j = 0; j < k; j++) {  // frame j: the call of level k-1-j
      const level_t *lv = &L[k - 1 - j];
      f[j] = (sym_frame_t){.func = k - 1 - j > 0 ? L[k - 2 - j].func : s->func, .file = lv->file,
                           .line = lv->call_line};
    }
    s->func = L[k - 1].func;
    s->inl = f;
    s->ninl = k;
  }
  gort__os_unmap(I, bytes);
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
    resolve_inlines(&sy.mods[k], byfile, nw);  // byfile[0..nw) sorted by resolve_lines
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
