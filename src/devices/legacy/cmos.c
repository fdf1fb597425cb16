/* cmos.c - MC146818 RTC over the host clock, CMOS RAM, firmware memory sizes (see cmos.h). */
#include "devices/legacy/cmos.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* MC146818A address map. */
#define REG_SEC    0x00
#define REG_SEC_A  0x01 /* alarm bytes: plain storage */
#define REG_MIN    0x02
#define REG_MIN_A  0x03
#define REG_HOUR   0x04
#define REG_HOUR_A 0x05
#define REG_WDAY   0x06
#define REG_MDAY   0x07
#define REG_MON    0x08
#define REG_YEAR   0x09
#define REG_A      0x0a
#define REG_B      0x0b
#define REG_C      0x0c
#define REG_D      0x0d

#define A_UIP   0x80 /* update in progress (read-only) */
#define B_SET   0x80 /* inhibit updates while the time is set */
#define B_UIE   0x10 /* update-ended interrupt enable: cleared when SET is written 1 */
#define B_DM    0x04 /* data mode: 1 = binary, 0 = BCD */
#define B_24H   0x02
#define D_VRT   0x80 /* valid RAM and time */
#define HOUR_PM 0x80 /* 12-hour mode */

/* PC/SeaBIOS memory-size bytes. */
#define CMOS_BASE_MEM  0x15
#define CMOS_EXT_MEM   0x17 /* old location of the 1-64 MiB size */
#define CMOS_EXT_MEM2  0x30 /* same size, where SeaBIOS reads it */
#define CMOS_MEM_16M   0x34
#define CMOS_MEM_4G    0x5b
#define CMOS_SMP_COUNT 0x5f

#define UIP_WINDOW_NS 244000L /* datasheet: UIP rises at least 244 us before the update */

#define KiB 1024ull
#define MiB (1024ull * 1024)

/* ---- the clock ----------------------------------------------------------------------------- */

static int host_realtime(struct timespec *ts)
{
	return clock_gettime(CLOCK_REALTIME, ts);
}

/* Guest time in seconds, and the phase within the second in ns. */
static int64_t guest_now(const struct cmos *c, long *phase_ns)
{
	struct timespec ts;

	c->host_clock(&ts);
	if (phase_ns)
		*phase_ns = ts.tv_nsec;
	if (c->ram[REG_B] & B_SET)
		return c->frozen;
	return (int64_t)ts.tv_sec + c->offset_sec;
}

/* Broken-down guest time; returns the time it describes. */
static int64_t guest_tm(const struct cmos *c, struct tm *tm)
{
	int64_t now = guest_now(c, NULL);
	time_t t = (time_t)now;

	if (!gmtime_r(&t, tm))
		memset(tm, 0, sizeof(*tm)); /* unreachable for years 0-9999 */
	return now;
}

/*
 * Make the guest's clock read `tm` (normalised through timegm) at the moment
 * it read `base`: the offset moves by the difference, so a second that ticked
 * meanwhile is not lost.
 */
static void guest_set(struct cmos *c, struct tm *tm, int64_t base)
{
	int64_t t;

	tm->tm_isdst = 0;
	t = (int64_t)timegm(tm);
	if (c->ram[REG_B] & B_SET)
		c->frozen = t;
	else
		c->offset_sec += t - base;
}

static uint8_t encode(const struct cmos *c, unsigned int v)
{
	v %= 100;
	return (c->ram[REG_B] & B_DM) ? (uint8_t)v : (uint8_t)((v / 10) << 4 | (v % 10));
}

/* Decode a written value; -1 if it is not valid BCD in BCD mode. */
static int decode(const struct cmos *c, uint8_t v)
{
	if (c->ram[REG_B] & B_DM)
		return v;
	if ((v >> 4) > 9 || (v & 0xf) > 9)
		return -1;
	return (v >> 4) * 10 + (v & 0xf);
}

static uint8_t read_clock(const struct cmos *c, unsigned int reg)
{
	struct tm tm;
	int year, h;

	guest_tm(c, &tm);
	year = tm.tm_year + 1900;
	switch (reg) {
	case REG_SEC:
		return encode(c, (unsigned int)tm.tm_sec % 60); /* a leap second reads as :00 */
	case REG_MIN:
		return encode(c, (unsigned int)tm.tm_min);
	case REG_HOUR:
		if (c->ram[REG_B] & B_24H)
			return encode(c, (unsigned int)tm.tm_hour);
		h = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12;
		return encode(c, (unsigned int)h) | (tm.tm_hour >= 12 ? HOUR_PM : 0);
	case REG_WDAY:
		return encode(c, (unsigned int)tm.tm_wday + 1);
	case REG_MDAY:
		return encode(c, (unsigned int)tm.tm_mday);
	case REG_MON:
		return encode(c, (unsigned int)tm.tm_mon + 1);
	case REG_YEAR:
		return encode(c, (unsigned int)(year % 100));
	default: /* CMOS_REG_CENTURY */
		return encode(c, (unsigned int)(year / 100));
	}
}

