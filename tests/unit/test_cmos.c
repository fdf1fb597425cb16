/* test_cmos.c - unit tests for the CMOS: memory-size bytes, RTC modes, time setting, index port. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "devices/legacy/cmos.h"
#include "test.h"

static uint8_t rd(struct cmos *c, uint8_t reg)
{
	cmos_ops.write(c, 0, reg, 1);
	return (uint8_t)cmos_ops.read(c, 1, 1);
}

static void wr(struct cmos *c, uint8_t reg, uint8_t v)
{
	cmos_ops.write(c, 0, reg, 1);
	cmos_ops.write(c, 1, v, 1);
}

static unsigned int bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0xf);
}

static void init_mib(struct cmos *c, uint64_t mib, unsigned int vcpus)
{
	struct mem_layout ml;

	mem_layout_init(&ml, mib << 20);
	CHECK_EQ(cmos_init(c, &ml, vcpus), 0);
}

/* What SeaBIOS's qemu_preinit() and qemu_cfg_e820() compute from these bytes. */
static uint64_t seabios_ram_size(struct cmos *c)
{
	uint64_t rs = ((uint64_t)rd(c, 0x34) << 16) | ((uint64_t)rd(c, 0x35) << 24);

	if (rs)
		return rs + (16ull << 20);
	return (((uint64_t)rd(c, 0x30) << 10) | ((uint64_t)rd(c, 0x31) << 18)) + (1ull << 20);
}

static uint64_t seabios_over_4g(struct cmos *c)
{
	return ((uint64_t)rd(c, 0x5b) << 16) | ((uint64_t)rd(c, 0x5c) << 24) |
	       ((uint64_t)rd(c, 0x5d) << 32);
}

TEST(memory_128m)
{
	struct cmos c;

	init_mib(&c, 128, 1);
	CHECK_EQ(rd(&c, 0x15) | rd(&c, 0x16) << 8, 640);
	CHECK_EQ(rd(&c, 0x17) | rd(&c, 0x18) << 8, 63 * 1024); /* 1-64 MiB in KiB */
	CHECK_EQ(rd(&c, 0x30) | rd(&c, 0x31) << 8, 63 * 1024);
	CHECK_EQ(rd(&c, 0x34) | rd(&c, 0x35) << 8, (128 - 16) * 16); /* 64 KiB units */
	CHECK_EQ(rd(&c, 0x5b) | rd(&c, 0x5c) << 8 | rd(&c, 0x5d) << 16, 0);
	CHECK_EQ(rd(&c, 0x5f), 0);
	CHECK_EQ(seabios_ram_size(&c), 128ull << 20);
	CHECK_EQ(seabios_over_4g(&c), 0);
	cmos_destroy(&c);
}

TEST(memory_3_5g_split_around_the_gap)
{
	struct cmos c;

	init_mib(&c, 3584, 4);
	CHECK_EQ(rd(&c, 0x15) | rd(&c, 0x16) << 8, 640);
	CHECK_EQ(rd(&c, 0x17) | rd(&c, 0x18) << 8, 63 * 1024);
	CHECK_EQ(rd(&c, 0x34) | rd(&c, 0x35) << 8, (3072 - 16) * 16); /* 0xbf00: low RAM is 3 GiB */
	CHECK_EQ(rd(&c, 0x5b), 0x00);
	CHECK_EQ(rd(&c, 0x5c), 0x20);
	CHECK_EQ(rd(&c, 0x5d), 0x00); /* 512 MiB above 4 GiB = 0x2000 units */
	CHECK_EQ(rd(&c, 0x5f), 3);
	CHECK_EQ(seabios_ram_size(&c), MMIO_GAP_START);
	CHECK_EQ(seabios_over_4g(&c), 512ull << 20);
	cmos_destroy(&c);
}

