/* gsi.h - KVM's GSI routing table: legacy irqchip lines plus MSI routes, irqfds, ioeventfds. */
#ifndef EMBER_KVM_GSI_H
#define EMBER_KVM_GSI_H

/*
 * KVM_SET_GSI_ROUTING replaces the whole table, so ember keeps the table
 * here: KVM's own default irqchip routes, reproduced entry for entry (GSI
 * 0-15 to IOAPIC pin i and to PIC master/slave pin i % 8 -- GSI 2 included,
 * as KVM does -- and GSI 16-23 to IOAPIC pins 16-23; see
 * kvm_setup_default_irq_routing()), then one MSI route per allocated GSI
 * that has a message (24 up to GSI_MAX).  Every change rewrites the table
 * under a mutex; changes happen when a guest programs MSI/MSI-X, never on an
 * interrupt's fast path (which is a write(2) on an irqfd).
 *
 * An MSI GSI is bound to its irqfd at allocation but has no route until
 * gsi_msi_route(): KVM drops a write on a GSI with no routing entry.
 *
 * Threads: the gsi_msi_* and gsi_intx_* calls are thread-safe.  Watches
 * (ops->watch/unwatch) must be added and removed on the VMM thread, or
 * while the loop is not running, since their callbacks run there.
 *
 * gsi_router_platform() fills a `struct platform` with this router's
 * implementation, for the PCI layer.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvm/kvm.h"
#include "util/platform.h"
#include "util/evloop.h"

#define GSI_LEGACY_COUNT 24   /* IOAPIC pins */
#define GSI_MAX          1024 /* routes ember manages (KVM allows 4096 on x86) */

struct gsi_msi_route {
	bool used;
	bool valid; /* has a message */
	uint64_t addr;
	uint32_t data;
};

struct gsi_watch {
	struct evloop_watch w;
	void (*cb)(void *arg);
	void *arg;
	bool used;
};

/*
 * INTx resample fds, and one eventfd per MSI/MSI-X vector of each passed-through device
 * (devices/pci/vfio_pci: a masked vector's message comes back through ember; QEMU's NVMe
 * controller alone has 65 vectors).  Half of the usual 1024 open files a process may have.
 */
#define GSI_MAX_WATCHES 512

struct gsi_router {
	struct kvm *kvm;
	struct evloop *loop; /* for INTx resample watches */
	pthread_mutex_t lock;
	struct gsi_msi_route msi[GSI_MAX];
	struct gsi_watch watches[GSI_MAX_WATCHES];
};

/*
 * Install the default table (legacy routes only) with KVM_SET_GSI_ROUTING,
 * so the table is ember's from the start.  The in-kernel irqchip must exist
 * (KVM refuses routing without one).  `loop` (may be NULL: no watches) runs
 * the INTx resample callbacks.  -errno with a message.
 */
int gsi_router_init(struct gsi_router *g, struct kvm *kvm, struct evloop *loop, struct err *e);

/* Drop the watches and the mutex.  Every GSI should have been freed (a leftover is logged). */
void gsi_router_destroy(struct gsi_router *g);

/* The PCI layer's view of this router: ops bound to `g`. */
void gsi_router_platform(struct gsi_router *g, struct platform *out);

/*
 * Build the table KVM_SET_GSI_ROUTING takes from g->msi: the legacy entries
 * above, then an MSI entry for every used and valid GSI, in GSI order.  Pure
 * (no ioctl; the caller holds g->lock or owns g alone).  malloc'd, the caller
 * frees it; NULL when out of memory.
 */
struct kvm_irq_routing *gsi_routing_build(const struct gsi_router *g);

/*
 * Take the lowest free GSI >= GSI_LEGACY_COUNT and a new eventfd (CLOEXEC,
 * NONBLOCK) bound to it as an irqfd; no route yet.  The caller owns *fd until
 * gsi_msi_free().  -ENOSPC when all GSI_MAX are taken, -errno from eventfd or
 * KVM_IRQFD.
 */
int gsi_msi_alloc(struct gsi_router *g, uint32_t *gsi, int *fd);

/*
 * Give allocated `gsi` the MSI message (address, data) and reinstall the
 * table (nothing is done when the route is unchanged).  Once it returns, the
 * next write to the GSI's irqfd sends this message.  -EINVAL (not an
 * allocated MSI GSI), -errno from KVM (the previous route stays).
 */
int gsi_msi_route(struct gsi_router *g, uint32_t gsi, uint64_t addr, uint32_t data);

/* Unbind and close `fd`, release `gsi` and remove its route.  Unknown GSIs are ignored. */
void gsi_msi_free(struct gsi_router *g, uint32_t gsi, int fd);
/* MSI routes allocated now (diagnostics: GET /pci, leak checks). */
unsigned int gsi_msi_count(struct gsi_router *g);

/*
 * Bind a new eventfd as a level-triggered irqfd on legacy `gsi` (< 24) with
 * a new resample eventfd (KVM_IRQFD_FLAG_RESAMPLE); both CLOEXEC|NONBLOCK and
 * owned by the caller until gsi_intx_free().  -EINVAL, -errno.
 */
int gsi_intx_alloc(struct gsi_router *g, uint32_t gsi, int *fd, int *resample_fd);

/* Unbind and close both fds (the resample fd must no longer be watched). */
void gsi_intx_free(struct gsi_router *g, uint32_t gsi, int fd, int resample_fd);
int gsi_line_alloc(struct gsi_router *g, uint32_t gsi, int *fd);
void gsi_line_free(struct gsi_router *g, uint32_t gsi, int fd);

#endif
