/* test_virtio_pmem.c - unit tests for virtio-pmem: the region, the mapping, flush requests. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/pmem.h"
#include "test.h"
#include "util/snap.h"
#include "virtio_fake_driver.h"

#define RAM_SIZE (4u << 20)
#define BUF_BASE 0x100000u /* above the rings fake_guest_alloc hands out */
#define GPA      (68ull << 30)

struct guest {
	struct fake_guest fg;
	struct fake_transport ft;
	struct fake_vq q;
};

static char dir[] = "/tmp/ember-pmem-XXXXXX";

/* A file of `len` bytes, each byte (offset & 0xff) ^ 0x5a. */
static char *make_file(const char *name, size_t len)
{
	static char path[4][256];
	static unsigned int n;
	char *p = path[n++ % 4];
	uint8_t *buf = malloc(len ? len : 1);
	int fd;

	snprintf(p, 256, "%s/%s", dir, name);
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((i & 0xff) ^ 0x5a);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK_EQ(write(fd, buf, len), (ssize_t)len);
	close(fd);
	free(buf);
	return p;
}

static void guest_up(struct guest *g, struct virtio_pmem *p)
{
	memset(g, 0, sizeof(*g));
	fake_guest_init(&g->fg, RAM_SIZE);
	(void)p;
}

static void bring_up(struct guest *g, struct virtio_pmem *p)
{
	fake_vq_init(&g->q, &g->fg, 256);
	fake_start(&p->vdev, &g->ft, ~0ull, &g->q, 1);
}

static int init(struct virtio_pmem *p, struct guest *g, const char *path, bool ro, uint64_t gpa,
                struct err *e)
{
	struct virtio_pmem_opts o = {.path = path, .read_only = ro, .gpa = gpa};

	return virtio_pmem_init(p, &o, &g->fg.env, e);
}

/* A flush request: type at t (4 bytes, readable), ret at r (4 bytes, writable). */
static int add_flush(struct guest *g, uint64_t t, uint32_t type, uint64_t r)
{
	uint32_t le = htole32(type), marker = 0x11111111;
	struct fake_seg s[2] = {{t, 4, false}, {r, 4, true}};

	memcpy(g->fg.ram + t, &le, 4);
	memcpy(g->fg.ram + r, &marker, 4);
	return fake_vq_add(&g->q, s, 2);
}

static uint32_t ram32(struct guest *g, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, g->fg.ram + gpa, 4);
	return le32toh(v);
}

TEST(identity_and_config)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	uint64_t start = 0, size = 0, bad = 0xdead;
	char *path = make_file("small", 5000);

	guest_up(&g, &p);
	CHECK_EQ(init(&p, &g, path, false, GPA, &e), 0);
	CHECK_EQ(p.vdev.type, VIRTIO_ID_PMEM);
	CHECK_EQ(p.vdev.type, 27);
	CHECK_EQ(p.vdev.nqueues, 1);
	CHECK_EQ(p.vdev.config_size, 16);
	CHECK(p.vdev.features & (1ull << VIRTIO_F_VERSION_1));
	CHECK_EQ(p.file_len, 5000);
	CHECK_EQ(p.map_len, 2ull << 20); /* rounded up to 2 MiB, Firecracker's alignment */
	fake_config_read(&p.vdev, 0, &start, 8);
	fake_config_read(&p.vdev, 8, &size, 8);
	CHECK_EQ(le64toh(start), GPA);
	CHECK_EQ(le64toh(size), 2ull << 20);
	/* A driver write is dropped: the configuration reads the same. */
	pthread_mutex_lock(&p.vdev.lock);
	virtio_config_access(&p.vdev, 0, &bad, 8, true);
	pthread_mutex_unlock(&p.vdev.lock);
	fake_config_read(&p.vdev, 0, &start, 8);
	CHECK_EQ(le64toh(start), GPA);
	CHECK_EQ(p.cfg_writes, 1);
	/* A 4-byte read of size's high half (drivers read 64-bit fields in halves). */
	{
		uint32_t hi = 1;

		fake_config_read(&p.vdev, 12, &hi, 4);
		CHECK_EQ(hi, 0);
	}
	virtio_pmem_destroy(&p);
	/* An exact multiple of 2 MiB is not rounded further. */
	path = make_file("exact", 4u << 20);
	CHECK_EQ(init(&p, &g, path, true, GPA, &e), 0);
	CHECK_EQ(p.map_len, 4u << 20);
	virtio_pmem_destroy(&p);
	fake_guest_fini(&g.fg);
}

