/* test_virtio_mem.c - unit tests for virtio-mem: plug, unplug, state, hostile requests, slots. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio/mem.h"
#include "test.h"
#include "virtio_fake_driver.h"

#define RAM_SIZE (1u << 20)
#define MIB      (1ull << 20)
#define REGION   (256 * MIB) /* two 128 MiB slots of 64 two-MiB blocks */
#define HP_ADDR  (16ull << 30)
#define BLOCK    (2 * MIB)
#define SLOT     (128 * MIB)

/* A platform that records the memory slots the device maps. */
struct fake_mem_plat {
	uint32_t next;
	uint64_t gpa[8], size[8];
	void *hva[8];
	int sets, fail_set;
};

static int fmp_slot(void *ctx, uint32_t *slot)
{
	struct fake_mem_plat *f = ctx;

	*slot = f->next++;
	return 0;
}

static int fmp_set(void *ctx, uint32_t slot, uint64_t gpa, uint64_t size, void *hva)
{
	struct fake_mem_plat *f = ctx;

	if (slot >= 8)
		return -EINVAL;
	if (size && f->fail_set)
		return -ENOSPC;
	f->sets++;
	f->gpa[slot] = gpa;
	f->size[slot] = size;
	f->hva[slot] = hva;
	return 0;
}

static const struct platform_ops fmp_ops = {.mem_slot = fmp_slot, .mem_set = fmp_set};

struct t {
	struct fake_guest fg;
	struct fake_transport ft;
	struct fake_vq q;
	struct fake_mem_plat plat;
	struct virtio_mem m;
	uint8_t *hva;
	uint64_t req, resp;
};

