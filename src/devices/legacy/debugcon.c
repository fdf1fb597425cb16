/* debugcon.c - port 0x402 debug console (see debugcon.h). */
#include "devices/legacy/debugcon.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

void debugcon_init(struct debugcon *d, int out_fd)
{
	memset(d, 0, sizeof(*d));
	d->out_fd = out_fd;
}

static uint64_t debugcon_read(void *opaque, uint64_t off, unsigned int size)
{
	(void)opaque;
	(void)off;
	(void)size;
	return DEBUGCON_MAGIC;
}

static void debugcon_write(void *opaque, uint64_t off, uint64_t value, unsigned int size)
{
	struct debugcon *d = opaque;
	uint8_t c = (uint8_t)value;

	(void)off;
	(void)size;
	if (d->out_fd >= 0 && write(d->out_fd, &c, 1) != 1)
		log_guest(&d->rl, LOG_WARN, "debug console: output lost: %s", strerror(errno));
}

const struct bus_ops debugcon_ops = {.read = debugcon_read, .write = debugcon_write};
