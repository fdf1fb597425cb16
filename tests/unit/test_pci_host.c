/* test_pci_host.c - unit tests for the PCI host: CF8/CFC, ECAM, topology, plug/unplug, INTx. */
#include <stdlib.h>

#include "pci_fake.h"
#include "test.h"
#include "util/log.h"

#define CF8 0xcf8
#define CFC 0xcfc

static uint32_t cf8_addr(unsigned int bus, unsigned int devfn, unsigned int reg)
{
	return 0x80000000u | bus << 16 | devfn << 8 | reg;
}

static struct fx *fx_new(void)
{
	struct fx *f = malloc(sizeof(*f));

	CHECK_EQ(fx_init(f), 0);
	return f;
}

static void fx_free(struct fx *f)
{
	fx_fini(f);
	free(f);
}

TEST(host_bridge_identity)
{
	struct fx *f = fx_new();

	CHECK_EQ(fx_rd(f, 0, 0, PCI_VENDOR_ID, 4), 0x00081b36u);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_REVISION_ID, 4), 0x06000000u); /* class 060000, rev 0 */
	CHECK_EQ(fx_rd(f, 0, 0, PCI_HEADER_TYPE, 1), 0);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_SUBSYSTEM_VID, 4), 0x00081b36u);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_CAPABILITY_LIST, 1), 0);
	CHECK_EQ(fx_rd(f, 0, 0, 0x100, 4), 0);
	/* IDs are read-only. */
	fx_wr(f, 0, 0, PCI_VENDOR_ID, 0x12345678, 4);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_VENDOR_ID, 4), 0x00081b36u);
	/* COMMAND: exactly I/O, memory, master, parity, SERR, INTx disable are writable. */
	fx_wr(f, 0, 0, PCI_COMMAND, 0xffff, 2);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_COMMAND, 2), 0x0547);
	fx_wr(f, 0, 0, PCI_COMMAND, 0, 2);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_COMMAND, 2), 0);
	/* STATUS error bits are RW1C; a write cannot set them. */
	fx_wr(f, 0, 0, PCI_STATUS, 0xffff, 2);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_STATUS, 2), 0);
	f->h.bridge.cfg.data[PCI_STATUS + 1] = 0xf9;
	fx_wr(f, 0, 0, PCI_STATUS, 0x0800, 2);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_STATUS, 2), 0xf100);
	/* Cache line size, latency timer, interrupt line are scratch RW. */
	fx_wr(f, 0, 0, PCI_CACHE_LINE_SIZE, 0xffff, 2);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_CACHE_LINE_SIZE, 2), 0xffff);
	fx_wr(f, 0, 0, PCI_INTERRUPT_LINE, 0xffff, 2);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_INTERRUPT_LINE, 2), 0x00ff); /* pin read-only 0 */
	fx_free(f);
}

TEST(absent_functions_all_ones)
{
	struct fx *f = fx_new();

	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(5, 0), 0, 4), 0xffffffffu);
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(0, 1), 0, 2), 0xffff);
	CHECK_EQ(fx_rd(f, 7, 0, 0, 1), 0xff);
	CHECK_EQ(fx_rd(f, 255, 0xff, 0xffc, 4), 0xffffffffu);
	fx_wr(f, 0, PCI_DEVFN(5, 0), PCI_COMMAND, 3, 2); /* dropped, no crash */
	CHECK(pci_host_find(&f->h, 0, PCI_DEVFN(5, 0)) == NULL);
	CHECK(pci_host_find(&f->h, 0, 0) == &f->h.bridge);
	fx_free(f);
}

