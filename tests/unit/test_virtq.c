/* test_virtq.c - unit tests for split virtqueues: chain validation, used ring, suppression. */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "test.h"
#include "virtio/virtq.h"

/* Fake guest RAM: 1 MiB at 1 MiB, so addresses below and above it are both outside. */
#define RAM_BASE 0x100000ull
#define RAM_SIZE 0x100000ull
#define DESC     (RAM_BASE + 0x0000) /* descriptor table */
#define AVAIL    (RAM_BASE + 0x1000)
#define USED     (RAM_BASE + 0x2000)
#define ITABLE   (RAM_BASE + 0x8000)  /* indirect tables */
#define BUF      (RAM_BASE + 0x10000) /* buffers */

#define F_N VIRTQ_DESC_F_NEXT
#define F_W VIRTQ_DESC_F_WRITE
#define F_I VIRTQ_DESC_F_INDIRECT

struct fix {
	uint8_t *ram;
	struct gmem gm;
	struct virtq q;
	uint16_t avail_idx; /* the driver's shadow of avail->idx */
	struct virtq_chain c;
};

static void *g2h(struct fix *f, uint64_t gpa)
{
	return f->ram + (gpa - RAM_BASE);
}

static void put16(struct fix *f, uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	memcpy(g2h(f, gpa), &v, 2);
}

static uint16_t get16(struct fix *f, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, g2h(f, gpa), 2);
	return le16toh(v);
}

static uint32_t get32(struct fix *f, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, g2h(f, gpa), 4);
	return le32toh(v);
}

/* Write descriptor i of the table at `table`. */
static void desc(struct fix *f, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
                 uint16_t flags, uint16_t next)
{
	uint8_t *p = g2h(f, table + 16ull * i);
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t fl = htole16(flags), n = htole16(next);

	memcpy(p, &a, 8);
	memcpy(p + 8, &l, 4);
	memcpy(p + 12, &fl, 2);
	memcpy(p + 14, &n, 2);
}

/* Make chain `head` available and publish the new avail idx. */
static void avail_add(struct fix *f, uint16_t head)
{
	put16(f, AVAIL + 4 + 2ull * (f->avail_idx & (f->q.size - 1)), head);
	f->avail_idx++;
	put16(f, AVAIL + 2, f->avail_idx);
}

static void set_avail_idx(struct fix *f, uint16_t idx)
{
	f->avail_idx = idx;
	put16(f, AVAIL + 2, idx);
}

static uint16_t used_idx(struct fix *f)
{
	return get16(f, USED + 2);
}

static void set_used_event(struct fix *f, uint16_t ev)
{
	put16(f, AVAIL + 4 + 2ull * f->q.size, ev);
}

static uint16_t avail_event(struct fix *f)
{
	return get16(f, USED + 4 + 8ull * f->q.size);
}

static struct fix *setup(uint16_t size)
{
	struct fix *f = calloc(1, sizeof(*f));

	f->ram = aligned_alloc(4096, RAM_SIZE);
	memset(f->ram, 0, RAM_SIZE);
	CHECK_EQ(gmem_add(&f->gm, RAM_BASE, RAM_SIZE, f->ram), 0);
	virtq_reset(&f->q, VIRTQ_MAX_SIZE, &f->gm);
	f->q.size = size;
	f->q.desc_gpa = DESC;
	f->q.avail_gpa = AVAIL;
	f->q.used_gpa = USED;
	f->q.ready = true;
	return f;
}

static void teardown(struct fix *f)
{
	free(f->ram);
	free(f);
}

/* Pop expecting -EINVAL; nothing may be consumed. */
static void expect_bad(struct fix *f)
{
	uint16_t before = f->q.last_avail;

	CHECK_EQ(virtq_pop(&f->q, &f->c), -EINVAL);
	CHECK(f->q.err != NULL);
	CHECK_EQ(f->q.last_avail, before);
	/* Still broken on a second look, and still nothing consumed. */
	CHECK_EQ(virtq_pop(&f->q, &f->c), -EINVAL);
	CHECK_EQ(f->q.last_avail, before);
}

TEST(reset_state)
{
	struct virtq q;

	memset(&q, 0xa5, sizeof(q));
	virtq_reset(&q, 128, NULL);
	CHECK_EQ(q.max_size, 128);
	CHECK_EQ(q.size, 128);
	CHECK(!q.ready);
	CHECK_EQ(q.desc_gpa, 0);
	CHECK_EQ(q.avail_gpa, 0);
	CHECK_EQ(q.used_gpa, 0);
	CHECK_EQ(q.msix_vector, 0xffff);
	CHECK(!q.event_idx && !q.indirect && !q.kicks_off && !q.signalled_valid);
	CHECK_EQ(q.last_avail, 0);
	CHECK_EQ(q.used_idx, 0);
	CHECK(q.err == NULL);
}

TEST(empty_and_not_ready)
{
	struct fix *f = setup(16);

	CHECK_EQ(virtq_pop(&f->q, &f->c), 0);
	CHECK(!virtq_has_work(&f->q));
	desc(f, DESC, 0, BUF, 8, 0, 0);
	avail_add(f, 0);
	CHECK(virtq_has_work(&f->q));
	f->q.ready = false;
	CHECK_EQ(virtq_pop(&f->q, &f->c), 0);
	CHECK(!virtq_has_work(&f->q));
	teardown(f);
}

