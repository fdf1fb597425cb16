/* t_virtio_blk_bench.c - virtio-blk read throughput: sequential 1 MiB and random 4 KiB requests. */
#include "virtio.h"

/*
 * Not a correctness test: it runs only with test.blk_bench=1 (and
 * test.virtio_blk=pci|mmio), and skips otherwise.  Four phases, each for
 * test.bench_ms milliseconds (default 2000) or test.bench_mib MiB, whichever
 * ends first, reading the disk from sector 0 (wrapping at its end):
 *
 *   # blk-bench seq1m MiB/s=...        1 MiB requests, one at a time
 *   # blk-bench seq1m qd32 MiB/s=...   1 MiB requests, 32 in flight
 *   # blk-bench rand4k qd1 iops=...    4 KiB at random 4 KiB-aligned offsets
 *   # blk-bench rand4k qd32 iops=...
 *
 * Time is the TSC, calibrated against the LAPIC timer and PIT channel 2
 * (see calibrate_tsc()).  Every request reads into
 * the same buffer: the data is not looked at.  Poll mode (test.virtio_mode=poll)
 * keeps the whole loop in ring 3 without interrupts.
 */

#define PIT_HZ     1193182ull
#define PIT_COUNT  59659 /* 50 ms */
#define SEQ_LEN    (1024 * 1024)
#define RAND_LEN   4096
#define MAX_QD     32
#define TIMEOUT_MS 10000

static u64 tsc_khz;

/* Plausible TSC rates: 100 MHz to 20 GHz. */
static bool plausible(u64 khz)
{
	return khz >= 100000 && khz <= 20000000;
}

/*
 * TSC ticks per millisecond, measured over 50 ms of PIT channel 2 (mode 0,
 * gate on, OUT2 read back through port 0x61).  0 if the PIT does not behave
 * (no speaker port: 0x61 reads 0xff, OUT2 high from the start).
 */
static u64 calibrate_pit(void)
{
	u64 t0, t1, end;
	u8 v = inb(0x61);

	outb(0x61, (u8)((v & ~0x02) | 0x01)); /* gate 2 high, speaker off */
	outb(0x43, 0xb0);                     /* channel 2, lo/hi byte, mode 0, binary */
	outb(0x42, PIT_COUNT & 0xff);
	outb(0x42, PIT_COUNT >> 8);
	t0 = rdtsc();
	if (inb(0x61) & 0x20)
		return 0;
	end = t0 + 1000 * tsc_per_ms();
	while (!(inb(0x61) & 0x20))
		if (rdtsc() > end)
			return 0;
	t1 = rdtsc();
	outb(0x61, v);
	return (t1 - t0) * PIT_HZ / PIT_COUNT / 1000;
}

/* The same against the LAPIC timer, which counts at KVM's 1 GHz APIC bus with divide 1. */
static u64 calibrate_lapic(void)
{
	u64 t0, t1, end;
	u32 c0, c1;

	lapic_enable();
	lapic_write(LAPIC_LVT_TMR, VEC_TIMER | LAPIC_LVT_MASKED);
	lapic_write(LAPIC_TMR_DIV, 0xb); /* divide by 1 */
	lapic_write(LAPIC_TMR_INIT, 0xffffffffu);
	c0 = lapic_read(LAPIC_TMR_CUR);
	t0 = rdtsc();
	end = t0 + 1000 * tsc_per_ms();
	do
		c1 = lapic_read(LAPIC_TMR_CUR);
	while (c0 - c1 < 50000000u && rdtsc() < end);
	t1 = rdtsc();
	lapic_write(LAPIC_TMR_INIT, 0);
	if (c0 == c1)
		return 0;
	return (t1 - t0) * 1000000 / (c0 - c1);
}

/*
 * The PIT is the architectural reference, but on nested KVM each ring-3 port
 * access is a trip through the emulated ring-0 #GP handler, which costs
 * milliseconds at random, so the PIT figure is only good to ~10%.  The LAPIC
 * timer is plain MMIO and precise, but its rate is KVM's APIC bus (1 GHz
 * unless a VMM changed it).  Use the LAPIC figure when the PIT confirms it
 * within 20%, else the PIT's, else CPUID's.
 */
static u64 calibrate_tsc(void)
{
	u64 pit = calibrate_pit(), lapic = calibrate_lapic(), khz;

	if (plausible(lapic) && plausible(pit) && lapic * 10 > pit * 8 && lapic * 10 < pit * 12)
		khz = lapic;
	else if (plausible(pit))
		khz = pit;
	else if (plausible(lapic))
		khz = lapic;
	else
		khz = tsc_per_ms();
	printf(
	    "# tsc: %llu kHz (PIT %llu kHz, LAPIC timer at 1 GHz %llu kHz, CPUID/guess %llu kHz)\n",
	    khz, pit, lapic, tsc_per_ms());
	return khz;
}

