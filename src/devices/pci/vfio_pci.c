/* vfio_pci.c - a host PCI device passed through to the guest with VFIO (see vfio_pci.h). */
#include "devices/pci/vfio_pci.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CFG_INDEX VFIO_PCI_CONFIG_REGION_INDEX

/* PCI 3.0 §6.1 header offsets and bits this file reads from the device. */
#define HDR_STATUS_CAPLIST 0x10 /* Status: Capabilities List */
#define HDR_CAP_PTR        0x34
#define CAP_ID_MSI         0x05
#define BAR_IO             0x1
#define BAR_TYPE_64        0x4 /* bits 2:1 = 10b */
#define BAR_PREFETCH       0x8

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- BARs: every access goes to the device's region ---- */

static uint64_t bar_read(void *opaque, uint64_t off, unsigned int size)
{
	struct vfio_pci_bar_ctx *b = opaque;
	struct err e = {0};
	uint64_t v = 0;

	__atomic_fetch_add(&b->v->bar_reads, 1, __ATOMIC_RELAXED);
	if (vfio_region_read(&b->v->vd, b->bar, off, &v, size, &e) < 0) {
		log_guest(&b->v->rl, LOG_WARN, "%s: BAR%u read at 0x%llx: %s", b->v->name, b->bar,
		          (unsigned long long)off, e.msg);
		return ~0ull;
	}
	return v;
}

static void bar_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct vfio_pci_bar_ctx *b = opaque;
	struct err e = {0};

	__atomic_fetch_add(&b->v->bar_writes, 1, __ATOMIC_RELAXED);
	if (vfio_region_write(&b->v->vd, b->bar, off, &val, size, &e) < 0)
		log_guest(&b->v->rl, LOG_WARN, "%s: BAR%u write at 0x%llx: %s", b->v->name, b->bar,
		          (unsigned long long)off, e.msg);
}

static const struct bus_ops bar_ops = {.read = bar_read, .write = bar_write};

/* ---- COMMAND: decode and bus mastering reach the device ---- */

static void cfg_write(struct pci_dev *d, unsigned int off, uint32_t val, unsigned int size)
{
	struct vfio_pci *v = d->opaque;
	const uint16_t fwd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	uint16_t ours, theirs;
	struct err e = {0};

	(void)val;
	if (off > PCI_COMMAND + 1 || off + size <= PCI_COMMAND)
		return;
	ours = pci_cfg_get16(&d->cfg, PCI_COMMAND);
	if (vfio_region_read(&v->vd, CFG_INDEX, PCI_COMMAND, &theirs, 2, &e) == 0) {
		theirs = (uint16_t)((theirs & ~fwd) | (ours & fwd));
		vfio_region_write(&v->vd, CFG_INDEX, PCI_COMMAND, &theirs, 2, &e);
	}
	if (e.code)
		log_guest(&v->rl, LOG_WARN, "%s: COMMAND: %s", v->name, e.msg);
}

static const struct pci_dev_ops dev_ops = {.cfg_write = cfg_write};

/* ---- MSI: VFIO's eventfds, relayed through ember's MSI capability ---- */

