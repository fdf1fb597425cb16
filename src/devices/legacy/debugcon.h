/* debugcon.h - the firmware debug console at port 0x402 (QEMU's and Bochs' convention). */
#ifndef EMBER_DEVICES_LEGACY_DEBUGCON_H
#define EMBER_DEVICES_LEGACY_DEBUGCON_H

/*
 * SeaBIOS (CONFIG_DEBUG_IO) and other firmware print their log one byte at a
 * time to I/O port 0x402 after checking that a read of it returns 0xE9 (the
 * Bochs "port E9 hack" signature).  ember answers the read and copies every
 * byte written to `out_fd` (ember's standard error, its log, so the firmware's
 * log never interleaves with the guest's serial console on standard output).
 * A 1-byte range; wider accesses read 0xE9 in the low byte and write the low byte.
 */

#include "bus/bus.h"
#include "util/log.h"

#define DEBUGCON_PORT  0x402
#define DEBUGCON_MAGIC 0xe9

struct debugcon {
	int out_fd;
	struct ratelimit rl;
};

void debugcon_init(struct debugcon *d, int out_fd);

extern const struct bus_ops debugcon_ops;

#endif
