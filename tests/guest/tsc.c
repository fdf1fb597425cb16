/* tsc.c - time for bounded waits: the TSC rate from CPUID, or an upper-bound guess. */
#include "hw.h"

static void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

u64 tsc_per_ms(void)
{
	static u64 rate;
	u32 max, a, b, c, d;

	if (rate)
		return rate;
	/* Guess high so that waits are at least as long as asked for: 4 GHz. */
	rate = 4000000;
	cpuid(0, &max, &b, &c, &d);
	if (max >= 0x15) {
		cpuid(0x15, &a, &b, &c, &d); /* TSC = crystal (ECX Hz) * EBX / EAX */
		if (a && b && c)
			return rate = (u64)c * b / a / 1000;
	}
	if (max >= 0x16) {
		cpuid(0x16, &a, &b, &c, &d); /* EAX = base frequency in MHz */
		if (a & 0xffff)
			rate = (u64)(a & 0xffff) * 1000;
	}
	return rate;
}

void udelay(u64 us)
{
	u64 end = rdtsc() + us * tsc_per_ms() / 1000;

	while (rdtsc() < end)
		cpu_relax();
}
