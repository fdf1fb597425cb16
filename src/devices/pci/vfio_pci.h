/* vfio_pci.h - a host PCI device passed through to the guest with VFIO (docs/vfio.md). */
#ifndef EMBER_DEVICES_PCI_VFIO_PCI_H
#define EMBER_DEVICES_PCI_VFIO_PCI_H

/*
 * A function on ember's PCI bus backed by a host device bound to vfio-pci (backends/vfio.h).
 * This first version keeps the guest's view simple and ember's own:
 *
 *   - configuration space is ember's: the device's ids, class, revision and subsystem ids,
 *     its memory BARs (sizes, types and prefetchability read from the device; addresses
 *     placed by ember or moved by the guest like any other BAR), and, when the device has
 *     MSI, ember's own MSI capability with as many vectors; the device's other capabilities
 *     are hidden (a conservative subset of what the passthrough issue asks);
 *   - BAR accesses trap and are forwarded to the device's region (no mmap into the guest
 *     yet: correct, not fast);
 *   - COMMAND's memory-decode and bus-master bits are forwarded to the device;
 *   - every region of guest RAM is mapped for the device's DMA at IOVA = guest physical
 *     address, so the guest programs its device with guest addresses;
 *   - the device's MSI vectors (VFIO_DEVICE_SET_IRQS) land on eventfds watched on the VMM
 *     thread, which sends them through ember's MSI capability (pci_msi_notify: the guest's
 *     mask and pending bits hold as for ember's own devices).
 *
 * Not yet: I/O BARs, MSI-X, INTx, the expansion ROM, hot plug (the passthrough issue).
 */

#include <stdbool.h>
#include <stdint.h>

#include "backends/vfio.h"
#include "pci/msi.h"
#include "pci/pci.h"
#include "util/err.h"
#include "util/gmem.h"
#include "util/log.h"
#include "util/platform.h"

#define VFIO_PCI_MAX_MSI 32

struct vfio_pci;

struct vfio_pci_bar_ctx {
	struct vfio_pci *v;
	unsigned int bar;
};

struct vfio_pci_msi_ctx {
	struct vfio_pci *v;
	unsigned int vec;
	int fd; /* VFIO signals vector `vec` here; -1: none */
};

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
	struct vfio_pci_bar_ctx bar_ctx[PCI_BAR_COUNT];
	struct ratelimit rl;
	/* counters: BAR accesses forwarded, MSIs relayed */
	uint64_t bar_reads, bar_writes, msis;
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