TEST(cf8_latch)
{
	struct fx *f = fx_new();

	/* Enable bit clear: CONFIG_DATA reads all-ones, writes are dropped. */
	fx_pio_wr(f, CF8, 4, 0x00000000);
	CHECK_EQ(fx_pio_rd(f, CFC, 4), 0xffffffffu);
	fx_pio_wr(f, CF8, 4, cf8_addr(0, 0, PCI_COMMAND) & 0x7fffffff);
	fx_pio_wr(f, CFC, 2, PCI_COMMAND_MEMORY);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_COMMAND, 2), 0);
	CHECK_EQ(fx_pio_rd(f, CF8, 4), cf8_addr(0, 0, PCI_COMMAND) & 0x7fffffff);

	/* Enabled: dword, words and bytes at 0xCFC..0xCFF. */
	fx_pio_wr(f, CF8, 4, cf8_addr(0, 0, 0));
	CHECK_EQ(fx_pio_rd(f, CF8, 4), 0x80000000u);
	CHECK_EQ(fx_pio_rd(f, CFC, 4), 0x00081b36u);
	CHECK_EQ(fx_pio_rd(f, CFC, 2), 0x1b36);
	CHECK_EQ(fx_pio_rd(f, CFC + 2, 2), 0x0008);
	CHECK_EQ(fx_pio_rd(f, CFC + 1, 2), 0x081b); /* a word inside the dword */
	CHECK_EQ(fx_pio_rd(f, CFC + 0, 1), 0x36);
	CHECK_EQ(fx_pio_rd(f, CFC + 1, 1), 0x1b);
	CHECK_EQ(fx_pio_rd(f, CFC + 2, 1), 0x08);
	CHECK_EQ(fx_pio_rd(f, CFC + 3, 1), 0x00);
	fx_pio_wr(f, CF8, 4, cf8_addr(0, 0, 0x08));
	CHECK_EQ(fx_pio_rd(f, CFC + 3, 1), 0x06); /* base class */

	/* Register bits 1:0 are ignored (and read back 0); bits 30:24 are reserved. */
	fx_pio_wr(f, CF8, 4, cf8_addr(0, 0, 0x0b) | 0x7f000000);
	CHECK_EQ(fx_pio_rd(f, CF8, 4), cf8_addr(0, 0, 0x08));
	CHECK_EQ(fx_pio_rd(f, CFC, 4), 0x06000000u);
	/* AMD-style extended register bits 27:24 do not reach 0x100+. */
	pci_cfg_set32(&f->h.bridge.cfg, 0x100, 0xdeadbeef);
	fx_pio_wr(f, CF8, 4, cf8_addr(0, 0, 0) | 0x01000000);
	CHECK_EQ(fx_pio_rd(f, CFC, 4), 0x00081b36u);

	/* Byte and word writes to 0xCF8-0xCFB do not latch; byte/word reads there are all-ones. */
	fx_pio_wr(f, CF8, 4, cf8_addr(0, 0, 0));
	fx_pio_wr(f, CF8 + 3, 1, 0x01);
	fx_pio_wr(f, CF8, 2, 0x0004);
	fx_pio_wr(f, CF8 + 2, 2, 0x1234);
	fx_pio_wr(f, CF8 + 1, 1, 0xff); /* 0xCF9: not a reset here */
	CHECK_EQ(fx_pio_rd(f, CF8, 4), 0x80000000u);
	CHECK_EQ(fx_pio_rd(f, CF8, 1), 0xff);
	CHECK_EQ(fx_pio_rd(f, CF8 + 2, 2), 0xffff);
	/* A dword spanning both registers (0xCFA) does neither. */
	CHECK_EQ(fx_pio_rd(f, CF8 + 2, 4), 0xffffffffu);
	fx_pio_wr(f, CF8 + 2, 4, 0);
	CHECK_EQ(fx_pio_rd(f, CF8, 4), 0x80000000u);

	/* Writes through CONFIG_DATA: byte at 0xCFD hits register + 1. */
	fx_pio_wr(f, CF8, 4, cf8_addr(0, 0, PCI_COMMAND));
	fx_pio_wr(f, CFC + 1, 1, 0x04);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_COMMAND, 2), 0x0400);
	fx_pio_wr(f, CFC, 2, 0x0002);
	CHECK_EQ(fx_rd(f, 0, 0, PCI_COMMAND, 2), 0x0002);
	/* Absent function through CF8. */
	fx_pio_wr(f, CF8, 4, cf8_addr(0, PCI_DEVFN(9, 0), 0));
	CHECK_EQ(fx_pio_rd(f, CFC, 4), 0xffffffffu);
	fx_free(f);
}

TEST(ecam_decode)
{
	struct fx *f = fx_new();
	struct tdev *t = malloc(sizeof(*t)), *port = malloc(sizeof(*port));

	tdev_init(t, "dev", 1, 0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, PCI_DEVFN(3, 2), &f->e), 0);
	pci_cfg_set32(&t->pci.cfg, 0x104, 0xcafef00d);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, 0, 0), 4), 0x00081b36u);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, PCI_DEVFN(3, 2), 0), 4), 0x10011af4u);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, PCI_DEVFN(3, 2), 0x104), 4), 0xcafef00du);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, PCI_DEVFN(3, 2), 0x106), 2), 0xcafe);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, PCI_DEVFN(3, 2), 0x107), 1), 0xca);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, PCI_DEVFN(3, 1), 0), 4), 0xffffffffu);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, PCI_DEVFN(2, 2), 0), 4), 0xffffffffu);
	/* Writes. */
	fx_mmio_wr(f, fx_ecam(f, 0, PCI_DEVFN(3, 2), PCI_INTERRUPT_LINE), 1, 0x0b);
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(3, 2), PCI_INTERRUPT_LINE, 1), 0x0b);
	/* Bus number from bits 27:20: a device behind a port. */
	tdev_init(port, "port", 2, PCI_HEADER_TYPE_BRIDGE);
	CHECK_EQ(pci_host_plug(&f->h, &port->pci, NULL, PCI_DEVFN(4, 0), &f->e), 0);
	pci_host_unplug(&f->h, &t->pci);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, &port->pci, PCI_DEVFN(0, 5), &f->e), 0);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 1, PCI_DEVFN(0, 5), 0x104), 4), 0xcafef00du);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, PCI_DEVFN(3, 2), 0), 4), 0xffffffffu);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 255, 0xff, 0xffc), 4), 0xffffffffu);
	fx_free(f);
	free(t);
	free(port);
}

