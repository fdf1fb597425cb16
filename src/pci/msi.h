/* msi.h - MSI: the 64-bit capability with per-vector masking, up to 32 vectors. */
#ifndef EMBER_PCI_MSI_H
#define EMBER_PCI_MSI_H

/*
 * PCI Local Bus 3.0 §6.8.1: Message Control (enable bit 0, Multiple Message
 * Capable bits 3:1 RO, Multiple Message Enable bits 6:4, 64-bit bit 7,
 * Per-Vector Masking bit 8), Message Address (low, bits 1:0 RO 0; high),
 * Message Data (16 bits), Mask Bits (RW for the capable vectors) and Pending
 * Bits (RO).  With N = 2^MME vectors enabled the device signals vector v by
 * sending Data with its low log2(N) bits replaced by v.  A Multiple Message
 * Enable above Multiple Message Capable (which software must not write) is
 * clamped to it, in the register too.
 *
 * GSIs.  A vector gets a GSI + irqfd the first time it becomes deliverable
 * (enabled, below N, unmasked) or sends; they stay until pci_msi_destroy().
 * A change of address, data or MME marks every route stale; a vector's route
 * is reprogrammed when it next becomes deliverable or just before its next
 * message, so it always carries the message current at send time.
 *
 * pci_msi_notify(): disabled or v >= N: dropped.  Unmasked: one write to the
 * vector's eventfd.  Masked: its Pending bit is set (in configuration
 * space); an unmask with the bit set sends the message and clears the bit.
 *
 * Locking: a per-instance mutex covers the mirrored registers, the pending
 * bits and the routes.  pci_msi_cfg_write() runs with the host lock held
 * (host lock, then this one).  pci_msi_notify() takes only the instance lock
 * on its fast path; for a masked vector it takes the host lock first to
 * update Pending Bits, so callers must not hold a lock that code running
 * under the host lock (a device's config-space hooks) may take -- nor the
 * host lock itself: code that holds it (a hook) uses pci_msi_notify_locked().
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci/pci.h"

#define PCI_MSI_MAX_VECTORS 32
#define MSI_CAP_LEN         24 /* 64-bit address + per-vector masking layout */

struct pci_msi {
	struct pci_dev *dev;
	unsigned int cap;  /* capability offset */
	unsigned int nvec; /* vectors the device is capable of (power of two, 1..32) */
	uint32_t gsi[PCI_MSI_MAX_VECTORS];
	int fd[PCI_MSI_MAX_VECTORS];
	unsigned int nalloc; /* how many vectors have a GSI/fd (fd[v] >= 0) */
	pthread_mutex_t lock;
	struct platform plat;
	struct ratelimit rl;
	/* The capability's registers as of the last pci_msi_cfg_write(), under `lock`. */
	bool enabled;
	unsigned int nen; /* vectors enabled, 1 << MME */
	uint64_t addr;
	uint16_t data;
	uint32_t mask;    /* Mask Bits (capable vectors only) */
	uint32_t pending; /* Pending Bits (also in configuration space) */
	uint32_t routed;  /* bit v: vector v's route carries its current message */
	/*
	 * Optional, set by the device after pci_msi_init(), as pci_msix's `direct`
	 * (msix.h): called with the instance lock held when vector `vec` starts being
	 * deliverable through its irqfd alone (enabled, below the enabled count,
	 * unmasked, routed with its current message: `irqfd` is its eventfd) or stops
	 * (`irqfd` -1).  It must not call back into this instance.
	 */
	void (*direct)(void *opaque, unsigned int vec, int irqfd);
	void *direct_opaque;
	uint32_t direct_on; /* bit v: last reported as direct */
};

/*
 * Add a 64-bit, per-vector-maskable MSI capability with `nvec` (1, 2, 4, 8,
 * 16, 32) vectors to `d` and set d->msi.  `plat` is copied.  -EINVAL,
 * -ENOSPC (no room for the capability); nothing changed on error.
 */
int pci_msi_init(struct pci_msi *m, struct pci_dev *d, unsigned int nvec,
                 const struct platform *plat);

/*
 * Free every GSI and eventfd; clears d->msi.  No thread may still call
 * pci_msi_notify().  A second call (or one after a failed init) does nothing.
 */
void pci_msi_destroy(struct pci_msi *m);

/*
 * Signal vector `vec` (any thread): send, or set its Pending bit when
 * masked (taking the host lock, see above); ignored if MSI is disabled or
 * vec >= the enabled count.
 */
void pci_msi_notify(struct pci_msi *m, unsigned int vec);

/*
 * The same, for a caller that already holds the host lock (a device's
 * config-space hooks, or code that took it to change the device's registers
 * and signal atomically); with the device unplugged, no lock.  Never with the
 * instance lock held.
 */
void pci_msi_notify_locked(struct pci_msi *m, unsigned int vec);

/* True when MSI Enable is set. */
bool pci_msi_enabled(struct pci_msi *m);

/*
 * Called by the core, with the host lock held, for guest writes that touch
 * [cap, cap+24), after the write rule: reads the registers back, reroutes,
 * delivers pending messages of vectors that became deliverable.
 */
void pci_msi_cfg_write(struct pci_msi *m, unsigned int off, uint32_t val, unsigned int size);

/*
 * After a saved configuration space was put back (pci/state.c, host lock held): the Pending
 * Bits from `saved_cfg` (read-only to the guest, so not restored with the rest) and the
 * capability's registers taken in, as a guest write would (sends what is pending and
 * deliverable).
 */
void pci_msi_restore_sync(struct pci_msi *m, const uint8_t *saved_cfg);

#endif
