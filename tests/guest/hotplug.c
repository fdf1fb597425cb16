/* hotplug.c - pciehp in the small: slot interrupt, events, power control, enumeration behind a
 * port. */
#include "hotplug.h"

#define ROOT_PORT_CLASS 0x060400

const char *hp_event_name(enum hp_event e)
{
	static const char *const names[] = {"none", "added", "removed"};

	return names[e];
}

u16 hp_slot_status(const struct hp_port *p)
{
	return pci_read16(p->bdf, p->exp + EXP_SLTSTA);
}

static void slot_ctl(const struct hp_port *p, u16 clear, u16 set)
{
	u16 c = pci_read16(p->bdf, p->exp + EXP_SLTCTL);

	pci_write16(p->bdf, p->exp + EXP_SLTCTL, (u16)((c & ~clear) | set));
}

bool hp_powered(const struct hp_port *p)
{
	return !(pci_read16(p->bdf, p->exp + EXP_SLTCTL) & SLTCTL_PCC);
}

void hp_power(struct hp_port *p, bool on)
{
	slot_ctl(p, SLTCTL_PCC, on ? 0 : SLTCTL_PCC);
}

bool hp_dev_present(u16 bdf)
{
	return pci_read16(bdf, PCI_VENDOR_ID) != 0xffff;
}

/* The root port on bus 0 whose Physical Slot Number is `num` (PCIe Base 6.0 §7.5.3.9). */
static bool find_port(struct hp_port *p, unsigned int num)
{
	unsigned int dev;

	for (dev = 0; dev < 32; dev++) {
		u16 bdf = BDF(0, dev, 0);
		unsigned int exp;

		if (pci_read16(bdf, PCI_VENDOR_ID) == 0xffff ||
		    pci_read32(bdf, PCI_REVISION) >> 8 != ROOT_PORT_CLASS)
			continue;
		exp = pci_cap_find(bdf, PCI_CAP_ID_EXP);
		if (!exp || SLTCAP_PSN(pci_read32(bdf, exp + EXP_SLTCAP)) != num)
			continue;
		p->bdf = bdf;
		p->exp = exp;
		return true;
	}
	return false;
}

bool hp_port_open(struct hp_port *p, unsigned int num, bool irq)
{
	u32 cap;
	u16 ctrl;

	memset(p, 0, sizeof(*p));
	p->num = num;
	if (!expect(num >= 1 && num <= HP_MAX_PORT && find_port(p, num),
	            "no root port with Physical Slot Number %u", num))
		return false;
	cap = pci_read32(p->bdf, p->exp + EXP_SLTCAP);
	if (!expect((cap & SLTCAP_HPC) && (cap & SLTCAP_PCP),
	            "port %u: Slot Capabilities 0x%08x: want Hot-Plug Capable and a Power "
	            "Controller",
	            num, cap))
		return false;
	p->secondary = pci_read8(p->bdf, PCI_SECONDARY_BUS);
	pci_bridge_windows(p->bdf, &p->win);
	/* A bridge forwards memory, I/O and its devices' bus-master traffic (MSI included). */
	pci_write16(
	    p->bdf, PCI_COMMAND,
	    (u16)(pci_read16(p->bdf, PCI_COMMAND) | PCI_CMD_IO | PCI_CMD_MEMORY | PCI_CMD_MASTER));

	/* Quiet first: no slot interrupt, no stale events (RW1C). */
	slot_ctl(p, SLTCTL_HPIE | SLTCTL_PDCE | SLTCTL_DLLSCE | SLTCTL_CCIE, 0);
	pci_write16(p->bdf, p->exp + EXP_SLTSTA, SLTSTA_EVENTS);

	p->msi = pci_cap_find(p->bdf, PCI_CAP_ID_MSI);
	if (irq) {
		if (!expect(p->msi, "port %u: no MSI capability for the slot interrupt", num))
			return false;
		p->vector = (u8)(VEC_HOTPLUG_BASE + num);
		irq_disable();
		lapic_enable();
		ctrl = pci_read16(p->bdf, p->msi + MSI_CTRL);
		/* PCI 3.0 §6.8.1: one message (MME 0); the port's events are its vector 0. */
		pci_write32(p->bdf, p->msi + MSI_ADDR_LO, MSI_ADDR(lapic_id()));
		if (ctrl & MSI_CTRL_64BIT) {
			pci_write32(p->bdf, p->msi + MSI_ADDR_HI, 0);
			pci_write16(p->bdf, p->msi + MSI_DATA, p->vector);
			if (ctrl & MSI_CTRL_PVM)
				pci_write32(p->bdf, p->msi + MSI_MASK, 0);
		} else {
			pci_write16(p->bdf, p->msi + 0x08, p->vector);
		}
		pci_write16(p->bdf, p->msi + MSI_CTRL, (u16)((ctrl & ~0x70u) | MSI_CTRL_ENABLE));
		p->irq_seen = irq_count[p->vector];
		slot_ctl(p, 0, SLTCTL_HPIE | SLTCTL_PDCE | SLTCTL_DLLSCE);
		irq_enable();
	}
	/* Power on: what pciehp does for a slot it manages (reset value, so usually no change). */
	hp_power(p, true);
	p->occupied = hp_slot_status(p) & SLTSTA_PDS;
	return true;
}

