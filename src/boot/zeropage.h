/* zeropage.h - the Linux "zero page" (struct boot_params) and the kernel command line. */
#ifndef EMBER_BOOT_ZEROPAGE_H
#define EMBER_BOOT_ZEROPAGE_H

/*
 * For the 64-bit Linux entry, RSI points at struct boot_params (Linux
 * Documentation/arch/x86/boot.rst, "64-bit BOOT PROTOCOL" and zero-page.rst).
 * ember builds it from zero: for a bzImage the setup header comes from the
 * image (boot.rst: "the setup header at offset 0x01f1 of kernel image on
 * should be loaded into struct boot_params"), for an ELF vmlinux ember makes
 * one up; then it fills the loader's fields (type_of_loader, command line,
 * initrd) and the e820 table (e820.h).
 *
 * The command line lives at LAYOUT_CMDLINE_GPA for both the zero page and the
 * PVH start_info.
 */

#include <stddef.h>
#include <stdint.h>

#include "boot/layout.h"
#include "util/err.h"
#include "util/gmem.h"

/* Loader fields of the zero page. */
struct zeropage_args {
	/*
	 * bzImage: the setup header bytes of the image, from offset 0x1f1 on,
	 * `setup_hdr_len` of them (at most the size of struct setup_header).
	 * ELF: NULL, and ember writes a header of its own.  Borrowed.
	 */
	const uint8_t *setup_hdr;
	size_t setup_hdr_len;
	uint64_t cmdline_gpa; /* where the command line was written, below 4 GiB */
	uint32_t cmdline_len; /* its length without the NUL */
	uint64_t initrd_gpa;  /* 0 with initrd_size 0: none */
	uint64_t initrd_size;
	uint64_t rsdp_gpa; /* ACPI RSDP, for acpi_rsdp_addr (boot protocol 2.14); 0: none */
};

/*
 * Build struct boot_params for `a` and the e820 map of `ml`, and write it (4
 * KiB) at guest address `gpa`.  -EINVAL for a bad header length or layout,
 * -EFAULT when [gpa, gpa+4096) is not guest RAM.
 */
int zeropage_write(const struct gmem *gm, const struct mem_layout *ml, uint64_t gpa,
                   const struct zeropage_args *a, struct err *e);

/*
 * Check a command line of `len` bytes (without NUL) against `max_len` (the
 * longest one the kernel accepts, without NUL): -E2BIG with a message when it
 * is longer.  No truncation: a cut command line boots the wrong system.
 */
int zeropage_cmdline_check(size_t len, size_t max_len, struct err *e);

/* Write `cmdline` and its NUL at `gpa`; -EFAULT when that is not guest RAM. */
int zeropage_cmdline_write(const struct gmem *gm, uint64_t gpa, const char *cmdline, struct err *e);

#endif