TEST(single_descriptor)
{
	struct fix *f = setup(16);

	desc(f, DESC, 7, BUF + 0x100, 64, 0, 0);
	avail_add(f, 7);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.head, 7);
	CHECK_EQ(f->c.nseg, 1);
	CHECK_EQ(f->c.out_len, 64);
	CHECK_EQ(f->c.in_len, 0);
	CHECK(f->c.seg[0].hva == g2h(f, BUF + 0x100));
	CHECK_EQ(f->c.seg[0].gpa, BUF + 0x100);
	CHECK_EQ(f->c.seg[0].len, 64);
	CHECK(!f->c.seg[0].write);
	CHECK_EQ(f->q.last_avail, 1);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 0);
	teardown(f);
}

TEST(chain_readable_then_writable)
{
	struct fix *f = setup(16);

	/* 5 -> 2 -> 9 -> 0: two readable, two writable, out of table order. */
	desc(f, DESC, 5, BUF + 0x000, 16, F_N, 2);
	desc(f, DESC, 2, BUF + 0x100, 100, F_N, 9);
	desc(f, DESC, 9, BUF + 0x200, 512, F_N | F_W, 0);
	desc(f, DESC, 0, BUF + 0x400, 1, F_W, 3 /* ignored: no NEXT */);
	avail_add(f, 5);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.head, 5);
	CHECK_EQ(f->c.nseg, 4);
	CHECK_EQ(f->c.out_len, 116);
	CHECK_EQ(f->c.in_len, 513);
	CHECK_EQ(f->c.seg[0].gpa, BUF);
	CHECK_EQ(f->c.seg[1].gpa, BUF + 0x100);
	CHECK_EQ(f->c.seg[2].gpa, BUF + 0x200);
	CHECK_EQ(f->c.seg[3].gpa, BUF + 0x400);
	CHECK(!f->c.seg[0].write && !f->c.seg[1].write);
	CHECK(f->c.seg[2].write && f->c.seg[3].write);
	teardown(f);
}

TEST(only_writable)
{
	struct fix *f = setup(8);

	desc(f, DESC, 1, BUF, 32, F_W | F_N, 2);
	desc(f, DESC, 2, BUF + 32, 32, F_W, 0);
	avail_add(f, 1);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.out_len, 0);
	CHECK_EQ(f->c.in_len, 64);
	teardown(f);
}

TEST(readable_after_writable)
{
	struct fix *f = setup(16);

	desc(f, DESC, 0, BUF, 16, F_N, 1);
	desc(f, DESC, 1, BUF + 16, 16, F_N | F_W, 2);
	desc(f, DESC, 2, BUF + 32, 16, 0, 0);
	avail_add(f, 0);
	expect_bad(f);
	teardown(f);
}

TEST(readable_after_writable_zero_length)
{
	struct fix *f = setup(16);

	desc(f, DESC, 0, BUF, 16, F_N | F_W, 1);
	desc(f, DESC, 1, 0, 0, 0, 0);
	avail_add(f, 0);
	expect_bad(f);
	teardown(f);
}

TEST(indirect_well_formed)
{
	struct fix *f = setup(16);

	f->q.indirect = true;
	desc(f, ITABLE, 0, BUF, 16, F_N, 2);
	desc(f, ITABLE, 2, BUF + 0x100, 200, F_N | F_W, 1);
	desc(f, ITABLE, 1, BUF + 0x200, 300, F_W, 0);
	/* WRITE on the descriptor that points at the table is ignored (§2.7.5.3.2). */
	desc(f, DESC, 3, ITABLE, 3 * 16, F_I | F_W, 0);
	avail_add(f, 3);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.head, 3);
	CHECK_EQ(f->c.nseg, 3);
	CHECK_EQ(f->c.out_len, 16);
	CHECK_EQ(f->c.in_len, 500);
	CHECK_EQ(f->c.seg[2].gpa, BUF + 0x200);
	teardown(f);
}

TEST(indirect_after_direct)
{
	struct fix *f = setup(16);

	/* §2.7.5.3.2: zero or more direct descriptors followed by one indirect. */
	f->q.indirect = true;
	desc(f, DESC, 0, BUF, 10, F_N, 4);
	desc(f, DESC, 4, ITABLE, 2 * 16, F_I, 0);
	desc(f, ITABLE, 0, BUF + 0x100, 20, F_N, 1);
	desc(f, ITABLE, 1, BUF + 0x200, 30, F_W, 0);
	avail_add(f, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.nseg, 3);
	CHECK_EQ(f->c.out_len, 30);
	CHECK_EQ(f->c.in_len, 30);
	teardown(f);
}

TEST(indirect_after_direct_writable)
{
	struct fix *f = setup(16);

	/* Ordering holds across the direct/indirect boundary. */
	f->q.indirect = true;
	desc(f, DESC, 0, BUF, 10, F_N | F_W, 4);
	desc(f, DESC, 4, ITABLE, 16, F_I, 0);
	desc(f, ITABLE, 0, BUF + 0x100, 20, 0, 0);
	avail_add(f, 0);
	expect_bad(f);
	teardown(f);
}

TEST(indirect_without_feature)
{
	struct fix *f = setup(16);

	desc(f, ITABLE, 0, BUF, 16, 0, 0);
	desc(f, DESC, 0, ITABLE, 16, F_I, 0);
	avail_add(f, 0);
	expect_bad(f);
	f->q.indirect = true;
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	teardown(f);
}

TEST(indirect_nested)
{
	struct fix *f = setup(16);

	f->q.indirect = true;
	desc(f, ITABLE, 0, BUF, 16, F_N, 1);
	desc(f, ITABLE, 1, ITABLE + 0x100, 16, F_I, 0);
	desc(f, ITABLE + 0x100, 0, BUF, 16, 0, 0);
	desc(f, DESC, 0, ITABLE, 2 * 16, F_I, 0);
	avail_add(f, 0);
	expect_bad(f);
	teardown(f);
}

