/* testdev.c - ember's PCI test device: registers, DMA buffer, doorbell ioeventfd, IRQ routing. */
#include "devices/pci/testdev.h"
#include "pci/pcie.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- doorbell ------------------------------------------------------------------------------ */

/* Move what KVM counted on the eventfd into t->doorbells.  Caller holds t->lock. */
static void doorbell_drain(struct testdev *t)
{
	uint64_t n;

	if (t->doorbell_fd >= 0 && read(t->doorbell_fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
		t->doorbells += n;
}

/* Unregister the BAR0 doorbell ioeventfd if it is registered.  Caller holds t->lock. */
static void doorbell_unhook(struct testdev *t)
{
	if (!t->doorbell_on)
		return;
	t->plat.ops->ioeventfd(t->plat.ctx, t->doorbell_addr, 4, false, t->doorbell_fd, false);
	t->doorbell_on = false;
}

/*
 * BAR0 is now at `addr` (mapped) or off the bus: move the ioeventfd with it,
 * so a 4-byte write to DOORBELL never leaves the kernel.  If KVM refuses,
 * writes simply reach the handler, which counts them too.
 */
static void testdev_bar_map(struct pci_dev *d, unsigned int bar, uint64_t addr, bool mapped)
{
	struct testdev *t = d->opaque;
	uint64_t at = addr + TESTDEV_DOORBELL;
	int r;

	if (bar != TESTDEV_BAR_REGS || t->doorbell_fd < 0 || !t->plat.ops ||
	    !t->plat.ops->ioeventfd)
		return;
	pthread_mutex_lock(&t->lock);
	doorbell_unhook(t);
	if (mapped) {
		r = t->plat.ops->ioeventfd(t->plat.ctx, at, 4, false, t->doorbell_fd, true);
		if (r == 0) {
			t->doorbell_on = true;
			t->doorbell_addr = at;
		} else {
			log_guest(&t->rl, LOG_WARN,
			          "pci-testdev: doorbell ioeventfd at 0x%llx refused (%s); "
			          "doorbell writes will exit",
			          (unsigned long long)at, strerror(-r));
		}
	}
	pthread_mutex_unlock(&t->lock);
}

/* Config-space writes: remember COMMAND (Bus Master gates DMA, PCI 3.0 §6.2.2). */
static void testdev_cfg_write(struct pci_dev *d, unsigned int off, uint32_t val, unsigned int size)
{
	struct testdev *t = d->opaque;

	(void)val;
	if (off < PCI_COMMAND + 2 && off + size > PCI_COMMAND)
		__atomic_store_n(&t->command, pci_cfg_get16(&d->cfg, PCI_COMMAND),
		                 __ATOMIC_RELEASE);
}

static const struct pci_dev_ops testdev_pci_ops = {
    .cfg_write = testdev_cfg_write,
    .bar_map = testdev_bar_map,
};

/* ---- interrupts and DMA -------------------------------------------------------------------- */

/* IRQ register write: the first enabled mechanism of MSI-X, MSI, INTx gets `v`. */
static void testdev_irq(struct testdev *t, uint32_t v)
{
	if (t->msix_ready && pci_msix_enabled(&t->msix)) {
		pci_msix_notify(&t->msix, v);
		return;
	}
	if (t->msi_ready && pci_msi_enabled(&t->msi)) {
		pci_msi_notify(&t->msi, v);
		return;
	}
	if (v > 1) {
		log_guest(&t->rl, LOG_WARN, "pci-testdev: IRQ write %u with INTx: want 0 or 1", v);
		return;
	}
	pthread_mutex_lock(&t->irq_lock);
	__atomic_store_n(&t->intx_level, v == 1, __ATOMIC_RELEASE);
	pci_intx_set(&t->dev, v == 1);
	pthread_mutex_unlock(&t->irq_lock);
}

/* DMA_CMD write.  Caller holds t->lock. */
static void testdev_dma(struct testdev *t, uint32_t cmd)
{
	uint64_t addr = (uint64_t)t->dma_hi << 32 | t->dma_lo;
	uint8_t *p;

	if (cmd != TESTDEV_DMA_TO_DEVICE && cmd != TESTDEV_DMA_FROM_DEVICE) {
		log_guest(&t->rl, LOG_WARN, "pci-testdev: unknown DMA command %u", cmd);
		t->dma_status = TESTDEV_DMA_ERROR;
		return;
	}
	/* PCI 3.0 §6.2.2: a function may not master the bus unless COMMAND.Bus Master is set. */
	if (!(__atomic_load_n(&t->command, __ATOMIC_ACQUIRE) & PCI_COMMAND_MASTER)) {
		t->dma_status = TESTDEV_DMA_NO_MASTER;
		return;
	}
	if (t->dma_len > TESTDEV_BUF_SIZE) {
		log_guest(&t->rl, LOG_WARN, "pci-testdev: DMA length %u > %u", t->dma_len,
		          TESTDEV_BUF_SIZE);
		t->dma_status = TESTDEV_DMA_ERROR;
		return;
	}
	p = gmem_ptr(t->gm, addr, t->dma_len);
	if (!p) {
		log_guest(&t->rl, LOG_WARN, "pci-testdev: DMA of %u bytes at 0x%llx is not RAM",
		          t->dma_len, (unsigned long long)addr);
		t->dma_status = TESTDEV_DMA_ERROR;
		return;
	}
	if (cmd == TESTDEV_DMA_TO_DEVICE)
		memcpy(t->buf, p, t->dma_len);
	else {
		memcpy(p, t->buf, t->dma_len);
		gmem_mark_dirty(t->gm, addr, t->dma_len); /* for Diff snapshots (util/gmem.h) */
	}
	t->dma_status = TESTDEV_DMA_DONE;
}

/* ---- registers ----------------------------------------------------------------------------- */

/* One 32-bit register at dword offset `off`, with its read side effects. */
static uint32_t reg_read(struct testdev *t, uint64_t off)
{
	uint32_t v = 0;

	switch (off) {
	case TESTDEV_MAGIC:
		return TESTDEV_MAGIC_VALUE;
	case TESTDEV_VERSION:
		return TESTDEV_VERSION_VALUE;
	case TESTDEV_IRQ:
		return __atomic_load_n(&t->intx_level, __ATOMIC_ACQUIRE) ? 1 : 0;
	default:
		break;
	}
	pthread_mutex_lock(&t->lock);
	switch (off) {
	case TESTDEV_SCRATCH:
		v = t->scratch;
		break;
	case TESTDEV_DOORBELL_COUNT:
		doorbell_drain(t);
		v = (uint32_t)t->doorbells;
		break;
	case TESTDEV_DMA_ADDR_LO:
		v = t->dma_lo;
		break;
	case TESTDEV_DMA_ADDR_HI:
		v = t->dma_hi;
		break;
	case TESTDEV_DMA_LEN:
		v = t->dma_len;
		break;
	case TESTDEV_DMA_STATUS:
		v = t->dma_status;
		break;
	default: /* DOORBELL and DMA_CMD are write-only; the rest is unimplemented */
		break;
	}
	pthread_mutex_unlock(&t->lock);
	return v;
}

static uint64_t testdev_regs_read(void *opaque, uint64_t off, unsigned int size)
{
	struct testdev *t = opaque;
	uint64_t v = 0, dw_off = UINT64_MAX;
	uint32_t dw = 0;
	unsigned int i;

	if (size == 4 && !(off & 3))
		return reg_read(t, off);
	/* Narrow, unaligned or 8-byte: assemble the bytes from the dwords they fall in. */
	for (i = 0; i < size && i < 8; i++) {
		uint64_t o = off + i;

		if ((o & ~3ull) != dw_off) {
			dw_off = o & ~3ull;
			dw = reg_read(t, dw_off);
		}
		v |= (uint64_t)((dw >> ((o & 3) * 8)) & 0xff) << (i * 8);
	}
	return v;
}

static void testdev_regs_write(void *opaque, uint64_t off, uint64_t value, unsigned int size)
{
	struct testdev *t = opaque;
	uint32_t v = (uint32_t)value;

	if (size != 4 || (off & 3)) {
		log_guest(&t->rl, LOG_WARN,
		          "pci-testdev: %u-byte write at register offset 0x%llx ignored "
		          "(registers take 4-byte aligned writes)",
		          size, (unsigned long long)off);
		return;
	}
	if (off == TESTDEV_IRQ) {
		testdev_irq(t, v);
		return;
	}
	pthread_mutex_lock(&t->lock);
	switch (off) {
	case TESTDEV_SCRATCH:
		t->scratch = v;
		break;
	case TESTDEV_DOORBELL:
		/* Only reached when the ioeventfd did not catch it (see testdev.h). */
		t->doorbells++;
		break;
	case TESTDEV_DMA_ADDR_LO:
		t->dma_lo = v;
		break;
	case TESTDEV_DMA_ADDR_HI:
		t->dma_hi = v;
		break;
	case TESTDEV_DMA_LEN:
		t->dma_len = v;
		break;
	case TESTDEV_DMA_CMD:
		testdev_dma(t, v);
		break;
	default:
		log_guest(&t->rl, LOG_WARN,
		          "pci-testdev: write 0x%x to read-only or unimplemented offset 0x%llx "
		          "ignored",
		          v, (unsigned long long)off);
		break;
	}
	pthread_mutex_unlock(&t->lock);
}

const struct bus_ops testdev_regs_ops = {
    .read = testdev_regs_read,
    .write = testdev_regs_write,
};

/* ---- DMA buffer (BAR2 0x0000-0x0fff): plain little-endian memory ---------------------------- */

static uint64_t testdev_buf_read(void *opaque, uint64_t off, unsigned int size)
{
	struct testdev *t = opaque;
	uint64_t v = 0;
	unsigned int i;

	if (off >= TESTDEV_BUF_SIZE || size > 8 || size > TESTDEV_BUF_SIZE - off)
		return ~0ull;
	pthread_mutex_lock(&t->lock);
	for (i = 0; i < size; i++)
		v |= (uint64_t)t->buf[off + i] << (i * 8);
	pthread_mutex_unlock(&t->lock);
	return v;
}

static void testdev_buf_write(void *opaque, uint64_t off, uint64_t value, unsigned int size)
{
	struct testdev *t = opaque;
	unsigned int i;

	if (off >= TESTDEV_BUF_SIZE || size > 8 || size > TESTDEV_BUF_SIZE - off)
		return;
	pthread_mutex_lock(&t->lock);
	for (i = 0; i < size; i++)
		t->buf[off + i] = (uint8_t)(value >> (i * 8));
	pthread_mutex_unlock(&t->lock);
}

const struct bus_ops testdev_buf_ops = {
    .read = testdev_buf_read,
    .write = testdev_buf_write,
};

/* ---- set-up -------------------------------------------------------------------------------- */

int testdev_init(struct testdev *t, const struct gmem *gm, const struct platform *plat,
                 struct err *e)
{
	int r;

	memset(t, 0, sizeof(*t));
	t->doorbell_fd = -1;
	t->gm = gm;
	t->plat = *plat;
	r = pthread_mutex_init(&t->lock, NULL);
	if (r)
		return err_sys(e, r, "pci-testdev: mutex");
	r = pthread_mutex_init(&t->irq_lock, NULL);
	if (r) {
		pthread_mutex_destroy(&t->lock);
		return err_sys(e, r, "pci-testdev: mutex");
	}
	t->locks_ready = true;

	pci_dev_init(&t->dev, "pci-testdev", TESTDEV_VENDOR, TESTDEV_DEVICE, TESTDEV_CLASS,
	             TESTDEV_REVISION, PCI_HEADER_TYPE_NORMAL, &testdev_pci_ops, t);
	pci_cfg_set16(&t->dev.cfg, PCI_SUBSYSTEM_VID, TESTDEV_VENDOR);
	pci_cfg_set16(&t->dev.cfg, PCI_SUBSYSTEM_ID, TESTDEV_DEVICE);

	r = pci_dev_add_bar(&t->dev, TESTDEV_BAR_REGS, PCI_BAR_MEM32, false, TESTDEV_REGS_SIZE);
	if (!r)
		r = pci_dev_add_bar(&t->dev, TESTDEV_BAR_IO, PCI_BAR_IO, false, TESTDEV_IO_SIZE);
	if (!r)
		r = pci_dev_add_bar(&t->dev, TESTDEV_BAR_BUF, PCI_BAR_MEM64, true,
		                    TESTDEV_BUF_BAR_SIZE);
	if (!r)
		r = pci_dev_add_bar(&t->dev, TESTDEV_BAR_REGS64, PCI_BAR_MEM64, false,
		                    TESTDEV_REGS_SIZE);
	if (!r)
		r = pci_bar_add_region(&t->dev, TESTDEV_BAR_REGS, 0, TESTDEV_REGS_SIZE,
		                       &testdev_regs_ops, t);
	if (!r)
		r = pci_bar_add_region(&t->dev, TESTDEV_BAR_IO, 0, TESTDEV_IO_SIZE,
		                       &testdev_regs_ops, t);
	if (!r)
		r = pci_bar_add_region(&t->dev, TESTDEV_BAR_BUF, 0, TESTDEV_BUF_SIZE,
		                       &testdev_buf_ops, t);
	if (!r)
		r = pci_bar_add_region(&t->dev, TESTDEV_BAR_REGS64, 0, TESTDEV_REGS_SIZE,
		                       &testdev_regs_ops, t);
	if (r) {
		err_set(e, r, "pci-testdev: cannot declare its BARs");
		goto fail;
	}
	pci_dev_set_intx_pin(&t->dev, 1);

	/* An Endpoint behind a root port, a Root Complex Integrated Endpoint on bus 0 (pcie.h). */
	r = pcie_cap_add(&t->dev, PCIE_ENDPOINT, 0);
	if (r < 0) {
		err_sys(e, -r, "pci-testdev: PCI Express capability");
		goto fail;
	}

	r = pci_msi_init(&t->msi, &t->dev, TESTDEV_MSI_VECTORS, plat);
	if (r) {
		err_sys(e, -r, "pci-testdev: MSI capability");
		goto fail;
	}
	t->msi_ready = true;
	r = pci_msix_init(&t->msix, &t->dev, TESTDEV_MSIX_VECTORS, TESTDEV_BAR_BUF,
	                  TESTDEV_MSIX_TABLE, TESTDEV_BAR_BUF, TESTDEV_MSIX_PBA, plat);
	if (r) {
		err_sys(e, -r, "pci-testdev: MSI-X capability");
		goto fail;
	}
	t->msix_ready = true;

	t->doorbell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->doorbell_fd < 0) {
		r = -errno;
		err_sys(e, errno, "pci-testdev: doorbell eventfd");
		goto fail;
	}
	return 0;

fail:
	testdev_destroy(t);
	return r;
}

void testdev_destroy(struct testdev *t)
{
	if (t->locks_ready) {
		pthread_mutex_lock(&t->lock);
		doorbell_unhook(t);
		pthread_mutex_unlock(&t->lock);
	}
	if (t->msix_ready)
		pci_msix_destroy(&t->msix);
	if (t->msi_ready)
		pci_msi_destroy(&t->msi);
	t->msix_ready = t->msi_ready = false;
	if (t->doorbell_fd >= 0)
		close(t->doorbell_fd);
	t->doorbell_fd = -1;
	if (t->locks_ready) {
		pthread_mutex_destroy(&t->irq_lock);
		pthread_mutex_destroy(&t->lock);
	}
	t->locks_ready = false;
}
