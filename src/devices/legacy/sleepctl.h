/* sleepctl.h - hardware-reduced ACPI sleep control/status registers: how a guest powers off. */
#ifndef EMBER_DEVICES_LEGACY_SLEEPCTL_H
#define EMBER_DEVICES_LEGACY_SLEEPCTL_H

/*
 * ACPI 6.5 §4.8.3.7: on a hardware-reduced platform the FADT's
 * SLEEP_CONTROL_REG and SLEEP_STATUS_REG replace the PM1 blocks.  ember puts
 * them at I/O ports SLEEPCTL_PORT (control) and SLEEPCTL_PORT + 1 (status).
 * A write to the control register with SLP_EN (bit 5) and SLP_TYPx (bits 4:2)
 * equal to the \_S5 value of ember's DSDT (5) is a power-off: the callback
 * stops the VM.  Other sleep states are not supported (logged, ignored); the
 * status register reads 0.
 */

#include "bus/bus.h"
#include "util/log.h"

#define SLEEPCTL_PORT  0x600
#define SLEEPCTL_PORTS 2
#define SLEEPCTL_S5    5 /* SLP_TYP of \_S5 in ember's DSDT */

struct sleepctl {
	void (*poweroff)(void *opaque);
	void *opaque;
	struct ratelimit rl;
};

void sleepctl_init(struct sleepctl *s, void (*poweroff)(void *opaque), void *opaque);

extern const struct bus_ops sleepctl_ops;

#endif
