/* test_testdev.c - unit tests for the PCI test device on a real PCI host with a fake platform. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci/testdev.h"
#include "fake_platform.h"
#include "pci/pci.h"
#include "test.h"

#define DEVFN   PCI_DEVFN(2, 0)
#define RAM_GPA 0x100000ull
#define RAM_LEN 0x10000ull

/* A host on real buses, the device plugged at 00:02.0, 64 KiB of "guest RAM" at 1 MiB. */
struct fix {
	struct fake_plat fp;
	struct platform plat;
	struct rcu rcu;
	struct rcu_reader *rd;
	struct bus pio, mmio;
	struct pci_host h;
	struct gmem gm;
	uint8_t ram[RAM_LEN];
	struct testdev t;
	struct err e;
	uint64_t bar[PCI_BAR_COUNT]; /* addresses ember assigned */
};

static struct fix *fix_new(void)
{
	struct fix *f = calloc(1, sizeof(*f));
	struct pci_host_layout lay = {
	    .ecam_base = 0xe0000000ull,
	    .ecam_buses = 256,
	    .io_base = 0x1000,
	    .io_size = 0xf000,
	    .mem32_base = 0xc0000000ull,
	    .mem32_size = 0x20000000ull,
	    .mem64_base = 0x100000000ull,
	    .mem64_size = 0x1000000000ull,
	    .port_io_size = 0x1000,
	    .port_mem_size = 0x200000,
	    .port_pref_size = 0x40000000ull,
	    .intx_gsi_base = 16,
	};

	if (!f)
		abort();
	fake_plat_init(&f->fp, &f->plat);
	CHECK_EQ(rcu_init(&f->rcu), 0);
	f->rd = rcu_reader_register(&f->rcu);
	CHECK(f->rd != NULL);
	CHECK_EQ(bus_init(&f->pio, "pio", &f->rcu), 0);
	CHECK_EQ(bus_init(&f->mmio, "mmio", &f->rcu), 0);
	CHECK_EQ(pci_host_init(&f->h, &f->pio, &f->mmio, &f->plat, &lay, &f->e), 0);
	CHECK_EQ(gmem_add(&f->gm, RAM_GPA, RAM_LEN, f->ram), 0);
	CHECK_EQ(testdev_init(&f->t, &f->gm, &f->plat, &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &f->t.dev, NULL, DEVFN, &f->e), 0);
	f->bar[0] = pci_host_cfg_read(&f->h, 0, DEVFN, PCI_BAR0, 4) & ~0xfu;
	f->bar[1] = pci_host_cfg_read(&f->h, 0, DEVFN, PCI_BAR0 + 4, 4) & ~0x3u;
	f->bar[2] = (pci_host_cfg_read(&f->h, 0, DEVFN, PCI_BAR0 + 8, 4) & ~0xfu) |
	            (uint64_t)pci_host_cfg_read(&f->h, 0, DEVFN, PCI_BAR0 + 12, 4) << 32;
	f->bar[4] = (pci_host_cfg_read(&f->h, 0, DEVFN, PCI_BAR0 + 16, 4) & ~0xfu) |
	            (uint64_t)pci_host_cfg_read(&f->h, 0, DEVFN, PCI_BAR0 + 20, 4) << 32;
	return f;
}

static void fix_free(struct fix *f)
{
	pci_host_unplug(&f->h, &f->t.dev);
	testdev_destroy(&f->t);
	pci_host_destroy(&f->h);
	bus_destroy(&f->mmio);
	bus_destroy(&f->pio);
	rcu_reader_unregister(&f->rcu, f->rd);
	rcu_destroy(&f->rcu);
	free(f);
}

static uint32_t cfg_r(struct fix *f, unsigned int off, unsigned int size)
{
	return pci_host_cfg_read(&f->h, 0, DEVFN, off, size);
}

static void cfg_w(struct fix *f, unsigned int off, uint32_t v, unsigned int size)
{
	pci_host_cfg_write(&f->h, 0, DEVFN, off, v, size);
}

