/* pvh.h - the Xen PVH boot ABI: the entry-point ELF note and struct hvm_start_info. */
#ifndef EMBER_BOOT_PVH_H
#define EMBER_BOOT_PVH_H

/*
 * A kernel built with CONFIG_PVH carries an ELF note (name "Xen", type
 * XEN_ELFNOTE_PHYS32_ENTRY = 18) holding the physical address of a 32-bit
 * entry point.  It is entered in 32-bit protected mode with paging off and
 * EBX = the guest-physical address of struct hvm_start_info (Xen
 * xen/include/public/arch-x86/hvm/start_info.h, version 1), which points at
 * the command line, the initrd as module 0, and the memory map.
 *
 * ember writes, in the page at LAYOUT_PVH_INFO_GPA:
 *   +0x00  struct hvm_start_info
 *   +0x40  struct hvm_modlist_entry for the initrd
 *   +0x80  the memory map, struct hvm_memmap_table_entry[] (e820.h)
 */

#include <stddef.h>
#include <stdint.h>

#include "boot/layout.h"
#include "util/err.h"
#include "util/gmem.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC_VALUE    0x336ec578u

#define PVH_MODLIST_OFFSET 0x40
#define PVH_MEMMAP_OFFSET  0x80

/*
 * Look for the Xen PHYS32_ENTRY note in `len` bytes of ELF notes (the
 * contents of one PT_NOTE segment), whose name and descriptor are padded to
 * `align` bytes (4, or 8 for an 8-aligned segment).  Returns 1 and sets
 * *entry when found, 0 when absent, -ENOEXEC when the notes run past `len`
 * or the entry note's descriptor is not 4 or 8 bytes, -ERANGE when the entry
 * is not below 4 GiB.  Pure function of its input.
 */
int pvh_note_find(const void *notes, size_t len, size_t align, uint32_t *entry);

/*
 * Write hvm_start_info, the initrd module entry and the memory map for `ml`
 * at LAYOUT_PVH_INFO_GPA.  `cmdline_gpa` is the NUL-terminated command line;
 * `initrd_size` 0 means no module; `rsdp_gpa` 0 means no ACPI tables (rsdp_paddr 0).  -EFAULT when
 * the page is not guest RAM, -EINVAL when the layout is inconsistent.
 */
int pvh_start_info_write(const struct gmem *gm, const struct mem_layout *ml, uint64_t cmdline_gpa,
                         uint64_t initrd_gpa, uint64_t initrd_size, uint64_t rsdp_gpa,
                         struct err *e);

#endif
