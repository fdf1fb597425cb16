/* test_root_port.c - unit tests for the PCIe root port: header, capability masks, hot-plug slot. */
#include <errno.h>
#include <stdlib.h>

#include "devices/pci/root_port.h"
#include "fake_platform.h"
#include "pci/pci.h"
#include "test.h"

/* Offsets inside the PCI Express capability (PCIe Base 6.0 §7.5.3). */
#define CAPS    0x02
#define DEVCAP  0x04
#define DEVCTL  0x08
#define DEVSTA  0x0a
#define LNKCAP  0x0c
#define LNKCTL  0x10
#define LNKSTA  0x12
#define SLTCAP  0x14
#define SLTCTL  0x18
#define SLTSTA  0x1a
#define RTCTL   0x1c
#define RTCAP   0x1e
#define RTSTA   0x20
#define DEVCAP2 0x24
#define DEVCTL2 0x28
#define LNKCAP2 0x2c
#define LNKCTL2 0x30
#define SLTCAP2 0x34
#define SLTCTL2 0x38

#define SLTSTA_PDS   0x0040
#define LNKSTA_DLLLA 0x2000

/* Slot Control (§7.5.3.10) and Slot Status (§7.5.3.11) bits, spelled out for the tests. */
#define CTL_PDCE   0x0008
#define CTL_HPIE   0x0020
#define CTL_PCC    0x0400
#define CTL_DLLSCE 0x1000
#define STA_ABP    0x0001
#define STA_PFD    0x0002
#define STA_MRLSC  0x0004
#define STA_PDC    0x0008
#define STA_CC     0x0010
#define STA_DLLSC  0x0100
#define STA_EVENTS 0x011f

/* A host on real buses with fake interrupts, for the tests that plug ports. */
struct fix {
	struct fake_plat fp;
	struct platform plat;
	struct rcu rcu;
	struct bus pio, mmio;
	struct pci_host h;
	struct err e;
};

static struct fix *fix_new(void)
{
	struct fix *f = calloc(1, sizeof(*f));
	/* ember's map (boot/layout.h, whose PCI_IO_BASE clashes with pci.h's register name). */
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
	CHECK_EQ(bus_init(&f->pio, "pio", &f->rcu), 0);
	CHECK_EQ(bus_init(&f->mmio, "mmio", &f->rcu), 0);
	CHECK_EQ(pci_host_init(&f->h, &f->pio, &f->mmio, &f->plat, &lay, &f->e), 0);
	return f;
}

static void fix_free(struct fix *f)
{
	pci_host_destroy(&f->h);
	bus_destroy(&f->mmio);
	bus_destroy(&f->pio);
	rcu_destroy(&f->rcu);
	free(f);
}

/* A guest write through the configuration write rule (no host needed). */
static void gw(struct root_port *p, unsigned int off, uint32_t v, unsigned int size)
{
	pci_cfg_write(&p->dev.cfg, off, v, size);
}

static uint32_t gr(struct root_port *p, unsigned int off, unsigned int size)
{
	return pci_cfg_read(&p->dev.cfg, off, size);
}

