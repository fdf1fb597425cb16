/* elf.c - parse and load an ELF64 x86-64 kernel (see elf.h). */
#include "boot/elf.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "boot/pvh.h"

/* The boot page tables (cpu.h) identity-map LAYOUT_PD_COUNT GiB, in 2 MiB pages. */
#define IDENTITY_MAPPED_END ((uint64_t)LAYOUT_PD_COUNT << 30)

#define U(x) ((unsigned long long)(x))

static bool elf_inside_segment(const struct elf_kernel *k, uint64_t addr)
{
	unsigned int i;

	for (i = 0; i < k->nseg; i++)
		if (addr >= k->seg[i].paddr && addr - k->seg[i].paddr < k->seg[i].memsz)
			return true;
	return false;
}

static int elf_check_ehdr(const struct boot_file *f, const Elf64_Ehdr *eh, struct err *e)
{
	const unsigned char *id = eh->e_ident;

	if (memcmp(id, ELFMAG, SELFMAG) != 0)
		return err_set(e, ENOEXEC, "%s \"%s\": not an ELF file", f->what, f->path);
	if (id[EI_CLASS] == ELFCLASS32)
		return err_set(e, ENOEXEC, "%s \"%s\": 32-bit ELF; ember boots 64-bit kernels only",
		               f->what, f->path);
	if (id[EI_CLASS] != ELFCLASS64)
		return err_set(e, ENOEXEC, "%s \"%s\": ELF class %u is neither 32- nor 64-bit",
		               f->what, f->path, id[EI_CLASS]);
	if (id[EI_DATA] != ELFDATA2LSB)
		return err_set(e, ENOEXEC,
		               "%s \"%s\": big-endian ELF; x86-64 kernels are little-endian",
		               f->what, f->path);
	if (eh->e_machine != EM_X86_64)
		return err_set(e, ENOEXEC,
		               "%s \"%s\": ELF for machine %u, not x86-64 (%u); wrong architecture",
		               f->what, f->path, eh->e_machine, EM_X86_64);
	if (eh->e_type != ET_EXEC)
		return err_set(e, ENOEXEC,
		               "%s \"%s\": ELF type %u is not ET_EXEC; ember loads executables at "
		               "their physical addresses without relocating them",
		               f->what, f->path, eh->e_type);
	if (eh->e_phnum == 0)
		return err_set(e, ENOEXEC, "%s \"%s\": ELF has no program headers", f->what,
		               f->path);
	/* e_phnum == PN_XNUM (0xffff) would mean "see section 0": more than we take anyway. */
	if (eh->e_phnum > ELF_MAX_PHDRS)
		return err_set(e, ENOEXEC,
		               "%s \"%s\": ELF has %u program headers; ember accepts at most %u",
		               f->what, f->path, eh->e_phnum, ELF_MAX_PHDRS);
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return err_set(e, ENOEXEC, "%s \"%s\": ELF program header size %u, expected %zu",
		               f->what, f->path, eh->e_phentsize, sizeof(Elf64_Phdr));
	return 0;
}

/* Check one PT_LOAD segment against the file and guest RAM, and record it. */
static int elf_add_segment(const struct boot_file *f, const struct gmem *gm, unsigned int idx,
                           const Elf64_Phdr *ph, struct elf_kernel *k, struct err *e)
{
	char need[32], have[32], ram[160];

	if (ph->p_filesz > ph->p_memsz)
		return err_set(e, ENOEXEC,
		               "%s \"%s\": segment %u has p_filesz 0x%llx > p_memsz 0x%llx",
		               f->what, f->path, idx, U(ph->p_filesz), U(ph->p_memsz));
	if (ph->p_offset > f->size || ph->p_filesz > f->size - ph->p_offset)
		return err_set(
		    e, ENOEXEC,
		    "%s \"%s\": truncated: segment %u needs file bytes [0x%llx, +0x%llx) "
		    "but the file is %llu bytes",
		    f->what, f->path, idx, U(ph->p_offset), U(ph->p_filesz), U(f->size));
	if (ph->p_paddr + ph->p_memsz < ph->p_paddr)
		return err_set(e, ENOEXEC,
		               "%s \"%s\": segment %u at 0x%llx of 0x%llx bytes wraps around the "
		               "address space",
		               f->what, f->path, idx, U(ph->p_paddr), U(ph->p_memsz));
	if (ph->p_paddr < LAYOUT_HIMEM)
		return err_set(e, EINVAL,
		               "%s \"%s\": segment %u at [0x%llx, 0x%llx) overlaps ember's boot "
		               "structures below 1 MiB; kernels must load at or above 0x%llx",
		               f->what, f->path, idx, U(ph->p_paddr), U(ph->p_paddr + ph->p_memsz),
		               U(LAYOUT_HIMEM));
	if (ph->p_memsz > gmem_total(gm)) {
		boot_fmt_size(need, sizeof(need), ph->p_memsz);
		boot_fmt_size(have, sizeof(have), gmem_total(gm));
		return err_set(e, ENOMEM,
		               "%s \"%s\": segment %u needs %s but the guest has %s of RAM",
		               f->what, f->path, idx, need, have);
	}
	if (!gmem_contains(gm, ph->p_paddr, ph->p_memsz)) {
		boot_fmt_ram(ram, sizeof(ram), gm);
		return err_set(
		    e, ENOMEM, "%s \"%s\": segment %u at [0x%llx, 0x%llx) is outside guest RAM %s",
		    f->what, f->path, idx, U(ph->p_paddr), U(ph->p_paddr + ph->p_memsz), ram);
	}
	k->seg[k->nseg++] = (struct elf_segment){
	    .offset = ph->p_offset,
	    .filesz = ph->p_filesz,
	    .paddr = ph->p_paddr,
	    .memsz = ph->p_memsz,
	};
	if (k->nseg == 1 || ph->p_paddr < k->start)
		k->start = ph->p_paddr;
	if (ph->p_paddr + ph->p_memsz > k->end)
		k->end = ph->p_paddr + ph->p_memsz;
	return 0;
}

