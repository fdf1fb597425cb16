/* e820.h - the guest's BIOS-style memory map (e820), shared by the zero page and the PVH memmap. */
#ifndef EMBER_BOOT_E820_H
#define EMBER_BOOT_E820_H

/*
 * ember's memory map, derived from the mem_layout alone:
 *
 *   [0, 0x9fc00)                     RAM
 *   [0x9fc00, 0xa0000)               reserved: EBDA, holds the MP table
 *   [0xa0000, 0x100000)              reserved: legacy VGA/ROM hole
 *   [0x100000, low_size)             RAM (when low_size > 1 MiB)
 *   [MMIO_GAP_START, PCI_ECAM_GPA)   not in the map: the 32-bit BAR window (PCI hole)
 *   [PCI_ECAM_GPA, MMIO_GAP_END)     reserved, always (ECAM, platform MMIO, IOAPIC, LAPIC)
 *   [MMIO_GAP_END, +high_size)       RAM (when high_size > 0)
 *
 * Low RAM below 0x9fc00 is cut at low_size; the two reserved entries below
 * 1 MiB are always present, since the boot structures live there.
 */

#include <stdint.h>

#include "boot/layout.h"

#define E820_TYPE_RAM      1 /* ACPI 6.5 table 15.4 "AddressRangeMemory" */
#define E820_TYPE_RESERVED 2 /* "AddressRangeReserved" */

/* The reserved part of the MMIO gap: ECAM and everything above it (the BAR window below is not). */
#define E820_GAP_RESERVED_START PCI_ECAM_GPA

#define E820_MAX_ENTRIES 8 /* more than ember ever builds (6) */

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* E820_TYPE_* */
};

/*
 * Fill `out` (room for `max` entries) with the map for `ml`, sorted by
 * address and non-overlapping.  Returns the entry count (> 0), or -EINVAL
 * when `ml` is inconsistent (low_size above MMIO_GAP_START, high RAM without
 * a full low part, sizes that overflow) and -ENOSPC when `max` is too small.
 */
int e820_build(const struct mem_layout *ml, struct e820_entry *out, unsigned int max);

#endif
