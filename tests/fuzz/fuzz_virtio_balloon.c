/* fuzz_virtio_balloon.c - libFuzzer target: virtio-balloon PFN arrays, stats buffers, free page
 * reports and hints, config. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/balloon.h"
#include "fuzz_input.h"
#include "util/log.h"
#include "virtio_fake_driver.h"

/*
 * Input: byte 0 picks the device (bit 0: statistics on, bit 3: free page hinting, bit 4:
 * free page reporting; 2 to 5 queues), the driver's features (bit 1 EVENT_IDX, bit 2
 * DEFLATE_ON_OOM; every other feature offered is taken) and bits 5-7 the queue size (256 >> n).
 * Then records, each starting with an opcode byte (% 6):
 *   0 chain: u8 queue (% 5), u8 nseg (1..4), then per segment a kind byte (% 5):
 *       0 PFNs      u8 n (% 80), then n u16 page numbers, placed as le32 PFNs in a buffer
 *                   (pages from 0 to a bit past the end of RAM: some in, some out)
 *       1 bytes     u16 len (% 3000), then that many raw bytes (PFNs or stats entries)
 *       2 raw       u32 gpa, u16 len, u8 write: anywhere, even outside RAM
 *       3 cmd id    u8 id (% 5: STOP, DONE, the first run ids), a 4-byte readable buffer
 *       4 range     u16 gpa, u16 len, u8 write: a free range (report, hint) near RAM, any
 *                   alignment
 *   1 kick u8 queue (% 5)     2 reap the used rings
 *   3 config write: u8 offset (% 12), u8 width (1, 2 or 4), that many bytes
 *   4 host side: u8 what (% 6): stats poll, a new target (u32), a new interval (u16), hinting
 *     start (u8: acknowledge_on_stop), stop, status
 *   5 reset and bring the device up again
 *
 * Inflated pages are real madvise(MADV_DONTNEED) calls on the fake guest's RAM (the rings
 * included, when the input says so: a guest may do that to itself), reported and hinted
 * ranges too.  Invariants: no crash, no sanitizer report, every used id below the queue size,
 * the statistics only ever hold known tags, actual is what the last config writes made it,
 * and free_page_hint_cmd_id reads as the host's command (STOP, DONE or the last run's id).
 */

#define RAM_SIZE (1u << 20)
#define BUF_BASE 0x80000u /* buffers the harness fills, 4 KiB each */
#define NBUF     64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	struct fake_guest g;
	struct fake_transport t;
	struct fake_vq q[5];
	struct virtio_balloon b;
	unsigned int nq, next_buf;
	uint16_t qsize;
	uint32_t actual; /* what the driver wrote, byte by byte */
};

static struct fz *fz_new(unsigned int kind)
{
	struct fz *f = calloc(1, sizeof(*f));
	struct virtio_balloon_opts o = {.num_pages = 16,
	                                .deflate_on_oom = true,
	                                .stats_interval_s = kind & 1 ? 1 : 0,
	                                .free_page_hinting = kind & 2,
	                                .free_page_reporting = kind & 4};
	struct err e = {0};

	if (!f || fake_guest_init(&f->g, RAM_SIZE) < 0)
		abort();
	if (virtio_balloon_init(&f->b, &o, &f->g.env, &e) < 0) {
		fprintf(stderr, "virtio_balloon_init: %s\n", e.msg);
		abort();
	}
	f->nq = f->b.vdev.nqueues;
	return f;
}

static void bring_up(struct fz *f, uint64_t want)
{
	if (fake_restart(&f->g, &f->b.vdev, &f->t, want, f->q, f->nq, f->qsize) < 0)
		abort();
	f->actual = 0;
	f->next_buf = 0;
}

static void add_chain(struct fz *f, struct in *in)
{
	struct fake_seg segs[4];
	unsigned int qi = u8(in) % 5, n = 1 + u8(in) % 4, i, k;

	if (qi >= f->nq)
		return;
	for (i = 0; i < n; i++) {
		uint64_t buf = BUF_BASE + 0x1000ull * (f->next_buf++ % NBUF);
		uint8_t *p = fake_guest_ptr(&f->g, buf);
		uint32_t len;

		switch (u8(in) % 5) {
		case 0:
			len = 4 * (u8(in) % 80);
			for (k = 0; k < len; k += 4) {
				uint32_t pfn = u16(in) % (RAM_SIZE / 4096 + 8);

				memcpy(p + k, &pfn, 4);
			}
			segs[i] = (struct fake_seg){buf, len, false};
			break;
		case 1:
			len = u16(in) % 3000;
			for (k = 0; k < len && k < 4096; k++)
				p[k] = u8(in);
			segs[i] = (struct fake_seg){buf, len, false};
			break;
		case 2:
			segs[i].gpa = u32(in);
			segs[i].len = u16(in);
			segs[i].write = u8(in) & 1;
			break;
		case 3: {
			uint32_t id = u8(in) % 5;

			memcpy(p, &id, 4);
			segs[i] = (struct fake_seg){buf, 4, false};
			break;
		}
		default:
			segs[i].gpa = (uint64_t)u16(in) << 5; /* 0 to 2 MiB: RAM is 1 MiB */
			segs[i].len = u16(in);
			segs[i].write = u8(in) & 1;
			break;
		}
	}
	fake_vq_add(&f->q[qi], segs, n);
}