static const char *const clock_names[] = {
    [REG_SEC] = "seconds", [REG_MIN] = "minutes", [REG_HOUR] = "hours",
    [REG_MDAY] = "day",    [REG_MON] = "month",   [REG_YEAR] = "year",
};

static void write_clock(struct cmos *c, unsigned int reg, uint8_t v)
{
	struct tm tm;
	int64_t base;
	int d, year;

	if (reg == REG_WDAY)
		return; /* derived from the date */
	if (reg == REG_HOUR && !(c->ram[REG_B] & B_24H)) {
		d = decode(c, v & ~HOUR_PM);
		if (d < 1 || d > 12)
			goto bad;
		d = d % 12 + ((v & HOUR_PM) ? 12 : 0);
	} else {
		d = decode(c, v);
	}
	base = guest_tm(c, &tm);
	year = tm.tm_year + 1900;
	switch (reg) {
	case REG_SEC:
		if (d < 0 || d > 59)
			goto bad;
		tm.tm_sec = d;
		break;
	case REG_MIN:
		if (d < 0 || d > 59)
			goto bad;
		tm.tm_min = d;
		break;
	case REG_HOUR:
		if (d < 0 || d > 23)
			goto bad;
		tm.tm_hour = d;
		break;
	case REG_MDAY:
		if (d < 1 || d > 31)
			goto bad;
		tm.tm_mday = d;
		break;
	case REG_MON:
		if (d < 1 || d > 12)
			goto bad;
		tm.tm_mon = d - 1;
		break;
	case REG_YEAR:
		if (d < 0 || d > 99)
			goto bad;
		tm.tm_year = year / 100 * 100 + d - 1900;
		break;
	default: /* CMOS_REG_CENTURY */
		if (d < 0 || d > 99)
			goto bad;
		tm.tm_year = d * 100 + year % 100 - 1900;
		break;
	}
	guest_set(c, &tm, base);
	return;
bad:
	log_guest(&c->rl, LOG_WARN, "cmos: invalid %s value 0x%02x ignored",
	          reg == CMOS_REG_CENTURY ? "century" : clock_names[reg], v);
}

static int is_clock_reg(unsigned int reg)
{
	return reg == REG_SEC || reg == REG_MIN || reg == REG_HOUR || reg == REG_WDAY ||
	       reg == REG_MDAY || reg == REG_MON || reg == REG_YEAR || reg == CMOS_REG_CENTURY;
}

/* ---- registers ----------------------------------------------------------------------------- */

static uint8_t reg_read(struct cmos *c, unsigned int reg)
{
	long phase;

	if (is_clock_reg(reg))
		return read_clock(c, reg);
	switch (reg) {
	case REG_A:
		guest_now(c, &phase);
		return (c->ram[REG_A] & ~A_UIP) |
		       (!(c->ram[REG_B] & B_SET) && phase >= 1000000000L - UIP_WINDOW_NS ? A_UIP
		                                                                         : 0);
	case REG_C:
		return 0; /* no interrupt flags are ever raised */
	case REG_D:
		return D_VRT;
	}
	return c->ram[reg];
}

static void reg_write(struct cmos *c, unsigned int reg, uint8_t v)
{
	if (is_clock_reg(reg)) {
		write_clock(c, reg, v);
		return;
	}
	switch (reg) {
	case REG_A:
		c->ram[REG_A] = v & ~A_UIP;
		return;
	case REG_B:
		if ((v & B_SET) && !(c->ram[REG_B] & B_SET)) {
			c->frozen = guest_now(c, NULL);
		} else if (!(v & B_SET) && (c->ram[REG_B] & B_SET)) {
			struct timespec ts;

			c->host_clock(&ts);
			c->offset_sec = c->frozen - (int64_t)ts.tv_sec;
		}
		if (v & B_SET)
			v &= ~B_UIE; /* datasheet: writing SET = 1 clears UIE */
		c->ram[REG_B] = v;
		return;
	case REG_C:
	case REG_D:
		log_guest(&c->rl, LOG_DEBUG, "cmos: write 0x%02x to read-only register %c ignored",
		          v, reg == REG_C ? 'C' : 'D');
		return;
	}
	c->ram[reg] = v;
}

/* Byte i of an access at offset: 0 index port, 1 data port, anything else ignored. */
static void port_write(struct cmos *c, uint64_t port, uint8_t v)
{
	if (port == 0)
		c->index = v & 0x7f; /* bit 7: NMI disable on the PC, ignored */
	else if (port == 1)
		reg_write(c, c->index, v);
	else
		log_guest(&c->rl, LOG_WARN, "cmos: write outside the ports");
}

