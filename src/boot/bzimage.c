/* bzimage.c - parse a bzImage setup header and load its protected-mode kernel (see bzimage.h). */
#include "boot/bzimage.h"

#include <asm/bootparam.h>
#include <assert.h>
#include <errno.h>
#include <string.h>

static_assert(sizeof(struct setup_header) == BZIMAGE_HDR_MAX, "bzimage.h BZIMAGE_HDR_MAX");
static_assert(BZIMAGE_HDR_OFF + offsetof(struct setup_header, xloadflags) == 0x236, "boot.rst");
static_assert(BZIMAGE_HDR_OFF + offsetof(struct setup_header, pref_address) == 0x258, "boot.rst");
static_assert(BZIMAGE_HDR_OFF + offsetof(struct setup_header, init_size) == 0x260, "boot.rst");

#define BOOT_FLAG_OFF  0x1fe
#define HEADER_OFF     0x202
#define JUMP_LEN_OFF   0x201 /* boot.rst: "0x0202 + byte value at offset 0x0201" ends the header */
#define SECTOR         512
#define DEFAULT_SECTS  4 /* boot.rst setup_sects: "If this field is 0, the real value is 4" */
#define DEFAULT_IRDMAX 0x37ffffff /* boot.rst initrd_addr_max: the value before protocol 2.03 */

#define U(x) ((unsigned long long)(x))

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/*
 * Where the kernel runs, and so the memory it needs before it can read the
 * e820 map: boot.rst init_size, "The kernel runtime start address is
 * determined by the following algorithm":
 *     if (relocatable_kernel) {
 *         if (load_address < pref_address) load_address = pref_address;
 *         runtime_start = align_up(load_address, kernel_alignment);
 *     } else
 *         runtime_start = pref_address;
 * pref_address and init_size exist from protocol 2.10; before that only the
 * protected-mode kernel itself is known.
 */
static int bzimage_extent(const struct boot_file *f, const struct setup_header *sh,
                          struct bzimage *bz, struct err *e)
{
	uint64_t start = bz->load_addr;

	bz->end = bz->load_addr + bz->pm_size;
	if (bz->version < 0x020a || sh->init_size == 0)
		return 0;
	if (sh->relocatable_kernel) {
		if (sh->kernel_alignment == 0 ||
		    (sh->kernel_alignment & (sh->kernel_alignment - 1)))
			return err_set(
			    e, ENOEXEC,
			    "%s \"%s\": bzImage kernel_alignment 0x%x is not a power of two",
			    f->what, f->path, sh->kernel_alignment);
		if (start < sh->pref_address)
			start = sh->pref_address;
		if (start > UINT32_MAX)
			return err_set(e, ENOEXEC,
			               "%s \"%s\": bzImage prefers to run at 0x%llx, above 4 GiB",
			               f->what, f->path, U(start));
		start = align_up(start, sh->kernel_alignment);
	} else if (sh->pref_address) {
		start = sh->pref_address;
		if (start > UINT32_MAX)
			return err_set(e, ENOEXEC,
			               "%s \"%s\": bzImage must run at 0x%llx, above 4 GiB",
			               f->what, f->path, U(start));
	}
	if (start + sh->init_size > bz->end)
		bz->end = start + sh->init_size;
	return 0;
}

int bzimage_parse(const struct boot_file *f, const struct gmem *gm, const struct mem_layout *ml,
                  struct bzimage *bz, struct err *e)
{
	uint8_t buf[HEADER_OFF + 0x100];
	struct setup_header sh;
	uint64_t setup_sects, head = f->size < sizeof(buf) ? f->size : sizeof(buf);
	char need[32];
	int r;

	memset(bz, 0, sizeof(*bz));
	memset(buf, 0, sizeof(buf));
	r = boot_file_read(f, 0, buf, head, e);
	if (r)
		return r;
	if (head < HEADER_OFF + 4 || buf[BOOT_FLAG_OFF] != 0x55 || buf[BOOT_FLAG_OFF + 1] != 0xaa ||
	    memcmp(buf + HEADER_OFF, "HdrS", 4) != 0)
		return err_set(e, ENOEXEC, "%s \"%s\": not a bzImage (no boot flag and \"HdrS\")",
		               f->what, f->path);