static u64 elapsed_us(u64 ticks)
{
	return ticks * 1000 / tsc_khz;
}

struct phase {
	const char *name;
	u32 len;
	unsigned int qd;
	bool random;
};

/* Run one phase; false if a request failed. */
static bool run_phase(struct vblk *b, u8 *buf, const struct phase *p, u64 ms, u64 max_bytes)
{
	u64 sectors = p->len / 512, span = b->capacity / sectors;
	u64 next = 0, rng = 0x1234567, bytes = 0, reqs = 0, t0, t1, end, us;
	unsigned int i, tag, inflight = 0;
	bool stop = false;
	u8 st;

	if (!expect(span > 0, "%s: disk of %llu sectors is smaller than one request", p->name,
	            b->capacity))
		return false;
	t0 = rdtsc();
	end = t0 + ms * tsc_khz;
	for (i = 0; i < p->qd; i++) {
		u64 s = p->random ? (prng_next(&rng) % span) * sectors : (next++ % span) * sectors;

		if (!expect(vblk_submit(b, i, VIRTIO_BLK_T_IN, s, buf, p->len, 1, false),
		            "%s: cannot queue request %u", p->name, i))
			return false;
		inflight++;
	}
	vq_kick(b->q);
	while (inflight) {
		if (!expect(vblk_complete(b, &tag, &st, TIMEOUT_MS),
		            "%s: a request never completed", p->name))
			return false;
		for (;;) {
			inflight--;
			if (!expect(st == VIRTIO_BLK_S_OK, "%s: status %u", p->name, st))
				return false;
			bytes += p->len;
			reqs++;
			if (!stop && (rdtsc() >= end || (max_bytes && bytes >= max_bytes)))
				stop = true;
			if (!stop) {
				u64 s = p->random ? (prng_next(&rng) % span) * sectors
				                  : (next++ % span) * sectors;

				vblk_submit(b, tag, VIRTIO_BLK_T_IN, s, buf, p->len, 1, false);
				inflight++;
			}
			if (!vq_has_used(b->q) || !vblk_complete(b, &tag, &st, 0))
				break;
		}
		vq_kick(b->q);
	}
	t1 = rdtsc();
	us = elapsed_us(t1 - t0);
	if (!us)
		us = 1;
	if (p->len >= SEQ_LEN) {
		u64 mibps10 = bytes * 10 * 1000000 / (us * MiB);

		printf("# blk-bench %s MiB/s=%llu.%llu (%llu MiB in %llu ms, qd %u)\n", p->name,
		       mibps10 / 10, mibps10 % 10, bytes / MiB, us / 1000, p->qd);
	} else {
		printf("# blk-bench %s iops=%llu (%llu requests in %llu ms)\n", p->name,
		       reqs * 1000000 / us, reqs, us / 1000);
	}
	return true;
}

GUEST_TEST(virtio_blk_bench)
{
	static struct vblk b;
	static const struct phase phases[] = {
	    {"seq1m", SEQ_LEN, 1, false},
	    {"seq1m qd32", SEQ_LEN, MAX_QD, false},
	    {"rand4k qd1", RAND_LEN, 1, true},
	    {"rand4k qd32", RAND_LEN, MAX_QD, true},
	};
	u64 mark = dma_mark(), ms = cmdline_num("test.bench_ms", 2000);
	u64 max_bytes = cmdline_num("test.bench_mib", 0) * MiB;
	unsigned int i;
	u8 *buf;

	if (!cmdline_num("test.blk_bench", 0)) {
		skip("a benchmark: run with test.blk_bench=1");
		return;
	}
	if (!virtio_open(&b.dev, VIRTIO_ID_BLOCK, "blk", 0))
		return;
	tsc_khz = calibrate_tsc();
	buf = dma_alloc(SEQ_LEN, 4096);
	if (!buf || !vblk_start(&b, 4))
		goto out;
	virtio_describe(&b.dev);
	printf("# blk-bench disk: %llu MiB, queue size %u, mode %s\n", b.capacity / 2048, b.q->size,
	       virtio_mode_name(b.dev.opts.mode));
	for (i = 0; i < ARRAY_SIZE(phases); i++) {
		u32 k0 = b.q->kicks, s0 = b.q->kicks_skipped;

		if (!run_phase(&b, buf, &phases[i], ms, max_bytes))
			break;
		printf("# %s: kicks %u, suppressed %u\n", phases[i].name, b.q->kicks - k0,
		       b.q->kicks_skipped - s0);
	}
	vq_expect_clean(b.q);
out:
	virtio_close(&b.dev);
	dma_release(mark);
}
