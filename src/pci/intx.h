/* intx.h - legacy INTx for PCI functions: level-triggered irqfd with resample (core-internal). */
#ifndef EMBER_PCI_INTX_H
#define EMBER_PCI_INTX_H

/*
 * INTx is level-triggered and shared (PCI 3.0 §2.2.6).  KVM models a level
 * line fed by an eventfd with a resample eventfd: a write to the irqfd
 * asserts the line, KVM deasserts it when the guest EOIs the interrupt and
 * signals the resample fd; ember then re-asserts it if the device's pin is
 * still asserted.  The pin reaches the line unless COMMAND.Interrupt Disable
 * (bit 10) is set, and STATUS.Interrupt Status (bit 3) follows the pin
 * (PCI 3.0 §6.2.2, §6.2.3).  pci_intx_set() is in pci.h.
 */

#include "pci/pci.h"

/* Allocate the irqfd/resample pair for `d` on `gsi`, write Interrupt Line, watch resample. */
int pci_intx_plug(struct pci_dev *d, uint32_t gsi);
/* Stop watching, free the irqfds.  Safe when never plugged. */
void pci_intx_unplug(struct pci_dev *d);
/* The guest changed COMMAND: apply Interrupt Disable to the line. */
void pci_intx_command_changed(struct pci_dev *d);

#endif