TEST(indirect_bad_length)
{
	static const uint32_t lens[] = {0, 8, 24, 17, 0xfffffff0u};
	unsigned int i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct fix *f = setup(16);

		f->q.indirect = true;
		desc(f, ITABLE, 0, BUF, 16, 0, 0);
		desc(f, DESC, 0, ITABLE, lens[i], F_I, 0);
		avail_add(f, 0);
		expect_bad(f);
		teardown(f);
	}
}

TEST(indirect_out_of_ram)
{
	static const uint64_t addrs[] = {0, RAM_BASE + RAM_SIZE, RAM_BASE + RAM_SIZE - 16,
	                                 ~0ull - 15};
	unsigned int i;

	for (i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		struct fix *f = setup(16);

		f->q.indirect = true;
		desc(f, DESC, 0, addrs[i], 32, F_I, 0);
		avail_add(f, 0);
		expect_bad(f);
		teardown(f);
	}
}

TEST(indirect_with_next)
{
	struct fix *f = setup(16);

	f->q.indirect = true;
	desc(f, ITABLE, 0, BUF, 16, 0, 0);
	desc(f, DESC, 0, ITABLE, 16, F_I | F_N, 1);
	desc(f, DESC, 1, BUF, 16, 0, 0);
	avail_add(f, 0);
	expect_bad(f);
	teardown(f);
}

TEST(indirect_next_out_of_range)
{
	struct fix *f = setup(16);

	f->q.indirect = true;
	desc(f, ITABLE, 0, BUF, 16, F_N, 2); /* the table has 2 entries */
	desc(f, ITABLE, 1, BUF, 16, 0, 0);
	desc(f, DESC, 0, ITABLE, 2 * 16, F_I, 0);
	avail_add(f, 0);
	expect_bad(f);
	teardown(f);
}

TEST(indirect_loop)
{
	struct fix *f = setup(16);

	f->q.indirect = true;
	desc(f, ITABLE, 0, BUF, 16, F_N, 1);
	desc(f, ITABLE, 1, BUF, 16, F_N, 0);
	desc(f, DESC, 0, ITABLE, 2 * 16, F_I, 0);
	avail_add(f, 0);
	expect_bad(f);
	teardown(f);
}

TEST(indirect_unaligned_table)
{
	struct fix *f = setup(16);

	/* The spec puts no alignment on indirect tables: accepted. */
	f->q.indirect = true;
	desc(f, ITABLE + 3, 0, BUF, 16, F_N, 1);
	desc(f, ITABLE + 3, 1, BUF + 16, 16, F_W, 0);
	desc(f, DESC, 0, ITABLE + 3, 2 * 16, F_I, 0);
	avail_add(f, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.out_len, 16);
	CHECK_EQ(f->c.in_len, 16);
	teardown(f);
}

TEST(chain_length_limit)
{
	struct fix *f = setup(4);
	unsigned int i;

	/* Through an indirect table a chain can be longer than the queue: 4 ok, 5 not. */
	f->q.indirect = true;
	for (i = 0; i < 8; i++)
		desc(f, ITABLE, i, BUF + 16 * i, 16, F_N, i + 1);
	desc(f, ITABLE, 3, BUF + 48, 16, 0, 0);
	desc(f, DESC, 0, ITABLE, 8 * 16, F_I, 0);
	avail_add(f, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.nseg, 4);
	CHECK_EQ(f->c.out_len, 64);

	desc(f, ITABLE, 3, BUF + 48, 16, F_N, 4);
	desc(f, ITABLE, 4, BUF + 64, 16, 0, 0);
	avail_add(f, 0);
	expect_bad(f);

	/* Direct descriptors before the table count too: 1 + 4 > 4. */
	teardown(f);
	f = setup(4);
	f->q.indirect = true;
	for (i = 0; i < 4; i++)
		desc(f, ITABLE, i, BUF + 16 * i, 16, i < 3 ? F_N : 0, i + 1);
	desc(f, DESC, 0, BUF, 16, F_N, 1);
	desc(f, DESC, 1, ITABLE, 4 * 16, F_I, 0);
	avail_add(f, 0);
	expect_bad(f);
	teardown(f);
}

TEST(loops)
{
	struct fix *f = setup(16);

	desc(f, DESC, 3, BUF, 16, F_N, 3); /* self loop */
	avail_add(f, 3);
	expect_bad(f);
	teardown(f);

	f = setup(16);
	desc(f, DESC, 0, BUF, 16, F_N, 1);
	desc(f, DESC, 1, BUF, 16, F_N, 2);
	desc(f, DESC, 2, BUF, 16, F_N, 0); /* back to the head */
	avail_add(f, 0);
	expect_bad(f);
	teardown(f);

	/* A loop of zero-length descriptors is still bounded. */
	f = setup(16);
	desc(f, DESC, 0, 0, 0, F_N, 1);
	desc(f, DESC, 1, 0, 0, F_N, 0);
	avail_add(f, 0);
	expect_bad(f);
	teardown(f);
}

TEST(full_table_chain)
{
	struct fix *f = setup(8);
	unsigned int i;

	/* A chain using every descriptor (= queue size) is legal. */
	for (i = 0; i < 8; i++)
		desc(f, DESC, i, BUF + 8 * i, 8, i < 7 ? F_N : 0, i + 1);
	avail_add(f, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.nseg, 8);
	CHECK_EQ(f->c.out_len, 64);
	teardown(f);
}

