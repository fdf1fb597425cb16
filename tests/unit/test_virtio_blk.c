/* test_virtio_blk.c - virtio-blk through a fake guest driver: every request type, both engines. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "test.h"
#include "util/log.h"
#include "virtio_fake_driver.h"

#define RAM_SIZE  (8u << 20)
#define IMG_SIZE  (1u << 20) /* 2048 sectors */
#define IMG_SECTS (IMG_SIZE / 512)

#define NENG 2
static const enum blockfile_engine engines[NENG] = {BLOCKFILE_ENGINE_SYNC,
                                                    BLOCKFILE_ENGINE_IO_URING};

struct env {
	struct fake_guest g;
	struct fake_transport t;
	struct fake_vq q;
	struct virtio_blk b;
	char path[64];
	enum blockfile_engine eng;
};

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + 1);
}

static int make_image(char *path, size_t pathlen, uint64_t size)
{
	static uint8_t buf[65536];
	uint64_t off;
	int fd;

	snprintf(path, pathlen, "/tmp/ember-test-vblk-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	for (off = 0; off < size; off += sizeof(buf)) {
		size_t i, n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);

		for (i = 0; i < n; i++)
			buf[i] = pattern(off + i);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			close(fd);
			return -1;
		}
	}
	close(fd);
	return 0;
}

