/* boot.h - direct kernel boot: kernel image, initrd, command line and the tables a kernel reads. */
#ifndef EMBER_BOOT_BOOT_H
#define EMBER_BOOT_BOOT_H

/*
 * boot_load() is the one call the VMM makes.  It reads an ELF vmlinux or a
 * bzImage (told apart by their magic numbers), an optional initrd and the
 * command line, and writes into guest RAM, at the addresses of layout.h:
 *
 *   - the kernel (ELF: every PT_LOAD at its p_paddr; bzImage: the
 *     protected-mode kernel at 1 MiB), see elf.h and bzimage.h;
 *   - the initrd, page aligned, as high as the kernel allows;
 *   - the command line at LAYOUT_CMDLINE_GPA;
 *   - struct boot_params (zeropage.h) for the 64-bit Linux entry, or
 *     struct hvm_start_info (pvh.h) for the Xen PVH 32-bit entry;
 *   - the MP table (mptable.h) in the EBDA.
 *
 * Every file offset and size is checked against the file and every guest
 * range against guest RAM before anything is written: a bad input fails with
 * one message and nothing half-loaded matters, since the caller discards the
 * VM on error.  CPU registers, GDT and page tables are cpu.h's business; the
 * result says which entry to take.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot/layout.h"
#include "util/err.h"
#include "util/gmem.h"

enum boot_entry {
	BOOT_ENTRY_LINUX64, /* 64-bit mode, RIP = entry, RSI = zero page */
	BOOT_ENTRY_PVH,     /* 32-bit protected mode, paging off, EIP = entry, EBX = start_info */
};

struct boot_request {
	const char *kernel_path; /* ELF vmlinux or bzImage */
	const char *initrd_path; /* NULL: none */
	const char *cmdline;     /* NULL: "" */
	bool pvh;                /* enter through the ELF's Xen PVH note (error if there is none) */
	unsigned int vcpus;      /* 1..32, for the MP table */
	uint64_t rsdp_gpa;       /* ACPI RSDP to hand the kernel; 0: no ACPI tables */
};

struct boot_result {
	enum boot_entry entry_mode;
	uint64_t entry; /* RIP for the 64-bit entry, EIP for PVH */
	uint64_t arg;   /* RSI = zero page GPA, or EBX = hvm_start_info GPA */
	/*
	 * Guest-physical memory the kernel occupies before it reads the memory
	 * map: ELF, from the lowest PT_LOAD to the end of the highest one
	 * (p_memsz); bzImage, from the load address to the end of the
	 * protected-mode kernel or of its init_size decompression area,
	 * whichever is higher.
	 */
	uint64_t kernel_start, kernel_end;
	uint64_t initrd_gpa, initrd_size; /* 0 when none */
};

/*
 * Write a real-mode stub at the reset vector (LAYOUT_RESET_VECTOR_GPA, F000:FFF0) that resets
 * the VM through the i8042, for guests that restart by jumping there.  boot_load() calls it.
 * Returns 0, or -EFAULT with a message in `e` when that address is not guest RAM.
 */
int boot_reset_vector_write(const struct gmem *gm, struct err *e);

/*
 * Load the kernel, initrd and boot tables described by `req` into guest
 * memory `gm` laid out as `ml`, and fill `res` with how to enter the kernel.
 * Reads the files, keeps no reference to them or to `req` afterwards.
 * Returns 0, or -errno with one message in `e`; among them -ENOENT/-EACCES/
 * -EISDIR (a file cannot be opened or read), -ENOEXEC (not a 64-bit x86 ELF
 * or a usable bzImage, or a malformed one), -ENOMEM (kernel or initrd does
 * not fit in guest RAM), -E2BIG (command line too long), -EINVAL (bad
 * request: vCPU count, PVH without a PVH note, segment over the boot
 * structures).  On error guest memory may be partly written.
 */
int boot_load(const struct gmem *gm, const struct mem_layout *ml, const struct boot_request *req,
              struct boot_result *res, struct err *e);

#endif