TEST(memory_2m)
{
	struct cmos c;

	init_mib(&c, 2, 1);
	CHECK_EQ(rd(&c, 0x15) | rd(&c, 0x16) << 8, 640);
	CHECK_EQ(rd(&c, 0x17) | rd(&c, 0x18) << 8, 1024);
	CHECK_EQ(rd(&c, 0x30) | rd(&c, 0x31) << 8, 1024);
	CHECK_EQ(rd(&c, 0x34) | rd(&c, 0x35) << 8, 0);
	CHECK_EQ(seabios_ram_size(&c), 2ull << 20); /* through the 0x30/0x31 fallback */
	cmos_destroy(&c);
}

TEST(memory_caps)
{
	struct cmos c;
	struct mem_layout ml = {.ram_size = 0, .low_size = 512 * 1024, .high_size = 4ull << 40};

	CHECK_EQ(cmos_init(&c, &ml, 256), 0);
	CHECK_EQ(rd(&c, 0x15) | rd(&c, 0x16) << 8, 512); /* less than 640 KiB */
	CHECK_EQ(rd(&c, 0x17) | rd(&c, 0x18) << 8, 0);
	CHECK_EQ(rd(&c, 0x5b) | rd(&c, 0x5c) << 8 | rd(&c, 0x5d) << 16, 0xffffff);
	CHECK_EQ(rd(&c, 0x5f), 255);
	cmos_destroy(&c);
	CHECK_EQ(cmos_init(&c, &ml, 0), -EINVAL);
	CHECK_EQ(cmos_init(&c, &ml, 257), -EINVAL);
	CHECK_EQ(cmos_init(&c, NULL, 1), -EINVAL);
}

struct rtc_now {
	unsigned int sec, min, hour, wday, mday, mon, year;
};

/* Read the clock the way guests do: retry if the seconds changed underneath. */
static void read_rtc(struct cmos *c, struct rtc_now *n, int binary)
{
	uint8_t s0;

	do {
		while (rd(c, 0x0a) & 0x80)
			;
		s0 = rd(c, 0x00);
		n->min = rd(c, 0x02);
		n->hour = rd(c, 0x04);
		n->wday = rd(c, 0x06);
		n->mday = rd(c, 0x07);
		n->mon = rd(c, 0x08);
		n->year = rd(c, 0x09) + 100u * (binary ? rd(c, 0x32) : bcd(rd(c, 0x32)));
		n->sec = rd(c, 0x00);
	} while (n->sec != s0);
	if (!binary) {
		n->sec = bcd((uint8_t)n->sec);
		n->min = bcd((uint8_t)n->min);
		n->hour = bcd((uint8_t)(n->hour & 0x7f)) | (n->hour & 0x80);
		n->wday = bcd((uint8_t)n->wday);
		n->mday = bcd((uint8_t)n->mday);
		n->mon = bcd((uint8_t)n->mon);
		n->year = bcd((uint8_t)(n->year % 100)) + n->year / 100 * 100;
	}
}

/* Seconds between the RTC reading and the host's UTC time, in [-2, 2] when they agree. */
static long rtc_minus_host(const struct rtc_now *n)
{
	struct tm tm = {.tm_sec = (int)n->sec,
	                .tm_min = (int)n->min,
	                .tm_hour = (int)n->hour,
	                .tm_mday = (int)n->mday,
	                .tm_mon = (int)n->mon - 1,
	                .tm_year = (int)n->year - 1900};

	return (long)(timegm(&tm) - time(NULL));
}

TEST(rtc_bcd_default)
{
	struct cmos c;
	struct rtc_now n;
	struct tm host;
	time_t t;

	init_mib(&c, 128, 1);
	CHECK_EQ(rd(&c, 0x0a) & 0x7f, 0x26);
	CHECK_EQ(rd(&c, 0x0b), 0x02);
	CHECK_EQ(rd(&c, 0x0c), 0x00);
	CHECK_EQ(rd(&c, 0x0d), 0x80);
	read_rtc(&c, &n, 0);
	CHECK(labs(rtc_minus_host(&n)) <= 2);
	t = time(NULL);
	gmtime_r(&t, &host);
	CHECK_EQ(n.year / 100, (unsigned int)(host.tm_year + 1900) / 100);
	CHECK(n.wday >= 1 && n.wday <= 7);
	/* Every BCD digit is a decimal digit. */
	CHECK((rd(&c, 0x00) & 0x0f) <= 9 && (rd(&c, 0x00) >> 4) <= 5);
	cmos_destroy(&c);
}

