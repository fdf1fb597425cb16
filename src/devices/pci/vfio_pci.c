/* vfio_pci.c - a host PCI device passed through to the guest with VFIO (see vfio_pci.h). */
#include "devices/pci/vfio_pci.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define CFG_INDEX VFIO_PCI_CONFIG_REGION_INDEX
/* A BAR slot of ember's core is the VFIO region of the same index, the ROM included. */
_Static_assert(PCI_ROM_SLOT == VFIO_PCI_ROM_REGION_INDEX, "ROM slot and region differ");

/* PCI 3.0 §6.1 header offsets and bits this file reads from the device. */
#define HDR_STATUS_CAPLIST 0x10 /* Status: Capabilities List */
#define HDR_CAP_PTR        0x34
#define CAP_ID_MSI         0x05
#define CAP_ID_MSIX        0x11
/* MSI-X capability (PCI Local Bus 3.0 §6.8.2, PCIe Base 6.0 §7.7.2). */
#define MSIX_CTRL_SIZE 0x07ff /* Message Control: Table Size, N - 1 */
#define MSIX_BIR       0x7    /* Table/PBA BIR, bits 2:0 of their offset registers */
#define BAR_IO         0x1
#define BAR_TYPE_64    0x4 /* bits 2:1 = 10b */
#define BAR_PREFETCH   0x8

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- BARs: every access goes to the device's region ---- */

/* "BAR2" or "ROM", for messages. */
static const char *slot_name(unsigned int bar, char buf[8])
{
	if (bar == PCI_ROM_SLOT)
		return "ROM";
	snprintf(buf, 8, "BAR%u", bar % 10);
	return buf;
}

static uint64_t bar_read(void *opaque, uint64_t off, unsigned int size)
{
	struct vfio_pci_bar_ctx *b = opaque;
	struct err e = {0};
	uint64_t v = 0;
	char nm[8];

	__atomic_fetch_add(&b->v->bar_reads, 1, __ATOMIC_RELAXED);
	off += b->base;
	if (size > sizeof(v) || vfio_region_read(&b->v->vd, b->bar, off, &v, size, &e) < 0) {
		log_guest(&b->v->rl, LOG_WARN, "%s: %s: %u-byte read at 0x%llx: %s", b->v->name,
		          slot_name(b->bar, nm), size, (unsigned long long)off,
		          e.code ? e.msg : "too wide");
		return ~0ull;
	}
	return v;
}

static void bar_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct vfio_pci_bar_ctx *b = opaque;
	struct err e = {0};
	char nm[8];

	__atomic_fetch_add(&b->v->bar_writes, 1, __ATOMIC_RELAXED);
	off += b->base;
	if (size > sizeof(val) || vfio_region_write(&b->v->vd, b->bar, off, &val, size, &e) < 0)
		log_guest(&b->v->rl, LOG_WARN, "%s: %s: %u-byte write at 0x%llx: %s", b->v->name,
		          slot_name(b->bar, nm), size, (unsigned long long)off,
		          e.code ? e.msg : "too wide");
}

static const struct bus_ops bar_ops = {.read = bar_read, .write = bar_write};

/* ---- interrupts: VFIO's eventfds, straight into KVM or through ember's capabilities ---- */

static const char *irq_name(unsigned int index)
{
	return index == VFIO_PCI_MSIX_IRQ_INDEX  ? "MSI-X"
	       : index == VFIO_PCI_MSI_IRQ_INDEX ? "MSI"
	                                         : "INTx";
}

/* The eventfd VFIO should signal for a vector: its KVM irqfd when it may bypass ember. */
static int32_t vector_fd(const struct vfio_pci_msi_ctx *c)
{
	return c->direct >= 0 ? c->direct : c->fd;
}

/*
 * VFIO_DEVICE_SET_IRQS on `index`: with `ctx`, vectors [start, start + count) signal their
 * eventfds (VFIO enables the index when it was off); without, the index is turned off.
 */
