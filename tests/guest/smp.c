/* smp.c - find and check the MP table (Intel MP spec 1.4 §4) and start the APs it lists. */
#include "hw.h"

/* MP floating pointer structure (§4.1) and configuration table header (§4.2) offsets. */
#define FPS_PHYSPTR  4
#define FPS_LENGTH   8 /* in 16-byte units */
#define FPS_FEATURE1 11
#define PCMP_LENGTH  4
#define PCMP_COUNT   34
#define PCMP_LAPIC   36
#define PCMP_EXT_LEN 40
#define PCMP_EXT_SUM 42
#define PCMP_ENTRIES 44

enum mp_entry_type { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_IOINT, MP_LINT };

#define MP_CPU_EN 0x01
#define MP_CPU_BP 0x02

static u8 sum8(const u8 *p, size_t n)
{
	u8 s = 0;

	while (n--)
		s += *p++;
	return s;
}

static u16 rd16(const u8 *p)
{
	return (u16)(p[0] | p[1] << 8);
}

static u32 rd32(const u8 *p)
{
	return rd16(p) | (u32)rd16(p + 2) << 16;
}

/* The floating pointer: "_MP_" on a 16-byte boundary, 16 bytes long, summing to zero. */
static u64 mp_scan(u64 base, u64 len)
{
	u64 a;

	for (a = base; a + 16 <= base + len; a += 16) {
		const u8 *p = phys(a);

		if (!memcmp(p, "_MP_", 4) && p[FPS_LENGTH] == 1 && !sum8(p, 16))
			return a;
	}
	return 0;
}

/* §4: the first KiB of the EBDA, else the last KiB of base memory, then the BIOS ROM. */
static u64 mp_find(void)
{
	u64 ebda = (u64) * (volatile u16 *)phys(0x40e) << 4;
	u64 base_kib = *(volatile u16 *)phys(0x413);
	u64 a = 0;

	if (ebda)
		a = mp_scan(ebda, 1024);
	if (!a)
		a = mp_scan(base_kib ? base_kib * 1024 - 1024 : 0x9fc00, 1024);
	if (!a)
		a = mp_scan(0xf0000, 0x10000);
	return a;
}

bool mp_parse(struct mp_info *mp, char *why, size_t len)
{
	const u8 *fps, *t, *e, *end;
	unsigned int size;

	memset(mp, 0, sizeof(*mp));
	mp->fps_addr = mp_find();
	if (!mp->fps_addr) {
		snprintf(why, len,
		         "no MP floating pointer (_MP_) in EBDA, base memory or BIOS ROM");
		return false;
	}
	fps = phys(mp->fps_addr);
	if (fps[FPS_FEATURE1]) {
		snprintf(why, len, "MP default configuration %u, no table", fps[FPS_FEATURE1]);
		return false;
	}
	mp->table_addr = rd32(fps + FPS_PHYSPTR);
	t = phys(mp->table_addr);
	if (!mp->table_addr || memcmp(t, "PCMP", 4)) {
		snprintf(why, len, "no PCMP table at 0x%llx", mp->table_addr);
		return false;
	}
	if (rd16(t + PCMP_LENGTH) < PCMP_ENTRIES || sum8(t, rd16(t + PCMP_LENGTH))) {
		snprintf(why, len, "MP table at 0x%llx: bad length %u or checksum", mp->table_addr,
		         rd16(t + PCMP_LENGTH));
		return false;
	}
	if ((u8)(sum8(t + rd16(t + PCMP_LENGTH), rd16(t + PCMP_EXT_LEN)) + t[PCMP_EXT_SUM])) {
		snprintf(why, len, "MP extended table: bad checksum");
		return false;
	}
	mp->lapic_addr = rd32(t + PCMP_LAPIC);
	mp->entries_declared = rd16(t + PCMP_COUNT);
	/* Walk by length, as Linux does; the test compares with the declared entry count. */
	end = t + rd16(t + PCMP_LENGTH);
	for (e = t + PCMP_ENTRIES; e < end; e += size, mp->entries++) {
		size = e[0] == MP_PROCESSOR ? 20 : 8;
		if (e[0] > MP_LINT || e + size > end) {
			snprintf(why, len, "MP entry %u: bad type %u or beyond the table",
			         mp->entries, e[0]);
			return false;
		}
		if (e[0] != MP_PROCESSOR)
			continue;
		if (mp->ncpus == MP_MAX_CPUS) {
			snprintf(why, len, "more than %u processor entries", MP_MAX_CPUS);
			return false;
		}
		mp->cpus[mp->ncpus].apic_id = e[1];
		mp->cpus[mp->ncpus].enabled = e[3] & MP_CPU_EN;
		mp->cpus[mp->ncpus].bsp = e[3] & MP_CPU_BP;
		mp->ncpus++;
	}
	return true;
}

unsigned int smp_start_aps(const struct mp_info *mp, int *failed_id)
{
	u8 self = lapic_id();
	unsigned int i, pass, answered = 0;

	memcpy(phys(AP_TRAMP_ADDR), ap_tramp_start, ap_tramp_end - ap_tramp_start);
	for (i = 0; i < ARRAY_SIZE(ap_alive); i++)
		ap_alive[i] = 0;

	/* INIT, 10 ms, then two STARTUPs 200 us apart (MP spec B.4), every AP at once. */
	for (i = 0; i < mp->ncpus; i++)
		if (mp->cpus[i].enabled && mp->cpus[i].apic_id != self)
			lapic_send_ipi(mp->cpus[i].apic_id,
			               LAPIC_ICR_INIT | LAPIC_ICR_ASSERT | LAPIC_ICR_LEVEL);
	udelay(10000);
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < mp->ncpus; i++)
			if (mp->cpus[i].enabled && mp->cpus[i].apic_id != self)
				lapic_send_ipi(mp->cpus[i].apic_id, LAPIC_ICR_STARTUP |
				                                        LAPIC_ICR_ASSERT |
				                                        (AP_TRAMP_ADDR >> 12));
		udelay(200);
	}

	*failed_id = -1;
	for (i = 0; i < mp->ncpus; i++) {
		const struct mp_cpu *c = &mp->cpus[i];

		if (!c->enabled || c->apic_id == self)
			continue;
		if (wait_until(ap_alive[c->apic_id], 2000))
			answered++;
		else
			*failed_id = c->apic_id;
	}
	return answered;
}