TEST(rtc_binary_and_12h)
{
	struct cmos c;
	struct rtc_now b, d;
	unsigned int h24;

	init_mib(&c, 128, 1);
	wr(&c, 0x0b, 0x06); /* binary, 24 h */
	read_rtc(&c, &b, 1);
	CHECK(labs(rtc_minus_host(&b)) <= 2);
	CHECK(b.sec < 60 && b.min < 60 && b.hour < 24);

	wr(&c, 0x0b, 0x04); /* binary, 12 h */
	read_rtc(&c, &d, 1);
	h24 = (d.hour & 0x7f) % 12 + ((d.hour & 0x80) ? 12 : 0);
	CHECK((d.hour & 0x7f) >= 1 && (d.hour & 0x7f) <= 12);
	CHECK(h24 == b.hour || h24 == (b.hour + 1) % 24);

	wr(&c, 0x0b, 0x00); /* BCD, 12 h */
	read_rtc(&c, &d, 0);
	h24 = (d.hour & 0x7f) % 12 + ((d.hour & 0x80) ? 12 : 0);
	CHECK(h24 == b.hour || h24 == (b.hour + 1) % 24);
	cmos_destroy(&c);
}

TEST(rtc_set_time)
{
	struct cmos c;
	struct rtc_now n;

	init_mib(&c, 128, 1);
	/* SET: the clock stops and takes the fields one by one. */
	wr(&c, 0x0b, 0x82 | 0x10);
	CHECK_EQ(rd(&c, 0x0b), 0x82); /* UIE cleared by SET */
	wr(&c, 0x00, 0x30);
	wr(&c, 0x02, 0x15);
	wr(&c, 0x04, 0x10);
	wr(&c, 0x07, 0x01);
	wr(&c, 0x08, 0x01);
	wr(&c, 0x09, 0x00);
	wr(&c, 0x32, 0x20);
	CHECK_EQ(rd(&c, 0x0a) & 0x80, 0); /* no update in progress while set */
	CHECK_EQ(rd(&c, 0x00), 0x30);
	CHECK_EQ(rd(&c, 0x02), 0x15);
	CHECK_EQ(rd(&c, 0x04), 0x10);
	CHECK_EQ(rd(&c, 0x06), 0x07); /* 2000-01-01 was a Saturday */
	CHECK_EQ(rd(&c, 0x07), 0x01);
	CHECK_EQ(rd(&c, 0x08), 0x01);
	CHECK_EQ(rd(&c, 0x09), 0x00);
	CHECK_EQ(rd(&c, 0x32), 0x20);
	wr(&c, 0x0b, 0x02); /* run from there */
	read_rtc(&c, &n, 0);
	CHECK_EQ(n.year, 2000);
	CHECK_EQ(n.mon, 1);
	CHECK_EQ(n.mday, 1);
	CHECK_EQ(n.hour, 10);
	CHECK_EQ(n.min, 15);
	CHECK(n.sec >= 30 && n.sec <= 32);

	/* Without SET a single field moves the clock; the rest keeps running. */
	wr(&c, 0x09, 0x42);
	read_rtc(&c, &n, 0);
	CHECK_EQ(n.year, 2042);
	CHECK_EQ(n.min, 15);
	wr(&c, 0x32, 0x19);
	read_rtc(&c, &n, 0);
	CHECK_EQ(n.year, 1942);
	/* 12-hour writes. */
	wr(&c, 0x0b, 0x00);
	wr(&c, 0x04, 0x80 | 0x12); /* 12 PM = noon */
	wr(&c, 0x0b, 0x02);
	CHECK_EQ(rd(&c, 0x04), 0x12);
	wr(&c, 0x0b, 0x00);
	wr(&c, 0x04, 0x12); /* 12 AM = midnight */
	wr(&c, 0x0b, 0x02);
	CHECK_EQ(rd(&c, 0x04), 0x00);
	/* Binary writes. */
	wr(&c, 0x0b, 0x06);
	wr(&c, 0x02, 59);
	CHECK_EQ(rd(&c, 0x02), 59);
	/* The host clock was not touched: a fresh CMOS still reads host time. */
	{
		struct cmos fresh;

		init_mib(&fresh, 16, 1);
		read_rtc(&fresh, &n, 0);
		CHECK(labs(rtc_minus_host(&n)) <= 2);
		cmos_destroy(&fresh);
	}
	cmos_destroy(&c);
}