static void setup_block(struct t *t, uint64_t want, uint64_t block)
{
	struct virtio_mem_opts o = {
	    .addr = HP_ADDR, .region_size = REGION, .block_size = block, .slot_size = SLOT};
	struct err e = {0};

	memset(t, 0, sizeof(*t));
	CHECK_EQ(fake_guest_init(&t->fg, RAM_SIZE), 0);
	t->fg.env.plat.ops = &fmp_ops;
	t->fg.env.plat.ctx = &t->plat;
	t->hva = mmap(NULL, REGION, PROT_READ | PROT_WRITE,
	              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(t->hva != MAP_FAILED);
	o.hva = t->hva;
	CHECK_EQ(virtio_mem_init(&t->m, &o, &t->fg.env, &e), 0);
	fake_vq_init(&t->q, &t->fg, 16);
	fake_start(&t->m.vdev, &t->ft, want, &t->q, 1);
	t->req = fake_guest_alloc(&t->fg, 64, 8);
	t->resp = fake_guest_alloc(&t->fg, 64, 8);
}

static void setup(struct t *t, uint64_t want)
{
	setup_block(t, want, BLOCK);
}

static void teardown(struct t *t)
{
	virtio_mem_destroy(&t->m);
	munmap(t->hva, REGION);
	fake_guest_fini(&t->fg);
}

static uint64_t cfg64(struct t *t, uint32_t off)
{
	uint64_t v = 0;

	fake_config_read(&t->m.vdev, off, &v, 8);
	return v;
}

/* Send one request; the response type, its state in *state.  -1 when nothing came back. */
static int request(struct t *t, uint16_t type, uint64_t addr, uint16_t nb, uint16_t *state)
{
	uint8_t *r = fake_guest_ptr(&t->fg, t->req), *p = fake_guest_ptr(&t->fg, t->resp);
	struct fake_seg s[2] = {{t->req, VIRTIO_MEM_REQ_SIZE, false},
	                        {t->resp, VIRTIO_MEM_RESP_SIZE, true}};
	uint32_t id, len;

	memset(r, 0, VIRTIO_MEM_REQ_SIZE);
	memset(p, 0xff, VIRTIO_MEM_RESP_SIZE);
	memcpy(r, &type, 2);
	memcpy(r + 8, &addr, 8);
	memcpy(r + 16, &nb, 2);
	fake_vq_add(&t->q, s, 2);
	fake_kick(&t->m.vdev, 0);
	if (!fake_vq_used(&t->q, &id, &len))
		return -1;
	CHECK_EQ(len, VIRTIO_MEM_RESP_SIZE);
	if (state)
		memcpy(state, p + 8, 2);
	return p[0] | p[1] << 8;
}

TEST(config_and_features)
{
	struct t t;

	setup(&t, ~0ull);
	CHECK_EQ(t.m.vdev.type, 24);
	CHECK(virtio_live(&t.m.vdev));
	CHECK_EQ(cfg64(&t, 0), BLOCK);
	CHECK_EQ(cfg64(&t, 16), HP_ADDR);
	CHECK_EQ(cfg64(&t, 24), REGION);
	CHECK_EQ(cfg64(&t, 32), 0); /* usable */
	CHECK_EQ(cfg64(&t, 40), 0); /* plugged */
	CHECK_EQ(cfg64(&t, 48), 0); /* requested */
	CHECK_EQ(t.plat.next, 2);   /* a slot name per 128 MiB */
	CHECK_EQ(t.plat.sets, 0);
	teardown(&t);
}

TEST(refuses_driver_without_unplugged_inaccessible)
{
	struct t t;

	setup(&t, ~(1ull << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE));
	CHECK(!virtio_live(&t.m.vdev));
	CHECK(t.m.vdev.status & VIRTIO_STATUS_NEEDS_RESET);
	teardown(&t);
}

TEST(requested_size_update)
{
	struct t t;

	setup(&t, ~0ull);
	CHECK_EQ(virtio_mem_set_requested(&t.m, 3 * MIB), -EINVAL); /* not block-aligned */
	CHECK_EQ(virtio_mem_set_requested(&t.m, REGION + BLOCK), -EINVAL);
	CHECK_EQ(t.ft.config_changed, 0);
	CHECK_EQ(virtio_mem_set_requested(&t.m, 10 * MIB), 0);
	CHECK_EQ(t.ft.config_changed, 1);
	CHECK_EQ(cfg64(&t, 48), 10 * MIB);
	CHECK_EQ(cfg64(&t, 32), SLOT); /* usable: rounded up to a slot */
	CHECK_EQ(virtio_mem_set_requested(&t.m, 0), 0);
	CHECK_EQ(cfg64(&t, 32), SLOT); /* never shrinks but on UNPLUG_ALL */
	teardown(&t);
}

TEST(not_active_refused)
{
	struct t t;

	setup(&t, ~0ull);
	fake_set_status(&t.m.vdev, 0);
	CHECK_EQ(virtio_mem_set_requested(&t.m, 4 * MIB), -EAGAIN);
	CHECK_EQ(cfg64(&t, 48), 0);
	teardown(&t);
}

TEST(plug_unplug_state_and_slots)
{
	struct t t;
	uint16_t st = 9;

	setup(&t, ~0ull);
	CHECK_EQ(virtio_mem_set_requested(&t.m, 8 * MIB), 0);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR, 4, NULL), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(cfg64(&t, 40), 8 * MIB);
	CHECK_EQ(t.plat.sets, 1);
	CHECK_EQ(t.plat.gpa[0], HP_ADDR);
	CHECK_EQ(t.plat.size[0], SLOT);
	CHECK(t.plat.hva[0] == t.hva);
	/* Plugged memory is usable: write it. */
	memset(t.hva, 0x5a, 8 * MIB);
	/* Beyond requested_size: NACK, nothing changed. */
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR + 8 * MIB, 1, NULL),
	         VIRTIO_MEM_RESP_NACK);
	CHECK_EQ(cfg64(&t, 40), 8 * MIB);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_STATE, HP_ADDR, 4, &st), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(st, VIRTIO_MEM_STATE_PLUGGED);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_STATE, HP_ADDR, 5, &st), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(st, VIRTIO_MEM_STATE_MIXED);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_STATE, HP_ADDR + 8 * MIB, 2, &st), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(st, VIRTIO_MEM_STATE_UNPLUGGED);
	/* Unplug half: the memory is given back (reads zero), the slot stays mapped. */
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_UNPLUG, HP_ADDR, 2, NULL), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(cfg64(&t, 40), 4 * MIB);
	CHECK_EQ(t.hva[0], 0);
	CHECK_EQ(t.hva[4 * MIB], 0x5a);
	CHECK_EQ(t.plat.sets, 1);
	/* The rest: the slot is unmapped. */
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_UNPLUG, HP_ADDR + 4 * MIB, 2, NULL),
	         VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(t.plat.sets, 2);
	CHECK_EQ(t.plat.size[0], 0);
	CHECK_EQ(cfg64(&t, 40), 0);
	CHECK_EQ(t.m.plug_bytes, 8 * MIB);
	CHECK_EQ(t.m.unplug_bytes, 8 * MIB);
	teardown(&t);
}

