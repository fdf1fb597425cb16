/* test_virtio_rng.c - unit tests for virtio-rng: bytes arrive, limits hold, bad chains reset. */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "devices/virtio/rng.h"
#include "test.h"
#include "util/evloop.h"
#include "virtio_fake_driver.h"

/* ---- the guest: the shared fake driver (virtio_fake_driver.h), one device's worth ---- */

#define RAM_SIZE (4u << 20)
#define BUF_BASE 0x100000u /* above the rings fake_guest_alloc hands out */

/* ---- tests ---- */

struct fake_clock {
	uint64_t now;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

static bool all_same(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 1; i < n; i++)
		if (p[i] != p[0])
			return false;
	return true;
}

static void kick(struct virtio_rng *r)
{
	r->vdev.ops->queue_notify(&r->vdev, 0);
}

TEST(identity)
{
	struct fake_rig g;
	struct virtio_rng r;
	struct err e = {0};

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_rng_init(&r, NULL, &g.fg.env, &e), 0);
	CHECK_EQ(r.vdev.type, VIRTIO_ID_RNG);
	CHECK_EQ(r.vdev.nqueues, 1);
	CHECK_EQ(r.vdev.config_size, 0);
	CHECK(r.vdev.features & (1ull << VIRTIO_F_EVENT_IDX));
	CHECK(r.vdev.features & (1ull << VIRTIO_F_INDIRECT_DESC));
	CHECK(r.vdev.features & (1ull << VIRTIO_F_VERSION_1));
	CHECK(!r.rl_watched);
	virtio_rng_destroy(&r);
	fake_rig_fini(&g);
}

TEST(bytes_arrive)
{
	struct fake_rig g;
	struct virtio_rng r;
	struct err e = {0};
	struct fake_seg a = {BUF_BASE, 64, true};
	struct fake_seg b[2] = {{BUF_BASE + 0x1000, 100, true}, {BUF_BASE + 0x3000, 3996, true}};
	struct fake_seg c = {BUF_BASE + 0x8000, 1, true};
	uint32_t id, len;
	int ha, hb, hc;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_rng_init(&r, NULL, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &r.vdev, 1);
	ha = fake_vq_add(&g.q[0], &a, 1);
	hb = fake_vq_add(&g.q[0], b, 2);
	hc = fake_vq_add(&g.q[0], &c, 1);
	kick(&r);
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK_EQ(id, ha);
	CHECK_EQ(len, 64);
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK_EQ(id, hb);
	CHECK_EQ(len, 4096);
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK_EQ(id, hc);
	CHECK_EQ(len, 1);
	CHECK(!fake_vq_used(&g.q[0], &id, &len));
	/* Not constant, and both segments of the split buffer were written. */
	CHECK(!all_same(g.fg.ram + BUF_BASE, 64));
	CHECK(!all_same(g.fg.ram + BUF_BASE + 0x1000, 100));
	CHECK(!all_same(g.fg.ram + BUF_BASE + 0x3000, 3996));
	CHECK(memcmp(g.fg.ram + BUF_BASE, g.fg.ram + BUF_BASE + 0x1000, 64) != 0);
	CHECK(g.ft.notified[0] >= 1);
	CHECK_EQ(r.requests, 3);
	CHECK_EQ(r.bytes, 64 + 4096 + 1);
	virtio_rng_destroy(&r);
	fake_rig_fini(&g);
}

TEST(readable_segments_ignored)
{
	struct fake_rig g;
	struct virtio_rng r;
	struct err e = {0};
	struct fake_seg ro = {BUF_BASE, 32, false};
	struct fake_seg mixed[2] = {{BUF_BASE + 0x100, 16, false}, {BUF_BASE + 0x200, 16, true}};
	uint8_t zero[32] = {0};
	uint32_t id, len;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_rng_init(&r, NULL, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &r.vdev, 1);
	fake_vq_add(&g.q[0], &ro, 1);
	fake_vq_add(&g.q[0], mixed, 2);
	kick(&r);
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK_EQ(len, 0); /* nothing writable: answered with 0 bytes */
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK_EQ(len, 16);
	CHECK(memcmp(g.fg.ram + BUF_BASE, zero, 32) == 0);
	CHECK(memcmp(g.fg.ram + BUF_BASE + 0x100, zero, 16) == 0);
	CHECK(!all_same(g.fg.ram + BUF_BASE + 0x200, 16));
	CHECK(virtio_live(&r.vdev));
	virtio_rng_destroy(&r);
	fake_rig_fini(&g);
}