TEST(rtc_invalid_writes_ignored)
{
	struct cmos c;
	uint8_t min;

	init_mib(&c, 128, 1);
	wr(&c, 0x0b, 0x82); /* frozen, so nothing moves while we look */
	min = rd(&c, 0x02);
	wr(&c, 0x02, 0x5a); /* not BCD */
	CHECK_EQ(rd(&c, 0x02), min);
	wr(&c, 0x02, 0x60); /* minute 60 */
	CHECK_EQ(rd(&c, 0x02), min);
	wr(&c, 0x04, 0x24);
	wr(&c, 0x07, 0x00);
	wr(&c, 0x08, 0x13);
	wr(&c, 0x06, 0x03); /* day of week: derived, ignored */
	wr(&c, 0x0b, 0x80); /* 12 h */
	wr(&c, 0x04, 0x13);
	wr(&c, 0x04, 0x80);
	wr(&c, 0x0b, 0x82);
	CHECK_EQ(rd(&c, 0x02), min);
	/* An impossible date is normalised, not rejected: 31 February. */
	wr(&c, 0x09, 0x23);
	wr(&c, 0x32, 0x20);
	wr(&c, 0x07, 0x01);
	wr(&c, 0x08, 0x02);
	wr(&c, 0x07, 0x28);
	CHECK_EQ(rd(&c, 0x08), 0x02);
	wr(&c, 0x07, 0x31);
	CHECK_EQ(rd(&c, 0x08), 0x03);
	CHECK_EQ(rd(&c, 0x07), 0x03);
	/* Read-only registers. */
	wr(&c, 0x0c, 0xff);
	wr(&c, 0x0d, 0x00);
	CHECK_EQ(rd(&c, 0x0c), 0);
	CHECK_EQ(rd(&c, 0x0d), 0x80);
	wr(&c, 0x0a, 0xff);
	CHECK_EQ(rd(&c, 0x0a), 0x7f); /* UIP is not writable (and SET holds it at 0) */
	cmos_destroy(&c);
}

/* A host clock the test sets: the UIP window is checked at exact phases of the second. */
static struct timespec fake_now;

static int fake_clock(struct timespec *ts)
{
	*ts = fake_now;
	return 0;
}

/* Datasheet: UIP rises 244 us before each update (the second boundary) and falls at it. */
TEST(rtc_update_in_progress)
{
	static const struct {
		long ns;
		int uip;
	} phases[] = {
	    {0, 0}, {500000000L, 0}, {999755000L, 0}, {999757000L, 1}, {999999999L, 1},
	};
	struct cmos c;
	unsigned int i;

	init_mib(&c, 128, 1);
	c.host_clock = fake_clock;
	for (i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		fake_now = (struct timespec){.tv_sec = 1795226176, .tv_nsec = phases[i].ns};
		CHECK_EQ(!!(rd(&c, 0x0a) & 0x80), phases[i].uip);
	}
	/* Seconds advance with the host clock: 1795226176 is 01:56:16 UTC. */
	fake_now = (struct timespec){.tv_sec = 1795226176, .tv_nsec = 0};
	CHECK_EQ(rd(&c, 0x00), 0x16);
	fake_now.tv_sec++;
	CHECK_EQ(rd(&c, 0x00), 0x17);
	cmos_destroy(&c);
}