TEST(header)
{
	struct fake_plat fp;
	struct platform plat;
	struct root_port *p = calloc(1, sizeof(*p));

	fake_plat_init(&fp, &plat);
	CHECK_EQ(root_port_init(p, 3, &plat), 0);
	CHECK_EQ(gr(p, PCI_VENDOR_ID, 2), 0x1b36);
	CHECK_EQ(gr(p, PCI_DEVICE_ID, 2), 0x000c);
	CHECK_EQ(gr(p, PCI_REVISION_ID, 4) >> 8, 0x060400);
	CHECK_EQ(gr(p, PCI_HEADER_TYPE, 1), PCI_HEADER_TYPE_BRIDGE);
	CHECK_EQ(gr(p, PCI_INTERRUPT_PIN, 1), 0);
	CHECK(gr(p, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	/* Vendor, device and class are read-only. */
	gw(p, PCI_VENDOR_ID, 0xffffffff, 4);
	gw(p, PCI_REVISION_ID, 0xffffffff, 4);
	CHECK_EQ(gr(p, PCI_VENDOR_ID, 4), 0x000c1b36);
	CHECK_EQ(gr(p, PCI_REVISION_ID, 4), 0x06040000);
	/* Bridge registers are the core's: bus numbers writable. */
	gw(p, PCI_SECONDARY_BUS, 0x05, 1);
	CHECK_EQ(gr(p, PCI_SECONDARY_BUS, 1), 0x05);
	root_port_destroy(p);
	root_port_destroy(p); /* idempotent */
	free(p);
}

TEST(bad_port_number)
{
	struct fake_plat fp;
	struct platform plat;
	struct root_port *p = calloc(1, sizeof(*p));

	fake_plat_init(&fp, &plat);
	CHECK_EQ(root_port_init(p, 256, &plat), -EINVAL);
	root_port_destroy(p); /* safe after a failed init */
	CHECK_EQ(root_port_init(p, 255, &plat), 0);
	CHECK_EQ(pci_cfg_get32(&p->dev.cfg, p->exp + LNKCAP) >> 24, 255);
	CHECK_EQ(pci_cfg_get32(&p->dev.cfg, p->exp + SLTCAP) >> 19, 255);
	root_port_destroy(p);
	free(p);
}

TEST(capability_chain)
{
	struct fake_plat fp;
	struct platform plat;
	struct root_port *p = calloc(1, sizeof(*p));
	unsigned int exp, msi;

	fake_plat_init(&fp, &plat);
	CHECK_EQ(root_port_init(p, 1, &plat), 0);
	exp = gr(p, PCI_CAPABILITY_LIST, 1);
	CHECK_EQ(exp, 0x40);
	CHECK_EQ(exp, p->exp);
	CHECK_EQ(gr(p, exp, 1), PCI_CAP_ID_EXP);
	msi = gr(p, exp + 1, 1);
	CHECK(msi >= exp + 0x3c);
	CHECK_EQ(msi & 3, 0);
	CHECK_EQ(gr(p, msi, 1), PCI_CAP_ID_MSI);
	CHECK_EQ(gr(p, msi + 1, 1), 0); /* end of the list */
	CHECK_EQ(pci_cap_find(&p->dev.cfg, PCI_CAP_ID_EXP), exp);
	CHECK_EQ(pci_cap_find(&p->dev.cfg, PCI_CAP_ID_MSI), msi);
	CHECK(p->dev.msi == &p->msi);
	/* MSI: one vector (Multiple Message Capable 0), 64-bit. */
	CHECK_EQ((gr(p, msi + 2, 2) >> 1) & 7, 0);
	CHECK(gr(p, msi + 2, 2) & 0x80);
	/* No extended capabilities. */
	CHECK_EQ(gr(p, 0x100, 4), 0);
	root_port_destroy(p);
	free(p);
}

TEST(pcie_capability_values)
{
	struct fake_plat fp;
	struct platform plat;
	struct root_port *p = calloc(1, sizeof(*p));
	unsigned int x;
	uint32_t v;

	fake_plat_init(&fp, &plat);
	CHECK_EQ(root_port_init(p, 7, &plat), 0);
	x = p->exp;
	/* Version 2, Root Port, Slot Implemented, Interrupt Message Number 0. */
	CHECK_EQ(gr(p, x + CAPS, 2), 0x0142);
	v = gr(p, x + DEVCAP, 4);
	CHECK_EQ(v & 7, 1);                     /* 256-byte payload supported */
	CHECK(v & (1u << 15));                  /* role-based error reporting */
	CHECK_EQ(gr(p, x + DEVCTL, 2), 0x2810); /* MPS 128, MRRS 512, RO + no snoop */
	v = gr(p, x + LNKCAP, 4);
	CHECK_EQ(v & 0xf, 1);                   /* 2.5 GT/s */
	CHECK_EQ((v >> 4) & 0x3f, 1);           /* x1 */
	CHECK(v & (1u << 20));                  /* DLL Link Active Reporting Capable */
	CHECK_EQ((v >> 10) & 3, 0);             /* no ASPM */
	CHECK_EQ(v >> 24, 7);                   /* port number */
	CHECK_EQ(gr(p, x + LNKSTA, 2), 0x1011); /* 2.5 GT/s x1, slot clock, link down */
	v = gr(p, x + SLTCAP, 4);
	CHECK_EQ(v & 1, 0);                /* no attention button */
	CHECK(v & (1u << 1));              /* power controller */
	CHECK_EQ(v & (0x7u << 2), 0);      /* no MRL sensor, no indicators */
	CHECK_EQ(v & (1u << 5), 0);        /* not surprise */
	CHECK(v & (1u << 6));              /* hot-plug capable */
	CHECK(v & (1u << 18));             /* no command completed support */
	CHECK_EQ(v >> 19, 7);              /* physical slot number */
	CHECK_EQ(gr(p, x + SLTCTL, 2), 0); /* power on, events off */
	CHECK_EQ(gr(p, x + SLTSTA, 2), 0); /* empty */
	CHECK_EQ(gr(p, x + RTCAP, 2), 0);
	CHECK_EQ(gr(p, x + DEVCAP2, 4), 0);
	CHECK_EQ(gr(p, x + LNKCAP2, 4), 0x2); /* supported speeds: 2.5 GT/s */
	CHECK_EQ(gr(p, x + LNKCTL2, 2), 0x1); /* target 2.5 GT/s */
	CHECK_EQ(gr(p, x + SLTCAP2, 4), 0);
	root_port_destroy(p);
	free(p);
}

/* Write all-ones to a register and return what reads back (then restore zero through writes). */
static uint32_t ones(struct root_port *p, unsigned int off, unsigned int size)
{
	gw(p, off, 0xffffffff, size);
	return gr(p, off, size);
}

TEST(pcie_capability_masks)
{
	struct fake_plat fp;
	struct platform plat;
	struct root_port *p = calloc(1, sizeof(*p));
	unsigned int x;

	fake_plat_init(&fp, &plat);
	CHECK_EQ(root_port_init(p, 2, &plat), 0);
	x = p->exp;
	/* Read-only registers keep their values. */
	CHECK_EQ(ones(p, x + CAPS, 2), 0x0142);
	CHECK_EQ(ones(p, x + DEVCAP, 4), 0x8001);
	CHECK_EQ(ones(p, x + LNKCAP, 4), (2u << 24) | (1u << 22) | (1u << 20) | 0x11);
	CHECK_EQ(ones(p, x + SLTCAP, 4), (2u << 19) | (1u << 18) | (1u << 6) | (1u << 1));
	CHECK_EQ(ones(p, x + RTCAP, 2), 0);
	CHECK_EQ(ones(p, x + DEVCAP2, 4), 0);
	CHECK_EQ(ones(p, x + LNKCAP2, 4), 0x2);
	CHECK_EQ(ones(p, x + SLTCAP2, 4), 0);
	/* RW controls: only the implemented bits stick. */
	CHECK_EQ(ones(p, x + DEVCTL, 2), 0x78ff);
	gw(p, x + DEVCTL, 0, 2);
	CHECK_EQ(gr(p, x + DEVCTL, 2), 0);
	CHECK_EQ(ones(p, x + LNKCTL, 2), 0x00db); /* Retrain Link reads 0 */
	CHECK_EQ(ones(p, x + SLTCTL, 2), 0x142a); /* no CCIE: No Command Completed Support */
	gw(p, x + SLTCTL, 0x0400, 2);             /* power off, events off */
	CHECK_EQ(gr(p, x + SLTCTL, 2), 0x0400);
	CHECK_EQ(ones(p, x + RTCTL, 2), 0x000f);
	CHECK_EQ(ones(p, x + DEVCTL2, 2), 0);
	CHECK_EQ(ones(p, x + LNKCTL2, 2), 0x002f);
	CHECK_EQ(ones(p, x + SLTCTL2, 2), 0);
	/* Writing ones to the status registers changes nothing while no event is set. */
	CHECK_EQ(ones(p, x + DEVSTA, 2), 0);
	CHECK_EQ(ones(p, x + LNKSTA, 2), 0x1011);
	CHECK_EQ(ones(p, x + SLTSTA, 2), 0);
	CHECK_EQ(ones(p, x + RTSTA, 4), 0);
	root_port_destroy(p);
	free(p);
}

TEST(slot_status_w1c)
{
	struct fake_plat fp;
	struct platform plat;
	struct root_port *p = calloc(1, sizeof(*p));
	unsigned int x;

	fake_plat_init(&fp, &plat);
	CHECK_EQ(root_port_init(p, 1, &plat), 0);
	x = p->exp;
	root_port_set_presence(p, true);
	/* Events as the hot-plug code will raise them: PDC, CC, DLLSC, plus ABP/PFD/MRLSC. */
	pci_cfg_set16(&p->dev.cfg, x + SLTSTA, (uint16_t)(gr(p, x + SLTSTA, 2) | 0x011f));
	CHECK_EQ(gr(p, x + SLTSTA, 2), 0x015f);
	gw(p, x + SLTSTA, 0x0008, 2); /* clear Presence Detect Changed only */
	CHECK_EQ(gr(p, x + SLTSTA, 2), 0x0157);
	gw(p, x + SLTSTA, 0x0000, 2); /* writing 0 changes nothing */
	CHECK_EQ(gr(p, x + SLTSTA, 2), 0x0157);
	gw(p, x + SLTSTA, 0x0100, 2); /* Data Link Layer State Changed */
	CHECK_EQ(gr(p, x + SLTSTA, 2), 0x0057);
	gw(p, x + SLTSTA, 0xffff, 2); /* everything W1C goes; Presence Detect State stays */
	CHECK_EQ(gr(p, x + SLTSTA, 2), SLTSTA_PDS);
	/* Byte writes work too: the event bits of the high byte. */
	pci_cfg_set16(&p->dev.cfg, x + SLTSTA, 0x0140);
	gw(p, x + SLTSTA + 1, 0x01, 1);
	CHECK_EQ(gr(p, x + SLTSTA, 2), SLTSTA_PDS);
	/* Device Status errors, Link Status bandwidth bits and Root Status PME are W1C too. */
	pci_cfg_set16(&p->dev.cfg, x + DEVSTA, 0x000f);
	gw(p, x + DEVSTA, 0x0005, 2);
	CHECK_EQ(gr(p, x + DEVSTA, 2), 0x000a);
	pci_cfg_set16(&p->dev.cfg, x + LNKSTA, (uint16_t)(gr(p, x + LNKSTA, 2) | 0xc000));
	gw(p, x + LNKSTA, 0xffff, 2);
	CHECK_EQ(gr(p, x + LNKSTA, 2), 0x1011 | LNKSTA_DLLLA);
	pci_cfg_set32(&p->dev.cfg, x + RTSTA, 0x00030000);
	gw(p, x + RTSTA, 0xffffffff, 4);
	CHECK_EQ(gr(p, x + RTSTA, 4), 0x00020000); /* PME Pending is read-only */
	root_port_destroy(p);
	free(p);
}

TEST(presence_reflected)
{
	struct fake_plat fp;
	struct platform plat;
	struct root_port *p = calloc(1, sizeof(*p));
	unsigned int x;

	fake_plat_init(&fp, &plat);
	CHECK_EQ(root_port_init(p, 1, &plat), 0);
	x = p->exp;
	CHECK(!root_port_present(p));
	CHECK_EQ(gr(p, x + SLTSTA, 2) & SLTSTA_PDS, 0);
	CHECK_EQ(gr(p, x + LNKSTA, 2) & LNKSTA_DLLLA, 0);
	root_port_set_presence(p, true);
	CHECK(root_port_present(p));
	CHECK_EQ(gr(p, x + SLTSTA, 2) & SLTSTA_PDS, SLTSTA_PDS);
	CHECK_EQ(gr(p, x + LNKSTA, 2) & LNKSTA_DLLLA, LNKSTA_DLLLA);
	/* The guest cannot change either. */
	gw(p, x + SLTSTA, 0, 2);
	gw(p, x + LNKSTA, 0, 2);
	CHECK_EQ(gr(p, x + SLTSTA, 2), SLTSTA_PDS);
	CHECK_EQ(gr(p, x + LNKSTA, 2), 0x1011 | LNKSTA_DLLLA);
	/* No event bits are raised by a presence change (hot plug does that later). */
	root_port_set_presence(p, false);
	CHECK(!root_port_present(p));
	CHECK_EQ(gr(p, x + SLTSTA, 2), 0);
	CHECK_EQ(gr(p, x + LNKSTA, 2), 0x1011);
	root_port_destroy(p);
	free(p);
}

/* A minimal endpoint to put in a slot. */
static void endpoint_init(struct pci_dev *d)
{
	pci_dev_init(d, "endpoint", 0x1af4, 0x1041, 0x020000, 1, PCI_HEADER_TYPE_NORMAL, NULL,
	             NULL);
	CHECK_EQ(pci_dev_add_bar(d, 0, PCI_BAR_MEM32, false, 0x1000), 0);
}

TEST(enumerates_empty_and_populated)
{
	struct fix *f = fix_new();
	struct root_port *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct pci_dev *ep = calloc(1, sizeof(*ep));
	struct pci_host *h = &f->h;
	uint32_t mem, bar;
	unsigned int x;

	CHECK_EQ(root_port_init(a, 0, &f->plat), 0);
	CHECK_EQ(root_port_init(b, 1, &f->plat), 0);
	CHECK_EQ(pci_host_plug(h, &a->dev, NULL, PCI_DEVFN(1, 0), &f->e), 0);
	CHECK_EQ(pci_host_plug(h, &b->dev, NULL, PCI_DEVFN(2, 0), &f->e), 0);
	endpoint_init(ep);
	CHECK_EQ(pci_host_plug(h, ep, &b->dev, PCI_DEVFN(0, 0), &f->e), 0);
	root_port_set_presence(b, true); /* takes the host lock: must not deadlock */
	x = b->exp;

	/* Both ports are bridges on bus 0 with their own secondary buses. */
	CHECK_EQ(pci_host_cfg_read(h, 0, PCI_DEVFN(1, 0), PCI_VENDOR_ID, 4), 0x000c1b36);
	CHECK_EQ(pci_host_cfg_read(h, 0, PCI_DEVFN(1, 0), PCI_HEADER_TYPE, 1), 1);
	CHECK_EQ(pci_host_cfg_read(h, 0, PCI_DEVFN(1, 0), PCI_SECONDARY_BUS, 1), 1);
	CHECK_EQ(pci_host_cfg_read(h, 0, PCI_DEVFN(1, 0), PCI_SUBORDINATE_BUS, 1), 1);
	CHECK_EQ(pci_host_cfg_read(h, 0, PCI_DEVFN(2, 0), PCI_SECONDARY_BUS, 1), 2);
	/* The empty port's bus has nothing; the populated one has device 0 only. */
	CHECK_EQ(pci_host_cfg_read(h, 1, PCI_DEVFN(0, 0), PCI_VENDOR_ID, 4), 0xffffffff);
	CHECK_EQ(pci_host_cfg_read(h, 2, PCI_DEVFN(0, 0), PCI_VENDOR_ID, 4), 0x10411af4);
	CHECK_EQ(pci_host_cfg_read(h, 2, PCI_DEVFN(1, 0), PCI_VENDOR_ID, 4), 0xffffffff);
	CHECK_EQ(pci_host_cfg_read(h, 2, PCI_DEVFN(31, 0), PCI_VENDOR_ID, 4), 0xffffffff);
	/* Presence as the guest sees it. */
	CHECK_EQ(pci_host_cfg_read(h, 0, PCI_DEVFN(2, 0), x + SLTSTA, 2) & SLTSTA_PDS, SLTSTA_PDS);
	CHECK_EQ(pci_host_cfg_read(h, 0, PCI_DEVFN(2, 0), x + LNKSTA, 2) & LNKSTA_DLLLA,
	         LNKSTA_DLLLA);
	CHECK_EQ(pci_host_cfg_read(h, 0, PCI_DEVFN(1, 0), a->exp + SLTSTA, 2) & SLTSTA_PDS, 0);
	/* The endpoint's BAR lies inside its port's memory window. */
	mem = pci_host_cfg_read(h, 0, PCI_DEVFN(2, 0), PCI_MEMORY_BASE, 4);
	bar = pci_host_cfg_read(h, 2, PCI_DEVFN(0, 0), PCI_BAR0, 4) & ~0xfu;
	CHECK(bar >= (mem & 0xfff0) << 16);
	CHECK(bar + 0x1000 - 1 <= ((mem >> 16 & 0xfff0) << 16 | 0xfffff));
	/* Guest writes to the slot registers go through the host too. */
	pci_host_cfg_write(h, 0, PCI_DEVFN(2, 0), x + SLTCTL, 0x1028, 2);
	CHECK_EQ(pci_host_cfg_read(h, 0, PCI_DEVFN(2, 0), x + SLTCTL, 2), 0x1028);

	root_port_set_presence(b, false);
	CHECK_EQ(pci_host_cfg_read(h, 0, PCI_DEVFN(2, 0), x + SLTSTA, 2) & SLTSTA_PDS, 0);
	pci_host_unplug(h, &b->dev); /* takes the child with it */
	pci_host_unplug(h, &a->dev);
	root_port_destroy(a);
	root_port_destroy(b);
	fix_free(f);
	free(ep);
	free(a);
	free(b);
}

TEST(msi_vector_reaches_platform)
{
	struct fix *f = fix_new();
	struct root_port *p = calloc(1, sizeof(*p));
	unsigned int msi;

	CHECK_EQ(root_port_init(p, 0, &f->plat), 0);
	CHECK_EQ(pci_host_plug(&f->h, &p->dev, NULL, PCI_DEVFN(1, 0), &f->e), 0);
	msi = pci_cap_find(&p->dev.cfg, PCI_CAP_ID_MSI);
	CHECK(msi != 0);
	/* Program address/data and enable MSI as a guest would; vector 0 must deliver. */
	pci_host_cfg_write(&f->h, 0, PCI_DEVFN(1, 0), msi + 4, 0xfee00000, 4);
	pci_host_cfg_write(&f->h, 0, PCI_DEVFN(1, 0), msi + 8, 0, 4);
	pci_host_cfg_write(&f->h, 0, PCI_DEVFN(1, 0), msi + 12, 0x41, 2);
	pci_host_cfg_write(&f->h, 0, PCI_DEVFN(1, 0), msi + 2, 1, 2);
	CHECK(pci_msi_enabled(&p->msi));
	pci_msi_notify(&p->msi, 0);
	CHECK_EQ(f->fp.msi_live, 1);
	CHECK_EQ(fake_count(f->fp.msi[0].fd), 1);
	CHECK_EQ(f->fp.msi[0].data, 0x41);
	pci_host_unplug(&f->h, &p->dev);
	root_port_destroy(p);
	CHECK_EQ(f->fp.msi_live, 0);
	fix_free(f);
	free(p);
}

/* ---- hot plug: slot events, the interrupt rule, power control ------------------------------ */

#define PORT_DEVFN PCI_DEVFN(1, 0)

/* What power_changed reported. */
struct hprec {
	unsigned int calls;
	bool last_on;
	struct root_port *last_port;
};

static void rec_power(void *opaque, struct root_port *p, bool on)
{
	struct hprec *r = opaque;

	r->calls++;
	r->last_on = on;
	r->last_port = p;
}

static const struct root_port_hp_ops rec_ops = {.power_changed = rec_power};

/* A plugged port at 00:01.0 with recording hp ops and (optionally) MSI enabled. */
struct hp {
	struct fix *f;
	struct root_port *p;
	struct hprec rec;
	unsigned int msi; /* MSI capability offset */
};

/* Guest config accesses through the host (so the port's hook runs), absolute offsets. */
static void cw(struct hp *t, unsigned int off, uint32_t v, unsigned int size)
{
	pci_host_cfg_write(&t->f->h, 0, PORT_DEVFN, off, v, size);
}

static uint32_t cr(struct hp *t, unsigned int off, unsigned int size)
{
	return pci_host_cfg_read(&t->f->h, 0, PORT_DEVFN, off, size);
}

/* The same, at an offset inside the PCI Express capability. */
static void sw(struct hp *t, unsigned int reg, uint32_t v, unsigned int size)
{
	cw(t, t->p->exp + reg, v, size);
}

static uint32_t sr(struct hp *t, unsigned int reg, unsigned int size)
{
	return cr(t, t->p->exp + reg, size);
}

static void msi_enable(struct hp *t, bool on)
{
	cw(t, t->msi + 2, on ? 1 : 0, 2);
}

/* MSI messages the port sent since the last call (vector 0's irqfd counter). */
static uint64_t sent(struct hp *t)
{
	return fake_count(t->p->msi.fd[0]);
}

static struct hp *hp_new(bool msi_on)
{
	struct hp *t = calloc(1, sizeof(*t));

	if (!t)
		abort();
	t->f = fix_new();
	t->p = calloc(1, sizeof(*t->p));
	if (!t->p)
		abort();
	CHECK_EQ(root_port_init(t->p, 1, &t->f->plat), 0);
	CHECK_EQ(pci_host_plug(&t->f->h, &t->p->dev, NULL, PORT_DEVFN, &t->f->e), 0);
	root_port_set_hp_ops(t->p, &rec_ops, &t->rec);
	t->msi = pci_cap_find(&t->p->dev.cfg, PCI_CAP_ID_MSI);
	CHECK(t->msi != 0);
	cw(t, t->msi + 4, 0xfee00000, 4);
	cw(t, t->msi + 8, 0, 4);
	cw(t, t->msi + 12, 0x41, 2);
	if (msi_on)
		msi_enable(t, true);
	return t;
}

static void hp_free(struct hp *t)
{
	pci_host_unplug(&t->f->h, &t->p->dev);
	root_port_destroy(t->p);
	fix_free(t->f);
	free(t->p);
	free(t);
}

TEST(slot_events_w1c_each)
{
	static const uint16_t ev[] = {STA_ABP, STA_PFD, STA_MRLSC, STA_PDC, STA_CC, STA_DLLSC};
	struct hp *t = hp_new(true);
	struct pci_cfg *c = &t->p->dev.cfg;
	unsigned int x = t->p->exp, i;

	for (i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
		uint16_t e = ev[i];

		/* Word write of just this bit: it alone clears. */
		pci_cfg_set16(c, x + SLTSTA, STA_EVENTS | SLTSTA_PDS);
		sw(t, SLTSTA, e, 2);
		CHECK_EQ(sr(t, SLTSTA, 2), (STA_EVENTS & ~e) | SLTSTA_PDS);
		/* Byte write to the byte holding it: the same. */
		pci_cfg_set16(c, x + SLTSTA, STA_EVENTS | SLTSTA_PDS);
		if (e & 0xff)
			sw(t, SLTSTA, e, 1);
		else
			sw(t, SLTSTA + 1, (uint32_t)e >> 8, 1);
		CHECK_EQ(sr(t, SLTSTA, 2), (STA_EVENTS & ~e) | SLTSTA_PDS);
		/* Writing 0 clears nothing. */
		sw(t, SLTSTA, 0, 2);
		CHECK_EQ(sr(t, SLTSTA, 2), (STA_EVENTS & ~e) | SLTSTA_PDS);
	}
	/* Everything W1C goes at once; Presence Detect State stays. */
	pci_cfg_set16(c, x + SLTSTA, STA_EVENTS | SLTSTA_PDS);
	sw(t, SLTSTA, 0xffff, 2);
	CHECK_EQ(sr(t, SLTSTA, 2), SLTSTA_PDS);
	/* No interrupt along the way: Hot-Plug Interrupt Enable is clear. */
	CHECK_EQ(sent(t), 0);
	hp_free(t);
}

TEST(presence_and_link_read_only_to_guest)
{
	struct hp *t = hp_new(true);

	/* Empty slot: writing 1s does not set PDS or DLLLA. */
	sw(t, SLTSTA, 0xffff, 2);
	sw(t, LNKSTA, 0xffff, 2);
	CHECK_EQ(sr(t, SLTSTA, 2), 0);
	CHECK_EQ(sr(t, LNKSTA, 2), 0x1011);
	/* Occupied (hot add): neither word, byte nor dword writes clear them. */
	root_port_hot_add(t->p);
	sw(t, SLTSTA, 0xffff, 2); /* clears the events only */
	CHECK_EQ(sr(t, SLTSTA, 2), SLTSTA_PDS);
	sw(t, SLTSTA, 0, 1);
	sw(t, SLTCTL, 0, 4);
	CHECK_EQ(sr(t, SLTSTA, 2), SLTSTA_PDS);
	sw(t, LNKSTA, 0, 2);
	sw(t, LNKSTA + 1, 0, 1);
	sw(t, LNKCTL, 0xffff0000u, 4);
	CHECK_EQ(sr(t, LNKSTA, 2), 0x1011 | LNKSTA_DLLLA);
	hp_free(t);
}

TEST(hot_add_sets_bits_and_sends_one)
{
	struct hp *t = hp_new(true);

	sw(t, SLTCTL, CTL_HPIE | CTL_PDCE, 2);
	CHECK_EQ(sent(t), 0);
	CHECK(!root_port_present(t->p));
	root_port_hot_add(t->p);
	CHECK_EQ(sr(t, SLTSTA, 2), SLTSTA_PDS | STA_PDC | STA_DLLSC);
	CHECK_EQ(sr(t, LNKSTA, 2), 0x1011 | LNKSTA_DLLLA);
	CHECK(root_port_present(t->p));
	CHECK_EQ(sent(t), 1);
	CHECK(t->p->irq_level);
	CHECK_EQ(t->f->fp.msi[0].data, 0x41); /* vector 0's message */
	hp_free(t);

	/* Both enables set: still one message for the two events. */
	t = hp_new(true);
	sw(t, SLTCTL, CTL_HPIE | CTL_PDCE | CTL_DLLSCE, 2);
	root_port_hot_add(t->p);
	CHECK_EQ(sent(t), 1);
	hp_free(t);

	/* Only DLLSCE (as a guest that ignores presence would): one message. */
	t = hp_new(true);
	sw(t, SLTCTL, CTL_HPIE | CTL_DLLSCE, 2);
	root_port_hot_add(t->p);
	CHECK_EQ(sent(t), 1);
	hp_free(t);
}

TEST(no_msi_without_hpie_then_enable_sends_one)
{
	struct hp *t = hp_new(true);

	sw(t, SLTCTL, CTL_PDCE | CTL_DLLSCE, 2);
	root_port_hot_add(t->p);
	CHECK_EQ(sr(t, SLTSTA, 2), SLTSTA_PDS | STA_PDC | STA_DLLSC);
	CHECK_EQ(sent(t), 0);
	CHECK(!t->p->irq_level);
	/* Enabling HPIE with an enabled event pending sends one ... */
	sw(t, SLTCTL, CTL_HPIE | CTL_PDCE | CTL_DLLSCE, 2);
	CHECK_EQ(sent(t), 1);
	/* ... and rewriting the same value none. */
	sw(t, SLTCTL, CTL_HPIE | CTL_PDCE | CTL_DLLSCE, 2);
	CHECK_EQ(sent(t), 0);
	/* Dropping HPIE sends nothing; raising it again while pending sends one. */
	sw(t, SLTCTL, CTL_PDCE | CTL_DLLSCE, 2);
	CHECK_EQ(sent(t), 0);
	sw(t, SLTCTL, CTL_HPIE | CTL_PDCE, 1); /* byte write: the high byte (DLLSCE) kept */
	CHECK_EQ(sr(t, SLTCTL, 2), CTL_HPIE | CTL_PDCE | CTL_DLLSCE);
	CHECK_EQ(sent(t), 1);
	hp_free(t);

	/* HPIE alone does not interrupt; enabling an event's enable later does. */
	t = hp_new(true);
	sw(t, SLTCTL, CTL_HPIE, 2);
	root_port_hot_add(t->p);
	CHECK_EQ(sent(t), 0);
	sw(t, SLTCTL + 1, CTL_DLLSCE >> 8, 1); /* DLLSCE by a byte write to the high byte */
	CHECK_EQ(sr(t, SLTCTL, 2), CTL_HPIE | CTL_DLLSCE);
	CHECK_EQ(sent(t), 1);
	hp_free(t);
}

TEST(one_message_until_status_cleared)
{
	struct hp *t = hp_new(true);

	sw(t, SLTCTL, CTL_HPIE | CTL_PDCE | CTL_DLLSCE, 2);
	root_port_hot_add(t->p);
	CHECK_EQ(sent(t), 1);
	/* A second event while the first is uncleared: no message. */
	root_port_request_removal(t->p);
	CHECK_EQ(sr(t, SLTSTA, 2), STA_PDC | STA_DLLSC);
	CHECK_EQ(sent(t), 0);
	/* Clearing part of it sends nothing; an event now still sends nothing (DLLSC pending). */
	sw(t, SLTSTA, STA_PDC, 2);
	CHECK_EQ(sent(t), 0);
	root_port_hot_add(t->p);
	CHECK_EQ(sent(t), 0);
	CHECK(t->p->irq_level);
	/* Clearing all sends nothing, and the condition falls. */
	sw(t, SLTSTA, STA_PDC | STA_DLLSC, 2);
	CHECK_EQ(sr(t, SLTSTA, 2), SLTSTA_PDS);
	CHECK_EQ(sent(t), 0);
	CHECK(!t->p->irq_level);
	/* The next event sends one. */
	root_port_request_removal(t->p);
	CHECK_EQ(sent(t), 1);
	/* Clearing an event whose enable is off does not matter for the rule. */
	sw(t, SLTCTL, CTL_HPIE | CTL_DLLSCE, 2);
	sw(t, SLTSTA, STA_DLLSC, 2);
	CHECK_EQ(sr(t, SLTSTA, 2), STA_PDC);
	CHECK(!t->p->irq_level);
	root_port_hot_add(t->p);
	CHECK_EQ(sent(t), 1);
	hp_free(t);
}

TEST(request_removal_semantics)
{
	struct hp *t = hp_new(true);

	root_port_set_presence(t->p, true); /* present at boot: silent */
	CHECK_EQ(sr(t, SLTSTA, 2), SLTSTA_PDS);
	CHECK_EQ(sent(t), 0);
	sw(t, SLTCTL, CTL_HPIE | CTL_PDCE | CTL_DLLSCE, 2);
	CHECK_EQ(sent(t), 0);
	root_port_request_removal(t->p);
	CHECK_EQ(sr(t, SLTSTA, 2), STA_PDC | STA_DLLSC);
	CHECK_EQ(sr(t, LNKSTA, 2), 0x1011);
	CHECK(!root_port_present(t->p));
	CHECK_EQ(sent(t), 1);
	/* Power is the guest's: removal does not change it, and reports nothing. */
	CHECK(root_port_powered(t->p));
	CHECK_EQ(t->rec.calls, 0);
	/* After ember unplugs the device it records absence silently. */
	sw(t, SLTSTA, STA_EVENTS, 2);
	root_port_set_presence(t->p, false);
	CHECK_EQ(sr(t, SLTSTA, 2), 0);
	CHECK_EQ(sent(t), 0);
	hp_free(t);
}

TEST(msi_disabled_does_not_replay)
{
	struct hp *t = hp_new(false);

	sw(t, SLTCTL, CTL_HPIE | CTL_PDCE, 2);
	root_port_hot_add(t->p);
	CHECK(t->p->irq_level); /* the condition is tracked ... */
	CHECK_EQ(sent(t), 0);   /* ... but the message was dropped */
	msi_enable(t, true);
	CHECK_EQ(sent(t), 0); /* enabling MSI does not replay it */
	/* The guest clears the status; the next event goes out. */
	sw(t, SLTSTA, STA_PDC | STA_DLLSC, 2);
	CHECK_EQ(sent(t), 0);
	root_port_request_removal(t->p);
	CHECK_EQ(sent(t), 1);
	hp_free(t);
}

TEST(masked_vector_keeps_pending)
{
	struct hp *t = hp_new(true);

	cw(t, t->msi + 16, 1, 4); /* mask vector 0 */
	sw(t, SLTCTL, CTL_HPIE | CTL_PDCE | CTL_DLLSCE, 2);
	root_port_hot_add(t->p);
	CHECK_EQ(sent(t), 0);
	CHECK_EQ(cr(t, t->msi + 20, 4), 1); /* Pending */
	cw(t, t->msi + 16, 0, 4);
	CHECK_EQ(sent(t), 1);
	CHECK_EQ(cr(t, t->msi + 20, 4), 0);
	/*
	 * The rise inside the config hook (the guest sets HPIE) with the vector
	 * masked: the Pending bit is set under the host lock, no deadlock.
	 */
	sw(t, SLTSTA, STA_EVENTS, 2);
	sw(t, SLTCTL, CTL_PDCE | CTL_DLLSCE, 2);
	root_port_request_removal(t->p);
	cw(t, t->msi + 16, 1, 4);
	sw(t, SLTCTL, CTL_HPIE | CTL_PDCE | CTL_DLLSCE, 2);
	CHECK_EQ(sent(t), 0);
	CHECK_EQ(cr(t, t->msi + 20, 4), 1);
	cw(t, t->msi + 16, 0, 4);
	CHECK_EQ(sent(t), 1);
	hp_free(t);
}

TEST(power_changed_once_per_change)
{
	struct hp *t = hp_new(true);

	/* Reset: power on, nothing reported. */
	CHECK_EQ(sr(t, SLTCTL, 2) & CTL_PCC, 0);
	CHECK(root_port_powered(t->p));
	CHECK_EQ(t->rec.calls, 0);
	/* Word write: off. */
	sw(t, SLTCTL, CTL_PCC, 2);
	CHECK_EQ(t->rec.calls, 1);
	CHECK(!t->rec.last_on);
	CHECK(t->rec.last_port == t->p);
	CHECK(!root_port_powered(t->p));
	/* Writes that keep PCC report nothing. */
	sw(t, SLTCTL, CTL_PCC, 2);
	sw(t, SLTCTL, CTL_PCC | CTL_HPIE | CTL_PDCE | CTL_DLLSCE, 2);
	sw(t, SLTCTL, CTL_HPIE, 1); /* low byte only */
	sw(t, SLTCTL + 1, CTL_PCC >> 8, 1);
	sw(t, SLTSTA, 0xffff, 2);
	sw(t, SLTSTA + 1, 0xff, 1);
	sw(t, LNKCTL, 0, 2);
	sw(t, SLTCAP, 0, 4); /* the dword before */
	sw(t, RTCTL, 0, 4);  /* the dword after */
	CHECK_EQ(t->rec.calls, 1);
	/* Byte write to the high byte: on. */
	sw(t, SLTCTL + 1, 0, 1);
	CHECK_EQ(t->rec.calls, 2);
	CHECK(t->rec.last_on);
	CHECK(root_port_powered(t->p));
	/* Dword write at Slot Control (covering Slot Status): off, then kept, then on. */
	sw(t, SLTCTL, CTL_PCC | CTL_HPIE, 4);
	CHECK_EQ(t->rec.calls, 3);
	CHECK(!t->rec.last_on);
	CHECK(!root_port_powered(t->p));
	sw(t, SLTCTL, CTL_PCC | (uint32_t)STA_EVENTS << 16, 4);
	CHECK_EQ(t->rec.calls, 3);
	sw(t, SLTCTL, 0, 4);
	CHECK_EQ(t->rec.calls, 4);
	CHECK(t->rec.last_on);
	CHECK(root_port_powered(t->p));
	/* Without ops the bit still works and nothing is called. */
	root_port_set_hp_ops(t->p, NULL, NULL);
	sw(t, SLTCTL, CTL_PCC, 2);
	CHECK(!root_port_powered(t->p));
	CHECK_EQ(t->rec.calls, 4);
	/* Power changes never raise an interrupt (no event bits). */
	CHECK_EQ(sr(t, SLTSTA, 2), 0);
	CHECK_EQ(sent(t), 0);
	hp_free(t);
}

TEST(dword_slot_write_clears_status_and_keeps_rule)
{
	struct hp *t = hp_new(true);
	const uint32_t en = CTL_HPIE | CTL_PDCE | CTL_DLLSCE;

	sw(t, SLTCTL, en, 2);
	root_port_hot_add(t->p);
	CHECK_EQ(sent(t), 1);
	/* Slot Control rewritten and both events cleared in one dword: no message. */
	sw(t, SLTCTL, en | (uint32_t)(STA_PDC | STA_DLLSC) << 16, 4);
	CHECK_EQ(sr(t, SLTCTL, 2), en);
	CHECK_EQ(sr(t, SLTSTA, 2), SLTSTA_PDS);
	CHECK_EQ(sent(t), 0);
	CHECK(!t->p->irq_level);
	root_port_request_removal(t->p);
	CHECK_EQ(sent(t), 1);
	/* HPIE off and status cleared together: nothing; an event then: nothing. */
	sw(t, SLTCTL, CTL_PDCE | CTL_DLLSCE | (uint32_t)STA_EVENTS << 16, 4);
	CHECK_EQ(sr(t, SLTSTA, 2), 0);
	CHECK_EQ(sent(t), 0);
	root_port_hot_add(t->p);
	CHECK_EQ(sent(t), 0);
	/* HPIE on and every event cleared in the same write: the rule sees the result, no message.
	 */
	sw(t, SLTCTL, en | (uint32_t)STA_EVENTS << 16, 4);
	CHECK_EQ(sr(t, SLTSTA, 2), SLTSTA_PDS);
	CHECK_EQ(sent(t), 0);
	/* HPIE off again, a new event, then HPIE on while clearing only PDC: DLLSC remains, one. */
	sw(t, SLTCTL, CTL_PDCE | CTL_DLLSCE, 4);
	root_port_request_removal(t->p);
	CHECK_EQ(sent(t), 0);
	sw(t, SLTCTL, en | (uint32_t)STA_PDC << 16, 4);
	CHECK_EQ(sr(t, SLTSTA, 2), STA_DLLSC);
	CHECK_EQ(sent(t), 1);
	/* Clearing the rest: nothing; a dword write of zeros to the status half: nothing. */
	sw(t, SLTCTL, en | (uint32_t)STA_DLLSC << 16, 4);
	sw(t, SLTCTL, en, 4);
	CHECK_EQ(sr(t, SLTSTA, 2), 0);
	CHECK_EQ(sent(t), 0);
	hp_free(t);
}

TEST(events_on_an_unplugged_port)
{
	struct fake_plat fp;
	struct platform plat;
	struct root_port *p = calloc(1, sizeof(*p));
	struct hprec rec = {0};

	fake_plat_init(&fp, &plat);
	CHECK_EQ(root_port_init(p, 4, &plat), 0);
	root_port_set_hp_ops(p, &rec_ops, &rec); /* no host: no lock */
	CHECK(root_port_powered(p));
	pci_cfg_set16(&p->dev.cfg, p->exp + SLTCTL, CTL_HPIE | CTL_PDCE);
	root_port_hot_add(p);
	CHECK_EQ(gr(p, p->exp + SLTSTA, 2), SLTSTA_PDS | STA_PDC | STA_DLLSC);
	CHECK(p->irq_level);
	CHECK_EQ(fp.msi_allocs, 0); /* MSI never enabled: nothing sent */
	root_port_request_removal(p);
	CHECK_EQ(gr(p, p->exp + SLTSTA, 2), STA_PDC | STA_DLLSC);
	CHECK(!root_port_present(p));
	CHECK_EQ(rec.calls, 0);
	root_port_destroy(p);
	free(p);
}

int main(void)
{
	RUN(header);
	RUN(bad_port_number);
	RUN(capability_chain);
	RUN(pcie_capability_values);
	RUN(pcie_capability_masks);
	RUN(slot_status_w1c);
	RUN(presence_reflected);
	RUN(enumerates_empty_and_populated);
	RUN(msi_vector_reaches_platform);
	RUN(slot_events_w1c_each);
	RUN(presence_and_link_read_only_to_guest);
	RUN(hot_add_sets_bits_and_sends_one);
	RUN(no_msi_without_hpie_then_enable_sends_one);
	RUN(one_message_until_status_cleared);
	RUN(request_removal_semantics);
	RUN(msi_disabled_does_not_replay);
	RUN(masked_vector_keeps_pending);
	RUN(power_changed_once_per_change);
	RUN(dword_slot_write_clears_status_and_keeps_rule);
	RUN(events_on_an_unplugged_port);
	return test_summary();
}
