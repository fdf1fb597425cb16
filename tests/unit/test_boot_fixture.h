/* test_boot_fixture.h - boot test helpers: fake guest RAM, temp files, generated ELFs. */
#ifndef EMBER_TEST_BOOT_FIXTURE_H
#define EMBER_TEST_BOOT_FIXTURE_H

/*
 * Guest RAM is anonymous MAP_NORESERVE memory laid out by mem_layout_init(),
 * so a "4 GiB guest" costs only the pages a test touches.  Input files are
 * written by the test into mkstemp() files and removed by tfile_rm().  ELF
 * kernels are generated from <elf.h> structures; nothing binary is committed.
 */

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "boot/boot.h"
#include "boot/layout.h"
#include "util/err.h"
#include "util/gmem.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

struct tguest {
	struct gmem gm;
	struct mem_layout ml;
	uint8_t *low, *high;
};

/* Back `ram` bytes of guest RAM as ember's layout places it. */
static inline int tguest_init(struct tguest *g, uint64_t ram)
{
	memset(g, 0, sizeof(*g));
	mem_layout_init(&g->ml, ram);
	g->low = mmap(NULL, g->ml.low_size, PROT_READ | PROT_WRITE,
	              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g->low == MAP_FAILED)
		return -1;
	if (gmem_add(&g->gm, 0, g->ml.low_size, g->low))
		return -1;
	if (g->ml.high_size) {
		g->high = mmap(NULL, g->ml.high_size, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (g->high == MAP_FAILED)
			return -1;
		if (gmem_add(&g->gm, MMIO_GAP_END, g->ml.high_size, g->high))
			return -1;
	}
	return 0;
}

static inline void tguest_fini(struct tguest *g)
{
	if (g->low && g->low != MAP_FAILED)
		munmap(g->low, g->ml.low_size);
	if (g->high && g->high != MAP_FAILED)
		munmap(g->high, g->ml.high_size);
}

/* Host pointer to guest memory (NULL when not RAM). */
static inline uint8_t *tg(const struct tguest *g, uint64_t gpa, uint64_t len)
{
	return gmem_ptr(&g->gm, gpa, len);
}

static inline uint32_t tg32(const struct tguest *g, uint64_t gpa)
{
	uint32_t v = 0;

	gmem_read(&g->gm, gpa, &v, sizeof(v));
	return v;
}

static inline uint64_t tg64(const struct tguest *g, uint64_t gpa)
{
	uint64_t v = 0;

	gmem_read(&g->gm, gpa, &v, sizeof(v));
	return v;
}

/* Write `len` bytes to a new temp file whose name goes to `path`; 0 or -1. */
static inline int tfile(char path[64], const void *data, size_t len)
{
	const uint8_t *p = data;
	int fd;

	strcpy(path, "/tmp/ember-boot-test-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n <= 0) {
			close(fd);
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	close(fd);
	return 0;
}

/* A sparse temp file of `size` bytes whose first bytes are `head`. */
static inline int tfile_sparse(char path[64], uint64_t size, const void *head, size_t head_len)
{
	int fd;

	if (tfile(path, head, head_len))
		return -1;
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static inline void tfile_rm(const char *path)
{
	unlink(path);
}

/* Deterministic filler: byte i of stream `seed`. */
static inline uint8_t tpat(unsigned int seed, uint64_t i)
{
	return (uint8_t)(i * 31 + seed * 7 + (i >> 8));
}

static inline void tfill(uint8_t *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = tpat(seed, i);
}

static inline int tcheck_pat(const uint8_t *p, size_t len, unsigned int seed)
{
	size_t i;

	if (!p)
		return 0;
	for (i = 0; i < len; i++)
		if (p[i] != tpat(seed, i))
			return 0;
	return 1;
}

static inline int tcheck_zero(const uint8_t *p, size_t len)
{
	size_t i;

	if (!p)
		return 0;
	for (i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

/* One program header of a generated ELF; `data` holds `filesz` bytes (NULL: pattern `seed`). */
struct tseg {
	uint32_t type;
	uint64_t paddr;
	uint64_t filesz;
	uint64_t memsz;
	const void *data;
	unsigned int seed;
	uint64_t align;
	uint64_t offset; /* 0: ember's builder places it; else forced (for truncation tests) */
};

/*
 * Build an ELF64 image: header, program headers, then each segment's bytes.
 * Returns a malloc'd buffer (caller frees) and its size in *len.
 */
static inline uint8_t *telf(uint16_t type, uint16_t machine, uint64_t entry, const struct tseg *s,
                            unsigned int n, size_t *len)
{
	size_t size = sizeof(Elf64_Ehdr) + n * sizeof(Elf64_Phdr), at;
	Elf64_Ehdr eh;
	uint8_t *buf;
	unsigned int i;

	for (i = 0; i < n; i++)
		if (!s[i].offset)
			size += (s[i].filesz + 15) & ~15ull;
	buf = calloc(1, size);
	if (!buf)
		return NULL;
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = type;
	eh.e_machine = machine;
	eh.e_version = EV_CURRENT;
	eh.e_entry = entry;
	eh.e_phoff = sizeof(Elf64_Ehdr);
	eh.e_ehsize = sizeof(Elf64_Ehdr);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (uint16_t)n;
	memcpy(buf, &eh, sizeof(eh));
	at = sizeof(Elf64_Ehdr) + n * sizeof(Elf64_Phdr);
	for (i = 0; i < n; i++) {
		Elf64_Phdr ph = {
		    .p_type = s[i].type,
		    .p_flags = PF_R | PF_X,
		    .p_offset = s[i].offset ? s[i].offset : at,
		    .p_vaddr = s[i].paddr + 0xffffffff80000000ull,
		    .p_paddr = s[i].paddr,
		    .p_filesz = s[i].filesz,
		    .p_memsz = s[i].memsz,
		    .p_align = s[i].align ? s[i].align : 0x1000,
		};

		memcpy(buf + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr), &ph, sizeof(ph));
		if (s[i].offset)
			continue;
		if (s[i].data)
			memcpy(buf + at, s[i].data, s[i].filesz);
		else
			tfill(buf + at, s[i].filesz, s[i].seed);
		at += (s[i].filesz + 15) & ~15ull;
	}
	*len = size;
	return buf;
}

/* Append one ELF note (4-byte padding) to `buf` at *at; returns the new end. */
static inline size_t tnote(uint8_t *buf, size_t at, const char *name, uint32_t type,
                           const void *desc, uint32_t descsz)
{
	uint32_t namesz = (uint32_t)strlen(name) + 1;

	memcpy(buf + at, &namesz, 4);
	memcpy(buf + at + 4, &descsz, 4);
	memcpy(buf + at + 8, &type, 4);
	at += 12;
	memset(buf + at, 0, (namesz + 3) & ~3u);
	memcpy(buf + at, name, namesz);
	at += (namesz + 3) & ~3u;
	memset(buf + at, 0, (descsz + 3) & ~3u);
	memcpy(buf + at, desc, descsz);
	at += (descsz + 3) & ~3u;
	return at;
}

/* A fresh error record. */
static inline struct err terr(void)
{
	struct err e;

	memset(&e, 0, sizeof(e));
	return e;
}

#endif
