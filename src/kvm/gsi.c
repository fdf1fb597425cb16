/* gsi.c - ember's KVM GSI routing table, MSI/INTx irqfds and resample watches (see gsi.h). */
#include "kvm/gsi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/log.h"

/* Entries of the legacy part: GSI 0-15 twice (IOAPIC + PIC), GSI 16-23 once. */
#define GSI_LEGACY_ENTRIES (16 * 2 + (GSI_LEGACY_COUNT - 16))

static void set_irqchip(struct kvm_irq_routing_entry *r, uint32_t gsi, uint32_t chip, uint32_t pin)
{
	memset(r, 0, sizeof(*r));
	r->gsi = gsi;
	r->type = KVM_IRQ_ROUTING_IRQCHIP;
	r->u.irqchip.irqchip = chip;
	r->u.irqchip.pin = pin;
}

struct kvm_irq_routing *gsi_routing_build(const struct gsi_router *g)
{
	struct kvm_irq_routing *t;
	unsigned int n = GSI_LEGACY_ENTRIES, i, k = 0;

	for (i = GSI_LEGACY_COUNT; i < GSI_MAX; i++)
		if (g->msi[i].used && g->msi[i].valid)
			n++;
	t = calloc(1, sizeof(*t) + n * sizeof(struct kvm_irq_routing_entry));
	if (!t)
		return NULL;
	/*
	 * KVM's default table, entry for entry and in the same order
	 * (kvm_setup_default_irq_routing(), arch/x86/kvm/irq_comm.c:
	 * ROUTING_ENTRY2(0..15) = IOAPIC pin i then PIC SELECT_PIC(i) pin i % 8,
	 * ROUTING_ENTRY1(16..23) = IOAPIC pin i).  KVM keeps the PIC route of
	 * GSI 2 (the cascade input, which the master PIC never raises from a
	 * device), so ember does too: replacing the table must not change what
	 * the serial port (GSI 4) and the i8042 (GSI 1) already rely on.
	 */
	for (i = 0; i < GSI_LEGACY_COUNT; i++) {
		set_irqchip(&t->entries[k++], i, KVM_IRQCHIP_IOAPIC, i);
		if (i < 16)
			set_irqchip(&t->entries[k++], i,
			            i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, i % 8);
	}
	for (i = GSI_LEGACY_COUNT; i < GSI_MAX; i++) {
		const struct gsi_msi_route *m = &g->msi[i];
		struct kvm_irq_routing_entry *r;

		if (!m->used || !m->valid)
			continue;
		r = &t->entries[k++];
		r->gsi = i;
		r->type = KVM_IRQ_ROUTING_MSI;
		r->u.msi.address_lo = (uint32_t)m->addr;
		r->u.msi.address_hi = (uint32_t)(m->addr >> 32);
		r->u.msi.data = m->data;
	}
	t->nr = k;
	return t;
}

