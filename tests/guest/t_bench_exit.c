/* t_bench_exit.c - the cost of one MMIO exit handled in the VMM's userspace, from ring 3. */
#include "virtio.h"

/*
 * A benchmark more than a test (bench/run.py runs it under ember and QEMU).
 * Ring 3 reads a 32-bit register that no in-kernel device claims, so every
 * read is a KVM_EXIT_MMIO round trip through the VMM's userspace:
 *
 *   test.exit_bench=mmio   MagicValue of the first virtio-mmio slot announced
 *                          with virtio_mmio.device= (both VMMs need one
 *                          virtio-mmio device; the value must be "virt")
 *   test.exit_bench=ecam   the vendor ID of 00:00.0 through ECAM (0xe0000000
 *                          on ember and on QEMU microvm with pcie=on)
 *   (absent)               a smoke run: 200 ECAM reads, so the normal guest
 *                          tier keeps the file working without a device
 *
 * test.exit_reads=N (default 20000) reads, after 100 of warm-up, in 10
 * batches; it prints
 *
 *   # exit-bench mmio reads=N ns_per=X best_batch_ns_per=Y tsc_khz=K
 *
 * The TSC is calibrated against the LAPIC timer (1 GHz on KVM, in-kernel on
 * both VMMs), as t_virtio_blk_bench.c does; CPUID's figure if that fails.
 */

#define BATCHES 10

static u64 calibrate_lapic_khz(void)
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

GUEST_TEST(bench_exit)
{
	u64 addr, want, reads, per, khz, t0, t1, best = ~0ull, total = 0, i, b;
	const char *what;
	u32 bad = 0;
	u64 mode = 0;
	const char *v;
	size_t len;

	reads = cmdline_num("test.exit_reads", 20000);
	v = cmdline_value("test.exit_bench", &len);
	if (v && len == 4 && !memcmp(v, "mmio", 4))
		mode = 1;
	else if (v && len == 4 && !memcmp(v, "ecam", 4))
		mode = 2;
	if (mode == 1) {
		u64 base[1];
		unsigned int gsi[1];

		if (!expect(virtio_mmio_slots(base, gsi, 1) == 1,
		            "test.exit_bench=mmio: no virtio_mmio.device= on the command line"))
			return;
		addr = base[0] + VMMIO_MAGIC;
		want = VMMIO_MAGIC_VALUE;
		what = "mmio";
	} else {
		addr = PCI_ECAM_BASE; /* 00:00.0 vendor and device ID */
		want = mmio_read32(addr);
		if (!expect((want & 0xffff) != 0xffff && want != 0,
		            "no host bridge at 00:00.0 (0x%llx)", want))
			return;
		what = "ecam";
		if (!mode)
			reads = 200;
	}
	if (reads < BATCHES)
		reads = BATCHES;
	per = reads / BATCHES;
	khz = calibrate_lapic_khz();
	if (khz < 100000 || khz > 20000000)
		khz = tsc_per_ms();
	for (i = 0; i < 100; i++)
		bad += mmio_read32(addr) != want;
	for (b = 0; b < BATCHES; b++) {
		t0 = rdtsc();
		for (i = 0; i < per; i++)
			bad += mmio_read32(addr) != want;
		t1 = rdtsc();
		total += t1 - t0;
		if (t1 - t0 < best)
			best = t1 - t0;
	}
	expect(bad == 0, "%u reads of 0x%llx did not return 0x%llx", bad, addr, want);
	printf("# exit-bench %s reads=%llu ns_per=%llu best_batch_ns_per=%llu tsc_khz=%llu\n", what,
	       per * BATCHES, total * 1000000 / khz / (per * BATCHES), best * 1000000 / khz / per,
	       khz);
}
