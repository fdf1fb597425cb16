/* gsi.h - KVM's GSI routing table: legacy irqchip lines plus MSI routes, irqfds, ioeventfds. */
#ifndef EMBER_KVM_GSI_H
#define EMBER_KVM_GSI_H

/*
 * KVM_SET_GSI_ROUTING replaces the whole table, so ember keeps the table
 * here: the default irqchip routes (GSI 0-15 to the master/slave PIC and
 * IOAPIC pins 0-15 -- the identity mapping KVM installs by default, minus PIC
 * pin 2 which is the cascade -- and GSI 16-23 to IOAPIC pins 16-23) and one
 * MSI route per allocated GSI (24 up to the KVM limit).  Every change
 * rewrites the table under a mutex; changes happen when a guest programs
 * MSI/MSI-X, never on an interrupt's fast path.
 *
 * gsi_router_platform() fills a `struct pci_platform` with this router's
 * implementation, for the PCI layer.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvm/kvm.h"
#include "pci/platform.h"
#include "util/evloop.h"

#define GSI_LEGACY_COUNT 24   /* IOAPIC pins */
#define GSI_MAX          1024 /* routes ember manages (KVM allows 4096 on x86) */

struct gsi_msi_route {
	bool used;
	bool valid;   /* has a message */
	uint64_t addr;
	uint32_t data;
};

struct gsi_watch {
	struct evloop_watch w;
	void (*cb)(void *arg);
	void *arg;
	bool used;
};

#define GSI_MAX_WATCHES 64

struct gsi_router {
	struct kvm *kvm;
	struct evloop *loop; /* for INTx resample watches */
	pthread_mutex_t lock;
	struct gsi_msi_route msi[GSI_MAX];
	struct gsi_watch watches[GSI_MAX_WATCHES];
};

/* Install the default table (legacy routes only).  -errno with a message. */
int gsi_router_init(struct gsi_router *g, struct kvm *kvm, struct evloop *loop, struct err *e);
void gsi_router_destroy(struct gsi_router *g);

/* The PCI layer's view of this router. */
void gsi_router_platform(struct gsi_router *g, struct pci_platform *out);

/* Same operations, callable directly. */
int gsi_msi_alloc(struct gsi_router *g, uint32_t *gsi, int *fd);
int gsi_msi_route(struct gsi_router *g, uint32_t gsi, uint64_t addr, uint32_t data);
void gsi_msi_free(struct gsi_router *g, uint32_t gsi, int fd);
int gsi_intx_alloc(struct gsi_router *g, uint32_t gsi, int *fd, int *resample_fd);
void gsi_intx_free(struct gsi_router *g, uint32_t gsi, int fd, int resample_fd);

#endif
