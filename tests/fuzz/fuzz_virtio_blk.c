/* fuzz_virtio_blk.c - libFuzzer target: virtio-blk request chains (headers, layouts, payloads). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "fuzz_input.h"
#include "util/log.h"
#include "virtio_fake_driver.h"

/*
 * Input: byte 0 picks the driver's features (bit 0 FLUSH, 1 DISCARD,
 * 2 WRITE_ZEROES, 3 EVENT_IDX, 4 INDIRECT_DESC) and bits 5-7 the queue size
 * (256 >> n); byte 1 whether the drive is read-only (bit 0) or, with bit 1, a
 * read-write drive with a rate limiter (small ops and bandwidth buckets on a
 * fake clock that each kick advances by 250 us, firing the limiter's timer
 * first, so requests are refused, given back and taken again).  Then records,
 * each starting with an opcode byte (% 4):
 *   0 chain: u8 nseg (1..8), u8 flags (bit 0: through an indirect table), then
 *     per segment a kind byte (% 5):
 *       0 header     u8 type selector, u8 sector selector (+ raw bytes, see below)
 *       1 readable   length selector, then that many content bytes (discard segments...)
 *       2 writable   length selector
 *     (length selector: u8 l; l < 0x40: (l % 17) sectors; l < 0x80: (l % 4) 16-byte
 *     discard segments; else a raw u16 % 8192)
 *       3 status     one writable byte
 *       4 raw        u32 gpa, u16 len, u8 write: anywhere, even outside RAM
 *   1 kick        2 reap used entries        3 reset and bring the device up again
 * The image is a 64 KiB memfd on the sync engine.
 *
 * Invariants: no crash, no sanitizer report; every used id is a head we made
 * available; its used length is at most the chain's writable bytes; when the
 * chain ends in a status byte and the length is not 0, that byte is
 * VIRTIO_BLK_S_OK, _IOERR or _UNSUPP; nothing stays in flight.  The used-ring
 * checks stop once a raw writable segment points into RAM (the device may then
 * legitimately overwrite rings and other chains' status bytes).
 */

#define RAM_SIZE  (1u << 20)
#define IMG_SIZE  (64u << 10)
#define MAX_CHAIN 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct chain_info {
	bool live;         /* made available, not yet used */
	uint64_t writable; /* device-writable bytes */
	uint64_t status;   /* GPA of the status byte (last writable byte), 0 if unknown */
};

struct fz {
	struct fake_guest g;
	struct fake_transport t;
	struct fake_vq q;
	struct virtio_blk b;
	bool ro;
	bool limited;
	uint64_t now; /* the limiter's fake clock, ns */
	struct rl_clock clk;
	bool tainted; /* a raw writable segment points into RAM: it may scribble anywhere */
	struct chain_info info[VIRTQ_MAX_SIZE];
	char path[64];
};

static uint64_t fz_now(void *ctx)
{
	return ((struct fz *)ctx)->now;
}

static struct fz *fz_new(bool ro, bool limited)
{
	struct fz *f = calloc(1, sizeof(*f));
	struct virtio_blk_opts o = {.drive_id = "fuzz", .read_only = ro};
	struct err e = {0};
	uint8_t buf[4096];
	int fd, i;

	if (!f)
		abort();
	fd = memfd_create("fuzz-blk", 0);
	if (fd < 0)
		abort();
	memset(buf, 0x5a, sizeof(buf));
	for (i = 0; i < (int)(IMG_SIZE / sizeof(buf)); i++)
		if (pwrite(fd, buf, sizeof(buf), (off_t)i * (off_t)sizeof(buf)) != sizeof(buf))
			abort();
	snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", fd);
	if (fake_guest_init(&f->g, RAM_SIZE) < 0)
		abort();
	o.path = f->path;
	f->ro = ro;
	f->limited = limited;
	f->clk = (struct rl_clock){fz_now, f};
	if (limited) {
		o.rate_limiter =
		    (struct rate_limiter_cfg){.bandwidth = {.size = 8192, .refill_time_ms = 1},
		                              .ops = {.size = 3, .refill_time_ms = 1}};
		o.clock = &f->clk;
	}
	if (virtio_blk_init(&f->b, &o, &f->g.env, &e) < 0) {
		fprintf(stderr, "virtio_blk_init: %s\n", e.msg);
		abort();
	}
	return f;
}

