/* boottimer.c - Firecracker's boot timer (boottimer.h). */
#include "devices/legacy/boottimer.h"

#include <time.h>

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void boottimer_init(struct boottimer *t)
{
	*t = (struct boottimer){0};
	t->start_ns = now_ns(CLOCK_MONOTONIC);
	t->start_cpu_ns = now_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static void boottimer_write(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct boottimer *t = opaque;
	uint64_t us, cpu_us;

	(void)size;
	if (offset != 0 || (value & 0xff) != BOOTTIMER_MAGIC)
		return;
	us = (now_ns(CLOCK_MONOTONIC) - t->start_ns) / 1000u;
	cpu_us = (now_ns(CLOCK_PROCESS_CPUTIME_ID) - t->start_cpu_ns) / 1000u;
	__atomic_add_fetch(&t->signals, 1, __ATOMIC_RELAXED);
	/* The guest decides how often this runs: rate limited like any guest-caused message. */
	log_limited(&t->rl, LOG_INFO, "Guest-boot-time = %llu us %llu ms, %llu CPU us %llu CPU ms",
	            (unsigned long long)us, (unsigned long long)(us / 1000),
	            (unsigned long long)cpu_us, (unsigned long long)(cpu_us / 1000));
}

static uint64_t boottimer_read(void *opaque, uint64_t offset, unsigned int size)
{
	(void)opaque;
	(void)offset;
	(void)size;
	return 0;
}

const struct bus_ops boottimer_ops = {.read = boottimer_read, .write = boottimer_write};
