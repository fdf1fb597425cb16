/* serial.c - 16550A UART model: registers, receive FIFO, edge-signalled interrupts (see serial.h).
 */
#include "devices/legacy/serial.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Register offsets (PC16550D Table II). */
#define REG_RBR_THR 0 /* DLAB=0: receiver buffer (read) / transmitter holding (write) */
#define REG_IER     1 /* DLAB=0: interrupt enable */
#define REG_DLL     0 /* DLAB=1: divisor latch, low byte */
#define REG_DLM     1 /* DLAB=1: divisor latch, high byte */
#define REG_IIR_FCR 2 /* interrupt identification (read) / FIFO control (write) */
#define REG_LCR     3
#define REG_MCR     4
#define REG_LSR     5
#define REG_MSR     6
#define REG_SCR     7

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI  0x04 /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK  0x0f /* bits 4-7 read 0 on a 16550A (Linux's XScale UUE probe) */

/* IIR (Table IV): bit 0 = 1 means "no interrupt pending"; bits 1-3 identify the source. */
#define IIR_NONE    0x01
#define IIR_RLS     0x06 /* receiver line status: highest priority */
#define IIR_RDA     0x04 /* received data available (trigger level reached) */
#define IIR_CTI     0x0c /* character timeout (FIFO mode) */
#define IIR_THRE    0x02 /* transmitter holding register empty */
#define IIR_MSR     0x00 /* modem status: lowest priority */
#define IIR_FIFO_ON 0xc0 /* both FIFO-enabled bits: what Linux's autoconfig calls a 16550A */

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02
#define FCR_KEEP     0xc9 /* enable, DMA mode select, receiver trigger (bits 1-2 self-clear) */

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80

/* Divisor 12 = 9600 baud from the 1.8432 MHz PC crystal (Table III); firmware reprograms it. */
#define DEFAULT_DIVISOR 12

