/* e820.c - build ember's e820 memory map from the memory layout (see e820.h). */
#include "boot/e820.h"

#include <errno.h>

static int e820_add(struct e820_entry *out, unsigned int max, unsigned int *n, uint64_t addr,
                    uint64_t end, uint32_t type)
{
	if (end <= addr)
		return 0;
	if (*n >= max)
		return -ENOSPC;
	out[*n] = (struct e820_entry){.addr = addr, .size = end - addr, .type = type};
	(*n)++;
	return 0;
}

int e820_build(const struct mem_layout *ml, struct e820_entry *out, unsigned int max)
{
	uint64_t low = ml->low_size;
	unsigned int n = 0;
	int r;

	if (low > MMIO_GAP_START || (ml->high_size && low != MMIO_GAP_START) ||
	    ml->high_size > UINT64_MAX - MMIO_GAP_END)
		return -EINVAL;

	r = e820_add(out, max, &n, 0, low < LAYOUT_EBDA_GPA ? low : LAYOUT_EBDA_GPA, E820_TYPE_RAM);
	/* The EBDA and the legacy hole are reserved whatever backs them: the MP
	 * table lives in the EBDA, and the kernel must not use 0xa0000-0xfffff. */
	if (!r)
		r = e820_add(out, max, &n, LAYOUT_EBDA_GPA, LAYOUT_LEGACY_HOLE, E820_TYPE_RESERVED);
	if (!r)
		r = e820_add(out, max, &n, LAYOUT_LEGACY_HOLE, LAYOUT_HIMEM, E820_TYPE_RESERVED);
	if (!r)
		r = e820_add(out, max, &n, LAYOUT_HIMEM, low, E820_TYPE_RAM);
	/*
	 * In the 32-bit MMIO gap only ECAM and the platform MMIO above it (virtio-mmio, IOAPIC,
	 * LAPIC) are reserved: PCI Firmware 3.3 §4.1.2 wants the MCFG range reserved.  The
	 * 32-bit BAR window below ECAM is left out of the map, as real firmware leaves its PCI
	 * hole: Linux (arch/x86/kernel/resource.c, remove_e820_regions) clips every resource it
	 * allocates from a host-bridge window against reserved e820 ranges, so a reserved BAR
	 * window leaves a hot-plugged device's BARs "no space" behind its root port.
	 */
	if (!r)
		r = e820_add(out, max, &n, E820_GAP_RESERVED_START, MMIO_GAP_END,
		             E820_TYPE_RESERVED);
	if (!r)
		r = e820_add(out, max, &n, MMIO_GAP_END, MMIO_GAP_END + ml->high_size,
		             E820_TYPE_RAM);
	return r ? r : (int)n;
}