TEST(refusals)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	char missing[300], *path = make_file("ok", 4096), *empty = make_file("empty", 0);

	guest_up(&g, &p);
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	CHECK_EQ(init(&p, &g, missing, false, GPA, &e), -ENOENT);
	CHECK_STR_CONTAINS(e.msg, "Error accessing backing file: No such file or directory");
	err_clear(&e);
	CHECK(init(&p, &g, dir, true, GPA, &e) < 0); /* a directory */
	CHECK_STR_CONTAINS(e.msg, "not a regular file");
	err_clear(&e);
	CHECK_EQ(init(&p, &g, dir, false, GPA, &e), -EISDIR);
	err_clear(&e);
	CHECK_EQ(init(&p, &g, empty, false, GPA, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "Error backing file size is 0");
	err_clear(&e);
	CHECK_EQ(init(&p, &g, path, false, GPA + 4096, &e), -EINVAL); /* not 2 MiB aligned */
	CHECK_STR_CONTAINS(e.msg, "aligned");
	fake_guest_fini(&g.fg);
}

TEST(mapping_is_the_file)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	char *path = make_file("map", 10000);
	uint8_t *m, buf[16];
	int fd;

	guest_up(&g, &p);
	CHECK_EQ(init(&p, &g, path, false, GPA, &e), 0);
	m = p.hva;
	CHECK_EQ(m[0], 0x5a);
	CHECK_EQ(m[9999], (uint8_t)((9999 & 0xff) ^ 0x5a));
	/* Past the file: anonymous zeroes up to the region's end (the page after the file too). */
	CHECK_EQ(m[12288], 0);
	CHECK_EQ(m[p.map_len - 1], 0);
	/* The guest's stores reach the file (MAP_SHARED). */
	memcpy(m + 100, "ember pmem bytes", 16);
	fd = open(path, O_RDONLY);
	CHECK_EQ(pread(fd, buf, 16, 100), 16);
	CHECK(memcmp(buf, "ember pmem bytes", 16) == 0);
	close(fd);
	virtio_pmem_destroy(&p);
	fake_guest_fini(&g.fg);
}

TEST(flush_answers_and_coalesces)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	char *path = make_file("flush", 4096);
	uint32_t id, len;
	int h[3];

	guest_up(&g, &p);
	CHECK_EQ(init(&p, &g, path, false, GPA, &e), 0);
	bring_up(&g, &p);
	h[0] = add_flush(&g, BUF_BASE, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x10);
	fake_kick(&p.vdev, 0);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(id, h[0]);
	CHECK_EQ(len, 4);
	CHECK_EQ(ram32(&g, BUF_BASE + 0x10), VIRTIO_PMEM_RET_OK);
	CHECK_EQ(p.fsyncs, 1);
	CHECK(g.ft.notified[0] >= 1);
	/* Three in the ring when the kick is served: one fdatasync answers them all. */
	for (int i = 0; i < 3; i++)
		h[i] = add_flush(&g, BUF_BASE + 0x100 * i, VIRTIO_PMEM_REQ_TYPE_FLUSH,
		                 BUF_BASE + 0x100 * i + 0x10);
	fake_kick(&p.vdev, 0);
	for (int i = 0; i < 3; i++) {
		CHECK(fake_vq_used(&g.q, &id, &len));
		CHECK_EQ(id, h[i]);
		CHECK_EQ(len, 4);
		CHECK_EQ(ram32(&g, BUF_BASE + 0x100 * i + 0x10), VIRTIO_PMEM_RET_OK);
	}
	CHECK_EQ(p.fsyncs, 2);
	CHECK_EQ(p.flushes, 4);
	CHECK_EQ(p.errors, 0);
	CHECK_EQ(p.kicks, 2);
	/* A kick with nothing in the ring does not sync. */
	fake_kick(&p.vdev, 0);
	CHECK_EQ(p.fsyncs, 2);
	virtio_pmem_destroy(&p);
	fake_guest_fini(&g.fg);
}

