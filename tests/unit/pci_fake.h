/* pci_fake.h - PCI unit-test fixtures: real buses and RCU, a host, recording devices, INTx/MSI
 * stubs. */
#ifndef EMBER_TEST_PCI_FAKE_H
#define EMBER_TEST_PCI_FAKE_H

/*
 * The PCI core's tests link cfg.c, host.c and bar.c with the real bus and
 * RCU, and replace the modules the core calls out to (intx.c, msi.c,
 * msix.c) with the recording stubs below, so they test the core alone.
 * Stubs record into the test device (`struct tdev`, reached through the
 * function's opaque pointer): no global state.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "boot/layout.h"
#include "bus/bus.h"
#include "pci/intx.h"
#include "pci/msi.h"
#include "pci/msix.h"
#include "pci/pci.h"

/* One recorded BAR region: reads return id << 16 | offset. */
struct thit {
	uint32_t id;
	unsigned int reads, writes;
	uint64_t last_off, last_val;
};

/* A test function: the PCI function plus everything the core and the stubs tell it. */
struct tdev {
	struct pci_dev pci;
	struct thit hit[PCI_BAR_COUNT + 1][2]; /* two regions per BAR at most in these tests */
	/* ops->bar_map calls, in order (last 16), and the current state per BAR. */
	unsigned int nmap;
	struct tmap {
		unsigned int bar;
		uint64_t addr;
		bool mapped;
	} maps[16];
	bool bar_on[PCI_BAR_COUNT + 1]; /* + the expansion ROM (PCI_ROM_SLOT) */
	uint64_t bar_at[PCI_BAR_COUNT + 1];
	/* ops->cfg_write calls. */
	unsigned int cfg_writes;
	unsigned int last_cfg_off;
	/* Stubs. */
	unsigned int intx_plugs, intx_unplugs, intx_cmd;
	uint32_t intx_gsi;
	int intx_fail; /* pci_intx_plug returns this when non-zero */
	unsigned int msix_writes, msi_writes;
	unsigned int last_cap_write_off;
};

static inline struct tdev *tdev_of(struct pci_dev *d)
{
	return d ? (struct tdev *)d->opaque : NULL;
}

/* ---- stubs for intx.c, msi.c, msix.c -------------------------------------------------------- */

int pci_intx_plug(struct pci_dev *d, uint32_t gsi)
{
	struct tdev *t = tdev_of(d);

	if (t && t->intx_fail)
		return t->intx_fail;
	if (t) {
		t->intx_plugs++;
		t->intx_gsi = gsi;
	}
	d->intx.gsi = gsi;
	d->intx.active = true;
	pci_cfg_set8(&d->cfg, PCI_INTERRUPT_LINE, (uint8_t)gsi);
	return 0;
}

void pci_intx_unplug(struct pci_dev *d)
{
	struct tdev *t = tdev_of(d);

	if (t && d->intx.active)
		t->intx_unplugs++;
	d->intx.active = false;
}

void pci_intx_command_changed(struct pci_dev *d)
{
	struct tdev *t = tdev_of(d);

	if (t)
		t->intx_cmd++;
}

void pci_msix_cfg_write(struct pci_msix *m, unsigned int off, uint32_t val, unsigned int size)
{
	struct tdev *t = tdev_of(m->dev);

	(void)val;
	(void)size;
	if (t) {
		t->msix_writes++;
		t->last_cap_write_off = off;
	}
}

void pci_msi_cfg_write(struct pci_msi *m, unsigned int off, uint32_t val, unsigned int size)
{
	struct tdev *t = tdev_of(m->dev);

	(void)val;
	(void)size;
	if (t) {
		t->msi_writes++;
		t->last_cap_write_off = off;
	}
}

/* ---- the test device ------------------------------------------------------------------------ */

static inline uint64_t thit_read(void *opaque, uint64_t off, unsigned int size)
{
	struct thit *h = opaque;

	(void)size;
	__atomic_add_fetch(&h->reads, 1, __ATOMIC_RELAXED); /* may run on several threads */
	h->last_off = off;
	return (uint64_t)h->id << 16 | (off & 0xffff);
}

static inline void thit_write(void *opaque, uint64_t off, uint64_t val, unsigned int size)
{
	struct thit *h = opaque;

	(void)size;
	h->writes++;
	h->last_off = off;
	h->last_val = val;
}

static const struct bus_ops thit_ops = {.read = thit_read, .write = thit_write};

static inline void tdev_bar_map(struct pci_dev *d, unsigned int bar, uint64_t addr, bool mapped)
{
	struct tdev *t = tdev_of(d);

	t->maps[t->nmap % 16] = (struct tmap){bar, addr, mapped};
	t->nmap++;
	t->bar_on[bar] = mapped;
	t->bar_at[bar] = addr;
}

static inline void tdev_cfg_write(struct pci_dev *d, unsigned int off, uint32_t val,
                                  unsigned int size)
{
	struct tdev *t = tdev_of(d);

	(void)val;
	(void)size;
	t->cfg_writes++;
	t->last_cfg_off = off;
}

static const struct pci_dev_ops tdev_ops = {.bar_map = tdev_bar_map, .cfg_write = tdev_cfg_write};