static int set_irqs(struct vfio_pci *v, unsigned int index, unsigned int start, unsigned int count,
                    const struct vfio_pci_msi_ctx *ctx, struct err *e)
{
	size_t sz = sizeof(struct vfio_irq_set) + (ctx ? count * sizeof(int32_t) : 0);
	struct vfio_irq_set *s = calloc(1, sz);
	unsigned int i;
	int r = 0;

	if (!s)
		return err_set(e, ENOMEM, "out of memory");
	s->argsz = (uint32_t)sz;
	s->index = index;
	s->flags = (ctx ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) |
	           VFIO_IRQ_SET_ACTION_TRIGGER;
	s->start = ctx ? start : 0;
	s->count = ctx ? count : 0;
	for (i = 0; ctx && i < count; i++)
		((int32_t *)s->data)[i] = vector_fd(&ctx[start + i]);
	if (ioctl(v->vd.fd, VFIO_DEVICE_SET_IRQS, s) < 0)
		r = err_sys(e, errno, "%s: VFIO_DEVICE_SET_IRQS (%s, vectors %u-%u%s)", v->name,
		            irq_name(index), start, start + count - 1, ctx ? "" : ", off");
	free(s);
	return r;
}

/* VFIO_DEVICE_SET_IRQS for INTx with one eventfd (`fd`) or none (fd < 0), action `action`. */
static int set_intx(struct vfio_pci *v, uint32_t action, int32_t fd, struct err *e)
{
	/* The header and one eventfd (struct vfio_irq_set ends in a flexible array). */
	uint32_t buf[(sizeof(struct vfio_irq_set) + sizeof(int32_t)) / sizeof(uint32_t)] = {0};
	struct vfio_irq_set *x = (struct vfio_irq_set *)buf;

	x->argsz = sizeof(*x) + (fd >= 0 ? sizeof(int32_t) : 0);
	x->index = VFIO_PCI_INTX_IRQ_INDEX;
	x->count = 1;
	x->flags = (fd >= 0 ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) | action;
	memcpy(x->data, &fd, sizeof(fd));
	if (ioctl(v->vd.fd, VFIO_DEVICE_SET_IRQS, x) < 0)
		return err_sys(e, errno, "%s: VFIO_DEVICE_SET_IRQS (INTx, %s)", v->name,
		               action == VFIO_IRQ_SET_ACTION_TRIGGER ? "trigger" : "unmask");
	return 0;
}

/*
 * INTx straight into KVM, as a level line (PCI Local Bus 3.0 §2.2.6): VFIO signals the
 * function's level irqfd (pci/intx: KVM_IRQFD_FLAG_RESAMPLE on the swizzled GSI) when the
 * device asserts its pin, and masks the host's line; the guest's EOI deasserts the line and
 * signals the resample eventfd, which VFIO takes as "unmask", so a device still asserting
 * interrupts again.  Then an unmask, in case the device fired before the resample eventfd
 * was VFIO's.  Host lock held.
 */
static int intx_on(struct vfio_pci *v, struct err *e)
{
	int r = set_intx(v, VFIO_IRQ_SET_ACTION_TRIGGER, v->dev.intx.fd, e);

	if (r == 0)
		r = set_intx(v, VFIO_IRQ_SET_ACTION_UNMASK, v->dev.intx.resample_fd, e);
	if (r == 0)
		r = set_intx(v, VFIO_IRQ_SET_ACTION_UNMASK, -1, e);
	if (r < 0)
		set_irqs(v, VFIO_PCI_INTX_IRQ_INDEX, 0, 0, NULL, &(struct err){0});
	return r;
}

