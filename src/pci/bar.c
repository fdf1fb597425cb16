/* bar.c - BARs: declaration, sizing through the write mask, address assignment, bus mapping. */
#include "pci/pci.h"

#include <errno.h>
#include <inttypes.h>

#include "pci/core.h"

/*
 * An I/O BAR may ask for up to 4 KiB: more never fits a bridge's I/O window
 * granule (PCI-to-PCI Bridge 1.2 §3.2.5.6), and PCI 3.0 §6.2.5.1 already
 * says devices "should not request more than 256 bytes" of I/O.
 */
#define BAR_IO_MIN      4ull
#define BAR_IO_MAX      0x1000ull
#define BAR_MEM_MIN     16ull        /* PCI 3.0 §6.2.5.1: at least 16 bytes */
#define BAR_MEM32_MAX   (1ull << 31) /* the register must still have an address bit */
#define BAR_MEM64_MAX   (1ull << 51) /* half of what an x86-64 CPU can address */
#define BAR_IO_SPACE    0x10000ull   /* x86 port space: 16 bits */
#define BAR_MEM32_SPACE (1ull << 32)

/* PCI 3.0 §6.2.5.1: flag bits of a BAR's lower dword. */
#define BAR_FLAG_IO       0x1u
#define BAR_FLAG_MEM64    0x4u
#define BAR_FLAG_PREFETCH 0x8u

#define BAR_ROM_MIN    0x800ull     /* PCI 3.0 §6.2.5.2: address bits 31:11 */
#define BAR_ROM_MAX    (1ull << 24) /* ember's limit: 16 MiB */
#define BAR_ROM_ENABLE 0x1u         /* Expansion ROM Enable (Address Decode Enable) */
#define BAR_ROM_ADDR   0xfffff800u

static inline unsigned int bar_reg(unsigned int bar)
{
	return bar == PCI_ROM_SLOT ? PCI_ROM_ADDRESS : PCI_BAR0 + 4 * bar;
}

static inline bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static const char *kind_name(const struct pci_bar *b)
{
	switch (b->kind) {
	case PCI_BAR_IO:
		return "I/O";
	case PCI_BAR_MEM32:
		return b->prefetchable ? "32-bit prefetchable memory" : "32-bit memory";
	case PCI_BAR_MEM64:
		return b->prefetchable ? "64-bit prefetchable memory" : "64-bit memory";
	case PCI_BAR_ROM:
		return "expansion ROM";
	default:
		return "unimplemented";
	}
}

/* ---- declaration ---------------------------------------------------------------------------- */

/*
 * PCI 3.0 §6.2.5.1: software sizes a BAR by writing all-ones and reading
 * back; the bits below the size are hardwired (the flag bits among them).
 * So the register's data holds the flags, and its write mask is ~(size-1)
 * over the address bits: the one write rule answers sizing.  A 64-bit BAR's
 * upper dword is writable above the size (fully writable for sizes up to
 * 4 GiB).  Undeclared BARs (and the expansion ROM BAR) keep a zero mask and
 * read 0, which is how software recognises "unimplemented".
 */
