/* t_cmos.c - the RTC tells a plausible date and CMOS memory sizes match the configured machine. */
#include "hw.h"

#define GAP_START 0xc0000000ull

/* A little-endian CMOS value spread over `n` registers from `reg`. */
static u32 cmos_read_n(u8 reg, unsigned int n)
{
	u32 v = 0;

	while (n--)
		v = v << 8 | cmos_read(reg + n);
	return v;
}

static u64 min_u64(u64 a, u64 b)
{
	return a < b ? a : b;
}

GUEST_TEST(cmos)
{
	struct rtc_time t;
	u64 mem_mib, cpus, mem, low, want;
	u32 got;

	if (expect(rtc_read(&t), "RTC time not readable: update-in-progress never cleared or the "
	                         "time kept changing")) {
		printf("# RTC %04u-%02u-%02u %02u:%02u:%02u\n", t.year, t.month, t.day, t.hour,
		       t.min, t.sec);
		expect(t.year >= 2024, "year %u", t.year);
		expect(t.month >= 1 && t.month <= 12, "month %u", t.month);
		expect(t.day >= 1 && t.day <= 31, "day %u", t.day);
		expect(t.hour < 24 && t.min < 60 && t.sec < 60, "time %u:%u:%u", t.hour, t.min,
		       t.sec);
	}

	if (cmdline_u64("test.mem", &mem_mib)) {
		mem = mem_mib * MiB;
		low = min_u64(mem, GAP_START);
		/* 0x30/0x31: KiB between 1 MiB and 64 MiB. */
		want = min_u64(mem - MiB, 63 * MiB) / KiB;
		got = cmos_read_n(0x30, 2);
		expect(got == want, "CMOS 0x30/0x31 = %u KiB above 1 MiB, want %llu", got, want);
		/* 0x34/0x35: 64 KiB units between 16 MiB and the top of low RAM. */
		want = low > 16 * MiB ? min_u64((low - 16 * MiB) / (64 * KiB), 0xffff) : 0;
		got = cmos_read_n(0x34, 2);
		expect(got == want, "CMOS 0x34/0x35 = %u x 64 KiB above 16 MiB, want %llu", got,
		       want);
		/* 0x5b-0x5d: 64 KiB units above 4 GiB. */
		want = (mem - low) / (64 * KiB);
		got = cmos_read_n(0x5b, 3);
		expect(got == want, "CMOS 0x5b-0x5d = %u x 64 KiB above 4 GiB, want %llu", got,
		       want);
	}
	if (cmdline_u64("test.cpus", &cpus)) {
		got = cmos_read(0x5f);
		expect(got == cpus - 1, "CMOS 0x5f = %u, want test.cpus - 1 = %llu", got, cpus - 1);
	}
}
