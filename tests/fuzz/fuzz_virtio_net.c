/* fuzz_virtio_net.c - libFuzzer target: virtio-net tx/rx chains, host frames, resets, corruption.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "virtio_fake_driver.h"

/*
 * Input: byte 0 picks the driver's features and the backend kind
 *   bit 0 MRG_RXBUF, bit 1 EVENT_IDX, bit 2 INDIRECT_DESC, bit 3 GUEST_CSUM,
 *   bit 4 backend without header (slirp-like), bits 5-7 log2 of the rx ring size / 8
 *   (modulo 6; the values 6 and 7 also rate-limit both directions: small ops and
 *   bandwidth buckets on a fake clock that each loop run (5) advances by 1 ms,
 *   firing both limiters' timers);
 * then a program of operations (first byte of each: opcode % 10):
 *   0 tx chain   1 rx chain     (n segs, each: u16 offset, u16 len, flags)
 *   2 tx kick    3 rx kick      4 host frame (u16 len, bytes)   5 run the loop
 *   6 reap used  7 reset and restart   8 corrupt a ring byte   9 indirect rx chain
 * The backend is a socketpair in this process: nothing leaves it.  The NIC answers MMDS at
 * 169.254.169.254 (mmds/stack.h): tx frames for it go to the stack, its answers to rx.
 *
 * Invariants (checked until the program corrupts a ring): no crash, no
 * sanitizer report; each used length fits the chain it answers (rx: at most
 * its writable bytes; tx: 0); num_buffers is 1..ring size; frames reaching
 * the host are 14..NET_MAX_PACKET bytes after the header.
 */

#define RAM_SIZE  (12u << 20)
#define DATA_BASE (1u << 20) /* below: rings and indirect tables */
#define DATA_SIZE (2u << 20) /* buffers the device only reads: anywhere, overlapping */
#define RX_BASE   (DATA_BASE + DATA_SIZE)
#define RX_SIZE   (8u << 20) /* buffers the device writes: bump-allocated, never shared */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Guest errors are the point here; keep their (rate-limited) warnings out of the run. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	return 0;
}

/* One RAM for all runs: only the ring area (below DATA_BASE) is cleared each time. */
static int guest_init(struct fake_guest *g)
{
	static uint8_t *ram;

	if (!ram) {
		ram = aligned_alloc(4096, RAM_SIZE);
		if (!ram)
			return -1;
		memset(ram, 0, RAM_SIZE);
	}
	memset(ram, 0, DATA_BASE);
	memset(g, 0, sizeof(*g));
	g->ram = ram;
	g->size = RAM_SIZE;
	g->brk = 0x1000;
	if (gmem_add(&g->gm, 0, RAM_SIZE, ram) < 0 || evloop_init(&g->loop, NULL) < 0)
		return -1;
	g->env.gm = &g->gm;
	g->env.loop = &g->loop;
	return 0;
}

struct fbe {
	struct net_backend nb;
	int fd[2];
};

static ssize_t fbe_send(struct net_backend *b, const struct iovec *iov, int n)
{
	ssize_t r = writev(((struct fbe *)b)->fd[0], iov, n);

	return r < 0 ? -errno : r;
}

static ssize_t fbe_recv(struct net_backend *b, const struct iovec *iov, int n)
{
	ssize_t r = readv(((struct fbe *)b)->fd[0], iov, n);

	return r < 0 ? -errno : r;
}

static int fbe_set_offloads(struct net_backend *b, uint64_t f)
{
	(void)b;
	(void)f;
	return 0;
}

static void fbe_destroy(struct net_backend *b)
{
	(void)b;
}

static const struct net_backend_ops fbe_ops = {fbe_send, fbe_recv, fbe_set_offloads, fbe_destroy};

struct ctx {
	struct fake_guest g;
	struct fbe be;
	struct virtio_net n;
	struct fake_transport t;
	struct fake_vq q[2];
	uint16_t rxsize;
	uint64_t want;
	uint32_t cap[2][256]; /* per head: writable bytes of the chain made available */
	struct {
		unsigned int n;
		uint64_t gpa[8];
		uint32_t len[8];
	} rxseg[256];            /* per rx head: its writable segments */
	unsigned int frame_left; /* rx used entries still owed to the current frame */
	uint32_t rx_brk;         /* next free byte of the rx buffer area */
	bool corrupted;
	bool limited;
	uint64_t now; /* the limiters' fake clock, ns */
	const uint8_t *p, *end;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct ctx *)ctx)->now;
}

/* The limiters' clock moves on and their timers fire, as the VMM loop would see it. */
static void tick(struct ctx *c)
{
	struct rl_watched *l[2] = {&c->n.rx_limiter, &c->n.tx_limiter};
	unsigned int i;

	c->now += 1000000;
	for (i = 0; i < 2; i++)
		if (l[i]->watched)
			l[i]->w[l[i]->cur].cb(&l[i]->w[l[i]->cur], EPOLLIN);
}