TEST(bad_accesses)
{
	struct fx *f = fx_new();
	uint64_t v = 0;

	log_set_level(LOG_ERROR); /* the guest warnings are expected */
	pci_cfg_set_wmask(&f->h.bridge.cfg, 0x40, 4, 0xffffffff);
	fx_wr(f, 0, 0, 0x40, 0x44332211, 4);
	/* Within a dword at any byte: fine (byte enables). */
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, 0, 0x41), 2), 0x3322);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, 0, 0x43), 1), 0x44);
	/* Crossing a dword or 8 bytes: all-ones, writes dropped. */
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, 0, 0x43), 2), 0xffff);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 0, 0, 0x42), 4), 0xffffffffu);
	CHECK(bus_read(&f->mmio, f->rd, fx_ecam(f, 0, 0, 0x40), 8, &v));
	CHECK_EQ(v, UINT64_MAX);
	fx_mmio_wr(f, fx_ecam(f, 0, 0, 0x43), 2, 0);
	fx_mmio_wr(f, fx_ecam(f, 0, 0, 0x42), 4, 0);
	fx_mmio_wr(f, fx_ecam(f, 0, 0, 0x40), 8, 0);
	CHECK_EQ(fx_rd(f, 0, 0, 0x40, 4), 0x44332211u);
	/* Through the API: out of range, bad sizes. */
	CHECK_EQ(fx_rd(f, 0, 0, 4096, 4), 0xffffffffu);
	CHECK_EQ(fx_rd(f, 0, 0, 0xfffffffc, 4), 0xffffffffu);
	CHECK_EQ(fx_rd(f, 0, 0, 0x40, 3), 0xffffffffu);
	CHECK_EQ(fx_rd(f, 0, 0, 0x40, 0), 0xffffffffu);
	fx_wr(f, 0, 0, 4096, 0, 4);
	fx_wr(f, 0, 0, 0x40, 0, 3);
	CHECK_EQ(fx_rd(f, 0, 0, 0x40, 4), 0x44332211u);
	/* Last dword of the space is reachable. */
	CHECK_EQ(fx_rd(f, 0, 0, 0xffc, 4), 0);
	log_set_level(LOG_WARN);
	fx_free(f);
}

TEST(cf8_and_ecam_agree_over_a_bus)
{
	struct fx *f = fx_new();
	struct tdev *t = malloc(sizeof(*t)), *port = malloc(sizeof(*port));
	unsigned int mismatches = 0, present = 0;

	tdev_init(t, "dev", 1, 0);
	CHECK_EQ(tdev_bar(t, 0, PCI_BAR_MEM64, true, 0x4000), 0);
	CHECK_EQ(pci_cap_add(&t->pci.cfg, PCI_CAP_ID_VNDR, 8), 0x40);
	pci_dev_set_intx_pin(&t->pci, 1);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, PCI_DEVFN(7, 0), &f->e), 0);
	tdev_init(port, "port", 2, PCI_HEADER_TYPE_BRIDGE);
	CHECK_EQ(pci_host_plug(&f->h, &port->pci, NULL, PCI_DEVFN(1, 0), &f->e), 0);
	for (unsigned int devfn = 0; devfn < 256; devfn++)
		for (unsigned int reg = 0; reg < 256; reg += 4) {
			uint32_t e = (uint32_t)fx_mmio_rd(f, fx_ecam(f, 0, devfn, reg), 4);

			fx_pio_wr(f, CF8, 4, cf8_addr(0, devfn, reg));
			mismatches += (uint32_t)fx_pio_rd(f, CFC, 4) != e;
			mismatches += fx_pio_rd(f, CFC + 2, 2) != (e >> 16);
			mismatches += fx_pio_rd(f, CFC + 1, 1) != ((e >> 8) & 0xff);
			present += reg == 0 && e != 0xffffffffu;
		}
	CHECK_EQ(mismatches, 0);
	CHECK_EQ(present, 3);
	fx_free(f);
	free(t);
	free(port);
}