static uint8_t port_read(struct cmos *c, uint64_t port)
{
	if (port == 0)
		return 0xff; /* the index register is write-only */
	if (port == 1)
		return reg_read(c, c->index);
	log_guest(&c->rl, LOG_WARN, "cmos: read outside the ports");
	return 0xff;
}

static uint64_t cmos_read(void *opaque, uint64_t offset, unsigned int size)
{
	struct cmos *c = opaque;
	uint64_t v = 0;
	unsigned int i;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < size && i < 8; i++)
		v |= (uint64_t)port_read(c, offset < CMOS_PORTS ? offset + i : CMOS_PORTS)
		     << (8 * i);
	pthread_mutex_unlock(&c->lock);
	return v;
}

static void cmos_write(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct cmos *c = opaque;
	unsigned int i;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < size && i < 8; i++)
		port_write(c, offset < CMOS_PORTS ? offset + i : CMOS_PORTS,
		           (uint8_t)(value >> (8 * i)));
	pthread_mutex_unlock(&c->lock);
}

const struct bus_ops cmos_ops = {.read = cmos_read, .write = cmos_write};

/* ---- setup --------------------------------------------------------------------------------- */

static void put16(struct cmos *c, unsigned int reg, uint64_t v)
{
	c->ram[reg] = (uint8_t)v;
	c->ram[reg + 1] = (uint8_t)(v >> 8);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

int cmos_init(struct cmos *c, const struct mem_layout *ml, unsigned int vcpus)
{
	uint64_t ext, above16, high;
	int rc;

	if (!ml || vcpus < 1 || vcpus > 256)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	/*
	 * glibc's gmtime_r() reads the time zone file on its first call: do that here, on the
	 * VMM thread, so a vCPU reading the clock never opens a file (its seccomp filter forbids
	 * it).
	 */
	tzset();
	rc = pthread_mutex_init(&c->lock, NULL);
	if (rc)
		return -rc;
	c->host_clock = host_realtime;
	c->ram[REG_A] = 0x26;
	c->ram[REG_B] = B_24H;
	c->ram[REG_D] = D_VRT;

	put16(c, CMOS_BASE_MEM, min_u64(ml->low_size / KiB, 640));
	ext = ml->low_size > MiB ? min_u64((ml->low_size - MiB) / KiB, 63 * 1024) : 0;
	put16(c, CMOS_EXT_MEM, min_u64(ext, 0xffff));
	put16(c, CMOS_EXT_MEM2, min_u64(ext, 0xffff));
	above16 = ml->low_size > 16 * MiB ? (ml->low_size - 16 * MiB) / (64 * KiB) : 0;
	put16(c, CMOS_MEM_16M, min_u64(above16, 0xffff));
	high = min_u64(ml->high_size / (64 * KiB), 0xffffff);
	c->ram[CMOS_MEM_4G] = (uint8_t)high;
	c->ram[CMOS_MEM_4G + 1] = (uint8_t)(high >> 8);
	c->ram[CMOS_MEM_4G + 2] = (uint8_t)(high >> 16);
	c->ram[CMOS_SMP_COUNT] = (uint8_t)(vcpus - 1);
	return 0;
}

void cmos_destroy(struct cmos *c)
{
	pthread_mutex_destroy(&c->lock);
}

#define SNAP_CMOS SNAP_TAG('C', 'M', 'O', 'S')

void cmos_save(struct cmos *c, struct snap_w *w)
{
	size_t at;

	pthread_mutex_lock(&c->lock);
	at = snap_begin(w, SNAP_CMOS, 1);
	snap_put_u8(w, c->index);
	snap_put(w, c->ram, sizeof(c->ram));
	snap_put_u64(w, (uint64_t)c->offset_sec);
	snap_put_u64(w, (uint64_t)c->frozen);
	snap_end(w, at);
	pthread_mutex_unlock(&c->lock);
}

int cmos_restore(struct cmos *c, struct snap_r *r, struct err *e)
{
	struct snap_r b;
	uint16_t ver;
	uint8_t index = 0, ram[sizeof(c->ram)];
	uint64_t off = 0, frozen = 0;
	int rc = snap_section(r, SNAP_CMOS, 1, "CMOS", &ver, &b, e);

	if (rc < 0)
		return rc;
	snap_get_u8(&b, &index);
	snap_get(&b, ram, sizeof(ram));
	snap_get_u64(&b, &off);
	snap_get_u64(&b, &frozen);
	rc = snap_done(&b, "CMOS", e);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&c->lock);
	c->index = index & 0x7f;
	memcpy(c->ram, ram, sizeof(ram));
	c->offset_sec = (int64_t)off;
	c->frozen = (int64_t)frozen;
	pthread_mutex_unlock(&c->lock);
	return 0;
}
