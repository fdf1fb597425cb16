/* layout.h - ember's x86-64 guest physical memory map and where boot structures live. */
#ifndef EMBER_BOOT_LAYOUT_H
#define EMBER_BOOT_LAYOUT_H

/*
 * Guest physical map (see DESIGN.md "Guest memory map"):
 *
 *   0x0000_0000  low RAM: boot structures below 1 MiB (addresses below)
 *   0x0009_FC00  EBDA (reserved): the MP table lives here
 *   0x000A_0000  legacy hole (reserved) up to 1 MiB
 *   0x0010_0000  RAM for the kernel, initrd, ... up to MMIO_GAP_START
 *   0xC000_0000  32-bit MMIO gap (reserved in e820): ECAM, virtio-mmio,
 *                32-bit BARs, IOAPIC 0xFEC00000, LAPIC 0xFEE00000
 *   0x1_0000_0000  RAM that did not fit below the gap
 *   then         the 64-bit BAR window (PCI issue)
 */

#include <stdint.h>

#define LAYOUT_GDT_GPA        0x500ull   /* boot GDT: null, null, code64 (0x10), data (0x18), tss (0x20) */
#define LAYOUT_IDT_GPA        0x520ull   /* empty IDT (limit 0) until the guest sets its own */
#define LAYOUT_PVH_INFO_GPA   0x6000ull  /* hvm_start_info + memmap for the PVH entry */
#define LAYOUT_ZERO_PAGE_GPA  0x7000ull  /* struct boot_params ("zero page") */
#define LAYOUT_BOOT_STACK_GPA 0x8ff0ull  /* initial RSP/RBP of the boot vCPU */
#define LAYOUT_PML4_GPA       0x9000ull  /* identity page tables: PML4 */
#define LAYOUT_PDPT_GPA       0xa000ull  /*   one PDPT */
#define LAYOUT_PD_GPA         0xb000ull  /*   four PDs (0xb000-0xefff): 0-4 GiB in 2 MiB pages */
#define LAYOUT_PD_COUNT       4
#define LAYOUT_CMDLINE_GPA    0x20000ull /* kernel command line */
#define LAYOUT_CMDLINE_MAX    2048u      /* bytes incl. NUL unless a bzImage asks for less */
#define LAYOUT_EBDA_GPA       0x9fc00ull /* MP floating pointer + table, up to 0xa0000 */
#define LAYOUT_LEGACY_HOLE    0xa0000ull /* reserved up to LAYOUT_HIMEM */
#define LAYOUT_HIMEM          0x100000ull

#define MMIO_GAP_START 0xc0000000ull
#define MMIO_GAP_END   0x100000000ull
#define IOAPIC_GPA     0xfec00000ull
#define LAPIC_GPA      0xfee00000ull

/* Where guest RAM goes for a given size. */
struct mem_layout {
	uint64_t ram_size;  /* total guest RAM in bytes */
	uint64_t low_size;  /* RAM at [0, low_size), low_size <= MMIO_GAP_START */
	uint64_t high_size; /* RAM at [MMIO_GAP_END, MMIO_GAP_END + high_size) */
};

static inline void mem_layout_init(struct mem_layout *ml, uint64_t ram_size)
{
	ml->ram_size = ram_size;
	ml->low_size = ram_size < MMIO_GAP_START ? ram_size : MMIO_GAP_START;
	ml->high_size = ram_size - ml->low_size;
}

#endif