static uint8_t u8(struct ctx *c)
{
	return c->p < c->end ? *c->p++ : 0;
}

static uint16_t u16(struct ctx *c)
{
	uint16_t lo = u8(c);

	return (uint16_t)(lo | u8(c) << 8);
}

static void start(struct ctx *c)
{
	if (fake_vq_init(&c->q[0], &c->g, c->rxsize) < 0 || fake_vq_init(&c->q[1], &c->g, 256) < 0)
		abort();
	fake_start(&c->n.vdev, &c->t, c->want, c->q, 2);
}

static void add_chain(struct ctx *c, unsigned int qi, bool indirect)
{
	struct fake_seg s[8];
	unsigned int i, n = 1 + u8(c) % 8;
	uint32_t cap = 0;
	int head;

	for (i = 0; i < n; i++) {
		uint32_t off = (uint32_t)u16(c) * 64 % DATA_SIZE;
		uint8_t fl = u8(c);
		uint32_t len = u16(c);
		/* rx chains mostly writable, tx chains mostly readable; sometimes not. */
		bool wr = qi == 0 ? !(fl & 1) : (fl & 1);

		if (!(fl & 0x40))
			len %= 4096;
		if (fl & 0x80)
			len = (len | 0x10000) & 0x1ffff; /* sometimes past 64 KiB */
		if (wr && qi == 0) {
			/* Writable rx memory is never shared, so headers survive until reaped. */
			if (len > RX_SIZE - c->rx_brk)
				return;
			s[i] = (struct fake_seg){RX_BASE + c->rx_brk, len, true};
			c->rx_brk += (len + 15) & ~15u;
			if (c->rx_brk > RX_SIZE)
				c->rx_brk = RX_SIZE;
		} else {
			if (off + len > DATA_SIZE)
				len = DATA_SIZE - off;
			s[i] = (struct fake_seg){DATA_BASE + off, len, wr};
		}
		if (s[i].write)
			cap += len;
	}
	head = indirect ? fake_vq_add_indirect(&c->q[qi], s, n) : fake_vq_add(&c->q[qi], s, n);
	if (head < 0 || head >= c->q[qi].size)
		return; /* a corrupted free list hands out anything */
	c->cap[qi][head] = cap;
	if (qi == 0) {
		c->rxseg[head].n = 0;
		for (i = 0; i < n; i++)
			if (s[i].write) {
				unsigned int k = c->rxseg[head].n++;

				c->rxseg[head].gpa[k] = s[i].gpa;
				c->rxseg[head].len[k] = s[i].len;
			}
	}
}

/* Byte `off` of the writable part of rx chain `head` (0 when beyond it). */
static uint8_t rx_byte(struct ctx *c, uint32_t head, uint32_t off)
{
	unsigned int i;

	for (i = 0; i < c->rxseg[head].n; i++) {
		if (off < c->rxseg[head].len[i])
			return *(uint8_t *)fake_guest_ptr(&c->g, c->rxseg[head].gpa[i] + off);
		off -= c->rxseg[head].len[i];
	}
	return 0;
}

static void pump(struct ctx *c)
{
	struct epoll_event evs[16];
	int i, k, round;

	for (round = 0; round < 8; round++) {
		k = epoll_wait(c->g.loop.epfd, evs, 16, 0);
		if (k <= 0)
			return;
		for (i = 0; i < k; i++) {
			struct evloop_watch *w = evs[i].data.ptr;

			w->cb(w, evs[i].events);
		}
	}
}

