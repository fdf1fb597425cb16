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
 *
 * With test.count_vsock=1 (and test.virtio_vsock=pci|mmio) the guest also drives the vsock
 * device: queues set up, DRIVER_OK, four 8-byte buffers on its event queue and nothing else.
 * Between rounds it looks at the event queue; an event is printed as
 *
 *   count: vsock event id=<le32 id> len=<bytes the device wrote> irq=<yes|no>
 *
 * (irq: whether the queue's interrupt came within a second) and its buffer posted again.
 * A restored ember sends VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (id 0, virtio 1.2 §5.10.6.6).
 *
 * With test.count_kvmclock=1 the guest turns on kvmclock (KVM's paravirtual clock: CPUID
 * 0x40000001 KVM_FEATURE_CLOCKSOURCE2, MSR_KVM_SYSTEM_TIME_NEW) and after each round line
 * prints what it reads
 *
 *   count: kvmclock ns=<kvmclock in nanoseconds>
 *
 * (or "count: no kvmclock" once).  The snapshot tests read how far kvmclock moved across a
 * save and load (the load's clock_realtime).
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

#define EV_BUFS 4

struct vsock_ev {
	struct virtio_dev dev;
	struct vq *ev;
	u8 *buf;  /* EV_BUFS x 8 bytes */
	u32 irqs; /* the event queue's interrupts already accounted for */
};

static void ev_post(struct vsock_ev *v, unsigned int i)
{
	struct vbuf b = {pa(v->buf + 8 * i), 8, true};

	memset(v->buf + 8 * i, 0xff, 8);
	vq_add(v->ev, &b, 1, false);
}

/* test.count_vsock=1: the vsock device with event buffers only. */
static bool vsock_open(struct vsock_ev *v)
{
	v->buf = dma_alloc(EV_BUFS * 8, 4096);
	if (!v->buf || !virtio_open(&v->dev, VIRTIO_ID_VSOCK, "vsock", 0) ||
	    !virtio_start(&v->dev, 0) || !virtio_queue(&v->dev, 0, 0, 0) ||
	    !virtio_queue(&v->dev, 1, 0, 0) || !(v->ev = virtio_queue(&v->dev, 2, 0, 0)) ||
	    !virtio_ready(&v->dev))
		return false;
	for (unsigned int i = 0; i < EV_BUFS; i++)
		ev_post(v, i);
	vq_kick(v->ev);
	v->irqs = vq_irqs(v->ev);
	printf("count: vsock ready, %u event buffers\n", EV_BUFS);
	return true;
}

static void vsock_events(struct vsock_ev *v)
{
	u16 head;
	u32 len;

	while (vq_has_used(v->ev) && vq_get_used(v->ev, &head, &len)) {
		unsigned int i = (unsigned int)((v->ev->desc[head].addr - pa(v->buf)) / 8);
		u32 id;
		bool irq = wait_until(vq_irqs(v->ev) != v->irqs, 1000);

		v->irqs = vq_irqs(v->ev);
		if (i >= EV_BUFS) {
			printf("count: vsock event in an unknown buffer (head %u)\n", head);
			continue;
		}
		memcpy(&id, v->buf + 8 * i, 4);
		printf("count: vsock event id=%u len=%u irq=%s\n", id, len, irq ? "yes" : "no");
		ev_post(v, i);
		vq_kick(v->ev);
	}
}

/* KVM's pvclock_vcpu_time_info (Documentation/virt/kvm/x86/msr.rst), 32 bytes. */
struct pvclock {
	u32 version, pad0;
	u64 tsc_timestamp, system_time;
	u32 mul;
	signed char shift;
	u8 flags, pad[2];
};

static volatile struct pvclock kvmclock __attribute__((aligned(64)));

static bool kvmclock_on(void)
{
	u32 a, b, c, d;

	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000000u), "c"(0));
	if (b != 0x4b4d564b || c != 0x564b4d56 || d != 0x4d || a < 0x40000001u) /* "KVMKVMKVM" */
		return false;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000001u), "c"(0));
	if (!(a & (1u << 3))) /* KVM_FEATURE_CLOCKSOURCE2 */
		return false;
	u64 v = pa(&kvmclock) | 1; /* enable */
	__asm__ volatile("wrmsr" ::"c"(0x4b564d01u), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
	return true;
}

static u64 kvmclock_ns(void)
{
	u32 ver;
	u64 ns;

	do {
		ver = kvmclock.version;
		__asm__ volatile("" ::: "memory");
		u64 d = rdtsc() - kvmclock.tsc_timestamp;
		int sh = kvmclock.shift;

		d = sh < 0 ? d >> -sh : d << sh;
		ns = kvmclock.system_time + (u64)(((unsigned __int128)d * kvmclock.mul) >> 32);
		__asm__ volatile("" ::: "memory");
	} while ((ver & 1) || ver != kvmclock.version);
	return ns;
}

void snapcount_run(void);
void snapcount_run(void)
{
	static struct vsock_ev vs;
	bool vsock = cmdline_num("test.count_vsock", 0) != 0;
	static struct vblk b;
	static struct hp_port p;
	u64 ms = cmdline_num("test.count_ms", 20);
	bool hp = cmdline_num("test.count_hp", 0) != 0;
	bool kvmclk = cmdline_num("test.count_kvmclock", 0) != 0;
	u64 *out, *in;

	if (hp ? !hp_disk(&p, &b)
	       : !virtio_open(&b.dev, VIRTIO_ID_BLOCK, "blk", 0) || !vblk_start(&b, 0)) {
		printf("count: no disk\n");
		return;
	}
	if (vsock && !vsock_open(&vs)) {
		printf("count: no vsock\n");
		return;
	}
	out = dma_alloc(SECTOR, 4096);
	in = dma_alloc(SECTOR, 4096);
	if (!out || !in) {
		printf("count: no memory\n");
		return;
	}
	if (kvmclk && !kvmclock_on()) {
		printf("count: no kvmclock\n");
		kvmclk = false;
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
		if (kvmclk)
			printf("count: kvmclock ns=%llu\n", kvmclock_ns());
		end = deadline_ms(ms);
		while (rdtsc() < end)
			cpu_relax();
		if (vsock)
			vsock_events(&vs);
		if (hp && hp_released(&p, &b, n))
			for (;;)
				cpu_relax();
	}
}
