/* fuzz_virtio_pmem.c - libFuzzer target: virtio-pmem flush requests and configuration accesses. */
#include <endian.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "devices/virtio/pmem.h"
#include "fuzz_input.h"
#include "util/log.h"
#include "virtio_fake_driver.h"

/*
 * Input: byte 0 picks the driver's features (bit 1 EVENT_IDX, bit 2 INDIRECT_DESC), bit 3
 * a read-only device, bit 4 a flush rate limiter (2 ops and 3 files' worth of bytes per
 * 100 ms, on a fake clock), and bits 5-7 the queue size (256 >> n).  Then records, each
 * starting with an opcode byte (% 7):
 *   0 chain, 1 the same chain through an indirect table: u8 nseg (1..4), then per segment a
 *       kind byte (% 3):
 *       0 type    u8 len (% 9), u32 value: a readable buffer holding the value's bytes
 *       1 status  u8 len (% 9), u8 write: a buffer of that length (writable or not)
 *       2 raw     u32 gpa, u16 len, u8 write: anywhere, even outside RAM (a writable one
 *                 never over the rings: the harness's driver trusts them)
 *   2 kick      3 reap the used ring
 *   4 config access: u8 offset (% 24), u8 width (1, 2, 4 or 8), u8 write, then 8 bytes
 *   5 reset and bring the device up again
 *   6 the clock: u16 ms forward, then the limiter's timer fires (as the VMM evloop would)
 *
 * The backing file is a small temporary file mapped once per input.  Invariants: no crash,
 * no sanitizer report, every used id below the queue size and every used length 0 or 4
 * (ret, or nothing), the configuration always reads the region the device was built with,
 * and the file is never written by the device.
 */

#define RAM_SIZE (1u << 20)
#define BUF_BASE 0x80000u /* buffers the harness fills, 256 bytes each */
#define NBUF     256
#define GPA      (68ull << 30)
#define FILE_LEN 8192u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];
static uint64_t fz_clock_ns;

static uint64_t fake_now(void *ctx)
{
	(void)ctx;
	return fz_clock_ns;
}
static uint8_t pattern[FILE_LEN];

static void remove_file(void)
{
	unlink(path);
}