void hp_port_close(struct hp_port *p)
{
	if (!p->bdf)
		return;
	slot_ctl(p, SLTCTL_HPIE | SLTCTL_PDCE | SLTCTL_DLLSCE, 0);
	if (p->msi && p->vector)
		pci_write16(p->bdf, p->msi + MSI_CTRL,
		            (u16)(pci_read16(p->bdf, p->msi + MSI_CTRL) & ~MSI_CTRL_ENABLE));
	p->vector = 0;
}

/*
 * Read and clear the slot's event bits until none are left (an event that
 * lands between the read and the clear keeps the §6.7.3.4 condition true, so
 * it would send no new message: take it now).  Returns every bit seen.
 */
static u16 drain_status(struct hp_port *p)
{
	u16 all = 0, st, ev;
	unsigned int i;

	for (i = 0; i < 8; i++) {
		st = hp_slot_status(p);
		ev = st & SLTSTA_EVENTS;
		all |= st;
		if (!ev)
			break;
		pci_write16(p->bdf, p->exp + EXP_SLTSTA, ev);
	}
	return all;
}

/* What the slot's state says happened, given the driver's view; HP_NONE if no change. */
static enum hp_event classify(struct hp_port *p)
{
	bool present = hp_slot_status(p) & SLTSTA_PDS;

	if (present == p->occupied)
		return HP_NONE;
	p->occupied = present;
	return present ? HP_ADDED : HP_REMOVED;
}

enum hp_event hp_wait_event(struct hp_port *p, u64 ms, u16 *status, bool *by_irq)
{
	u64 per_ms = tsc_per_ms(), end = rdtsc() + ms * per_ms, next_poll = 0, seen_at = 0;
	u16 all = 0;
	enum hp_event e;

	if (p->vector)
		irq_enable();
	for (;;) {
		u64 now = rdtsc();
		bool irq = p->vector && irq_count[p->vector] != p->irq_seen;

		if (irq || (seen_at && (!p->vector || now - seen_at >= HP_IRQ_GRACE_MS * per_ms))) {
			if (irq)
				p->irq_seen = irq_count[p->vector];
			all |= drain_status(p);
			e = classify(p);
			if (e != HP_NONE) {
				p->events++;
				if (irq)
					p->by_irq++;
				else
					p->by_poll++;
				if (status)
					*status = all;
				if (by_irq)
					*by_irq = irq;
				return e;
			}
			if (irq && !(all & SLTSTA_EVENTS))
				p->spurious++;
			seen_at = 0;
		}
		if (now >= next_poll) {
			/* The fallback: look at Slot Status every 5 ms. */
			next_poll = now + 5 * per_ms;
			if (!seen_at && ((hp_slot_status(p) & SLTSTA_EVENTS) ||
			                 !!(hp_slot_status(p) & SLTSTA_PDS) != p->occupied))
				seen_at = now;
		}
		if (now >= end && !seen_at) {
			if (status)
				*status = all;
			if (by_irq)
				*by_irq = false;
			return HP_NONE;
		}
		cpu_relax();
	}
}

static bool inside(u64 a, u64 len, u64 lo, u64 hi)
{
	return lo <= hi && a >= lo && a + len - 1 <= hi && a + len > a;
}

