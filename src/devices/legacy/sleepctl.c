/* sleepctl.c - ACPI sleep control/status registers (see sleepctl.h). */
#include "devices/legacy/sleepctl.h"

#include <string.h>

#define SLP_EN     0x20
#define SLP_TYP(v) (((v) >> 2) & 7)

void sleepctl_init(struct sleepctl *s, void (*poweroff)(void *opaque), void *opaque)
{
	memset(s, 0, sizeof(*s));
	s->poweroff = poweroff;
	s->opaque = opaque;
}

static uint64_t sleepctl_read(void *opaque, uint64_t off, unsigned int size)
{
	(void)opaque;
	(void)off;
	(void)size;
	return 0; /* control: write-only bits read 0; status: no wake event */
}

static void sleepctl_write(void *opaque, uint64_t off, uint64_t value, unsigned int size)
{
	struct sleepctl *s = opaque;
	uint8_t v = (uint8_t)value;

	(void)size;
	if (off != 0 || !(v & SLP_EN))
		return; /* status writes clear nothing we set; no SLP_EN: nothing to do */
	if (SLP_TYP(v) == SLEEPCTL_S5) {
		if (s->poweroff)
			s->poweroff(s->opaque);
		return;
	}
	log_guest(&s->rl, LOG_WARN, "ACPI sleep state with SLP_TYP %u is not supported; ignored",
	          SLP_TYP(v));
}

const struct bus_ops sleepctl_ops = {.read = sleepctl_read, .write = sleepctl_write};