TEST(large_request_capped)
{
	struct fake_rig g;
	struct virtio_rng r;
	struct err e = {0};
	struct fake_seg big = {BUF_BASE, 1u << 20, true};
	uint32_t id, len;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_rng_init(&r, NULL, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &r.vdev, 1);
	fake_vq_add(&g.q[0], &big, 1);
	kick(&r);
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK_EQ(len, VIRTIO_RNG_MAX_REQUEST); /* §5.4.6.2: MAY use less than the whole buffer */
	virtio_rng_destroy(&r);
	fake_rig_fini(&g);
}

TEST(bandwidth_limit_blocks_then_resumes)
{
	struct fake_rig g;
	struct virtio_rng r;
	struct err e = {0};
	struct fake_clock fc = {.now = 1000000};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_rng_opts o = {
	    .rate_limiter = {.bandwidth = {.size = 100, .refill_time_ms = 100}}, /* 1 B/ms */
	    .clock = &clk,
	};
	struct fake_seg s[3] = {
	    {BUF_BASE, 64, true}, {BUF_BASE + 0x100, 64, true}, {BUF_BASE + 0x200, 64, true}};
	uint32_t id, len;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_rng_init(&r, &o, &g.fg.env, &e), 0);
	CHECK(r.rl_watched);
	/* The timer is on the loop: adding it again is refused. */
	CHECK(evloop_add(&g.fg.loop, &r.rl_watch, EPOLLIN) < 0);
	fake_rig_bring_up(&g, &r.vdev, 1);
	fake_vq_add(&g.q[0], &s[0], 1);
	fake_vq_add(&g.q[0], &s[1], 1);
	fake_vq_add(&g.q[0], &s[2], 1);
	kick(&r);
	CHECK_EQ(fake_vq_pending(&g.q[0]), 1); /* 100 - 64 = 36 left: the second waits */
	CHECK(rate_limiter_blocked(&r.rl));
	CHECK(r.held);
	/* A kick before the tokens are there changes nothing. */
	fc.now += 27000000;
	kick(&r);
	CHECK_EQ(fake_vq_pending(&g.q[0]), 1);
	/* 28 ms after the first: the timer fires, the second goes, the third waits 64 ms. */
	fc.now += 1000000;
	r.rl_watch.cb(&r.rl_watch, EPOLLIN);
	CHECK_EQ(fake_vq_pending(&g.q[0]), 2);
	CHECK(rate_limiter_blocked(&r.rl));
	fc.now += 63000000;
	r.rl_watch.cb(&r.rl_watch, EPOLLIN);
	CHECK_EQ(fake_vq_pending(&g.q[0]), 2);
	fc.now += 1000000;
	r.rl_watch.cb(&r.rl_watch, EPOLLIN);
	CHECK_EQ(fake_vq_pending(&g.q[0]), 3);
	while (fake_vq_used(&g.q[0], &id, &len))
		CHECK_EQ(len, 64);
	CHECK_EQ(r.throttled >= 3, 1);
	virtio_rng_destroy(&r);
	fake_rig_fini(&g);
}

TEST(ops_limit)
{
	struct fake_rig g;
	struct virtio_rng r;
	struct err e = {0};
	struct fake_clock fc = {.now = 0};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_rng_opts o = {
	    .rate_limiter = {.ops = {.size = 1, .refill_time_ms = 1000}},
	    .clock = &clk,
	};
	struct fake_seg s[2] = {{BUF_BASE, 8, true}, {BUF_BASE + 0x100, 8, true}};

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_rng_init(&r, &o, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &r.vdev, 1);
	fake_vq_add(&g.q[0], &s[0], 1);
	fake_vq_add(&g.q[0], &s[1], 1);
	kick(&r);
	CHECK_EQ(fake_vq_pending(&g.q[0]), 1);
	fc.now = 999999999;
	r.rl_watch.cb(&r.rl_watch, EPOLLIN);
	CHECK_EQ(fake_vq_pending(&g.q[0]), 1);
	fc.now = 1000000000;
	r.rl_watch.cb(&r.rl_watch, EPOLLIN);
	CHECK_EQ(fake_vq_pending(&g.q[0]), 2);
	virtio_rng_destroy(&r);
	fake_rig_fini(&g);
}

