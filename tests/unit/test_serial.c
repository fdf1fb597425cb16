/* test_serial.c - unit tests for the 16550A UART: Linux's probe, FIFO, loopback, interrupts. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/legacy/serial.h"
#include "test.h"

#define RBR 0
#define THR 0
#define IER 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

struct fix {
	struct serial s;
	int irq;     /* eventfd the UART signals */
	int notify;  /* eventfd for rx drained */
	int pipe[2]; /* [0]: what the guest transmitted */
};

static void fix_init(struct fix *f)
{
	f->irq = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	f->notify = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(f->irq >= 0 && f->notify >= 0);
	CHECK_EQ(pipe2(f->pipe, O_NONBLOCK | O_CLOEXEC), 0);
	CHECK_EQ(serial_init(&f->s, f->pipe[1], f->irq), 0);
	serial_set_rx_notify(&f->s, f->notify);
}

static void fix_fini(struct fix *f)
{
	serial_destroy(&f->s);
	close(f->irq);
	close(f->notify);
	close(f->pipe[0]);
	close(f->pipe[1]);
}

static uint8_t in8(struct fix *f, unsigned int off)
{
	return (uint8_t)serial_ops.read(&f->s, off, 1);
}

static void out8(struct fix *f, unsigned int off, uint8_t v)
{
	serial_ops.write(&f->s, off, v, 1);
}

