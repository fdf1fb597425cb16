/* t_virtio_rng.c - virtio-rng (virtio 1.2 §5.4): entropy arrives, differs between reads. */
#include "virtio.h"

#define LEN 64

static bool all_zero(const u8 *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* One request of `len` bytes split into `nseg` writable buffers; the length the device filled. */
static u32 rng_read(struct vq *q, u8 *buf, u32 len, unsigned int nseg, bool indirect,
                    const char *what)
{
	struct vbuf v[4];
	unsigned int i;
	u32 used = 0, part = len / nseg;
	u16 head;

	for (i = 0; i < nseg; i++)
		v[i] =
		    (struct vbuf){pa(buf) + i * part, i + 1 == nseg ? len - i * part : part, true};
	if (!expect(vq_add(q, v, nseg, indirect) >= 0, "%s: cannot queue the request", what))
		return 0;
	vq_kick(q);
	if (!expect(vq_wait_get(q, &head, &used, 5000), "%s: no completion in 5 s", what))
		return 0;
	expect(used > 0 && used <= len, "%s: used length %u for a %u-byte buffer", what, used, len);
	return used;
}

void virtio_rng_exercise(struct virtio_dev *d)
{
	struct vq *q;
	u8 *a, *b;
	u32 la, lb, n, total = 0;
	unsigned int i;
	char hex[3 * 16 + 1];

	a = dma_alloc(2 * 4096, 4096);
	b = a ? a + 4096 : NULL;
	if (!a || !virtio_start(d, 0) || !(q = virtio_queue(d, 0, 0, 4)) || !virtio_ready(d))
		return;
	virtio_describe(d);

	la = rng_read(q, a, LEN, 1, false, "first read");
	lb = rng_read(q, b, LEN, q->indirect ? 3 : 2, q->indirect, "second read");
	hex_line(hex, sizeof(hex), a, la < 16 ? la : 16);
	printf("# %u bytes: %s ...\n", la, hex);
	expect(la && !all_zero(a, la), "first read: %u bytes, all zero", la);
	expect(lb && !all_zero(b, lb), "second read: %u bytes, all zero", lb);
	n = la < lb ? la : lb;
	expect(n && memcmp(a, b, n), "two reads returned the same %u bytes", n);

	/* A few more, larger: the device keeps answering, with bytes each time. */
	for (i = 0; i < 8; i++) {
		memset(a, 0, 4096);
		n = rng_read(q, a, 4096, 1, q->indirect && (i & 1), "4 KiB read");
		if (!n)
			break;
		total += n;
		expect(!all_zero(a, n), "4 KiB read %u: all %u bytes zero", i, n);
	}
	printf("# 8 reads of 4 KiB: %u bytes; kicks %u, interrupts %u\n", total, q->kicks,
	       vq_irqs(q));
	vq_expect_clean(q);
	expect(!(virtio_get_status(d) & VIRTIO_STATUS_NEEDS_RESET), "NEEDS_RESET set");
}

GUEST_TEST(virtio_rng)
{
	static struct virtio_dev d;
	u64 mark = dma_mark();

	if (!virtio_open(&d, VIRTIO_ID_RNG, "rng", 0))
		return;
	virtio_rng_exercise(&d);
	virtio_close(&d);
	dma_release(mark);
}