static void decode(struct fix *f, uint16_t cmd)
{
	cfg_w(f, PCI_COMMAND, cmd, 2);
}

/* Guest accesses on the buses (all-ones when nothing answers). */
static uint64_t mr(struct fix *f, uint64_t addr, unsigned int size)
{
	uint64_t v = 0;

	if (!bus_read(&f->mmio, f->rd, addr, size, &v))
		return size == 8 ? ~0ull : (1ull << (8 * size)) - 1;
	return v;
}

static bool mw(struct fix *f, uint64_t addr, uint64_t v, unsigned int size)
{
	return bus_write(&f->mmio, f->rd, addr, size, v);
}

static uint64_t ior(struct fix *f, uint64_t port, unsigned int size)
{
	uint64_t v = 0;

	if (!bus_read(&f->pio, f->rd, port, size, &v))
		return (1ull << (8 * size)) - 1;
	return v;
}

static void iow(struct fix *f, uint64_t port, uint64_t v, unsigned int size)
{
	bus_write(&f->pio, f->rd, port, size, v);
}

/* Size BAR register `off` as a guest does; returns the read-back. */
static uint32_t size_bar(struct fix *f, unsigned int off)
{
	uint32_t orig = cfg_r(f, off, 4), v;

	cfg_w(f, off, 0xffffffff, 4);
	v = cfg_r(f, off, 4);
	cfg_w(f, off, orig, 4);
	return v;
}

TEST(identity_and_bars)
{
	struct fix *f = fix_new();
	unsigned int msix, msi;

	CHECK_EQ(cfg_r(f, PCI_VENDOR_ID, 4), 0xeb011234);
	CHECK_EQ(cfg_r(f, PCI_REVISION_ID, 4), 0x00ff0001);
	CHECK_EQ(cfg_r(f, PCI_HEADER_TYPE, 1), 0);
	CHECK_EQ(cfg_r(f, PCI_SUBSYSTEM_VID, 4), 0xeb011234);
	CHECK_EQ(cfg_r(f, PCI_INTERRUPT_PIN, 1), 1);
	CHECK_EQ(cfg_r(f, PCI_INTERRUPT_LINE, 1), 16 + (2 + 1 - 1) % 4); /* slot 2, INTA */
	/* PCI 3.0 §6.2.5.1 sizing: one BAR of each kind. */
	CHECK_EQ(size_bar(f, PCI_BAR0), 0xfffff000);     /* 4 KiB memory, 32-bit */
	CHECK_EQ(size_bar(f, PCI_BAR0 + 4), 0xffffff01); /* 256 bytes of I/O */
	CHECK_EQ(size_bar(f, PCI_BAR0 + 8), 0xffff000c); /* 64 KiB, 64-bit, prefetchable */
	CHECK_EQ(size_bar(f, PCI_BAR0 + 12), 0xffffffff);
	CHECK_EQ(size_bar(f, PCI_BAR0 + 16), 0xfffff004); /* 4 KiB, 64-bit */
	CHECK_EQ(size_bar(f, PCI_BAR0 + 20), 0xffffffff);
	CHECK_EQ(size_bar(f, PCI_ROM_ADDRESS), 0); /* no expansion ROM */
	/* Restored addresses: inside the windows ember gave out. */
	CHECK(f->bar[0] >= 0xc0000000ull && f->bar[0] < 0xe0000000ull);
	CHECK(f->bar[1] >= 0x1000 && f->bar[1] < 0x10000);
	CHECK(f->bar[2] >= 0x100000000ull);
	CHECK(f->bar[4] >= 0x100000000ull);
	/* Capabilities: MSI (4 vectors) and MSI-X (8, table/PBA in BAR2). */
	msi = pci_cap_find(&f->t.dev.cfg, PCI_CAP_ID_MSI);
	msix = pci_cap_find(&f->t.dev.cfg, PCI_CAP_ID_MSIX);
	CHECK(msi && msix);
	CHECK_EQ((cfg_r(f, msi + 2, 2) >> 1) & 7, 2);
	CHECK_EQ(cfg_r(f, msix + 2, 2) & 0x7ff, 7);
	CHECK_EQ(cfg_r(f, msix + 4, 4), 0x8000 | 2);
	CHECK_EQ(cfg_r(f, msix + 8, 4), 0x9000 | 2);
	fix_free(f);
}