int pci_dev_add_bar(struct pci_dev *d, unsigned int bar, enum pci_bar_kind kind, bool prefetchable,
                    uint64_t size)
{
	unsigned int n = pci_dev_bar_count(d);
	uint64_t mask = ~(size - 1);
	uint32_t flags;

	if (d->plugged || bar >= n || !is_pow2(size))
		return -EINVAL;
	if (d->bars[bar].kind != PCI_BAR_NONE ||
	    (bar > 0 && d->bars[bar - 1].kind == PCI_BAR_MEM64))
		return -EINVAL;
	switch (kind) {
	case PCI_BAR_IO:
		if (prefetchable || size < BAR_IO_MIN || size > BAR_IO_MAX)
			return -EINVAL;
		flags = BAR_FLAG_IO; /* bit 1 reserved, 0 */
		break;
	case PCI_BAR_MEM32:
		if (size < BAR_MEM_MIN || size > BAR_MEM32_MAX)
			return -EINVAL;
		flags = prefetchable ? BAR_FLAG_PREFETCH : 0; /* type 00: anywhere in 32 bits */
		break;
	case PCI_BAR_MEM64:
		if (size < BAR_MEM_MIN || size > BAR_MEM64_MAX || bar + 1 >= n ||
		    d->bars[bar + 1].kind != PCI_BAR_NONE)
			return -EINVAL;
		flags = BAR_FLAG_MEM64 | (prefetchable ? BAR_FLAG_PREFETCH : 0); /* type 10 */
		break;
	default:
		return -EINVAL;
	}
	d->bars[bar] = (struct pci_bar){.kind = kind, .prefetchable = prefetchable, .size = size};
	pci_cfg_set32(&d->cfg, bar_reg(bar), flags);
	pci_cfg_set_wmask(&d->cfg, bar_reg(bar), 4,
	                  (uint32_t)mask & (kind == PCI_BAR_IO ? ~0x3u : ~0xfu));
	if (kind == PCI_BAR_MEM64) {
		pci_cfg_set32(&d->cfg, bar_reg(bar + 1), 0);
		pci_cfg_set_wmask(&d->cfg, bar_reg(bar + 1), 4, (uint32_t)(mask >> 32));
	}
	return 0;
}

int pci_dev_add_rom(struct pci_dev *d, uint64_t size)
{
	struct pci_bar *b = &d->bars[PCI_ROM_SLOT];

	if (d->plugged || pci_dev_is_bridge(d) || b->kind != PCI_BAR_NONE || !is_pow2(size) ||
	    size < BAR_ROM_MIN || size > BAR_ROM_MAX)
		return -EINVAL;
	*b = (struct pci_bar){.kind = PCI_BAR_ROM, .size = size};
	/*
	 * §6.2.5.2: bits 31:11 are the address (hardwired to 0 below the size, which is how
	 * software sizes it), bit 0 enables decode, bits 10:1 are reserved (0).
	 */
	pci_cfg_set32(&d->cfg, PCI_ROM_ADDRESS, 0);
	pci_cfg_set_wmask(&d->cfg, PCI_ROM_ADDRESS, 4,
	                  ((uint32_t) ~(size - 1) & BAR_ROM_ADDR) | BAR_ROM_ENABLE);
	return 0;
}

int pci_bar_add_region(struct pci_dev *d, unsigned int bar, uint64_t offset, uint64_t len,
                       const struct bus_ops *ops, void *opaque)
{
	struct pci_bar *b;

	if (bar > PCI_ROM_SLOT || d->plugged || !ops || len == 0)
		return -EINVAL;
	b = &d->bars[bar];
	if (b->kind == PCI_BAR_NONE || offset >= b->size || len > b->size - offset)
		return -EINVAL;
	for (unsigned int i = 0; i < b->nregions; i++) {
		const struct pci_bar_region *r = &b->regions[i];

		if (offset < r->offset + r->len && r->offset < offset + len)
			return -EINVAL;
	}
	if (b->nregions == PCI_BAR_MAX_REGIONS)
		return -ENOSPC;
	b->regions[b->nregions++] =
	    (struct pci_bar_region){.offset = offset, .len = len, .ops = ops, .opaque = opaque};
	return 0;
}

/* ---- assignment ----------------------------------------------------------------------------- */

int pci_window_alloc(struct pci_window *w, uint64_t size, uint64_t align, uint64_t *addr)
{
	uint64_t end = w->base + w->size, a;

	if (w->next > UINT64_MAX - (align - 1))
		return -ENOSPC;
	a = (w->next + align - 1) & ~(align - 1);
	if (a < w->base || a > end || size > end - a)
		return -ENOSPC;
	*addr = a;
	w->next = a + size;
	return 0;
}

static struct pci_window *bar_window(const struct pci_bar *b, const struct pci_bar_windows *w)
{
	switch (b->kind) {
	case PCI_BAR_IO:
		return w->io;
	case PCI_BAR_MEM32:
	case PCI_BAR_ROM:
		/* A 32-bit BAR, prefetchable or not, must stay below 4 GiB: the 32-bit window. */
		return w->mem32;
	case PCI_BAR_MEM64:
		return b->prefetchable ? w->mem64 : w->mem64_np;
	default:
		return NULL;
	}
}