/* Reset, fresh RAM and ring, negotiate (offered & want), DRIVER_OK. */
static void bring_up(struct fz *f, uint64_t want, uint16_t qsize)
{
	memset(f->info, 0, sizeof(f->info));
	f->tainted = false;
	if (fake_restart(&f->g, &f->b.vdev, &f->t, want, &f->q, 1, qsize) < 0)
		abort();
}

static uint32_t pick_type(struct in *in)
{
	static const uint32_t types[] = {VIRTIO_BLK_T_IN,           VIRTIO_BLK_T_OUT,
	                                 VIRTIO_BLK_T_FLUSH,        VIRTIO_BLK_T_GET_ID,
	                                 VIRTIO_BLK_T_DISCARD,      VIRTIO_BLK_T_WRITE_ZEROES,
	                                 VIRTIO_BLK_T_GET_LIFETIME, VIRTIO_BLK_T_SECURE_ERASE};
	uint8_t s = u8(in);

	return s < 0xf0 ? types[s % 8] : u32(in);
}

static uint64_t pick_sector(struct in *in)
{
	uint8_t s = u8(in);

	if (s < 0xc0)
		return s % (IMG_SIZE / 512 + 4); /* around the capacity */
	return u64(in);
}

/* Whole sectors, whole discard segments, or anything (see the input format). */
static uint32_t pick_len(struct in *in)
{
	uint8_t l = u8(in);

	if (l < 0x40)
		return (l % 17u) * 512u;
	if (l < 0x80)
		return (l % 4u) * 16u;
	return u16(in) % 8192u;
}

/* Take data bytes from the pool; 0 when RAM ran out. */
static uint64_t pool(struct fz *f, uint32_t len)
{
	return fake_guest_alloc(&f->g, len ? len : 1, 1);
}

static void add_chain(struct fz *f, struct in *in)
{
	struct fake_seg s[MAX_CHAIN];
	unsigned int n = u8(in) % MAX_CHAIN + 1, i, k;
	bool indirect = u8(in) & 1;
	uint64_t writable = 0, status = 0;
	bool raw = false;
	int head;

	for (i = 0; i < n; i++) {
		uint8_t kind = u8(in) % 5;
		uint64_t gpa;
		uint32_t len;

		switch (kind) {
		case 0: { /* header */
			uint32_t type = htole32(pick_type(in));
			uint64_t sector = htole64(pick_sector(in));
			uint8_t *p;

			gpa = pool(f, 16);
			if (!gpa)
				return;
			p = fake_guest_ptr(&f->g, gpa);
			memcpy(p, &type, 4);
			memset(p + 4, 0, 4);
			memcpy(p + 8, &sector, 8);
			s[i] = (struct fake_seg){gpa, 16, false};
			break;
		}
		case 1: /* readable, content from the input */
			len = pick_len(in);
			gpa = pool(f, len);
			if (!gpa)
				return;
			for (k = 0; k < len; k++)
				*(uint8_t *)fake_guest_ptr(&f->g, gpa + k) = u8(in);
			s[i] = (struct fake_seg){gpa, len, false};
			break;
		case 2: /* writable */
			len = pick_len(in);
			gpa = pool(f, len);
			if (!gpa)
				return;
			memset(fake_guest_ptr(&f->g, gpa), 0xee, len ? len : 1);
			s[i] = (struct fake_seg){gpa, len, true};
			break;
		case 3: /* status */
			gpa = pool(f, 1);
			if (!gpa)
				return;
			*(uint8_t *)fake_guest_ptr(&f->g, gpa) = 0xff;
			s[i] = (struct fake_seg){gpa, 1, true};
			break;
		default: /* raw: anywhere */
			s[i].gpa = u32(in);
			s[i].len = u16(in);
			s[i].write = u8(in) & 1;
			raw = true;
			/* The device may write there: the rings, other chains' status bytes. */
			if (s[i].write && s[i].len && gmem_contains(&f->g.gm, s[i].gpa, 1))
				f->tainted = true;
			break;
		}
	}
	/* What the device may write: the writable bytes; the status is the last of them. */
	for (i = 0; i < n; i++) {
		if (s[i].write) {
			writable += s[i].len;
			if (s[i].len)
				status = s[i].gpa + s[i].len - 1;
		} else if (writable) {
			raw = true; /* readable after writable: the chain is invalid anyway */
		}
	}
	head = indirect ? fake_vq_add_indirect(&f->q, s, n) : fake_vq_add(&f->q, s, n);
	/* The fake driver keeps its free list in guest memory: once the device was pointed
	 * at the rings (tainted), its answer is no better than the memory. */
	if (head < 0 || head >= (int)VIRTQ_MAX_SIZE)
		return;
	f->info[head] =
	    (struct chain_info){.live = true, .writable = writable, .status = raw ? 0 : status};
}

