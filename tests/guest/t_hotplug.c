/* t_hotplug.c - PCIe hot plug seen from the guest: slot events, enumeration, drivers, removal. */
#include "hotplug.h"
#include "virtio.h"

/*
 * These tests are driven by a host script (tests/integration/test_hotplug.py)
 * that plugs and unplugs devices through ember's API while it reads the
 * console.  The guest says when it is ready for the host to act and what it
 * did, on "# hotplug: <what> port=<k> ..." diagnostic lines:
 *
 *   waiting port=k        the slot is watched: the host may plug a device
 *   ready port=k ...      the device is enumerated and its driver started
 *   written / writing / idle / used port=k
 *                         the test's use of the device is done (or under way):
 *                         the host may ask for the device back
 *   removed port=k        the driver let go and powered the slot off
 *   gone port=k           the device vanished without a power-off (forced or
 *                         timed-out removal)
 *
 * Command line:
 *   test.hotplug=1        a host script drives the test (without it, the tests skip)
 *   test.hp_port=K        the slot to watch (default 1)
 *   test.hp_mode=irq|poll the slot interrupt (default), or Slot Status polling only
 *   test.hp_move=1        move the first memory BAR inside the port's window
 *   test.hp_seed=S, test.hp_sector=N, test.hp_count=C
 *                         block data: C sectors from N, pattern from seed S
 *   test.hp_cycles=N      hotplug_cycles: plug/unplug rounds
 *   test.hp_force=1       hotplug_unplug_io: the host removes the device by force
 *   test.virtio_mode=...  as for the virtio tests (default msix)
 *   test.net=..., test.vsock_*=...   as for the virtio tests
 */

#define WAIT_MS   30000           /* for the host to act */
#define HP_MAGIC  0x5048424d45ull /* "EMBHP": first word of every sequence-numbered sector */
#define SECTOR    512
#define CHUNK     16 /* sectors per request in the data test */
#define IO_DEPTH  4
#define IO_MAX_MS 30000

/* Whether a host drives the test; a skip (with the reason) if not. */
static bool driven(void)
{
	if (cmdline_num("test.hotplug", 0))
		return true;
	skip("no host plugging devices: tests/integration/test_hotplug.py runs these "
	     "(test.hotplug=1)");
	return false;
}

/*
 * The end of a test that went well: say so and wait for the host to send a
 * byte on the console, so that it can look at ember (GET /pci, its file
 * descriptors) before the guest resets and ember exits.
 */
static void host_done(void)
{
	u64 end;

	if (test_failed())
		return;
	printf("# hotplug: done\n");
	end = deadline_ms(60000);
	while (!(inb(COM1 + UART_LSR) & 0x01)) /* Data Ready */
		if (rdtsc() > end) {
			fail("the host never said it was done (a byte on the console)");
			return;
		} else
			udelay(1000);
	(void)inb(COM1); /* the receive buffer */
}

static unsigned int port_num(void)
{
	return (unsigned int)cmdline_num("test.hp_port", 1);
}

static bool irq_mode(void)
{
	size_t len;
	const char *v = cmdline_value("test.hp_mode", &len);

	return !(v && len == 4 && !memcmp(v, "poll", 4));
}

static void waiting(const struct hp_port *p)
{
	printf("# hotplug: waiting port=%u\n", p->num);
}

/* Wait for event `want`; the slot interrupt must have announced it (in irq mode). */
static bool await(struct hp_port *p, enum hp_event want, u64 ms, const char *when)
{
	u16 st = 0;
	bool irq = false;
	enum hp_event e = hp_wait_event(p, ms, &st, &irq);

	if (!expect(e == want, "port %u, %s: %s within %llu ms, want %s (Slot Status bits 0x%04x)",
	            p->num, when, e == HP_NONE ? "no event" : hp_event_name(e), ms,
	            hp_event_name(want), st))
		return false;
	expect((st & SLTSTA_PDC) && (st & SLTSTA_DLLSC),
	       "port %u, %s: Slot Status bits 0x%04x, want Presence Detect Changed and DLL State "
	       "Changed both set",
	       p->num, when, st);
	if (p->vector)
		expect(irq,
		       "port %u, %s: no slot interrupt (vector 0x%x) within %u ms of the event: "
		       "found by polling Slot Status",
		       p->num, when, p->vector, HP_IRQ_GRACE_MS);
	else
		printf("# hotplug: port=%u %s event found by polling (slot interrupt off)\n",
		       p->num, hp_event_name(e));
	return true;
}

