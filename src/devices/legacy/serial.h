/* serial.h - 16550A-compatible UART (COM1) for the guest console. */
#ifndef EMBER_DEVICES_LEGACY_SERIAL_H
#define EMBER_DEVICES_LEGACY_SERIAL_H

/*
 * A National Semiconductor PC16550D-compatible UART, the one every PC OS
 * probes for at COM1 (I/O ports 0x3F8-0x3FF, ISA IRQ 4).  References are to
 * the PC16550D datasheet (National Semiconductor, June 1995), "Table II.
 * Summary of Registers" and sections 8.x.
 *
 * What ember models, and what it does not:
 *   - All eight registers with the DLAB switch, IIR priorities and the
 *     FIFO-enabled bits, so Linux's 8250 driver identifies a 16550A.
 *   - Transmission is instantaneous: every THR write goes straight to
 *     `out_fd`, so LSR.THRE and LSR.TEMT always read 1 and a THRE interrupt
 *     is re-armed right after each THR write.  Line speed, parity and stop
 *     bits are stored but have no effect.
 *   - A receive FIFO of SERIAL_RX_FIFO bytes (the real chip has 16; a larger
 *     one only means drivers, which loop on LSR.DR, see more bytes at once),
 *     filled by serial_input().  Bytes that do not fit are refused, not lost:
 *     the VMM keeps them and retries when the FIFO drains (serial_set_rx_notify).
 *     The same FIFO is used when the guest has FIFOs disabled (16450 mode).
 *   - Loopback (MCR bit 4) as section 8.6 describes: THR bytes go to the
 *     receiver (overrunning into LSR.OE when full), MSR reads back DTR/RTS/
 *     OUT1/OUT2 as DSR/CTS/RI/DCD, external input is disconnected.
 *   - Outside loopback the modem inputs read as a connected, ready modem:
 *     CTS, DSR and DCD asserted (MSR 0xB0), RI not.
 *   - No break generation or detection, no parity/framing errors.
 *
 * Interrupt line.  On PCs the UART's INTRPT output reaches the ISA IRQ pin
 * through a buffer enabled by the UART's OUT2 output (IBM PC/AT serial
 * adapter; OUT2 is active low on the pin, so MCR bit 3 = 1 enables it).
 * Linux sets OUT2 whenever the port has an IRQ (serial8250_do_startup), and
 * drivers written for PCs rely on the gate, so ember models it: the line is
 * INTRPT && MCR.OUT2 && !MCR.LOOP (in loopback the OUT pins are forced
 * inactive, datasheet 8.6).  The IOAPIC pin for an ISA IRQ is edge-triggered,
 * so the device writes 1 to `irq_fd` when the line goes from inactive to
 * active, and again on each new THRE event while it stays enabled.
 *
 * Wide accesses.  An ISA bus splits a 16- or 32-bit I/O access to an 8-bit
 * device into consecutive byte accesses, so a 2- or 4-byte access at any
 * offset is handled as 1-byte accesses to offset, offset+1, ... (low byte
 * first), each with its side effects.
 *
 * Locking: one mutex per UART; the vCPU threads (bus handlers) and the VMM
 * thread (serial_input) both take it.  Guest mistakes are logged through a
 * per-device rate limiter, never fatal.
 */

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "util/log.h"
#include "util/ratelimit.h"
#include "util/snap.h"

#define SERIAL_COM1_BASE 0x3f8 /* I/O port */
#define SERIAL_COM1_GSI  4     /* ISA IRQ 4 */
#define SERIAL_PORTS     8     /* length of the I/O range */
#define SERIAL_RX_FIFO   64    /* receive FIFO size in bytes */

struct serial {
	pthread_mutex_t lock;
	int out_fd;       /* transmit: THR bytes are written here; -1: discarded */
	int irq_fd;       /* eventfd (KVM irqfd on SERIAL_COM1_GSI); -1: no interrupt */
	int rx_notify_fd; /* eventfd written when the FIFO drains after a refusal; -1: none */