TEST(bridge_registers_and_numbering)
{
	struct fx *f = fx_new();
	struct tdev *p1 = malloc(sizeof(*p1)), *p2 = malloc(sizeof(*p2));
	unsigned int d1 = PCI_DEVFN(1, 0), d2 = PCI_DEVFN(2, 0);

	tdev_init(p1, "port1", 1, PCI_HEADER_TYPE_BRIDGE);
	tdev_init(p2, "port2", 2, PCI_HEADER_TYPE_BRIDGE);
	CHECK_EQ(pci_host_plug(&f->h, &p1->pci, NULL, d1, &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &p2->pci, NULL, d2, &f->e), 0);
	/* Bus numbers: primary 0, secondary = subordinate = next free. */
	CHECK_EQ(fx_rd(f, 0, d1, PCI_PRIMARY_BUS, 4) & 0xffffff, 0x010100);
	CHECK_EQ(fx_rd(f, 0, d2, PCI_PRIMARY_BUS, 4) & 0xffffff, 0x020200);
	/* Windows programmed as PCI-to-PCI Bridge 1.2 §3.2.5 encodes them. */
	CHECK_EQ(p1->pci.win_io, FX_IO);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_IO_BASE, 1), (FX_IO >> 8) & 0xf0);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_IO_LIMIT, 1), ((FX_IO + FX_PORT_IO - 1) >> 8) & 0xf0);
	CHECK_EQ(p2->pci.win_io, FX_IO + FX_PORT_IO);
	CHECK_EQ(p1->pci.win_mem, FX_MEM32);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_MEMORY_BASE, 2), FX_MEM32 >> 16);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_MEMORY_LIMIT, 2),
	         ((FX_MEM32 + FX_PORT_MEM - 1) >> 16) & 0xfff0);
	CHECK_EQ(p2->pci.win_mem, FX_MEM32 + FX_PORT_MEM);
	CHECK_EQ(p1->pci.win_pref, FX_MEM64);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_PREF_BASE, 2), ((FX_MEM64 >> 16) & 0xfff0) | 1);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_PREF_LIMIT, 2),
	         (((FX_MEM64 + FX_PORT_PREF - 1) >> 16) & 0xfff0) | 1);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_PREF_BASE_UPPER, 4), FX_MEM64 >> 32);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_PREF_LIMIT_UPPER, 4), (FX_MEM64 + FX_PORT_PREF - 1) >> 32);
	/* Masks: I/O low nibble 0 (16-bit), prefetchable low nibble 1 (64-bit), all RO. */
	fx_wr(f, 0, d1, PCI_IO_BASE, 0xffff, 2);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_IO_BASE, 2), 0xf0f0);
	fx_wr(f, 0, d1, PCI_IO_BASE, 0, 2);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_IO_BASE, 2), 0);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_IO_BASE_UPPER, 4), 0);
	fx_wr(f, 0, d1, PCI_IO_BASE_UPPER, 0xffffffff, 4);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_IO_BASE_UPPER, 4), 0);
	fx_wr(f, 0, d1, PCI_PREF_BASE, 0, 4);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_PREF_BASE, 4), 0x00010001u);
	fx_wr(f, 0, d1, PCI_MEMORY_BASE, 0xffffffff, 4);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_MEMORY_BASE, 4), 0xfff0fff0u);
	fx_wr(f, 0, d1, PCI_PREF_BASE_UPPER, 0xffffffff, 4);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_PREF_BASE_UPPER, 4), 0xffffffffu);
	/* Secondary status: RW1C error bits. */
	p1->pci.cfg.data[PCI_SEC_STATUS + 1] = 0xf9;
	fx_wr(f, 0, d1, PCI_SEC_STATUS, 0x8000, 2);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_SEC_STATUS, 2), 0x7900);
	/* Bridge control: bits 6:0 RW; ROM BAR and BARs beyond 1 read 0. */
	fx_wr(f, 0, d1, PCI_BRIDGE_CONTROL, 0xffff, 2);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_BRIDGE_CONTROL, 2), 0x007f);
	fx_wr(f, 0, d1, PCI_ROM_ADDRESS1, 0xffffffff, 4);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_ROM_ADDRESS1, 4), 0);
	CHECK_EQ(fx_rd(f, 0, d1, PCI_HEADER_TYPE, 1), 1);
	fx_free(f);
	free(p1);
	free(p2);
}

