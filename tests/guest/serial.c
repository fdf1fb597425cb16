/* serial.c - COM1 output for the test guest: an 8250 polled on LSR.THRE. */
#include "hw.h"

void serial_init(void)
{
	outb(COM1 + UART_IER, 0);
	outb(COM1 + UART_LCR, 0x80); /* DLAB: divisor 1, 115200 baud */
	outb(COM1 + UART_THR, 1);
	outb(COM1 + UART_IER, 0);
	outb(COM1 + UART_LCR, 0x03); /* 8N1 */
	outb(COM1 + UART_MCR, 0x03); /* DTR, RTS */
}

void serial_putc(char c)
{
	unsigned int spins = 1000000;

	while (!(inb(COM1 + UART_LSR) & UART_LSR_THRE) && --spins)
		cpu_relax();
	outb(COM1 + UART_THR, (u8)c);
}
