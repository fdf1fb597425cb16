/* test_virtio_mem.c - unit tests for virtio-mem: plug, unplug, state, hostile requests, slots. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

static void setup(struct t *t, uint64_t want)
{
	struct virtio_mem_opts o = {
	    .addr = HP_ADDR, .region_size = REGION, .block_size = BLOCK, .slot_size = SLOT};
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
	return test_summary();
}