TEST(bridge_forwarding)
{
	struct fx *f = fx_new();
	struct tdev *port = malloc(sizeof(*port)), *t = malloc(sizeof(*t));
	unsigned int dp = PCI_DEVFN(3, 0);

	tdev_init(port, "port", 1, PCI_HEADER_TYPE_BRIDGE);
	tdev_init(t, "child", 7, 0);
	CHECK_EQ(pci_host_plug(&f->h, &port->pci, NULL, dp, &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, &port->pci, PCI_DEVFN(0, 0), &f->e), 0);
	/* The child is bus 1 device 0 only. */
	CHECK_EQ(fx_rd(f, 1, 0, 0, 4), 0x10071af4u);
	CHECK(pci_host_find(&f->h, 1, 0) == &t->pci);
	for (unsigned int dev = 1; dev < 32; dev++)
		CHECK_EQ(fx_rd(f, 1, PCI_DEVFN(dev, 0), 0, 4), 0xffffffffu);
	CHECK_EQ(fx_rd(f, 1, PCI_DEVFN(0, 1), 0, 4), 0xffffffffu);
	CHECK_EQ(fx_rd(f, 2, 0, 0, 4), 0xffffffffu);
	CHECK_EQ(t->pci.parent, &port->pci);

	/* Subordinate 3: buses 2 and 3 are behind the port but empty; 4 is nowhere. */
	fx_wr(f, 0, dp, PCI_SUBORDINATE_BUS, 3, 1);
	CHECK_EQ(fx_rd(f, 2, 0, 0, 4), 0xffffffffu);
	CHECK_EQ(fx_rd(f, 3, 0, 0, 4), 0xffffffffu);
	CHECK_EQ(fx_rd(f, 1, 0, 0, 4), 0x10071af4u);

	/* Renumbering the secondary bus moves the child. */
	fx_wr(f, 0, dp, PCI_SECONDARY_BUS, 5, 1);
	fx_wr(f, 0, dp, PCI_SUBORDINATE_BUS, 5, 1);
	CHECK_EQ(fx_rd(f, 1, 0, 0, 4), 0xffffffffu);
	CHECK_EQ(fx_rd(f, 5, 0, 0, 4), 0x10071af4u);
	CHECK_EQ(fx_mmio_rd(f, fx_ecam(f, 5, 0, 0), 4), 0x10071af4u);
	fx_pio_wr(f, CF8, 4, cf8_addr(5, 0, 0));
	CHECK_EQ(fx_pio_rd(f, CFC, 4), 0x10071af4u);
	/* Writes follow too. */
	fx_wr(f, 5, 0, PCI_INTERRUPT_LINE, 9, 1);
	CHECK_EQ(pci_cfg_get8(&t->pci.cfg, PCI_INTERRUPT_LINE), 9);
	fx_wr(f, 1, 0, PCI_INTERRUPT_LINE, 10, 1);
	CHECK_EQ(pci_cfg_get8(&t->pci.cfg, PCI_INTERRUPT_LINE), 9);

	/* Secondary 0 (unconfigured): the child is unreachable. */
	fx_wr(f, 0, dp, PCI_SECONDARY_BUS, 0, 1);
	for (unsigned int bus = 1; bus < 256; bus++)
		CHECK_EQ(fx_rd(f, bus, 0, 0, 4), 0xffffffffu);
	fx_wr(f, 0, dp, PCI_SECONDARY_BUS, 1, 1);
	CHECK_EQ(fx_rd(f, 1, 0, 0, 4), 0x10071af4u);
	fx_free(f);
	free(port);
	free(t);
}

TEST(overlapping_bridge_ranges)
{
	struct fx *f = fx_new();
	struct tdev *p1 = malloc(sizeof(*p1)), *p2 = malloc(sizeof(*p2)), *t = malloc(sizeof(*t));

	tdev_init(p1, "port1", 1, PCI_HEADER_TYPE_BRIDGE);
	tdev_init(p2, "port2", 2, PCI_HEADER_TYPE_BRIDGE);
	tdev_init(t, "child", 3, 0);
	CHECK_EQ(pci_host_plug(&f->h, &p1->pci, NULL, PCI_DEVFN(1, 0), &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &p2->pci, NULL, PCI_DEVFN(2, 0), &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, &p2->pci, 0, &f->e), 0);
	CHECK_EQ(fx_rd(f, 2, 0, 0, 4), 0x10031af4u);
	/* port1 (first by devfn) now claims buses 1-2: bus 2 is behind it, and empty. */
	fx_wr(f, 0, PCI_DEVFN(1, 0), PCI_SUBORDINATE_BUS, 2, 1);
	CHECK_EQ(fx_rd(f, 2, 0, 0, 4), 0xffffffffu);
	/* Secondary 0, subordinate 2: still claims 1-2 (bus 0 itself is never forwarded). */
	fx_wr(f, 0, PCI_DEVFN(1, 0), PCI_SECONDARY_BUS, 0, 1);
	CHECK_EQ(fx_rd(f, 2, 0, 0, 4), 0xffffffffu);
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(2, 0), 0, 4), 0x10021af4u);
	/* Reset numbering (0, 0) claims nothing. */
	fx_wr(f, 0, PCI_DEVFN(1, 0), PCI_SUBORDINATE_BUS, 0, 1);
	CHECK_EQ(fx_rd(f, 2, 0, 0, 4), 0x10031af4u);
	fx_free(f);
	free(p1);
	free(p2);
	free(t);
}