TEST(index_port)
{
	struct cmos c;

	init_mib(&c, 128, 1);
	/* Bit 7 (NMI disable) is masked off the index. */
	cmos_ops.write(&c, 0, 0x80 | 0x0d, 1);
	CHECK_EQ(cmos_ops.read(&c, 1, 1), 0x80);
	cmos_ops.write(&c, 0, 0x80 | 0x15, 1);
	CHECK_EQ(cmos_ops.read(&c, 1, 1), 0x80); /* 640 = 0x280 */
	/* The top of RAM is reachable, nothing beyond it. */
	wr(&c, 0xff, 0xab);
	CHECK_EQ(rd(&c, 0x7f), 0xab);
	wr(&c, 0x40, 0x11);
	CHECK_EQ(rd(&c, 0xc0), 0x11);
	/* The index port is write-only. */
	CHECK_EQ(cmos_ops.read(&c, 0, 1), 0xff);
	/* A 16-bit write is index then data, a 16-bit read is 0xff then data. */
	cmos_ops.write(&c, 0, 0x5a41, 2);
	CHECK_EQ(rd(&c, 0x41), 0x5a);
	cmos_ops.write(&c, 0, 0x41, 1);
	CHECK_EQ(cmos_ops.read(&c, 0, 2), 0x5aff);
	/* Accesses that run past the two ports (the bus never passes them) are ignored. */
	cmos_ops.write(&c, 1, 0x12345678, 4);
	CHECK_EQ(rd(&c, 0x41), 0x78);
	CHECK_EQ(cmos_ops.read(&c, 1, 4) >> 8, 0xffffff);
	CHECK_EQ(cmos_ops.read(&c, 0x1000, 1), 0xff);
	cmos_ops.write(&c, UINT64_MAX, 0, 8);
	cmos_destroy(&c);
}

TEST(fuzz_no_crash)
{
	struct cmos c;
	uint64_t seed = 7;
	unsigned int i;

	init_mib(&c, 4096, 2);
	for (i = 0; i < 100000; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		if ((seed >> 30) & 1)
			cmos_ops.write(&c, (seed >> 40) & 1, seed >> 48, 1);
		else
			(void)cmos_ops.read(&c, (seed >> 40) & 1, 1);
	}
	CHECK(c.index < CMOS_SIZE);
	cmos_destroy(&c);
}

static void *hammer(void *p)
{
	struct cmos *c = p;
	unsigned int i;

	for (i = 0; i < 20000; i++) {
		cmos_ops.write(c, 0, 0x00, 1);
		(void)cmos_ops.read(c, 1, 1);
	}
	return NULL;
}

TEST(concurrent_vcpus)
{
	struct cmos c;
	pthread_t t[2];
	unsigned int i;

	init_mib(&c, 128, 2);
	for (i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, hammer, &c), 0);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(rd(&c, 0x5f), 1);
	cmos_destroy(&c);
}

int main(void)
{
	log_set_level(LOG_ERROR); /* invalid writes are logged on purpose */
	RUN(memory_128m);
	RUN(memory_3_5g_split_around_the_gap);
	RUN(memory_2m);
	RUN(memory_caps);
	RUN(rtc_bcd_default);
	RUN(rtc_binary_and_12h);
	RUN(rtc_set_time);
	RUN(rtc_invalid_writes_ignored);
	RUN(rtc_update_in_progress);
	RUN(index_port);
	RUN(fuzz_no_crash);
	RUN(concurrent_vcpus);
	return test_summary();
}
