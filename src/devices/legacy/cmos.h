/* cmos.h - MC146818-compatible RTC and CMOS RAM: wall clock and firmware memory sizes. */
#ifndef EMBER_DEVICES_LEGACY_CMOS_H
#define EMBER_DEVICES_LEGACY_CMOS_H

/*
 * The PC's "CMOS": a Motorola MC146818A real-time clock with 128 bytes of
 * battery-backed RAM (the PC/AT's extended version), reached through an
 * index port (0x70) and a data port (0x71).  References are to the MC146818A
 * datasheet (Motorola), "Address Map" and "Registers A-D".
 *
 * Port 0x70 (offset 0 of a 2-byte range): write the register index; bit 7
 * is the PC's NMI-disable gate, which ember ignores (masked off).  Reads of
 * the index port return 0xFF (it is write-only on the AT).  Port 0x71
 * (offset 1): read or write the selected register.  A 2-byte access is split
 * into index then data, as the ISA bus does.
 *
 * Clock (registers 0x00-0x09 and the century byte 0x32):
 *   - UTC from the host's CLOCK_REALTIME plus a per-VM offset in seconds.
 *     The offset starts at 0; a guest that writes a time or date register
 *     moves it (hwclock --systohc works, and the host clock is never touched).
 *     Setting register B's SET bit freezes the guest-visible time so the
 *     guest can write all fields; clearing it restarts the clock from them.
 *   - BCD unless register B bit 2 (DM) is set; 24-hour unless bit 1 is clear
 *     (then hours are 1-12 with bit 7 = PM).  Day of week (0x06, 1 = Sunday)
 *     is derived from the date; writes to it are ignored.  Written values are
 *     validated; a bad one (a non-BCD digit, minute 61, ...) is ignored and
 *     logged.  An impossible date such as 31 February is normalised.
 *   - Register A's update-in-progress bit behaves like the chip's: it reads 1
 *     during the last 244 us before each second boundary (datasheet: "UIP
 *     ... when 0, the update cycle will not occur for at least 244 us"), so
 *     the usual "wait for UIP clear, then read everything" is consistent.
 *     The update itself is instantaneous.  The divider and rate bits are
 *     stored but the clock always runs.
 *   - No interrupts: alarm, periodic and update-ended flags are never set
 *     (register C reads 0), and IRQ8 is not wired.  Interrupt-enable bits in
 *     register B are stored only.  Register D reads 0x80 (valid RAM and time).
 *
 * RAM (0x0E-0x7F, and the alarm bytes 0x01/0x03/0x05) is plain storage the
 * guest may rewrite.  cmos_init() fills the de-facto PC/SeaBIOS layout that
 * QEMU also uses, which SeaBIOS's qemu_preinit()/qemu_cfg_e820() read when
 * booting without fw_cfg:
 *   0x15/0x16  base memory in KiB (640)
 *   0x17/0x18  KiB between 1 MiB and 64 MiB: min(low - 1 MiB, 63 MiB), capped
 *   0x30/0x31  same value (SeaBIOS uses it when 0x34/0x35 is 0, i.e. < 16 MiB)
 *   0x34/0x35  RAM between 16 MiB and the end of low RAM, 64 KiB units, capped 0xFFFF
 *   0x5B-0x5D  RAM above 4 GiB in 64 KiB units, 24 bits, capped 0xFFFFFF
 *   0x5F       number of vCPUs - 1 (SeaBIOS waits for that many APs)
 * Firmware tables should point the ACPI FADT century field at 0x32.
 *
 * Locking: one mutex (several vCPUs may use the index/data pair at once;
 * as on real hardware, guests serialise among themselves).
 */

#include <pthread.h>
#include <time.h>
#include <stdint.h>

#include "boot/layout.h"
#include "bus/bus.h"
#include "util/log.h"
#include "util/snap.h"

#define CMOS_INDEX_PORT 0x70
#define CMOS_PORTS      2 /* index and data */
#define CMOS_GSI        8 /* ISA IRQ 8; not used: the RTC raises no interrupts */
#define CMOS_SIZE       128

#define CMOS_REG_CENTURY 0x32

struct cmos {
	pthread_mutex_t lock;
	uint8_t index;          /* selected register, 0-127 */
	uint8_t ram[CMOS_SIZE]; /* storage; the clock registers are computed on read */
	int64_t offset_sec;     /* guest RTC time = CLOCK_REALTIME + offset_sec */
	int64_t frozen;         /* guest time (s since the epoch) while register B's SET is 1 */
	/* The host wall clock: clock_gettime(CLOCK_REALTIME) unless a test installs another. */
	int (*host_clock)(struct timespec *ts);
	struct ratelimit rl;
};

/*
 * Initialise `c`: clock at host UTC, registers A = 0x26 (32.768 kHz time
 * base, 1024 Hz rate: what firmware programs), B = 0x02 (24 h, BCD),
 * D = 0x80, and the memory-size bytes for `ml` and `vcpus`.  -EINVAL if ml is
 * NULL or vcpus is not 1..256; -errno from pthread_mutex_init.
 */
int cmos_init(struct cmos *c, const struct mem_layout *ml, unsigned int vcpus);

/* Release the mutex.  No handler may be running (unregister the range first). */
void cmos_destroy(struct cmos *c);

/* Bus handlers for the CMOS_PORTS-byte PIO range at CMOS_INDEX_PORT; opaque is the struct cmos. */
extern const struct bus_ops cmos_ops;

/*
 * Saved state (snapshots): a "CMOS" section with the index register, the storage and the
 * guest clock as an offset from the host's wall clock (so the guest's RTC keeps following
 * real time across a save and a restore, as a battery-backed one would).  Restore before
 * the vCPUs run; -EINVAL with the reason in `e` for a short state.
 */
void cmos_save(struct cmos *c, struct snap_w *w);
int cmos_restore(struct cmos *c, struct snap_r *r, struct err *e);

#endif
