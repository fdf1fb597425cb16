/* pvh.c - find the Xen PVH entry note and write struct hvm_start_info (see pvh.h). */
#include "boot/pvh.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "boot/e820.h"

/* xen/include/public/arch-x86/hvm/start_info.h */
struct hvm_start_info {
	uint32_t magic;   /* HVM_START_MAGIC_VALUE */
	uint32_t version; /* 1: memmap_* are valid */
	uint32_t flags;   /* SIF_xxx: none */
	uint32_t nr_modules;
	uint64_t modlist_paddr; /* struct hvm_modlist_entry[nr_modules] */
	uint64_t cmdline_paddr; /* NUL-terminated */
	uint64_t rsdp_paddr;    /* 0: the kernel scans for the ACPI RSDP itself */
	uint64_t memmap_paddr;  /* version 1: struct hvm_memmap_table_entry[] */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* XEN_HVM_MEMMAP_TYPE_*: 1 RAM, 2 reserved, as e820 */
	uint32_t reserved;
};

static_assert(sizeof(struct hvm_start_info) == 56, "start_info.h: 56 bytes in version 1");
static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "start_info.h");
static_assert(sizeof(struct hvm_modlist_entry) == 32, "start_info.h");
static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "start_info.h");
static_assert(sizeof(struct hvm_start_info) <= PVH_MODLIST_OFFSET, "pvh.h page layout");
static_assert(PVH_MODLIST_OFFSET + sizeof(struct hvm_modlist_entry) <= PVH_MEMMAP_OFFSET,
              "pvh.h page layout");
static_assert(PVH_MEMMAP_OFFSET + E820_MAX_ENTRIES * sizeof(struct hvm_memmap_table_entry) <= 4096,
              "pvh.h: the memmap follows the start_info in the same page");
static_assert(LAYOUT_PVH_INFO_GPA + 4096 <= LAYOUT_ZERO_PAGE_GPA, "layout.h: one page");

/* Round an offset up; offsets are bounded by the buffer length, so this cannot wrap. */
static size_t align_up(size_t n, size_t align)
{
	return (n + align - 1) & ~(align - 1);
}

int pvh_note_find(const void *notes, size_t len, size_t align, uint32_t *entry)
{
	const uint8_t *p = notes;
	size_t off = 0;

	if (align != 4 && align != 8)
		align = 4;
	/* ELF gABI "Note Section": namesz, descsz, type, then the name, then
	 * the descriptor at the next `align` boundary, then the next note at the
	 * one after it (offsets from the segment start, as binutils reads them). */
	while (len - off >= 12) {
		uint32_t namesz, descsz, type;
		size_t name_off, desc_off, next;

		memcpy(&namesz, p + off, 4);
		memcpy(&descsz, p + off + 4, 4);
		memcpy(&type, p + off + 8, 4);
		name_off = off + 12;
		if (namesz > len - name_off)
			return -ENOEXEC;
		desc_off = align_up(name_off + namesz, align);
		if (desc_off > len || descsz > len - desc_off)
			return -ENOEXEC;
		next = align_up(desc_off + descsz, align);

		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
		    memcmp(p + name_off, "Xen", 4) == 0) {
			uint64_t v = 0;

			/* Linux emits .long (newer) or _ASM_PTR, a .quad on x86-64. */
			if (descsz != 4 && descsz != 8)
				return -ENOEXEC;
			memcpy(&v, p + desc_off, descsz);
			if (v > UINT32_MAX)
				return -ERANGE;
			*entry = (uint32_t)v;
			return 1;
		}
		if (next >= len)
			break;
		off = next;
	}
	return 0;
}

int pvh_start_info_write(const struct gmem *gm, const struct mem_layout *ml, uint64_t cmdline_gpa,
                         uint64_t initrd_gpa, uint64_t initrd_size, uint64_t rsdp_gpa,
                         struct err *e)
{
	uint8_t page[4096];
	struct e820_entry map[E820_MAX_ENTRIES];
	struct hvm_start_info si = {
	    .magic = HVM_START_MAGIC_VALUE,
	    .version = 1,
	    .cmdline_paddr = cmdline_gpa,
	    .rsdp_paddr = rsdp_gpa,
	    .memmap_paddr = LAYOUT_PVH_INFO_GPA + PVH_MEMMAP_OFFSET,
	};
	int i, n;

	memset(page, 0, sizeof(page));
	n = e820_build(ml, map, E820_MAX_ENTRIES);
	if (n < 0)
		return err_set(e, n, "cannot build the PVH memory map for %llu bytes of RAM",
		               (unsigned long long)ml->ram_size);
	for (i = 0; i < n; i++) {
		struct hvm_memmap_table_entry m = {
		    .addr = map[i].addr, .size = map[i].size, .type = map[i].type};

		memcpy(page + PVH_MEMMAP_OFFSET + i * sizeof(m), &m, sizeof(m));
	}
	si.memmap_entries = (uint32_t)n;
	if (initrd_size) {
		struct hvm_modlist_entry mod = {.paddr = initrd_gpa, .size = initrd_size};

		memcpy(page + PVH_MODLIST_OFFSET, &mod, sizeof(mod));
		si.nr_modules = 1;
		si.modlist_paddr = LAYOUT_PVH_INFO_GPA + PVH_MODLIST_OFFSET;
	}
	memcpy(page, &si, sizeof(si));

	if (gmem_write(gm, LAYOUT_PVH_INFO_GPA, page, sizeof(page)))
		return err_set(e, EFAULT, "PVH start_info at 0x%llx is not in guest RAM",
		               (unsigned long long)LAYOUT_PVH_INFO_GPA);
	return 0;
}