TEST(plug_errors)
{
	struct fx *f = malloc(sizeof(*f));
	struct tdev *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct tdev *p = malloc(sizeof(*p)), *q = malloc(sizeof(*q));
	struct pci_host_layout lay;

	fx_layout(&lay);
	lay.ecam_buses = 2; /* buses 0 and 1: room for one port */
	CHECK_EQ(fx_init_lay(f, &lay), 0);
	tdev_init(a, "a", 1, 0);
	tdev_init(b, "b", 2, 0);
	tdev_init(p, "p", 3, PCI_HEADER_TYPE_BRIDGE);
	tdev_init(q, "q", 4, PCI_HEADER_TYPE_BRIDGE);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, NULL, 0, &f->e), -EEXIST); /* the host bridge */
	CHECK_STR_CONTAINS(f->e.msg, "host bridge");
	err_clear(&f->e);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, NULL, PCI_DEVFN(1, 0), &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, NULL, PCI_DEVFN(2, 0), &f->e), -EINVAL);
	CHECK_EQ(pci_host_plug(&f->h, &b->pci, NULL, PCI_DEVFN(1, 0), &f->e), -EEXIST);
	CHECK_EQ(pci_host_plug(&f->h, &b->pci, &a->pci, 0, &f->e), -EINVAL); /* a is no bridge */
	CHECK_EQ(pci_host_plug(&f->h, &p->pci, NULL, PCI_DEVFN(2, 0), &f->e), 0);
	err_clear(&f->e);
	CHECK_EQ(pci_host_plug(&f->h, &b->pci, &p->pci, PCI_DEVFN(1, 0), &f->e), -EINVAL);
	CHECK_STR_CONTAINS(f->e.msg, "device 0");
	CHECK_EQ(pci_host_plug(&f->h, &q->pci, &p->pci, 0, &f->e), -EINVAL); /* no switches */
	err_clear(&f->e);
	CHECK_EQ(pci_host_plug(&f->h, &q->pci, NULL, PCI_DEVFN(3, 0), &f->e), -ENOSPC);
	CHECK_STR_CONTAINS(f->e.msg, "bus number");
	CHECK(!q->pci.plugged);
	CHECK_EQ(pci_host_plug(&f->h, &b->pci, &p->pci, 0, &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, &p->pci, 0, &f->e), -EINVAL); /* already plugged */
	pci_host_unplug(&f->h, &a->pci);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, &p->pci, 0, &f->e), -EEXIST);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, &p->pci, PCI_DEVFN(0, 1), &f->e), 0);

	/* INTx set-up failure leaves nothing behind. */
	pci_host_unplug(&f->h, &a->pci);
	pci_dev_set_intx_pin(&a->pci, 1);
	a->intx_fail = -EMFILE;
	err_clear(&f->e);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, NULL, PCI_DEVFN(4, 0), &f->e), -EMFILE);
	CHECK_STR_CONTAINS(f->e.msg, "INTx");
	CHECK(!a->pci.plugged && a->pci.host == NULL);
	CHECK(pci_host_find(&f->h, 0, PCI_DEVFN(4, 0)) == NULL);
	a->intx_fail = 0;
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, NULL, PCI_DEVFN(4, 0), &f->e), 0);

	/* Unplugging the port takes its children off first. */
	pci_host_unplug(&f->h, &p->pci);
	CHECK(!b->pci.plugged && !p->pci.plugged);
	CHECK_EQ(fx_rd(f, 1, 0, 0, 4), 0xffffffffu);
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(2, 0), 0, 4), 0xffffffffu);
	fx_fini(f);
	free(a);
	free(b);
	free(p);
	free(q);
	free(f);
}