TEST(split_framing_and_indirect)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	char *path = make_file("split", 4096);
	struct fake_seg s[4] = {{BUF_BASE, 2, false},
	                        {BUF_BASE + 0x40, 2, false},
	                        {BUF_BASE + 0x80, 1, true},
	                        {BUF_BASE + 0xc0, 3, true}};
	uint32_t id, len;
	uint8_t ret[4] = {9, 9, 9, 9};

	guest_up(&g, &p);
	CHECK_EQ(init(&p, &g, path, false, GPA, &e), 0);
	bring_up(&g, &p);
	memset(g.fg.ram + BUF_BASE, 0, 0x100);
	memset(g.fg.ram + BUF_BASE + 0x80, 0x77, 1);
	memset(g.fg.ram + BUF_BASE + 0xc0, 0x77, 3);
	fake_vq_add(&g.q, s, 4);
	fake_kick(&p.vdev, 0);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(len, 4);
	ret[0] = g.fg.ram[BUF_BASE + 0x80];
	memcpy(ret + 1, g.fg.ram + BUF_BASE + 0xc0, 3);
	CHECK(ret[0] == 0 && ret[1] == 0 && ret[2] == 0 && ret[3] == 0);
	CHECK_EQ(p.fsyncs, 1);
	/* The same through an indirect table. */
	memset(g.fg.ram + BUF_BASE + 0xc0, 0x77, 3);
	CHECK(fake_vq_add_indirect(&g.q, s, 4) >= 0);
	fake_kick(&p.vdev, 0);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(len, 4);
	CHECK_EQ(g.fg.ram[BUF_BASE + 0xc2], 0);
	CHECK_EQ(p.fsyncs, 2);
	virtio_pmem_destroy(&p);
	fake_guest_fini(&g.fg);
}

TEST(bad_requests_answered_not_fatal)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	char *path = make_file("bad", 4096);
	struct fake_seg shorttype[2] = {{BUF_BASE + 0x200, 2, false}, {BUF_BASE + 0x210, 4, true}};
	struct fake_seg nostatus[2] = {{BUF_BASE + 0x300, 4, false}, {BUF_BASE + 0x310, 3, true}};
	struct fake_seg onlyread = {BUF_BASE + 0x400, 4, false};
	uint32_t id, len, marker = 0x33333333;

	guest_up(&g, &p);
	CHECK_EQ(init(&p, &g, path, false, GPA, &e), 0);
	bring_up(&g, &p);
	add_flush(&g, BUF_BASE, 7, BUF_BASE + 0x10); /* unknown type */
	memset(g.fg.ram + BUF_BASE + 0x200, 0, 2);
	fake_vq_add(&g.q, shorttype, 2);
	memset(g.fg.ram + BUF_BASE + 0x300, 0, 4);
	memcpy(g.fg.ram + BUF_BASE + 0x310, &marker, 3);
	fake_vq_add(&g.q, nostatus, 2);
	fake_vq_add(&g.q, &onlyread, 1);
	fake_kick(&p.vdev, 0);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(len, 4);
	CHECK_EQ(ram32(&g, BUF_BASE + 0x10), VIRTIO_PMEM_RET_ERR); /* §5.19.7.2: -1 */
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(len, 4);
	CHECK_EQ(ram32(&g, BUF_BASE + 0x210), VIRTIO_PMEM_RET_ERR);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(len, 0); /* 3 writable bytes: no room for ret, nothing written */
	CHECK(memcmp(g.fg.ram + BUF_BASE + 0x310, &marker, 3) == 0);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(len, 0);
	CHECK_EQ(p.fsyncs, 0); /* no well-formed flush: the file is not synced */
	CHECK_EQ(p.errors, 4);
	CHECK(virtio_live(&p.vdev));
	virtio_pmem_destroy(&p);
	fake_guest_fini(&g.fg);
}

TEST(failed_sync_answers_minus_one)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	char *path = make_file("fail", 4096);
	uint32_t id, len;
	int pfd[2], real;

	guest_up(&g, &p);
	CHECK_EQ(init(&p, &g, path, false, GPA, &e), 0);
	bring_up(&g, &p);
	CHECK_EQ(pipe(pfd), 0);
	real = p.fd;
	p.fd = pfd[0]; /* fdatasync of a pipe fails (EINVAL) */
	add_flush(&g, BUF_BASE, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x10);
	fake_kick(&p.vdev, 0);
	p.fd = real;
	close(pfd[0]);
	close(pfd[1]);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(len, 4);
	CHECK_EQ(ram32(&g, BUF_BASE + 0x10), VIRTIO_PMEM_RET_ERR);
	CHECK_EQ(p.errors, 1);
	virtio_pmem_destroy(&p);
	fake_guest_fini(&g.fg);
}

