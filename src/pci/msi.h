/* msi.h - MSI: the 64-bit capability with per-vector masking, up to 32 vectors. */
#ifndef EMBER_PCI_MSI_H
#define EMBER_PCI_MSI_H

/*
 * PCI Local Bus 3.0 §6.8.1: Message Control (enable bit 0, Multiple Message
 * Capable/Enable, 64-bit bit 7, Per-Vector Masking bit 8), Message Address
 * (low, high), Message Data, Mask Bits and Pending Bits (read-only).  With
 * N vectors enabled the device signals vector v by sending Data with its low
 * log2(N) bits replaced by v.
 *
 * Each enabled vector has a GSI + irqfd; routes follow the address/data.
 * pci_msi_notify() sends, or sets the vector's pending bit when masked; an
 * unmask with the pending bit set sends the message then.  Thread-safe.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci/pci.h"

#define PCI_MSI_MAX_VECTORS 32

struct pci_msi {
	struct pci_dev *dev;
	unsigned int cap;     /* capability offset */
	unsigned int nvec;    /* vectors the device is capable of (power of two, 1..32) */
	uint32_t gsi[PCI_MSI_MAX_VECTORS];
	int fd[PCI_MSI_MAX_VECTORS];
	unsigned int nalloc;  /* vectors with a GSI/fd */
	pthread_mutex_t lock;
	struct pci_platform plat;
	struct ratelimit rl;
};

/* Add a 64-bit, per-vector-maskable MSI capability with `nvec` (1, 2, 4, 8, 16, 32) vectors. */
int pci_msi_init(struct pci_msi *m, struct pci_dev *d, unsigned int nvec,
		 const struct pci_platform *plat);
void pci_msi_destroy(struct pci_msi *m);

/* Signal vector `vec` (any thread); ignored if MSI is disabled or vec >= enabled count. */
void pci_msi_notify(struct pci_msi *m, unsigned int vec);
bool pci_msi_enabled(struct pci_msi *m);

/* Called by the core for guest writes that touch the capability (after the write rule). */
void pci_msi_cfg_write(struct pci_msi *m, unsigned int off, uint32_t val, unsigned int size);

#endif