static void reap(struct fz *f)
{
	uint32_t id, len;

	while (fake_vq_used(&f->q, &id, &len)) {
		struct chain_info *c;
		uint8_t st;

		if (f->tainted)
			continue; /* guest memory is not trustworthy any more: only no-crash holds
			           */
		if (id >= f->q.size || !f->info[id].live)
			abort(); /* the device returned a head it was never given */
		c = &f->info[id];
		if (len > c->writable)
			abort(); /* claims more bytes written than the chain can hold */
		if (c->status && len > 0) {
			st = *(uint8_t *)fake_guest_ptr(&f->g, c->status);
			if (st > VIRTIO_BLK_S_UNSUPP)
				abort(); /* completed with a status that is not one */
		}
		c->live = false;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz *devs[3];
	struct in in = {data, size};
	uint8_t feat, opt;
	uint64_t want;
	uint16_t qsize;
	struct fz *f;
	unsigned int ops = 0;

	if (size < 2)
		return 0;
	if (!devs[0]) {
		log_set_level(LOG_ERROR); /* guest-error warnings would flood the fuzzer's output */
		devs[0] = fz_new(false, false);
		devs[1] = fz_new(true, false);
		devs[2] = fz_new(false, true);
	}
	feat = u8(&in);
	opt = u8(&in);
	f = devs[opt & 2 ? 2 : opt & 1];
	want = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_BLK_F_SEG_MAX |
	       1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_RO;
	if (feat & 1)
		want |= 1ull << VIRTIO_BLK_F_FLUSH;
	if (feat & 2)
		want |= 1ull << VIRTIO_BLK_F_DISCARD;
	if (feat & 4)
		want |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	if (feat & 8)
		want |= 1ull << VIRTIO_F_EVENT_IDX;
	if (feat & 16)
		want |= 1ull << VIRTIO_F_INDIRECT_DESC;
	qsize = (uint16_t)(VIRTQ_MAX_SIZE >> (feat >> 5));
	bring_up(f, want, qsize);

	while (in.n && ops++ < 512) {
		switch (u8(&in) % 4) {
		case 0:
			add_chain(f, &in);
			break;
		case 1:
			if (f->limited) {
				struct evloop_watch *w = &f->b.limiter.w[f->b.limiter.cur];

				f->now += 250000;
				w->cb(w, EPOLLIN);
			}
			fake_kick(&f->b.vdev, 0);
			break;
		case 2:
			reap(f);
			break;
		default:
			reap(f);
			bring_up(f, want, qsize);
			break;
		}
	}
	fake_kick(&f->b.vdev, 0);
	reap(f);
	if (f->b.nfree != VIRTQ_MAX_SIZE || f->b.file->inflight)
		abort(); /* the sync engine finishes everything it starts */
	return 0;
}