TEST(read_only_flush_needs_no_sync)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	char *path = make_file("ro", 4096);
	uint32_t id, len;

	guest_up(&g, &p);
	CHECK_EQ(init(&p, &g, path, true, GPA, &e), 0);
	CHECK(p.read_only);
	bring_up(&g, &p);
	add_flush(&g, BUF_BASE, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x10);
	fake_kick(&p.vdev, 0);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(ram32(&g, BUF_BASE + 0x10), VIRTIO_PMEM_RET_OK);
	CHECK_EQ(p.fsyncs, 0);
	virtio_pmem_destroy(&p);
	fake_guest_fini(&g.fg);
}

TEST(bad_chain_needs_reset_then_recovers)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	char *path = make_file("chain", 4096);
	struct fake_seg outside[2] = {{RAM_SIZE - 2, 4, false}, {BUF_BASE, 4, true}};
	uint32_t id, len;

	guest_up(&g, &p);
	CHECK_EQ(init(&p, &g, path, false, GPA, &e), 0);
	bring_up(&g, &p);
	fake_vq_add(&g.q, outside, 2); /* crosses the end of RAM */
	fake_kick(&p.vdev, 0);
	CHECK(!virtio_live(&p.vdev));
	CHECK(virtio_get_status(&p.vdev) & VIRTIO_STATUS_NEEDS_RESET);
	CHECK(g.ft.config_changed >= 1);
	CHECK(!fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(p.fsyncs, 0);
	fake_set_status(&p.vdev, 0);
	CHECK_EQ(p.reset_gen, 1);
	bring_up(&g, &p);
	add_flush(&g, BUF_BASE + 0x20, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x30);
	fake_kick(&p.vdev, 0);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(ram32(&g, BUF_BASE + 0x30), VIRTIO_PMEM_RET_OK);
	virtio_pmem_destroy(&p);
	fake_guest_fini(&g.fg);
}