static void reap(struct ctx *c)
{
	static uint8_t buf[NET_MAX_PACKET + 64];
	unsigned int qi;
	uint32_t id, len;
	ssize_t r;

	for (qi = 0; qi < 2; qi++) {
		while (fake_vq_used(&c->q[qi], &id, &len)) {
			if (c->corrupted)
				continue;
			if (id >= c->q[qi].size)
				abort();
			if (qi == 1 && len != 0)
				abort(); /* tx: the device writes nothing */
			if (qi == 0 && len > c->cap[0][id])
				abort(); /* rx: never more than the buffer holds */
			if (qi == 0 && c->frame_left) {
				if (len == 0)
					abort(); /* a frame's buffers come back together, used */
				c->frame_left--;
			} else if (qi == 0 && len) {
				/* First buffer of a frame: §5.1.6.4 num_buffers. */
				unsigned int nb = rx_byte(c, id, 10) | rx_byte(c, id, 11) << 8;
				bool mrg = c->want >> VIRTIO_NET_F_MRG_RXBUF & 1;

				if (len < VNET_HDR_LEN || nb < 1 || nb > c->q[0].size ||
				    (!mrg && nb != 1))
					abort();
				c->frame_left = nb - 1;
			}
		}
	}
	while ((r = recv(c->be.fd[1], buf, sizeof(buf), MSG_DONTWAIT)) >= 0) {
		size_t hdr = c->be.nb.hdr_len;

		if (!c->corrupted &&
		    ((size_t)r < hdr + 14 || (size_t)r > NET_MAX_PACKET - 12 + hdr))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctx c;
	static uint8_t frame[NET_MAX_PACKET + 64];
	struct virtio_net_opts o = {.id = "fuzz", .backend = VIRTIO_NET_BACKEND_CUSTOM};
	struct rl_clock clk = {fake_now, &c};
	struct rate_limiter_cfg lim = {.bandwidth = {.size = 16384, .refill_time_ms = 2},
	                               .ops = {.size = 4, .refill_time_ms = 2}};
	struct err e = {0};
	struct mmds *mm;
	uint8_t sel;
	unsigned int ops = 0;

	if (size < 1)
		return 0;
	memset(&c, 0, sizeof(c));
	c.p = data + 1;
	c.end = data + size;
	sel = data[0];
	if (guest_init(&c.g) < 0)
		abort();
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, c.be.fd) < 0)
		abort();
	c.be.nb = (struct net_backend){.ops = &fbe_ops,
	                               .kind = "fuzz",
	                               .rx_fd = c.be.fd[0],
	                               .hdr_len = (sel & 16) ? 0 : VNET_HDR_LEN,
	                               .offloads = (sel & 16) ? 0 : 0x3fffull};
	o.custom = &c.be.nb;
	c.limited = (sel >> 5) >= 6;
	if (c.limited) {
		o.rx_rate_limiter = lim;
		o.tx_rate_limiter = lim;
		o.clock = &clk;
	}
	if (mmds_create(4096, &mm) < 0)
		abort();
	o.mmds = mm;
	o.mmds_ipv4 = MMDS_DEFAULT_IPV4;
	if (virtio_net_init(&c.n, &o, &c.g.env, &e) < 0)
		abort();
	c.want = ~0ull;
	if (!(sel & 1))
		c.want &= ~(1ull << VIRTIO_NET_F_MRG_RXBUF);
	if (!(sel & 2))
		c.want &= ~(1ull << VIRTIO_F_EVENT_IDX);
	if (!(sel & 4))
		c.want &= ~(1ull << VIRTIO_F_INDIRECT_DESC);
	if (!(sel & 8))
		c.want &= ~(1ull << VIRTIO_NET_F_GUEST_CSUM);
	c.rxsize = (uint16_t)(8u << ((sel >> 5) % 6)); /* 8..256 */
	start(&c);

	while (c.p < c.end && ops++ < 256) {
		uint8_t op = u8(&c) % 10;

		switch (op) {
		case 0:
		case 1:
			add_chain(&c, op == 0 ? 1 : 0, false);
			break;
		case 9:
			if (sel & 4)
				add_chain(&c, 0, true);
			break;
		case 2:
			fake_kick(&c.n.vdev, VIRTIO_NET_TXQ);
			break;
		case 3:
			fake_kick(&c.n.vdev, VIRTIO_NET_RXQ);
			break;
		case 4: {
			size_t len = u16(&c), i;

			if (len & 1)
				len = NET_MAX_PACKET - (len >> 8); /* big frames too */
			for (i = 0; i < len && i < sizeof(frame); i++)
				frame[i] = u8(&c);
			(void)!send(c.be.fd[1], frame, len, MSG_DONTWAIT);
			break;
		}
		case 5:
			if (c.limited)
				tick(&c);
			pump(&c);
			break;
		case 6:
			reap(&c);
			break;
		case 7:
			fake_set_status(&c.n.vdev, 0);
			memset(c.g.ram, 0, DATA_BASE); /* new rings where the old ones were */
			c.g.brk = 0x1000;
			c.rx_brk = 0;
			memset(c.cap, 0, sizeof(c.cap));
			c.frame_left = 0;
			c.corrupted = false;
			start(&c);
			break;
		case 8: {
			struct fake_vq *q = &c.q[u8(&c) & 1];
			uint32_t span = 16u * q->size + 6 + 2u * q->size;
			uint32_t off = u16(&c) % span;

			((uint8_t *)fake_guest_ptr(&c.g, q->desc))[off] = u8(&c);
			c.corrupted = true;
			break;
		}
		}
	}
	pump(&c);
	reap(&c);
	virtio_net_destroy(&c.n);
	mmds_free(mm);
	close(c.be.fd[0]);
	close(c.be.fd[1]);
	evloop_destroy(&c.g.loop);
	return 0;
}