TEST(registers_on_every_bar)
{
	struct fix *f = fix_new();
	uint64_t r0 = f->bar[0], r4 = f->bar[4], io = f->bar[1];

	/* Decode off: nothing answers. */
	CHECK_EQ(mr(f, r0, 4), 0xffffffff);
	decode(f, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
	CHECK_EQ(mr(f, r0 + TESTDEV_MAGIC, 4), TESTDEV_MAGIC_VALUE);
	CHECK_EQ(mr(f, r4 + TESTDEV_MAGIC, 4), TESTDEV_MAGIC_VALUE);
	CHECK_EQ(ior(f, io + TESTDEV_MAGIC, 4), TESTDEV_MAGIC_VALUE);
	CHECK_EQ(mr(f, r0 + TESTDEV_VERSION, 4), 1);
	/* SCRATCH is shared by the three register BARs. */
	CHECK(mw(f, r0 + TESTDEV_SCRATCH, 0xdeadbeef, 4));
	CHECK_EQ(ior(f, io + TESTDEV_SCRATCH, 4), 0xdeadbeef);
	iow(f, io + TESTDEV_SCRATCH, 0x12345678, 4);
	CHECK_EQ(mr(f, r4 + TESTDEV_SCRATCH, 4), 0x12345678);
	/* Read-only and unimplemented registers. */
	mw(f, r0 + TESTDEV_MAGIC, 0, 4);
	mw(f, r0 + TESTDEV_DMA_STATUS, 5, 4);
	mw(f, r0 + 0x800, 5, 4);
	CHECK_EQ(mr(f, r0 + TESTDEV_MAGIC, 4), TESTDEV_MAGIC_VALUE);
	CHECK_EQ(mr(f, r0 + TESTDEV_DMA_STATUS, 4), 0);
	CHECK_EQ(mr(f, r0 + 0x800, 4), 0);
	CHECK_EQ(mr(f, r0 + 0xffc, 4), 0);
	CHECK_EQ(ior(f, io + 0xfc, 4), 0);
	/* Narrow and wide reads take bytes from the dwords they cover. */
	CHECK_EQ(mr(f, r0 + 0, 1), 0x45);
	CHECK_EQ(mr(f, r0 + 3, 1), 0x54);
	CHECK_EQ(mr(f, r0 + 2, 2), 0x5442);
	CHECK_EQ(mr(f, r0 + 1, 4), 0x0154424d); /* MAGIC bytes 1-3, VERSION byte 0 */
	CHECK_EQ(mr(f, r0, 8), 0x0000000154424d45ull);
	CHECK_EQ(ior(f, io + 1, 2), 0x424d);
	/* Writes must be 4-byte aligned dwords; the rest is ignored. */
	mw(f, r0 + TESTDEV_SCRATCH, 0xff, 1);
	mw(f, r0 + TESTDEV_SCRATCH + 2, 0xffff, 2);
	mw(f, r0 + TESTDEV_SCRATCH, 0xffffffffffffffffull, 8);
	CHECK_EQ(mr(f, r0 + TESTDEV_SCRATCH, 4), 0x12345678);
	/* Decode off again: gone from the buses. */
	decode(f, 0);
	CHECK_EQ(mr(f, r0, 4), 0xffffffff);
	CHECK_EQ(ior(f, io, 4), 0xffffffff);
	fix_free(f);
}

TEST(dma_buffer_bar)
{
	struct fix *f = fix_new();
	uint64_t b = f->bar[2];
	unsigned int i;

	decode(f, PCI_COMMAND_MEMORY);
	CHECK_EQ(mr(f, b, 8), 0);
	CHECK(mw(f, b, 0x0807060504030201ull, 8));
	CHECK_EQ(mr(f, b + 1, 1), 0x02);
	CHECK_EQ(mr(f, b + 3, 2), 0x0504);
	CHECK_EQ(mr(f, b + 4, 4), 0x08070605);
	mw(f, b + 0xfff, 0xaa, 1);
	CHECK_EQ(mr(f, b + 0xfff, 1), 0xaa);
	CHECK_EQ(f->t.buf[0xfff], 0xaa);
	for (i = 0; i < 8; i++)
		CHECK_EQ(f->t.buf[i], i + 1);
	/* Past the buffer and before the MSI-X table nothing answers. */
	CHECK_EQ(mr(f, b + 0x1000, 4), 0xffffffff);
	fix_free(f);
}

static void dma(struct fix *f, uint64_t addr, uint32_t len, uint32_t cmd)
{
	mw(f, f->bar[0] + TESTDEV_DMA_ADDR_LO, (uint32_t)addr, 4);
	mw(f, f->bar[0] + TESTDEV_DMA_ADDR_HI, (uint32_t)(addr >> 32), 4);
	mw(f, f->bar[0] + TESTDEV_DMA_LEN, len, 4);
	mw(f, f->bar[0] + TESTDEV_DMA_CMD, cmd, 4);
}

static uint32_t dma_status(struct fix *f)
{
	return (uint32_t)mr(f, f->bar[0] + TESTDEV_DMA_STATUS, 4);
}

TEST(dma)
{
	struct fix *f = fix_new();
	unsigned int i;

	for (i = 0; i < RAM_LEN; i++)
		f->ram[i] = (uint8_t)(i * 7 + 3);
	decode(f, PCI_COMMAND_MEMORY);
	/* No Bus Master: refused, nothing copied. */
	dma(f, RAM_GPA, 4096, TESTDEV_DMA_TO_DEVICE);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_NO_MASTER);
	CHECK_EQ(f->t.buf[1], 0);
	decode(f, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	/* Guest memory -> buffer, the whole 4 KiB. */
	dma(f, RAM_GPA + 0x100, 4096, TESTDEV_DMA_TO_DEVICE);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_DONE);
	CHECK(memcmp(f->t.buf, f->ram + 0x100, 4096) == 0);
	CHECK_EQ(mr(f, f->bar[0] + TESTDEV_DMA_ADDR_LO, 4), RAM_GPA + 0x100);
	CHECK_EQ(mr(f, f->bar[0] + TESTDEV_DMA_LEN, 4), 4096);
	CHECK_EQ(mr(f, f->bar[0] + TESTDEV_DMA_CMD, 4), 0); /* write-only */
	/* Buffer -> guest memory, a few unaligned bytes at the very end of RAM. */
	memset(f->t.buf, 0x5a, 16);
	dma(f, RAM_GPA + RAM_LEN - 13, 13, TESTDEV_DMA_FROM_DEVICE);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_DONE);
	CHECK_EQ(f->ram[RAM_LEN - 13], 0x5a);
	CHECK_EQ(f->ram[RAM_LEN - 1], 0x5a);
	CHECK(f->ram[RAM_LEN - 14] != 0x5a);
	/* Zero bytes: nothing to do, done. */
	dma(f, RAM_GPA, 0, TESTDEV_DMA_FROM_DEVICE);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_DONE);
	/* Errors: crossing the end of RAM, not RAM at all, an overflowing address, too long. */
	memset(f->t.buf, 0x77, 4096);
	dma(f, RAM_GPA + RAM_LEN - 12, 13, TESTDEV_DMA_FROM_DEVICE);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_ERROR);
	CHECK(f->ram[RAM_LEN - 12] != 0x77);
	dma(f, 0xd0000000ull, 16, TESTDEV_DMA_TO_DEVICE);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_ERROR);
	CHECK_EQ(f->t.buf[0], 0x77);
	dma(f, 0xfffffffffffffff0ull, 0x20, TESTDEV_DMA_TO_DEVICE);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_ERROR);
	dma(f, RAM_GPA, 4097, TESTDEV_DMA_TO_DEVICE);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_ERROR);
	dma(f, RAM_GPA, 0xffffffff, TESTDEV_DMA_FROM_DEVICE);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_ERROR);
	dma(f, RAM_GPA, 16, 3);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_ERROR);
	dma(f, RAM_GPA, 16, 0);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_ERROR);
	/* Bus Master cleared again. */
	decode(f, PCI_COMMAND_MEMORY);
	dma(f, RAM_GPA, 16, TESTDEV_DMA_FROM_DEVICE);
	CHECK_EQ(dma_status(f), TESTDEV_DMA_NO_MASTER);
	CHECK(f->ram[0] != 0x77);
	fix_free(f);
}

