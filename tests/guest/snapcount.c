/* snapcount.c - lifecycle=count: count, write and read back a disk, forever (snapshot tests). */
#include "virtio.h"

/*
 * `lifecycle=count` (tests/integration/test_snapshot.py) runs until the host stops it, so a
 * host can save the guest in the middle and restore it elsewhere.  Round n (from 1) writes
 * sector 8 + n % 32 of the first disk with words n << 32 | sector << 16 | i, reads it back
 * through the device and compares, then prints
 *
 *   count <n> sector <s> irqs <interrupts so far on the request queue> <ok|bad>
 *
 * and waits test.count_ms (default 20) milliseconds.  With test.virtio_mode=msix every
 * completion is an MSI-X interrupt, so a restored guest shows its interrupts still arrive
 * (the irqs column keeps growing) and its disk still answers; the host checks the lines
 * run on without a gap and the sectors hold the last rounds' words.
 */

#define SECTOR 512

static void fill(u64 *w, u64 n, u64 sector)
{
	for (unsigned int i = 0; i < SECTOR / 8; i++)
		w[i] = n << 32 | sector << 16 | i;
}

void snapcount_run(void);
void snapcount_run(void)
{
	static struct vblk b;
	u64 ms = cmdline_num("test.count_ms", 20);
	u64 *out, *in;

	if (!virtio_open(&b.dev, VIRTIO_ID_BLOCK, "blk", 0) || !vblk_start(&b, 0)) {
		printf("count: no disk\n");
		return;
	}
	out = dma_alloc(SECTOR, 4096);
	in = dma_alloc(SECTOR, 4096);
	if (!out || !in) {
		printf("count: no memory\n");
		return;
	}
	printf("count: start\n");
	for (u64 n = 1;; n++) {
		u64 sector = 8 + n % 32, end;
		bool ok;

		fill(out, n, sector);
		/*
		 * `in` is not cleared: no earlier round's words match this round's, so a read
		 * that did not happen cannot pass, and its page stays one only the device
		 * writes (the Diff snapshot test checks ember tracks such pages).
		 */
		ok =
		    vblk_io(&b, VIRTIO_BLK_T_OUT, sector, out, SECTOR, 1, false) ==
		        VIRTIO_BLK_S_OK &&
		    vblk_io(&b, VIRTIO_BLK_T_IN, sector, in, SECTOR, 1, false) == VIRTIO_BLK_S_OK &&
		    !memcmp(in, out, SECTOR);
		printf("count %llu sector %llu irqs %u %s\n", n, sector, vq_irqs(b.q),
		       ok ? "ok" : "bad");
		end = deadline_ms(ms);
		while (rdtsc() < end)
			cpu_relax();
	}
}
