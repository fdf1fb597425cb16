/* vfio_pci.h - a host PCI device passed through to the guest with VFIO (docs/vfio.md). */
#ifndef EMBER_DEVICES_PCI_VFIO_PCI_H
#define EMBER_DEVICES_PCI_VFIO_PCI_H

/*
 * A function on ember's PCI bus backed by a host device bound to vfio-pci (backends/vfio.h).
 * The guest's view is ember's own:
 *
 *   - configuration space is ember's: the device's ids, class, revision and subsystem ids,
 *     its memory and I/O BARs and expansion ROM (sizes, types and prefetchability read from
 *     the device; addresses placed by ember or moved by the guest like any other BAR), and
 *     ember's own MSI and
 *     MSI-X capabilities shaped like the device's (vector count; the MSI-X table and PBA at
 *     the device's BAR offsets); the device's other capabilities are hidden;
 *   - memory BARs are mmap'd from VFIO where it allows and given to the guest as memory at
 *     the BAR's address (KVM memory slots through the platform, moved with the BAR), all
 *     but the pages of the MSI-X table and PBA, which ember emulates (pci/msix); the rest
 *     (I/O BARs, the ROM, small BARs, the bytes around the table) traps and is forwarded to
 *     the device's region;
 *   - COMMAND's memory-decode, bus-master and Interrupt Disable bits are forwarded to the
 *     device;
 *   - every region of guest RAM is mapped for the device's DMA at IOVA = guest physical
 *     address, so the guest programs its device with guest addresses;
 *   - interrupts follow what the guest enabled: MSI-X, else MSI, else INTx (the device's
 *     pin, ember's line: VFIO signals the line's level irqfd and takes its resample
 *     eventfd as "unmask", so INTx never passes through ember).  Each vector
 *     of the device (VFIO_DEVICE_SET_IRQS, one eventfd per vector) signals either the KVM
 *     irqfd of the vector's GSI route directly, while the vector is deliverable and routed,
 *     or an eventfd of ember's, watched on the VMM thread, which hands it to the
 *     PCI core (pci_msix_notify / pci_msi_notify): masked vectors set their pending bits
 *     and fire at unmask, as for ember's own devices.
 *
 * Hot plug and unplug are the VM's (vmm/vm_hotplug.c): the function goes behind a root port.
 */

#include <stdbool.h>
#include <stdint.h>

#include "backends/vfio.h"
#include "pci/msi.h"
#include "pci/msix.h"
#include "pci/pci.h"
#include "util/err.h"
#include "util/gmem.h"
#include "util/log.h"
#include "util/platform.h"

#define VFIO_PCI_MAX_MSI 32

struct vfio_pci;

/* One forwarded stretch of a BAR: [base, base + its region's length) of the device's region. */
struct vfio_pci_bar_ctx {
	struct vfio_pci *v;
	unsigned int bar;
	uint64_t base;
};

/* One MSI or MSI-X vector of the device. */
struct vfio_pci_msi_ctx {
	struct vfio_pci *v;
	unsigned int vec;
	int fd;     /* ember's eventfd for the vector (relayed on the VMM thread); -1: none */
	int direct; /* MSI-X: the vector's KVM irqfd while it may bypass ember; else -1 */
};

/* A page-aligned stretch of a BAR mmap'd from VFIO, given to the guest as memory. */
struct vfio_pci_map {
	uint64_t offset, len; /* within the BAR */
	void *hva;
	uint32_t slot; /* the platform's name for the mapping */
	bool on;       /* mapped into the guest now (at the BAR's address + offset) */
};

#define VFIO_PCI_MAPS_PER_BAR 4

/* Which of the device's interrupts VFIO has on (its VFIO_PCI_*_IRQ_INDEX), or none. */
enum vfio_pci_irq { VFIO_PCI_IRQ_NONE = -1 };

struct vfio_pci {
	struct pci_dev dev;
	struct vfio_dev vd;
	char name[32]; /* "vfio DDDD:BB:DD.F" */
	struct platform plat;
	const struct gmem *gm;
	unsigned int dma_mapped; /* guest RAM regions mapped for DMA */
	struct pci_msi msi;
	bool msi_ready;
	unsigned int nmsi;
	struct vfio_pci_msi_ctx msi_ctx[VFIO_PCI_MAX_MSI];
	struct pci_msix msix;
	bool msix_ready;
	unsigned int nmsix;                /* vectors with a context (and an eventfd) */
	struct vfio_pci_msi_ctx *msix_ctx; /* msix.nvec entries */
	int irq;                           /* VFIO index on, or VFIO_PCI_IRQ_NONE (host lock) */
	unsigned int msi_on;               /* MSI vectors VFIO has on (the guest's enabled count) */
	bool intx;                         /* the function has an INTx pin VFIO can deliver */
	/* per BAR and the ROM (PCI_ROM_SLOT = VFIO_PCI_ROM_REGION_INDEX) */
	struct vfio_pci_bar_ctx bar_ctx[PCI_BAR_COUNT + 1][PCI_BAR_MAX_REGIONS];
	unsigned int nbar_ctx[PCI_BAR_COUNT + 1];
	struct vfio_pci_map maps[PCI_BAR_COUNT][VFIO_PCI_MAPS_PER_BAR];
	unsigned int nmaps[PCI_BAR_COUNT];
	struct ratelimit rl;
	/* counters: BAR accesses forwarded, MSI and MSI-X messages relayed through ember */
	uint64_t bar_reads, bar_writes, msis, msixs;
	uint64_t mapped_bytes; /* of BARs mmap'd for the guest */
};

/*
 * Open the host device `path` (sysfs folder or DDDD:BB:DD.F), reset it, map guest RAM `gm`
 * for its DMA and build the PCI function, not yet plugged.  -errno with a message that says
 * what to do (docs/vfio.md); nothing is left open on failure.
 */
int vfio_pci_init(struct vfio_pci *v, const char *path, const struct gmem *gm,
                  const struct platform *plat, struct err *e);

/* Undo vfio_pci_init (after unplugging): interrupts off, DMA unmapped, device reset and closed. */
void vfio_pci_destroy(struct vfio_pci *v);

#endif