TEST(hostile_ranges)
{
	struct t t;
	uint16_t st;

	setup(&t, ~0ull);
	CHECK_EQ(virtio_mem_set_requested(&t.m, 128 * MIB), 0); /* usable: one slot */
	/* Not aligned, zero blocks, below, past usable, overflowing, wrapping. */
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR + 4096, 1, NULL), VIRTIO_MEM_RESP_ERROR);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR, 0, NULL), VIRTIO_MEM_RESP_ERROR);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR - BLOCK, 1, NULL), VIRTIO_MEM_RESP_ERROR);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR + SLOT, 1, NULL), VIRTIO_MEM_RESP_ERROR);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR + SLOT - BLOCK, 2, NULL),
	         VIRTIO_MEM_RESP_ERROR);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, ~0ull & ~(BLOCK - 1), 0xffff, NULL),
	         VIRTIO_MEM_RESP_ERROR);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_STATE, HP_ADDR + REGION, 1, &st),
	         VIRTIO_MEM_RESP_ERROR);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_UNPLUG, HP_ADDR, 1, NULL), VIRTIO_MEM_RESP_ERROR);
	CHECK_EQ(request(&t, 77, HP_ADDR, 1, NULL), VIRTIO_MEM_RESP_ERROR);
	/* Plugging a plugged block again. */
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR, 1, NULL), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR, 2, NULL), VIRTIO_MEM_RESP_ERROR);
	CHECK_EQ(cfg64(&t, 40), BLOCK);
	CHECK_EQ(t.m.plug_fails, 7); /* six bad ranges, one plugged again */
	CHECK(virtio_live(&t.m.vdev));
	teardown(&t);
}

TEST(unplug_all_shrinks_usable)
{
	struct t t;

	setup(&t, ~0ull);
	CHECK_EQ(virtio_mem_set_requested(&t.m, 200 * MIB), 0);
	CHECK_EQ(cfg64(&t, 32), REGION);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR + SLOT, 3, NULL), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(t.plat.size[1], SLOT);
	CHECK_EQ(t.plat.gpa[1], HP_ADDR + SLOT);
	CHECK_EQ(virtio_mem_set_requested(&t.m, 0), 0);
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(cfg64(&t, 40), 0);
	CHECK_EQ(cfg64(&t, 32), 0);
	CHECK_EQ(t.plat.size[1], 0);
	teardown(&t);
}

TEST(slot_map_failure_is_nack_and_undone)
{
	struct t t;

	setup(&t, ~0ull);
	CHECK_EQ(virtio_mem_set_requested(&t.m, 8 * MIB), 0);
	t.plat.fail_set = 1;
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR, 2, NULL), VIRTIO_MEM_RESP_NACK);
	CHECK_EQ(cfg64(&t, 40), 0);
	t.plat.fail_set = 0;
	CHECK_EQ(request(&t, VIRTIO_MEM_REQ_PLUG, HP_ADDR, 2, NULL), VIRTIO_MEM_RESP_ACK);
	teardown(&t);
}

TEST(short_chains_need_reset)
{
	struct t t;
	struct fake_seg only_req[1], short_resp[2];

	setup(&t, ~0ull);
	only_req[0] = (struct fake_seg){t.req, VIRTIO_MEM_REQ_SIZE, false};
	fake_vq_add(&t.q, only_req, 1);
	fake_kick(&t.m.vdev, 0);
	CHECK(!virtio_live(&t.m.vdev));
	CHECK_EQ(t.ft.config_changed, 1); /* the NEEDS_RESET interrupt */
	teardown(&t);

	setup(&t, ~0ull);
	short_resp[0] = (struct fake_seg){t.req, VIRTIO_MEM_REQ_SIZE - 1, false};
	short_resp[1] = (struct fake_seg){t.resp, VIRTIO_MEM_RESP_SIZE, true};
	fake_vq_add(&t.q, short_resp, 2);
	fake_kick(&t.m.vdev, 0);
	CHECK(!virtio_live(&t.m.vdev));
	teardown(&t);
}