/* The backing file, made once per process (in /dev/shm when there is one: fdatasync is free). */
static void make_file(void)
{
	int fd;

	if (path[0])
		return;
	for (unsigned int i = 0; i < FILE_LEN; i++)
		pattern[i] = (uint8_t)(i * 13 + 7);
	snprintf(path, sizeof(path), "/dev/shm/ember-fuzz-pmem-%d", (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		snprintf(path, sizeof(path), "/tmp/ember-fuzz-pmem-%d", (int)getpid());
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	}
	if (fd < 0 || write(fd, pattern, FILE_LEN) != FILE_LEN)
		abort();
	close(fd);
	atexit(remove_file);
}

struct fz {
	struct fake_guest g;
	struct fake_transport t;
	struct fake_vq q;
	struct virtio_pmem p;
	uint16_t qsize;
	uint64_t want;
	unsigned int next_buf;
};

static void bring_up(struct fz *f)
{
	if (fake_restart(&f->g, &f->p.vdev, &f->t, f->want, &f->q, 1, f->qsize) < 0)
		abort();
	f->next_buf = 0;
}

static void add_chain(struct fz *f, struct in *in, bool indirect)
{
	struct fake_seg segs[4];
	unsigned int n = 1 + u8(in) % 4, i;

	for (i = 0; i < n; i++) {
		uint64_t buf = BUF_BASE + 0x100ull * (f->next_buf++ % NBUF);
		uint8_t *p = fake_guest_ptr(&f->g, buf);

		switch (u8(in) % 3) {
		case 0: {
			uint32_t len = u8(in) % 9, v = htole32(u32(in));

			memset(p, 0, 8);
			memcpy(p, &v, 4);
			segs[i] = (struct fake_seg){buf, len, false};
			break;
		}
		case 1: {
			uint32_t len = u8(in) % 9;

			memset(p, 0xee, 8);
			segs[i] = (struct fake_seg){buf, len, u8(in) & 1};
			break;
		}
		default: {
			uint32_t gpa = u32(in);
			uint16_t len = u16(in);
			bool w = u8(in) & 1;

			/* The device may write a writable buffer: keep those off the rings and
			 * tables below BUF_BASE, which the harness's driver trusts (a guest that
			 * hands the device its own ring breaks only itself). */
			if (w && gpa < BUF_BASE)
				gpa += BUF_BASE;
			segs[i] = (struct fake_seg){gpa, len, w};
			break;
		}
		}
	}
	if (indirect)
		fake_vq_add_indirect(&f->q, segs, n);
	else
		fake_vq_add(&f->q, segs, n);
}

static void reap(struct fz *f)
{
	uint32_t id, len;

	while (fake_vq_used(&f->q, &id, &len)) {
		if (id >= f->q.size || (len != 0 && len != 4)) {
			fprintf(stderr, "used id %u len %u (queue size %u)\n", id, len, f->q.size);
			abort();
		}
	}
}

static void config(struct fz *f, struct in *in)
{
	static const uint8_t widths[] = {1, 2, 4, 8};
	uint8_t off = u8(in) % 24, w = widths[u8(in) % 4], write = u8(in) & 1, buf[8];
	struct virtio_pmem_config want = {htole64(f->p.cfg.start), htole64(f->p.cfg.size)};

	for (unsigned int i = 0; i < 8; i++)
		buf[i] = u8(in);
	if (off + w > 16)
		return; /* the transports refuse accesses past config_size before the core */
	if (write) {
		pthread_mutex_lock(&f->p.vdev.lock);
		virtio_config_access(&f->p.vdev, off, buf, w, true);
		pthread_mutex_unlock(&f->p.vdev.lock);
		return;
	}
	fake_config_read(&f->p.vdev, off, buf, w);
	if (memcmp(buf, (const uint8_t *)&want + off, w) != 0 || f->p.cfg.start != GPA) {
		fprintf(stderr, "configuration read at %u changed\n", off);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The guest's RAM is made once and wiped per input (bring_up): a fresh 1 MiB per input
	 * costs more page faults than the input itself. */
	static struct fz *f;
	struct in in = {data, size};
	static const struct rl_clock clk = {fake_now, NULL};
	struct virtio_pmem_opts o = {0};
	struct err e = {0};
	uint8_t cfg;
	int ops = 0;

	if (size < 1)
		return 0;
	if (!f) {
		log_set_level(LOG_ERROR); /* guest-error warnings would flood the fuzzer's output */
		make_file();
		f = calloc(1, sizeof(*f));
		if (!f || fake_guest_init(&f->g, RAM_SIZE) < 0)
			abort();
	}
	memset(&f->t, 0, sizeof(f->t));
	cfg = u8(&in);
	o = (struct virtio_pmem_opts){.path = path, .read_only = cfg & 8, .gpa = GPA};
	fz_clock_ns = 0;
	if (cfg & 16)
		o.rate_limiter = (struct rate_limiter_cfg){
		    .bandwidth = {.size = 3 * FILE_LEN, .refill_time_ms = 100},
		    .ops = {.size = 2, .refill_time_ms = 100}};
	o.clock = &clk;
	if (virtio_pmem_init(&f->p, &o, &f->g.env, &e) < 0) {
		fprintf(stderr, "virtio_pmem_init: %s\n", e.msg);
		abort();
	}
	f->qsize = (uint16_t)(256u >> (cfg >> 5));
	f->want = (1ull << VIRTIO_F_VERSION_1) | (cfg & 2 ? 1ull << VIRTIO_F_EVENT_IDX : 0) |
	          (cfg & 4 ? 1ull << VIRTIO_F_INDIRECT_DESC : 0);
	bring_up(f);
	while (in.n && ops++ < 2000) {
		switch (u8(&in) % 7) {
		case 0:
			add_chain(f, &in, false);
			break;
		case 1:
			add_chain(f, &in, true);
			break;
		case 2:
			fake_kick(&f->p.vdev, 0);
			break;
		case 3:
			reap(f);
			break;
		case 4:
			config(f, &in);
			break;
		case 5:
			bring_up(f);
			break;
		default: {
			struct evloop_watch *w = &f->p.limiter.w[f->p.limiter.cur];

			fz_clock_ns += u16(&in) * 1000000ull;
			if (f->p.limiter.enabled)
				w->cb(w, EPOLLIN);
			break;
		}
		}
	}
	fake_kick(&f->p.vdev, 0);
	reap(f);
	if (memcmp(f->p.hva, pattern, FILE_LEN) != 0) {
		fprintf(stderr, "the device wrote its backing file\n");
		abort();
	}
	virtio_pmem_destroy(&f->p);
	return 0;
}
