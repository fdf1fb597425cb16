/* cmos.c - the MC146818 RTC and CMOS memory behind ports 0x70/0x71. */
#include "hw.h"

#define RTC_SEC     0x00
#define RTC_MIN     0x02
#define RTC_HOUR    0x04
#define RTC_DAY     0x07
#define RTC_MONTH   0x08
#define RTC_YEAR    0x09
#define RTC_REG_A   0x0a
#define RTC_REG_B   0x0b
#define RTC_CENTURY 0x32

#define RTC_A_UIP    0x80 /* update in progress: the time registers are changing */
#define RTC_B_24H    0x02
#define RTC_B_BINARY 0x04

u8 cmos_read(u8 reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static unsigned int rtc_value(u8 raw, bool binary)
{
	return binary ? raw : (raw >> 4) * 10 + (raw & 0x0f);
}

static bool rtc_snapshot(u8 regs[6])
{
	static const u8 which[6] = {RTC_SEC, RTC_MIN, RTC_HOUR, RTC_DAY, RTC_MONTH, RTC_YEAR};
	unsigned int i;

	/*
	 * UIP is up for 244 us a second; the generous timeout is for a host
	 * that deschedules this vCPU (a loaded CI machine), not for the RTC.
	 */
	if (!wait_until(!(cmos_read(RTC_REG_A) & RTC_A_UIP), 1000))
		return false;
	for (i = 0; i < 6; i++)
		regs[i] = cmos_read(which[i]);
	return true;
}

bool rtc_read(struct rtc_time *t)
{
	u8 a[6], b[6], regb, century;
	unsigned int tries;
	bool binary, pm;

	/*
	 * Two equal snapshots mean no update happened in between.  A snapshot is
	 * a dozen trapped port accesses; a descheduled vCPU can see a second go
	 * by in the middle of one, so allow a few more tries than a busy host
	 * will need.
	 */
	for (tries = 0;; tries++) {
		if (tries == 20 || !rtc_snapshot(a) || !rtc_snapshot(b))
			return false;
		if (!memcmp(a, b, sizeof(a)))
			break;
	}
	regb = cmos_read(RTC_REG_B);
	binary = regb & RTC_B_BINARY;
	pm = !(regb & RTC_B_24H) && (a[2] & 0x80);
	t->sec = rtc_value(a[0], binary);
	t->min = rtc_value(a[1], binary);
	t->hour = rtc_value(a[2] & 0x7f, binary);
	if (!(regb & RTC_B_24H))
		t->hour = t->hour % 12 + (pm ? 12 : 0);
	t->day = rtc_value(a[3], binary);
	t->month = rtc_value(a[4], binary);
	century = cmos_read(RTC_CENTURY);
	century = rtc_value(century, binary);
	t->year = (century >= 19 && century <= 21 ? century : 20) * 100 + rtc_value(a[5], binary);
	return true;
}
