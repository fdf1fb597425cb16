/* pci.c - the test guest's PCI library: CF8/CFC and ECAM access, enumeration, BARs, test device. */
#include "pci.h"

/* ---- configuration access ---- */

/* CONFIG_ADDRESS: enable bit 31, bus 23:16, device 15:11, function 10:8, dword 7:2. */
static u32 cf8_address(u16 bdf, unsigned int off)
{
	return 0x80000000u | (u32)bdf << 8 | (off & 0xfc);
}

static u64 ecam_address(u16 bdf, unsigned int off)
{
	return PCI_ECAM_BASE + ((u64)bdf << 12) + (off & 0xfff);
}

u32 pci_cfg_read(enum pci_mech m, u16 bdf, unsigned int off, unsigned int size)
{
	u64 a;

	if (m == PCI_MECH_CF8) {
		if (off >= 0x100)
			return 0xffffffffu;
		outl(PCI_CF8, cf8_address(bdf, off));
		switch (size) {
		case 1:
			return inb(PCI_CFC + (off & 3));
		case 2:
			return inw(PCI_CFC + (off & 2));
		default:
			return inl(PCI_CFC);
		}
	}
	a = ecam_address(bdf, off);
	switch (size) {
	case 1:
		return mmio_read8(a);
	case 2:
		return mmio_read16(a);
	default:
		return mmio_read32(a);
	}
}

void pci_cfg_write(enum pci_mech m, u16 bdf, unsigned int off, u32 v, unsigned int size)
{
	u64 a;

	if (m == PCI_MECH_CF8) {
		if (off >= 0x100)
			return;
		outl(PCI_CF8, cf8_address(bdf, off));
		switch (size) {
		case 1:
			outb(PCI_CFC + (off & 3), (u8)v);
			break;
		case 2:
			outw(PCI_CFC + (off & 2), (u16)v);
			break;
		default:
			outl(PCI_CFC, v);
			break;
		}
		return;
	}
	a = ecam_address(bdf, off);
	switch (size) {
	case 1:
		mmio_write8(a, (u8)v);
		break;
	case 2:
		mmio_write16(a, (u16)v);
		break;
	default:
		mmio_write32(a, v);
		break;
	}
}

/* ---- enumeration ---- */

struct scan {
	enum pci_mech m;
	struct pci_topo *t;
	u8 seen[256 / 8]; /* buses scanned */
};

static void scan_bus(struct scan *s, unsigned int bus, unsigned int depth);

static void scan_fn(struct scan *s, u16 bdf, unsigned int depth)
{
	struct pci_topo *t = s->t;
	struct pci_fn *f;
	u32 id = pci_cfg_read(s->m, bdf, PCI_VENDOR_ID, 4);

	if ((id & 0xffff) == 0xffff)
		return;
	if (t->n == PCI_MAX_FNS) {
		t->overflow = true;
		return;
	}
	f = &t->fn[t->n++];
	memset(f, 0, sizeof(*f));
	f->bdf = bdf;
	f->vendor = (u16)id;
	f->device = (u16)(id >> 16);
	f->class = pci_cfg_read(s->m, bdf, PCI_REVISION, 4) >> 8;
	f->hdr = (u8)pci_cfg_read(s->m, bdf, PCI_HEADER_TYPE, 1);
	f->depth = (u8)depth;
	if ((f->hdr & 0x7f) != 1)
		return;
	f->secondary = (u8)pci_cfg_read(s->m, bdf, PCI_SECONDARY_BUS, 1);
	f->subordinate = (u8)pci_cfg_read(s->m, bdf, PCI_SUBORDINATE_BUS, 1);
	if (f->secondary == 0)
		return; /* not configured */
	scan_bus(s, f->secondary, depth + 1);
}

static void scan_bus(struct scan *s, unsigned int bus, unsigned int depth)
{
	unsigned int dev, fn, nfn;

	if (s->seen[bus / 8] & (1u << (bus % 8))) {
		s->t->loop = true;
		return;
	}
	s->seen[bus / 8] |= (u8)(1u << (bus % 8));
	for (dev = 0; dev < 32; dev++) {
		u16 bdf = BDF(bus, dev, 0);

		if ((pci_cfg_read(s->m, bdf, PCI_VENDOR_ID, 2) & 0xffff) == 0xffff)
			continue;
		nfn = pci_cfg_read(s->m, bdf, PCI_HEADER_TYPE, 1) & 0x80 ? 8 : 1;
		for (fn = 0; fn < nfn; fn++)
			scan_fn(s, BDF(bus, dev, fn), depth);
	}
}