TEST(save_restore_checks_region)
{
	struct guest g;
	struct virtio_pmem a, b;
	struct err e = {0};
	char *path = make_file("snap", 3u << 20);
	struct snap_w w;
	struct snap_r r;

	guest_up(&g, &a);
	CHECK_EQ(init(&a, &g, path, false, GPA, &e), 0);
	snap_w_init(&w);
	virtio_pmem_save(&a, &w);
	CHECK(!w.oom);
	CHECK_EQ(init(&b, &g, path, false, GPA, &e), 0);
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(virtio_pmem_restore(&b, &r, &e), 0);
	virtio_pmem_destroy(&b);
	/* Placed elsewhere: refused. */
	CHECK_EQ(init(&b, &g, path, false, GPA + (4u << 20), &e), 0);
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(virtio_pmem_restore(&b, &r, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "region");
	err_clear(&e);
	virtio_pmem_destroy(&b);
	/* The file grew past the saved size: refused. */
	CHECK_EQ(truncate(path, 5u << 20), 0);
	CHECK_EQ(init(&b, &g, path, false, GPA, &e), 0);
	snap_r_init(&r, w.buf, w.len);
	CHECK_EQ(virtio_pmem_restore(&b, &r, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "change size");
	virtio_pmem_destroy(&b);
	/* A truncated state: refused, not read past. */
	CHECK_EQ(init(&b, &g, path, false, GPA, &e), 0);
	err_clear(&e);
	snap_r_init(&r, w.buf, w.len - 3);
	CHECK(virtio_pmem_restore(&b, &r, &e) < 0);
	virtio_pmem_destroy(&b);
	snap_w_free(&w);
	virtio_pmem_destroy(&a);
	fake_guest_fini(&g.fg);
}

struct fake_clock {
	uint64_t now;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

/* Fire the limiter's timer as the VMM evloop would. */
static void rl_fire(struct virtio_pmem *p)
{
	struct evloop_watch *w = &p->limiter.w[p->limiter.cur];

	w->cb(w, EPOLLIN);
}

/* One op a second: a batch waits in the ring (never dropped) until the timer lets it go. */
TEST(ops_limiter_holds_batches_back)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	struct fake_clock fc = {.now = 0};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_pmem_opts o = {.path = make_file("rl-ops", 4096),
	                             .gpa = GPA,
	                             .rate_limiter = {.ops = {.size = 1, .refill_time_ms = 1000}},
	                             .clock = &clk};
	uint32_t id, len;
	int h[3];

	guest_up(&g, &p);
	CHECK_EQ(virtio_pmem_init(&p, &o, &g.fg.env, &e), 0);
	CHECK(p.limiter.enabled);
	bring_up(&g, &p);
	h[0] = add_flush(&g, BUF_BASE, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x10);
	fake_kick(&p.vdev, 0);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(id, h[0]);
	CHECK_EQ(p.fsyncs, 1);
	CHECK_EQ(p.throttled, 0);
	/* The bucket is empty: the next two stay in the ring, unanswered, the file not synced. */
	h[1] = add_flush(&g, BUF_BASE + 0x100, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x110);
	h[2] = add_flush(&g, BUF_BASE + 0x200, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x210);
	fake_kick(&p.vdev, 0);
	CHECK_EQ(fake_vq_pending(&g.q), 0);
	CHECK_EQ(p.fsyncs, 1);
	CHECK_EQ(p.throttled, 1);
	CHECK(rate_limiter_blocked(&p.limiter.rl));
	CHECK_EQ(ram32(&g, BUF_BASE + 0x110), 0x11111111); /* ret untouched */
	/* A kick while blocked is counted, nothing more. */
	fake_kick(&p.vdev, 0);
	CHECK_EQ(fake_vq_pending(&g.q), 0);
	CHECK_EQ(p.throttled, 2);
	CHECK_EQ(p.kicks, 3);
	/* 1 ns early: refused again, the timer re-armed. */
	fc.now = 999999999;
	rl_fire(&p);
	CHECK_EQ(fake_vq_pending(&g.q), 0);
	CHECK_EQ(p.rl_events, 1);
	CHECK_EQ(p.throttled, 3);
	/* On time: both go in one batch, one fdatasync (one op). */
	fc.now = 1000000000;
	rl_fire(&p);
	CHECK_EQ(p.rl_events, 2);
	for (int i = 1; i < 3; i++) {
		CHECK(fake_vq_used(&g.q, &id, &len));
		CHECK_EQ(id, h[i]);
		CHECK_EQ(len, 4);
		CHECK_EQ(ram32(&g, BUF_BASE + 0x100 * i + 0x10), VIRTIO_PMEM_RET_OK);
	}
	CHECK_EQ(p.fsyncs, 2);
	CHECK_EQ(p.flushes, 3);
	CHECK_EQ(p.kicks, 3); /* timer runs are not kicks */
	CHECK(!rate_limiter_blocked(&p.limiter.rl));
	/* A kick on an empty ring costs nothing (the bucket is empty again: it would refuse). */
	fake_kick(&p.vdev, 0);
	CHECK_EQ(p.throttled, 3);
	CHECK(!rate_limiter_blocked(&p.limiter.rl));
	virtio_pmem_destroy(&p);
	fake_guest_fini(&g.fg);
}

/* Bytes: each batch costs the file's length (Firecracker's charge for the coalesced sync). */
TEST(bandwidth_limiter_charges_file_len)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	struct fake_clock fc = {.now = 0};
	struct rl_clock clk = {fake_now, &fc};
	/* 8192 bytes a second, a 4096-byte file: two batches at once, then one every 500 ms. */
	struct virtio_pmem_opts o = {
	    .path = make_file("rl-bw", 4096),
	    .gpa = GPA,
	    .rate_limiter = {.bandwidth = {.size = 8192, .refill_time_ms = 1000}},
	    .clock = &clk};
	uint32_t id, len;

	guest_up(&g, &p);
	CHECK_EQ(virtio_pmem_init(&p, &o, &g.fg.env, &e), 0);
	bring_up(&g, &p);
	for (int i = 0; i < 2; i++) {
		add_flush(&g, BUF_BASE, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x10);
		fake_kick(&p.vdev, 0);
		CHECK(fake_vq_used(&g.q, &id, &len));
	}
	CHECK_EQ(p.fsyncs, 2);
	add_flush(&g, BUF_BASE, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x10);
	fake_kick(&p.vdev, 0);
	CHECK_EQ(fake_vq_pending(&g.q), 0);
	CHECK_EQ(p.throttled, 1);
	fc.now = 499000000;
	rl_fire(&p);
	CHECK_EQ(fake_vq_pending(&g.q), 0);
	fc.now = 501000000; /* 4104 tokens (ratelimit.c may round the exact 500 ms down a token) */
	rl_fire(&p);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(ram32(&g, BUF_BASE + 0x10), VIRTIO_PMEM_RET_OK);
	CHECK_EQ(p.fsyncs, 3);
	virtio_pmem_destroy(&p);
	fake_guest_fini(&g.fg);
}

/* PATCH: a new limiter (buckets full) serves what the old one held back; unlimited too. */
TEST(limiter_replaced_while_running)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	struct fake_clock fc = {.now = 0};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_pmem_opts o = {
	    .path = make_file("rl-patch", 4096), .gpa = GPA, .clock = &clk};
	struct rate_limiter_cfg one = {.ops = {.size = 1, .refill_time_ms = 60000}};
	uint32_t id, len;

	guest_up(&g, &p);
	CHECK_EQ(virtio_pmem_init(&p, &o, &g.fg.env, &e), 0);
	CHECK(!p.limiter.enabled); /* unlimited: no timer */
	bring_up(&g, &p);
	CHECK_EQ(virtio_pmem_set_rate_limiter(&p, &one, &e), 0);
	CHECK(p.limiter.enabled);
	add_flush(&g, BUF_BASE, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x10);
	fake_kick(&p.vdev, 0);
	CHECK(fake_vq_used(&g.q, &id, &len));
	add_flush(&g, BUF_BASE + 0x100, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x110);
	fake_kick(&p.vdev, 0);
	CHECK_EQ(fake_vq_pending(&g.q), 0);
	CHECK_EQ(p.throttled, 1);
	/* The same limit again: a full bucket, so the held batch goes at once. */
	CHECK_EQ(virtio_pmem_set_rate_limiter(&p, &one, &e), 0);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(ram32(&g, BUF_BASE + 0x110), VIRTIO_PMEM_RET_OK);
	add_flush(&g, BUF_BASE + 0x200, VIRTIO_PMEM_REQ_TYPE_FLUSH, BUF_BASE + 0x210);
	fake_kick(&p.vdev, 0);
	CHECK_EQ(fake_vq_pending(&g.q), 0);
	/* Unlimited: served at once, and later ones too. */
	CHECK_EQ(virtio_pmem_set_rate_limiter(&p, NULL, &e), 0);
	CHECK(!p.limiter.enabled);
	CHECK(fake_vq_used(&g.q, &id, &len));
	CHECK_EQ(ram32(&g, BUF_BASE + 0x210), VIRTIO_PMEM_RET_OK);
	CHECK_EQ(p.fsyncs, 3);
	virtio_pmem_destroy(&p);
	fake_guest_fini(&g.fg);
}

