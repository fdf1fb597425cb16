/* apic.c - interrupt controllers from ring 3: local APIC and IOAPIC over MMIO, the 8259 PICs. */
#include "hw.h"

void lapic_enable(void)
{
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | VEC_SPURIOUS);
}

u8 lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

bool lapic_send_ipi(u8 dest, u32 icr_lo)
{
	lapic_write(LAPIC_ICR_HI, (u32)dest << 24);
	lapic_write(LAPIC_ICR_LO, icr_lo);
	return wait_until(!(lapic_read(LAPIC_ICR_LO) & LAPIC_ICR_PENDING), 100);
}

/* IOAPIC: an index register (IOREGSEL) and a data window (IOWIN) at +0x10 (82093AA §3.1). */
u32 ioapic_read(u32 reg)
{
	mmio_write32(IOAPIC_BASE, reg);
	return mmio_read32(IOAPIC_BASE + 0x10);
}

void ioapic_write(u32 reg, u32 v)
{
	mmio_write32(IOAPIC_BASE, reg);
	mmio_write32(IOAPIC_BASE + 0x10, v);
}

void ioapic_route(unsigned int pin, u8 vector, u8 dest)
{
	/* Destination first, then unmask: fixed delivery, physical, active high, edge. */
	ioapic_write(IOAPIC_REDTBL(pin) + 1, (u32)dest << 24);
	ioapic_write(IOAPIC_REDTBL(pin), vector);
}

void ioapic_route_level(unsigned int pin, u8 vector, u8 dest)
{
	ioapic_write(IOAPIC_REDTBL(pin) + 1, (u32)dest << 24);
	ioapic_write(IOAPIC_REDTBL(pin), IOAPIC_LEVEL | vector);
}

void ioapic_mask(unsigned int pin)
{
	ioapic_write(IOAPIC_REDTBL(pin), IOAPIC_MASKED);
}

void pic_mask_all(void)
{
	/* ICW1-4: edge, cascaded, vectors VEC_PIC_BASE.., slave on IR2, 8086 mode; then mask all.
	 */
	outb(0x20, 0x11);
	outb(0xa0, 0x11);
	outb(0x21, VEC_PIC_BASE);
	outb(0xa1, VEC_PIC_BASE + 8);
	outb(0x21, 0x04);
	outb(0xa1, 0x02);
	outb(0x21, 0x01);
	outb(0xa1, 0x01);
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

void irq_eoi(u8 vector)
{
	if (!irq_eoi_pending[vector])
		return;
	/* In service until this EOI: the stub cannot set the flag again before it. */
	irq_eoi_pending[vector] = 0;
	mmio_write32(LAPIC_BASE + LAPIC_EOI, 0);
}
