/* t_virtio_mem.c - virtio-mem (virtio 1.2 §5.15): plug what the host requests, keep a pattern. */
#include "virtio.h"

/*
 * The host drives this test through ember's API (tests/integration/test_mem_hotplug.py):
 *
 *   1. Start the device (VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, one queue).
 *      "# vmem: ready block=B region=R"
 *   2. Wait for requested_size (PATCH /hotplug/memory), PLUG that many blocks from the
 *      region's start in one request, write a pattern into every 4 KiB page of them (the
 *      page's address XOR a constant in its first and last 8 bytes).
 *      "# vmem: plugged N MiB, pattern written"
 *   3. Wait for requested_size to drop below plugged_size (the host may save and restore the
 *      VM meanwhile), check every page's pattern, UNPLUG the blocks.
 *      "# vmem: pattern intact in P pages" then "# vmem: unplugged N MiB, plugged_size 0"
 *   4. Wait for requested_size to rise again (the host is done reading), end.
 *      "# vmem: done"
 */

#define F_UNPLUGGED_INACCESSIBLE 1
#define CFG_BLOCK_SIZE           0
#define CFG_ADDR                 16
#define CFG_REGION_SIZE          24
#define CFG_PLUGGED_SIZE         40
#define CFG_REQUESTED_SIZE       48
#define REQ_PLUG                 0
#define REQ_UNPLUG               1
#define RESP_ACK                 0
#define PAGE                     4096u
#define PATTERN                  0x5eedf00dcafe0000ull

struct mem_req {
	u16 type;
	u16 pad[3];
	u64 addr;
	u16 nb_blocks;
	u16 pad2[3];
} __attribute__((packed));

struct mem_resp {
	u16 type;
	u16 pad[3];
	u16 state;
} __attribute__((packed));

_Static_assert(sizeof(struct mem_req) == 24, "§5.15.6: 24-byte request");
_Static_assert(sizeof(struct mem_resp) == 10, "§5.15.6: 10-byte response");

/* Poll requested_size until `ok` holds for it; its value. */
static u64 wait_requested(struct virtio_dev *d, bool (*ok)(u64 v, u64 arg), u64 arg)
{
	u64 end = deadline_ms(cmdline_num("test.vmem_wait_ms", 300000));
	u64 v = virtio_cfg64(d, CFG_REQUESTED_SIZE);

	while (!ok(v, arg) && rdtsc() < end) {
		u64 next = deadline_ms(5);

		while (rdtsc() < next)
			cpu_relax();
		v = virtio_cfg64(d, CFG_REQUESTED_SIZE);
	}
	return v;
}

static bool above(u64 v, u64 arg)
{
	return v > arg;
}

static bool below(u64 v, u64 arg)
{
	return v < arg;
}

/* One request; the response type, or ~0 when the device did not answer. */
static u16 mem_request(struct vq *q, struct mem_req *req, struct mem_resp *resp)
{
	struct vbuf b[2] = {{pa(req), sizeof(*req), false}, {pa(resp), sizeof(*resp), true}};
	u16 head;
	u32 len;

	resp->type = 0xffff;
	if (!expect(vq_add(q, b, 2, false) >= 0, "cannot queue a request"))
		return 0xffff;
	vq_kick(q);
	if (!expect(vq_wait_get(q, &head, &len, 10000), "request %u not answered in 10 s",
	            req->type))
		return 0xffff;
	expect(len == sizeof(*resp), "used length %u, want %u", len, (u32)sizeof(*resp));
	return resp->type;
}

static void mem_exercise(struct virtio_dev *d)
{
	struct mem_req *req;
	struct mem_resp *resp;
	struct vq *q;
	u64 block, addr, region, want, size, npages, bad = 0;

	if (!virtio_start(d, BIT64(F_UNPLUGGED_INACCESSIBLE)) || !(q = virtio_queue(d, 0, 0, 0)))
		return;
	if (!expect(virtio_has(d, F_UNPLUGGED_INACCESSIBLE),
	            "VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE not offered") ||
	    !virtio_ready(d))
		return;
	virtio_describe(d);
	block = virtio_cfg64(d, CFG_BLOCK_SIZE);
	addr = virtio_cfg64(d, CFG_ADDR);
	region = virtio_cfg64(d, CFG_REGION_SIZE);
	printf("# vmem: ready block=%llu region=%llu\n", block, region);
	req = dma_alloc(sizeof(*req), 64);
	resp = dma_alloc(sizeof(*resp), 64);
	if (!req || !resp ||
	    !expect(block && region, "block size %llu, region %llu", block, region))
		return;

	/* 2: plug what the host asks for, from the region's start. */
	want = wait_requested(d, above, 0);
	if (!expect(want && want % block == 0 && want / block <= 65535 && want <= 4ull << 30,
	            "requested_size %llu", want))
		return;
	for (u64 g = addr; g < addr + want; g += 1ull << 30)
		if (!expect(map_high(g), "cannot map 0x%llx", g))
			return;
	memset(req, 0, sizeof(*req));
	req->type = REQ_PLUG;
	req->addr = addr;
	req->nb_blocks = (u16)(want / block);
	if (!expect(mem_request(q, req, resp) == RESP_ACK, "PLUG %llu blocks: response %u",
	            want / block, resp->type))
		return;
	size = virtio_cfg64(d, CFG_PLUGGED_SIZE);
	expect(size == want, "plugged_size %llu after the PLUG, want %llu", size, want);
	npages = want / PAGE;
	for (u64 i = 0; i < npages; i++) {
		volatile u64 *p = phys(addr + i * PAGE);

		p[0] = (addr + i * PAGE) ^ PATTERN;
		p[PAGE / 8 - 1] = ~((addr + i * PAGE) ^ PATTERN);
	}
	printf("# vmem: plugged %llu MiB, pattern written\n", want >> 20);

	/* 3: the host asks for less (after a snapshot and restore, maybe): check, unplug. */
	wait_requested(d, below, want);
	for (u64 i = 0; i < npages; i++) {
		volatile u64 *p = phys(addr + i * PAGE);

		if (p[0] != ((addr + i * PAGE) ^ PATTERN) ||
		    p[PAGE / 8 - 1] != ~((addr + i * PAGE) ^ PATTERN)) {
			if (bad++ < 4)
				printf("# vmem: page 0x%llx holds 0x%llx..0x%llx\n",
				       addr + i * PAGE, p[0], p[PAGE / 8 - 1]);
		}
	}
	if (!expect(bad == 0, "%llu of %llu pages lost their pattern", bad, npages))
		return;
	printf("# vmem: pattern intact in %llu pages\n", npages);
	req->type = REQ_UNPLUG;
	if (!expect(mem_request(q, req, resp) == RESP_ACK, "UNPLUG: response %u", resp->type))
		return;
	size = virtio_cfg64(d, CFG_PLUGGED_SIZE);
	printf("# vmem: unplugged %llu MiB, plugged_size %llu\n", want >> 20, size);
	/* 4: the host reads its side while the guest (and so ember) is still there, then asks
	 * for memory once more as the signal to end. */
	wait_requested(d, above, 0);
	printf("# vmem: done\n");
	vq_expect_clean(q);
	expect(!(virtio_get_status(d) & VIRTIO_STATUS_NEEDS_RESET), "NEEDS_RESET set");
}

GUEST_TEST(virtio_mem)
{
	static struct virtio_dev d;
	u64 mark = dma_mark();

	if (!virtio_open(&d, VIRTIO_ID_MEM, "mem", 0))
		return;
	mem_exercise(&d);
	virtio_close(&d);
	dma_release(mark);
}