TEST(host_init_errors)
{
	struct fx *f = malloc(sizeof(*f));
	struct pci_host *h2 = malloc(sizeof(*h2));
	struct pci_host_layout lay;
	struct err e = {0};

	fx_layout(&lay);
	lay.ecam_buses = 0;
	CHECK_EQ(fx_init_lay(f, &lay), -EINVAL);
	CHECK_STR_CONTAINS(f->e.msg, "ECAM");
	lay.ecam_buses = 256;
	lay.ecam_base = 0xe0001000;
	/* (the fixture's buses exist; tear down by hand as no host was made) */
	CHECK_EQ(pci_host_init(h2, &f->pio, &f->mmio, NULL, &lay, &e), -EINVAL);
	rcu_reader_unregister(&f->rcu, f->rd);
	bus_destroy(&f->mmio);
	bus_destroy(&f->pio);
	rcu_destroy(&f->rcu);

	/* CF8 already taken by someone else. */
	CHECK_EQ(fx_init(f), 0);
	err_clear(&e);
	fx_layout(&lay);
	lay.ecam_base = 0xd0000000;
	CHECK_EQ(pci_host_init(h2, &f->pio, &f->mmio, NULL, &lay, &e), -EEXIST);
	CHECK_STR_CONTAINS(e.msg, "pci host");
	/* ECAM overlapping: CF8 is rolled back. */
	err_clear(&e);
	pci_host_destroy(&f->h);
	CHECK_EQ(bus_register(&f->mmio, 0xd0000000, 0x1000, &thit_ops, NULL, NULL), 0);
	CHECK_EQ(pci_host_init(h2, &f->pio, &f->mmio, NULL, &lay, &e), -EEXIST);
	CHECK(!fx_claimed(f, &f->pio, CF8));
	CHECK_EQ(bus_unregister(&f->mmio, 0xd0000000, NULL), 0);
	CHECK_EQ(pci_host_init(&f->h, &f->pio, &f->mmio, NULL, &lay, &e), 0);
	CHECK(fx_claimed(f, &f->pio, CF8));
	CHECK(fx_claimed(f, &f->pio, CF8 + 7));
	CHECK(!fx_claimed(f, &f->pio, CF8 + 8));
	CHECK(fx_claimed(f, &f->mmio, 0xd0000000 + 256 * 0x100000ull - 1));
	fx_fini(f);
	free(h2);
	free(f);
}

TEST(intx_swizzle)
{
	struct fx *f = fx_new();
	struct tdev *d[6], *port = malloc(sizeof(*port));
	static const struct {
		unsigned int slot, pin, gsi;
	} bus0[] = {
	    {3, 1, 16 + 3}, /* (3 + 1 - 1) % 4 = 3 */
	    {3, 2, 16 + 0}, /* (3 + 2 - 1) % 4 = 0 */
	    {1, 4, 16 + 0}, /* (1 + 4 - 1) % 4 = 0 */
	    {6, 3, 16 + 0}, /* (6 + 3 - 1) % 4 = 0 */
	};

	for (unsigned int i = 0; i < 6; i++)
		d[i] = malloc(sizeof(*d[i]));
	for (unsigned int i = 0; i < 4; i++) {
		tdev_init(d[i], "intx", i, 0);
		pci_dev_set_intx_pin(&d[i]->pci, (uint8_t)bus0[i].pin);
		CHECK_EQ(pci_host_plug(&f->h, &d[i]->pci, NULL,
		                       PCI_DEVFN(bus0[i].slot, i == 1 ? 1 : 0), &f->e),
		         0);
		CHECK_EQ(d[i]->intx_plugs, 1);
		CHECK_EQ(d[i]->intx_gsi, bus0[i].gsi);
		CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(bus0[i].slot, i == 1 ? 1 : 0), PCI_INTERRUPT_PIN, 1),
		         bus0[i].pin);
	}
	/* Behind a port in slot 2: pins pass through device 0, then swizzle by slot 2. */
	tdev_init(port, "port", 9, PCI_HEADER_TYPE_BRIDGE);
	CHECK_EQ(pci_host_plug(&f->h, &port->pci, NULL, PCI_DEVFN(2, 0), &f->e), 0);
	tdev_init(d[4], "a", 4, 0);
	tdev_init(d[5], "c", 5, 0);
	pci_dev_set_intx_pin(&d[4]->pci, 1);
	pci_dev_set_intx_pin(&d[5]->pci, 3);
	CHECK_EQ(pci_host_plug(&f->h, &d[4]->pci, &port->pci, PCI_DEVFN(0, 0), &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &d[5]->pci, &port->pci, PCI_DEVFN(0, 1), &f->e), 0);
	CHECK_EQ(d[4]->intx_gsi, 16 + 2); /* (2 + 1 - 1) % 4 */
	CHECK_EQ(d[5]->intx_gsi, 16 + 0); /* (2 + 3 - 1) % 4 */
	/* No pin, no INTx; a bad pin number is no pin. */
	CHECK_EQ(port->intx_plugs, 0);
	pci_dev_set_intx_pin(&port->pci, 5);
	CHECK_EQ(pci_cfg_get8(&port->pci.cfg, PCI_INTERRUPT_PIN), 0);
	/* Unplug frees it. */
	pci_host_unplug(&f->h, &d[5]->pci);
	CHECK_EQ(d[5]->intx_unplugs, 1);
	CHECK_EQ(d[4]->intx_unplugs, 0);
	fx_free(f);
	CHECK_EQ(d[4]->intx_unplugs, 1);
	for (unsigned int i = 0; i < 6; i++)
		free(d[i]);
	free(port);
}