/* Scan the PT_NOTE segments for the Xen PVH entry; sets k->has_pvh/pvh_entry. */
static int elf_find_pvh(const struct boot_file *f, const Elf64_Phdr *ph, unsigned int n,
                        struct elf_kernel *k, struct err *e)
{
	unsigned int i;
	int r = 0;

	for (i = 0; i < n && !k->has_pvh; i++) {
		uint8_t *buf;

		if (ph[i].p_type != PT_NOTE || ph[i].p_filesz == 0)
			continue;
		if (ph[i].p_filesz > ELF_MAX_NOTE_LEN)
			return err_set(e, ENOEXEC,
			               "%s \"%s\": note segment %u is %llu bytes; ember reads at "
			               "most %u",
			               f->what, f->path, i, U(ph[i].p_filesz), ELF_MAX_NOTE_LEN);
		buf = malloc(ph[i].p_filesz);
		if (!buf)
			return err_set(e, ENOMEM, "out of memory reading the notes of %s \"%s\"",
			               f->what, f->path);
		r = boot_file_read(f, ph[i].p_offset, buf, ph[i].p_filesz, e);
		if (!r) {
			r = pvh_note_find(buf, ph[i].p_filesz, ph[i].p_align == 8 ? 8 : 4,
			                  &k->pvh_entry);
			if (r == 1) {
				k->has_pvh = true;
				r = 0;
			} else if (r == -ERANGE) {
				r = err_set(e, ENOEXEC,
				            "%s \"%s\": the Xen PVH entry note holds an address "
				            "above 4 GiB",
				            f->what, f->path);
			} else if (r < 0) {
				r = err_set(e, ENOEXEC, "%s \"%s\": malformed ELF note segment %u",
				            f->what, f->path, i);
			}
		}
		free(buf);
		if (r)
			return r;
	}
	if (k->has_pvh && !elf_inside_segment(k, k->pvh_entry))
		return err_set(e, ENOEXEC,
		               "%s \"%s\": the Xen PVH entry 0x%x is not inside any loaded segment",
		               f->what, f->path, k->pvh_entry);
	return 0;
}

int elf_parse(const struct boot_file *f, const struct gmem *gm, bool want_pvh, struct elf_kernel *k,
              struct err *e)
{
	Elf64_Phdr ph[ELF_MAX_PHDRS];
	Elf64_Ehdr eh;
	unsigned int i;
	int r;

	memset(k, 0, sizeof(*k));
	if (f->size < SELFMAG + 1)
		return err_set(e, ENOEXEC, "%s \"%s\": not an ELF file", f->what, f->path);
	memset(&eh, 0, sizeof(eh));
	r = boot_file_read(f, 0, eh.e_ident, EI_NIDENT < f->size ? EI_NIDENT : f->size, e);
	if (r)
		return r;
	/* Class first, so a short 32-bit ELF still gets the 32-bit message. */
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS32)
		return elf_check_ehdr(f, &eh, e);
	r = boot_file_read(f, 0, &eh, sizeof(eh), e);
	if (r)
		return r;
	r = elf_check_ehdr(f, &eh, e);
	if (r)
		return r;
	if (eh.e_phoff > f->size ||
	    (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > f->size - eh.e_phoff)
		return err_set(
		    e, ENOEXEC,
		    "%s \"%s\": truncated: %u program headers at offset 0x%llx do not fit "
		    "in the file (%llu bytes)",
		    f->what, f->path, eh.e_phnum, U(eh.e_phoff), U(f->size));
	r = boot_file_read(f, eh.e_phoff, ph, eh.e_phnum * sizeof(Elf64_Phdr), e);
	if (r)
		return r;

	for (i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
			continue;
		r = elf_add_segment(f, gm, i, &ph[i], k, e);
		if (r)
			return r;
	}
	if (k->nseg == 0)
		return err_set(e, ENOEXEC, "%s \"%s\": ELF has no loadable (PT_LOAD) segment",
		               f->what, f->path);

	k->entry = eh.e_entry;
	if (!elf_inside_segment(k, k->entry))
		return err_set(e, ENOEXEC,
		               "%s \"%s\": entry point 0x%llx is not inside any loaded segment "
		               "(is it a virtual address?)",
		               f->what, f->path, U(k->entry));
	if (k->entry >= IDENTITY_MAPPED_END)
		return err_set(e, ENOEXEC,
		               "%s \"%s\": entry point 0x%llx is above the first %u GiB, which the "
		               "boot page tables map",
		               f->what, f->path, U(k->entry), LAYOUT_PD_COUNT);
	if (want_pvh)
		return elf_find_pvh(f, ph, eh.e_phnum, k, e);
	return 0;
}

int elf_load(const struct boot_file *f, const struct gmem *gm, const struct elf_kernel *k,
             struct err *e)
{
	unsigned int i;
	int r;

	for (i = 0; i < k->nseg; i++) {
		const struct elf_segment *s = &k->seg[i];
		uint8_t *bss;

		r = boot_file_to_guest(f, s->offset, s->filesz, gm, s->paddr, e);
		if (r)
			return r;
		/* gABI: "the extra bytes [past p_filesz] are defined to hold the value 0". */
		bss = gmem_ptr(gm, s->paddr + s->filesz, s->memsz - s->filesz);
		if (!bss)
			return err_set(e, EFAULT, "%s \"%s\": segment %u is not in guest RAM",
			               f->what, f->path, i);
		memset(bss, 0, s->memsz - s->filesz);
	}
	return 0;
}