/* A type 0 (or 1) function with vendor 0x1af4, device 0x1000 + id, class 0xff0000 (misc). */
static inline void tdev_init(struct tdev *t, const char *name, uint32_t id, uint8_t header_type)
{
	memset(t, 0, sizeof(*t));
	pci_dev_init(&t->pci, name, 0x1af4, (uint16_t)(0x1000 + id),
	             header_type == PCI_HEADER_TYPE_BRIDGE ? 0x060400 : 0xff0000, 1, header_type,
	             &tdev_ops, t);
	for (unsigned int b = 0; b <= PCI_ROM_SLOT; b++)
		for (unsigned int r = 0; r < 2; r++)
			t->hit[b][r].id = id << 8 | b << 4 | r;
}

/* Declare a BAR with one region covering it all (hit[bar][0]). */
static inline int tdev_bar(struct tdev *t, unsigned int bar, enum pci_bar_kind kind, bool pf,
                           uint64_t size)
{
	int rc = pci_dev_add_bar(&t->pci, bar, kind, pf, size);

	if (rc < 0)
		return rc;
	return pci_bar_add_region(&t->pci, bar, 0, size, &thit_ops, &t->hit[bar][0]);
}

/* ---- the fixture ---------------------------------------------------------------------------- */

struct fx {
	struct rcu rcu;
	struct bus pio, mmio;
	struct rcu_reader *rd;
	struct pci_host h;
	struct pci_host_layout lay;
	struct err e;
};

/* ember's layout (boot/layout.h), the 64-bit window at 64 GiB. */
#define FX_ECAM      PCI_ECAM_GPA
#define FX_IO        PCI_IO_WIN_BASE
#define FX_MEM32     PCI_MEM32_GPA
#define FX_MEM64     0x1000000000ull
#define FX_PORT_IO   PCI_PORT_IO_SIZE
#define FX_PORT_MEM  PCI_PORT_MEM_SIZE
#define FX_PORT_PREF PCI_PORT_PREF_SIZE
#define FX_INTX_GSI  PCI_INTX_GSI_BASE

static inline void fx_layout(struct pci_host_layout *lay)
{
	*lay = (struct pci_host_layout){
	    .ecam_base = FX_ECAM,
	    .ecam_buses = 256,
	    .io_base = FX_IO,
	    .io_size = 0xf000,
	    .mem32_base = FX_MEM32,
	    .mem32_size = 0x20000000,
	    .mem64_base = FX_MEM64,
	    .mem64_size = 0x1000000000ull,
	    .port_io_size = FX_PORT_IO,
	    .port_mem_size = FX_PORT_MEM,
	    .port_pref_size = FX_PORT_PREF,
	    .intx_gsi_base = FX_INTX_GSI,
	};
}

/* Buses, reader and (if lay is given, else the default layout) the host.  Returns host init's rc.
 */
static inline int fx_init_lay(struct fx *f, const struct pci_host_layout *lay)
{
	memset(f, 0, sizeof(*f));
	if (rcu_init(&f->rcu) || bus_init(&f->pio, "pio", &f->rcu) ||
	    bus_init(&f->mmio, "mmio", &f->rcu))
		return -ENOMEM;
	f->rd = rcu_reader_register(&f->rcu);
	if (lay)
		f->lay = *lay;
	else
		fx_layout(&f->lay);
	return pci_host_init(&f->h, &f->pio, &f->mmio, NULL, &f->lay, &f->e);
}

static inline int fx_init(struct fx *f)
{
	return fx_init_lay(f, NULL);
}

static inline void fx_fini(struct fx *f)
{
	pci_host_destroy(&f->h);
	rcu_reader_unregister(&f->rcu, f->rd);
	bus_destroy(&f->mmio);
	bus_destroy(&f->pio);
	rcu_destroy(&f->rcu);
}

/* Guest-side accessors through the buses, as a vCPU would do them. */
static inline uint64_t fx_pio_rd(struct fx *f, uint64_t port, unsigned int size)
{
	uint64_t v = 0;

	bus_read(&f->pio, f->rd, port, size, &v);
	return v;
}

static inline void fx_pio_wr(struct fx *f, uint64_t port, unsigned int size, uint64_t v)
{
	bus_write(&f->pio, f->rd, port, size, v);
}

static inline uint64_t fx_mmio_rd(struct fx *f, uint64_t addr, unsigned int size)
{
	uint64_t v = 0;

	bus_read(&f->mmio, f->rd, addr, size, &v);
	return v;
}

static inline void fx_mmio_wr(struct fx *f, uint64_t addr, unsigned int size, uint64_t v)
{
	bus_write(&f->mmio, f->rd, addr, size, v);
}

/* True when some range claims addr on the bus. */
static inline bool fx_claimed(struct fx *f, struct bus *b, uint64_t addr)
{
	struct bus_range r;

	return bus_find(b, f->rd, addr, &r);
}

static inline uint64_t fx_ecam(const struct fx *f, unsigned int bus, unsigned int devfn,
                               unsigned int reg)
{
	return f->lay.ecam_base + ((uint64_t)bus << 20 | (uint64_t)devfn << 12 | reg);
}

/* Config access on bus 0 (or any bus) through the host's dispatch. */
static inline uint32_t fx_rd(struct fx *f, unsigned int bus, unsigned int devfn, unsigned int off,
                             unsigned int size)
{
	return pci_host_cfg_read(&f->h, (uint8_t)bus, (uint8_t)devfn, off, size);
}

static inline void fx_wr(struct fx *f, unsigned int bus, unsigned int devfn, unsigned int off,
                         uint32_t v, unsigned int size)
{
	pci_host_cfg_write(&f->h, (uint8_t)bus, (uint8_t)devfn, off, v, size);
}

#endif