/* Relay: VFIO signalled ember's eventfd for an MSI vector. */
static void on_msi(void *arg)
{
	struct vfio_pci_msi_ctx *m = arg;
	uint64_t n;

	if (read(m->fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return;
	__atomic_fetch_add(&m->v->msis, 1, __ATOMIC_RELAXED);
	pci_msi_notify(&m->v->msi, m->vec);
}

/* Relay: VFIO signalled ember's eventfd for an MSI-X vector (masked, or not routed yet). */
static void on_msix(void *arg)
{
	struct vfio_pci_msi_ctx *m = arg;
	uint64_t n;

	if (read(m->fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return;
	__atomic_fetch_add(&m->v->msixs, 1, __ATOMIC_RELAXED);
	pci_msix_notify(&m->v->msix, m->vec);
}

/*
 * pci_msix's direct hook (msix.h), with the MSI-X instance's lock held: vector `vec` may now
 * go straight to `irqfd` (>= 0), or must come back through ember (-1).  While VFIO has
 * MSI-X on, the one vector is re-pointed at once; otherwise irq_update() uses it later.
 */
static void msix_direct(void *opaque, unsigned int vec, int irqfd)
{
	struct vfio_pci *v = opaque;
	struct err e = {0};

	if (vec >= v->nmsix)
		return;
	v->msix_ctx[vec].direct = irqfd;
	if (__atomic_load_n(&v->irq, __ATOMIC_ACQUIRE) == VFIO_PCI_MSIX_IRQ_INDEX &&
	    set_irqs(v, VFIO_PCI_MSIX_IRQ_INDEX, vec, 1, v->msix_ctx, &e) < 0)
		log_guest(&v->rl, LOG_WARN, "%s: %s", v->name, e.msg);
}

/* pci_msi's direct hook (msi.h), the same for MSI vectors, with the MSI instance's lock held. */
static void msi_direct(void *opaque, unsigned int vec, int irqfd)
{
	struct vfio_pci *v = opaque;
	struct err e = {0};

	if (vec >= v->nmsi)
		return;
	v->msi_ctx[vec].direct = irqfd;
	if (vec >= v->msi_on)
		return; /* not on at VFIO (yet): irq_update() uses it when it is */
	if (__atomic_load_n(&v->irq, __ATOMIC_ACQUIRE) == VFIO_PCI_MSI_IRQ_INDEX &&
	    set_irqs(v, VFIO_PCI_MSI_IRQ_INDEX, vec, 1, v->msi_ctx, &e) < 0)
		log_guest(&v->rl, LOG_WARN, "%s: %s", v->name, e.msg);
}

/*
 * Turn on at VFIO the interrupt the guest enabled on ember's function -- MSI-X, else MSI,
 * else INTx when the function has a pin on a line (PCI Local Bus 3.0 §6.8.1.3, §6.8.2.3:
 * a function with MSI or MSI-X enabled does not use INTx) -- and off the one before (VFIO
 * has one index on at a time).  With the host lock held (a config-space hook); the MSI-X
 * and MSI instances' locks are taken here, in that order, so their direct hooks see v->irq
 * and the vectors' eventfds consistently.  A failure is logged: the guest's interrupts then
 * do not arrive, ember goes on.
 */
static void irq_update(struct vfio_pci *v)
{
	int want = VFIO_PCI_IRQ_NONE;
	struct err e = {0};
	int cur = v->irq;
	unsigned int nmsi;

	if (v->msix_ready)
		pthread_mutex_lock(&v->msix.lock);
	if (v->msi_ready)
		pthread_mutex_lock(&v->msi.lock);
	if (v->msix_ready && v->msix.enabled)
		want = VFIO_PCI_MSIX_IRQ_INDEX;
	else if (v->msi_ready && v->msi.enabled)
		want = VFIO_PCI_MSI_IRQ_INDEX;
	else if (v->intx && v->dev.intx.active)
		want = VFIO_PCI_INTX_IRQ_INDEX;
	/*
	 * MSI: VFIO allocates the host's vectors when the index goes on, so it gets as many as
	 * the guest enabled (§6.8.1.3 Multiple Message Enable), and again when that changes.
	 */
	nmsi = v->msi_ready && v->msi.nen < v->nmsi ? v->msi.nen : v->nmsi;
	if (want != cur || (want == VFIO_PCI_MSI_IRQ_INDEX && nmsi != v->msi_on)) {
		if (cur != VFIO_PCI_IRQ_NONE)
			set_irqs(v, (unsigned int)cur, 0, 0, NULL, &e);
		cur = VFIO_PCI_IRQ_NONE;
		v->msi_on = 0;
		if (want == VFIO_PCI_MSIX_IRQ_INDEX && !e.code &&
		    set_irqs(v, VFIO_PCI_MSIX_IRQ_INDEX, 0, v->nmsix, v->msix_ctx, &e) == 0)
			cur = want;
		else if (want == VFIO_PCI_MSI_IRQ_INDEX && !e.code &&
		         set_irqs(v, VFIO_PCI_MSI_IRQ_INDEX, 0, nmsi, v->msi_ctx, &e) == 0) {
			cur = want;
			v->msi_on = nmsi;
		} else if (want == VFIO_PCI_INTX_IRQ_INDEX && !e.code && intx_on(v, &e) == 0)
			cur = want;
		__atomic_store_n(&v->irq, cur, __ATOMIC_RELEASE);
		if (e.code)
			log_guest(&v->rl, LOG_WARN, "%s: %s", v->name, e.msg);
	}
	if (v->msi_ready)
		pthread_mutex_unlock(&v->msi.lock);
	if (v->msix_ready)
		pthread_mutex_unlock(&v->msix.lock);
}

static void irq_off(struct vfio_pci *v)
{
	struct err e = {0};

	if (v->irq != VFIO_PCI_IRQ_NONE && v->vd.fd >= 0)
		set_irqs(v, (unsigned int)v->irq, 0, 0, NULL, &e);
	__atomic_store_n(&v->irq, VFIO_PCI_IRQ_NONE, __ATOMIC_RELEASE);
	v->msi_on = 0;
}

/* Eventfds for `n` vectors, each watched on the VMM thread with `cb`. */
static int vectors_init(struct vfio_pci *v, struct vfio_pci_msi_ctx *ctx, unsigned int n,
                        unsigned int *made, void (*cb)(void *), const char *what, struct err *e)
{
	unsigned int i;
	int r;

	for (i = 0; i < n; i++) {
		struct vfio_pci_msi_ctx *m = &ctx[i];

		*m = (struct vfio_pci_msi_ctx){.v = v, .vec = i, .fd = -1, .direct = -1};
		m->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (m->fd < 0)
			return err_sys(e, errno, "%s: eventfd", v->name);
		r = v->plat.ops->watch(v->plat.ctx, m->fd, cb, m);
		if (r < 0) {
			close(m->fd);
			m->fd = -1;
			return err_set(e, r, "%s: cannot watch the eventfd of %s vector %u",
			               v->name, what, i);
		}
		*made = i + 1;
	}
	return 0;
}

static void vectors_fini(struct vfio_pci *v, struct vfio_pci_msi_ctx *ctx, unsigned int *n)
{
	unsigned int i;

	for (i = 0; i < *n; i++) {
		if (ctx[i].fd < 0)
			continue;
		v->plat.ops->unwatch(v->plat.ctx, ctx[i].fd);
		close(ctx[i].fd);
		ctx[i].fd = -1;
	}
	*n = 0;
}

static void irqs_fini(struct vfio_pci *v)
{
	irq_off(v);
	vectors_fini(v, v->msi_ctx, &v->nmsi);
	if (v->msi_ready)
		pci_msi_destroy(&v->msi);
	v->msi_ready = false;
	if (v->msix_ctx)
		vectors_fini(v, v->msix_ctx, &v->nmsix);
	if (v->msix_ready)
		pci_msix_destroy(&v->msix);
	v->msix_ready = false;
	free(v->msix_ctx);
	v->msix_ctx = NULL;
}

/* The offset of the device's capability `id` in its config space, or 0 when it has none. */
static unsigned int device_cap(const uint8_t *cfg, uint8_t id)
{
	unsigned int ptr = cfg[HDR_CAP_PTR] & 0xfc, hops;

	if (!(le16(cfg + PCI_STATUS) & HDR_STATUS_CAPLIST))
		return 0;
	for (hops = 0; ptr >= 0x40 && ptr < 256 - 4 && hops < 48; hops++) {
		if (cfg[ptr] == id)
			return ptr;
		ptr = cfg[ptr + 1] & 0xfc;
	}
	return 0;
}

static int msi_init(struct vfio_pci *v, unsigned int cap, const uint8_t *cfg, struct err *e)
{
	/* §6.8.1.3: Multiple Message Capable, bits 3:1 of Message Control. */
	unsigned int nvec = 1u << ((le16(cfg + cap + 2) >> 1) & 7);
	int r;

	if (nvec > VFIO_PCI_MAX_MSI)
		nvec = VFIO_PCI_MAX_MSI;
	r = pci_msi_init(&v->msi, &v->dev, nvec, &v->plat);
	if (r < 0)
		return err_set(e, r, "%s: cannot add an MSI capability", v->name);
	v->msi_ready = true;
	r = vectors_init(v, v->msi_ctx, nvec, &v->nmsi, on_msi, "MSI", e);
	if (r < 0)
		return r;
	pthread_mutex_lock(&v->msi.lock);
	v->msi.direct = msi_direct;
	v->msi.direct_opaque = v;
	pthread_mutex_unlock(&v->msi.lock);
	return 0;
}

/*
 * ember's MSI-X capability in the device's shape (PCI Local Bus 3.0 §6.8.2.4-5, PCIe Base
 * 6.0 §7.7.2.2-4): as many vectors, the table and PBA at the device's BIRs and offsets, so
 * the guest's driver finds them where it expects; ember traps both and keeps the vectors'
 * messages and masks.  After the BARs are declared, before their forwarded regions are.
 */
static int msix_init(struct vfio_pci *v, unsigned int cap, const uint8_t *cfg, struct err *e)
{
	unsigned int nvec = (le16(cfg + cap + 2) & MSIX_CTRL_SIZE) + 1;
	uint32_t table = le32(cfg + cap + 4), pba = le32(cfg + cap + 8);
	int r;

	r = pci_msix_init(&v->msix, &v->dev, nvec, table & MSIX_BIR, table & ~MSIX_BIR,
	                  pba & MSIX_BIR, pba & ~MSIX_BIR, &v->plat);
	if (r < 0)
		return err_set(e, r,
		               "%s: cannot mirror its MSI-X capability (%u vectors, table at BAR%u "
		               "+0x%x, PBA at BAR%u +0x%x): each must lie inside a memory BAR",
		               v->name, nvec, table & MSIX_BIR, table & ~MSIX_BIR, pba & MSIX_BIR,
		               pba & ~MSIX_BIR);
	v->msix_ready = true;
	v->msix_ctx = calloc(nvec, sizeof(*v->msix_ctx));
	if (!v->msix_ctx)
		return err_set(e, ENOMEM, "%s: out of memory for %u MSI-X vectors", v->name, nvec);
	r = vectors_init(v, v->msix_ctx, nvec, &v->nmsix, on_msix, "MSI-X", e);
	if (r < 0)
		return r;
	pthread_mutex_lock(&v->msix.lock);
	v->msix.direct = msix_direct;
	v->msix.direct_opaque = v;
	pthread_mutex_unlock(&v->msix.lock);
	return 0;
}

/* ---- configuration space: COMMAND and the interrupt capabilities reach the device ---- */

static void cfg_write(struct pci_dev *d, unsigned int off, uint32_t val, unsigned int size)
{
	struct vfio_pci *v = d->opaque;
	/*
	 * PCI Local Bus 3.0 §6.2.2: I/O and memory decode, bus mastering and Interrupt Disable
	 * reach the device (vfio-pci turns the last into masking the host's line); I/O decode,
	 * SERR#, parity and the rest stay ember's.
	 */
	const uint16_t fwd =
	    PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
	bool cmd = off <= PCI_COMMAND + 1 && off + size > PCI_COMMAND;
	uint16_t ours, theirs;
	struct err e = {0};

	(void)val;
	/* INTx goes on at the guest's first COMMAND write: the function is plugged by then. */
	if (cmd || (v->msi_ready && off < v->msi.cap + MSI_CAP_LEN && off + size > v->msi.cap) ||
	    (v->msix_ready && off < v->msix.cap + MSIX_CAP_LEN && off + size > v->msix.cap))
		irq_update(v);
	if (!cmd)
		return;
	ours = pci_cfg_get16(&d->cfg, PCI_COMMAND);
	if (vfio_region_read(&v->vd, CFG_INDEX, PCI_COMMAND, &theirs, 2, &e) == 0) {
		theirs = (uint16_t)((theirs & ~fwd) | (ours & fwd));
		vfio_region_write(&v->vd, CFG_INDEX, PCI_COMMAND, &theirs, 2, &e);
	}
	if (e.code)
		log_guest(&v->rl, LOG_WARN, "%s: COMMAND: %s", v->name, e.msg);
}

/* ---- mmap'd BARs: guest memory at the BAR's address, moved with it ---- */

/*
 * ember's core mapped BAR `bar` at `addr` or took it away (a move is both, in that order):
 * its mmap'd stretches follow as guest memory, so the guest's accesses there never exit;
 * what cannot be mapped (the range overlaps other guest memory) keeps exiting to the
 * forwarded regions underneath.  With the host lock held, on the vCPU that wrote the BAR or
 * COMMAND, or the unplugging thread.
 */
static void bar_moved(struct pci_dev *d, unsigned int bar, uint64_t addr, bool mapped)
{
	struct vfio_pci *v = d->opaque;
	unsigned int k;
	int r;

	if (bar >= PCI_BAR_COUNT)
		return;
	for (k = 0; k < v->nmaps[bar]; k++) {
		struct vfio_pci_map *m = &v->maps[bar][k];

		if (!mapped && m->on) {
			r = v->plat.ops->mem_set(v->plat.ctx, m->slot, 0, 0, NULL);
			if (r < 0)
				log_error(
				    "%s: BAR%u: cannot remove its mapping at 0x%llx: error %d",
				    v->name, bar, (unsigned long long)(addr + m->offset), r);
			else
				m->on = false;
		} else if (mapped && !m->on) {
			r = v->plat.ops->mem_set(v->plat.ctx, m->slot, addr + m->offset, m->len,
			                         m->hva);
			if (r < 0)
				log_guest(
				    &v->rl, LOG_WARN,
				    "%s: BAR%u at 0x%llx: [0x%llx, +0x%llx) stays trapped (error "
				    "%d)",
				    v->name, bar, (unsigned long long)addr,
				    (unsigned long long)m->offset, (unsigned long long)m->len, r);
			else
				m->on = true;
		}
	}
}

/* [off, off + len) of BAR `bar` holds no region ember emulates (the MSI-X table, the PBA). */
static bool all_forwarded(const struct vfio_pci *v, unsigned int bar, uint64_t off, uint64_t len)
{
	const struct pci_bar *b = &v->dev.bars[bar];
	unsigned int k;

	for (k = 0; k < b->nregions; k++)
		if (b->regions[k].ops != &bar_ops &&
		    off < b->regions[k].offset + b->regions[k].len &&
		    b->regions[k].offset < off + len)
			return false;
	return true;
}

/*
 * The pages of memory BAR `bar` that VFIO lets ember mmap and that hold nothing ember
 * emulates -- the MSI-X table and PBA pages stay trapped (PCI Local Bus 3.0 §6.8.2: they
 * are ember's) -- mmap'd in up to VFIO_PCI_MAPS_PER_BAR stretches, each with a platform
 * mapping name.  A BAR smaller than a page, or a platform that cannot map, is left trapped.
 */
static int mmap_bar(struct vfio_pci *v, unsigned int bar, struct err *e)
{
	const struct vfio_region *rg = &v->vd.regions[bar];
	const uint64_t pg = 4096;
	unsigned int a;

	if (!v->plat.ops->mem_slot || !v->plat.ops->mem_set || rg->size < pg)
		return 0;
	for (a = 0; a < rg->nareas; a++) {
		uint64_t at = (rg->areas[a].offset + pg - 1) & ~(pg - 1);
		uint64_t end = (rg->areas[a].offset + rg->areas[a].size) & ~(pg - 1);

		while (at < end && v->nmaps[bar] < VFIO_PCI_MAPS_PER_BAR) {
			struct vfio_pci_map *m = &v->maps[bar][v->nmaps[bar]];
			uint64_t stop = at;

			while (stop < end && all_forwarded(v, bar, stop, pg))
				stop += pg;
			if (stop > at) {
				struct err me = {0};

				*m = (struct vfio_pci_map){.offset = at, .len = stop - at};
				m->hva = vfio_region_mmap_at(&v->vd, bar, at, m->len, &me);
				if (!m->hva) {
					log_warn("%s: BAR%u stays trapped: %s", v->name, bar,
					         me.msg);
					return 0;
				}
				v->nmaps[bar]++;
				if (v->plat.ops->mem_slot(v->plat.ctx, &m->slot) < 0)
					return err_set(e, ENOSPC, "%s: no memory slot for BAR%u",
					               v->name, bar);
				v->mapped_bytes += m->len;
			}
			at = stop + pg; /* past the trapped page (or the end) */
		}
	}
	return 0;
}

static void unmap_bars(struct vfio_pci *v)
{
	unsigned int i, k;

	for (i = 0; i < PCI_BAR_COUNT; i++) {
		for (k = 0; k < v->nmaps[i]; k++) {
			struct vfio_pci_map *m = &v->maps[i][k];

			if (m->on)
				v->plat.ops->mem_set(v->plat.ctx, m->slot, 0, 0, NULL);
			munmap(m->hva, m->len);
		}
		v->nmaps[i] = 0;
	}
}

static const struct pci_dev_ops dev_ops = {.cfg_write = cfg_write, .bar_map = bar_moved};

/* ---- set-up ---- */

static int map_guest_ram(struct vfio_pci *v, struct err *e)
{
	for (; v->dma_mapped < v->gm->n; v->dma_mapped++) {
		const struct gmem_region *g = &v->gm->r[v->dma_mapped];
		int r = vfio_dma_map(&v->vd, g->gpa, g->hva, g->size, e);

		if (r < 0)
			return r;
	}
	return 0;
}

static int declare_bars(struct vfio_pci *v, const uint8_t *cfg, struct err *e)
{
	unsigned int i;
	uint64_t size;
	int r;

	for (i = 0; i < PCI_BAR_COUNT; i++) {
		uint32_t raw = le32(cfg + PCI_BAR0 + 4 * i);
		bool is64 = (raw & 0x6) == BAR_TYPE_64;

		size = v->vd.regions[i].size;
		if (!size)
			continue;
		if (size & (size - 1))
			return err_set(e, EINVAL, "%s: BAR%u's size 0x%llx is not a power of two",
			               v->name, i, (unsigned long long)size);
		if (raw & BAR_IO)
			r = pci_dev_add_bar(&v->dev, i, PCI_BAR_IO, false, size);
		else
			r = pci_dev_add_bar(&v->dev, i, is64 ? PCI_BAR_MEM64 : PCI_BAR_MEM32,
			                    raw & BAR_PREFETCH, size);
		if (r < 0)
			return err_set(e, r, "%s: cannot declare BAR%u (0x%llx bytes)", v->name, i,
			               (unsigned long long)size);
		if (is64 && !(raw & BAR_IO))
			i++;
	}
	/*
	 * The expansion ROM (PCI Local Bus 3.0 §6.2.5.2), read through VFIO's ROM region; one
	 * ember cannot place (not a power of two from 2 KiB to 16 MiB) stays hidden.
	 */
	size = v->vd.regions[VFIO_PCI_ROM_REGION_INDEX].size;
	if (size && pci_dev_add_rom(&v->dev, size) < 0)
		log_warn("%s: its expansion ROM (0x%llx bytes) is hidden from the guest", v->name,
		         (unsigned long long)size);
	return 0;
}

/*
 * Forward every part of BAR `bar` that no emulated region (the MSI-X table, the PBA) took
 * to the device's region, one bus region per gap.
 */
static int forward_bar(struct vfio_pci *v, unsigned int bar, struct err *e)
{
	const struct pci_bar *b = &v->dev.bars[bar];
	uint64_t at = 0, next;
	unsigned int k;
	bool inside;
	int r;

	while (at < b->size) {
		do { /* step over the regions that cover `at` */
			inside = false;
			for (k = 0; k < b->nregions; k++)
				if (b->regions[k].offset <= at &&
				    at < b->regions[k].offset + b->regions[k].len) {
					at = b->regions[k].offset + b->regions[k].len;
					inside = true;
				}
		} while (inside && at < b->size);
		if (at >= b->size)
			break;
		next = b->size;
		for (k = 0; k < b->nregions; k++)
			if (b->regions[k].offset > at && b->regions[k].offset < next)
				next = b->regions[k].offset;
		r = -ENOSPC;
		if (v->nbar_ctx[bar] < PCI_BAR_MAX_REGIONS) {
			struct vfio_pci_bar_ctx *c = &v->bar_ctx[bar][v->nbar_ctx[bar]++];

			*c = (struct vfio_pci_bar_ctx){v, bar, at};
			r = pci_bar_add_region(&v->dev, bar, at, next - at, &bar_ops, c);
		}
		if (r < 0)
			return err_set(e, r, "%s: cannot forward BAR%u [0x%llx, 0x%llx)", v->name,
			               bar, (unsigned long long)at, (unsigned long long)next);
		at = next;
	}
	return 0;
}

int vfio_pci_init(struct vfio_pci *v, const char *path, const struct gmem *gm,
                  const struct platform *plat, struct err *e)
{
	unsigned int i, cap;
	uint8_t cfg[256];
	int r;

	memset(v, 0, sizeof(*v));
	v->plat = *plat;
	v->gm = gm;
	v->irq = VFIO_PCI_IRQ_NONE;
	for (i = 0; i < VFIO_PCI_MAX_MSI; i++)
		v->msi_ctx[i].fd = v->msi_ctx[i].direct = -1;
	r = vfio_open(&v->vd, path, e);
	if (r < 0)
		return r;
	snprintf(v->name, sizeof(v->name), "vfio %s", v->vd.bdf);
	r = vfio_region_read(&v->vd, CFG_INDEX, 0, cfg, sizeof(cfg), e);
	if (r < 0)
		goto fail;
	if ((cfg[PCI_HEADER_TYPE] & 0x7f) != 0) {
		r = err_set(e, ENOTSUP, "%s: only endpoints (header type 0) can be passed through",
		            v->name);
		goto fail;
	}
	if (v->vd.reset_works && (r = vfio_reset(&v->vd, e)) < 0)
		goto fail;
	pci_dev_init(&v->dev, v->name, le16(cfg + PCI_VENDOR_ID), le16(cfg + PCI_DEVICE_ID),
	             le32(cfg + PCI_REVISION_ID) >> 8, cfg[PCI_REVISION_ID], 0, &dev_ops, v);
	pci_cfg_set16(&v->dev.cfg, PCI_SUBSYSTEM_VID, le16(cfg + PCI_SUBSYSTEM_VID));
	pci_cfg_set16(&v->dev.cfg, PCI_SUBSYSTEM_ID, le16(cfg + PCI_SUBSYSTEM_ID));
	r = declare_bars(v, cfg, e);
	if (r == 0 && (cap = device_cap(cfg, CAP_ID_MSIX)))
		r = msix_init(v, cap, cfg, e);
	for (i = 0; r == 0 && i <= PCI_ROM_SLOT; i++)
		if (v->dev.bars[i].kind != PCI_BAR_NONE)
			r = forward_bar(v, i, e);
	for (i = 0; r == 0 && i < PCI_BAR_COUNT; i++)
		if (v->dev.bars[i].kind == PCI_BAR_MEM32 || v->dev.bars[i].kind == PCI_BAR_MEM64)
			r = mmap_bar(v, i, e);
	if (r == 0)
		r = map_guest_ram(v, e);
	if (r == 0 && (cap = device_cap(cfg, CAP_ID_MSI)))
		r = msi_init(v, cap, cfg, e);
	/*
	 * INTx (PCI Local Bus 3.0 §6.2.4): the device's Interrupt Pin, when VFIO offers its
	 * INTx; the line is ember's (the swizzled GSI, written to Interrupt Line at plug).
	 */
	if (r == 0 && cfg[PCI_INTERRUPT_PIN] >= 1 && cfg[PCI_INTERRUPT_PIN] <= 4) {
		r = vfio_irq_count(&v->vd, VFIO_PCI_INTX_IRQ_INDEX, e);
		if (r > 0) {
			pci_dev_set_intx_pin(&v->dev, cfg[PCI_INTERRUPT_PIN]);
			v->intx = true;
		}
		r = r < 0 ? r : 0;
	}
	if (r < 0)
		goto fail;
	return 0;
fail:
	vfio_pci_destroy(v);
	return r;
}

void vfio_pci_destroy(struct vfio_pci *v)
{
	struct err e = {0};

	if (v->vd.fd >= 0)
		log_info(
		    "%s: %llu bytes of BARs mapped into the guest; %llu BAR reads and %llu "
		    "writes forwarded; %llu MSI and %llu MSI-X messages came through ember, the "
		    "rest went straight to KVM",
		    v->name, (unsigned long long)v->mapped_bytes, (unsigned long long)v->bar_reads,
		    (unsigned long long)v->bar_writes, (unsigned long long)v->msis,
		    (unsigned long long)v->msixs);
	irqs_fini(v);
	unmap_bars(v);
	while (v->dma_mapped > 0) {
		const struct gmem_region *g = &v->gm->r[--v->dma_mapped];

		vfio_dma_unmap(&v->vd, g->gpa, g->size, &e);
	}
	if (v->vd.fd >= 0 && v->vd.reset_works)
		vfio_reset(&v->vd, &e); /* handed back reset, not as the guest left it */
	vfio_close(&v->vd);
}
