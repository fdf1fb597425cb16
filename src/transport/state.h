/* state.h - the virtio transports' saved state (snapshots; util/snap.h). */
#ifndef EMBER_TRANSPORT_STATE_H
#define EMBER_TRANSPORT_STATE_H

/*
 * A virtio device on its transport, saved whole: for virtio-pci a "VPCI" section holding
 * the PCI function (pci_dev_save: configuration space, BARs, MSI-X), the common
 * configuration's selectors and the ISR, then the virtio core's state (virtio_save); for
 * virtio-mmio a "VMMI" section with the selectors and InterruptStatus, then the core's.
 * Restore into a transport just built the same way and plugged (pci) or on its bus (mmio),
 * before the guest runs: the PCI function first (so BAR0 and its notify ioeventfds are
 * where the guest put them), then the registers, then the device, which starts again if it
 * was running.  -errno with the reason; a refused state leaves the device as it was built
 * (the PCI function may already hold the saved configuration space if a later part is bad).
 */

#include "transport/mmio.h"
#include "transport/pci.h"
#include "util/err.h"
#include "util/snap.h"

void virtio_pci_save(struct virtio_pci *t, struct snap_w *w);
int virtio_pci_restore(struct virtio_pci *t, struct snap_r *r, struct err *e);
void virtio_mmio_save(struct virtio_mmio *t, struct snap_w *w);
int virtio_mmio_restore(struct virtio_mmio *t, struct snap_r *r, struct err *e);

#endif
