/* boottimer.h - Firecracker's boot timer: the guest says "booted", ember logs how long it took. */
#ifndef EMBER_DEVICES_LEGACY_BOOTTIMER_H
#define EMBER_DEVICES_LEGACY_BOOTTIMER_H

/*
 * With --boot-timer, a 4 KiB MMIO range at BOOTTIMER_GPA: a guest write of
 * the byte 123 at offset 0 (Firecracker's "guest boot complete" signal,
 * written by an init through /dev/mem) logs, at info level, the wall and
 * process CPU time since the VM was built (InstanceStart):
 * "Guest-boot-time = N us M ms, C CPU us D CPU ms", as Firecracker does.
 * Any other write, and every read (0), do nothing.  Firecracker puts the
 * device at the start of its MMIO space (0xd0000000); that address is in
 * ember's PCI window, so ember's sits at the top of its platform MMIO area,
 * inside the e820 hole.
 */

#include <stdint.h>

#include "bus/bus.h"
#include "util/log.h"

#define BOOTTIMER_GPA   0xf0fff000ull
#define BOOTTIMER_SIZE  0x1000ull
#define BOOTTIMER_MAGIC 123

struct boottimer {
	uint64_t start_ns, start_cpu_ns; /* CLOCK_MONOTONIC and CLOCK_PROCESS_CPUTIME_ID */
	uint64_t signals;                /* magic writes seen (tests, metrics) */
	struct ratelimit rl;
};

/* Start counting now. */
void boottimer_init(struct boottimer *t);

extern const struct bus_ops boottimer_ops;

#endif
