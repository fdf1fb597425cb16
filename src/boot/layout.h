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
 *   0xC000_0000  32-bit MMIO gap (reserved in e820): 32-bit BARs (0xC0000000,
 *                512 MiB), ECAM (0xE0000000, 256 MiB), platform MMIO such as
 *                virtio-mmio (0xF0000000), IOAPIC 0xFEC00000, LAPIC 0xFEE00000
 *   0x1_0000_0000  RAM that did not fit below the gap
 *   then         the 64-bit BAR window: PCI_MEM64_SIZE from the first 1 GiB
 *                boundary at or above the end of RAM (and at or above 4 GiB)
 */

#include <stdint.h>

#define LAYOUT_GDT_GPA        0x500ull /* boot GDT: null, null, code64 (0x10), data (0x18), tss (0x20) */
#define LAYOUT_IDT_GPA        0x520ull  /* empty IDT (limit 0) until the guest sets its own */
#define LAYOUT_PVH_INFO_GPA   0x6000ull /* hvm_start_info + memmap for the PVH entry */
#define LAYOUT_ZERO_PAGE_GPA  0x7000ull /* struct boot_params ("zero page") */
#define LAYOUT_BOOT_STACK_GPA 0x8ff0ull /* initial RSP/RBP of the boot vCPU */
#define LAYOUT_PML4_GPA       0x9000ull /* identity page tables: PML4 */
#define LAYOUT_PDPT_GPA       0xa000ull /*   one PDPT */
#define LAYOUT_PD_GPA         0xb000ull /*   four PDs (0xb000-0xefff): 0-4 GiB in 2 MiB pages */
#define LAYOUT_PD_COUNT       4
#define LAYOUT_CMDLINE_GPA    0x20000ull /* kernel command line */
#define LAYOUT_CMDLINE_MAX    2048u      /* bytes incl. NUL unless a bzImage asks for less */
#define LAYOUT_EBDA_GPA       0x9fc00ull /* MP floating pointer + table, up to 0xa0000 */
#define LAYOUT_LEGACY_HOLE    0xa0000ull /* reserved up to LAYOUT_HIMEM */
#define LAYOUT_HIMEM          0x100000ull
/* The reset vector, F000:FFF0: the last 16 bytes below 1 MiB (ACPI tables end before it). */
#define LAYOUT_RESET_VECTOR_GPA 0xffff0ull

#define MMIO_GAP_START 0xc0000000ull
#define MMIO_GAP_END   0x100000000ull
#define IOAPIC_GPA     0xfec00000ull
#define LAPIC_GPA      0xfee00000ull

/* Inside the MMIO gap. */
#define PCI_MEM32_GPA      0xc0000000ull /* 32-bit BAR window, 512 MiB */
#define PCI_MEM32_SIZE     0x20000000ull
#define PCI_ECAM_GPA       0xe0000000ull /* ECAM: 1 MiB per bus, 256 buses */
#define PCI_ECAM_BUSES     256u
#define PLATFORM_MMIO_GPA  0xf0000000ull /* virtio-mmio and other platform devices */
#define PLATFORM_MMIO_SIZE 0x0ec00000ull /* up to the IOAPIC */

/* PCI I/O port window: above the legacy ports, below 64 KiB. */
#define PCI_IO_WIN_BASE 0x1000ull
#define PCI_IO_WIN_SIZE 0xf000ull

/* 64-bit BAR window: from the first 1 GiB boundary above RAM, 64 GiB. */
#define PCI_MEM64_ALIGN 0x40000000ull
#define PCI_MEM64_SIZE  0x1000000000ull

/* What each PCIe root port gets at build time (hot plug fits devices into these). */
#define PCI_PORT_IO_SIZE   0x1000ull     /* 4 KiB of I/O ports (bridge granularity) */
#define PCI_PORT_MEM_SIZE  0x200000ull   /* 2 MiB of 32-bit memory (bridge granularity 1 MiB) */
#define PCI_PORT_PREF_SIZE 0x40000000ull /* 1 GiB of 64-bit prefetchable memory */

/* INTA..INTD of bus 0 after swizzling reach GSIs 16..19 (IOAPIC pins, level, active high). */
#define PCI_INTX_GSI_BASE 16u

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

/* First address of the 64-bit BAR window for this layout. */
static inline uint64_t mem_layout_mem64_base(const struct mem_layout *ml)
{
	uint64_t end = MMIO_GAP_END + ml->high_size;

	return (end + PCI_MEM64_ALIGN - 1) & ~(PCI_MEM64_ALIGN - 1);
}

/*
 * Where memory hot plug's (virtio-mem's) region may start: above the 64-bit BAR window, so
 * that no BAR, the ECAM or RAM ever overlaps it, and not in the e820 map (the guest's
 * virtio-mem driver adds it as it gets plugged).  The caller puts it above the pmem regions
 * (which start at the same place) and rounds it up to its slot size.
 */
static inline uint64_t mem_layout_hotplug_mem_base(const struct mem_layout *ml)
{
	return mem_layout_mem64_base(ml) + PCI_MEM64_SIZE;
}

#endif