/* Install the table built from g->msi.  Caller holds g->lock (or is alone). */
static int install(struct gsi_router *g)
{
	struct kvm_irq_routing *t = gsi_routing_build(g);
	int r = 0;

	if (!t)
		return -ENOMEM;
	if (ioctl(g->kvm->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		r = -errno;
	free(t);
	return r;
}

int gsi_router_init(struct gsi_router *g, struct kvm *kvm, struct evloop *loop, struct err *e)
{
	int r;

	memset(g, 0, sizeof(*g));
	g->kvm = kvm;
	g->loop = loop;
	r = pthread_mutex_init(&g->lock, NULL);
	if (r)
		return err_sys(e, r, "GSI router mutex");
	r = install(g);
	if (r < 0) {
		pthread_mutex_destroy(&g->lock);
		return err_sys(e, -r, "KVM_SET_GSI_ROUTING (default legacy routes)");
	}
	return 0;
}

void gsi_router_destroy(struct gsi_router *g)
{
	unsigned int i;

	for (i = GSI_LEGACY_COUNT; i < GSI_MAX; i++)
		if (g->msi[i].used)
			log_warn("GSI %u still allocated when the router goes away", i);
	for (i = 0; i < GSI_MAX_WATCHES; i++)
		if (g->watches[i].used && g->loop)
			evloop_del(g->loop, &g->watches[i].w);
	pthread_mutex_destroy(&g->lock);
}

int gsi_msi_alloc(struct gsi_router *g, uint32_t *gsi, int *fd)
{
	uint32_t i;
	int efd, r;

	pthread_mutex_lock(&g->lock);
	for (i = GSI_LEGACY_COUNT; i < GSI_MAX; i++)
		if (!g->msi[i].used)
			break;
	if (i == GSI_MAX) {
		r = -ENOSPC;
		goto out;
	}
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0) {
		r = -errno;
		goto out;
	}
	/*
	 * Bound before it has a route: a write to `efd` then reaches
	 * kvm_set_irq() for a GSI with no routing entry, where
	 * kvm_irq_map_gsi() finds nothing and the loop over entries runs zero
	 * times (virt/kvm/irqchip.c), so it is dropped harmlessly.
	 */
	r = kvm_irqfd(g->kvm, efd, i, true);
	if (r < 0) {
		close(efd);
		goto out;
	}
	g->msi[i] = (struct gsi_msi_route){.used = true};
	*gsi = i;
	*fd = efd;
out:
	pthread_mutex_unlock(&g->lock);
	return r;
}

int gsi_msi_route(struct gsi_router *g, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct gsi_msi_route old;
	int r = 0;

	if (gsi < GSI_LEGACY_COUNT || gsi >= GSI_MAX)
		return -EINVAL;
	pthread_mutex_lock(&g->lock);
	old = g->msi[gsi];
	if (!old.used) {
		r = -EINVAL;
		goto out;
	}
	if (old.valid && old.addr == addr && old.data == data)
		goto out; /* KVM already has it */
	g->msi[gsi].valid = true;
	g->msi[gsi].addr = addr;
	g->msi[gsi].data = data;
	r = install(g);
	if (r < 0)
		g->msi[gsi] = old;
out:
	pthread_mutex_unlock(&g->lock);
	return r;
}

void gsi_msi_free(struct gsi_router *g, uint32_t gsi, int fd)
{
	bool had_route;

	if (gsi < GSI_LEGACY_COUNT || gsi >= GSI_MAX)
		return;
	pthread_mutex_lock(&g->lock);
	if (!g->msi[gsi].used) {
		pthread_mutex_unlock(&g->lock);
		return;
	}
	kvm_irqfd(g->kvm, fd, gsi, false);
	close(fd);
	had_route = g->msi[gsi].valid;
	g->msi[gsi] = (struct gsi_msi_route){0};
	if (had_route && install(g) < 0)
		log_warn("KVM_SET_GSI_ROUTING after freeing GSI %u failed", gsi);
	pthread_mutex_unlock(&g->lock);
}

int gsi_intx_alloc(struct gsi_router *g, uint32_t gsi, int *fd, int *resample_fd)
{
	struct kvm_irqfd req = {.gsi = gsi, .flags = KVM_IRQFD_FLAG_RESAMPLE};
	int efd, rfd, r;

	if (gsi >= GSI_LEGACY_COUNT)
		return -EINVAL;
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return -errno;
	rfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rfd < 0) {
		r = -errno;
		close(efd);
		return r;
	}
	req.fd = (uint32_t)efd;
	req.resamplefd = (uint32_t)rfd;
	if (ioctl(g->kvm->vm_fd, KVM_IRQFD, &req) < 0) {
		r = -errno;
		close(rfd);
		close(efd);
		return r;
	}
	*fd = efd;
	*resample_fd = rfd;
	return 0;
}

int gsi_line_alloc(struct gsi_router *g, uint32_t gsi, int *fd)
{
	int efd, r;

	(void)g;
	if (gsi >= GSI_LEGACY_COUNT)
		return -EINVAL;
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return -errno;
	r = kvm_irqfd(g->kvm, efd, gsi, true);
	if (r < 0) {
		close(efd);
		return r;
	}
	*fd = efd;
	return 0;
}

void gsi_line_free(struct gsi_router *g, uint32_t gsi, int fd)
{
	if (fd < 0)
		return;
	kvm_irqfd(g->kvm, fd, gsi, false);
	close(fd);
}

void gsi_intx_free(struct gsi_router *g, uint32_t gsi, int fd, int resample_fd)
{
	/* KVM matches a deassign by fd and gsi only (kvm_irqfd_deassign). */
	kvm_irqfd(g->kvm, fd, gsi, false);
	close(fd);
	close(resample_fd);
}

static void watch_fired(struct evloop_watch *w, uint32_t events)
{
	struct gsi_watch *gw = w->opaque;

	(void)events;
	gw->cb(gw->arg);
}