TEST(config_checks)
{
	struct err e = {0};

	CHECK_EQ(virtio_mem_check_config(1024, 2, 128, &e), 0);
	e = (struct err){0};
	CHECK_EQ(virtio_mem_check_config(1024, 1, 128, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "Block size must not be lower than 2 MiB");
	e = (struct err){0};
	CHECK_EQ(virtio_mem_check_config(1024, 3, 128, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "Block size must be a power of 2");
	e = (struct err){0};
	CHECK_EQ(virtio_mem_check_config(1024, 2, 64, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "Slot size must not be lower than 128 MiB");
	e = (struct err){0};
	CHECK_EQ(virtio_mem_check_config(1024, 4, 130, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "Slot size must be a multiple of block size (4 MiB)");
	e = (struct err){0};
	CHECK_EQ(virtio_mem_check_config(64, 2, 128, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "Total size must not be lower than slot size (128 MiB)");
	e = (struct err){0};
	CHECK_EQ(virtio_mem_check_config(1000, 2, 128, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "Total size must be a multiple of slot size (128 MiB)");
}

/* ---- snapshots ---------------------------------------------------------------------------- */

#define SNAP_VMEM SNAP_TAG('V', 'M', 'E', 'M')

/* A memory file holding the plugged blocks of `m` at offset 0, as snapshot.c writes it. */
static int mem_file(struct virtio_mem *m)
{
	char path[] = "/tmp/ember-vmem-XXXXXX";
	int fd = mkstemp(path);
	uint64_t first = 0, n;

	CHECK(fd >= 0);
	unlink(path);
	CHECK_EQ(ftruncate(fd, (off_t)m->region_size), 0);
	while (virtio_mem_next_plugged(m, &first, &n)) {
		CHECK_EQ(pwrite(fd, m->hva + first * m->block_size, n * m->block_size,
		                (off_t)(first * m->block_size)),
		         (ssize_t)(n * m->block_size));
		first += n;
	}
	return fd;
}

TEST(snapshot_round_trip)
{
	struct t a, b;
	struct snap_w w;
	struct snap_r r;
	struct err e = {0};
	uint64_t first = 0, n;
	uint16_t st = 9;
	int fd;

	setup(&a, ~0ull);
	CHECK_EQ(virtio_mem_set_requested(&a.m, 200 * MIB), 0); /* usable: both slots */
	CHECK_EQ(request(&a, VIRTIO_MEM_REQ_PLUG, HP_ADDR, 4, NULL), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(request(&a, VIRTIO_MEM_REQ_PLUG, HP_ADDR + 70 * BLOCK, 2, NULL),
	         VIRTIO_MEM_RESP_ACK);
	memset(a.hva + 4096, 0xa5, 4096);
	memset(a.hva + 71 * BLOCK + 8192, 0x3c, 4096);
	/* The runs of plugged blocks the memory file is written from. */
	CHECK(virtio_mem_next_plugged(&a.m, &first, &n));
	CHECK_EQ(first, 0);
	CHECK_EQ(n, 4);
	first += n;
	CHECK(virtio_mem_next_plugged(&a.m, &first, &n));
	CHECK_EQ(first, 70);
	CHECK_EQ(n, 2);
	first += n;
	CHECK(!virtio_mem_next_plugged(&a.m, &first, &n));
	snap_w_init(&w);
	virtio_mem_save(&a.m, &w);
	CHECK(!w.oom);
	fd = mem_file(&a.m);

	setup(&b, ~0ull);
	b.m.load_fd = fd;
	b.m.load_off = 0;
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(virtio_mem_restore(&b.m, &r, &e), 0);
	CHECK_EQ(r.off, r.len);
	CHECK_EQ(b.m.load_fd, -1);
	CHECK_EQ(cfg64(&b, 32), 2 * SLOT);  /* usable */
	CHECK_EQ(cfg64(&b, 40), 12 * MIB);  /* plugged */
	CHECK_EQ(cfg64(&b, 48), 200 * MIB); /* requested */
	/* Both slots mapped again, at their addresses. */
	CHECK_EQ(b.plat.size[0], SLOT);
	CHECK_EQ(b.plat.size[1], SLOT);
	CHECK_EQ(b.plat.gpa[1], HP_ADDR + SLOT);
	CHECK(b.plat.hva[1] == b.hva + SLOT);
	/* The contents are back; a page that was a hole reads zeroes. */
	CHECK_EQ(b.hva[4096], 0xa5);
	CHECK_EQ(b.hva[8191], 0xa5);
	CHECK_EQ(b.hva[71 * BLOCK + 8192], 0x3c);
	CHECK_EQ(b.hva[0], 0);
	CHECK_EQ(request(&b, VIRTIO_MEM_REQ_STATE, HP_ADDR, 4, &st), VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(st, VIRTIO_MEM_STATE_PLUGGED);
	CHECK_EQ(request(&b, VIRTIO_MEM_REQ_STATE, HP_ADDR + 4 * BLOCK, 66, &st),
	         VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(st, VIRTIO_MEM_STATE_UNPLUGGED);
	/* The restored device goes on: unplug the second run, its slot goes away. */
	CHECK_EQ(request(&b, VIRTIO_MEM_REQ_UNPLUG, HP_ADDR + 70 * BLOCK, 2, NULL),
	         VIRTIO_MEM_RESP_ACK);
	CHECK_EQ(b.plat.size[1], 0);
	CHECK_EQ(cfg64(&b, 40), 8 * MIB);
	close(fd);
	snap_w_free(&w);
	teardown(&a);
	teardown(&b);
}

/* A VMEM section with these fields and `words` bitmap words from bm. */
static void forged(struct snap_w *w, const uint64_t g[8], const uint64_t *bm, unsigned int words)
{
	size_t at;

	snap_w_init(w);
	at = snap_begin(w, SNAP_VMEM, 1);
	for (unsigned int i = 0; i < 8; i++)
		snap_put_u64(w, g[i]);
	for (unsigned int i = 0; i < words; i++)
		snap_put_u64(w, bm[i]);
	snap_end(w, at);
}

/* Restore a forged state into a fresh device: refused with `msg`, the device unchanged. */
static void refused(uint64_t block, const uint64_t g[8], const uint64_t *bm, unsigned int words,
                    const char *msg)
{
	struct t t;
	struct snap_w w;
	struct snap_r r;
	struct err e = {0};

	setup_block(&t, ~0ull, block);
	forged(&w, g, bm, words);
	snap_r_init(&r, w.buf, w.len);
	CHECK(virtio_mem_restore(&t.m, &r, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, msg);
	CHECK_EQ(cfg64(&t, 40), 0);
	CHECK_EQ(cfg64(&t, 32), 0);
	CHECK_EQ(t.plat.sets, 0);
	snap_w_free(&w);
	teardown(&t);
}

TEST(snapshot_forged_states_refused)
{
	uint64_t bm[2] = {0xf, 0};
	const uint64_t ok[8] = {HP_ADDR, REGION, BLOCK, SLOT, SLOT, 8 * MIB, 8 * MIB, 128};
	uint64_t g[8];

	/* The good one first: the forging is right. */
	{
		struct t t;
		struct snap_w w;
		struct snap_r r;
		struct err e = {0};

		setup(&t, ~0ull);
		forged(&w, ok, bm, 2);
		snap_r_init(&r, w.buf, w.len);
		CHECK_EQ(virtio_mem_restore(&t.m, &r, &e), 0);
		CHECK_EQ(cfg64(&t, 40), 8 * MIB);
		snap_w_free(&w);
		teardown(&t);
	}
#define FORGE(i, v, msg)                                                                           \
	do {                                                                                       \
		memcpy(g, ok, sizeof(g));                                                          \
		g[i] = (v);                                                                        \
		refused(BLOCK, g, bm, 2, msg);                                                     \
	} while (0)
	FORGE(0, HP_ADDR + SLOT, "saved with the region");
	FORGE(1, 2 * REGION, "saved with the region");
	FORGE(2, 4 * MIB, "saved with the region");
	FORGE(3, 2 * SLOT, "saved with the region");
	FORGE(4, SLOT + BLOCK, "usable_region_size");
	FORGE(4, 2 * REGION, "usable_region_size");
	FORGE(5, 3 * MIB, "requested_size");
	FORGE(5, SLOT + BLOCK, "requested_size"); /* beyond the usable size */
	FORGE(6, 6 * MIB, "plugged_size");        /* not the bitmap's 4 blocks */
	FORGE(6, ~0ull, "plugged_size");
	FORGE(7, 192, "the saved state has 192 blocks");
#undef FORGE
	/* A block plugged beyond the usable region (block 64: the second slot). */
	bm[1] = 1;
	memcpy(g, ok, sizeof(g));
	g[6] = 10 * MIB;
	refused(BLOCK, g, bm, 2, "block 64 plugged, beyond the usable region");
	/* A bit past the region's last block: 8 MiB blocks, 32 of them, bit 40 set. */
	{
		uint64_t b8[1] = {1ull << 40 | 1};
		const uint64_t g8[8] = {HP_ADDR,  REGION,   8 * MIB,  SLOT,
		                        2 * SLOT, 16 * MIB, 16 * MIB, 32};

		refused(8 * MIB, g8, b8, 1, "block 40 plugged, beyond the region");
	}
	/* Cut short: the bitmap's second word missing; a word too many. */
	bm[1] = 0;
	refused(BLOCK, ok, bm, 1, "virtio-mem");
	{
		uint64_t three[3] = {0xf, 0, 0};

		refused(BLOCK, ok, three, 3, "left over");
	}
}

int main(void)
{
	RUN(config_and_features);
	RUN(refuses_driver_without_unplugged_inaccessible);
	RUN(requested_size_update);
	RUN(not_active_refused);
	RUN(plug_unplug_state_and_slots);
	RUN(hostile_ranges);
	RUN(unplug_all_shrinks_usable);
	RUN(slot_map_failure_is_nack_and_undone);
	RUN(short_chains_need_reset);
	RUN(config_checks);
	RUN(snapshot_round_trip);
	RUN(snapshot_forged_states_refused);
	return test_summary();
}
