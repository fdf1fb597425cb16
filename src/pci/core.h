/* core.h - PCI core internals shared by host.c, bar.c and dump.c (not for device models). */
#ifndef EMBER_PCI_CORE_H
#define EMBER_PCI_CORE_H

/*
 * Functions here run with the host's lock held unless said otherwise; they
 * are the pieces host.c (topology, configuration dispatch, plug/unplug)
 * needs from bar.c (BAR registry) and that dump.c needs from host.c.  The
 * accessors every one of them uses are inline here, so bar.c needs nothing
 * from host.c.
 */

#include <stdbool.h>
#include <stdint.h>

#include "pci/pci.h"

/* x86-64 MAXPHYADDR is at most 52 bits (Intel SDM vol. 3 §4.1.4): no BAR can be decoded above. */
#define PCI_BAR_ADDR_LIMIT (1ull << 52)

/* The device's name for messages ("?" when it has none). */
static inline const char *pci_dev_name(const struct pci_dev *d)
{
	return d->name ? d->name : "?";
}

/* True for a type 1 (PCI-to-PCI bridge) header. */
static inline bool pci_dev_is_bridge(const struct pci_dev *d)
{
	return (pci_cfg_get8(&d->cfg, PCI_HEADER_TYPE) & 0x7f) == PCI_HEADER_TYPE_BRIDGE;
}

/* Number of BAR registers of d's header: 6 for type 0, 2 for type 1 (PCI-to-PCI Bridge 1.2 §3.2).
 */
static inline unsigned int pci_dev_bar_count(const struct pci_dev *d)
{
	return pci_dev_is_bridge(d) ? 2 : PCI_BAR_COUNT;
}

/* The BAR slots the core walks: the BARs, and the expansion ROM of a type 0 function. */
static inline unsigned int pci_dev_slot_count(const struct pci_dev *d)
{
	return pci_dev_is_bridge(d) ? 2 : PCI_BAR_COUNT + 1;
}

/*
 * Bump-allocate `size` bytes aligned to `align` (a power of two) from `w`.
 * Sets *addr and advances w->next; -ENOSPC (w unchanged) when it does not fit.
 */
int pci_window_alloc(struct pci_window *w, uint64_t size, uint64_t align, uint64_t *addr);

/*
 * Where each kind of BAR goes.  On bus 0: io, mem32 and mem64 from the host
 * windows (mem64_np == mem64).  Behind a bridge: the bridge's I/O, memory and
 * prefetchable windows, and mem64_np == mem32 because a bridge's
 * non-prefetchable window is 32-bit only (PCI-to-PCI Bridge 1.2 §3.2.5.8).
 */
struct pci_bar_windows {
	struct pci_window *io, *mem32, *mem64, *mem64_np;
};

/*
 * Assign every declared BAR of d an address, largest first, aligned to its
 * size, and write it to the BAR register (COMMAND decode is left alone).
 * Allocates from the windows in `w` (the caller passes copies and keeps them
 * only on success).  -ENOSPC with a message naming the BAR and window.
 */
int pci_bar_assign(struct pci_dev *d, const struct pci_bar_windows *w, struct err *e);

/* A guest write hit [off, off+size) of d's BAR registers / COMMAND: track 64-bit halves. */
void pci_bar_note_write(struct pci_dev *d, unsigned int off, unsigned int size);
void pci_bar_note_command(struct pci_dev *d);

/*
 * Bring every BAR's mapping in line with COMMAND and the BAR registers
 * (see bar.c).  `quiet` suppresses the conflict warning (used when retrying
 * after another device freed space).  Returns true when some range left the
 * bus or moved, i.e. space may have been freed for BARs left unmapped.
 */
bool pci_bar_update(struct pci_dev *d, bool quiet);

/* Unmap every BAR of d (without waiting for readers), reporting each to ops->bar_map. */
void pci_bar_unmap_all(struct pci_dev *d);

/* The function at bus/devfn under the current bus numbering, or NULL.  Lock held. */
struct pci_dev *pci_host_find_locked(struct pci_host *h, uint8_t bus, uint8_t devfn);
/* Re-try the mappings of every function after space was freed or BARs restored (quietly). */
void pci_host_remap_all(struct pci_host *h);

/* What a guest reads at off (through ops->cfg_read); the access must be valid.  Lock held. */
uint32_t pci_dev_cfg_read_locked(struct pci_dev *d, unsigned int off, unsigned int size);

#endif