	bz->hdr_len = HEADER_OFF + buf[JUMP_LEN_OFF] - BZIMAGE_HDR_OFF;
	if (bz->hdr_len > sizeof(sh))
		bz->hdr_len =
		    sizeof(sh); /* fields newer than ember's header are not ours to copy */
	if (BZIMAGE_HDR_OFF + bz->hdr_len > head)
		return err_set(
		    e, ENOEXEC,
		    "%s \"%s\": truncated: the setup header ends at 0x%llx, past the end "
		    "of the file (%llu bytes)",
		    f->what, f->path, U(BZIMAGE_HDR_OFF + bz->hdr_len), U(f->size));
	memcpy(bz->hdr, buf + BZIMAGE_HDR_OFF, bz->hdr_len);
	memset(&sh, 0, sizeof(sh)); /* fields past this image's header read as 0 */
	memcpy(&sh, bz->hdr, bz->hdr_len);

	bz->version = sh.version;
	if (bz->version < BZIMAGE_MIN_VERSION)
		return err_set(e, ENOEXEC,
		               "%s \"%s\": bzImage boot protocol %u.%02u is too old; ember needs "
		               "%u.%02u or later",
		               f->what, f->path, bz->version >> 8, bz->version & 0xff,
		               BZIMAGE_MIN_VERSION >> 8, BZIMAGE_MIN_VERSION & 0xff);
	if (!(sh.loadflags & LOADED_HIGH))
		return err_set(e, ENOEXEC,
		               "%s \"%s\": zImage (loaded below 1 MiB) is not supported; use a "
		               "bzImage",
		               f->what, f->path);
	/* boot.rst xloadflags (2.12+): "Bit 0 (read): XLF_KERNEL_64 - If 1, this
	 * kernel has the legacy 64-bit entry point at 0x200." */
	if (!(sh.xloadflags & XLF_KERNEL_64))
		return err_set(e, ENOEXEC,
		               "%s \"%s\": bzImage has no 64-bit entry point (XLF_KERNEL_64 is not "
		               "set; protocol %u.%02u); ember boots 64-bit kernels only",
		               f->what, f->path, bz->version >> 8, bz->version & 0xff);

	setup_sects = sh.setup_sects ? sh.setup_sects : DEFAULT_SECTS;
	bz->pm_offset = (setup_sects + 1) * SECTOR;
	bz->pm_size =
	    (uint64_t)sh.syssize * 16; /* boot.rst syssize: "in units of 16-byte paragraphs" */
	if (bz->pm_size == 0)
		return err_set(e, ENOEXEC, "%s \"%s\": bzImage syssize is 0", f->what, f->path);
	if (bz->pm_offset > f->size || bz->pm_size > f->size - bz->pm_offset)
		return err_set(
		    e, ENOEXEC,
		    "%s \"%s\": truncated bzImage: %llu bytes of setup and %llu of kernel "
		    "do not fit in the file (%llu bytes)",
		    f->what, f->path, U(bz->pm_offset), U(bz->pm_size), U(f->size));

	bz->load_addr = BZIMAGE_LOAD_ADDR;
	bz->entry = bz->load_addr + BZIMAGE_ENTRY64_OFF;
	r = bzimage_extent(f, &sh, bz, e);
	if (r)
		return r;
	if (bz->end > ml->low_size || !gmem_contains(gm, bz->load_addr, bz->end - bz->load_addr)) {
		boot_fmt_size(need, sizeof(need), bz->end - bz->load_addr);
		return err_set(e, ENOMEM,
		               "%s \"%s\": bzImage needs %s of RAM at [0x%llx, 0x%llx) (its "
		               "decompression area included) but guest RAM below 4 GiB ends at "
		               "0x%llx",
		               f->what, f->path, need, U(bz->load_addr), U(bz->end),
		               U(ml->low_size));
	}

	/* boot.rst cmdline_size (2.06+): "The maximum size of the command line
	 * without the terminating zero"; ember's buffer may be the smaller one. */
	bz->cmdline_max =
	    sh.cmdline_size < LAYOUT_CMDLINE_MAX - 1 ? sh.cmdline_size : LAYOUT_CMDLINE_MAX - 1;
	/* boot.rst initrd_addr_max (2.03+): "The maximum address that may be
	 * occupied by the initial ramdisk/ramfs contents." */
	bz->initrd_addr_max = sh.initrd_addr_max ? sh.initrd_addr_max : DEFAULT_IRDMAX;
	return 0;
}

int bzimage_load(const struct boot_file *f, const struct gmem *gm, const struct bzimage *bz,
                 struct err *e)
{
	return boot_file_to_guest(f, bz->pm_offset, bz->pm_size, gm, bz->load_addr, e);
}