static void serial_signal(int fd)
{
	uint64_t one = 1;
	ssize_t n;

	if (fd < 0)
		return;
	do
		n = write(fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
	/* EAGAIN means the counter is saturated: the interrupt is pending anyway. */
}

/* Receiver trigger level in bytes (FCR bits 6-7, Table VI); 1 without FIFOs. */
static unsigned int rx_trigger(const struct serial *s)
{
	static const unsigned int level[4] = {1, 4, 8, 14};

	return (s->fcr & FCR_ENABLE) ? level[s->fcr >> 6] : 1;
}

/*
 * Highest-priority pending, enabled interrupt source (Table IV).  The
 * character-timeout indication (FIFO mode, data below the trigger level) is
 * given at once instead of after four character times: ember's input arrives
 * in host-sized chunks and has no character time, so waiting would only add
 * latency.  Drivers treat it like received-data-available.
 */
static uint8_t iir_id(const struct serial *s)
{
	if ((s->ier & IER_ELSI) && s->lsr_err)
		return IIR_RLS;
	if ((s->ier & IER_ERBFI) && s->rx_count)
		return s->rx_count >= rx_trigger(s) ? IIR_RDA : IIR_CTI;
	if ((s->ier & IER_ETBEI) && s->thre_pending)
		return IIR_THRE;
	if ((s->ier & IER_EDSSI) && (s->msr & 0x0f))
		return IIR_MSR;
	return IIR_NONE;
}

/* Recompute the (OUT2-gated) interrupt line; signal the irqfd on a rising edge. */
static void update_irq(struct serial *s)
{
	int line = iir_id(s) != IIR_NONE && (s->mcr & MCR_OUT2) && !(s->mcr & MCR_LOOP);

	if (line && !s->irq_line)
		serial_signal(s->irq_fd);
	s->irq_line = line;
}

/* Modem-status inputs: MCR outputs in loopback (datasheet 8.6), a ready modem otherwise. */
static uint8_t msr_inputs(const struct serial *s)
{
	if (!(s->mcr & MCR_LOOP))
		return MSR_CTS | MSR_DSR | MSR_DCD;
	return ((s->mcr & MCR_DTR) ? MSR_DSR : 0) | ((s->mcr & MCR_RTS) ? MSR_CTS : 0) |
	       ((s->mcr & MCR_OUT1) ? MSR_RI : 0) | ((s->mcr & MCR_OUT2) ? MSR_DCD : 0);
}

/* Latch the new inputs and the delta bits their change implies (MSR bits 0-3). */
static void msr_update(struct serial *s)
{
	uint8_t old = s->msr & 0xf0, in = msr_inputs(s), chg = old ^ in, delta = 0;

	if (chg & MSR_CTS)
		delta |= MSR_DCTS;
	if (chg & MSR_DSR)
		delta |= MSR_DDSR;
	if ((old & MSR_RI) && !(in & MSR_RI)) /* trailing edge of RI only */
		delta |= MSR_TERI;
	if (chg & MSR_DCD)
		delta |= MSR_DDCD;
	s->msr = in | (s->msr & 0x0f) | delta;
}

static void rx_clear(struct serial *s)
{
	s->rx_head = 0;
	s->rx_count = 0;
	if (s->rx_refused) {
		s->rx_refused = 0;
		serial_signal(s->rx_notify_fd);
	}
}

static void rx_push(struct serial *s, uint8_t b)
{
	s->rx[(s->rx_head + s->rx_count) % SERIAL_RX_FIFO] = b;
	s->rx_count++;
}

static uint8_t rx_pop(struct serial *s)
{
	uint8_t b;

	if (!s->rx_count)
		return 0; /* empty RBR: the value is undefined on the chip */
	s->read_count++;
	b = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
	if (--s->rx_count == 0)
		rx_clear(s);
	return b;
}

static void transmit(struct serial *s, uint8_t b)
{
	ssize_t n;

	if (s->mcr & MCR_LOOP) {
		/* Loopback: the byte goes to our own receiver; a full FIFO overruns. */
		if (s->rx_count == SERIAL_RX_FIFO)
			s->lsr_err |= LSR_OE;
		else
			rx_push(s, b);
		return;
	}
	if (s->out_fd < 0) {
		s->write_count++;
		return;
	}
	if (s->out_limit.enabled && !token_bucket_consume(&s->out_limit, 1, clock_ns(), NULL)) {
		s->out_dropped++;
		return;
	}
	do
		n = write(s->out_fd, &b, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		s->write_count++;
	else
		s->missed_write_count++;
	if (n != 1 && ratelimit_allow(&s->rl))
		log_warn("serial: console output not ready (%s): dropping output",
		         n < 0 ? strerror(errno) : "short write");
}

static uint8_t reg_read(struct serial *s, unsigned int reg)
{
	uint8_t v;

	switch (reg) {
	case REG_RBR_THR:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		v = rx_pop(s);
		update_irq(s);
		return v;
	case REG_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case REG_IIR_FCR:
		/* Not DLAB-dependent on a 16550A: Linux's EFR probes rely on reading IIR here. */
		v = iir_id(s);
		if (v == IIR_THRE)
			s->thre_pending = 0; /* reading IIR clears a THRE indication (Table IV) */
		update_irq(s);
		return v | ((s->fcr & FCR_ENABLE) ? IIR_FIFO_ON : 0);
	case REG_LCR:
		return s->lcr;
	case REG_MCR:
		return s->mcr;
	case REG_LSR:
		v = (s->rx_count ? LSR_DR : 0) | s->lsr_err | LSR_THRE | LSR_TEMT;
		s->lsr_err = 0; /* error bits clear when LSR is read */
		update_irq(s);
		return v;
	case REG_MSR:
		v = s->msr;
		s->msr &= 0xf0; /* delta bits clear when MSR is read */
		update_irq(s);
		return v;
	case REG_SCR:
		return s->scr;
	}
	log_guest(&s->rl, LOG_WARN, "serial: read of offset %u outside the UART", reg);
	return 0xff;
}

static void reg_write(struct serial *s, unsigned int reg, uint8_t v)
{
	uint8_t old;

	switch (reg) {
	case REG_RBR_THR:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			return;
		}
		/* Writing THR clears THRE; the byte leaves at once, so THR is empty again. */
		s->thre_pending = 0;
		update_irq(s);
		transmit(s, v);
		s->thre_pending = 1;
		update_irq(s);
		return;
	case REG_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			return;
		}
		if (v & ~IER_MASK)
			log_guest(&s->rl, LOG_DEBUG, "serial: IER reserved bits 0x%02x ignored",
			          v & ~IER_MASK);
		old = s->ier;
		s->ier = v & IER_MASK;
		/* Enabling ETBEI with THR empty raises THRE at once; Linux's THRE test needs it. */
		if ((s->ier & IER_ETBEI) && !(old & IER_ETBEI))
			s->thre_pending = 1;
		else if (!(s->ier & IER_ETBEI))
			s->thre_pending = 0;
		update_irq(s);
		return;
	case REG_IIR_FCR:
		/* FCR (datasheet 8.4): changing bit 0 clears the FIFOs; other bits need bit 0 set.
		 */
		if ((v ^ s->fcr) & FCR_ENABLE)
			rx_clear(s);
		if (v & FCR_ENABLE) {
			if (v & FCR_CLEAR_RX)
				rx_clear(s);
			s->fcr = v & FCR_KEEP;
		} else {
			s->fcr = 0;
		}
		update_irq(s);
		return;
	case REG_LCR:
		s->lcr = v;
		return;
	case REG_MCR:
		if (v & ~MCR_MASK)
			log_guest(&s->rl, LOG_DEBUG, "serial: MCR reserved bits 0x%02x ignored",
			          v & ~MCR_MASK);
		s->mcr = v & MCR_MASK;
		msr_update(s);
		update_irq(s);
		return;
	case REG_LSR:
	case REG_MSR:
		/* Read-only status; writes are for factory test only (Table II note). */
		log_guest(&s->rl, LOG_DEBUG, "serial: write 0x%02x to read-only %s ignored", v,
		          reg == REG_LSR ? "LSR" : "MSR");
		return;
	case REG_SCR:
		s->scr = v;
		return;
	}
	log_guest(&s->rl, LOG_WARN, "serial: write of offset %u outside the UART", reg);
}

