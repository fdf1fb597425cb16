/* zeropage.c - build struct boot_params and write the command line (see zeropage.h). */
#include "boot/zeropage.h"

#include <asm/bootparam.h>
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "boot/e820.h"

/* Offsets of boot.rst "THE REAL-MODE KERNEL HEADER" and zero-page.rst that ember relies on. */
static_assert(sizeof(struct boot_params) == 4096, "zero-page.rst: one page");
static_assert(offsetof(struct boot_params, ext_ramdisk_image) == 0x0c0, "zero-page.rst");
static_assert(offsetof(struct boot_params, ext_ramdisk_size) == 0x0c4, "zero-page.rst");
static_assert(offsetof(struct boot_params, ext_cmd_line_ptr) == 0x0c8, "zero-page.rst");
static_assert(offsetof(struct boot_params, e820_entries) == 0x1e8, "zero-page.rst");
static_assert(offsetof(struct boot_params, hdr) == 0x1f1, "boot.rst: setup header at 0x1f1");
static_assert(offsetof(struct boot_params, e820_table) == 0x2d0, "zero-page.rst");
static_assert(sizeof(struct boot_e820_entry) == 20, "zero-page.rst: e820 entry");
static_assert(0x1f1 + offsetof(struct setup_header, boot_flag) == 0x1fe, "boot.rst");
static_assert(0x1f1 + offsetof(struct setup_header, header) == 0x202, "boot.rst");
static_assert(0x1f1 + offsetof(struct setup_header, type_of_loader) == 0x210, "boot.rst");
static_assert(0x1f1 + offsetof(struct setup_header, ramdisk_image) == 0x218, "boot.rst");
static_assert(0x1f1 + offsetof(struct setup_header, cmd_line_ptr) == 0x228, "boot.rst");
static_assert(0x1f1 + offsetof(struct setup_header, kernel_alignment) == 0x230, "boot.rst");
static_assert(0x1f1 + offsetof(struct setup_header, cmdline_size) == 0x238, "boot.rst");
static_assert(E820_MAX_ENTRIES <= E820_MAX_ENTRIES_ZEROPAGE, "e820 map fits the zero page");

#define BOOT_FLAG_MAGIC 0xaa55
#define HDRS_MAGIC      0x53726448u /* "HdrS" */
#define ELF_HDR_VERSION                                                                            \
	0x020e /* 2.14: ext_* fields (2.12) and acpi_rsdp_addr, which Linux reads only from 2.14   \
	          on */
#define LOADER_UNDEFINED 0xff      /* boot.rst type_of_loader: "0xFF = undefined" */
#define ELF_KERNEL_ALIGN 0x1000000 /* Linux's CONFIG_PHYSICAL_ALIGN default: 16 MiB */

int zeropage_write(const struct gmem *gm, const struct mem_layout *ml, uint64_t gpa,
                   const struct zeropage_args *a, struct err *e)
{
	struct e820_entry map[E820_MAX_ENTRIES];
	struct boot_params bp;
	int i, n;

	memset(&bp, 0, sizeof(bp));
	if (a->setup_hdr) {
		if (a->setup_hdr_len > sizeof(struct setup_header))
			return err_set(e, EINVAL, "setup header of %zu bytes is too long",
			               a->setup_hdr_len);
		/* boot.rst, 64-bit BOOT PROTOCOL: copy the image's setup header
		 * (0x1f1 up to 0x202 + the byte at 0x201) into a zeroed boot_params. */
		memcpy((uint8_t *)&bp + offsetof(struct boot_params, hdr), a->setup_hdr,
		       a->setup_hdr_len);
	} else {
		/* An ELF vmlinux has no setup header: make up the fields a kernel
		 * entered at startup_64 may look at, as Firecracker does. */
		bp.hdr.boot_flag = BOOT_FLAG_MAGIC;
		bp.hdr.header = HDRS_MAGIC;
		bp.hdr.version = ELF_HDR_VERSION;
		bp.hdr.kernel_alignment = ELF_KERNEL_ALIGN;
		bp.hdr.loadflags = LOADED_HIGH; /* the kernel sits at or above 1 MiB */
		bp.hdr.cmdline_size = a->cmdline_len;
	}
	/*
	 * boot.rst type_of_loader: no assigned ID, 0xff.  loadflags is left as
	 * the image has it: KEEP_SEGMENTS only matters to the 32-bit entry and is
	 * obsolete since Linux 5.8 ("This flag is obsolete"), CAN_USE_HEAP only
	 * to the real-mode setup code; Firecracker sets neither.
	 */
	bp.hdr.type_of_loader = LOADER_UNDEFINED;
	bp.hdr.cmd_line_ptr = (uint32_t)a->cmdline_gpa;
	/* zero-page.rst 0x070 acpi_rsdp_addr: where the kernel finds the RSDP without scanning. */
	bp.acpi_rsdp_addr = a->rsdp_gpa;
	bp.ext_cmd_line_ptr = (uint32_t)(a->cmdline_gpa >> 32);
	bp.hdr.ramdisk_image = (uint32_t)a->initrd_gpa;
	bp.hdr.ramdisk_size = (uint32_t)a->initrd_size;
	bp.ext_ramdisk_image = (uint32_t)(a->initrd_gpa >> 32);
	bp.ext_ramdisk_size = (uint32_t)(a->initrd_size >> 32);

	n = e820_build(ml, map, E820_MAX_ENTRIES);
	if (n < 0)
		return err_set(e, n, "cannot build the e820 map for %llu bytes of RAM",
		               (unsigned long long)ml->ram_size);
	for (i = 0; i < n; i++) {
		bp.e820_table[i].addr = map[i].addr;
		bp.e820_table[i].size = map[i].size;
		bp.e820_table[i].type = map[i].type;
	}
	bp.e820_entries = (uint8_t)n;

	if (gmem_write(gm, gpa, &bp, sizeof(bp)))
		return err_set(e, EFAULT, "zero page at 0x%llx is not in guest RAM",
		               (unsigned long long)gpa);
	return 0;
}

int zeropage_cmdline_check(size_t len, size_t max_len, struct err *e)
{
	if (len > max_len)
		return err_set(e, E2BIG, "command line is %zu bytes; the limit is %zu", len,
		               max_len);
	return 0;
}

int zeropage_cmdline_write(const struct gmem *gm, uint64_t gpa, const char *cmdline, struct err *e)
{
	size_t len = strlen(cmdline);

	if (gmem_write(gm, gpa, cmdline, len + 1))
		return err_set(e, EFAULT, "command line at 0x%llx (%zu bytes) is not in guest RAM",
		               (unsigned long long)gpa, len + 1);
	return 0;
}
