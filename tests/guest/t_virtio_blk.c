/* t_virtio_blk.c - virtio-blk: id, seeded writes, flush, read back, errors, read-only disk. */
#include "virtio.h"

/*
 * Command line (tests/integration/test_virtio.py sets it):
 *   test.virtio_blk=pci|mmio   the disks' transport
 *   test.blk_seed=S            pattern seed for the written sectors
 *   test.blk_sector=N          first sector written
 *   test.blk_count=K           sectors written
 *   test.blk_sectors=C         the image's size in sectors (capacity must match)
 *   test.blk_ro_index=I        the I-th disk (from 0) is read-only (optional)
 *   test.blk_wrap=R            one-sector reads to push through the ring (default 600)
 *
 * The host fills every image with the base pattern: 64-bit little-endian word
 * i of sector s is s << 16 | i.  Written sectors hold blk_pattern(seed, s).
 */

#define SECTOR     512
#define TIMEOUT_MS 5000
#define INFLIGHT   16

static void base_fill(u64 *w, u64 sector)
{
	unsigned int i;

	for (i = 0; i < SECTOR / 8; i++)
		w[i] = sector << 16 | i;
}

/* xorshift64 stream per sector; the host computes the same (test_virtio.py blk_pattern). */
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

/* Compare sector `s` at p with what it should hold; report the first difference. */
static bool check_sector(const u8 *p, u64 s, bool written, u64 seed, const char *what)
{
	u64 want[SECTOR / 8], got;
	unsigned int i;

	if (written)
		pattern_fill(want, seed, s);
	else
		base_fill(want, s);
	if (!memcmp(p, want, SECTOR))
		return true;
	for (i = 0; i < SECTOR / 8; i++) {
		memcpy(&got, p + 8 * i, 8);
		if (got != want[i])
			break;
	}
	fail("%s: sector %llu word %u is 0x%016llx, want 0x%016llx (%s pattern)", what, s, i, got,
	     want[i], written ? "written" : "base");
	return false;
}

static bool status_is(u8 st, u8 want, const char *what)
{
	return expect(st == want, "%s: status %u%s, want %u", what, st,
	              st == VBLK_STATUS_TIMEOUT ? " (no completion)" : "", want);
}

static void blk_get_id(struct vblk *b, u8 *buf)
{
	char id[VIRTIO_BLK_ID_BYTES + 1];
	unsigned int i;
	u8 st;

	memset(buf, 0xa5, 64);
	st = vblk_io(b, VIRTIO_BLK_T_GET_ID, 0, buf, VIRTIO_BLK_ID_BYTES, 1, false);
	if (!status_is(st, VIRTIO_BLK_S_OK, "GET_ID"))
		return;
	for (i = 0; i < VIRTIO_BLK_ID_BYTES && buf[i]; i++)
		id[i] = buf[i] >= 0x20 && buf[i] < 0x7f ? (char)buf[i] : '?';
	id[i] = '\0';
	printf("# blk id: \"%s\"\n", id);
	expect(i > 0, "GET_ID returned an empty id");
	expect(buf[VIRTIO_BLK_ID_BYTES] == 0xa5, "GET_ID wrote past its 20 bytes");
}

/* Write sectors [first, first+count) in chunks of varying shape. */
static void blk_write_pattern(struct vblk *b, u8 *buf, u64 seed, u64 first, u64 count)
{
	u64 s = first, n;
	unsigned int round = 0;
	bool ind;
	char what[64];

	while (s < first + count) {
		n = 1 + round % 8; /* 1..8 sectors per request */
		if (s + n > first + count)
			n = first + count - s;
		for (u64 i = 0; i < n; i++)
			pattern_fill((u64 *)(buf + i * SECTOR), seed, s + i);
		ind = b->q->indirect && (round & 1);
		snprintf(what, sizeof(what), "write sectors %llu+%llu (%u segs%s)", s, n,
		         1 + round % 3, ind ? ", indirect" : "");
		if (!status_is(
		        vblk_io(b, VIRTIO_BLK_T_OUT, s, buf, (u32)(n * SECTOR), 1 + round % 3, ind),
		        VIRTIO_BLK_S_OK, what))
			return;
		expect(b->used_len[0] == 1, "%s: used length %u, want 1 (the status byte)", what,
		       b->used_len[0]);
		s += n;
		round++;
	}
}

