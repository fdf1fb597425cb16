/* msix.h - MSI-X: capability, table and PBA in a BAR, vectors as KVM routes + irqfds. */
#ifndef EMBER_PCI_MSIX_H
#define EMBER_PCI_MSIX_H

/*
 * PCI Local Bus 3.0 §6.8.2 and PCIe Base 6.0 §7.7.2.  The capability's
 * Message Control has MSI-X Enable (bit 15) and Function Mask (bit 14), both
 * RW, and the Table Size (bits 10:0, RO); Table and PBA Offset/BIR are RO.
 * The table (16 bytes per vector: address low/high, data, vector control with
 * Mask bit 0, reset value masked) and the Pending Bit Array live in BAR
 * regions this module registers on the device.
 *
 * GSIs.  A vector gets its GSI and irqfd lazily, the first time it becomes
 * deliverable (unmasked while MSI-X is enabled and the function unmasked),
 * so a 2048-vector function only costs what the guest uses.  Its route is
 * programmed then and again whenever its address/data changed since: at the
 * next unmask or, for a change made while unmasked, just before the next
 * message -- never half-way through the guest's update of an entry.  GSIs
 * stay allocated when the guest disables MSI-X; pci_msix_destroy() frees them.
 *
 * Delivery, pci_msix_notify(): with MSI-X disabled the event is dropped (the
 * device should be using INTx then, §6.8.2.3).  Enabled and neither the
 * function nor the vector masked: one write to the vector's eventfd.
 * Otherwise its Pending bit is set; when the vector becomes deliverable
 * (vector control or Function Mask written, or MSI-X enabled) the bit clears
 * and the message is sent (§6.8.2.9).
 *
 * Guest writes are checked: table accesses must be aligned 4- or 8-byte
 * accesses inside the table; the PBA is read-only; anything else is logged
 * (rate limited) and ignored, and a bad read returns all-ones.
 *
 * Locking: a per-instance mutex covers the table, the PBA, the mirrored
 * control bits and the routes; platform calls (GSI allocation, routing) are
 * made with it held.  pci_msix_cfg_write() runs with the host lock held
 * (host lock, then this one); pci_msix_notify() takes only this lock and may
 * be called from any thread, holding any device lock.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci/pci.h"
#include "util/err.h"
#include "util/snap.h"

#define PCI_MSIX_MAX_VECTORS 2048
#define PCI_MSIX_ENTRY_SIZE  16
#define MSIX_CAP_LEN         12 /* capability length in configuration space */

struct pci_msix_vector {
	uint64_t addr;
	uint32_t data;
	uint32_t ctrl; /* vector control: bit 0 = masked (reset value 1) */
	uint32_t gsi;
	int fd;      /* irqfd eventfd, -1 when not allocated */
	bool routed; /* route programmed with the current addr/data */
	bool direct; /* last reported to the direct hook as deliverable through fd */
};

struct pci_msix {
	struct pci_dev *dev;
	unsigned int nvec;
	unsigned int cap; /* capability offset in config space */
	unsigned int table_bar, pba_bar;
	uint64_t table_off, pba_off;
	struct pci_msix_vector *vec; /* nvec entries */
	uint64_t *pba;               /* ceil(nvec / 64) words */
	pthread_mutex_t lock;
	struct platform plat;
	struct ratelimit rl;
	/* Message Control's Enable and Function Mask, mirrored by pci_msix_cfg_write(). */
	bool enabled, fmask;
	/*
	 * Optional, set by the device after pci_msix_init(): called with the
	 * instance lock held each time vector `vec` starts being deliverable
	 * through its irqfd alone (enabled, neither it nor the function masked,
	 * its route carrying the current address/data): `irqfd` is then the
	 * vector's eventfd; and each time that stops (masked, disabled, or its
	 * message changed): `irqfd` is -1.  A device whose interrupts come from
	 * a producer that writes an eventfd itself (VFIO) points the producer
	 * at `irqfd` so messages go straight into KVM, and back at an eventfd
	 * of its own that calls pci_msix_notify() at -1, so masking and the PBA
	 * keep their meaning.  It must not call back into this instance.
	 */
	void (*direct)(void *opaque, unsigned int vec, int irqfd);
	void *direct_opaque;
};

/*
 * Add the MSI-X capability to `d` with `nvec` vectors (1..2048), the table at
 * `table_off` of BAR `table_bar` and the PBA at `pba_off` of BAR `pba_bar`
 * (both 8-byte aligned, inside memory BARs declared first, not overlapping
 * each other or the BAR's other regions).  Registers the two BAR regions and
 * sets d->msix.  `plat` is copied.  -EINVAL (bad arguments; nothing changed),
 * -ENOSPC (no room for the capability; nothing changed), -ENOMEM.
 */
int pci_msix_init(struct pci_msix *m, struct pci_dev *d, unsigned int nvec, unsigned int table_bar,
                  uint64_t table_off, unsigned int pba_bar, uint64_t pba_off,
                  const struct platform *plat);

/*
 * Release every GSI and eventfd and the table; clears d->msix.  The device
 * must be off the bus (its regions are no longer dispatched) and no thread
 * may still call pci_msix_notify().  A second call (or one after a failed
 * init) does nothing.
 */
void pci_msix_destroy(struct pci_msix *m);

/*
 * Signal vector `vec` (any thread; takes only the instance lock): send it,
 * set its Pending bit when masked, drop it when MSI-X is disabled.
 * Out-of-range vectors are ignored (logged).
 */
void pci_msix_notify(struct pci_msix *m, unsigned int vec);

/* True when MSI-X Enable is set (the device should use MSI-X rather than INTx). */
bool pci_msix_enabled(struct pci_msix *m);

/*
 * Called by the core, with the host lock held, for guest writes that touch
 * [cap, cap+12), after the write rule: reads Message Control back and reacts
 * to Enable / Function Mask transitions.
 */
void pci_msix_cfg_write(struct pci_msix *m, unsigned int off, uint32_t val, unsigned int size);

/*
 * Saved state (snapshots, util/snap.h): the table's entries and the Pending Bits, as a
 * "MSIX" section.  Restore puts them back without sending anything or programming routes
 * (nvec must match: -EINVAL otherwise, and on a short or bad section); the caller then
 * replays Message Control (pci_msix_cfg_write), which routes and sends as enabling would.
 */
void pci_msix_save(struct pci_msix *m, struct snap_w *w);
int pci_msix_restore(struct pci_msix *m, struct snap_r *r, struct err *e);

#endif