TEST(index_out_of_range)
{
	struct fix *f = setup(16);

	avail_add(f, 16); /* head == size */
	expect_bad(f);
	teardown(f);

	f = setup(16);
	avail_add(f, 0xffff);
	expect_bad(f);
	teardown(f);

	f = setup(16);
	desc(f, DESC, 0, BUF, 16, F_N, 16); /* next == size */
	avail_add(f, 0);
	expect_bad(f);
	teardown(f);
}

TEST(buffer_addresses)
{
	static const struct {
		uint64_t addr;
		uint32_t len;
	} bad_bufs[] = {
	    {0, 16},                       /* below RAM */
	    {RAM_BASE - 8, 16},            /* straddles the start */
	    {RAM_BASE + RAM_SIZE, 1},      /* just past the end */
	    {RAM_BASE + RAM_SIZE - 8, 16}, /* straddles the end */
	    {~0ull - 10, 100},             /* addr + len overflows */
	    {~0ull, 1},                    /* last byte of the address space */
	    {RAM_BASE, 0xffffffffu},       /* huge length */
	    {RAM_BASE + RAM_SIZE - 1, 0xffffffffu},
	};
	unsigned int i;

	for (i = 0; i < sizeof(bad_bufs) / sizeof(bad_bufs[0]); i++) {
		struct fix *f = setup(16);

		desc(f, DESC, 0, BUF, 16, F_N, 1);
		desc(f, DESC, 1, bad_bufs[i].addr, bad_bufs[i].len, F_W, 0);
		avail_add(f, 0);
		expect_bad(f);
		teardown(f);
	}
	{
		/* The last byte of RAM is fine. */
		struct fix *f = setup(16);

		desc(f, DESC, 0, RAM_BASE + RAM_SIZE - 1, 1, 0, 0);
		avail_add(f, 0);
		CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
		teardown(f);
	}
}

TEST(zero_length_segments)
{
	struct fix *f = setup(16);

	/* Empty descriptors are skipped, even with addresses outside RAM. */
	desc(f, DESC, 0, 0, 0, F_N, 1);
	desc(f, DESC, 1, BUF, 8, F_N, 2);
	desc(f, DESC, 2, ~0ull, 0, F_N | F_W, 3);
	desc(f, DESC, 3, BUF + 8, 4, F_W, 0);
	avail_add(f, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.nseg, 2);
	CHECK_EQ(f->c.out_len, 8);
	CHECK_EQ(f->c.in_len, 4);
	CHECK(!f->c.seg[0].write);
	CHECK(f->c.seg[1].write);

	/* A chain of only empty descriptors is popped with no segments. */
	desc(f, DESC, 5, 0, 0, F_W, 0);
	avail_add(f, 5);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.head, 5);
	CHECK_EQ(f->c.nseg, 0);
	CHECK_EQ(f->c.in_len, 0);
	teardown(f);
}

TEST(total_length_over_4g)
{
	/* A 4 GiB + 4 KiB guest region, reserved but never touched, to hold huge segments. */
	const uint64_t big = (4ull << 30) + 4096, base = 1ull << 32;
	uint8_t *m = mmap(NULL, big, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct fix *f = setup(16);

	CHECK(m != MAP_FAILED);
	if (m == MAP_FAILED) {
		teardown(f);
		return;
	}
	CHECK_EQ(gmem_add(&f->gm, base, big, m), 0);
	desc(f, DESC, 0, base, 0xffffffffu, F_N, 1);
	desc(f, DESC, 1, BUF, 0, F_W, 0);
	avail_add(f, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1); /* exactly 2^32 - 1: fits */
	CHECK_EQ(f->c.out_len, 0xffffffffu);

	desc(f, DESC, 0, base, 0x80000000u, F_N, 1);
	desc(f, DESC, 1, base + 0x80000000u, 0x80000000u, F_W, 0);
	avail_add(f, 0);
	expect_bad(f); /* 2^32 */
	teardown(f);
	munmap(m, big);
}

TEST(avail_idx_wrap)
{
	struct fix *f = setup(4);
	unsigned int i;

	f->q.last_avail = 65534;
	f->q.used_idx = 65534;
	put16(f, USED + 2, 65534);
	set_avail_idx(f, 65534);
	for (i = 0; i < 4; i++)
		desc(f, DESC, i, BUF + 16 * i, 16, F_W, 0);
	for (i = 0; i < 4; i++)
		avail_add(f, (uint16_t)i);
	CHECK_EQ(f->avail_idx, 2);
	for (i = 0; i < 4; i++) {
		CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
		CHECK_EQ(f->c.head, i);
		virtq_push(&f->q, f->c.head, 16);
	}
	CHECK_EQ(virtq_pop(&f->q, &f->c), 0);
	CHECK_EQ(f->q.last_avail, 2);
	CHECK_EQ(f->q.used_idx, 2);
	CHECK_EQ(used_idx(f), 2);
	/* Slots (65534 & 3) = 2, 3, 0, 1 of the used ring. */
	CHECK_EQ(get32(f, USED + 4 + 8 * 2), 0);
	CHECK_EQ(get32(f, USED + 4 + 8 * 3), 1);
	CHECK_EQ(get32(f, USED + 4 + 8 * 0), 2);
	CHECK_EQ(get32(f, USED + 4 + 8 * 1), 3);
	teardown(f);
}

/* A popped chain given back comes out again, in order; only one per pop; a reset forgets it. */
TEST(unpop)
{
	struct fix *f = setup(4);
	unsigned int i;

	for (i = 0; i < 3; i++)
		desc(f, DESC, (uint16_t)i, BUF + 16 * i, 16, F_W, 0);
	CHECK(!virtq_unpop(&f->q)); /* nothing popped yet */
	f->q.last_avail = 65535;    /* across the index wrap */
	f->q.used_idx = 65535;
	put16(f, USED + 2, 65535);
	set_avail_idx(f, 65535);
	for (i = 0; i < 3; i++)
		avail_add(f, (uint16_t)(2 - i)); /* heads 2, 1, 0 */
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.head, 2);
	CHECK(virtq_unpop(&f->q));
	CHECK_EQ(f->q.last_avail, 65535);
	CHECK(!virtq_unpop(&f->q)); /* one per pop */
	CHECK_EQ(f->q.last_avail, 65535);
	CHECK(virtq_has_work(&f->q));
	/* The same chain again, re-read: the driver changed its length meanwhile. */
	desc(f, DESC, 2, BUF + 32, 8, F_W, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.head, 2);
	CHECK_EQ(f->c.in_len, 8);
	virtq_push(&f->q, f->c.head, 8);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.head, 1);
	CHECK(virtq_unpop(&f->q));
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.head, 1);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(f->c.head, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 0);
	CHECK_EQ(f->q.last_avail, 2);
	/* The used ring holds only what was pushed. */
	CHECK_EQ(used_idx(f), 0);
	CHECK_EQ(get32(f, USED + 4 + 8 * 3), 2);
	/* An empty pop in between does not matter: the last chain returned goes back, once. */
	CHECK(virtq_unpop(&f->q));
	CHECK_EQ(f->q.last_avail, 1);
	CHECK(!virtq_unpop(&f->q));
	virtq_reset(&f->q, VIRTQ_MAX_SIZE, &f->gm);
	CHECK(!virtq_unpop(&f->q));
	teardown(f);
}