static void blk_read_back(struct vblk *b, u8 *buf, u64 seed, u64 first, u64 count)
{
	u64 lo = first >= 4 ? first - 4 : 0, hi = first + count + 4, s;
	u32 len;
	char what[64];

	if (hi > b->capacity)
		hi = b->capacity;
	if (hi - lo > 128)
		hi = lo + 128; /* 64 KiB at most; the neighbours show writes did not spill */
	len = (u32)((hi - lo) * SECTOR);
	memset(buf, 0x5a, len);
	snprintf(what, sizeof(what), "read sectors %llu+%llu", lo, hi - lo);
	if (!status_is(vblk_io(b, VIRTIO_BLK_T_IN, lo, buf, len, 4, b->q->indirect),
	               VIRTIO_BLK_S_OK, what))
		return;
	expect(b->used_len[0] == len + 1, "%s: used length %u, want %u (data + status)", what,
	       b->used_len[0], len + 1);
	for (s = lo; s < hi; s++)
		if (!check_sector(buf + (s - lo) * SECTOR, s, s >= first && s < first + count, seed,
		                  what))
			return;
}

/* INFLIGHT one-sector reads in flight at once, collected in whatever order they complete. */
static void blk_parallel(struct vblk *b, u8 *buf, u64 seed, u64 first, u64 count)
{
	u64 sec[INFLIGHT], rng = seed + 7;
	unsigned int i, tag, done = 0;
	u8 st;

	for (i = 0; i < INFLIGHT; i++) {
		sec[i] = first + prng_next(&rng) % count;
		memset(buf + i * SECTOR, 0x5a, SECTOR);
		if (!expect(vblk_submit(b, i, VIRTIO_BLK_T_IN, sec[i], buf + i * SECTOR, SECTOR, 1,
		                        b->q->indirect && (i & 1)),
		            "parallel: cannot queue request %u", i))
			return;
	}
	vq_kick(b->q);
	for (done = 0; done < INFLIGHT; done++) {
		if (!expect(vblk_complete(b, &tag, &st, TIMEOUT_MS),
		            "parallel: %u of %u requests completed", done, INFLIGHT))
			return;
		if (!status_is(st, VIRTIO_BLK_S_OK, "parallel read"))
			return;
		check_sector(buf + tag * SECTOR, sec[tag], true, seed, "parallel read");
	}
}

/* Many small reads in batches: the ring indices go round the 256 slots several times. */
static void blk_wrap(struct vblk *b, u8 *buf, u64 seed, u64 first, u64 count, u64 total)
{
	u64 issued = 0, completed = 0, rng = seed + 11;
	u64 sec[32];
	unsigned int i, tag, batch;
	u8 st;

	while (completed < total) {
		batch = total - issued < 32 ? (unsigned int)(total - issued) : 32;
		for (i = 0; i < batch; i++) {
			sec[i] = first + prng_next(&rng) % count;
			if (!expect(vblk_submit(b, i, VIRTIO_BLK_T_IN, sec[i], buf + i * SECTOR,
			                        SECTOR, 1, b->q->indirect && (issued & 2)),
			            "wrap: cannot queue request %llu", issued))
				return;
			issued++;
		}
		vq_kick(b->q);
		for (i = 0; i < batch; i++) {
			if (!expect(vblk_complete(b, &tag, &st, TIMEOUT_MS),
			            "wrap: request %llu never completed", completed))
				return;
			completed++;
			if (!status_is(st, VIRTIO_BLK_S_OK, "wrap read"))
				return;
			if (!check_sector(buf + tag * SECTOR, sec[tag], true, seed, "wrap read"))
				return;
		}
	}
	printf("# wrap: %llu reads, avail idx %u, used idx %u\n", completed, b->q->avail_idx,
	       b->q->last_used);
}

/*
 * With notifications suppressed, completions arrive by polling, (almost)
 * without notifications: counted as MSI-X deliveries, or (INTx, mmio line) as
 * ISR / InterruptStatus reads that found the queue bit set, one read after
 * each request.  A level INTx line interrupts again after every EOI until the
 * ISR is read, so its deliveries are no measure.
 */
