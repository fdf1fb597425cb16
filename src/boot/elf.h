/* elf.h - ELF64 x86-64 kernel loader: PT_LOAD segments at their physical addresses. */
#ifndef EMBER_BOOT_ELF_H
#define EMBER_BOOT_ELF_H

/*
 * An ELF kernel is loaded as its program headers say (ELF gABI, "Program
 * Loading"): each PT_LOAD segment's p_filesz file bytes at its physical
 * address p_paddr, the rest up to p_memsz zeroed.  Physical, not virtual:
 * vmlinux links at 0xffffffff81000000 but its p_paddr is 16 MiB, and ember
 * enters it with paging identity-mapped.  Only ET_EXEC: nothing is relocated,
 * so an ET_DYN image would run at addresses its author never chose.
 *
 * Loading is two steps so a bad file fails before guest memory is touched:
 * elf_parse() reads and checks the headers, elf_load() copies.
 */

#include <stdbool.h>
#include <stdint.h>

#include "boot/bootfile.h"
#include "util/err.h"
#include "util/gmem.h"

#define ELF_MAX_PHDRS    64          /* vmlinux has about 5 */
#define ELF_MAX_NOTE_LEN (64u << 10) /* largest PT_NOTE segment read when looking for PVH */

struct elf_segment {
	uint64_t offset; /* in the file */
	uint64_t filesz;
	uint64_t paddr;
	uint64_t memsz; /* > 0; >= filesz */
};

struct elf_kernel {
	uint64_t entry;     /* e_entry, inside a segment, below the identity-mapped 4 GiB */
	bool has_pvh;       /* a Xen PHYS32_ENTRY note was found (only looked for on request) */
	uint32_t pvh_entry; /* its value, inside a segment */
	uint64_t start;     /* lowest p_paddr */
	uint64_t end;       /* highest p_paddr + p_memsz */
	unsigned int nseg;
	struct elf_segment seg[ELF_MAX_PHDRS];
};

/*
 * Read the ELF and program headers of `f` and check them: ELF64,
 * little-endian, EM_X86_64, ET_EXEC, at least one PT_LOAD, each segment
 * inside the file and inside guest RAM (`gm`) at or above 1 MiB (below it
 * are ember's boot structures), the entry inside a segment.  With
 * `want_pvh`, also scan PT_NOTE segments for the PVH entry.  Fills `k`;
 * returns 0 or -errno with a message naming the file: -ENOEXEC (not a usable
 * ELF: 32-bit, wrong machine or type, truncated, malformed), -ENOMEM
 * (segment outside guest RAM), -EINVAL (segment over the boot structures).
 */
int elf_parse(const struct boot_file *f, const struct gmem *gm, bool want_pvh, struct elf_kernel *k,
              struct err *e);

/* Copy the segments of `k` (elf_parse on the same `f`, `gm`) to guest RAM, zeroing bss. */
int elf_load(const struct boot_file *f, const struct gmem *gm, const struct elf_kernel *k,
             struct err *e);

#endif