/*
 * Largest first, each aligned to its size (PCI 3.0 §6.2.5.1: a BAR decodes
 * a naturally aligned power-of-two range), so no alignment padding is wasted
 * between BARs of one device.  Equal sizes keep BAR order.
 */
int pci_bar_assign(struct pci_dev *d, const struct pci_bar_windows *w, struct err *e)
{
	unsigned int order[PCI_BAR_COUNT + 1], n = 0, nbars = pci_dev_slot_count(d);

	for (unsigned int i = 0; i < nbars; i++) {
		unsigned int j = n++;

		if (d->bars[i].kind == PCI_BAR_NONE) {
			n--;
			continue;
		}
		while (j > 0 && d->bars[order[j - 1]].size < d->bars[i].size) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	for (unsigned int k = 0; k < n; k++) {
		unsigned int i = order[k];
		struct pci_bar *b = &d->bars[i];
		struct pci_window *win = bar_window(b, w);
		uint32_t flags = b->kind == PCI_BAR_ROM ? 0 /* decode off */
		                                        : pci_cfg_get32(&d->cfg, bar_reg(i)) &
		                                              (b->kind == PCI_BAR_IO ? 0x3u : 0xfu);
		uint64_t addr;

		if (!win || pci_window_alloc(win, b->size, b->size, &addr) < 0)
			return err_set(e, ENOSPC,
			               "pci: %s: no room for BAR%u (%s, 0x%" PRIx64
			               " bytes) in the window [0x%" PRIx64 ", 0x%" PRIx64 ")",
			               pci_dev_name(d), i, kind_name(b), b->size,
			               win ? win->base : 0, win ? win->base + win->size : 0);
		/* addr is aligned to the size, so its low bits are clear for the flags. */
		pci_cfg_set32(&d->cfg, bar_reg(i), (uint32_t)addr | flags);
		if (b->kind == PCI_BAR_MEM64)
			pci_cfg_set32(&d->cfg, bar_reg(i + 1), (uint32_t)(addr >> 32));
		b->hi_pending = false;
	}
	return 0;
}

/* ---- mapping -------------------------------------------------------------------------------- */

void pci_bar_note_write(struct pci_dev *d, unsigned int off, unsigned int size)
{
	unsigned int nbars = pci_dev_bar_count(d);

	for (unsigned int i = 0; i + 1 < nbars; i++) {
		struct pci_bar *b = &d->bars[i];
		unsigned int lo = bar_reg(i), hi = bar_reg(i + 1);

		if (b->kind != PCI_BAR_MEM64)
			continue;
		if (off < lo + 4 && lo < off + size)
			b->hi_pending = true;
		if (off < hi + 4 && hi < off + size)
			b->hi_pending = false;
	}
}

void pci_bar_note_command(struct pci_dev *d)
{
	for (unsigned int i = 0; i < PCI_BAR_COUNT; i++)
		d->bars[i].hi_pending = false;
}

/*
 * Where BAR i should be decoded now, if anywhere.  PCI 3.0 §6.2.2: the
 * I/O Space / Memory Space bits of COMMAND gate decode of every BAR of that
 * kind.  Beyond that ember only maps an address that can be real:
 *   - not 0 (the reset value: "not assigned" to every OS and firmware);
 *   - the whole BAR inside its address space: 16-bit I/O ports, the 32-bit
 *     space for a 32-bit BAR, below 2^52 (MAXPHYADDR) for a 64-bit BAR;
 *   - not the sizing pattern ~(size-1): a 32-bit BAR still holding it is
 *     mid-sizing (the pattern places it at the very top of 4 GiB, which is
 *     in range); a 64-bit BAR with the pattern in its upper dword is above
 *     2^52 anyway;
 *   - for a 64-bit BAR, not between a write of its lower dword and one of
 *     its upper dword (hi_pending), so a half-written address is never
 *     decoded.
 */
static bool bar_target(const struct pci_dev *d, unsigned int i, uint64_t *addr)
{
	const struct pci_bar *b = &d->bars[i];
	uint16_t cmd = pci_cfg_get16(&d->cfg, PCI_COMMAND);
	uint32_t lo = pci_cfg_get32(&d->cfg, bar_reg(i));
	uint64_t a, space;

	switch (b->kind) {
	case PCI_BAR_IO:
		if (!(cmd & PCI_COMMAND_IO))
			return false;
		a = lo & ~0x3u;
		space = BAR_IO_SPACE;
		break;
	case PCI_BAR_MEM32:
		if (!(cmd & PCI_COMMAND_MEMORY))
			return false;
		a = lo & ~0xfu;
		if (a == (~(b->size - 1) & 0xfffffff0u))
			return false;
		space = BAR_MEM32_SPACE;
		break;
	case PCI_BAR_ROM:
		/* §6.2.5.2: decoded only with both Memory Space and the ROM's own enable bit. */
		if (!(cmd & PCI_COMMAND_MEMORY) || !(lo & BAR_ROM_ENABLE))
			return false;
		a = lo & BAR_ROM_ADDR;
		if (a == (~(b->size - 1) & BAR_ROM_ADDR))
			return false;
		space = BAR_MEM32_SPACE;
		break;
	case PCI_BAR_MEM64:
		if (!(cmd & PCI_COMMAND_MEMORY) || b->hi_pending)
			return false;
		a = (lo & ~0xfull) | (uint64_t)pci_cfg_get32(&d->cfg, bar_reg(i + 1)) << 32;
		space = PCI_BAR_ADDR_LIMIT;
		break;
	default:
		return false;
	}
	a &= ~(b->size - 1);
	if (a == 0 || b->size > space || a > space - b->size)
		return false;
	*addr = a;
	return true;
}

static struct bus *bar_bus(const struct pci_dev *d, const struct pci_bar *b)
{
	return b->kind == PCI_BAR_IO ? d->host->pio : d->host->mmio;
}

static void bar_notify(struct pci_dev *d, unsigned int i, uint64_t addr, bool mapped)
{
	if (d->ops && d->ops->bar_map)
		d->ops->bar_map(d, i, addr, mapped);
}

/*
 * Take every region off the bus.  bus_unregister_nowait(): the caller may be
 * a vCPU inside a config handler and the device stays alive (unplug waits
 * for a grace period itself); a NULL reader only delays freeing the old
 * table until this vCPU leaves its read section.  A region that cannot be
 * removed (-ENOMEM) stays marked on the bus and the BAR stays "mapped", so
 * the next update tries again and unplug still finds it.
 */
static void bar_unmap(struct pci_dev *d, unsigned int i)
{
	struct pci_bar *b = &d->bars[i];
	struct bus *bus = bar_bus(d, b);
	bool left = false;

	for (unsigned int k = 0; k < b->nregions; k++) {
		struct pci_bar_region *r = &b->regions[k];
		int rc;

		if (!r->on_bus)
			continue;
		rc = bus_unregister_nowait(bus, b->mapped_addr + r->offset, NULL);
		if (rc == 0 || rc == -ENOENT) {
			r->on_bus = false;
		} else {
			left = true;
			log_error("pci: %s: cannot unmap BAR%u region at 0x%" PRIx64 ": error %d",
			          pci_dev_name(d), i, b->mapped_addr + r->offset, rc);
		}
	}
	b->mapped = left;
}

/* Register every region at addr; all or nothing (rolls back on failure, message in e). */
static int bar_map(struct pci_dev *d, unsigned int i, uint64_t addr, struct err *e)
{
	struct pci_bar *b = &d->bars[i];
	struct bus *bus = bar_bus(d, b);
	int rc = 0;
	unsigned int k;

	for (k = 0; k < b->nregions; k++) {
		struct pci_bar_region *r = &b->regions[k];

		rc = bus_register(bus, addr + r->offset, r->len, r->ops, r->opaque, e);
		if (rc < 0)
			break;
		r->on_bus = true;
	}
	b->mapped_addr = addr;
	b->mapped = true;
	if (rc == 0)
		return 0;
	bar_unmap(d, i); /* the ones registered so far */
	return rc;
}

/*
 * Move every region from mapped_addr to addr with bus_move() (no instant at
 * which the BAR is absent or present twice).  Old and new places of one BAR
 * never overlap (both are aligned to the BAR's size), so only another
 * device's range can get in the way: then the moved regions go back and the
 * caller falls back to unmap + map.  A region that cannot go back is taken
 * off the bus so the BAR's state stays "regions on_bus are at mapped_addr".
 */
static int bar_move(struct pci_dev *d, unsigned int i, uint64_t addr)
{
	struct pci_bar *b = &d->bars[i];
	struct bus *bus = bar_bus(d, b);
	unsigned int k;
	int rc = 0;

	for (k = 0; k < b->nregions; k++) {
		const struct pci_bar_region *r = &b->regions[k];

		if (!r->on_bus)
			continue;
		rc = bus_move(bus, b->mapped_addr + r->offset, addr + r->offset, NULL);
		if (rc < 0)
			break;
	}
	if (rc == 0) {
		b->mapped_addr = addr;
		return 0;
	}
	while (k-- > 0) {
		struct pci_bar_region *r = &b->regions[k];

		if (!r->on_bus)
			continue;
		if (bus_move(bus, addr + r->offset, b->mapped_addr + r->offset, NULL) < 0 &&
		    bus_unregister_nowait(bus, addr + r->offset, NULL) == 0)
			r->on_bus = false;
	}
	return rc;
}

static void bar_warn(struct pci_dev *d, unsigned int i, uint64_t addr, const struct err *e)
{
	log_guest(&d->host->rl, LOG_WARN, "pci: %s: BAR%u (%s) at 0x%" PRIx64 " left unmapped: %s",
	          pci_dev_name(d), i, kind_name(&d->bars[i]), addr,
	          e->msg[0] ? e->msg : "cannot register it");
}

/*
 * One BAR: from its current state to (want, addr).  Every change is reported
 * to ops->bar_map; a move is reported as unmapped at the old address, then
 * mapped at the new one.  If the new place overlaps another range the BAR
 * ends up unmapped (nothing else on the bus is touched) and the guest is
 * warned.  Returns true if ranges left their old place.
 */
static bool bar_apply(struct pci_dev *d, unsigned int i, bool want, uint64_t addr, bool quiet)
{
	struct pci_bar *b = &d->bars[i];
	uint64_t old = b->mapped_addr;
	struct err e = {0};

	if (b->mapped) {
		if (want && old == addr)
			return false;
		if (want && bar_move(d, i, addr) == 0) {
			bar_notify(d, i, old, false);
			bar_notify(d, i, addr, true);
			return true;
		}
		bar_unmap(d, i);
		if (b->mapped)
			return true; /* -ENOMEM, logged; retried on the next update */
		bar_notify(d, i, old, false);
		if (!want)
			return true;
		if (bar_map(d, i, addr, &e) == 0)
			bar_notify(d, i, addr, true);
		else if (!quiet)
			bar_warn(d, i, addr, &e);
		return true;
	}
	if (!want)
		return false;
	if (bar_map(d, i, addr, &e) == 0)
		bar_notify(d, i, addr, true);
	else if (!quiet)
		bar_warn(d, i, addr, &e);
	return false;
}

bool pci_bar_update(struct pci_dev *d, bool quiet)
{
	unsigned int nbars = pci_dev_slot_count(d);
	bool freed = false;

	if (!d->plugged || !d->host)
		return false;
	for (unsigned int i = 0; i < nbars; i++) {
		uint64_t addr = 0;
		bool want;

		if (d->bars[i].kind == PCI_BAR_NONE)
			continue;
		want = bar_target(d, i, &addr);
		freed |= bar_apply(d, i, want, addr, quiet);
	}
	return freed;
}

void pci_bar_unmap_all(struct pci_dev *d)
{
	if (!d->host)
		return;
	for (unsigned int i = 0; i < pci_dev_slot_count(d); i++)
		bar_apply(d, i, false, 0, true);
}
