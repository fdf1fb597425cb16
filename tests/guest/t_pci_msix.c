/* t_pci_msix.c - MSI-X on the test device: 8 vectors each delivered once, vector and function mask.
 */
#include "pci.h"

#define SETTLE_US 5000 /* how long to watch for an interrupt that should not come */

struct msix {
	struct testdev td;
	unsigned int cap;
	u64 table, pba;
};

static u64 entry(const struct msix *m, unsigned int v)
{
	return m->table + (u64)v * MSIX_ENTRY_SIZE;
}

static void set_ctrl(const struct msix *m, u16 bits)
{
	u16 c = pci_read16(m->td.bdf, m->cap + MSIX_CTRL);

	c = (u16)((c & ~(MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL)) | bits);
	pci_write16(m->td.bdf, m->cap + MSIX_CTRL, c);
}

static void vec_mask(const struct msix *m, unsigned int v, bool masked)
{
	mmio_write32(entry(m, v) + MSIX_ENTRY_CTRL, masked ? 1 : 0);
}

static bool pba_bit(const struct msix *m, unsigned int v)
{
	return mmio_read64(m->pba) & (1ull << v);
}

static void snapshot(u32 *c)
{
	unsigned int i;

	for (i = 0; i < TD_MSIX_VECTORS; i++)
		c[i] = irq_count[VEC_PCI_MSIX + i];
}

/* With interrupts on, fire vector v: its LAPIC vector must count once (or not), no other. */
static void fire_expect(const struct msix *m, unsigned int v, bool delivered, const char *what)
{
	u32 before[TD_MSIX_VECTORS];
	unsigned int i;

	snapshot(before);
	irq_enable();
	td_write(&m->td, TD_IRQ, v);
	if (delivered)
		wait_until(irq_count[VEC_PCI_MSIX + v] != before[v], 1000);
	udelay(SETTLE_US);
	irq_disable();
	for (i = 0; i < TD_MSIX_VECTORS; i++) {
		u32 got = irq_count[VEC_PCI_MSIX + i] - before[i];
		u32 want = i == v && delivered ? 1 : 0;

		expect(got == want, "%s: vector %u (LAPIC 0x%x) taken %u times, want %u", what, i,
		       VEC_PCI_MSIX + i, got, want);
	}
}

/* Wait for vector v's interrupt after an unmask; exactly one. */
static void expect_delivery(const struct msix *m, unsigned int v, u32 before, const char *what)
{
	irq_enable();
	wait_until(irq_count[VEC_PCI_MSIX + v] != before, 1000);
	udelay(SETTLE_US);
	irq_disable();
	expect(irq_count[VEC_PCI_MSIX + v] - before == 1, "%s: vector %u taken %u times, want 1",
	       what, v, irq_count[VEC_PCI_MSIX + v] - before);
	expect(!pba_bit(m, v), "%s: PBA bit %u still set after delivery", what, v);
}

GUEST_TEST(pci_msix)
{
	struct msix m;
	u32 tbl, pba, before;
	unsigned int v;
	u8 apic;

	if (!testdev_open(&m.td, true))
		return;
	m.cap = pci_cap_find(m.td.bdf, PCI_CAP_ID_MSIX);
	if (!expect(m.cap, "no MSI-X capability"))
		goto out;
	tbl = pci_read32(m.td.bdf, m.cap + MSIX_TABLE);
	pba = pci_read32(m.td.bdf, m.cap + MSIX_PBA);
	if (!expect((tbl & 7) == 2 && (pba & 7) == 2, "table BIR %u, PBA BIR %u: want BAR2",
	            tbl & 7, pba & 7))
		goto out;
	m.table = m.td.buf + (tbl & ~7u);
	m.pba = m.td.buf + (pba & ~7u);

	irq_disable();
	lapic_enable();
	apic = lapic_id();
	/* Enable with the function masked while programming (PCI 3.0 §6.8.2.3 suggests it). */
	set_ctrl(&m, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	for (v = 0; v < TD_MSIX_VECTORS; v++) {
		u32 ctl = mmio_read32(entry(&m, v) + MSIX_ENTRY_CTRL);

		expect(ctl & 1, "vector %u control 0x%x at reset, want masked", v, ctl);
		mmio_write32(entry(&m, v) + 0, MSI_ADDR(apic));
		mmio_write32(entry(&m, v) + 4, 0);
		mmio_write32(entry(&m, v) + 8, VEC_PCI_MSIX + v);
		vec_mask(&m, v, false);
	}
	expect(mmio_read32(entry(&m, 3) + 8) == VEC_PCI_MSIX + 3, "table entry 3 data reads 0x%x",
	       mmio_read32(entry(&m, 3) + 8));
	set_ctrl(&m, MSIX_CTRL_ENABLE);

	/* Every vector arrives once, on its own LAPIC vector. */
	for (v = 0; v < TD_MSIX_VECTORS; v++)
		fire_expect(&m, v, true, "unmasked");
	expect(mmio_read64(m.pba) == 0, "PBA 0x%llx with nothing pending", mmio_read64(m.pba));

	/* A masked vector: nothing delivered, its PBA bit set; unmasking delivers it. */
	vec_mask(&m, 3, true);
	fire_expect(&m, 3, false, "vector 3 masked");
	expect(pba_bit(&m, 3), "PBA 0x%llx: bit 3 not set for the masked vector",
	       mmio_read64(m.pba));
	before = irq_count[VEC_PCI_MSIX + 3];
	vec_mask(&m, 3, false);
	expect_delivery(&m, 3, before, "vector 3 unmasked");

	/* Function Mask: likewise for the whole function. */
	set_ctrl(&m, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	fire_expect(&m, 5, false, "function masked");
	expect(pba_bit(&m, 5), "PBA 0x%llx: bit 5 not set under Function Mask", mmio_read64(m.pba));
	before = irq_count[VEC_PCI_MSIX + 5];
	set_ctrl(&m, MSIX_CTRL_ENABLE);
	expect_delivery(&m, 5, before, "function unmasked");

	/* A reprogrammed entry sends its new message. */
	mmio_write32(entry(&m, 6) + 8, VEC_PCI_MSIX + 7);
	before = irq_count[VEC_PCI_MSIX + 7];
	irq_enable();
	td_write(&m.td, TD_IRQ, 6);
	wait_until(irq_count[VEC_PCI_MSIX + 7] != before, 1000);
	udelay(SETTLE_US);
	irq_disable();
	expect(irq_count[VEC_PCI_MSIX + 7] - before == 1,
	       "entry 6 with data 0x%x: LAPIC vector 0x%x taken %u times, want 1", VEC_PCI_MSIX + 7,
	       VEC_PCI_MSIX + 7, irq_count[VEC_PCI_MSIX + 7] - before);

	/* MSI-X disabled: the IRQ register drives INTx (0 = deassert), nothing on our vectors. */
	for (v = 0; v < TD_MSIX_VECTORS; v++)
		vec_mask(&m, v, true);
	set_ctrl(&m, 0);
	fire_expect(&m, 0, false, "MSI-X disabled");
out:
	testdev_close(&m.td);
}