/* Register index of byte i of an access at offset; SERIAL_PORTS when outside (no wrap-around). */
static unsigned int byte_reg(uint64_t offset, unsigned int i)
{
	return offset < SERIAL_PORTS && i < SERIAL_PORTS - offset ? (unsigned int)offset + i
	                                                          : SERIAL_PORTS;
}

/* Wide accesses are split into byte accesses, low byte first, as the ISA bus does. */
static uint64_t serial_read(void *opaque, uint64_t offset, unsigned int size)
{
	struct serial *s = opaque;
	uint64_t v = 0;
	unsigned int i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < size && i < 8; i++)
		v |= (uint64_t)reg_read(s, byte_reg(offset, i)) << (8 * i);
	pthread_mutex_unlock(&s->lock);
	return v;
}

static void serial_write(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct serial *s = opaque;
	unsigned int i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < size && i < 8; i++)
		reg_write(s, byte_reg(offset, i), (uint8_t)(value >> (8 * i)));
	pthread_mutex_unlock(&s->lock);
}

const struct bus_ops serial_ops = {.read = serial_read, .write = serial_write};

int serial_set_out_limit(struct serial *s, const struct token_bucket_cfg *cfg)
{
	return token_bucket_init(&s->out_limit, cfg, clock_ns());
}