static int op_watch(void *ctx, int fd, void (*cb)(void *arg), void *arg)
{
	struct gsi_router *g = ctx;
	struct gsi_watch *gw = NULL;
	unsigned int i;
	int r;

	if (!g->loop)
		return -ENOTSUP;
	pthread_mutex_lock(&g->lock);
	for (i = 0; i < GSI_MAX_WATCHES; i++) {
		if (!g->watches[i].used) {
			gw = &g->watches[i];
			break;
		}
	}
	if (!gw) {
		r = -ENOSPC;
		goto out;
	}
	gw->w = (struct evloop_watch){.fd = fd, .cb = watch_fired, .opaque = gw};
	gw->cb = cb;
	gw->arg = arg;
	r = evloop_add(g->loop, &gw->w, EPOLLIN);
	if (r == 0)
		gw->used = true;
out:
	pthread_mutex_unlock(&g->lock);
	return r;
}

static void op_unwatch(void *ctx, int fd)
{
	struct gsi_router *g = ctx;
	unsigned int i;

	pthread_mutex_lock(&g->lock);
	for (i = 0; i < GSI_MAX_WATCHES; i++) {
		struct gsi_watch *gw = &g->watches[i];

		if (gw->used && gw->w.fd == fd) {
			evloop_del(g->loop, &gw->w);
			gw->used = false;
			break;
		}
	}
	pthread_mutex_unlock(&g->lock);
}

static int op_msi_alloc(void *ctx, uint32_t *gsi, int *fd)
{
	return gsi_msi_alloc(ctx, gsi, fd);
}

static int op_msi_route(void *ctx, uint32_t gsi, uint64_t addr, uint32_t data)
{
	return gsi_msi_route(ctx, gsi, addr, data);
}

static void op_msi_free(void *ctx, uint32_t gsi, int fd)
{
	gsi_msi_free(ctx, gsi, fd);
}

static int op_intx_alloc(void *ctx, uint32_t gsi, int *fd, int *resample_fd)
{
	return gsi_intx_alloc(ctx, gsi, fd, resample_fd);
}

static void op_intx_free(void *ctx, uint32_t gsi, int fd, int resample_fd)
{
	gsi_intx_free(ctx, gsi, fd, resample_fd);
}

static int op_line_alloc(void *ctx, uint32_t gsi, int *fd)
{
	return gsi_line_alloc(ctx, gsi, fd);
}

static void op_line_free(void *ctx, uint32_t gsi, int fd)
{
	gsi_line_free(ctx, gsi, fd);
}

static int op_ioeventfd(void *ctx, uint64_t addr, uint32_t len, bool pio, int fd, bool assign)
{
	struct gsi_router *g = ctx;

	return kvm_ioeventfd(g->kvm, addr, len, pio, fd, assign);
}

static int op_ioeventfd_dm(void *ctx, uint64_t addr, uint32_t len, bool pio, int fd, bool assign,
                           uint64_t datamatch)
{
	struct gsi_router *g = ctx;

	return kvm_ioeventfd_dm(g->kvm, addr, len, pio, fd, assign, datamatch);
}

static int op_mem_slot(void *ctx, uint32_t *slot)
{
	struct gsi_router *g = ctx;

	*slot = kvm_reserve_memslot(g->kvm);
	return 0;
}

static int op_mem_set(void *ctx, uint32_t slot, uint64_t gpa, uint64_t size, void *hva)
{
	struct gsi_router *g = ctx;
	struct err e = {0};

	return kvm_set_memslot(g->kvm, slot, gpa, size, hva, &e);
}

static const struct platform_ops gsi_platform_ops = {
    .msi_alloc = op_msi_alloc,
    .msi_route = op_msi_route,
    .msi_free = op_msi_free,
    .intx_alloc = op_intx_alloc,
    .intx_free = op_intx_free,
    .line_alloc = op_line_alloc,
    .line_free = op_line_free,
    .ioeventfd = op_ioeventfd,
    .ioeventfd_dm = op_ioeventfd_dm,
    .watch = op_watch,
    .unwatch = op_unwatch,
    .mem_slot = op_mem_slot,
    .mem_set = op_mem_set,
};

void gsi_router_platform(struct gsi_router *g, struct platform *out)
{
	out->ops = &gsi_platform_ops;
	out->ctx = g;
}

unsigned int gsi_msi_count(struct gsi_router *g)
{
	unsigned int i, n = 0;

	pthread_mutex_lock(&g->lock);
	for (i = 0; i < GSI_MAX; i++)
		n += g->msi[i].used;
	pthread_mutex_unlock(&g->lock);
	return n;
}
