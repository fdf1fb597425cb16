/* bzimage.h - Linux bzImage loader: x86 boot protocol 2.06+, 64-bit entry. */
#ifndef EMBER_BOOT_BZIMAGE_H
#define EMBER_BOOT_BZIMAGE_H

/*
 * A bzImage (Linux Documentation/arch/x86/boot.rst) is a real-mode setup
 * part of (setup_sects + 1) 512-byte sectors, whose setup header at 0x1f1
 * describes the image, followed by the protected-mode kernel (syssize
 * 16-byte paragraphs: the self-decompressing kernel).  ember skips the
 * real-mode part: it loads the protected-mode kernel at 1 MiB (boot.rst's
 * memory layout "0x100000 protected-mode kernel", and the header's default
 * code32_start) and enters it at its 64-bit entry, load address + 0x200
 * ("64-bit BOOT PROTOCOL"), which needs XLF_KERNEL_64.
 *
 * As for ELF, bzimage_parse() checks everything and bzimage_load() copies.
 */

#include <stddef.h>
#include <stdint.h>

#include "boot/bootfile.h"
#include "util/err.h"
#include "util/gmem.h"

#define BZIMAGE_MIN_VERSION 0x0206 /* cmdline_size appeared in 2.06 */
#define BZIMAGE_LOAD_ADDR   LAYOUT_HIMEM
#define BZIMAGE_ENTRY64_OFF 0x200
#define BZIMAGE_HDR_OFF     0x1f1
#define BZIMAGE_HDR_MAX     0x7b /* sizeof(struct setup_header) in <asm/bootparam.h> */

struct bzimage {
	uint8_t hdr[BZIMAGE_HDR_MAX]; /* the image's setup header from 0x1f1 ... */
	size_t hdr_len;               /* ... up to 0x202 + byte at 0x201, at most BZIMAGE_HDR_MAX */
	uint16_t version;             /* boot protocol, 0x0206 = 2.06 */
	uint64_t pm_offset;           /* protected-mode kernel: file offset ... */
	uint64_t pm_size;             /* ... and size (syssize * 16) */
	uint64_t load_addr;           /* BZIMAGE_LOAD_ADDR */
	uint64_t end;                 /* end of the kernel's memory, init_size area included */
	uint64_t entry;               /* 64-bit entry point */
	uint32_t cmdline_max;         /* longest command line, without NUL */
	uint32_t initrd_addr_max;     /* highest address the initrd may occupy */
};

/*
 * Read and check the setup header of `f`: boot flag and "HdrS", protocol
 * 2.06 or later, LOADED_HIGH, XLF_KERNEL_64, a protected-mode kernel inside
 * the file, and the kernel's memory (its init_size included) inside guest RAM
 * below the MMIO gap of `ml`.  Fills `bz`; returns 0 or -errno with a message
 * naming the file: -ENOEXEC (not a bzImage, too old, no 64-bit entry,
 * truncated, malformed), -ENOMEM (does not fit in guest RAM).
 */
int bzimage_parse(const struct boot_file *f, const struct gmem *gm, const struct mem_layout *ml,
                  struct bzimage *bz, struct err *e);

/* Copy the protected-mode kernel of `bz` (from bzimage_parse on `f`) to its load address. */
int bzimage_load(const struct boot_file *f, const struct gmem *gm, const struct bzimage *bz,
                 struct err *e);

#endif
