/* t_virtio_balloon.c - virtio-balloon (virtio 1.2 §5.5): inflate on the host's request, stats. */
#include "virtio.h"

/*
 * The host drives this test through ember's API while it runs (tests/integration/
 * test_balloon.py): each step prints a line the host waits for, then waits for the host.
 *
 *   1. Start the device (inflateq, deflateq, statsq when offered), hand the stats buffer over
 *      with round-1 values (1000 + tag), touch test.balloon_mib MiB of pages.
 *      "# balloon: touched N pages"
 *   2. Wait for num_pages (PATCH /balloon), inflate that many of the touched pages (256 PFNs
 *      a buffer, as Linux), check an inflated page now reads zeros (the host dropped it),
 *      write actual.      "# balloon: inflated N pages, actual N"
 *   3. With statistics: wait for the device to give the stats buffer back (its polling
 *      interval), refill it with round-2 values (2000 + tag).
 *      "# balloon: stats round 2 sent"
 *   4. Wait for num_pages 0, deflate everything, write actual 0.
 *      "# balloon: deflated N pages, actual 0"
 *   5. With statistics: wait for the stats buffer once more, refill it with round-3 values
 *      (3000 + tag).     "# balloon: stats round 3 sent"
 *   6. Wait for num_pages again (the host's last request, once it has checked the rest),
 *      inflate that many of the pages just deflated, and end.
 *      "# balloon: inflated again M pages, actual M"
 */

#define F_STATS_VQ       1
#define F_DEFLATE_ON_OOM 2
#define CFG_NUM_PAGES    0
#define CFG_ACTUAL       4
#define PFNS_PER_BUF     256
#define NSTATS           10 /* the tags Firecracker names: swap_in .. hugetlb_failures */
#define PAGE             4096u

struct stat_entry {
	u16 tag;
	u64 val;
} __attribute__((packed));

_Static_assert(sizeof(struct stat_entry) == 10, "§5.5.6.3: le16 tag, le64 val, packed");

static u64 wait_ms(void)
{
	return cmdline_num("test.balloon_wait_ms", 300000);
}

/* Poll num_pages until it equals `want` (or, want == ~0, becomes non-zero); its value. */
static u32 wait_num_pages(struct virtio_dev *d, u64 want)
{
	u64 end = deadline_ms(wait_ms());
	u32 v = virtio_cfg32(d, CFG_NUM_PAGES);

	while (!(want == ~0ull ? v != 0 : v == want) && rdtsc() < end) {
		u64 next = deadline_ms(5);

		while (rdtsc() < next)
			cpu_relax();
		v = virtio_cfg32(d, CFG_NUM_PAGES);
	}
	return v;
}

/* Send `n` PFNs from `pfn` on q in buffers of PFNS_PER_BUF; false on a failure. */
static bool send_pfns(struct vq *q, u32 *pfn, u32 n, const char *what)
{
	u32 done = 0;

	while (done < n) {
		u32 k = n - done < PFNS_PER_BUF ? n - done : PFNS_PER_BUF, len;
		struct vbuf b = {pa(pfn + done), 4 * k, false};
		u16 head;

		if (!expect(vq_add(q, &b, 1, false) >= 0, "%s: cannot queue PFNs", what))
			return false;
		vq_kick(q);
		if (!expect(vq_wait_get(q, &head, &len, 10000), "%s: buffer not used in 10 s",
		            what))
			return false;
		expect(len == 0, "%s: used length %u, want 0", what, len);
		done += k;
	}
	return true;
}

static void fill_stats(struct stat_entry *s, u64 base)
{
	for (unsigned int i = 0; i < NSTATS; i++)
		s[i] = (struct stat_entry){(u16)i, base + i};
}