/* Check BAR i of the new function against the port's windows; place it in them if it is not. */
static bool check_bar(struct hp_port *p, u16 bdf, unsigned int i, const struct pci_bar_info *b,
                      bool move)
{
	const struct pci_windows *w = &p->win;
	u64 a = b->addr, to;
	bool in_mem = inside(a, b->size, w->mem_base, w->mem_limit),
	     in_pref = inside(a, b->size, w->pref_base, w->pref_limit);

	if (b->io)
		return expect(
		    inside(a, b->size, w->io_base, w->io_limit),
		    "port %u: %02x:00.0 BAR%u (I/O 0x%llx, %llu bytes) outside the port's "
		    "I/O window 0x%llx-0x%llx",
		    p->num, p->secondary, i, a, b->size, w->io_base, w->io_limit);
	if (a && (in_mem || (b->pref && in_pref)) && !move)
		return true;
	if (a && !in_mem && !(b->pref && in_pref))
		fail("port %u: %02x:00.0 BAR%u at 0x%llx (%llu KiB) is outside the port's windows "
		     "(memory 0x%llx-0x%llx, prefetchable 0x%llx-0x%llx)",
		     p->num, p->secondary, i, a, b->size / KiB, w->mem_base, w->mem_limit,
		     w->pref_base, w->pref_limit);
	/* Assign (or move) it in the port's memory window, as firmware or Linux would. */
	to = pci_free_mem32(bdf, b->size < 4096 ? 4096 : b->size);
	if (!expect(to && inside(to, b->size, w->mem_base, w->mem_limit),
	            "port %u: no room for BAR%u (%llu KiB) in the memory window 0x%llx-0x%llx",
	            p->num, i, b->size / KiB, w->mem_base, w->mem_limit))
		return false;
	pci_write32(bdf, PCI_BAR0 + 4 * i, (u32)to);
	if (b->mem64)
		pci_write32(bdf, PCI_BAR0 + 4 * i + 4, 0);
	printf("# hotplug: port=%u BAR%u %s 0x%llx -> 0x%llx\n", p->num, i,
	       a ? "moved" : "assigned", a, to);
	return expect(pci_bar_addr(bdf, i) == to, "BAR%u reads 0x%llx after writing 0x%llx", i,
	              pci_bar_addr(bdf, i), to);
}

bool hp_enumerate(struct hp_port *p, u16 *bdf_out, bool move)
{
	u16 bdf = BDF(p->secondary, 0, 0), cmd;
	struct pci_bar_info b;
	unsigned int i;
	bool ok = true, moved = false;
	u32 id;

	if (!hp_powered(p))
		hp_power(p, true);
	/* §6.7.3.3: software waits for the link (DLL Link Active) before touching the device. */
	if (!expect(wait_until(pci_read16(p->bdf, p->exp + EXP_LNKSTA) & LNKSTA_DLLLA, 1000),
	            "port %u: Data Link Layer Link Active never set (Link Status 0x%04x)", p->num,
	            pci_read16(p->bdf, p->exp + EXP_LNKSTA)))
		return false;
	if (!expect(wait_until(hp_dev_present(bdf), 1000),
	            "port %u: link up but nothing answers at %02x:00.0", p->num, p->secondary))
		return false;
	id = pci_read32(bdf, PCI_VENDOR_ID);
	if (!expect((pci_read8(bdf, PCI_HEADER_TYPE) & 0x7f) == 0,
	            "port %u: %02x:00.0 (%04x:%04x) has header type 0x%02x, want 0", p->num,
	            p->secondary, id & 0xffff, id >> 16, pci_read8(bdf, PCI_HEADER_TYPE)))
		return false;
	for (i = 1; i < 32; i++)
		if (!expect(!hp_dev_present(BDF(p->secondary, i, 0)),
		            "port %u: %02x:%02x.0 answers: only device 0 is on a port's link",
		            p->num, p->secondary, i))
			return false;

	cmd = pci_read16(bdf, PCI_COMMAND);
	pci_write16(bdf, PCI_COMMAND, (u16)(cmd & ~(PCI_CMD_IO | PCI_CMD_MEMORY)));
	for (i = 0; i < 6 && ok; i++) {
		pci_bar_probe(bdf, i, &b);
		if (b.present) {
			ok = check_bar(p, bdf, i, &b, move && !moved && !b.io);
			moved |= move && !b.io;
		}
		if (b.mem64)
			i++;
	}
	pci_write16(bdf, PCI_COMMAND, cmd);
	printf("# hotplug: port=%u found %04x:%04x at %02x:00.0, BAR0 0x%llx (window 0x%llx-0x%llx)"
	       "\n",
	       p->num, id & 0xffff, id >> 16, p->secondary, pci_bar_addr(bdf, 0), p->win.mem_base,
	       p->win.mem_limit);
	*bdf_out = bdf;
	return ok;
}