/* After HP_ADDED: find the function behind p and bind the virtio driver to it. */
static bool bring_up(struct hp_port *p, struct virtio_dev *d, bool move)
{
	struct virtio_opts o = {.transport = VT_PCI};
	u16 bdf;

	virtio_opts_parse(&o);
	if (!hp_enumerate(p, &bdf, move) || !virtio_attach(d, bdf, &o))
		return false;
	return expect(BDF_BUS(d->bdf) == p->secondary && BDF_DEV(d->bdf) == 0,
	              "port %u: device at %02x:%02x.%x, want %02x:00.0 (the slot's bus)", p->num,
	              BDF_BUS(d->bdf), BDF_DEV(d->bdf), BDF_FN(d->bdf), p->secondary);
}

static void ready(const struct hp_port *p, const struct virtio_dev *d)
{
	printf("# hotplug: ready port=%u bdf=%02x:00.0 type=%s\n", p->num, BDF_BUS(d->bdf),
	       virtio_type_name(d->type));
}

/* After HP_REMOVED: the link is down, the device still answers; reset it, power off. */
static void release(struct hp_port *p, struct virtio_dev *d)
{
	u16 lnk = pci_read16(p->bdf, p->exp + EXP_LNKSTA);
	u16 bdf = d->bdf;

	expect(!(lnk & LNKSTA_DLLLA),
	       "port %u: Link Status 0x%04x: DLL Link Active still set "
	       "after the removal request",
	       p->num, lnk);
	expect(hp_dev_present(bdf), "port %u: the device stopped answering before power-off",
	       p->num);
	virtio_close(d);
	hp_power(p, false);
	printf("# hotplug: removed port=%u\n", p->num);
}

/* The device behind p disappears within `ms` of the power-off. */
static void expect_gone(const struct hp_port *p, u16 bdf, u64 ms)
{
	expect(wait_until(!hp_dev_present(bdf), ms),
	       "port %u: %02x:00.0 still answers %llu ms after the slot was powered off", p->num,
	       BDF_BUS(bdf), ms);
	expect(!(hp_slot_status(p) & SLTSTA_PDS), "port %u: Presence Detect State still set",
	       p->num);
}

static void irq_summary(const struct hp_port *p)
{
	printf("# hotplug: port=%u events=%u by_irq=%u by_poll=%u spurious=%u\n", p->num, p->events,
	       p->by_irq, p->by_poll, p->spurious);
	if (p->vector)
		expect(
		    p->events && p->by_irq == p->events && !p->by_poll,
		    "port %u: %u events, %u announced by the slot interrupt, %u found by polling",
		    p->num, p->events, p->by_irq, p->by_poll);
}

/* ---- block data ---- */

