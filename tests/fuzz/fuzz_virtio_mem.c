/* fuzz_virtio_mem.c - libFuzzer target: virtio-mem's guest-request queue and config space. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "devices/virtio/mem.h"
#include "fuzz_input.h"
#include "util/log.h"
#include "virtio_fake_driver.h"

/*
 * Input: byte 0 picks the driver's features (bit 0: refuse UNPLUGGED_INACCESSIBLE) and the
 * queue size (bits 1-3: 128 >> n).  Then records, each starting with an opcode byte (% 6):
 *   0 request: u8 type (% 6: the four, one unknown, raw u16), u8 addr kind (% 4: u16 block
 *     index in the region, raw u64, region start, just below), u16 nb_blocks, u8 layout
 *     (% 4: request + response, request only, short request, response first)
 *   1 kick     2 reap the used ring
 *   3 host: a new requested size (u16 blocks, some past the region)
 *   4 config read: u8 offset (% 64), u8 width (1, 2, 4 or 8); a write of that width
 *   5 reset and bring the device up again
 * The region is 256 MiB of MAP_NORESERVE memory (two slots) whose unplugs are real
 * madvise calls.  Invariants: no crash or sanitizer report; plugged_size is the plugged
 * blocks' size and never more than usable_region_size; the config space reads
 * what the device holds; a mapped slot is one with a plugged block.
 */

#define RAM_SIZE (1u << 20)
#define MIB      (1ull << 20)
#define REGION   (256 * MIB)
#define HP_ADDR  (16ull << 30)
#define BLOCK    (2 * MIB)
#define SLOT     (128 * MIB)
#define BUF_BASE 0x80000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fmp {
	uint32_t next;
	bool mapped[2];
};

static int fmp_slot(void *ctx, uint32_t *slot)
{
	*slot = ((struct fmp *)ctx)->next++;
	return 0;
}

static int fmp_set(void *ctx, uint32_t slot, uint64_t gpa, uint64_t size, void *hva)
{
	struct fmp *f = ctx;

	(void)hva;
	if (slot >= 2 || (size && (size != SLOT || gpa != HP_ADDR + slot * SLOT)))
		abort(); /* a slot is mapped whole, where it belongs */
	f->mapped[slot] = size != 0;
	return 0;
}

static const struct platform_ops fmp_ops = {.mem_slot = fmp_slot, .mem_set = fmp_set};

static uint8_t *region;
static struct fake_guest g;

static void reap(struct fake_vq *q)
{
	uint32_t id, len;

	while (fake_vq_used(q, &id, &len))
		if (id >= q->size || len != VIRTIO_MEM_RESP_SIZE)
			abort(); /* every answer is a whole response */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct virtio_mem_opts o = {
	    .addr = HP_ADDR, .region_size = REGION, .block_size = BLOCK, .slot_size = SLOT};
	struct in in = {data, size};
	struct fake_transport t;
	struct fake_vq q;
	struct virtio_mem m;
	struct fmp fp = {0};
	struct err e = {0};
	uint8_t head = u8(&in);
	uint64_t want = head & 1 ? ~(1ull << VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE) : ~0ull;
	uint16_t qsize = (uint16_t)(128 >> (head >> 1 & 7));
	unsigned int nbuf = 0;

	if (!region) {
		if (!getenv("FUZZ_LOG"))
			log_set_level(LOG_OFF);
		region = mmap(NULL, REGION, PROT_READ | PROT_WRITE,
		              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (region == MAP_FAILED || fake_guest_init(&g, RAM_SIZE) < 0)
			abort();
		g.env.plat.ops = &fmp_ops;
	}
	memset(g.ram, 0, RAM_SIZE);
	g.brk = 0x1000;
	g.env.plat.ctx = &fp;
	o.hva = region;
	if (virtio_mem_init(&m, &o, &g.env, &e) < 0 ||
	    fake_bring_up(&g, &m.vdev, &t, want, &q, 1, qsize) < 0)
		abort();

	while (in.n) {
		switch (u8(&in) % 6) {
		case 0: {
			uint64_t req = BUF_BASE + 0x100ull * (nbuf++ % 64), resp = req + 0x80;
			uint8_t *r = fake_guest_ptr(&g, req);
			uint8_t tsel = u8(&in) % 6, akind = u8(&in) % 4;
			uint16_t type = tsel < 5 ? tsel : u16(&in), nb;
			uint64_t addr = akind == 0   ? HP_ADDR + (u16(&in) % 256) * BLOCK
			                : akind == 1 ? u64(&in)
			                : akind == 2 ? HP_ADDR
			                             : HP_ADDR - BLOCK;
			struct fake_seg s[2];
			unsigned int n = 2;

			nb = u16(&in);
			memset(r, 0, 0x100);
			memcpy(r, &type, 2);
			memcpy(r + 8, &addr, 8);
			memcpy(r + 16, &nb, 2);
			s[0] = (struct fake_seg){req, VIRTIO_MEM_REQ_SIZE, false};
			s[1] = (struct fake_seg){resp, VIRTIO_MEM_RESP_SIZE, true};
			switch (u8(&in) % 4) {
			case 1:
				n = 1;
				break;
			case 2:
				s[0].len = 23;
				break;
			case 3:
				s[0] = s[1];
				s[1] = (struct fake_seg){req, VIRTIO_MEM_REQ_SIZE, false};
				break;
			}
			if (fake_vq_add(&q, s, n) < 0)
				reap(&q);
			break;
		}
		case 1:
			fake_kick(&m.vdev, 0);
			break;
		case 2:
			reap(&q);
			break;
		case 3:
			virtio_mem_set_requested(&m, (uint64_t)(u16(&in) % 300) * BLOCK);
			break;
		case 4: {
			uint8_t buf[8] = {0};
			uint32_t off = u8(&in) % 64, w = 1u << (u8(&in) % 4);

			fake_config_read(&m.vdev, off, buf, w);
			pthread_mutex_lock(&m.vdev.lock);
			virtio_config_access(&m.vdev, off, buf, w, true);
			pthread_mutex_unlock(&m.vdev.lock);
			break;
		}
		default:
			reap(&q);
			if (fake_restart(&g, &m.vdev, &t, want, &q, 1, qsize) < 0)
				abort();
			break;
		}
	}
	fake_kick(&m.vdev, 0);
	reap(&q);
	{
		uint64_t on = 0, cfg[7];

		for (uint64_t b = 0; b < m.nblocks; b++)
			on += m.plugged[b / 64] >> (b % 64) & 1;
		if (on * BLOCK != m.plugged_size || m.plugged_size > m.usable_region_size ||
		    m.usable_region_size > REGION)
			abort();
		for (unsigned int s = 0; s < 2; s++)
			if (fp.mapped[s] != (m.slot_plugged[s] > 0))
				abort();
		fake_config_read(&m.vdev, 0, cfg, sizeof(cfg));
		if (cfg[0] != BLOCK || cfg[2] != HP_ADDR || cfg[3] != REGION ||
		    cfg[4] != m.usable_region_size || cfg[5] != m.plugged_size ||
		    cfg[6] != m.requested_size)
			abort();
	}
	virtio_mem_destroy(&m);
	if (fp.mapped[0] || fp.mapped[1])
		abort(); /* destroy unmaps every slot */
	return 0;
}