static void reap(struct fz *f)
{
	uint32_t id, len;

	for (unsigned int i = 0; i < f->nq; i++)
		while (fake_vq_used(&f->q[i], &id, &len))
			if (id >= f->qsize)
				abort(); /* the device made up a head */
}

static void config_write(struct fz *f, struct in *in)
{
	static const uint8_t widths[] = {1, 2, 4};
	uint8_t off = u8(in) % 12, w = widths[u8(in) % 3], b[4];

	if (off + w > f->b.vdev.config_size)
		return;
	for (unsigned int i = 0; i < w; i++)
		b[i] = u8(in);
	pthread_mutex_lock(&f->b.vdev.lock);
	virtio_config_access(&f->b.vdev, off, b, w, true);
	pthread_mutex_unlock(&f->b.vdev.lock);
	for (unsigned int i = 0; i < w; i++)
		if (off + i >= 4 && off + i < 8) {
			unsigned int at = off + i - 4;

			f->actual = (f->actual & ~(0xffu << (8 * at))) | (uint32_t)b[i] << (8 * at);
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz *devs[8];
	struct virtio_balloon_hint_status hs;
	uint32_t cmd;
	struct in in = {data, size};
	struct virtio_balloon_stats st;
	uint64_t want;
	uint8_t sel;
	struct fz *f;
	unsigned int ops = 0;

	if (size < 1)
		return 0;
	if (!devs[0]) {
		log_set_level(LOG_ERROR); /* guest-error warnings would flood the fuzzer's output */
		for (unsigned int i = 0; i < 8; i++)
			devs[i] = fz_new(i);
	}
	sel = u8(&in);
	f = devs[(sel & 1) | (sel >> 2 & 6)];
	want = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_BALLOON_F_STATS_VQ |
	       1ull << VIRTIO_BALLOON_F_FREE_PAGE_HINT | 1ull << VIRTIO_BALLOON_F_PAGE_REPORTING;
	if (sel & 2)
		want |= 1ull << VIRTIO_F_EVENT_IDX;
	if (sel & 4)
		want |= 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	f->qsize = (uint16_t)(VIRTQ_MAX_SIZE >> (sel >> 5));
	bring_up(f, want);

	while (in.n && ops++ < 512) {
		switch (u8(&in) % 6) {
		case 0:
			add_chain(f, &in);
			break;
		case 1:
			fake_kick(&f->b.vdev, u8(&in) % 5);
			break;
		case 2:
			reap(f);
			break;
		case 3:
			config_write(f, &in);
			break;
		case 4:
			switch (u8(&in) % 6) {
			case 0:
				virtio_balloon_stats_poll(&f->b);
				break;
			case 1:
				virtio_balloon_set_target(&f->b, u32(&in));
				break;
			case 2:
				virtio_balloon_set_stats_interval(&f->b, u16(&in));
				break;
			case 3:
				virtio_balloon_hint_start(&f->b, u8(&in) & 1);
				break;
			case 4:
				virtio_balloon_hint_stop(&f->b);
				break;
			default:
				virtio_balloon_hint_status(&f->b, &hs);
				break;
			}
			break;
		default:
			reap(f);
			bring_up(f, want);
			break;
		}
	}
	for (unsigned int i = 0; i < f->nq; i++)
		fake_kick(&f->b.vdev, i);
	reap(f);
	virtio_balloon_get_stats(&f->b, &st);
	if (st.present >> VIRTIO_BALLOON_S_NR)
		abort(); /* a tag nobody knows was stored */
	if (st.actual != f->actual)
		abort(); /* actual is the driver's alone */
	if (virtio_balloon_hint_status(&f->b, &hs) == 0) {
		fake_config_read(&f->b.vdev, 8, &cmd, 4);
		if (cmd != hs.host_cmd ||
		    (cmd > VIRTIO_BALLOON_CMD_ID_DONE && cmd != f->b.last_cmd_id))
			abort(); /* the command id is the host's, and a run's id its latest */
	}
	return 0;
}