static void pattern_fill(u64 *w, u64 seed, u64 sector)
{
	u64 x = (seed ^ (sector * 0x9e3779b97f4a7c15ull)) | 1;
	unsigned int i;

	for (i = 0; i < SECTOR / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
}

/* Write the pattern to test.hp_count sectors from test.hp_sector, flush, read back, compare. */
static void blk_data(struct vblk *b, const struct hp_port *p)
{
	u64 seed = cmdline_num("test.hp_seed", 1), first = cmdline_num("test.hp_sector", 0);
	u64 count = cmdline_num("test.hp_count", 64), s, n;
	u64 *buf;
	u8 st;

	if (!expect(count && count <= 1024 && first + count <= b->capacity,
	            "sectors %llu+%llu do not fit the %llu-sector disk", first, count, b->capacity))
		return;
	buf = dma_alloc(count * SECTOR, 4096);
	if (!buf)
		return;
	for (s = 0; s < count; s++)
		pattern_fill(buf + s * (SECTOR / 8), seed, first + s);
	for (s = 0; s < count; s += n) {
		n = count - s < CHUNK ? count - s : CHUNK;
		st = vblk_io(b, VIRTIO_BLK_T_OUT, first + s, buf + s * (SECTOR / 8),
		             (u32)(n * SECTOR), 2, false);
		if (!expect(st == VIRTIO_BLK_S_OK, "write of sectors %llu+%llu: status 0x%x",
		            first + s, n, st))
			return;
	}
	if (virtio_has(&b->dev, VIRTIO_BLK_F_FLUSH)) {
		st = vblk_io(b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0, false);
		expect(st == VIRTIO_BLK_S_OK, "flush: status 0x%x", st);
	}
	memset(buf, 0, count * SECTOR);
	for (s = 0; s < count; s += n) {
		n = count - s < CHUNK ? count - s : CHUNK;
		st = vblk_io(b, VIRTIO_BLK_T_IN, first + s, buf + s * (SECTOR / 8),
		             (u32)(n * SECTOR), 1, false);
		if (!expect(st == VIRTIO_BLK_S_OK, "read of sectors %llu+%llu: status 0x%x",
		            first + s, n, st))
			return;
	}
	for (s = 0; s < count; s++) {
		u64 want[SECTOR / 8];

		pattern_fill(want, seed, first + s);
		if (!expect(!memcmp(buf + s * (SECTOR / 8), want, SECTOR),
		            "sector %llu read back differs from what was written", first + s))
			return;
	}
	printf("# hotplug: written port=%u sectors=%llu+%llu\n", p->num, first, count);
}

/* ---- one device, plugged, used, unplugged ---- */

/* Use the device the way its type calls for; the device is attached, not started. */
static void use_device(struct hp_port *p, struct virtio_dev *d, struct vblk *b)
{
	switch (d->type) {
	case VIRTIO_ID_BLOCK:
		if (!vblk_start(b, 4))
			return;
		ready(p, d);
		virtio_describe(d);
		blk_data(b, p);
		vq_expect_clean(b->q);
		return;
	case VIRTIO_ID_NET:
		ready(p, d);
		virtio_net_exercise(d);
		break;
	case VIRTIO_ID_VSOCK:
		ready(p, d);
		virtio_vsock_exercise(d);
		break;
	case VIRTIO_ID_RNG:
		ready(p, d);
		virtio_rng_exercise(d);
		break;
	default:
		fail("port %u: virtio device type %u: no driver", p->num, d->type);
		return;
	}
	printf("# hotplug: used port=%u\n", p->num);
}

/* Plug, use, unplug on one slot; `want` is the device type the host plugs. */
static void plug_use_unplug(u32 want)
{
	static struct hp_port p;
	static struct vblk b; /* b.dev is the device whatever its type */
	u64 mark = dma_mark();
	u16 bdf = 0;

	if (!driven() || !hp_port_open(&p, port_num(), irq_mode()))
		return;
	expect(!p.occupied, "port %u: occupied before the test plugged anything", p.num);
	waiting(&p);
	if (!await(&p, HP_ADDED, WAIT_MS, "waiting for the plug") ||
	    !bring_up(&p, &b.dev, cmdline_num("test.hp_move", 0)))
		goto out;
	bdf = b.dev.bdf;
	if (!expect(b.dev.type == want, "port %u: a virtio-%s was plugged, want virtio-%s", p.num,
	            virtio_type_name(b.dev.type), virtio_type_name(want)))
		goto out;
	use_device(&p, &b.dev, &b);
	if (!await(&p, HP_REMOVED, WAIT_MS, "waiting for the unplug request"))
		goto out;
	release(&p, &b.dev);
	expect_gone(&p, bdf, 2000);
	irq_summary(&p);
out:
	virtio_close(&b.dev);
	hp_port_close(&p);
	dma_release(mark);
	host_done();
}

GUEST_TEST(hotplug_blk)
{
	plug_use_unplug(VIRTIO_ID_BLOCK);
}

GUEST_TEST(hotplug_net)
{
	plug_use_unplug(VIRTIO_ID_NET);
}

GUEST_TEST(hotplug_vsock)
{
	plug_use_unplug(VIRTIO_ID_VSOCK);
}

/* ---- removal while writing ---- */

/* Sector `seq`'s record: the magic, the sequence number, then the pattern for (seed, seq). */
static void seq_fill(u64 *w, u64 seed, u64 seq)
{
	pattern_fill(w, seed, seq);
	w[0] = HP_MAGIC;
	w[1] = seq;
}

/* The slot's state once the device has gone without a power-off: what the guest was told. */
static void report_gone(struct hp_port *p, u32 irqs_before)
{
	u16 st;
	u32 irqs = 0;

	udelay(100000); /* room for a late interrupt */
	st = hp_slot_status(p);
	if (p->vector)
		irqs = irq_count[p->vector] - irqs_before;
	printf("# hotplug: gone port=%u slot_status=0x%04x irqs=%u\n", p->num, st, irqs);
	expect(!(st & SLTSTA_PDS), "port %u: Presence Detect State set after the removal", p->num);
	pci_write16(p->bdf, p->exp + EXP_SLTSTA, st & SLTSTA_EVENTS);
	p->occupied = false;
}

/*
 * Write sequence-numbered sectors, IO_DEPTH in flight, round the ring of
 * test.hp_count sectors from test.hp_sector, until the device is asked back
 * (orderly: a removal event; then stop submitting and wait for what is in
 * flight) or, with test.hp_force=1, until it vanishes (then collect what
 * still completes).  Prints "writes completed=N submitted=S": writes 0..N-1
 * all completed (the host checks its file for them), S were queued.
 */
GUEST_TEST(hotplug_unplug_io)
{
	static struct hp_port p;
	static struct vblk b;
	u64 mark = dma_mark(), seed = cmdline_num("test.hp_seed", 1);
	u64 first = cmdline_num("test.hp_sector", 0), count = cmdline_num("test.hp_count", 4096);
	u64 seq = 0, done = 0, end, after = 0, tag_seq[IO_DEPTH], prefix;
	bool force = cmdline_num("test.hp_force", 0), stop = false, gone = false;
	unsigned int inflight = 0, tag, n = 0;
	u32 irqs = 0;
	u64 *buf;
	u16 bdf;
	u8 st;

	if (!driven() || !hp_port_open(&p, port_num(), irq_mode()))
		return;
	waiting(&p);
	if (!await(&p, HP_ADDED, WAIT_MS, "waiting for the plug") || !bring_up(&p, &b.dev, false))
		goto out;
	bdf = b.dev.bdf;
	if (!expect(b.dev.type == VIRTIO_ID_BLOCK, "a virtio-%s was plugged, want blk",
	            virtio_type_name(b.dev.type)) ||
	    !vblk_start(&b, 0))
		goto out;
	ready(&p, &b.dev);
	if (!expect(count && first + count <= b.capacity, "sectors %llu+%llu beyond the disk",
	            first, count))
		goto out;
	buf = dma_alloc(IO_DEPTH * SECTOR, 4096);
	if (!buf)
		goto out;
	if (p.vector)
		irqs = irq_count[p.vector];
	printf("# hotplug: writing port=%u\n", p.num);
	end = deadline_ms(IO_MAX_MS);
	while (!stop || inflight) {
		while (!stop && inflight < IO_DEPTH) {
			for (tag = 0; tag < IO_DEPTH && b.busy[tag]; tag++)
				;
			seq_fill(buf + tag * (SECTOR / 8), seed, seq);
			if (!expect(vblk_submit(&b, tag, VIRTIO_BLK_T_OUT, first + seq % count,
			                        buf + tag * (SECTOR / 8), SECTOR, 1, false),
			            "cannot queue write %llu", seq))
				goto out;
			tag_seq[tag] = seq++;
			inflight++;
		}
		if (!gone)
			vq_kick(b.q);
		if (!vblk_complete(&b, &tag, &st, force ? 200 : 5000)) {
			/* Forced: what ember never took up before it tore the device down stays. */
			if (force && (gone || !hp_dev_present(bdf))) {
				stop = gone = true;
				if (!inflight || !vblk_complete(&b, &tag, &st, 300))
					break;
			} else {
				fail("no completion in 5 s (%u in flight, %llu done%s)", inflight,
				     done, stop ? ", removal requested" : "");
				goto out;
			}
		}
		inflight--;
		if (!expect(st == VIRTIO_BLK_S_OK, "write %llu completed with status 0x%x",
		            tag_seq[tag], st))
			goto out;
		done++;
		after += stop;
		if (stop)
			continue;
		if (force) {
			/* The device vanishes under us: look every 16 writes. */
			if (!(++n & 15) && !hp_dev_present(bdf))
				stop = gone = true;
		} else if ((p.vector && irq_count[p.vector] != p.irq_seen) || !(++n & 255)) {
			/* A removal request: the slot interrupt moved (cheap), or a poll. */
			enum hp_event e = hp_wait_event(&p, 0, NULL, NULL);

			if (!expect(e == HP_NONE || e == HP_REMOVED, "unexpected event %s",
			            hp_event_name(e)))
				goto out;
			stop = e == HP_REMOVED;
		}
		if (!stop && rdtsc() >= end) {
			fail("the device was not taken away within %u ms (%llu writes)", IO_MAX_MS,
			     done);
			goto out;
		}
	}
	/* Every write below the oldest one still in flight completed. */
	prefix = seq;
	for (tag = 0; tag < IO_DEPTH; tag++)
		if (b.busy[tag] && tag_seq[tag] < prefix)
			prefix = tag_seq[tag];
	printf("# hotplug: writes completed=%llu submitted=%llu port=%u (%llu finished after the "
	       "%s, %u never)\n",
	       prefix, seq, p.num, after, force ? "device vanished" : "removal request", inflight);
	vq_expect_clean(b.q);
	if (force) {
		report_gone(&p, irqs);
		virtio_forget(&b.dev);
		hp_power(&p, false); /* as pciehp does after a surprise removal */
	} else {
		expect(!inflight, "%u writes never completed", inflight);
		release(&p, &b.dev);
		expect_gone(&p, bdf, 2000);
		irq_summary(&p);
	}
out:
	if (b.dev.open && hp_dev_present(b.dev.bdf))
		virtio_close(&b.dev);
	virtio_forget(&b.dev);
	hp_port_close(&p);
	dma_release(mark);
	host_done();
}

/* ---- two slots at once ---- */

GUEST_TEST(hotplug_two)
{
	static struct hp_port p[2];
	static struct vblk b[2];
	u64 mark = dma_mark(), end;
	unsigned int i, added = 0, removed = 0;
	u16 bdf[2] = {0, 0};

	if (!driven())
		return;
	for (i = 0; i < 2; i++)
		if (!hp_port_open(&p[i], i + 1, irq_mode()))
			goto out;
	for (i = 0; i < 2; i++)
		waiting(&p[i]);
	/* Both arrive, in whatever order the host plugs them. */
	end = deadline_ms(WAIT_MS);
	while (added != 3 && rdtsc() < end)
		for (i = 0; i < 2; i++)
			if (!(added & (1u << i)) && p[i].events == 0 &&
			    hp_wait_event(&p[i], 10, NULL, NULL) != HP_NONE) {
				if (!expect(p[i].occupied, "port %u: removal before any plug",
				            i + 1))
					goto out;
				added |= 1u << i;
			}
	if (!expect(added == 3, "plugs seen: port 1 %s, port 2 %s", added & 1 ? "yes" : "no",
	            added & 2 ? "yes" : "no"))
		goto out;
	/* Both bound and started before either is used: two slots in use at once. */
	for (i = 0; i < 2; i++) {
		if (!bring_up(&p[i], &b[i].dev, false))
			goto out;
		bdf[i] = b[i].dev.bdf;
	}
	for (i = 0; i < 2; i++)
		use_device(&p[i], &b[i].dev, &b[i]);
	expect(b[0].dev.open && b[1].dev.open, "a device closed early");
	printf("# hotplug: idle port=1 port=2\n");

	end = deadline_ms(WAIT_MS);
	while (removed != 3 && rdtsc() < end)
		for (i = 0; i < 2; i++)
			if (!(removed & (1u << i)) &&
			    hp_wait_event(&p[i], 10, NULL, NULL) != HP_NONE) {
				if (!expect(!p[i].occupied, "port %u: a second plug", i + 1))
					goto out;
				release(&p[i], &b[i].dev);
				removed |= 1u << i;
			}
	if (!expect(removed == 3, "removal requests seen: port 1 %s, port 2 %s",
	            removed & 1 ? "yes" : "no", removed & 2 ? "yes" : "no"))
		goto out;
	for (i = 0; i < 2; i++) {
		expect_gone(&p[i], bdf[i], 2000);
		irq_summary(&p[i]);
	}
out:
	for (i = 0; i < 2; i++) {
		virtio_close(&b[i].dev);
		hp_port_close(&p[i]);
	}
	dma_release(mark);
	host_done();
}

/* ---- many rounds ---- */

GUEST_TEST(hotplug_cycles)
{
	static struct hp_port p;
	static struct vblk b;
	u64 rounds = cmdline_num("test.hp_cycles", 10), r;
	u8 *sector;
	u8 st;

	if (!driven() || !hp_port_open(&p, port_num(), irq_mode()))
		return;
	for (r = 0; r < rounds; r++) {
		u64 mark = dma_mark();
		bool ok = false;

		printf("# hotplug: waiting port=%u cycle=%llu\n", p.num, r);
		if (!await(&p, HP_ADDED, WAIT_MS, "waiting for the plug") ||
		    !bring_up(&p, &b.dev, false) || !vblk_start(&b, 0))
			goto round_out;
		sector = dma_alloc(SECTOR, 4096);
		if (!sector)
			goto round_out;
		st = vblk_io(&b, VIRTIO_BLK_T_IN, 0, sector, SECTOR, 1, false);
		if (!expect(st == VIRTIO_BLK_S_OK, "cycle %llu: read: status 0x%x", r, st))
			goto round_out;
		printf("# hotplug: ready port=%u cycle=%llu\n", p.num, r);
		if (!await(&p, HP_REMOVED, WAIT_MS, "waiting for the unplug request"))
			goto round_out;
		virtio_close(&b.dev);
		hp_power(&p, false);
		printf("# hotplug: removed port=%u cycle=%llu\n", p.num, r);
		ok = true;
	round_out:
		virtio_close(&b.dev);
		dma_release(mark);
		if (!ok)
			break;
	}
	irq_summary(&p);
	expect(p.events == 2 * rounds, "%u slot events in %llu rounds, want %llu", p.events, rounds,
	       2 * rounds);
	hp_port_close(&p);
	host_done();
}

/* ---- a device attached at start-up ---- */

/*
 * ember puts every virtio-pci device it builds at start-up behind a root port
 * of its own: the slot is occupied from power-on (Presence Detect State and
 * DLL Link Active, no event), the guest finds the device there without any
 * plug, uses it, and the host's DELETE is an orderly removal like any other.
 * test.hp_port names the device's port.
 */
GUEST_TEST(hotplug_cold)
{
	static struct hp_port p;
	static struct vblk b;
	u64 mark = dma_mark();
	u16 bdf;

	if (!driven() || !hp_port_open(&p, port_num(), irq_mode()))
		return;
	if (!expect(p.occupied, "port %u: empty at boot, though the host attached a device there",
	            p.num) ||
	    !expect(hp_powered(&p), "port %u: the slot is powered off at boot", p.num) ||
	    !bring_up(&p, &b.dev, cmdline_num("test.hp_move", 0)))
		goto out;
	bdf = b.dev.bdf;
	use_device(&p, &b.dev, &b);
	if (test_failed() || !await(&p, HP_REMOVED, WAIT_MS, "waiting for the unplug request"))
		goto out;
	release(&p, &b.dev);
	expect_gone(&p, bdf, 2000);
	irq_summary(&p);
	expect(p.events == 1, "port %u: %u slot events, want 1 (the removal request)", p.num,
	       p.events);
out:
	virtio_close(&b.dev);
	hp_port_close(&p);
	dma_release(mark);
	host_done();
}

/* ---- a host device passed through, plugged and unplugged ---- */

/* QEMU's edu device (docs/vfio.md's test bed; t_vfio_edu.c drives it in full). */
#define EDU_VENDOR  0x1234
#define EDU_DEVICE  0x11e8
#define EDU_LIVE    0x04
#define EDU_FACT    0x08
#define EDU_STATUS  0x20
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_BUF 0x40000u
#define EDU_DMA_LEN 512
#define EDU_WAIT_MS 10000

static u8 edu_page[2][4096] __attribute__((aligned(4096)));

static bool edu_dma(u64 bar, u32 src, u32 dst, bool to_ram)
{
	mmio_write32(bar + EDU_DMA_SRC, src);
	mmio_write32(bar + EDU_DMA_DST, dst);
	mmio_write32(bar + EDU_DMA_CNT, EDU_DMA_LEN);
	mmio_write32(bar + EDU_DMA_CMD, 1u | (to_ram ? 2u : 0u));
	return wait_until(!(mmio_read32(bar + EDU_DMA_CMD) & 1), EDU_WAIT_MS);
}

/* Use the edu behind the port: liveness, n!, and (with `dma`) a round trip through its DMA. */
static bool edu_use(u16 bdf, u32 n, bool dma, u64 round)
{
	u16 cmd = pci_read16(bdf, PCI_COMMAND);
	u64 bar = pci_bar_addr(bdf, 0);
	u32 want = 1, i;
	bool ok;

	for (i = 2; i <= n; i++)
		want *= i;
	pci_write16(bdf, PCI_COMMAND, (u16)(cmd | PCI_CMD_MEMORY | PCI_CMD_MASTER));
	mmio_write32(bar + EDU_LIVE, (u32)round);
	ok = expect(mmio_read32(bar + EDU_LIVE) == ~(u32)round, "round %llu: liveness 0x%08x",
	            round, mmio_read32(bar + EDU_LIVE));
	mmio_write32(bar + EDU_FACT, n);
	ok &=
	    expect(wait_until(!(mmio_read32(bar + EDU_STATUS) & 1), EDU_WAIT_MS) &&
	               mmio_read32(bar + EDU_FACT) == want,
	           "round %llu: %u! read %u, want %u", round, n, mmio_read32(bar + EDU_FACT), want);
	if (ok && dma) {
		for (i = 0; i < EDU_DMA_LEN; i++)
			edu_page[0][i] = (u8)(i * 7 + round);
		memset(edu_page[1], 0, sizeof(edu_page[1]));
		ok = expect(edu_dma(bar, (u32)(uintptr_t)edu_page[0], EDU_DMA_BUF, false) &&
		                edu_dma(bar, EDU_DMA_BUF, (u32)(uintptr_t)edu_page[1], true),
		            "round %llu: DMA hangs", round) &&
		     expect(!memcmp(edu_page[0], edu_page[1], EDU_DMA_LEN),
		            "round %llu: the DMA round trip changed the data", round);
	}
	pci_write16(bdf, PCI_COMMAND, cmd);
	return ok;
}

/*
 * The host plugs QEMU's edu device (passed through with PUT /vfio/{id}) into the slot and
 * takes it back, test.hp_cycles times: each time the guest finds it behind the port with its
 * ids, uses it (DMA on the first and last round), and lets it go.
 */
GUEST_TEST(hotplug_edu)
{
	static struct hp_port p;
	u64 rounds = cmdline_num("test.hp_cycles", 1), r;
	u16 bdf;
	u32 id;

	if (!driven() || !hp_port_open(&p, port_num(), irq_mode()))
		return;
	for (r = 0; r < rounds; r++) {
		printf("# hotplug: waiting port=%u cycle=%llu\n", p.num, r);
		if (!await(&p, HP_ADDED, WAIT_MS, "waiting for the plug") ||
		    !hp_enumerate(&p, &bdf, false))
			break;
		id = pci_read32(bdf, PCI_VENDOR_ID);
		if (!expect(id == (EDU_DEVICE << 16 | EDU_VENDOR),
		            "cycle %llu: %04x:%04x, want edu", r, id & 0xffff, id >> 16) ||
		    !edu_use(bdf, (u32)(3 + r % 8), r == 0 || r + 1 == rounds, r))
			break;
		printf("# hotplug: ready port=%u cycle=%llu\n", p.num, r);
		if (!await(&p, HP_REMOVED, WAIT_MS, "waiting for the unplug request"))
			break;
		hp_power(&p, false);
		printf("# hotplug: removed port=%u cycle=%llu\n", p.num, r);
		if (!expect(wait_until(!hp_dev_present(bdf), 2000),
		            "cycle %llu: the device still answers after the power-off", r))
			break;
	}
	irq_summary(&p);
	expect(p.events == 2 * rounds, "%u slot events in %llu rounds, want %llu", p.events, rounds,
	       2 * rounds);
	hp_port_close(&p);
	host_done();
}

/* ---- removal the guest does not take part in ---- */

/*
 * A guest that ignores the removal request: it never powers the slot off.
 * The device must keep working meanwhile, and ember must take it after its
 * timeout; the guest reports when it vanished, counted from the request.
 */
GUEST_TEST(hotplug_ignore)
{
	static struct hp_port p;
	static struct vblk b;
	u64 mark = dma_mark(), t0, ms, ok_reads = 0;
	u8 *sector;
	u8 st;

	if (!driven() || !hp_port_open(&p, port_num(), irq_mode()))
		return;
	waiting(&p);
	if (!await(&p, HP_ADDED, WAIT_MS, "waiting for the plug") || !bring_up(&p, &b.dev, false) ||
	    !vblk_start(&b, 0))
		goto out;
	sector = dma_alloc(SECTOR, 4096);
	if (!sector)
		goto out;
	ready(&p, &b.dev);
	printf("# hotplug: idle port=%u\n", p.num);
	if (!await(&p, HP_REMOVED, WAIT_MS, "waiting for the unplug request"))
		goto out;
	t0 = rdtsc();
	printf("# hotplug: ignoring removal port=%u\n", p.num);
	/* Still fully working for a while (1 s), though removal is pending. */
	while (rdtsc() - t0 < 1000 * tsc_per_ms()) {
		st = vblk_io(&b, VIRTIO_BLK_T_IN, 0, sector, SECTOR, 1, false);
		if (!expect(st == VIRTIO_BLK_S_OK,
		            "read %llu while removal is pending: status 0x%x", ok_reads, st))
			break;
		ok_reads++;
		udelay(10000);
	}
	printf("# hotplug: %llu reads while removal was pending\n", ok_reads);
	if (!expect(wait_until(!hp_dev_present(b.dev.bdf), 20000),
	            "port %u: the device still answers 20 s after the removal request", p.num))
		goto out;
	ms = (rdtsc() - t0) / tsc_per_ms();
	/* Guest milliseconds: from the TSC rate tsc.c guesses when CPUID does not say it. */
	printf("# hotplug: gone port=%u after=%llu guest-ms\n", p.num, ms);
	virtio_forget(&b.dev);
	expect(!(hp_slot_status(&p) & SLTSTA_PDS), "Presence Detect State set after the removal");
	expect(hp_powered(&p), "the slot was powered off, though this guest never did");
	irq_summary(&p);
out:
	if (b.dev.open && hp_dev_present(b.dev.bdf))
		virtio_close(&b.dev);
	virtio_forget(&b.dev);
	hp_port_close(&p);
	dma_release(mark);
	host_done();
}