TEST(avail_idx_too_far_ahead)
{
	struct fix *f = setup(4);
	unsigned int i;

	for (i = 0; i < 4; i++)
		desc(f, DESC, i, BUF, 16, 0, 0);
	set_avail_idx(f, 4); /* a full ring: fine */
	for (i = 0; i < 4; i++)
		CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 0);
	set_avail_idx(f, 4 + 5); /* five ahead of a four-entry ring */
	expect_bad(f);
	set_avail_idx(f, 3); /* "decremented": 65535 ahead */
	expect_bad(f);
	set_avail_idx(f, 5);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	teardown(f);
}

TEST(ring_outside_ram)
{
	struct fix *f = setup(16);

	/* No virtq_check_rings: pop must still fail cleanly. */
	f->q.avail_gpa = RAM_BASE + RAM_SIZE + 0x1000;
	CHECK_EQ(virtq_pop(&f->q, &f->c), -EINVAL);
	CHECK(!virtq_has_work(&f->q));
	virtq_push(&f->q, 0, 0); /* used ring fine, avail ring not: harmless */
	f->q.avail_gpa = AVAIL;
	f->q.desc_gpa = RAM_BASE + RAM_SIZE - 16; /* table runs off the end */
	desc(f, DESC, 0, BUF, 16, 0, 0);
	avail_add(f, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), -EINVAL);
	f->q.used_gpa = ~0ull - 3;
	virtq_push(&f->q, 0, 0); /* dropped, no crash */
	(void)virtq_needs_interrupt(&f->q);
	(void)virtq_set_kicks(&f->q, true);
	teardown(f);
}

TEST(bad_queue_size)
{
	struct fix *f = setup(16);

	desc(f, DESC, 0, BUF, 16, 0, 0);
	avail_add(f, 0);
	f->q.size = 12; /* not a power of two */
	CHECK_EQ(virtq_pop(&f->q, &f->c), -EINVAL);
	f->q.size = 0;
	CHECK_EQ(virtq_pop(&f->q, &f->c), -EINVAL);
	virtq_push(&f->q, 0, 0);
	f->q.max_size = 8;
	f->q.size = 16; /* over the maximum */
	CHECK_EQ(virtq_pop(&f->q, &f->c), -EINVAL);
	teardown(f);
}

TEST(check_rings)
{
	struct fix *f = setup(16);

	CHECK_EQ(virtq_check_rings(&f->q), 0);
	f->q.size = 256;
	CHECK_EQ(virtq_check_rings(&f->q), 0);
	f->q.size = 24;
	CHECK_EQ(virtq_check_rings(&f->q), -EINVAL);
	f->q.size = 0;
	CHECK_EQ(virtq_check_rings(&f->q), -EINVAL);
	f->q.size = 16;
	f->q.max_size = 8;
	CHECK_EQ(virtq_check_rings(&f->q), -EINVAL);
	f->q.max_size = 256;

	f->q.desc_gpa = DESC + 8; /* needs 16 */
	CHECK_EQ(virtq_check_rings(&f->q), -EINVAL);
	f->q.desc_gpa = DESC;
	f->q.avail_gpa = AVAIL + 1; /* needs 2 */
	CHECK_EQ(virtq_check_rings(&f->q), -EINVAL);
	f->q.avail_gpa = AVAIL;
	f->q.used_gpa = USED + 2; /* needs 4 */
	CHECK_EQ(virtq_check_rings(&f->q), -EINVAL);
	f->q.used_gpa = USED;

	/* Each part must lie entirely in RAM: sizes 16n, 6+2n, 6+8n. */
	f->q.desc_gpa = RAM_BASE + RAM_SIZE - 16 * 16;
	CHECK_EQ(virtq_check_rings(&f->q), 0);
	f->q.desc_gpa += 16;
	CHECK_EQ(virtq_check_rings(&f->q), -EINVAL);
	f->q.desc_gpa = DESC;
	f->q.avail_gpa = RAM_BASE + RAM_SIZE - (6 + 2 * 16);
	CHECK_EQ(virtq_check_rings(&f->q), 0);
	f->q.avail_gpa += 2;
	CHECK_EQ(virtq_check_rings(&f->q), -EINVAL);
	f->q.avail_gpa = AVAIL;
	f->q.used_gpa = RAM_BASE + RAM_SIZE - (6 + 8 * 16) - 2; /* 4-aligned */
	CHECK_EQ(virtq_check_rings(&f->q), 0);
	f->q.used_gpa += 4;
	CHECK_EQ(virtq_check_rings(&f->q), -EINVAL);
	f->q.used_gpa = 0;
	CHECK_EQ(virtq_check_rings(&f->q), -EINVAL);
	f->q.used_gpa = ~0ull & ~3ull;
	CHECK_EQ(virtq_check_rings(&f->q), -EINVAL);
	teardown(f);
}