/* The ioeventfd the device registered, or NULL. */
static struct fake_ioevfd *doorbell_evfd(struct fix *f)
{
	unsigned int i, n = 0;
	struct fake_ioevfd *found = NULL;

	for (i = 0; i < FAKE_MAX_IOEVFD; i++)
		if (f->fp.ioevfd[i].used) {
			found = &f->fp.ioevfd[i];
			n++;
		}
	CHECK(n <= 1);
	return found;
}

TEST(doorbell)
{
	struct fix *f = fix_new();
	struct fake_ioevfd *x;
	uint64_t moved = f->bar[0] + 0x100000, r0 = f->bar[0];
	unsigned int i;

	CHECK(doorbell_evfd(f) == NULL); /* not decoded yet */
	decode(f, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
	x = doorbell_evfd(f);
	CHECK(x != NULL);
	if (!x)
		goto out;
	CHECK_EQ(x->addr, r0 + TESTDEV_DOORBELL);
	CHECK_EQ(x->len, 4);
	CHECK(!x->pio);
	CHECK_EQ(x->fd, f->t.doorbell_fd);
	/* KVM would signal the eventfd for each 4-byte write; three of them. */
	for (i = 0; i < 3; i++)
		fake_signal(x->fd);
	CHECK_EQ(mr(f, r0 + TESTDEV_DOORBELL_COUNT, 4), 3);
	CHECK_EQ(mr(f, r0 + TESTDEV_DOORBELL_COUNT, 4), 3); /* reading does not count */
	/* Writes that reach the handler count directly: the I/O BAR, BAR4, BAR0 itself here. */
	iow(f, f->bar[1] + TESTDEV_DOORBELL, 1, 4);
	mw(f, f->bar[4] + TESTDEV_DOORBELL, 1, 4);
	mw(f, r0 + TESTDEV_DOORBELL, 0, 4);
	CHECK_EQ(mr(f, r0 + TESTDEV_DOORBELL_COUNT, 4), 6);
	/* Narrow writes are ignored like every narrow register write. */
	mw(f, r0 + TESTDEV_DOORBELL, 1, 2);
	CHECK_EQ(ior(f, f->bar[1] + TESTDEV_DOORBELL_COUNT, 4), 6);
	CHECK_EQ(mr(f, r0 + TESTDEV_DOORBELL, 4), 0); /* write-only */

	/* Moving BAR0 moves the ioeventfd; signals already counted stay counted. */
	fake_signal(x->fd);
	cfg_w(f, PCI_BAR0, (uint32_t)moved, 4);
	x = doorbell_evfd(f);
	CHECK(x != NULL);
	if (!x)
		goto out;
	CHECK_EQ(x->addr, moved + TESTDEV_DOORBELL);
	fake_signal(x->fd);
	CHECK_EQ(mr(f, moved + TESTDEV_DOORBELL_COUNT, 4), 8);
	/* Memory decode off: unregistered; on again: back. */
	decode(f, PCI_COMMAND_IO);
	CHECK(doorbell_evfd(f) == NULL);
	CHECK_EQ(ior(f, f->bar[1] + TESTDEV_DOORBELL_COUNT, 4), 8);
	decode(f, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
	x = doorbell_evfd(f);
	CHECK(x != NULL && x->addr == moved + TESTDEV_DOORBELL);
	/* Unplug takes it away too. */
	pci_host_unplug(&f->h, &f->t.dev);
	CHECK(doorbell_evfd(f) == NULL);
out:
	fix_free(f);
}

TEST(doorbell_without_ioeventfd)
{
	struct fix *f = fix_new();

	/* Every slot taken: KVM refusing the ioeventfd.  Writes then reach the handler. */
	for (unsigned int i = 0; i < FAKE_MAX_IOEVFD; i++)
		f->fp.ioevfd[i].used = true;
	decode(f, PCI_COMMAND_MEMORY);
	CHECK(!f->t.doorbell_on);
	mw(f, f->bar[0] + TESTDEV_DOORBELL, 1, 4);
	mw(f, f->bar[0] + TESTDEV_DOORBELL, 1, 4);
	CHECK_EQ(mr(f, f->bar[0] + TESTDEV_DOORBELL_COUNT, 4), 2);
	for (unsigned int i = 0; i < FAKE_MAX_IOEVFD; i++)
		f->fp.ioevfd[i].used = false;
	fix_free(f);
}

TEST(irq_intx)
{
	struct fix *f = fix_new();
	int fd = f->t.dev.intx.fd;

	CHECK(fd >= 0);
	decode(f, PCI_COMMAND_MEMORY);
	CHECK_EQ(mr(f, f->bar[0] + TESTDEV_IRQ, 4), 0);
	mw(f, f->bar[0] + TESTDEV_IRQ, 1, 4);
	CHECK_EQ(mr(f, f->bar[0] + TESTDEV_IRQ, 4), 1);
	CHECK(cfg_r(f, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	CHECK_EQ(fake_count(fd), 1);
	mw(f, f->bar[0] + TESTDEV_IRQ, 1, 4); /* already asserted: no new edge */
	CHECK_EQ(fake_count(fd), 0);
	mw(f, f->bar[0] + TESTDEV_IRQ, 0, 4);
	CHECK_EQ(mr(f, f->bar[0] + TESTDEV_IRQ, 4), 0);
	CHECK_EQ(cfg_r(f, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	/* Interrupt Disable: the status follows the pin, the line stays quiet. */
	decode(f, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
	mw(f, f->bar[0] + TESTDEV_IRQ, 1, 4);
	CHECK(cfg_r(f, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	CHECK_EQ(fake_count(fd), 0);
	decode(f, PCI_COMMAND_MEMORY); /* enabling it raises the asserted pin's line */
	CHECK_EQ(fake_count(fd), 1);
	/* Values other than 0 and 1 are ignored under INTx. */
	mw(f, f->bar[0] + TESTDEV_IRQ, 7, 4);
	CHECK_EQ(mr(f, f->bar[0] + TESTDEV_IRQ, 4), 1);
	mw(f, f->bar[0] + TESTDEV_IRQ, 0, 4);
	fix_free(f);
}

TEST(irq_msi_then_msix)
{
	struct fix *f = fix_new();
	unsigned int msi = pci_cap_find(&f->t.dev.cfg, PCI_CAP_ID_MSI);
	unsigned int msix = pci_cap_find(&f->t.dev.cfg, PCI_CAP_ID_MSIX);
	uint64_t table = f->bar[2] + TESTDEV_MSIX_TABLE;
	int fd;

	decode(f, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	/* MSI, 4 vectors enabled, data 0x40: vector 2 sends 0x42. */
	cfg_w(f, msi + 4, 0xfee00000, 4);
	cfg_w(f, msi + 8, 0, 4);
	cfg_w(f, msi + 12, 0x40, 2);
	cfg_w(f, msi + 2, 1 | (2 << 4), 2);
	CHECK(pci_msi_enabled(&f->t.msi));
	mw(f, f->bar[0] + TESTDEV_IRQ, 2, 4);
	fd = f->t.msi.fd[2];
	CHECK(fd >= 0);
	CHECK_EQ(fake_count(fd), 1);
	CHECK(fake_msi_by_fd(&f->fp, fd) && fake_msi_by_fd(&f->fp, fd)->data == 0x42);
	CHECK_EQ(fake_count(f->t.dev.intx.fd), 0); /* not INTx */
	CHECK_EQ(cfg_r(f, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);

	/* MSI-X enabled as well: it wins.  Vector 5 -> data 0x55. */
	mw(f, table + 5 * 16 + 0, 0xfee00000, 4);
	mw(f, table + 5 * 16 + 4, 0, 4);
	mw(f, table + 5 * 16 + 8, 0x55, 4);
	mw(f, table + 5 * 16 + 12, 0, 4); /* unmask */
	cfg_w(f, msix + 2, 0x8000, 2);
	CHECK(pci_msix_enabled(&f->t.msix));
	mw(f, f->bar[0] + TESTDEV_IRQ, 5, 4);
	fd = f->t.msix.vec[5].fd;
	CHECK(fd >= 0);
	CHECK_EQ(fake_count(fd), 1);
	CHECK(fake_msi_by_fd(&f->fp, fd) && fake_msi_by_fd(&f->fp, fd)->data == 0x55);
	CHECK_EQ(fake_count(f->t.msi.fd[2]), 0);
	/* Through the I/O BAR too. */
	decode(f, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_IO);
	iow(f, f->bar[1] + TESTDEV_IRQ, 5, 4);
	CHECK_EQ(fake_count(fd), 1);
	/* A masked vector becomes pending in the PBA. */
	mw(f, table + 5 * 16 + 12, 1, 4);
	mw(f, f->bar[0] + TESTDEV_IRQ, 5, 4);
	CHECK_EQ(fake_count(fd), 0);
	CHECK_EQ(mr(f, f->bar[2] + TESTDEV_MSIX_PBA, 8), 1u << 5);
	/* MSI-X off: MSI again. */
	cfg_w(f, msix + 2, 0, 2);
	mw(f, f->bar[0] + TESTDEV_IRQ, 1, 4);
	CHECK_EQ(fake_count(f->t.msi.fd[1]), 1);
	/* Both off: INTx. */
	cfg_w(f, msi + 2, 0, 2);
	mw(f, f->bar[0] + TESTDEV_IRQ, 1, 4);
	CHECK_EQ(fake_count(f->t.dev.intx.fd), 1);
	mw(f, f->bar[0] + TESTDEV_IRQ, 0, 4);
	fix_free(f);
	/* Everything given back. */
}

TEST(teardown_releases_everything)
{
	struct fix *f = fix_new();
	struct fake_plat *fp = &f->fp;
	unsigned int msix = pci_cap_find(&f->t.dev.cfg, PCI_CAP_ID_MSIX);

	decode(f, PCI_COMMAND_MEMORY);
	mw(f, f->bar[2] + TESTDEV_MSIX_TABLE + 12, 0, 4);
	cfg_w(f, msix + 2, 0x8000, 2);
	CHECK(fp->msi_live > 0);
	CHECK_EQ(fp->intx_allocs, 1);
	pci_host_unplug(&f->h, &f->t.dev);
	CHECK_EQ(fp->intx_frees, 1);
	testdev_destroy(&f->t);
	CHECK_EQ(fp->msi_live, 0);
	CHECK_EQ(f->t.doorbell_fd, -1);
	testdev_destroy(&f->t); /* twice is harmless */
	/* fix_free unplugs and destroys again: both are no-ops now. */
	fix_free(f);
}

int main(void)
{
	RUN(identity_and_bars);
	RUN(registers_on_every_bar);
	RUN(dma_buffer_bar);
	RUN(dma);
	RUN(doorbell);
	RUN(doorbell_without_ioeventfd);
	RUN(irq_intx);
	RUN(irq_msi_then_msix);
	RUN(teardown_releases_everything);
	return test_summary();
}