static void on_msi(void *arg)
{
	struct vfio_pci_msi_ctx *m = arg;
	uint64_t n;

	if (read(m->fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return;
	__atomic_fetch_add(&m->v->msis, 1, __ATOMIC_RELAXED);
	pci_msi_notify(&m->v->msi, m->vec);
}

static int set_msi_irqs(struct vfio_pci *v, bool on, struct err *e)
{
	size_t sz = sizeof(struct vfio_irq_set) + (on ? v->nmsi * sizeof(int32_t) : 0);
	struct vfio_irq_set *s = calloc(1, sz);
	unsigned int i;
	int r = 0;

	if (!s)
		return err_set(e, ENOMEM, "out of memory");
	s->argsz = (uint32_t)sz;
	s->index = VFIO_PCI_MSI_IRQ_INDEX;
	s->flags =
	    (on ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) | VFIO_IRQ_SET_ACTION_TRIGGER;
	s->count = on ? v->nmsi : 0;
	for (i = 0; on && i < v->nmsi; i++)
		((int32_t *)s->data)[i] = v->msi_ctx[i].fd;
	if (ioctl(v->vd.fd, VFIO_DEVICE_SET_IRQS, s) < 0)
		r = err_sys(e, errno, "%s: VFIO_DEVICE_SET_IRQS (MSI, %u vectors)", v->name,
		            on ? v->nmsi : 0);
	free(s);
	return r;
}

static void msi_fini(struct vfio_pci *v)
{
	struct err e = {0};
	unsigned int i;

	if (v->nmsi && v->vd.fd >= 0)
		set_msi_irqs(v, false, &e);
	for (i = 0; i < v->nmsi; i++) {
		if (v->msi_ctx[i].fd < 0)
			continue;
		v->plat.ops->unwatch(v->plat.ctx, v->msi_ctx[i].fd);
		close(v->msi_ctx[i].fd);
		v->msi_ctx[i].fd = -1;
	}
	v->nmsi = 0;
	if (v->msi_ready)
		pci_msi_destroy(&v->msi);
	v->msi_ready = false;
}

/* The device's MSI capability: its vector count, or 0 when it has none. */
static unsigned int device_msi_vectors(const uint8_t *cfg)
{
	unsigned int ptr = cfg[HDR_CAP_PTR] & 0xfc, hops;

	if (!(le16(cfg + PCI_STATUS) & HDR_STATUS_CAPLIST))
		return 0;
	for (hops = 0; ptr >= 0x40 && ptr < 256 - 4 && hops < 48; hops++) {
		if (cfg[ptr] == CAP_ID_MSI)
			return 1u << ((le16(cfg + ptr + 2) >> 1) &
			              7); /* Multiple Message Capable */
		ptr = cfg[ptr + 1] & 0xfc;
	}
	return 0;
}

static int msi_init(struct vfio_pci *v, unsigned int nvec, struct err *e)
{
	unsigned int i;
	int r;

	if (nvec > VFIO_PCI_MAX_MSI)
		nvec = VFIO_PCI_MAX_MSI;
	r = pci_msi_init(&v->msi, &v->dev, nvec, &v->plat);
	if (r < 0)
		return err_set(e, r, "%s: cannot add an MSI capability", v->name);
	v->msi_ready = true;
	for (i = 0; i < nvec; i++) {
		struct vfio_pci_msi_ctx *m = &v->msi_ctx[i];

		m->v = v;
		m->vec = i;
		m->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (m->fd < 0)
			return err_sys(e, errno, "%s: eventfd", v->name);
		v->nmsi = i + 1;
		r = v->plat.ops->watch(v->plat.ctx, m->fd, on_msi, m);
		if (r < 0) {
			close(m->fd);
			m->fd = -1;
			return err_set(e, r, "%s: cannot watch its MSI eventfd", v->name);
		}
	}
	return set_msi_irqs(v, true, e);
}

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

static int add_bars(struct vfio_pci *v, const uint8_t *cfg, struct err *e)
{
	unsigned int i;
	int r;

	for (i = 0; i < PCI_BAR_COUNT; i++) {
		uint32_t raw = le32(cfg + PCI_BAR0 + 4 * i);
		uint64_t size = v->vd.regions[i].size;
		bool is64 = (raw & 0x6) == BAR_TYPE_64;

		if (!size)
			continue;
		if (raw & BAR_IO)
			return err_set(e, ENOTSUP,
			               "%s: BAR%u is an I/O BAR, which ember cannot pass "
			               "through yet",
			               v->name, i);
		if (size & (size - 1))
			return err_set(e, EINVAL, "%s: BAR%u's size 0x%llx is not a power of two",
			               v->name, i, (unsigned long long)size);
		r = pci_dev_add_bar(&v->dev, i, is64 ? PCI_BAR_MEM64 : PCI_BAR_MEM32,
		                    raw & BAR_PREFETCH, size);
		if (r == 0) {
			v->bar_ctx[i] = (struct vfio_pci_bar_ctx){v, i};
			r = pci_bar_add_region(&v->dev, i, 0, size, &bar_ops, &v->bar_ctx[i]);
		}
		if (r < 0)
			return err_set(e, r, "%s: cannot declare BAR%u (0x%llx bytes)", v->name, i,
			               (unsigned long long)size);
		if (is64)
			i++;
	}
	return 0;
}

int vfio_pci_init(struct vfio_pci *v, const char *path, const struct gmem *gm,
                  const struct platform *plat, struct err *e)
{
	uint8_t cfg[256];
	int r;

	memset(v, 0, sizeof(*v));
	v->plat = *plat;
	v->gm = gm;
	for (unsigned int i = 0; i < VFIO_PCI_MAX_MSI; i++)
		v->msi_ctx[i].fd = -1;
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
	r = add_bars(v, cfg, e);
	if (r == 0)
		r = map_guest_ram(v, e);
	if (r == 0 && device_msi_vectors(cfg))
		r = msi_init(v, device_msi_vectors(cfg), e);
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

	msi_fini(v);
	while (v->dma_mapped > 0) {
		const struct gmem_region *g = &v->gm->r[--v->dma_mapped];

		vfio_dma_unmap(&v->vd, g->gpa, g->size, &e);
	}
	if (v->vd.fd >= 0 && v->vd.reset_works)
		vfio_reset(&v->vd, &e); /* handed back reset, not as the guest left it */
	vfio_close(&v->vd);
}