static void blk_suppressed(struct vblk *b, u8 *buf, u64 first)
{
	bool isr = b->dev.opts.mode == VM_INTX || b->dev.opts.mode == VM_LINE;
	u32 before, got = 0;
	unsigned int i;
	u8 st;

	/* Let the last phase's notifications land (legacy lines lag) and clear the ISR. */
	udelay(20000);
	if (isr)
		virtio_isr_ack(&b->dev);
	before = vq_irqs(b->q);
	vq_want_irq(b->q, false);
	for (i = 0; i < 8; i++) {
		st = vblk_io(b, VIRTIO_BLK_T_IN, first + i, buf, SECTOR, 1, false);
		if (!status_is(st, VIRTIO_BLK_S_OK, "read with interrupts suppressed"))
			break;
		if (isr)
			got += virtio_isr_ack(&b->dev) & VIRTIO_ISR_QUEUE ? 1 : 0;
	}
	udelay(5000);
	if (isr)
		got += virtio_isr_ack(&b->dev) & VIRTIO_ISR_QUEUE ? 1 : 0;
	else
		got = vq_irqs(b->q) - before;
	vq_want_irq(b->q, true);
	printf("# suppressed: %u notifications for 8 requests\n", got);
	/* §2.7.7/§2.7.10: SHOULD NOT notify; allow one (QEMU's devices send one after the
	 * driver's used_event fell behind their last notification). */
	expect(got <= 1, "%u notifications for 8 requests with notifications suppressed (%s)", got,
	       b->q->event_idx ? "used_event behind" : "VRING_AVAIL_F_NO_INTERRUPT");
}

static void blk_errors(struct vblk *b, u8 *buf)
{
	u64 cap = b->capacity;

	memset(buf, 0, 4 * SECTOR);
	status_is(vblk_io(b, VIRTIO_BLK_T_IN, cap, buf, SECTOR, 1, false), VIRTIO_BLK_S_IOERR,
	          "read of the sector at capacity");
	status_is(vblk_io(b, VIRTIO_BLK_T_IN, cap - 1, buf, 2 * SECTOR, 1, false),
	          VIRTIO_BLK_S_IOERR, "read across the end");
	status_is(vblk_io(b, VIRTIO_BLK_T_IN, ~0ull >> 1, buf, SECTOR, 1, false),
	          VIRTIO_BLK_S_IOERR, "read at sector 2^63-1");
	status_is(vblk_io(b, VIRTIO_BLK_T_OUT, cap, buf, SECTOR, 1, false), VIRTIO_BLK_S_IOERR,
	          "write of the sector at capacity");
	/* The device must still be usable after errors. */
	status_is(vblk_io(b, VIRTIO_BLK_T_IN, 0, buf, SECTOR, 1, false), VIRTIO_BLK_S_OK,
	          "read of sector 0 after the errors");
	check_sector(buf, 0, false, 0, "read of sector 0 after the errors");
}

/* The read-only disk: RO offered, reads work, writes fail with IOERR and change nothing. */
static void blk_read_only(const struct virtio_opts *o, unsigned int index, u8 *buf)
{
	static struct vblk ro;
	u64 s;

	if (!virtio_find(&ro.dev, VIRTIO_ID_BLOCK, o->transport, index, o))
		return;
	if (!vblk_start(&ro, 8))
		goto out;
	virtio_describe(&ro.dev);
	if (!expect(ro.ro, "disk #%u: VIRTIO_BLK_F_RO not offered (features 0x%llx)", index,
	            ro.dev.offered))
		goto out;
	memset(buf, 0x5a, 8 * SECTOR);
	if (status_is(vblk_io(&ro, VIRTIO_BLK_T_IN, 0, buf, 8 * SECTOR, 2, false), VIRTIO_BLK_S_OK,
	              "read-only disk: read of sectors 0-7"))
		for (s = 0; s < 8; s++)
			if (!check_sector(buf + s * SECTOR, s, false, 0, "read-only disk"))
				break;
	pattern_fill((u64 *)buf, 0xdead, 1);
	status_is(vblk_io(&ro, VIRTIO_BLK_T_OUT, 1, buf, SECTOR, 1, false), VIRTIO_BLK_S_IOERR,
	          "read-only disk: write of sector 1");
	status_is(vblk_io(&ro, VIRTIO_BLK_T_OUT, 2, buf, 4 * SECTOR, 2, ro.q->indirect),
	          VIRTIO_BLK_S_IOERR, "read-only disk: write of sectors 2-5");
	memset(buf, 0x5a, SECTOR);
	if (status_is(vblk_io(&ro, VIRTIO_BLK_T_IN, 1, buf, SECTOR, 1, false), VIRTIO_BLK_S_OK,
	              "read-only disk: read of sector 1 after the write"))
		check_sector(buf, 1, false, 0, "read-only disk after the rejected write");
	vq_expect_clean(ro.q);
	expect(!(virtio_get_status(&ro.dev) & VIRTIO_STATUS_NEEDS_RESET),
	       "read-only disk: NEEDS_RESET set");
out:
	virtio_close(&ro.dev);
}