void pci_enumerate(enum pci_mech m, struct pci_topo *t)
{
	struct scan s;

	memset(t, 0, sizeof(*t));
	memset(&s, 0, sizeof(s));
	s.m = m;
	s.t = t;
	scan_bus(&s, 0, 0);
}

const struct pci_fn *pci_topo_find(const struct pci_topo *t, u16 vendor, u16 device,
                                   unsigned int nth)
{
	unsigned int i;

	for (i = 0; i < t->n; i++)
		if (t->fn[i].vendor == vendor && t->fn[i].device == device && nth-- == 0)
			return &t->fn[i];
	return NULL;
}

const struct pci_fn *pci_topo_parent(const struct pci_topo *t, unsigned int bus)
{
	unsigned int i;

	for (i = 0; i < t->n; i++)
		if ((t->fn[i].hdr & 0x7f) == 1 && t->fn[i].secondary == bus)
			return &t->fn[i];
	return NULL;
}

unsigned int pci_cap_find(u16 bdf, u8 id)
{
	unsigned int off, n;

	if (!(pci_read16(bdf, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	off = pci_read8(bdf, PCI_CAP_PTR) & 0xfc;
	for (n = 0; off >= 0x40 && n < 48; n++) {
		if (pci_read8(bdf, off) == id)
			return off;
		off = pci_read8(bdf, off + 1) & 0xfc;
	}
	return 0;
}

unsigned int pci_cap_next(u16 bdf, u8 id, unsigned int prev)
{
	unsigned int off, n;
	bool after = prev == 0;

	if (!(pci_read16(bdf, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	off = pci_read8(bdf, PCI_CAP_PTR) & 0xfc;
	for (n = 0; off >= 0x40 && n < 48; n++) {
		if (after && pci_read8(bdf, off) == id)
			return off;
		if (off == prev)
			after = true;
		off = pci_read8(bdf, off + 1) & 0xfc;
	}
	return 0;
}

unsigned int pci_ext_cap_find(u16 bdf, u16 id)
{
	unsigned int off = 0x100, n;
	u32 hdr;

	for (n = 0; off >= 0x100 && n < 960; n++) {
		hdr = pci_read32(bdf, off);
		if (hdr == 0 || hdr == 0xffffffffu)
			return 0;
		if ((hdr & 0xffff) == id)
			return off;
		off = (hdr >> 20) & 0xffc;
	}
	return 0;
}

/* ---- BARs ---- */

void pci_bar_probe(u16 bdf, unsigned int i, struct pci_bar_info *out)
{
	unsigned int off = PCI_BAR0 + 4 * i;
	u32 orig = pci_read32(bdf, off), orig_hi = 0;
	u64 mask;

	memset(out, 0, sizeof(*out));
	pci_write32(bdf, off, 0xffffffffu);
	out->sized_lo = pci_read32(bdf, off);
	pci_write32(bdf, off, orig);
	if (out->sized_lo == 0)
		return;
	out->present = true;
	if (out->sized_lo & 1) {
		out->io = true;
		out->addr = orig & ~3u;
		mask = out->sized_lo & ~3u;
		if (!(mask >> 16))
			mask |= 0xffff0000u; /* a 16-bit decoder hardwires the upper half */
		out->size = (u32)(~mask + 1);
		return;
	}
	out->pref = out->sized_lo & 8;
	out->mem64 = ((out->sized_lo >> 1) & 3) == 2;
	out->addr = orig & ~0xfu;
	mask = out->sized_lo & ~0xfu;
	if (out->mem64 && i < 5) {
		orig_hi = pci_read32(bdf, off + 4);
		pci_write32(bdf, off + 4, 0xffffffffu);
		out->sized_hi = pci_read32(bdf, off + 4);
		pci_write32(bdf, off + 4, orig_hi);
		out->addr |= (u64)orig_hi << 32;
		mask |= (u64)out->sized_hi << 32;
		out->size = ~mask + 1;
	} else {
		out->size = (u32)(~(u32)mask + 1);
	}
}

u64 pci_bar_addr(u16 bdf, unsigned int i)
{
	u32 lo = pci_read32(bdf, PCI_BAR0 + 4 * i);

	if (lo & 1)
		return lo & ~3u;
	if (((lo >> 1) & 3) == 2 && i < 5)
		return (lo & ~0xfu) | (u64)pci_read32(bdf, PCI_BAR0 + 4 * (i + 1)) << 32;
	return lo & ~0xfu;
}

void pci_bridge_windows(u16 bdf, struct pci_windows *w)
{
	u8 iob = pci_read8(bdf, PCI_IO_BASE), iol = pci_read8(bdf, PCI_IO_LIMIT);
	u16 pb = pci_read16(bdf, PCI_PREF_BASE), pl = pci_read16(bdf, PCI_PREF_LIMIT);

	w->io_base = (u64)(iob & 0xf0) << 8;
	w->io_limit = (u64)(iol & 0xf0) << 8 | 0xfff;
	if ((iob & 0xf) == 1) { /* 32-bit I/O addressing */
		w->io_base |= (u64)pci_read16(bdf, PCI_IO_BASE_UPPER) << 16;
		w->io_limit |= (u64)pci_read16(bdf, PCI_IO_LIMIT_UPPER) << 16;
	}
	w->mem_base = (u64)(pci_read16(bdf, PCI_MEMORY_BASE) & 0xfff0) << 16;
	w->mem_limit = (u64)(pci_read16(bdf, PCI_MEMORY_LIMIT) & 0xfff0) << 16 | 0xfffff;
	w->pref_base = (u64)(pb & 0xfff0) << 16;
	w->pref_limit = (u64)(pl & 0xfff0) << 16 | 0xfffff;
	if ((pb & 0xf) == 1) { /* 64-bit prefetchable addressing */
		w->pref_base |= (u64)pci_read32(bdf, PCI_PREF_BASE_UPPER) << 32;
		w->pref_limit |= (u64)pci_read32(bdf, PCI_PREF_LIMIT_UPPER) << 32;
	}
}

/* ---- free address space ---- */

struct range {
	u64 lo, hi; /* inclusive */
};

#define MAX_RANGES 128

/* Append what function f decodes in memory space (sized with its decode off) and, for a
 * bridge, the windows it forwards, unless the bridge is `keep` (the window we search). */
static unsigned int busy_ranges(const struct pci_fn *f, u16 keep, struct range *r, unsigned int n)
{
	unsigned int i, nbars = (f->hdr & 0x7f) == 1 ? 2 : 6;
	u16 cmd = pci_read16(f->bdf, PCI_COMMAND);
	struct pci_bar_info b;

	if ((f->hdr & 0x7f) == 1 && f->bdf != keep && n + 2 <= MAX_RANGES) {
		struct pci_windows w;

		pci_bridge_windows(f->bdf, &w);
		if (w.mem_base <= w.mem_limit)
			r[n++] = (struct range){w.mem_base, w.mem_limit};
		if (w.pref_base <= w.pref_limit)
			r[n++] = (struct range){w.pref_base, w.pref_limit};
	}
	pci_write16(f->bdf, PCI_COMMAND, (u16)(cmd & ~(PCI_CMD_IO | PCI_CMD_MEMORY)));
	for (i = 0; i < nbars && n < MAX_RANGES; i++) {
		pci_bar_probe(f->bdf, i, &b);
		if (b.mem64)
			i++;
		if (b.present && !b.io && b.addr)
			r[n++] = (struct range){b.addr, b.addr + b.size - 1};
	}
	pci_write16(f->bdf, PCI_COMMAND, cmd);
	return n;
}

u64 pci_free_mem32(u16 bdf, u64 size)
{
	static struct pci_topo t;
	static struct range r[MAX_RANGES];
	const struct pci_fn *parent;
	u64 lo = PCI_MEM32_BASE, hi = PCI_MEM32_BASE + PCI_MEM32_SIZE, a;
	unsigned int i, n = 0;

	pci_enumerate(PCI_MECH_ECAM, &t);
	parent = pci_topo_parent(&t, BDF_BUS(bdf));
	if (parent) {
		struct pci_windows w;

		pci_bridge_windows(parent->bdf, &w);
		lo = w.mem_base;
		hi = w.mem_limit + 1;
	}
	for (i = 0; i < t.n; i++)
		n = busy_ranges(&t.fn[i], parent ? parent->bdf : 0xffff, r, n);
	for (a = (hi - size) & ~(size - 1); a >= lo && a < hi; a -= size) {
		bool busy = false;

		for (i = 0; i < n && !busy; i++)
			busy = a <= r[i].hi && a + size - 1 >= r[i].lo;
		if (!busy)
			return a;
	}
	return 0;
}

/* ---- the test device ---- */

bool testdev_open(struct testdev *td, bool master)
{
	struct pci_topo t;
	const struct pci_fn *f;
	u64 want = 0;

	memset(td, 0, sizeof(*td));
	pci_enumerate(PCI_MECH_ECAM, &t);
	f = pci_topo_find(&t, TESTDEV_VENDOR, TESTDEV_DEVICE, 0);
	if (!f) {
		if (cmdline_u64("test.pcitestdev", &want) && want)
			fail("no PCI test device (%04x:%04x) found, though test.pcitestdev=1",
			     TESTDEV_VENDOR, TESTDEV_DEVICE);
		else
			skip("no PCI test device: run ember with --pci-testdev");
		return false;
	}
	td->bdf = f->bdf;
	td->command = pci_read16(td->bdf, PCI_COMMAND);
	td->regs = pci_bar_addr(td->bdf, 0);
	td->io = (u16)pci_bar_addr(td->bdf, 1);
	td->buf = pci_bar_addr(td->bdf, 2);
	td->regs64 = pci_bar_addr(td->bdf, 4);
	if (!expect(td->regs && td->io && td->buf && td->regs64,
	            "test device %02x:%02x.%x has an unassigned BAR: 0x%llx 0x%x 0x%llx 0x%llx",
	            BDF_BUS(td->bdf), BDF_DEV(td->bdf), BDF_FN(td->bdf), td->regs, td->io, td->buf,
	            td->regs64))
		return false;
	if (!expect(map_high(td->buf) && map_high(td->regs64),
	            "cannot map the 64-bit BARs at 0x%llx and 0x%llx", td->buf, td->regs64))
		return false;
	pci_write16(
	    td->bdf, PCI_COMMAND,
	    (u16)(td->command | PCI_CMD_IO | PCI_CMD_MEMORY | (master ? PCI_CMD_MASTER : 0)));
	return true;
}

void testdev_close(struct testdev *td)
{
	pci_write16(td->bdf, PCI_COMMAND, td->command);
}

/* ---- demo ---- */

static const char *class_name(u32 class)
{
	switch (class >> 8) {
	case 0x0600:
		return "host bridge";
	case 0x0604:
		return "PCI bridge";
	case 0x00ff:
		return "unclassified";
	case 0x0100:
		return "SCSI controller";
	case 0x0200:
		return "Ethernet controller";
	default:
		return "device";
	}
}

void pci_print_tree(void)
{
	struct pci_topo t;
	unsigned int i, j;

	pci_enumerate(PCI_MECH_ECAM, &t);
	printf("PCI (ECAM at 0x%llx): %u function%s\n", PCI_ECAM_BASE, t.n, t.n == 1 ? "" : "s");
	for (i = 0; i < t.n; i++) {
		const struct pci_fn *f = &t.fn[i];

		printf("  ");
		for (j = 0; j < f->depth; j++)
			printf("  ");
		printf("%02x:%02x.%x %04x:%04x class %06x %s", BDF_BUS(f->bdf), BDF_DEV(f->bdf),
		       BDF_FN(f->bdf), f->vendor, f->device, f->class, class_name(f->class));
		if (f->vendor == TESTDEV_VENDOR && f->device == TESTDEV_DEVICE)
			printf(" (ember test device)");
		if ((f->hdr & 0x7f) == 1)
			printf(", buses %02x-%02x", f->secondary, f->subordinate);
		printf("\n");
	}
	if (t.overflow)
		printf("  ... more functions than the guest lists\n");
}