TEST(bad_limiter_refused)
{
	struct fake_rig g;
	struct virtio_rng r;
	struct err e = {0};
	struct virtio_rng_opts o = {.rate_limiter = {.bandwidth = {1, 0, UINT64_MAX}}};

	fake_rig_init(&g, RAM_SIZE);
	CHECK(virtio_rng_init(&r, &o, &g.fg.env, &e) < 0);
	CHECK_STR_CONTAINS(e.msg, "virtio-rng");
	CHECK_STR_CONTAINS(e.msg, "refill_time");
	fake_rig_fini(&g);
}

TEST(bad_chain_needs_reset_then_recovers)
{
	struct fake_rig g;
	struct virtio_rng r;
	struct err e = {0};
	struct fake_seg outside = {RAM_SIZE - 8, 64, true};
	struct fake_seg good = {BUF_BASE, 16, true};
	uint32_t id, len;

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_rng_init(&r, NULL, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &r.vdev, 1);
	fake_vq_add(&g.q[0], &outside, 1);
	kick(&r);
	CHECK(!virtio_live(&r.vdev));
	CHECK(r.vdev.status & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(g.ft.config_changed, 1); /* §2.1.2: the driver is told */
	CHECK_EQ(fake_vq_pending(&g.q[0]), 0);
	kick(&r); /* nothing happens while broken */
	CHECK_EQ(fake_vq_pending(&g.q[0]), 0);
	/* The driver resets and starts over. */
	pthread_mutex_lock(&r.vdev.lock);
	virtio_set_status(&r.vdev, 0);
	pthread_mutex_unlock(&r.vdev.lock);
	fake_rig_bring_up(&g, &r.vdev, 1);
	fake_vq_add(&g.q[0], &good, 1);
	kick(&r);
	CHECK(fake_vq_used(&g.q[0], &id, &len));
	CHECK_EQ(len, 16);
	virtio_rng_destroy(&r);
	fake_rig_fini(&g);
}

TEST(reset_drops_held_request)
{
	struct fake_rig g;
	struct virtio_rng r;
	struct err e = {0};
	struct fake_clock fc = {.now = 0};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_rng_opts o = {.rate_limiter = {.ops = {.size = 1, .refill_time_ms = 1000}},
	                            .clock = &clk};
	struct fake_seg s = {BUF_BASE, 8, true};

	fake_rig_init(&g, RAM_SIZE);
	CHECK_EQ(virtio_rng_init(&r, &o, &g.fg.env, &e), 0);
	fake_rig_bring_up(&g, &r.vdev, 1);
	fake_vq_add(&g.q[0], &s, 1);
	fake_vq_add(&g.q[0], &s, 1);
	kick(&r);
	CHECK(r.held);
	pthread_mutex_lock(&r.vdev.lock);
	virtio_set_status(&r.vdev, 0);
	pthread_mutex_unlock(&r.vdev.lock);
	CHECK(!r.held);
	/* A timer event after the reset touches nothing. */
	fc.now = 5000000000ull;
	r.rl_watch.cb(&r.rl_watch, EPOLLIN);
	CHECK_EQ(r.requests, 1);
	virtio_rng_destroy(&r);
	fake_rig_fini(&g);
}

int main(void)
{
	RUN(identity);
	RUN(bytes_arrive);
	RUN(readable_segments_ignored);
	RUN(large_request_capped);
	RUN(bandwidth_limit_blocks_then_resumes);
	RUN(ops_limit);
	RUN(bad_limiter_refused);
	RUN(bad_chain_needs_reset_then_recovers);
	RUN(reset_drops_held_request);
	return test_summary();
}