TEST(write_side_effects)
{
	struct fx *f = fx_new();
	struct tdev *t = malloc(sizeof(*t));
	struct pci_msix *mx = calloc(1, sizeof(*mx));
	struct pci_msi *mi = calloc(1, sizeof(*mi));
	unsigned int df = PCI_DEVFN(5, 0);
	int xcap, icap;

	tdev_init(t, "fx", 1, 0);
	pci_dev_set_intx_pin(&t->pci, 1);
	icap = pci_cap_add(&t->pci.cfg, PCI_CAP_ID_MSI, 24);
	xcap = pci_cap_add(&t->pci.cfg, PCI_CAP_ID_MSIX, 12);
	CHECK_EQ(pci_cap_add(&t->pci.cfg, PCI_CAP_ID_VNDR, 4), 0x64);
	mx->dev = mi->dev = &t->pci;
	mx->cap = (unsigned int)xcap;
	mi->cap = (unsigned int)icap;
	t->pci.msix = mx;
	t->pci.msi = mi;
	CHECK_EQ(pci_host_plug(&f->h, &t->pci, NULL, df, &f->e), 0);

	fx_wr(f, 0, df, PCI_COMMAND, 0x0400, 2);
	CHECK_EQ(t->intx_cmd, 1);
	fx_wr(f, 0, df, PCI_STATUS, 0xffff, 2); /* not COMMAND */
	CHECK_EQ(t->intx_cmd, 1);
	fx_wr(f, 0, df, PCI_COMMAND, 0x0000, 4); /* dword at 0x04 covers COMMAND */
	CHECK_EQ(t->intx_cmd, 2);
	CHECK_EQ(t->cfg_writes, 3);

	/* MSI-X: any write touching [cap, cap+12). */
	fx_wr(f, 0, df, (unsigned int)xcap + 2, 0x8000, 2);
	CHECK_EQ(t->msix_writes, 1);
	CHECK_EQ(t->last_cap_write_off, (unsigned int)xcap + 2);
	fx_wr(f, 0, df, (unsigned int)xcap + 11, 0, 1);
	CHECK_EQ(t->msix_writes, 2);
	fx_wr(f, 0, df, (unsigned int)xcap + 12, 0, 4); /* the next capability */
	CHECK_EQ(t->msix_writes, 2);
	/* MSI: [cap, cap+24). */
	fx_wr(f, 0, df, (unsigned int)icap + 2, 1, 2);
	fx_wr(f, 0, df, (unsigned int)icap + 20, 1, 4);
	CHECK_EQ(t->msi_writes, 2);
	CHECK_EQ(t->msix_writes, 2);
	fx_wr(f, 0, df, (unsigned int)icap - 4, 1, 4);
	CHECK_EQ(t->msi_writes, 2);
	/* The device hook sees every write, last. */
	CHECK_EQ(t->cfg_writes, 9);
	CHECK_EQ(t->last_cfg_off, (unsigned int)icap - 4);
	/* Writes to absent functions reach nobody. */
	fx_wr(f, 0, PCI_DEVFN(6, 0), PCI_COMMAND, 0x400, 2);
	CHECK_EQ(t->intx_cmd, 2);
	fx_free(f);
	free(t);
	free(mx);
	free(mi);
}

TEST(multifunction_bit)
{
	struct fx *f = fx_new();
	struct tdev *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *c = malloc(sizeof(*c));

	tdev_init(a, "fn0", 1, 0);
	tdev_init(b, "fn3", 2, 0);
	tdev_init(c, "single", 3, 0);
	CHECK_EQ(pci_host_plug(&f->h, &a->pci, NULL, PCI_DEVFN(4, 0), &f->e), 0);
	CHECK_EQ(pci_host_plug(&f->h, &c->pci, NULL, PCI_DEVFN(5, 0), &f->e), 0);
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(4, 0), PCI_HEADER_TYPE, 1), 0x00);
	CHECK_EQ(pci_host_plug(&f->h, &b->pci, NULL, PCI_DEVFN(4, 3), &f->e), 0);
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(4, 0), PCI_HEADER_TYPE, 1), 0x80);
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(4, 3), PCI_HEADER_TYPE, 1), 0x80);
	CHECK_EQ(fx_rd(f, 0, PCI_DEVFN(5, 0), PCI_HEADER_TYPE, 1), 0x00);
	fx_free(f);
	free(a);
	free(b);
	free(c);
}

int main(void)
{
	RUN(host_bridge_identity);
	RUN(absent_functions_all_ones);
	RUN(cf8_latch);
	RUN(ecam_decode);
	RUN(bad_accesses);
	RUN(cf8_and_ecam_agree_over_a_bus);
	RUN(bridge_registers_and_numbering);
	RUN(bridge_forwarding);
	RUN(overlapping_bridge_ranges);
	RUN(plug_errors);
	RUN(host_init_errors);
	RUN(intx_swizzle);
	RUN(write_side_effects);
	RUN(multifunction_bit);
	return test_summary();
}
