/* devreg.h - the device registry: every device of a VM, one entry each, with a lifecycle. */
#ifndef EMBER_VMM_DEVREG_H
#define EMBER_VMM_DEVREG_H

/*
 * Every device a VM has -- the legacy ones on the platform, the root ports, the PCI test
 * device, the virtio devices on either transport, the host devices passed through -- is one
 * `struct dev` on its VM's registry, in the order the VM built them (docs/architecture.md,
 * "The device registry").  An entry names its device, its kind ("block", "root-port", ...),
 * its parent (the root port it sits behind, or none: bus 0 or the platform) and its
 * attachment (a PCI function, or a window of port I/O or MMIO), and points at its ops:
 *
 *   destroy   the undo of its creation, for the ones that can leave a running VM (unplug);
 *   collect   its share of Firecracker's metrics;
 *   pause     requests in flight complete and the guest's new ones wait; resume serves them;
 *   save      its state, after pause; restore puts it back into a device built the same way.
 *
 * Each op may be NULL: nothing to do.  A device whose state cannot be saved (a host
 * device's) says why in `nosave`, and a VM with one cannot be saved.  The shared parts are
 * not the devices' business: the PCI core saves a function's configuration space, BARs, MSI
 * and MSI-X (pci_dev_save), the virtio core and transports a virtio device's features,
 * status and queues (virtio_pci_save), the slots' state machine unplugs.
 *
 * Kinds and names: two devices of one kind never share a name; a drive and a NIC may.  The
 * registry is the VMM thread's (no lock); devices keep their own locks for vCPU accesses.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/snap.h"

struct pci_dev;
struct metrics_values;

enum dev_attach {
	DEV_AT_PCI,  /* a PCI function (`pci`) */
	DEV_AT_PIO,  /* port I/O [base, base + size) */
	DEV_AT_MMIO, /* MMIO [base, base + size) */
};

struct dev;

struct dev_ops {
	const char *kind; /* in logs, errors and saved state: "block", "root-port", ... */
	/* Tear the device down and free it (it has left the registry); `owner` is the VM. */
	void (*destroy)(void *owner, struct dev *d);
	void (*collect)(struct dev *d, struct metrics_values *v);
	void (*pause)(struct dev *d);
	void (*resume)(struct dev *d);
	void (*save)(struct dev *d, struct snap_w *w);
	int (*restore)(struct dev *d, struct snap_r *r, struct err *e);
	const char *nosave; /* why the device cannot be saved; NULL: it can (or has no state) */
};

struct dev {
	char name[72];
	const struct dev_ops *ops;
	void *obj;          /* the device itself (its ops know its type) */
	struct dev *parent; /* the root port it sits behind; NULL: bus 0 or the platform */
	enum dev_attach attach;
	struct pci_dev *pci;     /* DEV_AT_PCI */
	uint64_t base, size;     /* DEV_AT_PIO, DEV_AT_MMIO */
	struct dev *prev, *next; /* on the registry, in build order */
	bool registered;
	bool restored; /* devreg_restore's: its state was read */
	/* This device cannot be saved although its kind can (a vhost-user drive): why; NULL:
	 * its ops decide. */
	const char *nosave;
};

struct devreg {
	struct dev *first, *last;
	unsigned int n;
};

void devreg_init(struct devreg *reg);
/*
 * Add `d` (name, ops, obj, parent and attachment set) at the end.  -EEXIST with the reason
 * when its kind already has a device of that name, -EINVAL for an entry already on a
 * registry or without ops.
 */
int devreg_add(struct devreg *reg, struct dev *d, struct err *e);
/* Take `d` off (nothing when it is not on). */
void devreg_remove(struct devreg *reg, struct dev *d);
/* The device of `kind` named `name`, or NULL. */
struct dev *devreg_find(const struct devreg *reg, const char *kind, const char *name);
/* How many devices of `kind` (NULL: all). */
unsigned int devreg_count(const struct devreg *reg, const char *kind);

#define DEVREG_FOR_EACH(reg, d) for (struct dev *d = (reg)->first; d; d = d->next)

/* Each device's op, in build order (resume in reverse). */
void devreg_pause(struct devreg *reg);
void devreg_resume(struct devreg *reg);
void devreg_collect(struct devreg *reg, struct metrics_values *v);

/*
 * Save: a "DEVS" section holding one "DEV " section per device with a save op -- its kind,
 * name and parent's name, then what the op wrote.  -ENOTSUP with the reason if a device
 * cannot be saved (nothing is written then); -ENOMEM.  Pause the devices first.
 *
 * Restore into a registry built with the same devices: each saved device must be one of this
 * registry's (found by kind and name, whatever the order it was built in) behind the same
 * parent, each once, and every device with a save op must be there; they are restored in the
 * saved order.  -EINVAL naming the first difference, or what a device's restore or the reader
 * said (short or corrupted state).
 */
int devreg_save(struct devreg *reg, struct snap_w *w, struct err *e);
int devreg_restore(struct devreg *reg, struct snap_r *r, struct err *e);

#endif
