/* snapcount.c - lifecycle=count: count, write and read back a disk, forever (snapshot tests). */
#include "hotplug.h"
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
 *
 * With test.count_hp=K the disk is one the host hot plugs into root port K instead (the
 * snapshot tests save a VM with a hot-plugged device): the guest takes charge of the slot
 * as pciehp does (hotplug.c, slot interrupt on), prints
 *
 *   count: waiting port=K
 *
 * waits for the device, enumerates it (test.hp_move=1: moving its first memory BAR inside
 * the port's window first, as a guest may), starts the disk and prints
 *
 *   count: plugged port=K bdf=<bus>:00.0 bar<i>=0x<where the memory BAR is>
 *
 * then counts on it as above.  Between rounds it looks at the slot: when the host asks for
 * the device back, it resets the device, powers the slot off (the orderly removal ember
 * waits for), prints
 *
 *   count: removed port=K after <n>
 *
 * and spins until the host stops it.
 */

#define SECTOR 512

static void fill(u64 *w, u64 n, u64 sector)
{
	for (unsigned int i = 0; i < SECTOR / 8; i++)
		w[i] = n << 32 | sector << 16 | i;
}

/* The first memory BAR of `bdf` (its index in *bar), 0 if none. */
static u64 mem_bar(u16 bdf, unsigned int *bar)
{
	struct pci_bar_info b;

	for (unsigned int i = 0; i < 6; i++) {
		pci_bar_probe(bdf, i, &b);
		if (b.present && !b.io) {
			*bar = i;
			return b.addr;
		}
		if (b.mem64)
			i++;
	}
	return 0;
}

/* test.count_hp=K: wait for the host to plug a disk into port K and start it. */
static bool hp_disk(struct hp_port *p, struct vblk *b)
{
	unsigned int port = (unsigned int)cmdline_num("test.count_hp", 0), bar = 0;
	struct virtio_opts o = {.transport = VT_PCI};
	u64 addr;
	u16 bdf;

	if (!hp_port_open(p, port, true))
		return false;
	printf("count: waiting port=%u\n", port);
	if (hp_wait_event(p, 120000, NULL, NULL) != HP_ADDED) {
		printf("count: nothing plugged into port %u\n", port);
		return false;
	}
	virtio_opts_parse(&o);
	if (!hp_enumerate(p, &bdf, cmdline_num("test.hp_move", 0)) ||
	    !virtio_attach(&b->dev, bdf, &o) || !vblk_start(b, 0))
		return false;
	addr = mem_bar(bdf, &bar);
	printf("count: plugged port=%u bdf=%02x:00.0 bar%u=0x%llx\n", port, BDF_BUS(bdf), bar,
	       addr);
	return true;
}

/* Whether the host asked for the hot-plugged disk back; if so, give it back. */
static bool hp_released(struct hp_port *p, struct vblk *b, u64 n)
{
	if (irq_count[p->vector] == p->irq_seen && !(hp_slot_status(p) & SLTSTA_EVENTS))
		return false;
	if (hp_wait_event(p, 2 * HP_IRQ_GRACE_MS, NULL, NULL) != HP_REMOVED)
		return false;
	virtio_close(&b->dev);
	hp_power(p, false);
	printf("count: removed port=%u after %llu\n", p->num, n);
	return true;
}

void snapcount_run(void);
void snapcount_run(void)
{
	static struct vblk b;
	static struct hp_port p;
	u64 ms = cmdline_num("test.count_ms", 20);
	bool hp = cmdline_num("test.count_hp", 0) != 0;
	u64 *out, *in;

	if (hp ? !hp_disk(&p, &b)
	       : !virtio_open(&b.dev, VIRTIO_ID_BLOCK, "blk", 0) || !vblk_start(&b, 0)) {
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
		memset(in, 0, SECTOR);
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
		if (hp && hp_released(&p, &b, n))
			for (;;)
				cpu_relax();
	}
}