/* One line per phase: requests, kicks and interrupts since the last. */
static void phase(struct vblk *b, const char *name)
{
	static u32 req, kicks, irqs;

	if (name)
		printf("# %-18s requests %4u, kicks %3u, interrupts %4u\n", name,
		       b->q->completed - req, b->q->kicks - kicks, vq_irqs(b->q) - irqs);
	req = b->q->completed;
	kicks = b->q->kicks;
	irqs = vq_irqs(b->q);
}

GUEST_TEST(virtio_blk)
{
	static struct vblk b;
	u64 seed = cmdline_num("test.blk_seed", 1), first = cmdline_num("test.blk_sector", 64);
	u64 count = cmdline_num("test.blk_count", 40), want_cap, ro_index;
	u64 mark = dma_mark();
	u8 *buf;
	u32 irqs;

	if (!virtio_open(&b.dev, VIRTIO_ID_BLOCK, "blk", 0))
		return;
	buf = dma_alloc(128 * SECTOR + 64, 4096);
	if (!buf || !vblk_start(&b, 16))
		goto out;
	virtio_describe(&b.dev);
	phase(&b, NULL);
	printf("# capacity %llu sectors, size_max %u, seg_max %u, queue size %u\n", b.capacity,
	       b.size_max, b.seg_max, b.q->size);
	if (cmdline_u64("test.blk_sectors", &want_cap))
		expect(b.capacity == want_cap, "capacity %llu sectors, want %llu", b.capacity,
		       want_cap);
	if (!expect(!b.ro, "disk #0 offers VIRTIO_BLK_F_RO: want the writable disk first"))
		goto out;
	if (!expect(first + count <= b.capacity && count > 0,
	            "pattern sectors %llu+%llu do not fit in %llu", first, count, b.capacity))
		goto out;
	expect(virtio_has(&b.dev, VIRTIO_BLK_F_FLUSH), "VIRTIO_BLK_F_FLUSH not offered");

	blk_get_id(&b, buf);
	/* The host's base pattern, before anything is written. */
	memset(buf, 0x5a, 8 * SECTOR);
	if (status_is(vblk_io(&b, VIRTIO_BLK_T_IN, 0, buf, 8 * SECTOR, 1, false), VIRTIO_BLK_S_OK,
	              "read of sectors 0-7"))
		for (u64 s = 0; s < 8; s++)
			if (!check_sector(buf + s * SECTOR, s, false, 0, "first read"))
				break;
	phase(&b, "get-id, first read");
	blk_write_pattern(&b, buf, seed, first, count);
	if (virtio_has(&b.dev, VIRTIO_BLK_F_FLUSH))
		status_is(vblk_io(&b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0, false), VIRTIO_BLK_S_OK,
		          "flush");
	phase(&b, "write, flush");
	blk_read_back(&b, buf, seed, first, count);
	phase(&b, "read back");
	blk_parallel(&b, buf, seed, first, count);
	phase(&b, "parallel");
	blk_wrap(&b, buf, seed, first, count, cmdline_num("test.blk_wrap", 600));
	phase(&b, "wrap");
	if (b.dev.opts.mode != VM_POLL)
		blk_suppressed(&b, buf, first);
	phase(&b, "suppressed");
	blk_errors(&b, buf);
	phase(&b, "errors");

	irqs = vq_irqs(b.q);
	printf("# requests %u, kicks %u (%u suppressed by the device), interrupts %u\n",
	       b.q->completed, b.q->kicks, b.q->kicks_skipped, irqs);
	vq_expect_clean(b.q);
	expect(!(virtio_get_status(&b.dev) & VIRTIO_STATUS_NEEDS_RESET), "NEEDS_RESET set");

	if (cmdline_u64("test.blk_ro_index", &ro_index)) {
		virtio_close(&b.dev);
		blk_read_only(&b.dev.opts, (unsigned int)ro_index, buf);
	}
out:
	virtio_close(&b.dev);
	dma_release(mark);
}
