/* t_serial_rx.c - console input reaches the guest whole and in order, beyond the UART's FIFO. */
#include "guest.h"
#include "hw.h"

#define UART_RBR    0 /* receive buffer (DLAB=0, read) */
#define UART_LSR_DR 0x01

/*
 * The harness writes test.rx_len bytes to ember's standard input, byte i
 * being 'a' + i % 26.  More than the UART's receive FIFO holds, so ember must
 * hold back what the FIFO refuses and offer it again as the guest drains it.
 */
GUEST_TEST(serial_rx)
{
	u64 want, i, deadline, per_ms = tsc_per_ms();

	if (!expect(cmdline_u64("test.rx_len", &want) && want > 0,
	            "needs test.rx_len=<bytes> and that many bytes on ember's stdin"))
		return;
	for (i = 0; i < want; i++) {
		u8 c;

		deadline = rdtsc() + 5000 * per_ms;
		while (!(inb(COM1 + UART_LSR) & UART_LSR_DR))
			if (rdtsc() > deadline) {
				fail("byte %llu of %llu never arrived", i, want);
				return;
			}
		c = inb(COM1 + UART_RBR);
		if (!expect(c == 'a' + i % 26, "byte %llu is 0x%02x, want '%c'", i, c,
		            (char)('a' + i % 26)))
			return;
	}
	expect(!(inb(COM1 + UART_LSR) & UART_LSR_DR), "more input than the %llu bytes sent", want);
	printf("# received %llu bytes in order\n", want);
}
