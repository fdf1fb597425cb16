/* t_pci_msi.c - MSI on the test device: 4 multiple messages, per-vector masking, pending bits. */
#include "pci.h"

#define SETTLE_US 5000

struct msi {
	struct testdev td;
	unsigned int cap;
};

static void set_ctrl(const struct msi *m, bool enable, unsigned int mme)
{
	u16 c = pci_read16(m->td.bdf, m->cap + MSI_CTRL);

	c = (u16)((c & ~(MSI_CTRL_ENABLE | 0x70u)) | (enable ? MSI_CTRL_ENABLE : 0) | mme << 4);
	pci_write16(m->td.bdf, m->cap + MSI_CTRL, c);
}

/* Fire device vector v; LAPIC vector VEC_PCI_MSI + v must count `want` times, the others 0. */
static void fire_expect(const struct msi *m, unsigned int v, u32 want, const char *what)
{
	u32 before[TD_MSI_VECTORS];
	unsigned int i;

	for (i = 0; i < TD_MSI_VECTORS; i++)
		before[i] = irq_count[VEC_PCI_MSI + i];
	irq_enable();
	td_write(&m->td, TD_IRQ, v);
	if (want && v < TD_MSI_VECTORS)
		wait_until(irq_count[VEC_PCI_MSI + v] != before[v], 1000);
	udelay(SETTLE_US);
	irq_disable();
	for (i = 0; i < TD_MSI_VECTORS; i++) {
		u32 got = irq_count[VEC_PCI_MSI + i] - before[i];
		u32 w = i == v ? want : 0;

		expect(got == w, "%s: LAPIC vector 0x%x taken %u times, want %u", what,
		       VEC_PCI_MSI + i, got, w);
	}
}

GUEST_TEST(pci_msi)
{
	struct msi m;
	u16 ctrl;
	u32 before, pending;
	unsigned int v;

	if (!testdev_open(&m.td, true))
		return;
	m.cap = pci_cap_find(m.td.bdf, PCI_CAP_ID_MSI);
	if (!expect(m.cap, "no MSI capability"))
		goto out;
	ctrl = pci_read16(m.td.bdf, m.cap + MSI_CTRL);
	if (!expect((ctrl & MSI_CTRL_64BIT) && (ctrl & MSI_CTRL_PVM) && ((ctrl >> 1) & 7) == 2,
	            "MSI control 0x%04x: want 64-bit, per-vector masking, 4 vectors", ctrl))
		goto out;

	irq_disable();
	lapic_enable();
	/* PCI 3.0 §6.8.1.3-6: address, data (low bits replaced by the vector number), mask. */
	pci_write32(m.td.bdf, m.cap + MSI_ADDR_LO, MSI_ADDR(lapic_id()));
	pci_write32(m.td.bdf, m.cap + MSI_ADDR_HI, 0);
	pci_write16(m.td.bdf, m.cap + MSI_DATA, VEC_PCI_MSI);
	pci_write32(m.td.bdf, m.cap + MSI_MASK, 0);
	set_ctrl(&m, true, 2); /* Multiple Message Enable: 4 */
	ctrl = pci_read16(m.td.bdf, m.cap + MSI_CTRL);
	expect((ctrl & MSI_CTRL_ENABLE) && ((ctrl >> 4) & 7) == 2, "MSI control reads 0x%04x",
	       ctrl);

	for (v = 0; v < TD_MSI_VECTORS; v++)
		fire_expect(&m, v, 1, "4 vectors enabled");
	fire_expect(&m, 4, 0, "vector 4 of 4"); /* beyond the enabled count: dropped */

	/* Per-vector mask: pending bit instead of a message; unmask sends it. */
	pci_write32(m.td.bdf, m.cap + MSI_MASK, 1u << 2);
	fire_expect(&m, 2, 0, "vector 2 masked");
	pending = pci_read32(m.td.bdf, m.cap + MSI_PENDING);
	expect(pending == 1u << 2, "Pending Bits 0x%x, want 0x4", pending);
	before = irq_count[VEC_PCI_MSI + 2];
	irq_enable();
	pci_write32(m.td.bdf, m.cap + MSI_MASK, 0);
	wait_until(irq_count[VEC_PCI_MSI + 2] != before, 1000);
	udelay(SETTLE_US);
	irq_disable();
	expect(irq_count[VEC_PCI_MSI + 2] - before == 1, "unmasked vector 2 taken %u times, want 1",
	       irq_count[VEC_PCI_MSI + 2] - before);
	pending = pci_read32(m.td.bdf, m.cap + MSI_PENDING);
	expect(pending == 0, "Pending Bits 0x%x after the unmask", pending);

	/* One message enabled: vector 0 works, vector 1 is beyond the count. */
	set_ctrl(&m, true, 0);
	fire_expect(&m, 0, 1, "1 vector enabled");
	fire_expect(&m, 1, 0, "vector 1 of 1");

	/* New data takes effect. */
	pci_write16(m.td.bdf, m.cap + MSI_DATA, VEC_PCI_MSI + 3);
	before = irq_count[VEC_PCI_MSI + 3];
	irq_enable();
	td_write(&m.td, TD_IRQ, 0);
	wait_until(irq_count[VEC_PCI_MSI + 3] != before, 1000);
	udelay(SETTLE_US);
	irq_disable();
	expect(irq_count[VEC_PCI_MSI + 3] - before == 1,
	       "after changing the data to 0x%x: taken %u times, want 1", VEC_PCI_MSI + 3,
	       irq_count[VEC_PCI_MSI + 3] - before);

	/* Disabled: back to INTx (0 deasserts: nothing happens). */
	set_ctrl(&m, false, 0);
	fire_expect(&m, 0, 0, "MSI disabled");
out:
	testdev_close(&m.td);
}