/* A bad limiter is refused at init, nothing left behind. */
TEST(bad_limiter_refused)
{
	struct guest g;
	struct virtio_pmem p;
	struct err e = {0};
	struct virtio_pmem_opts o = {.path = make_file("rl-bad", 4096),
	                             .gpa = GPA,
	                             .rate_limiter = {.bandwidth = {1, 0, UINT64_MAX}}};

	guest_up(&g, &p);
	CHECK_EQ(virtio_pmem_init(&p, &o, &g.fg.env, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "virtio-pmem");
	fake_guest_fini(&g.fg);
}

int main(void)
{
	char cmd[64];
	int rc;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(identity_and_config);
	RUN(refusals);
	RUN(mapping_is_the_file);
	RUN(flush_answers_and_coalesces);
	RUN(split_framing_and_indirect);
	RUN(bad_requests_answered_not_fatal);
	RUN(failed_sync_answers_minus_one);
	RUN(read_only_flush_needs_no_sync);
	RUN(bad_chain_needs_reset_then_recovers);
	RUN(save_restore_checks_region);
	RUN(ops_limiter_holds_batches_back);
	RUN(bandwidth_limiter_charges_file_len);
	RUN(limiter_replaced_while_running);
	RUN(bad_limiter_refused);
	rc = test_summary();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return rc;
}
