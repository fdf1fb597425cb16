/* t_serial.c - COM1: scratch register, line status, THR-empty interrupt through IOAPIC pin 4. */
#include "hw.h"

#define COM1_IRQ 4

GUEST_TEST(serial)
{
	static const u8 patterns[] = {0x00, 0xff, 0x5a, 0xa5};
	u32 before, pic_before = irq_count[VEC_PIC_BASE + COM1_IRQ];
	unsigned int i;
	u8 v, iir;

	for (i = 0; i < ARRAY_SIZE(patterns); i++) {
		outb(COM1 + UART_SCR, patterns[i]);
		v = inb(COM1 + UART_SCR);
		expect(v == patterns[i], "scratch register read 0x%02x after writing 0x%02x", v,
		       patterns[i]);
	}
	v = inb(COM1 + UART_LSR);
	expect(v & UART_LSR_THRE, "LSR 0x%02x: transmit holding register not empty", v);

	/* THRI with an empty THR raises the interrupt; it must reach the CPU through the IOAPIC. */
	irq_disable();
	lapic_enable();
	ioapic_route(COM1_IRQ, VEC_SERIAL, lapic_id());
	v = ioapic_read(IOAPIC_REDTBL(COM1_IRQ)) & 0xff;
	expect(v == VEC_SERIAL, "IOAPIC pin %u reads back vector 0x%02x, want 0x%02x", COM1_IRQ, v,
	       VEC_SERIAL);
	outb(COM1 + UART_MCR, 0x03 | UART_MCR_OUT2);
	before = irq_count[VEC_SERIAL];
	outb(COM1 + UART_IER, UART_IER_THRI);
	outb(COM1 + UART_THR, '\n');
	expect(wait_until(inb(COM1 + UART_LSR) & UART_LSR_THRE, 100), "THR never drained");
	iir = inb(COM1 + UART_IIR);
	expect((iir & (UART_IIR_ID | UART_IIR_NONE)) == UART_IIR_THRI,
	       "IIR 0x%02x with THRI enabled and THR empty, want THR-empty (0x02)", iir);
	iir = inb(COM1 + UART_IIR);
	expect(iir & UART_IIR_NONE, "IIR 0x%02x after reading THR-empty, want none pending", iir);
	irq_enable();
	expect(wait_until(irq_count[VEC_SERIAL] != before, 1000),
	       "no interrupt on vector 0x%x from IOAPIC pin %u", VEC_SERIAL, COM1_IRQ);
	irq_disable();
	expect(irq_count[VEC_PIC_BASE + COM1_IRQ] == pic_before, "masked 8259 delivered IRQ %u",
	       COM1_IRQ);

	outb(COM1 + UART_IER, 0);
	outb(COM1 + UART_MCR, 0x03);
	ioapic_mask(COM1_IRQ);
}
