/* t_pci_intx.c - INTx of the test device through its IOAPIC pin: level, Interrupt Disable, status.
 */
#include "pci.h"

#define SETTLE_US 5000

static bool status_int(const struct testdev *td)
{
	return pci_read16(td->bdf, PCI_STATUS) & PCI_STATUS_INTERRUPT;
}

/*
 * The line is asserted and waiting in the LAPIC's IRR (interrupts are off):
 * deassert the pin, then let the interrupt in.  A level interrupt whose pin
 * went down before the EOI is taken exactly once: KVM drops the line at the
 * EOI and ember, told through the resample eventfd, leaves it down.
 */
static void take_once(const struct testdev *td, const char *what)
{
	u32 before = irq_count[VEC_PCI_INTX];

	expect(wait_until(lapic_irr(VEC_PCI_INTX), 1000),
	       "%s: vector 0x%x never became pending in the LAPIC", what, VEC_PCI_INTX);
	td_write(td, TD_IRQ, 0);
	expect(!status_int(td), "%s: STATUS.Interrupt still set after deassert", what);
	irq_enable();
	wait_until(irq_count[VEC_PCI_INTX] != before, 1000);
	udelay(SETTLE_US);
	irq_disable();
	expect(irq_count[VEC_PCI_INTX] - before == 1, "%s: interrupt taken %u times, want 1", what,
	       irq_count[VEC_PCI_INTX] - before);
}

GUEST_TEST(pci_intx)
{
	struct testdev td;
	unsigned int msi, msix;
	u8 line, pin;
	u32 before, v;
	bool routed = false;

	if (!testdev_open(&td, false))
		return;
	msi = pci_cap_find(td.bdf, PCI_CAP_ID_MSI);
	msix = pci_cap_find(td.bdf, PCI_CAP_ID_MSIX);
	expect(!(msi && (pci_read16(td.bdf, msi + MSI_CTRL) & MSI_CTRL_ENABLE)) &&
	           !(msix && (pci_read16(td.bdf, msix + MSIX_CTRL) & MSIX_CTRL_ENABLE)),
	       "MSI or MSI-X left enabled");
	line = pci_read8(td.bdf, PCI_INTERRUPT_LINE);
	pin = pci_read8(td.bdf, PCI_INTERRUPT_PIN);
	printf("# INTx: pin INT%c, line (GSI) %u\n", 'A' + pin - 1, line);
	if (!expect(pin == 1 && line >= 16 && line < 24,
	            "Interrupt Pin %u, Line %u: want INTA on an IOAPIC pin 16-23", pin, line))
		goto out;

	irq_disable();
	lapic_enable();
	ioapic_route_level(line, VEC_PCI_INTX, lapic_id());
	routed = true;
	pci_write16(td.bdf, PCI_COMMAND,
	            (u16)(pci_read16(td.bdf, PCI_COMMAND) & ~PCI_CMD_INTX_DISABLE));
	expect(!status_int(&td) && td_read(&td, TD_IRQ) == 0, "pin asserted before the test");

	/* Assert: STATUS.Interrupt and the IRQ register follow the pin; one interrupt. */
	td_write(&td, TD_IRQ, 1);
	expect(status_int(&td), "STATUS.Interrupt clear with the pin asserted");
	v = td_read(&td, TD_IRQ);
	expect(v == 1, "IRQ register reads %u with the pin asserted", v);
	take_once(&td, "asserted");

	/*
	 * Still asserted at the EOI: KVM drops the line, ember's resample finds the
	 * pin up and raises the line again, so the vector comes back.  This code
	 * does the EOI once it has looked (fasteoi, as Linux's level flow does): an
	 * EOI in the stub with the pin held up would take the interrupt again after
	 * every single instruction, and nothing here would run.
	 */
	irq_defer_eoi[VEC_PCI_INTX] = 1;
	before = irq_count[VEC_PCI_INTX];
	td_write(&td, TD_IRQ, 1);
	irq_enable();
	expect(wait_until(irq_count[VEC_PCI_INTX] != before, 1000),
	       "no interrupt with the pin asserted and interrupts enabled");
	irq_disable();
	irq_eoi(VEC_PCI_INTX); /* the pin is still up */
	expect(wait_until(lapic_irr(VEC_PCI_INTX), 1000),
	       "EOI with the pin still asserted: the interrupt did not come back");
	/* Deassert, take the pending one, EOI: the resample finds the pin down. */
	td_write(&td, TD_IRQ, 0);
	irq_enable();
	wait_until(irq_count[VEC_PCI_INTX] - before >= 2, 1000);
	irq_disable();
	expect(irq_count[VEC_PCI_INTX] - before == 2,
	       "interrupt taken %u times with one EOI while asserted, want 2",
	       irq_count[VEC_PCI_INTX] - before);
	irq_eoi(VEC_PCI_INTX);
	before = irq_count[VEC_PCI_INTX];
	irq_enable();
	udelay(SETTLE_US);
	irq_disable();
	expect(irq_count[VEC_PCI_INTX] == before && !lapic_irr(VEC_PCI_INTX),
	       "%u interrupts after the pin went down", irq_count[VEC_PCI_INTX] - before);
	irq_defer_eoi[VEC_PCI_INTX] = 0;

	/* Interrupt Disable (PCI 3.0 §6.2.2): status still follows the pin, the line does not. */
	pci_write16(td.bdf, PCI_COMMAND,
	            (u16)(pci_read16(td.bdf, PCI_COMMAND) | PCI_CMD_INTX_DISABLE));
	before = irq_count[VEC_PCI_INTX];
	td_write(&td, TD_IRQ, 1);
	expect(status_int(&td), "STATUS.Interrupt clear: it must follow the pin (§6.2.3)");
	irq_enable();
	udelay(SETTLE_US);
	irq_disable();
	expect(irq_count[VEC_PCI_INTX] == before && !lapic_irr(VEC_PCI_INTX),
	       "interrupt delivered with Interrupt Disable set");
	/* Clearing it lets the asserted pin through. */
	pci_write16(td.bdf, PCI_COMMAND,
	            (u16)(pci_read16(td.bdf, PCI_COMMAND) & ~PCI_CMD_INTX_DISABLE));
	take_once(&td, "Interrupt Disable cleared");
out:
	td_write(&td, TD_IRQ, 0);
	irq_eoi(VEC_PCI_INTX); /* none left in service if a check above failed */
	irq_defer_eoi[VEC_PCI_INTX] = 0;
	if (routed)
		ioapic_mask(line);
	testdev_close(&td);
}
