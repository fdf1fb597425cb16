/* i8042.h - PS/2 keyboard controller: guest reset, Ctrl-Alt-Del injection, a minimal keyboard. */
#ifndef EMBER_DEVICES_LEGACY_I8042_H
#define EMBER_DEVICES_LEGACY_I8042_H

/*
 * The 8042 keyboard controller of the IBM PC/AT, as PS/2 systems extended it
 * (IBM PS/2 Hardware Interface Technical Reference, "Keyboard/Auxiliary
 * Device Controller").  ember needs it for two things: guests reset the
 * machine through it (command 0xFE, or output port bit 0 cleared through
 * 0xD1), and the VMM sends Ctrl-Alt-Del through it to ask a guest to shut
 * down.  It models enough of the controller and of an MF2 keyboard for
 * Linux's i8042 and atkbd drivers to probe it without timeouts:
 *
 *   port 0x60 (i8042_data_ops)  read: output buffer; write: data for the
 *                               pending controller command, else a byte
 *                               sent to the keyboard
 *   port 0x64 (i8042_cmd_ops)   read: status register; write: controller
 *                               command
 *
 * Each port is its own 1-byte bus range (0x61-0x63 belong to others), so each
 * handler only ever sees offset 0 and size 1; anything else is ignored.
 *
 * Output buffer: bytes from the controller and the keyboard go through a
 * I8042_QUEUE-byte FIFO whose head is the output buffer (status bit 0, OBF).
 * Every time a byte reaches the output buffer while the command byte's
 * keyboard-interrupt bit (bit 0) is set, IRQ1 gets an edge: `irq1_fd` is
 * written.  A controller command's reply flushes older bytes first, so the
 * next read of 0x60 returns the reply.
 *
 * No auxiliary (mouse) port is wired: 0xA9 reports "clock line stuck high",
 * and 0xD3 echoes its byte without the auxiliary-data status bit, so Linux's
 * i8042_check_aux() gives up at once instead of waiting for timeouts.
 *
 * Locking: one mutex; vCPU threads (handlers) and the VMM thread
 * (i8042_send_ctrl_alt_del) both take it.  The reset callback is called
 * without it held.  Guest mistakes are logged through a per-device rate
 * limiter, never fatal.
 */

#include <pthread.h>
#include <stdint.h>

#include "bus/bus.h"
#include "util/log.h"
#include "util/snap.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT  0x64
#define I8042_GSI       1  /* ISA IRQ 1 (keyboard) */
#define I8042_QUEUE     16 /* output FIFO size in bytes */

struct i8042 {
	pthread_mutex_t lock;
	void (*reset)(void *opaque); /* CPU reset requested by the guest; may be NULL */
	void *opaque;
	int irq1_fd; /* eventfd (KVM irqfd on I8042_GSI); -1: no interrupt */

	uint8_t ram[32];      /* controller RAM; ram[0] is the command byte */
	uint8_t outport;      /* output port (bit 0: reset, active low; bit 1: A20) */
	uint8_t last_was_cmd; /* status bit 3: the last write went to port 0x64 */
	uint8_t pending_cmd;  /* controller command waiting for its byte on 0x60; 0: none */
	uint8_t kbd_pending;  /* keyboard command waiting for its parameter; 0: none */

	uint8_t queue[I8042_QUEUE];
	unsigned int q_head, q_count;

	struct ratelimit rl;
};

/*
 * Initialise `k` in the state firmware leaves it in: keyboard enabled,
 * keyboard interrupt on, system flag set, no translation (command byte 0x05,
 * as Firecracker), A20 on.  `reset` is called (from a vCPU thread, without
 * the device lock) when the guest pulses the reset line; `irq1_fd` is
 * borrowed.  Returns 0 or -errno.
 */
int i8042_init(struct i8042 *k, void (*reset)(void *opaque), void *opaque, int irq1_fd);

/* Release the mutex.  No handler may be running (unregister the ranges first). */
void i8042_destroy(struct i8042 *k);

/*
 * Queue the keyboard's scan codes for pressing and releasing Ctrl, Alt and
 * Delete, and raise IRQ1 (VMM thread).  The codes follow the command byte's
 * translation bit (bit 6) as a real controller would deliver them: set 1
 * (1D 38 E0 53, then 9D B8 E0 D3) when translating, set 2 otherwise
 * (14 11 E0 71, then F0 14 F0 11 E0 F0 71).  Firecracker sends the same set-2
 * make codes (its controller never translates); ember also sends the breaks
 * so no modifier stays stuck if the guest does not reboot.  The codes are
 * queued even while the guest has the keyboard interface disabled (a real
 * keyboard holds keystrokes meanwhile).  All or nothing: -ENOSPC if the
 * output FIFO lacks room, else 0.
 */
int i8042_send_ctrl_alt_del(struct i8042 *k);

/* Bus handlers: one 1-byte range each; opaque is the struct i8042. */
extern const struct bus_ops i8042_data_ops; /* port 0x60 */
extern const struct bus_ops i8042_cmd_ops;  /* port 0x64 */

/*
 * Saved state (snapshots): an "I842" section with the controller RAM, output port,
 * pending commands and the output queue.  Restore before the vCPUs run; -EINVAL with the
 * reason in `e` for a short or impossible state.
 */
void i8042_save(struct i8042 *k, struct snap_w *w);
int i8042_restore(struct i8042 *k, struct snap_r *r, struct err *e);

#endif