/* How many times the eventfd was signalled since the last call. */
static uint64_t events(int fd)
{
	uint64_t n = 0;

	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

static size_t drain_pipe(struct fix *f, char *buf, size_t max)
{
	ssize_t n = read(f->pipe[0], buf, max);

	return n > 0 ? (size_t)n : 0;
}

TEST(reset_state)
{
	struct fix f;

	fix_init(&f);
	CHECK_EQ(in8(&f, IER), 0x00);
	CHECK_EQ(in8(&f, IIR), 0x01);
	CHECK_EQ(in8(&f, LCR), 0x00);
	CHECK_EQ(in8(&f, MCR), 0x00);
	CHECK_EQ(in8(&f, LSR), 0x60); /* THRE | TEMT */
	CHECK_EQ(in8(&f, MSR), 0xb0); /* CTS | DSR | DCD, no deltas */
	CHECK_EQ(in8(&f, SCR), 0x00);
	CHECK_EQ(events(f.irq), 0);
	fix_fini(&f);
}

/* The register dance of Linux's drivers/tty/serial/8250/8250_port.c autoconfig(). */
TEST(linux_8250_probe)
{
	struct fix f;
	uint8_t scratch, scratch2, scratch3, status1, status2, save_mcr, save_lcr, iersave;

	fix_init(&f);
	/* Existence test: IER must hold its low nibble. */
	scratch = in8(&f, IER);
	out8(&f, IER, 0);
	scratch2 = in8(&f, IER) & 0x0f;
	out8(&f, IER, 0x0f);
	scratch3 = in8(&f, IER) & 0x0f;
	out8(&f, IER, scratch);
	CHECK_EQ(scratch2, 0);
	CHECK_EQ(scratch3, 0x0f);

	save_mcr = in8(&f, MCR);
	save_lcr = in8(&f, LCR);
	/* Loopback test: RTS and OUT2 come back as CTS and DCD. */
	out8(&f, MCR, 0x10 | 0x0a);
	status1 = in8(&f, MSR) & 0xf0;
	out8(&f, MCR, save_mcr);
	CHECK_EQ(status1, 0x90);

	/* FIFO detection: IIR bits 7:6 = 3 means a 16550A. */
	out8(&f, LCR, 0xbf);
	out8(&f, 2, 0); /* "EFR"; on a 16550A this is FCR */
	out8(&f, LCR, 0);
	out8(&f, FCR, 0x01);
	CHECK_EQ(in8(&f, IIR) >> 6, 3);

	/* autoconfig_16550a(): no EFR behind DLAB or LCR=0xBF (IIR reads back non-zero). */
	out8(&f, LCR, 0x80);
	CHECK(in8(&f, 2) != 0);
	out8(&f, LCR, 0xbf);
	CHECK(in8(&f, 2) != 0);
	/* Not a National SuperIO: IIR's bit 4 does not follow MCR.LOOP. */
	out8(&f, LCR, 0);
	status1 = in8(&f, MCR);
	out8(&f, LCR, 0xe0);
	status2 = in8(&f, 2);
	CHECK_EQ((status2 ^ status1) & 0x10, 0);
	out8(&f, LCR, 0);
	out8(&f, MCR, status1 ^ 0x10);
	out8(&f, LCR, 0xe0);
	status2 = in8(&f, 2);
	out8(&f, LCR, 0);
	out8(&f, MCR, status1);
	CHECK_EQ((status2 ^ status1) & 0x10, 0); /* no EXCR1 mirroring MCR.LOOP */
	/* Not a TI16750: IIR bit 5 never set, with or without DLAB. */
	out8(&f, LCR, 0);
	out8(&f, FCR, 0x01 | 0x20);
	status1 = in8(&f, IIR) & 0xe0;
	out8(&f, FCR, 0);
	out8(&f, LCR, 0x80);
	out8(&f, FCR, 0x01 | 0x20);
	status2 = in8(&f, IIR) & 0xe0;
	out8(&f, FCR, 0);
	out8(&f, LCR, 0);
	CHECK_EQ(status1, 0xc0);
	CHECK_EQ(status2, 0xc0);
	/* Not an XScale: IER bit 6 (UUE) does not stick. */
	iersave = in8(&f, IER);
	out8(&f, IER, iersave & ~0x40);
	CHECK_EQ(in8(&f, IER) & 0x40, 0);
	out8(&f, IER, iersave | 0x40);
	CHECK_EQ(in8(&f, IER) & 0x40, 0);
	out8(&f, IER, iersave);
	out8(&f, LCR, save_lcr);

	/* Scratch register (autoconfig_8250's 8250-vs-16450 test). */
	out8(&f, SCR, 0xa5);
	CHECK_EQ(in8(&f, SCR), 0xa5);
	out8(&f, SCR, 0x5a);
	CHECK_EQ(in8(&f, SCR), 0x5a);

	/* FIFOs off again: IIR top bits clear. */
	CHECK_EQ(in8(&f, IIR), 0x01);
	/* Nothing reached the host and no interrupt fired (OUT2 was never left set). */
	CHECK_EQ(events(f.irq), 0);
	{
		char buf[8];

		CHECK_EQ(drain_pipe(&f, buf, sizeof(buf)), 0);
	}
	fix_fini(&f);
}

TEST(divisor_latch)
{
	struct fix f;
	char buf[8];

	fix_init(&f);
	out8(&f, IER, 0x05);
	out8(&f, LCR, 0x83);      /* DLAB, 8N1 */
	CHECK_EQ(in8(&f, 0), 12); /* reset divisor: 9600 baud */
	CHECK_EQ(in8(&f, 1), 0);
	out8(&f, 0, 0x01); /* 115200 */
	out8(&f, 1, 0x02);
	CHECK_EQ(in8(&f, 0), 0x01);
	CHECK_EQ(in8(&f, 1), 0x02);
	CHECK_EQ(drain_pipe(&f, buf, sizeof(buf)), 0); /* DLL write did not transmit */
	out8(&f, LCR, 0x03);
	CHECK_EQ(in8(&f, LCR), 0x03);
	CHECK_EQ(in8(&f, IER), 0x05); /* IER untouched by the DLM write */
	out8(&f, LCR, 0x83);
	CHECK_EQ(in8(&f, 1), 0x02);
	CHECK_EQ(in8(&f, IER), 0x02); /* offset 1 is DLM while DLAB is set */
	fix_fini(&f);
}

TEST(transmit)
{
	struct fix f;
	char buf[32];
	const char *msg = "hello, ember\n";
	size_t i;

	fix_init(&f);
	out8(&f, LCR, 0x03);
	for (i = 0; msg[i]; i++) {
		CHECK(in8(&f, LSR) & 0x20);
		out8(&f, THR, (uint8_t)msg[i]);
	}
	CHECK_EQ(in8(&f, LSR), 0x60);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(drain_pipe(&f, buf, sizeof(buf)), strlen(msg));
	CHECK(strcmp(buf, msg) == 0);
	fix_fini(&f);
}

TEST(transmit_full_pipe_does_not_block)
{
	struct fix f;
	char junk[4096];
	int n = 0;

	fix_init(&f);
	memset(junk, 'j', sizeof(junk));
	while (write(f.pipe[1], junk, sizeof(junk)) > 0 && n < 1024)
		n++;
	/* The pipe is full and non-blocking: these bytes are dropped, not waited for. */
	out8(&f, THR, 'x');
	out8(&f, THR, 'y');
	CHECK_EQ(in8(&f, LSR) & 0x60, 0x60);
	fix_fini(&f);
}

TEST(transmit_no_fd)
{
	struct serial s;

	CHECK_EQ(serial_init(&s, -1, -1), 0);
	serial_ops.write(&s, THR, 'x', 1);
	serial_ops.write(&s, MCR, 0x08, 1);
	serial_ops.write(&s, IER, 0x02, 1); /* THRE interrupt with no irqfd: nothing to signal */
	CHECK_EQ(serial_ops.read(&s, IIR, 1), 0x02);
	serial_destroy(&s);
}

TEST(receive)
{
	struct fix f;
	const uint8_t in[] = {'a', 'b', 'c'};

	fix_init(&f);
	out8(&f, MCR, 0x0b); /* DTR RTS OUT2 */
	out8(&f, IER, 0x01);
	CHECK_EQ(events(f.irq), 0);
	CHECK_EQ(serial_input(&f.s, in, sizeof(in)), 3);
	CHECK_EQ(events(f.irq), 1);
	CHECK_EQ(in8(&f, LSR) & 0x01, 0x01);
	CHECK_EQ(in8(&f, IIR), 0x04); /* received data available, no FIFO bits */
	CHECK_EQ(in8(&f, RBR), 'a');
	CHECK_EQ(in8(&f, RBR), 'b');
	CHECK_EQ(in8(&f, IIR), 0x04);
	CHECK_EQ(in8(&f, RBR), 'c');
	CHECK_EQ(in8(&f, LSR) & 0x01, 0);
	CHECK_EQ(in8(&f, IIR), 0x01);
	CHECK_EQ(in8(&f, RBR), 0); /* empty */
	/* More input is a new edge. */
	CHECK_EQ(serial_input(&f.s, in, 1), 1);
	CHECK_EQ(events(f.irq), 1);
	/* Input while the line is already up is not. */
	CHECK_EQ(serial_input(&f.s, in, 1), 1);
	CHECK_EQ(events(f.irq), 0);
	fix_fini(&f);
}

TEST(receive_fifo_trigger)
{
	struct fix f;
	const uint8_t in[] = {1, 2, 3, 4, 5};

	fix_init(&f);
	out8(&f, MCR, 0x08);
	out8(&f, FCR, 0x41); /* FIFO on, trigger 4 bytes */
	out8(&f, IER, 0x01);
	CHECK_EQ(serial_input(&f.s, in, 2), 2);
	CHECK_EQ(in8(&f, IIR), 0xcc); /* below trigger: character timeout, FIFO bits */
	CHECK_EQ(serial_input(&f.s, in + 2, 3), 3);
	CHECK_EQ(in8(&f, IIR), 0xc4); /* trigger level reached */
	CHECK_EQ(events(f.irq), 1);   /* one edge: the line stayed up */
	/* FCR bit 1 clears the receive FIFO; the line drops. */
	out8(&f, FCR, 0x43);
	CHECK_EQ(in8(&f, LSR) & 0x01, 0);
	CHECK_EQ(in8(&f, IIR), 0xc1);
	/* Turning the FIFO off clears it too. */
	CHECK_EQ(serial_input(&f.s, in, 1), 1);
	out8(&f, FCR, 0x00);
	CHECK_EQ(in8(&f, LSR) & 0x01, 0);
	CHECK_EQ(in8(&f, IIR), 0x01);
	fix_fini(&f);
}

TEST(receive_full_and_notify)
{
	struct fix f;
	uint8_t in[100];
	unsigned int i;
	int order_ok = 1;

	fix_init(&f);
	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	CHECK_EQ(serial_input(&f.s, in, sizeof(in)), SERIAL_RX_FIFO);
	CHECK_EQ(serial_input(&f.s, in, 1), 0);
	CHECK_EQ(events(f.notify), 0);
	for (i = 0; i < SERIAL_RX_FIFO - 1; i++)
		order_ok &= in8(&f, RBR) == i;
	CHECK(order_ok);
	CHECK_EQ(events(f.notify), 0); /* not drained yet */
	CHECK_EQ(in8(&f, RBR), SERIAL_RX_FIFO - 1);
	CHECK_EQ(events(f.notify), 1); /* drained after a refusal */
	CHECK_EQ(serial_input(&f.s, in, 1), 1);
	CHECK_EQ(in8(&f, RBR), 0);
	CHECK_EQ(events(f.notify), 0); /* nothing was refused this time */
	/* Wrap-around of the ring. */
	CHECK_EQ(serial_input(&f.s, in + 10, 50), 50);
	order_ok = 1;
	for (i = 0; i < 50; i++)
		order_ok &= in8(&f, RBR) == 10 + i;
	CHECK(order_ok);
	fix_fini(&f);
}

TEST(thre_interrupt)
{
	struct fix f;

	fix_init(&f);
	out8(&f, MCR, 0x08); /* OUT2 */
	out8(&f, IER, 0x02); /* ETBEI with THR empty: interrupt at once */
	CHECK_EQ(events(f.irq), 1);
	CHECK_EQ(in8(&f, IIR), 0x02);
	CHECK_EQ(in8(&f, IIR), 0x01); /* reading IIR cleared it */
	CHECK_EQ(events(f.irq), 0);
	/* Each THR write is a new THRE event, since the byte leaves at once. */
	out8(&f, THR, 'a');
	CHECK_EQ(events(f.irq), 1);
	out8(&f, THR, 'b');
	out8(&f, THR, 'c');
	CHECK_EQ(events(f.irq), 2);
	CHECK_EQ(in8(&f, IIR), 0x02);
	/* Linux's UART_BUG_THRE test: IER off and on again re-asserts THRE. */
	out8(&f, IER, 0x00);
	CHECK_EQ(in8(&f, IIR), 0x01);
	out8(&f, IER, 0x02);
	CHECK_EQ(in8(&f, IIR), 0x02);
	out8(&f, IER, 0x02); /* no rising edge of ETBEI, no new THRE */
	CHECK_EQ(in8(&f, IIR), 0x01);
	CHECK_EQ(events(f.irq), 1);
	/* With ETBEI off, writes raise nothing. */
	out8(&f, IER, 0x00);
	out8(&f, THR, 'd');
	CHECK_EQ(events(f.irq), 0);
	CHECK_EQ(in8(&f, IIR), 0x01);
	fix_fini(&f);
}

TEST(out2_gates_the_line)
{
	struct fix f;
	const uint8_t in = 'z';

	fix_init(&f);
	out8(&f, IER, 0x01);
	CHECK_EQ(serial_input(&f.s, &in, 1), 1);
	CHECK_EQ(in8(&f, IIR), 0x04); /* pending inside the UART... */
	CHECK_EQ(events(f.irq), 0);   /* ...but not on the IRQ pin */
	out8(&f, MCR, 0x08);          /* OUT2 opens the gate: rising edge */
	CHECK_EQ(events(f.irq), 1);
	out8(&f, MCR, 0x00);
	out8(&f, MCR, 0x08); /* closed and opened again: another edge */
	CHECK_EQ(events(f.irq), 1);
	/* Loopback forces OUT2 inactive on the pin. */
	out8(&f, MCR, 0x18);
	out8(&f, MCR, 0x08);
	CHECK_EQ(events(f.irq), 1);
	CHECK_EQ(in8(&f, RBR), 'z');
	fix_fini(&f);
}

TEST(priorities)
{
	struct fix f;
	const uint8_t in = 'q';

	fix_init(&f);
	out8(&f, MCR, 0x08);
	out8(&f, IER, 0x0f);
	CHECK_EQ(in8(&f, IIR), 0x02); /* THRE */
	out8(&f, IER, 0x0d);
	out8(&f, IER, 0x0f); /* THRE pending again */
	CHECK_EQ(serial_input(&f.s, &in, 1), 1);
	CHECK_EQ(in8(&f, IIR), 0x04); /* data beats THRE... */
	CHECK_EQ(in8(&f, RBR), 'q');
	CHECK_EQ(in8(&f, IIR), 0x02); /* ...which was still pending */
	CHECK_EQ(in8(&f, IIR), 0x01);
	/* Modem status is lowest: produce deltas by going through loopback. */
	out8(&f, MCR, 0x18); /* loopback: DCD from OUT2 stays, CTS/DSR drop */
	out8(&f, MCR, 0x08); /* back: CTS/DSR return */
	CHECK_EQ(in8(&f, IIR), 0x00);
	CHECK_EQ(in8(&f, MSR), 0xb3); /* CTS DSR DCD + DCTS DDSR */
	CHECK_EQ(in8(&f, IIR), 0x01);
	CHECK_EQ(in8(&f, MSR), 0xb0);
	fix_fini(&f);
}

TEST(loopback)
{
	struct fix f;
	const uint8_t ext[] = {'e', 'x', 't'};
	char buf[8];
	unsigned int i;

	fix_init(&f);
	out8(&f, MCR, 0x10);
	CHECK_EQ(in8(&f, MSR) & 0xf0, 0x00); /* all MCR outputs off */
	out8(&f, MCR, 0x1f);
	CHECK_EQ(in8(&f, MSR) & 0xf0, 0xf0);
	out8(&f, MCR, 0x11); /* DTR -> DSR */
	CHECK_EQ(in8(&f, MSR) & 0xf0, 0x20);
	out8(&f, MCR, 0x15); /* OUT1 -> RI; a rising RI sets no delta */
	CHECK_EQ(in8(&f, MSR), 0x60);
	out8(&f, MCR, 0x11); /* RI falls: trailing-edge indicator */
	CHECK_EQ(in8(&f, MSR), 0x24);

	out8(&f, THR, 'L');
	CHECK_EQ(drain_pipe(&f, buf, sizeof(buf)), 0); /* not sent to the host */
	CHECK_EQ(in8(&f, LSR) & 0x01, 0x01);
	CHECK_EQ(in8(&f, RBR), 'L');
	/* External input is disconnected: taken and dropped. */
	CHECK_EQ(serial_input(&f.s, ext, sizeof(ext)), sizeof(ext));
	CHECK_EQ(in8(&f, LSR) & 0x01, 0);

	/* Overrun: a full receive FIFO sets OE, a receiver-line-status interrupt. */
	out8(&f, IER, 0x05);
	for (i = 0; i < SERIAL_RX_FIFO + 1; i++)
		out8(&f, THR, (uint8_t)i);
	CHECK_EQ(in8(&f, IIR), 0x06);
	CHECK_EQ(in8(&f, LSR), 0x63); /* DR OE THRE TEMT */
	CHECK_EQ(in8(&f, LSR), 0x61); /* OE cleared by the read */
	CHECK_EQ(in8(&f, IIR), 0x04);
	CHECK_EQ(events(f.irq), 0); /* the pin is off in loopback */
	out8(&f, MCR, 0x00);
	CHECK_EQ(in8(&f, MSR) & 0xf0, 0xb0);
	fix_fini(&f);
}

TEST(wide_and_odd_accesses)
{
	struct fix f;
	uint64_t v;

	fix_init(&f);
	/* A 16-bit write at 3 is LCR then MCR, as an ISA bus splits it. */
	serial_ops.write(&f.s, 3, 0x0803, 2);
	CHECK_EQ(in8(&f, LCR), 0x03);
	CHECK_EQ(in8(&f, MCR), 0x08);
	/* A 16-bit read at 5 is LSR | MSR << 8. */
	v = serial_ops.read(&f.s, 5, 2);
	CHECK_EQ(v, 0xb060);
	/* A 32-bit access at 6 runs off the end (the bus never passes one): no crash. */
	v = serial_ops.read(&f.s, 6, 4);
	CHECK_EQ(v >> 16, 0xffff);
	serial_ops.write(&f.s, 6, 0xffffffff, 4);
	CHECK_EQ(in8(&f, SCR), 0xff);
	/* Offsets far outside the UART. */
	CHECK_EQ(serial_ops.read(&f.s, 0x1000, 1), 0xff);
	serial_ops.write(&f.s, UINT64_MAX, 0x12, 1);
	serial_ops.write(&f.s, UINT64_MAX - 1, 0x1234, 8); /* must not wrap around to THR */
	{
		char buf[8];

		CHECK_EQ(drain_pipe(&f, buf, sizeof(buf)), 0);
	}
	/* Writes to read-only registers are ignored. */
	out8(&f, LSR, 0x00);
	out8(&f, MSR, 0x00);
	CHECK_EQ(in8(&f, LSR), 0x60);
	CHECK_EQ(in8(&f, MSR), 0xb0);
	fix_fini(&f);
}

TEST(guest_fuzz_no_crash)
{
	struct fix f;
	uint64_t seed = 12345;
	unsigned int i;
	char buf[4096];

	fix_init(&f);
	for (i = 0; i < 200000; i++) {
		unsigned int off, size;
		uint64_t val;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		off = (unsigned int)(seed >> 40) % 8;
		size = 1u << ((seed >> 20) % 3);
		val = seed >> 7;
		if (off + size > 8)
			size = 1;
		if ((seed >> 33) & 1)
			serial_ops.write(&f.s, off, val, size);
		else
			(void)serial_ops.read(&f.s, off, size);
		if ((i & 1023) == 0) {
			uint8_t in[16] = {0};

			serial_input(&f.s, in, sizeof(in));
			while (drain_pipe(&f, buf, sizeof(buf)) > 0)
				;
		}
	}
	CHECK(f.s.rx_count <= SERIAL_RX_FIFO);
	fix_fini(&f);
}

/* The VMM thread feeds input while a vCPU thread drains it: order kept, nothing lost. */
#define STREAM_BYTES 50000u

static void *feeder(void *p)
{
	struct fix *f = p;
	uint8_t chunk[100];
	unsigned int sent = 0;

	while (sent < STREAM_BYTES) {
		unsigned int i, n = STREAM_BYTES - sent < sizeof(chunk)
		                        ? STREAM_BYTES - sent
		                        : (unsigned int)sizeof(chunk);
		size_t took;

		for (i = 0; i < n; i++)
			chunk[i] = (uint8_t)((sent + i) * 7);
		took = serial_input(&f->s, chunk, n);
		sent += (unsigned int)took;
		if (took < n) {
			/* Wait for the drained notification, as the VMM's event loop would. */
			uint64_t v;

			while (read(f->notify, &v, sizeof(v)) != sizeof(v))
				sched_yield();
		}
	}
	return NULL;
}

TEST(concurrent_input_and_reads)
{
	struct fix f;
	pthread_t t;
	unsigned int got = 0, bad = 0;

	fix_init(&f);
	out8(&f, FCR, 0x01);
	CHECK_EQ(pthread_create(&t, NULL, feeder, &f), 0);
	while (got < STREAM_BYTES) {
		if (in8(&f, LSR) & 0x01) {
			if (in8(&f, RBR) != (uint8_t)(got * 7))
				bad++;
			got++;
		} else {
			sched_yield();
		}
	}
	pthread_join(t, NULL);
	CHECK_EQ(bad, 0);
	CHECK_EQ(in8(&f, LSR) & 0x01, 0);
	fix_fini(&f);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* the fuzz test provokes guest warnings on purpose */
	RUN(reset_state);
	RUN(linux_8250_probe);
	RUN(divisor_latch);
	RUN(transmit);
	RUN(transmit_full_pipe_does_not_block);
	RUN(transmit_no_fd);
	RUN(receive);
	RUN(receive_fifo_trigger);
	RUN(receive_full_and_notify);
	RUN(thre_interrupt);
	RUN(out2_gates_the_line);
	RUN(priorities);
	RUN(loopback);
	RUN(wide_and_odd_accesses);
	RUN(guest_fuzz_no_crash);
	RUN(concurrent_input_and_reads);
	return test_summary();
}