static int file_bytes(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pread(fd, buf, len, (off_t)off);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static bool is_pattern(const uint8_t *p, uint64_t off, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != pattern(off + i))
			return false;
	return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static bool all_same_byte(const uint8_t *p, uint8_t v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

/*
 * Image, guest, device (options from `tmpl`, or defaults; drive "vda", the
 * image's path and `eng` filled in), ring, DRIVER_OK with (offered & want).
 * NULL on failure.
 */
static struct env *setup_opts(enum blockfile_engine eng, const struct virtio_blk_opts *tmpl,
                              uint64_t want, uint64_t img_size)
{
	struct env *x = calloc(1, sizeof(*x));
	struct virtio_blk_opts o = {0};
	struct err e = {0};
	uint8_t st;

	if (!x)
		return NULL;
	if (tmpl)
		o = *tmpl;
	o.drive_id = "vda";
	o.engine = eng;
	x->eng = eng;
	if (make_image(x->path, sizeof(x->path), img_size) < 0 ||
	    fake_guest_init(&x->g, RAM_SIZE) < 0)
		goto fail;
	o.path = x->path;
	if (virtio_blk_init(&x->b, &o, &x->g.env, &e) < 0) {
		printf("  virtio_blk_init: %s\n", e.msg);
		goto fail;
	}
	if (fake_vq_init(&x->q, &x->g, 256) < 0)
		goto fail;
	st = fake_start(&x->b.vdev, &x->t, want, &x->q, 1);
	if (!(st & VIRTIO_STATUS_DRIVER_OK) || (st & VIRTIO_STATUS_NEEDS_RESET)) {
		printf("  bring-up failed: status %#x\n", st);
		goto fail;
	}
	return x;
fail:
	unlink(x->path);
	free(x);
	return NULL;
}

/* Image, guest, device, ring, DRIVER_OK with (offered & want).  NULL on failure. */
static struct env *setup_full(enum blockfile_engine eng, bool ro, uint64_t want, const char *serial,
                              uint64_t img_size)
{
	struct virtio_blk_opts o = {.read_only = ro, .serial = serial};

	return setup_opts(eng, &o, want, img_size);
}

static struct env *setup(enum blockfile_engine eng, bool ro)
{
	return setup_full(eng, ro, ~0ull, NULL, IMG_SIZE);
}

static void teardown(struct env *x)
{
	if (!x)
		return;
	virtio_blk_destroy(&x->b);
	fake_guest_fini(&x->g);
	unlink(x->path);
	free(x);
}

/* Let io_uring requests finish and complete to the guest (the sync engine is done already). */
static void settle(struct env *x)
{
	if (x->eng == BLOCKFILE_ENGINE_IO_URING)
		virtio_blk_drain(&x->b);
}

static uint64_t put_hdr(struct env *x, uint32_t type, uint64_t sector)
{
	uint64_t gpa = fake_guest_alloc(&x->g, 16, 16);
	uint8_t *p = fake_guest_ptr(&x->g, gpa);
	uint32_t t = htole32(type), z = 0;
	uint64_t s = htole64(sector);

	memcpy(p, &t, 4);
	memcpy(p + 4, &z, 4);
	memcpy(p + 8, &s, 8);
	return gpa;
}

struct done {
	uint32_t id, len;
	uint8_t status;
	bool got;
};

/* One used element (after settling); status read from `status_gpa`. */
static struct done take_used(struct env *x, uint64_t status_gpa)
{
	struct done d = {0};

	settle(x);
	d.got = fake_vq_used(&x->q, &d.id, &d.len);
	d.status = status_gpa ? *(uint8_t *)fake_guest_ptr(&x->g, status_gpa) : 0xff;
	return d;
}

/*
 * A standard request: header, `len` data bytes at `data_gpa` split into
 * `nseg` segments (writable for IN/GET_ID), then a status byte.  Kicks,
 * settles and returns the used element.
 */
static struct done req(struct env *x, uint32_t type, uint64_t sector, uint64_t data_gpa,
                       uint32_t len, unsigned int nseg, bool indirect)
{
	struct fake_seg s[VIRTQ_MAX_SEGS];
	bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	uint64_t st = fake_guest_alloc(&x->g, 1, 1);
	unsigned int n = 0, i;
	uint32_t off = 0;
	int head;

	*(uint8_t *)fake_guest_ptr(&x->g, st) = 0xff;
	s[n++] = (struct fake_seg){put_hdr(x, type, sector), 16, false};
	for (i = 0; i < nseg && len; i++) {
		uint32_t part = i + 1 == nseg ? len - off : len / nseg;

		s[n++] = (struct fake_seg){data_gpa + off, part, in};
		off += part;
	}
	s[n++] = (struct fake_seg){st, 1, true};
	head = indirect ? fake_vq_add_indirect(&x->q, s, n) : fake_vq_add(&x->q, s, n);
	CHECK(head >= 0);
	fake_kick(&x->b.vdev, 0);
	return take_used(x, st);
}

static uint64_t feature_bits(struct env *x)
{
	return (uint64_t)virtio_get_features(&x->b.vdev, 1) << 32 |
	       virtio_get_features(&x->b.vdev, 0);
}

TEST(config_space_and_features)
{
	struct env *x = setup(BLOCKFILE_ENGINE_SYNC, false);
	struct virtio_blk_config c;
	uint32_t lo, hi;
	uint64_t f;

	CHECK(x != NULL);
	if (!x)
		return;
	CHECK_EQ(x->b.vdev.type, VIRTIO_ID_BLOCK);
	CHECK_EQ(x->b.vdev.nqueues, 1);
	CHECK_EQ(x->b.vdev.vq[0].max_size, VIRTQ_MAX_SIZE);
	CHECK_EQ(x->b.vdev.config_size, sizeof(c));
	f = feature_bits(x);
	CHECK(f & 1ull << VIRTIO_BLK_F_SEG_MAX);
	CHECK(f & 1ull << VIRTIO_BLK_F_BLK_SIZE);
	CHECK(f & 1ull << VIRTIO_BLK_F_FLUSH);
	CHECK(f & 1ull << VIRTIO_BLK_F_DISCARD);
	CHECK(f & 1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	CHECK(f & 1ull << VIRTIO_F_INDIRECT_DESC);
	CHECK(f & 1ull << VIRTIO_F_EVENT_IDX);
	CHECK(f & 1ull << VIRTIO_F_VERSION_1);
	CHECK(!(f & 1ull << VIRTIO_BLK_F_RO));
	CHECK(!(f & 1ull << VIRTIO_BLK_F_MQ));
	CHECK(!(f & 1ull << VIRTIO_BLK_F_CONFIG_WCE));
	CHECK(!(f & 1ull << VIRTIO_BLK_F_SIZE_MAX));

	fake_config_read(&x->b.vdev, 0, &c, sizeof(c));
	CHECK_EQ(le64toh(c.capacity), IMG_SECTS);
	CHECK_EQ(le32toh(c.seg_max), VIRTQ_MAX_SEGS - 2);
	CHECK_EQ(le32toh(c.blk_size), 512);
	CHECK_EQ(c.writeback, 0);
	CHECK_EQ(c.num_queues, 0);
	CHECK_EQ(le32toh(c.max_discard_sectors), VIRTIO_BLK_MAX_DWZ_SECTORS);
	CHECK_EQ(le32toh(c.max_discard_seg), 1);
	CHECK(le32toh(c.discard_sector_alignment) >= 1);
	CHECK_EQ(le32toh(c.max_write_zeroes_sectors), VIRTIO_BLK_MAX_DWZ_SECTORS);
	CHECK_EQ(le32toh(c.max_write_zeroes_seg), 1);
	CHECK_EQ(c.write_zeroes_may_unmap, 1);
	CHECK_EQ(c.unused0, 0);
	CHECK(all_zero(c.unused1, 3));
	CHECK_EQ(c.max_secure_erase_sectors, 0);
	CHECK_EQ(c.zoned.model, 0);
	/* 32-bit accesses to the 64-bit capacity, as virtio-mmio drivers do. */
	fake_config_read(&x->b.vdev, 0, &lo, 4);
	fake_config_read(&x->b.vdev, 4, &hi, 4);
	CHECK_EQ((uint64_t)hi << 32 | lo, IMG_SECTS);
	/* Config writes change nothing (no CONFIG_WCE). */
	pthread_mutex_lock(&x->b.vdev.lock);
	lo = 0x12345678;
	virtio_config_access(&x->b.vdev, 0, &lo, 4, true);
	virtio_config_access(&x->b.vdev, 32, &lo, 1, true);
	pthread_mutex_unlock(&x->b.vdev.lock);
	fake_config_read(&x->b.vdev, 0, &c, sizeof(c));
	CHECK_EQ(le64toh(c.capacity), IMG_SECTS);
	CHECK_EQ(c.writeback, 0);
	/* FLUSH negotiated: writeback caching; without it, writethrough. */
	CHECK(!x->b.writethrough);
	CHECK(!strcmp(x->b.vdev.name, "virtio-blk vda"));
	teardown(x);
}

/* Writes through several segments, reads back through another split, both engines. */
TEST(read_write_round_trip)
{
	int i;

	for (i = 0; i < NENG; i++) {
		struct env *x = setup(engines[i], false);
		uint64_t wbuf, rbuf;
		uint8_t *w, *r, file[8192];
		struct done d;
		unsigned int k;

		CHECK(x != NULL);
		if (!x)
			continue;
		wbuf = fake_guest_alloc(&x->g, 8192, 512);
		rbuf = fake_guest_alloc(&x->g, 48 * 512, 512);
		w = fake_guest_ptr(&x->g, wbuf);
		r = fake_guest_ptr(&x->g, rbuf);
		for (k = 0; k < 8192; k++)
			w[k] = (uint8_t)(k * 13 + i);

		d = req(x, VIRTIO_BLK_T_OUT, 100, wbuf, 8192, 3, false);
		CHECK(d.got);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK_EQ(d.len, 1); /* only the status byte was written */
		CHECK_EQ(file_bytes(x->path, 100 * 512, file, 8192), 0);
		CHECK(!memcmp(file, w, 8192));
		CHECK_EQ(file_bytes(x->path, 99 * 512, file, 512), 0);
		CHECK(is_pattern(file, 99 * 512, 512));

		memset(r, 0xee, 8192);
		d = req(x, VIRTIO_BLK_T_IN, 100, rbuf, 8192, 5, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK_EQ(d.len, 8192 + 1);
		CHECK(!memcmp(r, w, 8192));

		/* The untouched image, read through an indirect table of 16 segments. */
		d = req(x, VIRTIO_BLK_T_IN, 2000, rbuf, 48 * 512, 16, true);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK_EQ(d.len, 48 * 512 + 1);
		CHECK(is_pattern(r, 2000 * 512, 48 * 512));

		/* The last sector, and a zero-length read at capacity. */
		d = req(x, VIRTIO_BLK_T_IN, IMG_SECTS - 1, rbuf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK(is_pattern(r, IMG_SIZE - 512, 512));
		d = req(x, VIRTIO_BLK_T_IN, IMG_SECTS, rbuf, 0, 0, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK_EQ(d.len, 1);

		d = req(x, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK_EQ(d.len, 1);
		CHECK(x->t.notified[0] >= 5);
		CHECK_EQ(x->b.writes, 1);
		CHECK_EQ(x->b.reads, 4);
		CHECK_EQ(x->b.flushes, 1);
		CHECK_EQ(x->b.bytes_written, 8192);
		CHECK(virtio_live(&x->b.vdev));
		teardown(x);
	}
}

/* The header may be split over descriptors (§2.7.4: no framing assumptions). */
TEST(split_header)
{
	struct env *x = setup(BLOCKFILE_ENGINE_SYNC, false);
	uint64_t hdr, buf, st;
	struct done d;

	CHECK(x != NULL);
	if (!x)
		return;
	hdr = put_hdr(x, VIRTIO_BLK_T_IN, 7);
	buf = fake_guest_alloc(&x->g, 512, 512);
	st = fake_guest_alloc(&x->g, 1, 1);
	CHECK(fake_vq_add(&x->q,
	                  (struct fake_seg[]){{hdr, 3, false},
	                                      {hdr + 3, 13, false},
	                                      {buf, 100, true},
	                                      {buf + 100, 412, true},
	                                      {st, 1, true}},
	                  5) >= 0);
	fake_kick(&x->b.vdev, 0);
	d = take_used(x, st);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(d.len, 513);
	CHECK(is_pattern(fake_guest_ptr(&x->g, buf), 7 * 512, 512));

	/* Data and status in one writable descriptor: the status is its last byte. */
	buf = fake_guest_alloc(&x->g, 513, 512);
	CHECK(fake_vq_add(&x->q,
	                  (struct fake_seg[]){{put_hdr(x, VIRTIO_BLK_T_IN, 8), 16, false},
	                                      {buf, 513, true}},
	                  2) >= 0);
	fake_kick(&x->b.vdev, 0);
	d = take_used(x, buf + 512);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
	CHECK(is_pattern(fake_guest_ptr(&x->g, buf), 8 * 512, 512));
	teardown(x);
}

TEST(get_id)
{
	struct env *x = setup(BLOCKFILE_ENGINE_SYNC, false);
	struct stat st;
	char want[80];
	uint64_t buf;
	uint8_t *p;
	struct done d;

	CHECK(x != NULL);
	if (!x)
		return;
	/* Default: st_dev st_rdev st_ino, cut to 20 bytes, NUL-padded. */
	CHECK_EQ(stat(x->path, &st), 0);
	snprintf(want, sizeof(want), "%llu%llu%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_rdev, (unsigned long long)st.st_ino);
	want[20] = 0;
	buf = fake_guest_alloc(&x->g, 32, 8);
	p = fake_guest_ptr(&x->g, buf);
	memset(p, 0xa5, 32);
	d = req(x, VIRTIO_BLK_T_GET_ID, 0, buf, 20, 1, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(d.len, 21);
	CHECK(!strncmp((char *)p, want, 20));
	CHECK_EQ(p[20], 0xa5);
	teardown(x);

	x = setup_full(BLOCKFILE_ENGINE_IO_URING, false, ~0ull, "ember-serial-42", IMG_SIZE);
	CHECK(x != NULL);
	if (!x)
		return;
	buf = fake_guest_alloc(&x->g, 32, 8);
	p = fake_guest_ptr(&x->g, buf);
	memset(p, 0xa5, 32);
	/* A 32-byte buffer gets exactly 20 bytes. */
	d = req(x, VIRTIO_BLK_T_GET_ID, 0, buf, 32, 2, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(d.len, 21);
	CHECK(!memcmp(p, "ember-serial-42\0\0\0\0\0", 20));
	CHECK_EQ(p[20], 0xa5);
	teardown(x);
}

TEST(bad_options)
{
	struct fake_guest g;
	struct virtio_blk *b = calloc(1, sizeof(*b));
	struct virtio_blk_opts o = {.path = "/nonexistent/disk.img", .drive_id = "rootfs"};
	struct err e = {0};
	char path[64];

	CHECK_EQ(fake_guest_init(&g, 1 << 20), 0);
	CHECK_EQ(virtio_blk_init(b, &o, &g.env, &e), -ENOENT);
	CHECK_STR_CONTAINS(e.msg, "virtio-blk rootfs");
	CHECK_STR_CONTAINS(e.msg, "/nonexistent/disk.img");
	virtio_blk_destroy(b); /* safe after a failed init */
	CHECK_EQ(make_image(path, sizeof(path), 4096), 0);
	o.path = path;
	o.serial = "this-serial-is-too-long";
	err_clear(&e);
	CHECK_EQ(virtio_blk_init(b, &o, &g.env, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "serial");
	o.serial = "bad\nserial";
	err_clear(&e);
	CHECK_EQ(virtio_blk_init(b, &o, &g.env, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "printable");
	o.serial = NULL;
	o.path = NULL;
	err_clear(&e);
	CHECK_EQ(virtio_blk_init(b, &o, &g.env, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "no image path");
	o.path = path;
	o.engine = BLOCKFILE_ENGINE_IO_URING;
	g.env.loop = NULL;
	err_clear(&e);
	CHECK_EQ(virtio_blk_init(b, &o, &g.env, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "event loop");
	/* A limiter needs the loop for its timer, and valid buckets. */
	o.engine = BLOCKFILE_ENGINE_SYNC;
	o.rate_limiter.ops = (struct token_bucket_cfg){.size = 10, .refill_time_ms = 100};
	err_clear(&e);
	CHECK_EQ(virtio_blk_init(b, &o, &g.env, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "virtio-blk rootfs");
	CHECK_STR_CONTAINS(e.msg, "event loop");
	virtio_blk_destroy(b);
	g.env.loop = &g.loop;
	o.rate_limiter.ops.refill_time_ms = UINT64_MAX;
	err_clear(&e);
	CHECK_EQ(virtio_blk_init(b, &o, &g.env, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "refill_time");
	unlink(path);
	free(b);
	fake_guest_fini(&g);
}

TEST(read_only_drive)
{
	int i;

	for (i = 0; i < NENG; i++) {
		struct env *x = setup(engines[i], true);
		uint64_t buf, seg;
		uint8_t file[512], *p;
		struct done d;

		CHECK(x != NULL);
		if (!x)
			continue;
		CHECK(feature_bits(x) & 1ull << VIRTIO_BLK_F_RO);
		CHECK(!(feature_bits(x) & 1ull << VIRTIO_BLK_F_DISCARD));
		CHECK(!(feature_bits(x) & 1ull << VIRTIO_BLK_F_WRITE_ZEROES));
		buf = fake_guest_alloc(&x->g, 512, 512);
		p = fake_guest_ptr(&x->g, buf);
		memset(p, 0, 512);
		/* §5.2.6.2: IOERR, and nothing written. */
		d = req(x, VIRTIO_BLK_T_OUT, 0, buf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		CHECK_EQ(d.len, 1);
		CHECK_EQ(file_bytes(x->path, 0, file, 512), 0);
		CHECK(is_pattern(file, 0, 512));
		d = req(x, VIRTIO_BLK_T_IN, 1, buf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK(is_pattern(p, 512, 512));
		/* Not offered, so not negotiated: UNSUPP. */
		seg = fake_guest_alloc(&x->g, 16, 8);
		memset(fake_guest_ptr(&x->g, seg), 0, 16);
		*(uint32_t *)fake_guest_ptr(&x->g, seg + 8) = htole32(1);
		d = req(x, VIRTIO_BLK_T_DISCARD, 0, seg, 16, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_UNSUPP);
		d = req(x, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK(virtio_live(&x->b.vdev));
		teardown(x);
	}
}

TEST(out_of_range)
{
	int i;

	for (i = 0; i < NENG; i++) {
		struct env *x = setup(engines[i], false);
		uint64_t buf;
		struct stat st;
		struct done d;

		CHECK(x != NULL);
		if (!x)
			continue;
		buf = fake_guest_alloc(&x->g, 4096, 512);
		d = req(x, VIRTIO_BLK_T_IN, IMG_SECTS, buf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		CHECK_EQ(d.len, 1);
		d = req(x, VIRTIO_BLK_T_IN, IMG_SECTS - 1, buf, 1024, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		d = req(x, VIRTIO_BLK_T_OUT, IMG_SECTS - 2, buf, 2048, 2, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		d = req(x, VIRTIO_BLK_T_IN, UINT64_MAX, buf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		d = req(x, VIRTIO_BLK_T_OUT, UINT64_MAX / 512 + 1, buf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		/* Not whole sectors. */
		d = req(x, VIRTIO_BLK_T_IN, 0, buf, 500, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		d = req(x, VIRTIO_BLK_T_OUT, 0, buf, 513, 2, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		CHECK_EQ(stat(x->path, &st), 0);
		CHECK_EQ(st.st_size, IMG_SIZE); /* nothing grew the file */
		CHECK_EQ(x->b.errors, 7);
		CHECK(virtio_live(&x->b.vdev));
		teardown(x);
	}
}

/* Requests that make no sense fail alone; the device stays up. */
TEST(malformed_requests)
{
	struct env *x = setup(BLOCKFILE_ENGINE_SYNC, false);
	uint64_t buf, st, hdr;
	uint8_t file[512];
	struct done d;

	CHECK(x != NULL);
	if (!x)
		return;
	buf = fake_guest_alloc(&x->g, 1024, 512);
	st = fake_guest_alloc(&x->g, 1, 1);

	/* No header at all: only a status byte. */
	*(uint8_t *)fake_guest_ptr(&x->g, st) = 0xff;
	CHECK(fake_vq_add(&x->q, (struct fake_seg[]){{st, 1, true}}, 1) >= 0);
	fake_kick(&x->b.vdev, 0);
	d = take_used(x, st);
	CHECK(d.got);
	CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(d.len, 1);

	/* A 10-byte header. */
	hdr = put_hdr(x, VIRTIO_BLK_T_IN, 0);
	CHECK(fake_vq_add(&x->q, (struct fake_seg[]){{hdr, 10, false}, {st, 1, true}}, 2) >= 0);
	fake_kick(&x->b.vdev, 0);
	d = take_used(x, st);
	CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);

	/* No writable byte: nowhere for a status; returned with length 0. */
	hdr = put_hdr(x, VIRTIO_BLK_T_OUT, 0);
	CHECK(fake_vq_add(&x->q, (struct fake_seg[]){{hdr, 16, false}, {buf, 512, false}}, 2) >= 0);
	fake_kick(&x->b.vdev, 0);
	d = take_used(x, 0);
	CHECK(d.got);
	CHECK_EQ(d.len, 0);
	CHECK_EQ(file_bytes(x->path, 0, file, 512), 0);
	CHECK(is_pattern(file, 0, 512)); /* not written */

	/* Read with readable data; write with writable data (wrong directions). */
	hdr = put_hdr(x, VIRTIO_BLK_T_IN, 0);
	CHECK(fake_vq_add(&x->q,
	                  (struct fake_seg[]){{hdr, 16, false}, {buf, 512, false}, {st, 1, true}},
	                  3) >= 0);
	fake_kick(&x->b.vdev, 0);
	d = take_used(x, st);
	CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(d.len, 1);
	hdr = put_hdr(x, VIRTIO_BLK_T_OUT, 0);
	CHECK(fake_vq_add(&x->q,
	                  (struct fake_seg[]){{hdr, 16, false}, {buf, 512, true}, {st, 1, true}},
	                  3) >= 0);
	fake_kick(&x->b.vdev, 0);
	d = take_used(x, st);
	CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
	CHECK_EQ(file_bytes(x->path, 0, file, 512), 0);
	CHECK(is_pattern(file, 0, 512));
	/* GET_ID with readable data. */
	hdr = put_hdr(x, VIRTIO_BLK_T_GET_ID, 0);
	CHECK(fake_vq_add(&x->q,
	                  (struct fake_seg[]){{hdr, 16, false}, {buf, 20, false}, {st, 1, true}},
	                  3) >= 0);
	fake_kick(&x->b.vdev, 0);
	d = take_used(x, st);
	CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);

	/* Unsupported types. */
	d = req(x, VIRTIO_BLK_T_GET_LIFETIME, 0, buf, 8, 1, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(d.len, 1);
	d = req(x, VIRTIO_BLK_T_SECURE_ERASE, 0, 0, 0, 0, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_UNSUPP);
	d = req(x, 0x80000001u, 0, 0, 0, 0, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_UNSUPP);
	d = req(x, 16 /* ZONE_REPORT */, 0, buf, 512, 1, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_UNSUPP);

	/* FLUSH with a sector and data: both ignored (§5.2.6.1 SHOULD NOT). */
	d = req(x, VIRTIO_BLK_T_FLUSH, 1234, buf, 512, 1, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK);

	CHECK(virtio_live(&x->b.vdev));
	CHECK_EQ(x->t.config_changed, 0);
	teardown(x);
}

/* A bad descriptor chain (buffer outside RAM) is the driver's bug: NEEDS_RESET. */
TEST(bad_chain_needs_reset)
{
	struct env *x = setup(BLOCKFILE_ENGINE_SYNC, false);
	uint64_t buf;
	struct done d;

	CHECK(x != NULL);
	if (!x)
		return;
	CHECK(fake_vq_add(&x->q,
	                  (struct fake_seg[]){{put_hdr(x, VIRTIO_BLK_T_IN, 0), 16, false},
	                                      {RAM_SIZE - 256, 512, true},
	                                      {fake_guest_alloc(&x->g, 1, 1), 1, true}},
	                  3) >= 0);
	fake_kick(&x->b.vdev, 0);
	CHECK(!virtio_live(&x->b.vdev));
	CHECK(x->b.vdev.status & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(x->t.config_changed, 1);
	CHECK_EQ(fake_vq_pending(&x->q), 0);
	/* Further kicks do nothing; a reset and a new bring-up work again. */
	fake_kick(&x->b.vdev, 0);
	CHECK_EQ(fake_vq_pending(&x->q), 0);
	fake_set_status(&x->b.vdev, 0);
	CHECK_EQ(fake_vq_init(&x->q, &x->g, 256), 0);
	CHECK(fake_start(&x->b.vdev, &x->t, ~0ull, &x->q, 1) & VIRTIO_STATUS_DRIVER_OK);
	buf = fake_guest_alloc(&x->g, 512, 512);
	d = req(x, VIRTIO_BLK_T_IN, 3, buf, 512, 1, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
	CHECK(is_pattern(fake_guest_ptr(&x->g, buf), 3 * 512, 512));
	teardown(x);
}

static uint64_t put_dwz(struct env *x, uint64_t sector, uint32_t num, uint32_t flags)
{
	uint64_t gpa = fake_guest_alloc(&x->g, 16, 8);
	uint8_t *p = fake_guest_ptr(&x->g, gpa);
	uint64_t s = htole64(sector);
	uint32_t n = htole32(num), f = htole32(flags);

	memcpy(p, &s, 8);
	memcpy(p + 8, &n, 4);
	memcpy(p + 12, &f, 4);
	return gpa;
}

TEST(discard_and_write_zeroes)
{
	int i;

	for (i = 0; i < NENG; i++) {
		struct env *x = setup(engines[i], false);
		static uint8_t file[65536];
		uint64_t two;
		struct stat st;
		struct done d;

		CHECK(x != NULL);
		if (!x)
			continue;
		/* Discard 64 KiB at sector 256: reads back as zeroes, neighbours intact. */
		d = req(x, VIRTIO_BLK_T_DISCARD, 0, put_dwz(x, 256, 128, 0), 16, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK_EQ(d.len, 1);
		CHECK_EQ(file_bytes(x->path, 256 * 512, file, 65536), 0);
		CHECK(all_zero(file, 65536));
		CHECK_EQ(file_bytes(x->path, 255 * 512, file, 512), 0);
		CHECK(is_pattern(file, 255 * 512, 512));
		CHECK_EQ(file_bytes(x->path, 384 * 512, file, 512), 0);
		CHECK(is_pattern(file, 384 * 512, 512));
		/* Write zeroes, with and without UNMAP. */
		d = req(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, put_dwz(x, 1001, 3, 0), 16, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK_EQ(file_bytes(x->path, 1000 * 512, file, 5 * 512), 0);
		CHECK(is_pattern(file, 1000 * 512, 512));
		CHECK(all_zero(file + 512, 3 * 512));
		CHECK(is_pattern(file + 4 * 512, 1004 * 512, 512));
		d = req(x, VIRTIO_BLK_T_WRITE_ZEROES, 0,
		        put_dwz(x, 1500, 16, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP), 16, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK_EQ(file_bytes(x->path, 1500 * 512, file, 16 * 512), 0);
		CHECK(all_zero(file, 16 * 512));
		/* Zero sectors: nothing to do. */
		d = req(x, VIRTIO_BLK_T_DISCARD, 0, put_dwz(x, 0, 0, 0), 16, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);

		/* §5.2.6.2: UNMAP on a discard, or unknown flags: UNSUPP. */
		d = req(x, VIRTIO_BLK_T_DISCARD, 0, put_dwz(x, 0, 8, 1), 16, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_UNSUPP);
		d = req(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, put_dwz(x, 0, 8, 2), 16, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_UNSUPP);
		/* Two segments (max_discard_seg is 1): UNSUPP. */
		two = put_dwz(x, 0, 8, 0);
		CHECK_EQ(put_dwz(x, 16, 8, 0), two + 16);
		d = req(x, VIRTIO_BLK_T_DISCARD, 0, two, 32, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_UNSUPP);
		/* Not a multiple of 16, past capacity, over the limit: IOERR. */
		d = req(x, VIRTIO_BLK_T_DISCARD, 0, put_dwz(x, 0, 8, 0), 15, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		d = req(x, VIRTIO_BLK_T_DISCARD, 0, 0, 0, 0, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		d = req(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, put_dwz(x, IMG_SECTS - 1, 2, 0), 16, 1,
		        false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		d = req(x, VIRTIO_BLK_T_DISCARD, 0, put_dwz(x, UINT64_MAX - 1, 8, 0), 16, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		d = req(x, VIRTIO_BLK_T_DISCARD, 0,
		        put_dwz(x, 0, VIRTIO_BLK_MAX_DWZ_SECTORS + 1, 0), 16, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		CHECK_EQ(stat(x->path, &st), 0);
		CHECK_EQ(st.st_size, IMG_SIZE);
		CHECK_EQ(x->b.discards, 2);
		CHECK_EQ(x->b.write_zeroes, 2);
		teardown(x);
	}
}

/* A driver without FLUSH gets writethrough; without DISCARD, discard is UNSUPP. */
TEST(negotiation_changes_behaviour)
{
	struct env *x = setup_full(BLOCKFILE_ENGINE_IO_URING, false,
	                           ~(1ull << VIRTIO_BLK_F_FLUSH | 1ull << VIRTIO_BLK_F_DISCARD |
	                             1ull << VIRTIO_F_EVENT_IDX | 1ull << VIRTIO_F_INDIRECT_DESC),
	                           NULL, IMG_SIZE);
	uint64_t buf;
	uint8_t file[1024];
	struct done d;

	CHECK(x != NULL);
	if (!x)
		return;
	CHECK(x->b.writethrough);
	buf = fake_guest_alloc(&x->g, 1024, 512);
	memset(fake_guest_ptr(&x->g, buf), 0x3c, 1024);
	d = req(x, VIRTIO_BLK_T_OUT, 10, buf, 1024, 2, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(file_bytes(x->path, 10 * 512, file, 1024), 0);
	CHECK(!memcmp(file, fake_guest_ptr(&x->g, buf), 1024));
	d = req(x, VIRTIO_BLK_T_DISCARD, 0, put_dwz(x, 0, 8, 0), 16, 1, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_UNSUPP);
	d = req(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, put_dwz(x, 10, 2, 0), 16, 1, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK); /* still negotiated */
	CHECK_EQ(file_bytes(x->path, 10 * 512, file, 1024), 0);
	CHECK(all_zero(file, 1024));
	teardown(x);
}

/* Many requests in flight on io_uring, completed through the evloop (the real path). */
TEST(uring_many_in_flight_via_evloop)
{
	enum { N = 200 };
	struct env *x = setup(BLOCKFILE_ENGINE_IO_URING, false);
	uint64_t buf[N], st[N];
	unsigned int k, seen = 0, bad = 0;
	uint32_t id, len;

	CHECK(x != NULL);
	if (!x)
		return;
	for (k = 0; k < N; k++) {
		buf[k] = fake_guest_alloc(&x->g, 4096, 512);
		st[k] = fake_guest_alloc(&x->g, 1, 1);
		*(uint8_t *)fake_guest_ptr(&x->g, st[k]) = 0xff;
		CHECK(fake_vq_add_indirect(
		          &x->q,
		          (struct fake_seg[]){{put_hdr(x, VIRTIO_BLK_T_IN, 8ull * k), 16, false},
		                              {buf[k], 4096, true},
		                              {st[k], 1, true}},
		          3) >= 0);
	}
	fake_kick(&x->b.vdev, 0);
	x->t.stop_on_notify = &x->g.loop;
	while (seen < N) {
		x->g.loop.stop = false;
		CHECK_EQ(evloop_run(&x->g.loop), 0);
		while (fake_vq_used(&x->q, &id, &len)) {
			seen++;
			bad += len != 4097;
		}
	}
	CHECK_EQ(bad, 0);
	for (k = 0; k < N; k++) {
		bad += *(uint8_t *)fake_guest_ptr(&x->g, st[k]) != VIRTIO_BLK_S_OK;
		bad += !is_pattern(fake_guest_ptr(&x->g, buf[k]), 4096ull * k, 4096);
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(x->b.nfree, VIRTQ_MAX_SIZE);
	teardown(x);
}

/* A reset with I/O in flight waits for it and completes nothing to the guest. */
TEST(reset_with_io_in_flight)
{
	enum { N = 64 };
	struct env *x = setup(BLOCKFILE_ENGINE_IO_URING, false);
	uint64_t buf, st[N];
	unsigned int k, untouched = 0;
	struct done d;

	CHECK(x != NULL);
	if (!x)
		return;
	buf = fake_guest_alloc(&x->g, 4096, 512);
	for (k = 0; k < N; k++) {
		st[k] = fake_guest_alloc(&x->g, 1, 1);
		*(uint8_t *)fake_guest_ptr(&x->g, st[k]) = 0xff;
		CHECK(fake_vq_add(
		          &x->q,
		          (struct fake_seg[]){{put_hdr(x, VIRTIO_BLK_T_IN, 8ull * k), 16, false},
		                              {buf, 4096, true},
		                              {st[k], 1, true}},
		          3) >= 0);
	}
	fake_kick(&x->b.vdev, 0);
	CHECK_EQ(x->b.nfree, VIRTQ_MAX_SIZE - N); /* all handed to io_uring, none reaped */
	CHECK_EQ(x->b.file->inflight, N);
	fake_set_status(&x->b.vdev, 0);
	CHECK_EQ(x->b.file->inflight, 0);
	CHECK_EQ(x->b.nfree, VIRTQ_MAX_SIZE);
	CHECK_EQ(fake_vq_pending(&x->q), 0); /* used->idx untouched */
	for (k = 0; k < N; k++)
		untouched += *(uint8_t *)fake_guest_ptr(&x->g, st[k]) == 0xff;
	CHECK_EQ(untouched, N);
	/* A later evloop wake-up finds nothing to complete. */
	virtio_blk_drain(&x->b);
	CHECK_EQ(fake_vq_pending(&x->q), 0);
	/* The device comes back after a new bring-up. */
	CHECK_EQ(fake_vq_init(&x->q, &x->g, 128), 0);
	CHECK(fake_start(&x->b.vdev, &x->t, ~0ull, &x->q, 1) & VIRTIO_STATUS_DRIVER_OK);
	d = req(x, VIRTIO_BLK_T_IN, 5, buf, 512, 1, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
	CHECK(is_pattern(fake_guest_ptr(&x->g, buf), 5 * 512, 512));
	teardown(x);
}

/*
 * Hot unplug's guarantee (docs/hotplug.md): virtio_blk_drain() completes every
 * request in flight to the guest -- a write and the flush after it -- before
 * the backend may close; the write is in the image and the flush ran.
 */
TEST(drain_completes_write_and_flush)
{
	struct env *x = setup(BLOCKFILE_ENGINE_IO_URING, false);
	uint64_t buf, st[2];
	uint32_t id, len;
	unsigned int used = 0, k;
	uint8_t sector[512];
	FILE *f;

	CHECK(x != NULL);
	if (!x)
		return;
	buf = fake_guest_alloc(&x->g, 512, 512);
	memset(fake_guest_ptr(&x->g, buf), 0x5a, 512);
	for (k = 0; k < 2; k++) {
		st[k] = fake_guest_alloc(&x->g, 1, 1);
		*(uint8_t *)fake_guest_ptr(&x->g, st[k]) = 0xff;
	}
	CHECK(fake_vq_add(&x->q,
	                  (struct fake_seg[]){{put_hdr(x, VIRTIO_BLK_T_OUT, 9), 16, false},
	                                      {buf, 512, false},
	                                      {st[0], 1, true}},
	                  3) >= 0);
	CHECK(fake_vq_add(&x->q,
	                  (struct fake_seg[]){{put_hdr(x, VIRTIO_BLK_T_FLUSH, 0), 16, false},
	                                      {st[1], 1, true}},
	                  2) >= 0);
	fake_kick(&x->b.vdev, 0);
	virtio_blk_drain(&x->b); /* what hot unplug does before tearing the device down */
	CHECK_EQ(x->b.file->inflight, 0);
	while (fake_vq_used(&x->q, &id, &len))
		used++;
	CHECK_EQ(used, 2);
	CHECK_EQ(*(uint8_t *)fake_guest_ptr(&x->g, st[0]), VIRTIO_BLK_S_OK);
	CHECK_EQ(*(uint8_t *)fake_guest_ptr(&x->g, st[1]), VIRTIO_BLK_S_OK);
	CHECK_EQ(x->b.flushes, 1);
	f = fopen(x->path, "rb");
	CHECK(f && fseek(f, 9 * 512, SEEK_SET) == 0 && fread(sector, 1, 512, f) == 512);
	if (f)
		fclose(f);
	for (k = 0; k < 512 && sector[k] == 0x5a; k++)
		;
	CHECK_EQ(k, 512);
	teardown(x);
}

/*
 * A driver that re-publishes one head runs the device out of request slots:
 * it stops popping and resumes from the completion path.
 */
TEST(slots_exhausted_resume)
{
	enum { N = VIRTQ_MAX_SIZE + 10 };
	struct env *x = setup(BLOCKFILE_ENGINE_IO_URING, false);
	uint64_t buf, st;
	unsigned int k, seen = 0;
	int head;

	CHECK(x != NULL);
	if (!x)
		return;
	buf = fake_guest_alloc(&x->g, 512, 512);
	st = fake_guest_alloc(&x->g, 1, 1);
	head = fake_vq_chain(&x->q,
	                     (struct fake_seg[]){{put_hdr(x, VIRTIO_BLK_T_IN, 1), 16, false},
	                                         {buf, 512, true},
	                                         {st, 1, true}},
	                     3);
	CHECK(head >= 0);
	for (k = 0; k < VIRTQ_MAX_SIZE; k++)
		fake_vq_publish(&x->q, (uint16_t)head);
	fake_kick(&x->b.vdev, 0);
	CHECK_EQ(x->b.nfree, 0);
	for (k = 0; k < 10; k++)
		fake_vq_publish(&x->q, (uint16_t)head);
	fake_kick(&x->b.vdev, 0);
	CHECK(x->b.stalled);
	CHECK_EQ(x->b.file->inflight, VIRTQ_MAX_SIZE);
	/* Completions arrive on the evloop; they free slots and the last 10 go. */
	x->t.stop_on_notify = &x->g.loop;
	while (seen < N) {
		/* used_event = what we have seen: interrupt us for the next completion. */
		fake_w16(&x->g, x->q.avail + 4 + 2ull * x->q.size, (uint16_t)seen);
		x->g.loop.stop = false;
		CHECK_EQ(evloop_run(&x->g.loop), 0);
		seen = (uint16_t)fake_r16(&x->g, x->q.used + 2);
	}
	CHECK_EQ(seen, N);
	CHECK(!x->b.stalled);
	CHECK_EQ(x->b.nfree, VIRTQ_MAX_SIZE);
	CHECK(virtio_live(&x->b.vdev));
	teardown(x);
}

TEST(resize)
{
	int i;

	for (i = 0; i < NENG; i++) {
		struct env *x = setup(engines[i], false);
		struct virtio_blk_config c;
		struct err e = {0};
		uint8_t gen;
		uint64_t buf;
		struct done d;

		CHECK(x != NULL);
		if (!x)
			continue;
		gen = x->b.vdev.config_generation;
		buf = fake_guest_alloc(&x->g, 512, 512);
		/* Unchanged: no interrupt. */
		CHECK_EQ(virtio_blk_resize(&x->b, &e), 0);
		CHECK_EQ(x->t.config_changed, 0);
		/* Grown to 3 MiB + 100 bytes: 6144 sectors, the tail hidden. */
		CHECK_EQ(truncate(x->path, (3 << 20) + 100), 0);
		CHECK_EQ(virtio_blk_resize(&x->b, &e), 0);
		CHECK_EQ(x->t.config_changed, 1);
		CHECK(x->b.vdev.config_generation != gen);
		fake_config_read(&x->b.vdev, 0, &c, sizeof(c));
		CHECK_EQ(le64toh(c.capacity), 6144);
		CHECK_EQ(virtio_blk_capacity(&x->b), 6144);
		/* The new sectors are usable (zeroes), the old bound is gone. */
		d = req(x, VIRTIO_BLK_T_IN, 6143, buf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK(all_zero(fake_guest_ptr(&x->g, buf), 512));
		/* Shrunk: requests past the new end fail. */
		CHECK_EQ(truncate(x->path, 4096), 0);
		CHECK_EQ(virtio_blk_resize(&x->b, &e), 0);
		CHECK_EQ(x->t.config_changed, 2);
		CHECK_EQ(virtio_blk_capacity(&x->b), 8);
		d = req(x, VIRTIO_BLK_T_IN, 8, buf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_IOERR);
		/* Gone: an error with the drive's name, capacity kept. */
		CHECK_EQ(unlink(x->path), 0);
		CHECK_EQ(virtio_blk_resize(&x->b, &e), 0); /* the open fd still has the file */
		teardown(x);
	}
}

/* Before DRIVER_OK a resize only bumps the generation (no interrupt, §2.1.2). */
TEST(resize_before_driver_ok)
{
	struct fake_guest g;
	struct fake_transport t;
	struct virtio_blk *b = calloc(1, sizeof(*b));
	struct virtio_blk_opts o = {0};
	struct err e = {0};
	char path[64];

	CHECK_EQ(fake_guest_init(&g, 1 << 20), 0);
	CHECK_EQ(make_image(path, sizeof(path), 4096), 0);
	o.path = path;
	CHECK_EQ(virtio_blk_init(b, &o, &g.env, &e), 0);
	CHECK(!strcmp(b->vdev.name, "virtio-blk blk"));
	fake_transport_attach(&t, &b->vdev);
	CHECK_EQ(truncate(path, 8192), 0);
	CHECK_EQ(virtio_blk_resize(b, &e), 0);
	CHECK_EQ(virtio_blk_capacity(b), 16);
	CHECK_EQ(t.config_changed, 0);
	virtio_blk_destroy(b);
	free(b);
	unlink(path);
	fake_guest_fini(&g);
}

/* ---- rate limiting, cache type, image replacement ---- */

struct fake_clock {
	uint64_t now;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

#define MS 1000000ull

/* The limiter's timer fired: run its callback as the VMM loop would. */
static void fire(struct env *x)
{
	struct evloop_watch *w = &x->b.limiter.w[x->b.limiter.cur];

	w->cb(w, EPOLLIN);
}

/* Make a read of `len` bytes at `sector` available (no kick).  Its head; *st = status GPA. */
static int add_read(struct env *x, uint64_t sector, uint64_t buf, uint32_t len, uint64_t *st)
{
	*st = fake_guest_alloc(&x->g, 1, 1);
	*(uint8_t *)fake_guest_ptr(&x->g, *st) = 0xff;
	return fake_vq_add(&x->q,
	                   (struct fake_seg[]){{put_hdr(x, VIRTIO_BLK_T_IN, sector), 16, false},
	                                       {buf, len, true},
	                                       {*st, 1, true}},
	                   3);
}

/* A flush, available, not kicked. */
static int add_flush(struct env *x, uint64_t *st)
{
	*st = fake_guest_alloc(&x->g, 1, 1);
	*(uint8_t *)fake_guest_ptr(&x->g, *st) = 0xff;
	return fake_vq_add(
	    &x->q,
	    (struct fake_seg[]){{put_hdr(x, VIRTIO_BLK_T_FLUSH, 0), 16, false}, {*st, 1, true}}, 2);
}

/* The next used element must be `head`, complete (status OK, `len` bytes). */
static void expect_used(struct env *x, int head, uint32_t len, uint64_t st)
{
	uint32_t id = 0, l = 0;

	CHECK(fake_vq_used(&x->q, &id, &l));
	CHECK_EQ(id, head);
	CHECK_EQ(l, len);
	CHECK_EQ(*(uint8_t *)fake_guest_ptr(&x->g, st), VIRTIO_BLK_S_OK);
}

/*
 * An ops limit of 2 per second: the third read waits in the ring (given back,
 * not lost), kicks change nothing, the timer lets one more through per half
 * second, in order, with the right data; both engines.
 */
TEST(rate_limit_ops_throttles_in_order)
{
	int i;

	for (i = 0; i < NENG; i++) {
		enum { N = 6 };
		struct fake_clock fc = {.now = 1000 * MS};
		struct rl_clock clk = {fake_now, &fc};
		struct virtio_blk_opts o = {
		    .rate_limiter = {.ops = {.size = 2, .refill_time_ms = 1000}}, .clock = &clk};
		struct env *x = setup_opts(engines[i], &o, ~0ull, IMG_SIZE);
		uint64_t buf[N], st[N];
		int head[N], k;

		CHECK(x != NULL);
		if (!x)
			continue;
		CHECK(x->b.limiter.watched);
		CHECK(evloop_add(&x->g.loop, &x->b.limiter.w[x->b.limiter.cur], EPOLLIN) < 0);
		for (k = 0; k < N; k++) {
			buf[k] = fake_guest_alloc(&x->g, 1024, 512);
			head[k] = add_read(x, 10ull * k, buf[k], 1024, &st[k]);
		}
		fake_kick(&x->b.vdev, 0);
		settle(x);
		CHECK_EQ(fake_vq_pending(&x->q), 2);
		CHECK(rate_limiter_blocked(&x->b.limiter.rl));
		CHECK_EQ(x->b.vdev.vq[0].last_avail, 2); /* the third was given back */
		CHECK_EQ(x->b.rate_limiter_throttled_events, 1);
		CHECK(x->b.vdev.vq[0].kicks_off);
		/* A kick while throttled is only counted. */
		fake_kick(&x->b.vdev, 0);
		settle(x);
		CHECK_EQ(fake_vq_pending(&x->q), 2);
		CHECK_EQ(x->b.rate_limiter_throttled_events, 2);
		/* The timer fires early (the clock has not moved): still refused, re-armed. */
		fire(x);
		settle(x);
		CHECK_EQ(fake_vq_pending(&x->q), 2);
		CHECK(rate_limiter_blocked(&x->b.limiter.rl));
		/* Half a second: one op. */
		fc.now += 500 * MS;
		fire(x);
		settle(x);
		CHECK_EQ(fake_vq_pending(&x->q), 3);
		/* A second and a half more: the bucket holds at most 2. */
		fc.now += 1500 * MS;
		fire(x);
		settle(x);
		CHECK_EQ(fake_vq_pending(&x->q), 5);
		fc.now += 500 * MS;
		fire(x);
		settle(x);
		CHECK_EQ(fake_vq_pending(&x->q), N);
		CHECK(!x->b.vdev.vq[0].kicks_off); /* the ring ran dry: kicks are back on */
		for (k = 0; k < N; k++) {
			expect_used(x, head[k], 1025, st[k]);
			CHECK(is_pattern(fake_guest_ptr(&x->g, buf[k]), 10ull * 512 * k, 1024));
		}
		CHECK_EQ(x->b.reads, N);
		CHECK_EQ(x->b.nfree, VIRTQ_MAX_SIZE);
		CHECK(virtio_live(&x->b.vdev));
		teardown(x);
	}
}

/*
 * A bandwidth limit of 4 KiB per 100 ms: reads are charged their bytes, a
 * flush only an op, and the flush behind a throttled read waits its turn.
 */
TEST(rate_limit_bandwidth_throttles_then_resumes)
{
	struct fake_clock fc = {.now = 5 * MS};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_blk_opts o = {
	    .rate_limiter = {.bandwidth = {.size = 4096, .refill_time_ms = 100}}, .clock = &clk};
	struct env *x = setup_opts(BLOCKFILE_ENGINE_SYNC, &o, ~0ull, IMG_SIZE);
	uint64_t b1, b2, s1, s2, s3, s4;
	int h1, h2, h3, h4;

	CHECK(x != NULL);
	if (!x)
		return;
	b1 = fake_guest_alloc(&x->g, 4096, 512);
	b2 = fake_guest_alloc(&x->g, 4096, 512);
	h1 = add_read(x, 0, b1, 4096, &s1);
	h2 = add_read(x, 8, b2, 4096, &s2);
	h3 = add_flush(x, &s3);
	fake_kick(&x->b.vdev, 0);
	CHECK_EQ(fake_vq_pending(&x->q), 1); /* the bucket is empty: the second read waits */
	CHECK_EQ(*(uint8_t *)fake_guest_ptr(&x->g, s3), 0xff); /* and the flush behind it */
	fc.now += 50 * MS;                                     /* 2 KiB: not enough */
	fire(x);
	CHECK_EQ(fake_vq_pending(&x->q), 1);
	fc.now += 50 * MS;
	fire(x);
	CHECK_EQ(fake_vq_pending(&x->q), 3); /* the read, then the flush (no bytes) */
	expect_used(x, h1, 4097, s1);
	expect_used(x, h2, 4097, s2);
	expect_used(x, h3, 1, s3);
	CHECK(is_pattern(fake_guest_ptr(&x->g, b2), 8 * 512, 4096));
	/* With the bucket empty, a flush still goes: it costs no bytes. */
	h4 = add_flush(x, &s4);
	fake_kick(&x->b.vdev, 0);
	expect_used(x, h4, 1, s4);
	CHECK_EQ(x->b.flushes, 2);
	CHECK_EQ(x->b.bytes_read, 8192);
	teardown(x);
}

/* A reset while throttled: the timer afterwards touches nothing; the limiter keeps its state. */
TEST(rate_limit_reset_while_throttled)
{
	struct fake_clock fc = {.now = 0};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_blk_opts o = {.rate_limiter = {.ops = {.size = 1, .refill_time_ms = 1000}},
	                            .clock = &clk};
	struct env *x = setup_opts(BLOCKFILE_ENGINE_SYNC, &o, ~0ull, IMG_SIZE);
	uint64_t buf, st;
	int head;

	CHECK(x != NULL);
	if (!x)
		return;
	buf = fake_guest_alloc(&x->g, 512, 512);
	add_read(x, 1, buf, 512, &st);
	add_read(x, 2, buf, 512, &st);
	fake_kick(&x->b.vdev, 0);
	CHECK_EQ(fake_vq_pending(&x->q), 1);
	fake_set_status(&x->b.vdev, 0);
	fc.now += 5000 * MS;
	fire(x);
	CHECK_EQ(fake_vq_pending(&x->q), 1);
	CHECK_EQ(x->b.reads, 1);
	/* A new bring-up is served (the bucket refilled with time, not with the reset). */
	CHECK_EQ(fake_vq_init(&x->q, &x->g, 64), 0);
	CHECK(fake_start(&x->b.vdev, &x->t, ~0ull, &x->q, 1) & VIRTIO_STATUS_DRIVER_OK);
	head = add_read(x, 3, buf, 512, &st);
	fake_kick(&x->b.vdev, 0);
	expect_used(x, head, 513, st);
	CHECK(is_pattern(fake_guest_ptr(&x->g, buf), 3 * 512, 512));
	teardown(x);
}

/* PATCH-style changes: unlimited -> limited -> unlimited (resumes) -> limited; errors keep it. */
TEST(set_rate_limiter_at_run_time)
{
	struct fake_clock fc = {.now = 77 * MS};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_blk_opts o = {.clock = &clk};
	struct rate_limiter_cfg one_per_s = {.ops = {.size = 1, .refill_time_ms = 1000}};
	struct rate_limiter_cfg bad = {.bandwidth = {1, 0, UINT64_MAX}};
	struct env *x = setup_opts(BLOCKFILE_ENGINE_SYNC, &o, ~0ull, IMG_SIZE);
	struct evloop_watch *old_w;
	struct err e = {0};
	uint64_t buf, st[4];
	int head[4], k;

	CHECK(x != NULL);
	if (!x)
		return;
	/* Unlimited: no timer, no watch. */
	CHECK(!x->b.limiter.enabled);
	CHECK(!x->b.limiter.watched);
	CHECK_EQ(rate_limiter_fd(&x->b.limiter.rl), -1);
	buf = fake_guest_alloc(&x->g, 512, 512);

	CHECK_EQ(virtio_blk_set_rate_limiter(&x->b, &one_per_s, &e), 0);
	CHECK(x->b.limiter.enabled);
	CHECK(x->b.limiter.watched);
	CHECK(rate_limiter_fd(&x->b.limiter.rl) >= 0);
	CHECK(evloop_add(&x->g.loop, &x->b.limiter.w[x->b.limiter.cur], EPOLLIN) < 0);
	for (k = 0; k < 4; k++)
		head[k] = add_read(x, (uint64_t)k, buf, 512, &st[k]);
	fake_kick(&x->b.vdev, 0);
	CHECK_EQ(fake_vq_pending(&x->q), 1);
	CHECK(rate_limiter_blocked(&x->b.limiter.rl));

	/* An invalid limiter is refused with the drive's name; the old one stays. */
	CHECK_EQ(virtio_blk_set_rate_limiter(&x->b, &bad, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "virtio-blk vda");
	CHECK_STR_CONTAINS(e.msg, "refill_time");
	CHECK_EQ(x->b.limiter.cfg.ops.size, 1);
	CHECK(rate_limiter_blocked(&x->b.limiter.rl));
	CHECK_EQ(fake_vq_pending(&x->q), 1);

	/* Unlimited again: the throttled queue is resumed at once, the watch goes. */
	old_w = &x->b.limiter.w[x->b.limiter.cur];
	CHECK_EQ(virtio_blk_set_rate_limiter(&x->b, NULL, &e), 0);
	CHECK(!x->b.limiter.enabled);
	CHECK(!x->b.limiter.watched);
	CHECK_EQ(fake_vq_pending(&x->q), 4);
	for (k = 0; k < 4; k++)
		expect_used(x, head[k], 513, st[k]);
	/* The old timer's event, already reported in the loop's batch, is harmless. */
	old_w->cb(old_w, EPOLLIN);
	CHECK(virtio_live(&x->b.vdev));

	/* Limited again: fresh full buckets (one op passes at once), a new watch. */
	CHECK_EQ(virtio_blk_set_rate_limiter(&x->b, &one_per_s, &e), 0);
	CHECK(x->b.limiter.watched);
	CHECK(evloop_add(&x->g.loop, &x->b.limiter.w[x->b.limiter.cur], EPOLLIN) < 0);
	head[0] = add_read(x, 5, buf, 512, &st[0]);
	head[1] = add_read(x, 6, buf, 512, &st[1]);
	fake_kick(&x->b.vdev, 0);
	expect_used(x, head[0], 513, st[0]);
	CHECK_EQ(fake_vq_pending(&x->q), 0);
	/* A replacement while throttled resumes under the new limits (full buckets). */
	CHECK_EQ(virtio_blk_set_rate_limiter(&x->b, &one_per_s, &e), 0);
	expect_used(x, head[1], 513, st[1]);
	CHECK(is_pattern(fake_guest_ptr(&x->g, buf), 6 * 512, 512));
	teardown(x);
}

TEST(cache_unsafe_features)
{
	struct virtio_blk_opts o = {.cache_unsafe = true};
	struct env *x = setup_opts(BLOCKFILE_ENGINE_SYNC, &o, ~0ull, IMG_SIZE);
	uint64_t buf;
	uint8_t file[512];
	struct done d;

	CHECK(x != NULL);
	if (!x)
		return;
	/* §5.2.6.2: FLUSH not offered; writes are not forced stable (no writethrough). */
	CHECK(!(feature_bits(x) & 1ull << VIRTIO_BLK_F_FLUSH));
	CHECK(!(x->b.vdev.driver_features & 1ull << VIRTIO_BLK_F_FLUSH));
	CHECK(feature_bits(x) & 1ull << VIRTIO_BLK_F_SEG_MAX);
	CHECK(!x->b.writethrough);
	buf = fake_guest_alloc(&x->g, 512, 512);
	memset(fake_guest_ptr(&x->g, buf), 0x42, 512);
	d = req(x, VIRTIO_BLK_T_OUT, 3, buf, 512, 1, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
	CHECK_EQ(file_bytes(x->path, 3 * 512, file, 512), 0);
	CHECK(!memcmp(file, fake_guest_ptr(&x->g, buf), 512));
	/* A flush sent anyway is still served. */
	d = req(x, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
	teardown(x);

	/* The default offers FLUSH; without it negotiated, writes go writethrough. */
	x = setup_full(BLOCKFILE_ENGINE_SYNC, false, ~(1ull << VIRTIO_BLK_F_FLUSH), NULL, IMG_SIZE);
	CHECK(x != NULL);
	if (!x)
		return;
	CHECK(feature_bits(x) & 1ull << VIRTIO_BLK_F_FLUSH);
	CHECK(x->b.writethrough);
	teardown(x);
}

/* Fill `path` (already IMG-patterned) with `val` at byte `off` for `len` bytes. */
static int poke_file(const char *path, uint64_t off, uint8_t val, size_t len)
{
	uint8_t buf[4096];
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0 || len > sizeof(buf))
		return -1;
	memset(buf, val, len);
	n = pwrite(fd, buf, len, (off_t)off);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

/*
 * Replace the image with requests in flight: they finish on the old image and
 * complete to the guest; then capacity, GET_ID, data and the config interrupt
 * follow the new image, writes land in it, and the old one is left alone.
 */
TEST(replace_file)
{
	int i;

	for (i = 0; i < NENG; i++) {
		enum { N = 8 };
		struct env *x = setup(engines[i], false);
		struct virtio_blk_config c;
		struct err e = {0};
		char path2[64], want[80];
		uint64_t buf[N], st[N], rbuf;
		uint8_t gen, old_sector[512], file[512];
		struct stat sb;
		struct done d;
		int head[N], k;

		CHECK(x != NULL);
		if (!x)
			continue;
		CHECK_EQ(make_image(path2, sizeof(path2), 3u << 20), 0); /* 6144 sectors */
		CHECK_EQ(poke_file(path2, 5 * 512, 0xc3, 512), 0);
		for (k = 0; k < N; k++) {
			buf[k] = fake_guest_alloc(&x->g, 4096, 512);
			head[k] = add_read(x, 8ull * k, buf[k], 4096, &st[k]);
		}
		fake_kick(&x->b.vdev, 0);
		if (engines[i] == BLOCKFILE_ENGINE_IO_URING)
			CHECK_EQ(x->b.file->inflight, N); /* handed to io_uring, not reaped */
		gen = x->b.vdev.config_generation;
		CHECK_EQ(virtio_blk_replace_file(&x->b, path2, &e), 0);
		/* Everything in flight completed to the guest, from the old image. */
		for (k = 0; k < N; k++) {
			expect_used(x, head[k], 4097, st[k]);
			CHECK(is_pattern(fake_guest_ptr(&x->g, buf[k]), 4096ull * k, 4096));
		}
		CHECK_EQ(x->b.nfree, VIRTQ_MAX_SIZE);
		CHECK_EQ(x->t.config_changed, 1);
		CHECK(x->b.vdev.config_generation != gen);
		fake_config_read(&x->b.vdev, 0, &c, sizeof(c));
		CHECK_EQ(le64toh(c.capacity), 6144);
		CHECK_EQ(virtio_blk_capacity(&x->b), 6144);
		CHECK(!strcmp(x->b.file->path, path2));
		/* Reads come from the new image, also past the old capacity. */
		rbuf = fake_guest_alloc(&x->g, 512, 512);
		d = req(x, VIRTIO_BLK_T_IN, 5, rbuf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK(all_same_byte(fake_guest_ptr(&x->g, rbuf), 0xc3, 512));
		d = req(x, VIRTIO_BLK_T_IN, 6143, rbuf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK(is_pattern(fake_guest_ptr(&x->g, rbuf), 6143ull * 512, 512));
		/* Writes land in the new image; the old one keeps its bytes. */
		CHECK_EQ(file_bytes(x->path, 7 * 512, old_sector, 512), 0);
		memset(fake_guest_ptr(&x->g, rbuf), 0x9d, 512);
		d = req(x, VIRTIO_BLK_T_OUT, 7, rbuf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK_EQ(file_bytes(path2, 7 * 512, file, 512), 0);
		CHECK(all_same_byte(file, 0x9d, 512));
		CHECK_EQ(file_bytes(x->path, 7 * 512, file, 512), 0);
		CHECK(!memcmp(file, old_sector, 512));
		CHECK(is_pattern(file, 7 * 512, 512));
		/* GET_ID derived from the image follows it. */
		CHECK_EQ(stat(path2, &sb), 0);
		snprintf(want, sizeof(want), "%llu%llu%llu", (unsigned long long)sb.st_dev,
		         (unsigned long long)sb.st_rdev, (unsigned long long)sb.st_ino);
		want[20] = 0;
		d = req(x, VIRTIO_BLK_T_GET_ID, 0, rbuf, 20, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK(!strncmp((char *)fake_guest_ptr(&x->g, rbuf), want, 20));
		/* And back to the first image: the spare slot is reused. */
		CHECK_EQ(virtio_blk_replace_file(&x->b, x->path, &e), 0);
		CHECK_EQ(virtio_blk_capacity(&x->b), IMG_SECTS);
		CHECK_EQ(x->t.config_changed, 2);
		d = req(x, VIRTIO_BLK_T_IN, 7, rbuf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK(is_pattern(fake_guest_ptr(&x->g, rbuf), 7 * 512, 512));
		CHECK(virtio_live(&x->b.vdev));
		unlink(path2);
		teardown(x);
	}
}

/* A user-given serial stays across a replacement. */
TEST(replace_file_keeps_serial)
{
	struct env *x = setup_full(BLOCKFILE_ENGINE_SYNC, false, ~0ull, "my-serial", IMG_SIZE);
	struct err e = {0};
	char path2[64];
	uint64_t buf;
	struct done d;

	CHECK(x != NULL);
	if (!x)
		return;
	CHECK_EQ(make_image(path2, sizeof(path2), 4096), 0);
	CHECK_EQ(virtio_blk_replace_file(&x->b, path2, &e), 0);
	CHECK_EQ(virtio_blk_capacity(&x->b), 8);
	buf = fake_guest_alloc(&x->g, 20, 8);
	d = req(x, VIRTIO_BLK_T_GET_ID, 0, buf, 20, 1, false);
	CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
	CHECK(!memcmp(fake_guest_ptr(&x->g, buf), "my-serial\0", 10));
	unlink(path2);
	teardown(x);
}

/* A replacement that cannot open its image changes nothing and says why. */
TEST(replace_file_failure_keeps_old)
{
	int i;

	for (i = 0; i < NENG; i++) {
		struct env *x = setup(engines[i], false);
		struct err e = {0};
		uint8_t gen;
		uint64_t buf;
		struct done d;

		CHECK(x != NULL);
		if (!x)
			continue;
		gen = x->b.vdev.config_generation;
		CHECK_EQ(virtio_blk_replace_file(&x->b, "/nonexistent/other.img", &e), -ENOENT);
		CHECK_STR_CONTAINS(e.msg, "virtio-blk vda");
		CHECK_STR_CONTAINS(e.msg, "/nonexistent/other.img");
		CHECK_STR_CONTAINS(e.msg, x->path);
		err_clear(&e);
		CHECK_EQ(virtio_blk_replace_file(&x->b, "/dev/null", &e), -EINVAL);
		CHECK_STR_CONTAINS(e.msg, "not a regular file");
		err_clear(&e);
		CHECK_EQ(virtio_blk_replace_file(&x->b, "", &e), -EINVAL);
		CHECK_STR_CONTAINS(e.msg, "virtio-blk vda");
		CHECK_EQ(x->t.config_changed, 0);
		CHECK_EQ(x->b.vdev.config_generation, gen);
		CHECK_EQ(virtio_blk_capacity(&x->b), IMG_SECTS);
		CHECK(!strcmp(x->b.file->path, x->path));
		buf = fake_guest_alloc(&x->g, 512, 512);
		d = req(x, VIRTIO_BLK_T_IN, 9, buf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		CHECK(is_pattern(fake_guest_ptr(&x->g, buf), 9 * 512, 512));
		memset(fake_guest_ptr(&x->g, buf), 0x11, 512);
		d = req(x, VIRTIO_BLK_T_OUT, 9, buf, 512, 1, false);
		CHECK_EQ(d.status, VIRTIO_BLK_S_OK);
		teardown(x);
	}
}

/* Before DRIVER_OK a replacement only bumps the generation (no interrupt, §2.1.2). */
TEST(replace_file_before_driver_ok)
{
	struct fake_guest g;
	struct fake_transport t;
	struct virtio_blk *b = calloc(1, sizeof(*b));
	struct virtio_blk_opts o = {0};
	struct err e = {0};
	char path[64], path2[64];
	uint8_t gen;

	CHECK_EQ(fake_guest_init(&g, 1 << 20), 0);
	CHECK_EQ(make_image(path, sizeof(path), 4096), 0);
	CHECK_EQ(make_image(path2, sizeof(path2), 8192), 0);
	o.path = path;
	CHECK_EQ(virtio_blk_init(b, &o, &g.env, &e), 0);
	fake_transport_attach(&t, &b->vdev);
	gen = b->vdev.config_generation;
	CHECK_EQ(virtio_blk_replace_file(b, path2, &e), 0);
	CHECK_EQ(virtio_blk_capacity(b), 16);
	CHECK(b->vdev.config_generation != gen);
	CHECK_EQ(t.config_changed, 0);
	virtio_blk_destroy(b);
	free(b);
	unlink(path);
	unlink(path2);
	fake_guest_fini(&g);
}

int main(void)
{
	alarm(120);               /* a lost completion fails the run instead of hanging it */
	log_set_level(LOG_ERROR); /* the guest-error warnings these tests provoke are expected */
	RUN(config_space_and_features);
	RUN(read_write_round_trip);
	RUN(split_header);
	RUN(get_id);
	RUN(bad_options);
	RUN(read_only_drive);
	RUN(out_of_range);
	RUN(malformed_requests);
	RUN(bad_chain_needs_reset);
	RUN(discard_and_write_zeroes);
	RUN(negotiation_changes_behaviour);
	RUN(uring_many_in_flight_via_evloop);
	RUN(reset_with_io_in_flight);
	RUN(drain_completes_write_and_flush);
	RUN(slots_exhausted_resume);
	RUN(resize);
	RUN(resize_before_driver_ok);
	RUN(rate_limit_ops_throttles_in_order);
	RUN(rate_limit_bandwidth_throttles_then_resumes);
	RUN(rate_limit_reset_while_throttled);
	RUN(set_rate_limiter_at_run_time);
	RUN(cache_unsafe_features);
	RUN(replace_file);
	RUN(replace_file_keeps_serial);
	RUN(replace_file_failure_keeps_old);
	RUN(replace_file_before_driver_ok);
	return test_summary();
}
