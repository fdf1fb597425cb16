/* intx.h - legacy INTx for PCI functions: level-triggered irqfd with resample (core-internal). */
#ifndef EMBER_PCI_INTX_H
#define EMBER_PCI_INTX_H

/*
 * INTx is level-triggered and shared (PCI 3.0 §2.2.6).  KVM models a level
 * line fed by an eventfd with a resample eventfd: a write to the irqfd
 * asserts the line, KVM deasserts it when the guest EOIs the interrupt and
 * signals the resample fd; ember then re-asserts it if the device's pin is
 * still asserted.  A deasserted pin needs nothing from KVM: the line drops
 * at the EOI and the resample finds the pin low.  The pin reaches the line
 * unless COMMAND.Interrupt Disable (bit 10) is set, and STATUS.Interrupt
 * Status (bit 3) follows the pin (PCI 3.0 §6.2.2, §6.2.3).  pci_intx_set()
 * is in pci.h.
 *
 * Locking: d->intx and the configuration bits above are covered by the host
 * lock.  pci_intx_set() takes it, so a device must not call it while holding
 * a lock that code running under the host lock takes (its config-space
 * hooks), nor from inside such a hook.  The resample callback runs on the
 * VMM thread (platform watch) and takes the host lock too.  The functions
 * below are the core's: pci_intx_plug() and pci_intx_command_changed() are
 * called with the host lock held, pci_intx_unplug() without it.
 */

#include "pci/pci.h"

/*
 * Allocate the level irqfd/resample pair for `d` on `gsi` through
 * d->host->plat, watch the resample fd, write Interrupt Line (gsi & 0xff,
 * left guest-writable).  A pin already asserted is raised at once.  -EINVAL
 * (no host), -EBUSY (already plugged), -errno from the platform (nothing
 * allocated then).
 */
int pci_intx_plug(struct pci_dev *d, uint32_t gsi);

/*
 * Detach the INTx state (under the host lock, which the caller must not
 * hold), then stop watching and free the irqfds.  Safe when never plugged.
 * Run on the VMM thread (or with the loop stopped), before d->host is cleared.
 */
void pci_intx_unplug(struct pci_dev *d);

/* The guest wrote COMMAND: if Interrupt Disable is clear and the pin asserted, raise the line. */
void pci_intx_command_changed(struct pci_dev *d);

#endif
