/* fuzz_virtq.c - libFuzzer target: split virtqueue rings and descriptor chains via virtq_pop(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtq.h"

/*
 * Input: a 12-byte header of queue parameters, then the image of guest RAM
 * (rings, descriptors, indirect tables, buffers; zero-filled past the input).
 *   [0]      queue size = 1 << (b % 9)          (1..256)
 *   [1]      bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 align ring offsets,
 *            bit 3 kicks off during the batch, bit 4 run virtq_check_rings first
 *   [2..3]   last_avail      [4..5] used_idx
 *   [6..7]   descriptor table offset in RAM1   [8..9] avail ring   [10..11] used ring
 * Guest RAM is two regions: RAM1 (64 KiB at 64 KiB, so 0 is not RAM) and RAM2
 * (4 KiB just below 4 GiB, so chains can run off its end into nothing).
 */
#define RAM1_GPA  0x10000ull
#define RAM1_SIZE 0x10000ull
#define RAM2_GPA  0xfffff000ull
#define RAM2_SIZE 0x1000ull
#define HDR       12
#define MAX_POPS  1024

static uint8_t ram1[RAM1_SIZE] __attribute__((aligned(4096)));
static uint8_t ram2[RAM2_SIZE] __attribute__((aligned(4096)));
static uint8_t scratch[1 << 16];

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* A segment must be exactly the RAM the guest named, and lie inside the fake RAM. */
static void check_seg(const struct virtq_seg *s)
{
	const uint8_t *h = s->hva;

	if (s->len == 0)
		abort();
	if (s->gpa >= RAM1_GPA && s->gpa - RAM1_GPA < RAM1_SIZE) {
		if (s->len > RAM1_SIZE - (s->gpa - RAM1_GPA) || h != ram1 + (s->gpa - RAM1_GPA))
			abort();
	} else if (s->gpa >= RAM2_GPA && s->gpa - RAM2_GPA < RAM2_SIZE) {
		if (s->len > RAM2_SIZE - (s->gpa - RAM2_GPA) || h != ram2 + (s->gpa - RAM2_GPA))
			abort();
	} else {
		abort();
	}
}

static void check_chain(const struct virtq *q, const struct virtq_chain *c)
{
	uint64_t out = 0, in = 0;
	bool seen_write = false;
	unsigned int i;

	if (c->head >= q->size || c->nseg > VIRTQ_MAX_SEGS)
		abort();
	for (i = 0; i < c->nseg; i++) {
		const struct virtq_seg *s = &c->seg[i];

		check_seg(s);
		if (s->write) {
			seen_write = true;
			in += s->len;
		} else {
			if (seen_write)
				abort(); /* readable after writable */
			out += s->len;
		}
	}
	if (out != c->out_len || in != c->in_len || out + in > UINT32_MAX)
		abort();
	/* The copy helpers see exactly those bytes. */
	if (virtq_copy_from_chain(c, 0, scratch,
	                          c->out_len < sizeof(scratch) ? c->out_len : sizeof(scratch)) !=
	    (c->out_len < sizeof(scratch) ? c->out_len : sizeof(scratch)))
		abort();
	if (virtq_copy_from_chain(c, c->out_len, scratch, 1) != 0)
		abort();
	if (virtq_copy_to_chain(c, c->in_len, scratch, 1) != 0)
		abort();
	if (c->in_len && virtq_copy_to_chain(c, c->in_len - 1, scratch, 16) != 1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct virtq_chain c;
	struct gmem gm = {0};
	struct virtq q;
	uint8_t flags;
	unsigned int pops;
	size_t n;
	int r;

	if (size < HDR)
		return 0;
	memset(ram1, 0, sizeof(ram1));
	memset(ram2, 0, sizeof(ram2));
	n = size - HDR < sizeof(ram1) ? size - HDR : sizeof(ram1);
	memcpy(ram1, data + HDR, n);
	if (size - HDR > n) {
		size_t m = size - HDR - n < sizeof(ram2) ? size - HDR - n : sizeof(ram2);

		memcpy(ram2, data + HDR + n, m);
	}
	if (gmem_add(&gm, RAM1_GPA, RAM1_SIZE, ram1) || gmem_add(&gm, RAM2_GPA, RAM2_SIZE, ram2))
		abort();

	flags = data[1];
	virtq_reset(&q, VIRTQ_MAX_SIZE, &gm);
	q.size = (uint16_t)(1u << (data[0] % 9));
	q.event_idx = flags & 1;
	q.indirect = flags & 2;
	q.last_avail = rd16(data + 2);
	q.used_idx = rd16(data + 4);
	q.desc_gpa = RAM1_GPA + rd16(data + 6);
	q.avail_gpa = RAM1_GPA + rd16(data + 8);
	q.used_gpa = RAM1_GPA + rd16(data + 10);
	if (flags & 4) {
		q.desc_gpa &= ~15ull;
		q.avail_gpa &= ~1ull;
		q.used_gpa &= ~3ull;
	}
	q.ready = true;
	if ((flags & 16) && virtq_check_rings(&q) < 0)
		return 0;
	if (flags & 8)
		(void)virtq_set_kicks(&q, false);

	for (pops = 0; pops < MAX_POPS; pops++) {
		r = virtq_pop(&q, &c);
		if (r < 0) {
			if (!q.err)
				abort(); /* every failure says why */
			break;
		}
		if (r == 0)
			break;
		check_chain(&q, &c);
		virtq_push(&q, c.head, c.in_len);
		if (pops % 3 == 0)
			(void)virtq_needs_interrupt(&q);
	}
	(void)virtq_needs_interrupt(&q);
	(void)virtq_set_kicks(&q, true);
	(void)virtq_has_work(&q);
	return 0;
}