	/* Registers (PC16550D Table II). */
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	uint8_t lsr_err;  /* LSR error bits latched until LSR is read (only OE here) */
	uint8_t msr;      /* modem status: inputs in bits 4-7, deltas in bits 0-3 */
	uint8_t fcr;      /* FIFO enable (bit 0) and receive trigger (bits 6-7) as written */
	int thre_pending; /* THR-empty interrupt source latched (datasheet Table IV) */
	int irq_line;     /* the gated interrupt line as last computed */
	int rx_refused;   /* serial_input() refused bytes since the FIFO last drained */

	uint8_t rx[SERIAL_RX_FIFO];
	unsigned int rx_head, rx_count;

	struct ratelimit rl;

	/* Statistics (under lock): see struct serial_stats. */
	uint64_t read_count, write_count, missed_write_count;

	/* Output limiter (the API's serial rate_limiter): bytes over it are dropped and counted. */
	struct token_bucket out_limit;
	uint64_t out_dropped; /* bytes dropped by out_limit (uart rate_limiter_dropped_bytes) */
};

/* Counters since serial_init() (Firecracker's "uart" metrics). */
struct serial_stats {
	uint64_t read_count;  /* bytes the guest took from the receive FIFO (RBR) */
	uint64_t write_count; /* bytes the guest transmitted (THR) that left: out_fd or none */
	uint64_t missed_write_count;         /* transmitted bytes out_fd could not take (dropped) */
	uint64_t rate_limiter_dropped_bytes; /* bytes over the output limiter */
};

/* Read the counters (takes the lock; any thread). */
void serial_get_stats(struct serial *s, struct serial_stats *out);

/*
 * Initialise `s` in its reset state (Table II "reset" column).  `out_fd` and
 * `irq_fd` are borrowed, not closed; either may be -1.  out_fd should be
 * non-blocking: if a write would block or is short, the bytes that do not fit
 * are dropped with a rate-limited warning rather than stalling the vCPU; a
 * blocking out_fd stalls the vCPU for as long as its reader does (the
 * behaviour of a terminal with flow control).  Returns 0 or -errno.
 */
int serial_init(struct serial *s, int out_fd, int irq_fd);

/* Release the mutex.  No handler may be running (unregister the range first). */
void serial_destroy(struct serial *s);

/*
 * Limit console output to a token bucket of bytes (the API's /serial
 * rate_limiter); guest bytes over the limit are dropped, silently for the
 * guest, and counted in out_dropped.  A zeroed bucket means no limit.
 * -EINVAL for an invalid bucket.  Call before the vCPUs start.
 */
int serial_set_out_limit(struct serial *s, const struct token_bucket_cfg *cfg);

/*
 * Ask for a write of 1 to eventfd `fd` (borrowed; -1 disables) each time the
 * guest empties the receive FIFO after serial_input() refused bytes, so the
 * VMM can stop polling its input while the FIFO is full and resume then.
 */
void serial_set_rx_notify(struct serial *s, int fd);

/*
 * Host input (VMM thread): append up to `len` bytes to the receive FIFO and
 * raise the received-data interrupt if enabled.  Returns the number of bytes
 * taken; fewer than `len` when the FIFO is full (the rest should be offered
 * again later).  In loopback mode the receiver is disconnected from the
 * outside, so the bytes are taken and dropped, as on the real chip.
 */
size_t serial_input(struct serial *s, const uint8_t *buf, size_t len);

/* Bus handlers for the SERIAL_PORTS-byte PIO range; opaque is the struct serial. */
extern const struct bus_ops serial_ops;

/*
 * Saved state (snapshots): a "UART" section with the registers, the latched interrupt
 * sources and the receive FIFO.  Restore into a UART just initialised, before the vCPUs
 * run; -EINVAL with the reason in `e` for a short or impossible state (a FIFO count past
 * its size).  The counters and the output limiter are the new process's own.
 */
void serial_save(struct serial *s, struct snap_w *w);
int serial_restore(struct serial *s, struct snap_r *r, struct err *e);

#endif