int serial_init(struct serial *s, int out_fd, int irq_fd)
{
	int rc;

	memset(s, 0, sizeof(*s));
	rc = pthread_mutex_init(&s->lock, NULL);
	if (rc)
		return -rc;
	s->out_fd = out_fd;
	s->irq_fd = irq_fd;
	s->rx_notify_fd = -1;
	s->dll = DEFAULT_DIVISOR;
	s->msr = msr_inputs(s); /* MCR is 0: a ready modem, no deltas */
	return 0;
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

void serial_set_rx_notify(struct serial *s, int fd)
{
	pthread_mutex_lock(&s->lock);
	s->rx_notify_fd = fd;
	pthread_mutex_unlock(&s->lock);
}

size_t serial_input(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	if (s->mcr & MCR_LOOP) {
		/* The receiver input is disconnected in loopback (8.6): the bytes are lost. */
		pthread_mutex_unlock(&s->lock);
		return len;
	}
	while (n < len && s->rx_count < SERIAL_RX_FIFO)
		rx_push(s, buf[n++]);
	if (n < len)
		s->rx_refused = 1;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

void serial_get_stats(struct serial *s, struct serial_stats *out)
{
	pthread_mutex_lock(&s->lock);
	out->read_count = s->read_count;
	out->write_count = s->write_count;
	out->missed_write_count = s->missed_write_count;
	out->rate_limiter_dropped_bytes = s->out_dropped;
	pthread_mutex_unlock(&s->lock);
}

#define SNAP_UART SNAP_TAG('U', 'A', 'R', 'T')

void serial_save(struct serial *s, struct snap_w *w)
{
	size_t at;

	pthread_mutex_lock(&s->lock);
	at = snap_begin(w, SNAP_UART, 1);
	snap_put_u8(w, s->ier);
	snap_put_u8(w, s->lcr);
	snap_put_u8(w, s->mcr);
	snap_put_u8(w, s->scr);
	snap_put_u8(w, s->dll);
	snap_put_u8(w, s->dlm);
	snap_put_u8(w, s->lsr_err);
	snap_put_u8(w, s->msr);
	snap_put_u8(w, s->fcr);
	snap_put_u8(w, (uint8_t) !!s->thre_pending);
	snap_put_u8(w, (uint8_t) !!s->irq_line);
	snap_put_u32(w, s->rx_count);
	for (unsigned int i = 0; i < s->rx_count; i++)
		snap_put_u8(w, s->rx[(s->rx_head + i) % SERIAL_RX_FIFO]);
	snap_end(w, at);
	pthread_mutex_unlock(&s->lock);
}

int serial_restore(struct serial *s, struct snap_r *r, struct err *e)
{
	struct snap_r b;
	uint16_t ver;
	uint32_t n = 0;
	bool thre = false, line = false;
	uint8_t reg[9];
	int rc = snap_section(r, SNAP_UART, 1, "serial port", &ver, &b, e);

	if (rc < 0)
		return rc;
	snap_get(&b, reg, sizeof(reg));
	snap_get_bool(&b, &thre);
	snap_get_bool(&b, &line);
	snap_get_u32(&b, &n);
	if (b.err)
		return snap_done(&b, "serial port", e);
	if (n > SERIAL_RX_FIFO)
		return err_set(e, EINVAL, "serial port: %u saved bytes in a %u-byte FIFO", n,
		               SERIAL_RX_FIFO);
	pthread_mutex_lock(&s->lock);
	s->ier = reg[0];
	s->lcr = reg[1];
	s->mcr = reg[2];
	s->scr = reg[3];
	s->dll = reg[4];
	s->dlm = reg[5];
	s->lsr_err = reg[6];
	s->msr = reg[7];
	s->fcr = reg[8];
	s->thre_pending = thre;
	s->irq_line = line;
	s->rx_head = 0;
	s->rx_count = 0;
	for (uint32_t i = 0; i < n && snap_get_u8(&b, &s->rx[i]); i++)
		s->rx_count = i + 1;
	pthread_mutex_unlock(&s->lock);
	return snap_done(&b, "serial port", e);
}