static void balloon_exercise(struct virtio_dev *d)
{
	u32 mib = (u32)cmdline_num("test.balloon_mib", 32), npages = mib * 256, target, i;
	struct vq *inq, *defq, *stq = NULL;
	struct stat_entry *st;
	volatile u8 *pages;
	u32 *pfn;
	u16 head;
	u32 len;

	if (!virtio_start(d, BIT64(F_STATS_VQ) | BIT64(F_DEFLATE_ON_OOM)) ||
	    !(inq = virtio_queue(d, 0, 0, 0)) || !(defq = virtio_queue(d, 1, 0, 0)))
		return;
	if (virtio_has(d, F_STATS_VQ) && !(stq = virtio_queue(d, 2, 0, 0)))
		return;
	if (!virtio_ready(d))
		return;
	virtio_describe(d);
	printf("# balloon: stats %s, deflate_on_oom %s, num_pages %u\n", stq ? "on" : "off",
	       virtio_has(d, F_DEFLATE_ON_OOM) ? "on" : "off", virtio_cfg32(d, CFG_NUM_PAGES));

	st = dma_alloc(NSTATS * sizeof(*st), 64);
	pfn = dma_alloc(4ull * npages, 4096);
	pages = dma_alloc((u64)npages * PAGE, 2 * MiB);
	if (!st || !pfn || !pages)
		return;
	if (stq) {
		struct vbuf b = {pa(st), NSTATS * sizeof(*st), false};

		fill_stats(st, 1000);
		expect(vq_add(stq, &b, 1, false) >= 0, "cannot queue the stats buffer");
		vq_kick(stq);
	}
	for (i = 0; i < npages; i++) {
		pages[(u64)i * PAGE] = (u8)(i | 1);
		pages[(u64)i * PAGE + PAGE - 1] = 0x5a;
		pfn[i] = (u32)((pa(pages) >> 12) + i);
	}
	printf("# balloon: touched %u pages\n", npages);

	/* 2: inflate what the host asks for. */
	target = wait_num_pages(d, ~0ull);
	if (!expect(target != 0, "num_pages still 0 after %llu ms", wait_ms()))
		return;
	if (!expect(target <= npages, "num_pages %u, more than the %u pages touched", target,
	            npages))
		return;
	if (!send_pfns(inq, pfn, target, "inflate"))
		return;
	/* The host gave the pages back: an anonymous page comes back as zeros. */
	expect(pages[0] == 0 && pages[PAGE - 1] == 0,
	       "inflated page 0 still holds %#x..%#x, want zeros", pages[0], pages[PAGE - 1]);
	virtio_cfg_write32(d, CFG_ACTUAL, target);
	expect(virtio_cfg32(d, CFG_ACTUAL) == target, "actual reads %u after writing %u",
	       virtio_cfg32(d, CFG_ACTUAL), target);
	printf("# balloon: inflated %u pages, actual %u\n", target, target);

	/* 3: the device asks for fresh statistics every polling interval. */
	if (stq) {
		struct vbuf b = {pa(st), NSTATS * sizeof(*st), false};

		if (!expect(vq_wait_get(stq, &head, &len, 30000),
		            "the stats buffer did not come back in 30 s"))
			return;
		fill_stats(st, 2000);
		expect(vq_add(stq, &b, 1, false) >= 0, "cannot queue the stats buffer again");
		vq_kick(stq);
		printf("# balloon: stats round 2 sent\n");
	}

	/* 4: deflate when the host's target drops to 0. */
	if (!expect(wait_num_pages(d, 0) == 0, "num_pages still %u after %llu ms",
	            virtio_cfg32(d, CFG_NUM_PAGES), wait_ms()))
		return;
	if (!send_pfns(defq, pfn, target, "deflate"))
		return;
	virtio_cfg_write32(d, CFG_ACTUAL, 0);
	pages[0] = 0x33; /* the page is the guest's again */
	expect(pages[0] == 0x33, "a deflated page does not keep a write");
	printf("# balloon: deflated %u pages, actual 0\n", target);

	/* 5: one more round of statistics. */
	if (stq) {
		struct vbuf b = {pa(st), NSTATS * sizeof(*st), false};

		if (!expect(vq_wait_get(stq, &head, &len, 30000),
		            "the stats buffer did not come back a third time in 30 s"))
			return;
		fill_stats(st, 3000);
		expect(vq_add(stq, &b, 1, false) >= 0,
		       "cannot queue the stats buffer a third time");
		vq_kick(stq);
		printf("# balloon: stats round 3 sent\n");
	}

	/* 6: inflate again, deflated pages included. */
	target = wait_num_pages(d, ~0ull);
	if (!expect(target != 0 && target <= npages, "num_pages %u after the deflate", target))
		return;
	if (!send_pfns(inq, pfn, target, "inflate again"))
		return;
	expect(pages[0] == 0, "page 0 holds %#x after inflating it again, want 0", pages[0]);
	virtio_cfg_write32(d, CFG_ACTUAL, target);
	printf("# balloon: inflated again %u pages, actual %u\n", target, target);
	vq_expect_clean(inq);
	vq_expect_clean(defq);
	expect(!(virtio_get_status(d) & VIRTIO_STATUS_NEEDS_RESET), "NEEDS_RESET set");
}

GUEST_TEST(virtio_balloon)
{
	static struct virtio_dev d;
	u64 mark = dma_mark();

	if (!virtio_open(&d, VIRTIO_ID_BALLOON, "balloon", 0))
		return;
	balloon_exercise(&d);
	virtio_close(&d);
	dma_release(mark);
}