TEST(used_ring_contents)
{
	struct fix *f = setup(8);

	desc(f, DESC, 3, BUF, 16, F_W, 0);
	desc(f, DESC, 6, BUF + 16, 16, F_W, 0);
	avail_add(f, 3);
	avail_add(f, 6);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	virtq_push(&f->q, 6, 77); /* out of order is fine */
	CHECK_EQ(used_idx(f), 1);
	CHECK_EQ(get32(f, USED + 4), 6);
	CHECK_EQ(get32(f, USED + 8), 77);
	virtq_push(&f->q, 3, 0);
	CHECK_EQ(used_idx(f), 2);
	CHECK_EQ(get32(f, USED + 12), 3);
	CHECK_EQ(get32(f, USED + 16), 0);
	CHECK_EQ(f->q.used_idx, 2);
	teardown(f);
}

TEST(notify_flags)
{
	struct fix *f = setup(8);

	/* No EVENT_IDX: avail->flags decides (§2.7.7.2). */
	virtq_push(&f->q, 0, 0);
	CHECK(virtq_needs_interrupt(&f->q));
	CHECK(!virtq_needs_interrupt(&f->q)); /* nothing new since */
	put16(f, AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
	virtq_push(&f->q, 0, 0);
	CHECK(!virtq_needs_interrupt(&f->q));
	put16(f, AVAIL, 0);
	virtq_push(&f->q, 0, 0);
	virtq_push(&f->q, 1, 0);
	CHECK(virtq_needs_interrupt(&f->q));
	/* used_event is ignored without EVENT_IDX. */
	set_used_event(f, 100);
	virtq_push(&f->q, 0, 0);
	CHECK(virtq_needs_interrupt(&f->q));
	teardown(f);
}

TEST(notify_event_idx)
{
	struct fix *f = setup(8);
	unsigned int i;

	f->q.event_idx = true;
	/* Flags are ignored with EVENT_IDX (§2.7.7.2). */
	put16(f, AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
	set_used_event(f, 0);
	virtq_push(&f->q, 0, 0); /* idx 0 -> 1 crosses used_event 0 */
	CHECK(virtq_needs_interrupt(&f->q));
	virtq_push(&f->q, 0, 0); /* 1 -> 2: event 0 already passed */
	CHECK(!virtq_needs_interrupt(&f->q));
	CHECK(!virtq_needs_interrupt(&f->q)); /* nothing pushed */

	set_used_event(f, 5);
	for (i = 0; i < 3; i++)
		virtq_push(&f->q, 0, 0); /* -> 5 */
	CHECK(!virtq_needs_interrupt(&f->q));
	virtq_push(&f->q, 0, 0); /* 5 -> 6: the entry at index 5 was written */
	CHECK(virtq_needs_interrupt(&f->q));

	/* Several pushes between checks compare with the last signalled index. */
	set_used_event(f, 10);
	for (i = 0; i < 6; i++)
		virtq_push(&f->q, 0, 0); /* 6 -> 12, crosses 10 */
	CHECK(virtq_needs_interrupt(&f->q));
	set_used_event(f, 20);
	virtq_push(&f->q, 0, 0);
	virtq_push(&f->q, 0, 0); /* -> 14 */
	CHECK(!virtq_needs_interrupt(&f->q));
	set_used_event(f, 13);   /* behind: 13 was written between the checks */
	virtq_push(&f->q, 0, 0); /* 14 -> 15: old 14, event 13 not in (14, 15] */
	CHECK(!virtq_needs_interrupt(&f->q));
	teardown(f);
}

TEST(notify_event_idx_wrap)
{
	struct fix *f = setup(8);

	f->q.event_idx = true;
	f->q.used_idx = 65534;
	f->q.signalled_used = 65534;
	f->q.signalled_valid = true;
	set_used_event(f, 65535);
	virtq_push(&f->q, 0, 0); /* -> 65535 */
	CHECK(!virtq_needs_interrupt(&f->q));
	virtq_push(&f->q, 0, 0); /* -> 0: slot 65535 written */
	CHECK_EQ(f->q.used_idx, 0);
	CHECK(virtq_needs_interrupt(&f->q));
	set_used_event(f, 0);
	virtq_push(&f->q, 0, 0);
	virtq_push(&f->q, 0, 0);
	CHECK(virtq_needs_interrupt(&f->q));
	teardown(f);
}

TEST(notify_first_and_stale)
{
	struct fix *f = setup(8);
	unsigned int i;

	f->q.event_idx = true;
	/* The first check after reset always interrupts, whatever used_event says. */
	set_used_event(f, 1000);
	virtq_push(&f->q, 0, 0);
	CHECK(virtq_needs_interrupt(&f->q));
	CHECK(!virtq_needs_interrupt(&f->q));
	/* After 2^15 pushes without a check the last signalled index is meaningless. */
	for (i = 0; i < 40000; i++)
		virtq_push(&f->q, 0, 0);
	CHECK(!f->q.signalled_valid);
	CHECK(virtq_needs_interrupt(&f->q));
	teardown(f);
}

TEST(set_kicks_flags)
{
	struct fix *f = setup(8);

	CHECK(!virtq_set_kicks(&f->q, false));
	CHECK_EQ(get16(f, USED), VIRTQ_USED_F_NO_NOTIFY);
	CHECK(f->q.kicks_off);
	CHECK(!virtq_set_kicks(&f->q, true));
	CHECK_EQ(get16(f, USED), 0);
	CHECK(!f->q.kicks_off);
	CHECK_EQ(avail_event(f), 0);
	desc(f, DESC, 0, BUF, 16, 0, 0);
	virtq_set_kicks(&f->q, false);
	avail_add(f, 0); /* work arrives while kicks are off */
	CHECK(virtq_set_kicks(&f->q, true));
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK(!virtq_set_kicks(&f->q, true));
	teardown(f);
}

TEST(set_kicks_event_idx)
{
	struct fix *f = setup(8);
	unsigned int i;

	f->q.event_idx = true;
	for (i = 0; i < 8; i++)
		desc(f, DESC, i, BUF, 16, 0, 0);
	avail_add(f, 0);
	avail_add(f, 1);
	avail_add(f, 2);
	CHECK(virtq_set_kicks(&f->q, false)); /* work is there */
	CHECK_EQ(get16(f, USED), 0);          /* §2.7.10.2: flags stay 0 */
	CHECK_EQ(avail_event(f), 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 0);
	CHECK_EQ(avail_event(f), 0); /* kicks off: an empty pop asks for nothing */
	CHECK(!virtq_set_kicks(&f->q, true));
	CHECK_EQ(avail_event(f), 3);
	CHECK_EQ(get16(f, USED), 0);
	teardown(f);
}

TEST(empty_pop_requests_kick)
{
	struct fix *f = setup(8);

	/* A device that only pops until empty still gets kicked with EVENT_IDX. */
	f->q.event_idx = true;
	desc(f, DESC, 0, BUF, 16, 0, 0);
	avail_add(f, 0);
	avail_add(f, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 0);
	CHECK_EQ(avail_event(f), 2);
	avail_add(f, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 0);
	CHECK_EQ(avail_event(f), 3);
	teardown(f);
}

TEST(copy_helpers)
{
	struct fix *f = setup(16);
	uint8_t out[64], in[64];
	unsigned int i;

	for (i = 0; i < 32; i++)
		((uint8_t *)g2h(f, BUF))[i] = (uint8_t)i;
	/* Readable 0..9 and 10..31 in two pieces, writable 8 + 8 bytes. */
	desc(f, DESC, 0, BUF, 10, F_N, 1);
	desc(f, DESC, 1, BUF + 10, 22, F_N, 2);
	desc(f, DESC, 2, BUF + 0x100, 8, F_N | F_W, 3);
	desc(f, DESC, 3, BUF + 0x200, 8, F_W, 0);
	avail_add(f, 0);
	CHECK_EQ(virtq_pop(&f->q, &f->c), 1);

	memset(out, 0xee, sizeof(out));
	CHECK_EQ(virtq_copy_from_chain(&f->c, 0, out, 64), 32);
	for (i = 0; i < 32; i++)
		CHECK_EQ(out[i], i);
	CHECK_EQ(out[32], 0xee);
	CHECK_EQ(virtq_copy_from_chain(&f->c, 8, out, 4), 4);
	CHECK_EQ(out[0], 8);
	CHECK_EQ(out[3], 11);
	CHECK_EQ(virtq_copy_from_chain(&f->c, 31, out, 4), 1);
	CHECK_EQ(out[0], 31);
	CHECK_EQ(virtq_copy_from_chain(&f->c, 32, out, 4), 0);
	CHECK_EQ(virtq_copy_from_chain(&f->c, 0xffffffffu, out, 4), 0);

	for (i = 0; i < 64; i++)
		in[i] = (uint8_t)(0x80 + i);
	CHECK_EQ(virtq_copy_to_chain(&f->c, 6, in, 64), 10);
	CHECK_EQ(((uint8_t *)g2h(f, BUF + 0x100))[6], 0x80);
	CHECK_EQ(((uint8_t *)g2h(f, BUF + 0x100))[7], 0x81);
	CHECK_EQ(((uint8_t *)g2h(f, BUF + 0x200))[0], 0x82);
	CHECK_EQ(((uint8_t *)g2h(f, BUF + 0x200))[7], 0x89);
	CHECK_EQ(((uint8_t *)g2h(f, BUF + 0x100))[5], 0); /* before off: untouched */
	CHECK_EQ(((uint8_t *)g2h(f, BUF))[0], 0);         /* readable part untouched */
	CHECK_EQ(virtq_copy_to_chain(&f->c, 16, in, 4), 0);
	teardown(f);
}

/*
 * A driver thread and a device thread on one ring, kicks through a
 * semaphore, as Linux's driver decides them (§2.7.13.4: idx store, full
 * barrier, then avail_event / flags).  A kick the device asked for but never
 * got shows up as a timeout with work pending.
 */
struct stress {
	struct fix *f;
	unsigned int n;
	sem_t kick;
	int done, stop;
	unsigned int lost, errors;
};

static uint16_t *ring16(struct fix *f, uint64_t gpa)
{
	return g2h(f, gpa);
}

static bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

static void *stress_driver(void *arg)
{
	struct stress *st = arg;
	struct fix *f = st->f;
	uint16_t size = f->q.size, avail = 0, used_seen = 0;
	unsigned int sent = 0, completed = 0;

	while (completed < st->n && !__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
		uint16_t u = __atomic_load_n(ring16(f, USED + 2), __ATOMIC_ACQUIRE);
		bool kick;

		completed += (uint16_t)(u - used_seen);
		used_seen = u;
		if (sent == st->n || (uint16_t)(avail - used_seen) >= size) {
			sched_yield();
			continue;
		}
		/* In-order completion: descriptor slot = ring slot. */
		desc(f, DESC, avail & (size - 1), BUF + 16ull * (avail & (size - 1)), 16, 0, 0);
		__atomic_store_n(ring16(f, AVAIL + 4 + 2ull * (avail & (size - 1))),
		                 avail & (size - 1), __ATOMIC_RELAXED);
		avail++;
		__atomic_store_n(ring16(f, AVAIL + 2), avail, __ATOMIC_RELEASE);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (f->q.event_idx)
			kick = vring_need_event(
			    __atomic_load_n(ring16(f, USED + 4 + 8ull * size), __ATOMIC_RELAXED),
			    avail, avail - 1);
		else
			kick = !(__atomic_load_n(ring16(f, USED), __ATOMIC_RELAXED) &
			         VIRTQ_USED_F_NO_NOTIFY);
		if (kick)
			sem_post(&st->kick);
		sent++;
	}
	__atomic_store_n(&st->done, 1, __ATOMIC_RELEASE);
	sem_post(&st->kick);
	return NULL;
}

static void stress_drain(struct stress *st, bool bracket)
{
	struct virtq *q = &st->f->q;
	int r;

	do {
		if (bracket)
			virtq_set_kicks(q, false);
		while ((r = virtq_pop(q, &st->f->c)) == 1)
			virtq_push(q, st->f->c.head, 0);
		if (r < 0)
			st->errors++;
	} while (bracket && virtq_set_kicks(q, true));
}

static void stress_run(bool event_idx, bool bracket)
{
	struct fix *f = setup(8);
	struct stress st = {.f = f, .n = 20000};
	pthread_t t;

	f->q.event_idx = event_idx;
	sem_init(&st.kick, 0, 0);
	CHECK_EQ(pthread_create(&t, NULL, stress_driver, &st), 0);
	while (!__atomic_load_n(&st.done, __ATOMIC_ACQUIRE)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5; /* generous: a loaded machine may deschedule the driver */
		if (sem_timedwait(&st.kick, &ts) != 0 &&
		    !__atomic_load_n(&st.done, __ATOMIC_ACQUIRE) && virtq_has_work(&f->q)) {
			st.lost++; /* a lost kick: stop rather than crawl one batch per timeout */
			__atomic_store_n(&st.stop, 1, __ATOMIC_RELEASE);
		}
		stress_drain(&st, bracket);
	}
	pthread_join(t, NULL);
	CHECK_EQ(st.lost, 0);
	CHECK_EQ(st.errors, 0);
	if (!st.lost) {
		CHECK_EQ(f->q.used_idx, (uint16_t)st.n);
		CHECK_EQ(f->q.last_avail, (uint16_t)st.n);
	}
	sem_destroy(&st.kick);
	teardown(f);
}

TEST(stress_event_idx_pop_until_empty)
{
	stress_run(true, false);
}

TEST(stress_event_idx_set_kicks)
{
	stress_run(true, true);
}

TEST(stress_flags_set_kicks)
{
	stress_run(false, true);
}

int main(void)
{
	RUN(reset_state);
	RUN(empty_and_not_ready);
	RUN(single_descriptor);
	RUN(chain_readable_then_writable);
	RUN(only_writable);
	RUN(readable_after_writable);
	RUN(readable_after_writable_zero_length);
	RUN(indirect_well_formed);
	RUN(indirect_after_direct);
	RUN(indirect_after_direct_writable);
	RUN(indirect_without_feature);
	RUN(indirect_nested);
	RUN(indirect_bad_length);
	RUN(indirect_out_of_ram);
	RUN(indirect_with_next);
	RUN(indirect_next_out_of_range);
	RUN(indirect_loop);
	RUN(indirect_unaligned_table);
	RUN(chain_length_limit);
	RUN(loops);
	RUN(full_table_chain);
	RUN(index_out_of_range);
	RUN(buffer_addresses);
	RUN(zero_length_segments);
	RUN(total_length_over_4g);
	RUN(avail_idx_wrap);
	RUN(unpop);
	RUN(avail_idx_too_far_ahead);
	RUN(ring_outside_ram);
	RUN(bad_queue_size);
	RUN(check_rings);
	RUN(used_ring_contents);
	RUN(notify_flags);
	RUN(notify_event_idx);
	RUN(notify_event_idx_wrap);
	RUN(notify_first_and_stale);
	RUN(set_kicks_flags);
	RUN(set_kicks_event_idx);
	RUN(empty_pop_requests_kick);
	RUN(copy_helpers);
	RUN(stress_event_idx_pop_until_empty);
	RUN(stress_event_idx_set_kicks);
	RUN(stress_flags_set_kicks);
	return test_summary();
}
