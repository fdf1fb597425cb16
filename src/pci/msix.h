/* msix.h - MSI-X: capability, table and PBA in a BAR, vectors as KVM routes + irqfds. */
#ifndef EMBER_PCI_MSIX_H
#define EMBER_PCI_MSIX_H

/*
 * PCI Local Bus 3.0 §6.8.2 and PCIe Base 6.0 §7.7.2.  The capability's
 * Message Control has MSI-X Enable (bit 15) and Function Mask (bit 14); the
 * table (16 bytes per vector: address low/high, data, vector control with
 * Mask bit 0) and the Pending Bit Array live in BAR regions this module
 * registers on the device.
 *
 * Each vector gets a GSI and an eventfd bound as an irqfd when the function
 * is enabled; the GSI's route follows the vector's address/data.  Delivery,
 * pci_msix_notify(): if MSI-X is enabled and neither the function nor the
 * vector is masked, write the vector's eventfd; otherwise set its pending bit.
 * When a vector becomes unmasked (vector control or Function Mask written,
 * or MSI-X enabled) with its pending bit set, the bit clears and the message
 * is sent (§6.8.2.8: "the function must send the message... when unmasked").
 *
 * Guest writes are checked: table accesses must be 4 or 8 bytes, dword
 * aligned, inside the table; the PBA is read-only; anything else is logged
 * (rate limited) and ignored.  Thread-safe: a per-instance mutex covers the
 * table, the PBA and the routes.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci/pci.h"

#define PCI_MSIX_MAX_VECTORS 2048
#define PCI_MSIX_ENTRY_SIZE  16

struct pci_msix_vector {
	uint64_t addr;
	uint32_t data;
	uint32_t ctrl;   /* vector control: bit 0 = masked (reset value 1) */
	uint32_t gsi;
	int fd;          /* irqfd eventfd, -1 when not allocated */
	bool routed;     /* route programmed with the current addr/data */
};

struct pci_msix {
	struct pci_dev *dev;
	unsigned int nvec;
	unsigned int cap;           /* capability offset in config space */
	unsigned int table_bar, pba_bar;
	uint64_t table_off, pba_off;
	struct pci_msix_vector *vec; /* nvec entries */
	uint64_t *pba;               /* ceil(nvec / 64) words */
	pthread_mutex_t lock;
	struct pci_platform plat;
	struct ratelimit rl;
};

/*
 * Add the MSI-X capability to `d` with `nvec` vectors (1..2048), the table at
 * `table_off` of BAR `table_bar` and the PBA at `pba_off` of BAR `pba_bar`
 * (both 8-byte aligned; the BARs must be declared first).  Registers the two
 * BAR regions.  -EINVAL, -ENOSPC, -ENOMEM.
 */
int pci_msix_init(struct pci_msix *m, struct pci_dev *d, unsigned int nvec,
		  unsigned int table_bar, uint64_t table_off, unsigned int pba_bar, uint64_t pba_off,
		  const struct pci_platform *plat);

/* Release every route and eventfd and the table. */
void pci_msix_destroy(struct pci_msix *m);

/* Signal vector `vec` (any thread).  Out-of-range vectors are ignored (logged). */
void pci_msix_notify(struct pci_msix *m, unsigned int vec);

/* True when MSI-X Enable is set (the device should use MSI-X rather than INTx). */
bool pci_msix_enabled(struct pci_msix *m);

/* Called by the core for guest writes that touch the capability (after the write rule). */
void pci_msix_cfg_write(struct pci_msix *m, unsigned int off, uint32_t val, unsigned int size);

#endif
