/* test_virtio_net.c - unit tests for virtio-net: tx/rx, headers, MRG_RXBUF, features, config. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "test.h"
#include "virtio_fake_driver.h"

/*
 * The device runs against a fake backend: a SOCK_DGRAM socketpair, one frame
 * per datagram, exactly like a tap fd (hdr_len 12) or a bare-frame backend
 * like slirp (hdr_len 0).  The test plays the host network on the other end.
 * One test uses the real slirp backend (in-process ARP, restricted stack).
 */

#define F(b)   (1ull << (b))
#define ALL    (~0ull)
#define NO_MRG (~F(VIRTIO_NET_F_MRG_RXBUF))

struct fake_be {
	struct net_backend nb;
	int fd[2];         /* fd[0]: the device's end; fd[1]: the test's */
	uint64_t offl_set; /* last set_offloads argument */
	unsigned int offl_calls;
	int send_err; /* non-zero: send fails with it */
	int recv_err; /* non-zero: recv fails with it */
};

static ssize_t fbe_send(struct net_backend *b, const struct iovec *iov, int n)
{
	struct fake_be *f = (struct fake_be *)b;
	ssize_t r;

	if (f->send_err)
		return f->send_err;
	r = writev(f->fd[0], iov, n);
	return r < 0 ? -errno : r;
}

static ssize_t fbe_recv(struct net_backend *b, const struct iovec *iov, int n)
{
	struct fake_be *f = (struct fake_be *)b;
	ssize_t r;

	if (f->recv_err)
		return f->recv_err;
	r = readv(f->fd[0], iov, n);

	return r < 0 ? -errno : r;
}

static int fbe_set_offloads(struct net_backend *b, uint64_t features)
{
	struct fake_be *f = (struct fake_be *)b;

	f->offl_set = features;
	f->offl_calls++;
	return 0;
}

static void fbe_destroy(struct net_backend *b)
{
	(void)b; /* never called: custom backends are the caller's */
}

static const struct net_backend_ops fbe_ops = {fbe_send, fbe_recv, fbe_set_offloads, fbe_destroy};

static void fbe_init(struct fake_be *f, unsigned int hdr_len, uint64_t offloads)
{
	int sz = 1 << 20;

	memset(f, 0, sizeof(*f));
	socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, f->fd);
	setsockopt(f->fd[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(f->fd[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	f->nb = (struct net_backend){.ops = &fbe_ops,
	                             .kind = "fake",
	                             .rx_fd = f->fd[0],
	                             .hdr_len = hdr_len,
	                             .offloads = offloads};
}

static void fbe_fini(struct fake_be *f)
{
	close(f->fd[0]);
	close(f->fd[1]);
}

/* One test's world: guest RAM + loop, backend, device, rings. */
struct world {
	struct fake_guest g;
	struct fake_be be;
	struct virtio_net n;
	struct fake_transport t;
	struct fake_vq q[2];
	uint8_t status;
};

static const uint64_t tap_offloads = F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) |
                                     F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6) |
                                     F(VIRTIO_NET_F_GUEST_ECN) | F(VIRTIO_NET_F_HOST_TSO4) |
                                     F(VIRTIO_NET_F_HOST_TSO6) | F(VIRTIO_NET_F_HOST_ECN);

static bool world_init(struct world *w, unsigned int hdr_len, uint64_t offloads,
                       const struct virtio_net_opts *o)
{
	struct virtio_net_opts def = {.id = "net0"};
	struct err e = {0};

	memset(w, 0, sizeof(*w));
	if (fake_guest_init(&w->g, 16u << 20) < 0)
		return false;
	fbe_init(&w->be, hdr_len, offloads);
	if (!o)
		o = &def;
	def = *o;
	def.backend = VIRTIO_NET_BACKEND_CUSTOM;
	def.custom = &w->be.nb;
	CHECK_EQ(virtio_net_init(&w->n, &def, &w->g.env, &e), 0);
	if (e.code) {
		printf("  %s\n", e.msg);
		return false;
	}
	fake_vq_init(&w->q[0], &w->g, 256);
	fake_vq_init(&w->q[1], &w->g, 256);
	return true;
}

static void world_start(struct world *w, uint64_t want)
{
	w->status = fake_start(&w->n.vdev, &w->t, want, w->q, 2);
}

static void world_fini(struct world *w)
{
	virtio_net_destroy(&w->n);
	fbe_fini(&w->be);
	fake_guest_fini(&w->g);
}

/* Run the VMM loop's ready callbacks until none is ready (each wait up to ms). */
static void pump(struct world *w, int ms)
{
	int round;

	for (round = 0; round < 64; round++) {
		struct epoll_event evs[16];
		int i, k = epoll_wait(w->g.loop.epfd, evs, 16, ms);

		if (k <= 0)
			return;
		for (i = 0; i < k; i++) {
			struct evloop_watch *wt = evs[i].data.ptr;

			wt->cb(wt, evs[i].events);
		}
	}
}

static uint64_t alloc_fill(struct world *w, uint32_t len, uint8_t seed)
{
	uint64_t gpa = fake_guest_alloc(&w->g, len, 16);
	uint8_t *p = fake_guest_ptr(&w->g, gpa);
	uint32_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
	return gpa;
}

static void fill_frame(uint8_t *p, uint32_t len, uint8_t seed)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seed ^ (i * 13));
	if (len >= 14) {
		memset(p, 0xff, 6);
		p[12] = 0x88;
		p[13] = 0xb5;
	}
}

/* Host side: a datagram for the device (header as given by the caller). */
static void host_send(struct world *w, const void *buf, size_t len)
{
	CHECK_EQ(send(w->be.fd[1], buf, len, 0), (ssize_t)len);
}

static ssize_t host_recv(struct world *w, void *buf, size_t len)
{
	return recv(w->be.fd[1], buf, len, MSG_DONTWAIT);
}

/* ---- identity, features, config ---- */

TEST(identity_and_config)
{
	struct world w;
	uint8_t cfg[VIRTIO_NET_CONFIG_SIZE], b;
	static const uint8_t mac0[6] = {0x06, 0x00, 0xac, 0x10, 0x00, 0x02};

	if (!world_init(&w, 0, 0, NULL))
		return;
	CHECK_EQ(w.n.vdev.type, VIRTIO_ID_NET);
	CHECK_EQ(w.n.vdev.nqueues, 2);
	CHECK_EQ(w.n.vdev.vq[0].max_size, 256);
	CHECK_EQ(w.n.vdev.vq[1].max_size, 256);
	CHECK_EQ(w.n.vdev.config_size, 12);
	CHECK_STR_CONTAINS(w.n.vdev.name, "net0");
	CHECK(w.n.vdev.features & F(VIRTIO_NET_F_MAC));
	CHECK(w.n.vdev.features & F(VIRTIO_NET_F_STATUS));
	CHECK(w.n.vdev.features & F(VIRTIO_NET_F_MRG_RXBUF));
	CHECK(w.n.vdev.features & F(VIRTIO_F_EVENT_IDX));
	CHECK(w.n.vdev.features & F(VIRTIO_F_INDIRECT_DESC));
	CHECK(w.n.vdev.features & F(VIRTIO_F_VERSION_1));
	CHECK(!(w.n.vdev.features & F(VIRTIO_NET_F_MTU)));
	CHECK(!(w.n.vdev.features & tap_offloads)); /* a bare-frame backend offers no offload */
	CHECK(!(w.n.vdev.features & F(2)));         /* no CTRL_GUEST_OFFLOADS / CTRL_VQ (17) */
	CHECK(!(w.n.vdev.features & F(17)));
	fake_config_read(&w.n.vdev, 0, cfg, sizeof(cfg));
	CHECK_EQ(memcmp(cfg, mac0, 6), 0);
	CHECK_EQ(cfg[6] | cfg[7] << 8, VIRTIO_NET_S_LINK_UP);
	CHECK_EQ(cfg[8] | cfg[9] << 8, 1);
	CHECK_EQ(cfg[10] | cfg[11] << 8, 0);
	fake_config_read(&w.n.vdev, 5, &b, 1);
	CHECK_EQ(b, 0x02);
	/* Writes are ignored (§5.1.4: read-only in 1.x). */
	pthread_mutex_lock(&w.n.vdev.lock);
	b = 0x77;
	virtio_config_access(&w.n.vdev, 0, &b, 1, true);
	pthread_mutex_unlock(&w.n.vdev.lock);
	fake_config_read(&w.n.vdev, 0, &b, 1);
	CHECK_EQ(b, 0x06);
	world_fini(&w);
}

TEST(mac_mtu_options)
{
	struct virtio_net_opts o = {
	    .id = "net1", .has_mac = true, .mac = {0x52, 0x54, 0, 1, 2, 3}, .mtu = 9000};
	struct world w;
	uint8_t cfg[12], mac[6];
	struct err e = {0};
	struct virtio_net n;

	if (!world_init(&w, 12, 0, &o))
		return;
	CHECK(w.n.vdev.features & F(VIRTIO_NET_F_MTU));
	fake_config_read(&w.n.vdev, 0, cfg, sizeof(cfg));
	CHECK_EQ(memcmp(cfg, o.mac, 6), 0);
	CHECK_EQ(cfg[10] | cfg[11] << 8, 9000);
	/* Bad options fail cleanly. */
	o.mac[0] = 0x01; /* multicast */
	o.backend = VIRTIO_NET_BACKEND_CUSTOM;
	o.custom = &w.be.nb;
	CHECK_EQ(virtio_net_init(&n, &o, &w.g.env, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "multicast");
	err_clear(&e);
	o.mac[0] = 0x52;
	o.mtu = 20;
	CHECK_EQ(virtio_net_init(&n, &o, &w.g.env, &e), -EINVAL);
	err_clear(&e);
	o.mtu = 0;
	o.custom = NULL;
	CHECK_EQ(virtio_net_init(&n, &o, &w.g.env, &e), -EINVAL);
	err_clear(&e);
	o.backend = VIRTIO_NET_BACKEND_TAP;
	o.tap_name = NULL;
	CHECK_EQ(virtio_net_init(&n, &o, &w.g.env, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "interface name");
	virtio_net_default_mac(9, mac);
	CHECK_EQ(mac[0], 0x06);
	CHECK_EQ(mac[5], 11);
	world_fini(&w);
}

TEST(offloads_per_backend_and_negotiation)
{
	struct world w;

	if (!world_init(&w, 12, tap_offloads | F(40) /* not an offload: ignored */, NULL))
		return;
	CHECK_EQ(w.n.vdev.features & tap_offloads, tap_offloads);
	CHECK(!(w.n.vdev.features & F(40)));
	/* The driver takes GUEST_CSUM and HOST_TSO4 only: exactly that reaches the backend. */
	world_start(&w, ~(tap_offloads & ~(F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) |
	                                   F(VIRTIO_NET_F_CSUM))));
	CHECK(w.status & VIRTIO_STATUS_DRIVER_OK);
	CHECK_EQ(w.be.offl_calls, 1);
	CHECK_EQ(w.be.offl_set,
	         F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_CSUM));
	world_fini(&w);
}

/* ---- transmit ---- */

TEST(tx_header_passed_to_vnet_backend)
{
	struct world w;
	uint8_t buf[4096], *hdr;
	uint64_t h, fr;
	uint32_t id, len;
	int head;

	if (!world_init(&w, 12, tap_offloads, NULL))
		return;
	world_start(&w, ALL);
	h = alloc_fill(&w, 12, 1);
	hdr = fake_guest_ptr(&w.g, h);
	hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	fr = alloc_fill(&w, 300, 2);
	head = fake_vq_add(
	    &w.q[1], (struct fake_seg[]){{h, 5, false}, {h + 5, 7, false}, {fr, 300, false}}, 3);
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	CHECK_EQ(host_recv(&w, buf, sizeof(buf)), 312);
	CHECK_EQ(memcmp(buf, hdr, 12), 0);
	CHECK_EQ(memcmp(buf + 12, fake_guest_ptr(&w.g, fr), 300), 0);
	CHECK(fake_vq_used(&w.q[1], &id, &len));
	CHECK_EQ(id, (uint32_t)head);
	CHECK_EQ(len, 0);
	CHECK_EQ(w.t.notified[VIRTIO_NET_TXQ], 1);
	CHECK_EQ(w.n.st.tx_frames, 1);
	CHECK_EQ(w.n.st.tx_bytes, 300);
	world_fini(&w);
}

TEST(tx_header_stripped_for_bare_backend)
{
	struct world w;
	uint8_t buf[4096];
	uint64_t p;
	uint32_t id, len;

	if (!world_init(&w, 0, 0, NULL))
		return;
	world_start(&w, ALL);
	/* Header and frame in one segment, then a second: the cut falls inside the first. */
	p = alloc_fill(&w, 112, 3);
	fake_vq_add(&w.q[1], (struct fake_seg[]){{p, 40, false}, {p + 40, 72, false}}, 2);
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	CHECK_EQ(host_recv(&w, buf, sizeof(buf)), 100);
	CHECK_EQ(memcmp(buf, (uint8_t *)fake_guest_ptr(&w.g, p) + 12, 100), 0);
	CHECK(fake_vq_used(&w.q[1], &id, &len));
	CHECK_EQ(len, 0);
	world_fini(&w);
}

TEST(tx_bad_sizes_dropped_not_reset)
{
	struct world w;
	uint8_t buf[128];
	uint64_t small, big, ok, wr;
	uint32_t id, len;
	int i;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL);
	small = alloc_fill(&w, 25, 4); /* header + 13: not even an Ethernet header */
	big = alloc_fill(&w, NET_MAX_PACKET + 1, 5);
	ok = alloc_fill(&w, 60, 6);
	wr = alloc_fill(&w, 64, 7);
	fake_vq_add(&w.q[1], (struct fake_seg[]){{small, 25, false}}, 1);
	fake_vq_add(&w.q[1], (struct fake_seg[]){{big, NET_MAX_PACKET + 1, false}}, 1);
	/* Writable-only chain: no header at all. */
	fake_vq_add(&w.q[1], (struct fake_seg[]){{wr, 64, true}}, 1);
	/* Exactly the limit is fine. */
	fake_vq_add(&w.q[1], (struct fake_seg[]){{big, NET_MAX_PACKET, false}}, 1);
	fake_vq_add(&w.q[1], (struct fake_seg[]){{ok, 60, false}, {wr, 64, true}}, 2);
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	CHECK(virtio_live(&w.n.vdev));
	CHECK_EQ(w.n.st.tx_dropped, 3);
	CHECK_EQ(w.n.st.tx_frames, 2);
	{
		static uint8_t jumbo[NET_MAX_PACKET + 16];

		CHECK_EQ(host_recv(&w, jumbo, sizeof(jumbo)), NET_MAX_PACKET);
	}
	CHECK_EQ(host_recv(&w, buf, sizeof(buf)), 60);
	CHECK_EQ(host_recv(&w, buf, sizeof(buf)), -1);
	for (i = 0; i < 5; i++) {
		CHECK(fake_vq_used(&w.q[1], &id, &len));
		CHECK_EQ(len, 0);
	}
	world_fini(&w);
}

TEST(tx_backend_error_counted)
{
	struct world w;
	uint64_t p;
	uint32_t id, len;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL);
	p = alloc_fill(&w, 100, 8);
	w.be.send_err = -EINVAL;
	fake_vq_add(&w.q[1], (struct fake_seg[]){{p, 100, false}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	w.be.send_err = -EAGAIN;
	fake_vq_add(&w.q[1], (struct fake_seg[]){{p, 100, false}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	CHECK_EQ(w.n.st.tx_errors, 1);
	CHECK_EQ(w.n.st.tx_dropped, 1);
	CHECK(fake_vq_used(&w.q[1], &id, &len));
	CHECK(fake_vq_used(&w.q[1], &id, &len));
	CHECK(virtio_live(&w.n.vdev));
	world_fini(&w);
}

TEST(tx_bad_chain_needs_reset)
{
	struct world w;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL);
	fake_vq_add(&w.q[1], (struct fake_seg[]){{w.g.size - 8, 100, false}}, 1); /* past RAM */
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	CHECK(!virtio_live(&w.n.vdev));
	CHECK(w.n.vdev.status & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(w.t.config_changed, 1);
	/* A reset brings it back. */
	fake_set_status(&w.n.vdev, 0);
	CHECK(!w.n.rx_watched);
	world_fini(&w);
}

TEST(tx_many_frames_ring_reuse)
{
	struct world w;
	uint8_t buf[256];
	uint64_t p;
	uint32_t id, len;
	unsigned int i, sent = 0, got = 0, round;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL);
	p = alloc_fill(&w, 80, 9);
	for (round = 0; round < 4; round++) {
		for (i = 0; i < 200; i++)
			if (fake_vq_add(&w.q[1], (struct fake_seg[]){{p, 80, false}}, 1) >= 0)
				sent++;
		fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
		pump(&w, 0);
		while (host_recv(&w, buf, sizeof(buf)) == 80)
			got++;
		while (fake_vq_used(&w.q[1], &id, &len))
			;
	}
	CHECK_EQ(got, sent);
	CHECK_EQ(w.n.st.tx_frames, sent);
	world_fini(&w);
}

/* ---- receive ---- */

/* Read the 12-byte header the device left at gpa. */
static struct vnet_hdr_v1 guest_hdr(struct world *w, uint64_t gpa)
{
	struct vnet_hdr_v1 h;

	memcpy(&h, fake_guest_ptr(&w->g, gpa), sizeof(h));
	return h;
}

TEST(rx_one_buffer_without_mrg)
{
	struct world w;
	uint8_t pkt[12 + 200];
	uint64_t b;
	uint32_t id, len;
	int head;

	if (!world_init(&w, 12, tap_offloads, NULL))
		return;
	world_start(&w, NO_MRG & ~F(VIRTIO_NET_F_GUEST_CSUM));
	CHECK(!w.n.mrg);
	CHECK(!w.n.guest_csum);
	b = fake_guest_alloc(&w.g, 1526, 16);
	head = fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 1526, true}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	pump(&w, 0);
	CHECK(w.n.rx_watched);
	/* Host frame: tun-style header with DATA_VALID and garbage num_buffers. */
	memset(pkt, 0, 12);
	pkt[0] = VIRTIO_NET_HDR_F_DATA_VALID;
	pkt[10] = 0xee;
	pkt[11] = 0xee;
	fill_frame(pkt + 12, 200, 1);
	host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(id, (uint32_t)head);
	CHECK_EQ(len, 212);
	CHECK_EQ(guest_hdr(&w, b).num_buffers, 1);
	CHECK_EQ(guest_hdr(&w, b).flags, 0); /* §5.1.6.4.1: no GUEST_CSUM, flags zero */
	CHECK_EQ(memcmp((uint8_t *)fake_guest_ptr(&w.g, b) + 12, pkt + 12, 200), 0);
	CHECK(w.t.notified[VIRTIO_NET_RXQ] >= 1);
	CHECK_EQ(w.n.st.rx_frames, 1);
	CHECK_EQ(w.n.st.rx_bytes, 200);
	/* No buffer left: the device stops watching, the next frame waits in the backend. */
	CHECK(!w.n.rx_watched);
	host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	CHECK(!fake_vq_used(&w.q[0], &id, &len));
	b = fake_guest_alloc(&w.g, 1526, 16);
	fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 1526, true}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	pump(&w, 10);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(len, 212);
	world_fini(&w);
}

TEST(rx_guest_csum_keeps_flags)
{
	struct world w;
	uint8_t pkt[12 + 100] = {VIRTIO_NET_HDR_F_DATA_VALID};
	uint64_t b;
	uint32_t id, len;

	if (!world_init(&w, 12, tap_offloads, NULL))
		return;
	world_start(&w, ALL);
	CHECK(w.n.guest_csum);
	b = fake_guest_alloc(&w.g, 2048, 16);
	fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 2048, true}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	fill_frame(pkt + 12, 100, 2);
	host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(guest_hdr(&w, b).flags, VIRTIO_NET_HDR_F_DATA_VALID);
	world_fini(&w);
}

TEST(rx_mrg_spreads_over_buffers)
{
	struct world w;
	static uint8_t pkt[12 + 2500];
	uint64_t b[4];
	uint32_t id, len, lens[3] = {1000, 1000, 512};
	int heads[4], i;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL);
	CHECK(w.n.mrg);
	for (i = 0; i < 4; i++) {
		b[i] = fake_guest_alloc(&w.g, 1000, 16);
		heads[i] = fake_vq_add(&w.q[0], (struct fake_seg[]){{b[i], 1000, true}}, 1);
	}
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	memset(pkt, 0, 12);
	fill_frame(pkt + 12, 2500, 3);
	host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	for (i = 0; i < 3; i++) {
		CHECK(fake_vq_used(&w.q[0], &id, &len));
		CHECK_EQ(id, (uint32_t)heads[i]);
		CHECK_EQ(len, lens[i]);
	}
	CHECK(!fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(guest_hdr(&w, b[0]).num_buffers, 3);
	CHECK_EQ(memcmp((uint8_t *)fake_guest_ptr(&w.g, b[0]) + 12, pkt + 12, 988), 0);
	CHECK_EQ(memcmp(fake_guest_ptr(&w.g, b[1]), pkt + 1000, 1000), 0);
	CHECK_EQ(memcmp(fake_guest_ptr(&w.g, b[2]), pkt + 2000, 512), 0);
	/* The fourth buffer takes the next small frame. */
	host_send(&w, pkt, 12 + 60);
	pump(&w, 10);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(id, (uint32_t)heads[3]);
	CHECK_EQ(len, 72);
	CHECK_EQ(guest_hdr(&w, b[3]).num_buffers, 1);
	world_fini(&w);
}

TEST(rx_mrg_frame_waits_for_buffers)
{
	struct world w;
	static uint8_t pkt[12 + 3000], got[12 + 3000];
	uint64_t b[4];
	uint32_t id, len, total = 0, off = 0;
	int i;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL);
	b[0] = fake_guest_alloc(&w.g, 1000, 16);
	fake_vq_add(&w.q[0], (struct fake_seg[]){{b[0], 1000, true}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	memset(pkt, 0, 12);
	fill_frame(pkt + 12, 3000, 4);
	host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	CHECK(!fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(w.n.rx_pending, 3012);
	CHECK(!w.n.rx_watched);
	/* Kicks are on again so the driver's refill wakes the device. */
	CHECK_EQ(fake_vq_used_flags(&w.q[0]) & VIRTQ_USED_F_NO_NOTIFY, 0);
	for (i = 1; i < 4; i++) {
		b[i] = fake_guest_alloc(&w.g, 1000, 16);
		fake_vq_add(&w.q[0], (struct fake_seg[]){{b[i], 1000, true}}, 1);
	}
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	for (i = 0; i < 4; i++) {
		CHECK(fake_vq_used(&w.q[0], &id, &len));
		CHECK(len <= 1000);
		memcpy(got + off, fake_guest_ptr(&w.g, b[i]), len);
		off += len;
		total += len;
	}
	CHECK_EQ(total, 3012);
	CHECK_EQ(guest_hdr(&w, b[0]).num_buffers, 4);
	CHECK_EQ(memcmp(got + 12, pkt + 12, 3000), 0);
	CHECK_EQ(w.n.rx_pending, 0);
	world_fini(&w);
}

TEST(rx_too_big_without_mrg_dropped)
{
	struct world w;
	static uint8_t pkt[12 + 3000];
	uint64_t b;
	uint32_t id, len;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, NO_MRG);
	b = fake_guest_alloc(&w.g, 1526, 16);
	fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 1526, true}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	memset(pkt, 0, 12);
	fill_frame(pkt + 12, 3000, 5);
	host_send(&w, pkt, sizeof(pkt));
	host_send(&w, pkt, 12 + 100);
	pump(&w, 10);
	CHECK_EQ(w.n.st.rx_dropped, 1);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(len, 112); /* the buffer survived the drop and took the next frame */
	CHECK(virtio_live(&w.n.vdev));
	world_fini(&w);
}

TEST(rx_tiny_buffer_returned_unused)
{
	struct world w;
	uint8_t pkt[12 + 60] = {0};
	uint64_t b, ok;
	uint32_t id, len;
	int h1, h2;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL);
	b = fake_guest_alloc(&w.g, 8, 16);
	ok = fake_guest_alloc(&w.g, 2048, 16);
	h1 = fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 8, true}}, 1);
	h2 = fake_vq_add(&w.q[0], (struct fake_seg[]){{ok, 2048, true}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(id, (uint32_t)h1);
	CHECK_EQ(len, 0);
	CHECK_EQ(w.n.st.rx_bad_buffers, 1);
	fill_frame(pkt + 12, 60, 6);
	host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(id, (uint32_t)h2);
	CHECK_EQ(len, 72);
	CHECK(virtio_live(&w.n.vdev));
	world_fini(&w);
}

TEST(rx_bare_backend_gets_device_header)
{
	struct world w;
	uint8_t frame[100], zero[10] = {0};
	uint64_t b;
	uint32_t id, len;

	if (!world_init(&w, 0, 0, NULL))
		return;
	world_start(&w, ALL);
	b = alloc_fill(&w, 2048, 0xaa); /* dirty buffer: the header must be written */
	/* Header split across two segments of an indirect chain. */
	fake_vq_add_indirect(&w.q[0], (struct fake_seg[]){{b, 7, true}, {b + 7, 2041, true}}, 2);
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	fill_frame(frame, sizeof(frame), 7);
	host_send(&w, frame, sizeof(frame));
	pump(&w, 10);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(len, 112);
	CHECK_EQ(memcmp(fake_guest_ptr(&w.g, b), zero, 10), 0);
	CHECK_EQ(guest_hdr(&w, b).num_buffers, 1);
	CHECK_EQ(memcmp((uint8_t *)fake_guest_ptr(&w.g, b) + 12, frame, 100), 0);
	world_fini(&w);
}

TEST(rx_64k_frame_in_one_big_buffer)
{
	struct world w;
	static uint8_t pkt[NET_MAX_PACKET];
	uint64_t b;
	uint32_t id, len;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, NO_MRG);
	b = fake_guest_alloc(&w.g, NET_MAX_PACKET, 16);
	/* Linux's big-packet layout: header, then page-sized pieces. */
	{
		struct fake_seg s[18];
		unsigned int i, off = 0;

		for (i = 0; i < 18; i++) {
			uint32_t l =
			    i == 0 ? 12
			           : (NET_MAX_PACKET - off < 4096 ? NET_MAX_PACKET - off : 4096);

			s[i] = (struct fake_seg){b + off, l, true};
			off += l;
		}
		CHECK_EQ(off, NET_MAX_PACKET);
		fake_vq_add(&w.q[0], s, 18);
	}
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	memset(pkt, 0, 12);
	fill_frame(pkt + 12, NET_MAX_PACKET - 12, 8);
	host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(len, NET_MAX_PACKET);
	CHECK_EQ(memcmp((uint8_t *)fake_guest_ptr(&w.g, b) + 12, pkt + 12, NET_MAX_PACKET - 12), 0);
	world_fini(&w);
}

TEST(rx_mrg_64k_frame_over_many_buffers)
{
	struct world w;
	static uint8_t pkt[NET_MAX_PACKET], got[NET_MAX_PACKET];
	uint64_t b[80];
	uint32_t id, len, off = 0;
	int i, used = 0;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL);
	for (i = 0; i < 80; i++) {
		b[i] = fake_guest_alloc(&w.g, 1536, 16);
		fake_vq_add(&w.q[0], (struct fake_seg[]){{b[i], 1536, true}}, 1);
	}
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	/* The stash holds a largest packet's worth: 43 buffers, not all 80. */
	CHECK_EQ(w.n.nrxb, (NET_MAX_PACKET + 1535) / 1536);
	memset(pkt, 0, 12);
	fill_frame(pkt + 12, NET_MAX_PACKET - 12, 10);
	host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	while (fake_vq_used(&w.q[0], &id, &len)) {
		CHECK_EQ(id, (uint32_t)used);
		CHECK(len <= 1536);
		memcpy(got + off, fake_guest_ptr(&w.g, b[used]), len);
		off += len;
		used++;
	}
	CHECK_EQ(off, NET_MAX_PACKET);
	CHECK_EQ(used, (NET_MAX_PACKET + 1535) / 1536);
	CHECK_EQ(guest_hdr(&w, b[0]).num_buffers, used);
	CHECK_EQ(memcmp(got + 12, pkt + 12, NET_MAX_PACKET - 12), 0);
	world_fini(&w);
}

TEST(rx_mrg_frame_larger_than_ring_dropped)
{
	struct world w;
	static uint8_t pkt[12 + 1000];
	uint64_t b;
	uint32_t id, len;
	int i;

	if (!world_init(&w, 12, 0, NULL))
		return;
	/* A 4-entry receive ring of 100-byte buffers can never hold 1012 bytes. */
	fake_vq_init(&w.q[0], &w.g, 4);
	world_start(&w, ALL);
	for (i = 0; i < 4; i++) {
		b = fake_guest_alloc(&w.g, 100, 16);
		fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 100, true}}, 1);
	}
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	memset(pkt, 0, 12);
	fill_frame(pkt + 12, 1000, 11);
	host_send(&w, pkt, sizeof(pkt));
	host_send(&w, pkt, 12 + 50);
	pump(&w, 10);
	CHECK_EQ(w.n.st.rx_dropped, 1);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(len, 62);
	CHECK(virtio_live(&w.n.vdev));
	world_fini(&w);
}

TEST(rx_kick_suppression)
{
	struct world w;
	uint8_t pkt[12 + 60] = {0};
	uint64_t b;
	uint32_t id, len;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL & ~F(VIRTIO_F_EVENT_IDX));
	b = fake_guest_alloc(&w.g, 2048, 16);
	fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 2048, true}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	/* Holding a buffer: the driver need not kick (§2.7.10). */
	CHECK_EQ(fake_vq_used_flags(&w.q[0]) & VIRTQ_USED_F_NO_NOTIFY, VIRTQ_USED_F_NO_NOTIFY);
	fill_frame(pkt + 12, 60, 12);
	host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	/* Out of buffers: kicks wanted again, backend no longer watched. */
	CHECK_EQ(fake_vq_used_flags(&w.q[0]) & VIRTQ_USED_F_NO_NOTIFY, 0);
	CHECK(!w.n.rx_watched);
	world_fini(&w);
}

TEST(rx_mtu_enforced_for_non_gso)
{
	struct virtio_net_opts o = {.id = "net0", .mtu = 1500};
	struct world w;
	static uint8_t pkt[12 + 3000];
	uint64_t b;
	uint32_t id, len;
	int i;

	if (!world_init(&w, 12, tap_offloads, &o))
		return;
	world_start(&w, ALL);
	CHECK(w.n.mtu_neg);
	for (i = 0; i < 3; i++) {
		b = fake_guest_alloc(&w.g, 4096, 16);
		fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 4096, true}}, 1);
	}
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	memset(pkt, 0, 12);
	fill_frame(pkt + 12, 3000, 13);
	host_send(&w, pkt, 12 + 1519); /* mtu + 19: over */
	host_send(&w, pkt, 12 + 1518); /* mtu + Ethernet + VLAN: fine */
	pkt[1] = VIRTIO_NET_HDR_GSO_TCPV4;
	host_send(&w, pkt, sizeof(pkt)); /* GSO: not bound by the MTU */
	pump(&w, 10);
	CHECK_EQ(w.n.st.rx_dropped, 1);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(len, 12 + 1518);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(len, 12 + 3000);
	world_fini(&w);
}

TEST(rx_backend_error_retried_on_kick)
{
	struct world w;
	uint8_t pkt[12 + 60] = {0};
	uint64_t b;
	uint32_t id, len;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL & ~F(VIRTIO_F_EVENT_IDX));
	b = fake_guest_alloc(&w.g, 2048, 16);
	fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 2048, true}}, 1);
	w.be.recv_err = -EIO;
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	fill_frame(pkt + 12, 60, 14);
	host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	CHECK_EQ(w.n.st.rx_errors, 1);
	CHECK(!w.n.rx_watched); /* no busy loop on a failing fd */
	CHECK_EQ(fake_vq_used_flags(&w.q[0]) & VIRTQ_USED_F_NO_NOTIFY, 0);
	w.be.recv_err = 0;
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(len, 72);
	world_fini(&w);
}

TEST(rx_bad_chain_needs_reset)
{
	struct world w;
	uint32_t id, len;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL);
	/* Readable after writable: a malformed chain (§2.7.4.2). */
	fake_vq_add(&w.q[0], (struct fake_seg[]){{0x2000, 64, true}, {0x3000, 64, false}}, 2);
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	CHECK(w.n.vdev.status & VIRTIO_STATUS_NEEDS_RESET);
	CHECK_EQ(w.t.config_changed, 1);
	CHECK(!w.n.rx_watched);
	CHECK(!fake_vq_used(&w.q[0], &id, &len));
	world_fini(&w);
}

TEST(reset_and_restart)
{
	struct world w;
	uint8_t pkt[12 + 64] = {0};
	uint64_t b;
	uint32_t id, len;

	if (!world_init(&w, 12, 0, NULL))
		return;
	world_start(&w, ALL);
	b = fake_guest_alloc(&w.g, 2048, 16);
	fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 2048, true}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	CHECK(w.n.rx_watched);
	CHECK_EQ(w.n.nrxb, 1);
	fake_set_status(&w.n.vdev, 0);
	CHECK(!w.n.rx_watched);
	CHECK_EQ(w.n.nrxb, 0);
	/* Frames that arrive while reset stay in the backend. */
	fill_frame(pkt + 12, 64, 9);
	host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	/* A new driver: fresh rings, buffers posted before DRIVER_OK (no kick needed). */
	fake_vq_init(&w.q[0], &w.g, 256);
	fake_vq_init(&w.q[1], &w.g, 256);
	b = fake_guest_alloc(&w.g, 2048, 16);
	fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 2048, true}}, 1);
	world_start(&w, ALL);
	pump(&w, 10);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(len, 76);
	world_fini(&w);
}

/* ---- rate limiting, MTU bounds ---- */

struct fake_clock {
	uint64_t now;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

#define MS 1000000ull

/* A limiter's timer fired: run its callback as the VMM loop would. */
static void fire(struct rl_watched *l)
{
	struct evloop_watch *wt = &l->w[l->cur];

	wt->cb(wt, EPOLLIN);
}

/* A tx chain: zero header + an Ethernet frame of `len` bytes seeded `seed`.  Its head. */
static int add_tx(struct world *w, uint32_t len, uint8_t seed)
{
	uint64_t gpa = fake_guest_alloc(&w->g, 12 + len, 16);
	uint8_t *p = fake_guest_ptr(&w->g, gpa);

	memset(p, 0, 12);
	fill_frame(p + 12, len, seed);
	return fake_vq_add(&w->q[1], (struct fake_seg[]){{gpa, 12 + len, false}}, 1);
}

/* The host must receive exactly the frames seeded seeds[0..n) (header + len bytes), in order. */
static void expect_host_frames(struct world *w, const uint8_t *seeds, unsigned int n, uint32_t len)
{
	uint8_t buf[2048], want[2048];
	unsigned int i;

	for (i = 0; i < n; i++) {
		CHECK_EQ(host_recv(w, buf, sizeof(buf)), 12 + len);
		fill_frame(want, len, seeds[i]);
		CHECK_EQ(memcmp(buf + 12, want, len), 0);
	}
	CHECK(host_recv(w, buf, sizeof(buf)) < 0);
}

/*
 * TX, 2 ops per second: a runt is dropped free of charge, two frames go, the
 * third is given back and transmitq kicks are suppressed; kicks only count;
 * the timer sends the rest in order as the clock advances.
 */
TEST(tx_rate_limit_ops_throttles_and_resumes)
{
	struct fake_clock fc = {.now = 10 * MS};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_net_opts o = {.id = "net0",
	                            .tx_rate_limiter = {.ops = {.size = 2, .refill_time_ms = 1000}},
	                            .clock = &clk};
	static const uint8_t seeds[5] = {1, 2, 3, 4, 5};
	struct world w;
	uint32_t id, len;
	int heads[5], i;

	if (!world_init(&w, 12, 0, &o))
		return;
	world_start(&w, ALL);
	CHECK(w.n.tx_limiter.watched);
	CHECK(!w.n.rx_limiter.watched);
	CHECK(evloop_add(&w.g.loop, &w.n.tx_limiter.w[w.n.tx_limiter.cur], EPOLLIN) < 0);
	add_tx(&w, 4, 0xee); /* a runt: dropped, not charged */
	for (i = 0; i < 5; i++)
		heads[i] = add_tx(&w, 100, seeds[i]);
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	CHECK_EQ(w.n.st.tx_dropped, 1);
	CHECK_EQ(w.n.st.tx_frames, 2);
	expect_host_frames(&w, seeds, 2, 100);
	CHECK_EQ(fake_vq_pending(&w.q[1]), 3);
	CHECK_EQ(w.n.vdev.vq[VIRTIO_NET_TXQ].last_avail, 3); /* the fourth chain was given back */
	CHECK(w.n.vdev.vq[VIRTIO_NET_TXQ].kicks_off);
	CHECK_EQ(w.n.st.tx_rate_limiter_throttled, 1);
	/* Kicks while throttled are counted, nothing else. */
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	CHECK_EQ(w.n.st.tx_rate_limiter_throttled, 2);
	CHECK_EQ(w.n.st.tx_frames, 2);
	/* Half a second: one op. */
	fc.now += 500 * MS;
	fire(&w.n.tx_limiter);
	expect_host_frames(&w, seeds + 2, 1, 100);
	/* A second more: two; the ring is empty, kicks are back on. */
	fc.now += 1000 * MS;
	fire(&w.n.tx_limiter);
	expect_host_frames(&w, seeds + 3, 2, 100);
	CHECK(!w.n.vdev.vq[VIRTIO_NET_TXQ].kicks_off);
	CHECK_EQ(w.n.st.tx_frames, 5);
	CHECK_EQ(fake_vq_pending(&w.q[1]), 6);
	CHECK(fake_vq_used(&w.q[1], &id, &len)); /* the runt */
	for (i = 0; i < 5; i++) {
		CHECK(fake_vq_used(&w.q[1], &id, &len));
		CHECK_EQ(id, (uint32_t)heads[i]);
		CHECK_EQ(len, 0);
	}
	/* The receive side was never limited. */
	CHECK_EQ(w.n.st.rx_rate_limiter_throttled, 0);
	world_fini(&w);
}

/* TX bandwidth: frames are charged header + frame bytes. */
TEST(tx_rate_limit_bandwidth)
{
	struct fake_clock fc = {.now = 0};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_net_opts o = {
	    .id = "net0",
	    .tx_rate_limiter = {.bandwidth = {.size = 3 * 112, .refill_time_ms = 300}},
	    .clock = &clk};
	static const uint8_t seeds[4] = {7, 8, 9, 10};
	struct world w;
	int i;

	if (!world_init(&w, 0, 0, &o)) /* a bare-frame backend: the header is still charged */
		return;
	world_start(&w, ALL);
	for (i = 0; i < 4; i++)
		add_tx(&w, 100, seeds[i]);
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	CHECK_EQ(w.n.st.tx_frames, 3);
	fc.now += 90 * MS; /* 100.8 bytes: short of 112 */
	fire(&w.n.tx_limiter);
	CHECK_EQ(w.n.st.tx_frames, 3);
	fc.now += 11 * MS;
	fire(&w.n.tx_limiter);
	CHECK_EQ(w.n.st.tx_frames, 4);
	for (i = 0; i < 4; i++) {
		uint8_t buf[256], want[100];

		CHECK_EQ(host_recv(&w, buf, sizeof(buf)), 100);
		fill_frame(want, 100, seeds[i]);
		CHECK_EQ(memcmp(buf, want, 100), 0);
	}
	world_fini(&w);
}

/*
 * RX, 1 op per second: the first frame is delivered, the second is held (not
 * dropped) while the backend is left alone; kicks only count; each timer
 * tick delivers one more, in order.  Both backend kinds, with and without
 * MRG_RXBUF (the held frame moves to the bounce buffer either way).
 */
TEST(rx_rate_limit_holds_frames_and_resumes)
{
	int v;

	for (v = 0; v < 2; v++) {
		struct fake_clock fc = {.now = 3 * MS};
		struct rl_clock clk = {fake_now, &fc};
		struct virtio_net_opts o = {
		    .id = "net0",
		    .rx_rate_limiter = {.ops = {.size = 1, .refill_time_ms = 1000}},
		    .clock = &clk};
		unsigned int hdr = v == 0 ? 12 : 0, skip = 12 - hdr;
		uint8_t pkt[12 + 300];
		struct world w;
		uint64_t b[3];
		uint32_t id, len;
		int heads[3], i;

		if (!world_init(&w, hdr, 0, &o))
			return;
		world_start(&w, v == 0 ? ALL : NO_MRG);
		for (i = 0; i < 3; i++) {
			b[i] = fake_guest_alloc(&w.g, 1526, 16);
			heads[i] = fake_vq_add(&w.q[0], (struct fake_seg[]){{b[i], 1526, true}}, 1);
		}
		fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
		memset(pkt, 0, sizeof(pkt));
		for (i = 0; i < 3; i++) {
			fill_frame(pkt + 12, 300, (uint8_t)(40 + i));
			host_send(&w, pkt + skip, hdr + 300);
		}
		pump(&w, 10);
		CHECK_EQ(w.n.st.rx_frames, 1);
		CHECK_EQ(w.n.rx_pending, 312); /* the second frame, held */
		CHECK(!w.n.rx_watched);
		CHECK(w.n.st.rx_rate_limiter_throttled >= 1);
		CHECK(rate_limiter_blocked(&w.n.rx_limiter.rl));
		fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
		pump(&w, 10);
		CHECK_EQ(w.n.st.rx_frames, 1);
		/* Too early: still held. */
		fc.now += 999 * MS;
		fire(&w.n.rx_limiter);
		CHECK_EQ(w.n.st.rx_frames, 1);
		fc.now += 1 * MS;
		fire(&w.n.rx_limiter);
		CHECK_EQ(w.n.st.rx_frames, 2);
		CHECK_EQ(w.n.rx_pending, 312); /* the third, read and held */
		fc.now += 1000 * MS;
		fire(&w.n.rx_limiter);
		CHECK_EQ(w.n.st.rx_frames, 3);
		CHECK_EQ(w.n.rx_pending, 0);
		CHECK_EQ(w.n.st.rx_dropped, 0);
		for (i = 0; i < 3; i++) {
			uint8_t want[300];

			CHECK(fake_vq_used(&w.q[0], &id, &len));
			CHECK_EQ(id, (uint32_t)heads[i]);
			CHECK_EQ(len, 312);
			CHECK_EQ(guest_hdr(&w, b[i]).num_buffers, 1);
			fill_frame(want, 300, (uint8_t)(40 + i));
			CHECK_EQ(memcmp((uint8_t *)fake_guest_ptr(&w.g, b[i]) + 12, want, 300), 0);
		}
		/* No buffers left and nothing held: the device waits for a kick as before. */
		CHECK(!w.n.rx_watched);
		world_fini(&w);
	}
}

/* RX bandwidth counts the header; a reset drops the held frame, the timer then does nothing. */
TEST(rx_rate_limit_bandwidth_and_reset)
{
	struct fake_clock fc = {.now = 0};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_net_opts o = {
	    .id = "net0",
	    .rx_rate_limiter = {.bandwidth = {.size = 2 * 212, .refill_time_ms = 1000}},
	    .clock = &clk};
	uint8_t pkt[12 + 200] = {0};
	struct world w;
	uint64_t b;
	int i;

	if (!world_init(&w, 12, 0, &o))
		return;
	world_start(&w, ALL);
	for (i = 0; i < 4; i++) {
		b = fake_guest_alloc(&w.g, 2048, 16);
		fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 2048, true}}, 1);
	}
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	fill_frame(pkt + 12, 200, 3);
	for (i = 0; i < 3; i++)
		host_send(&w, pkt, sizeof(pkt));
	pump(&w, 10);
	CHECK_EQ(w.n.st.rx_frames, 2);
	CHECK_EQ(w.n.rx_pending, 212);
	fake_set_status(&w.n.vdev, 0);
	CHECK_EQ(w.n.rx_pending, 0);
	CHECK_EQ(w.n.st.rx_dropped, 1); /* a reset loses what the device held */
	fc.now += 5000 * MS;
	fire(&w.n.rx_limiter);
	CHECK_EQ(w.n.st.rx_frames, 2);
	world_fini(&w);
}

/* PATCH-style changes: per direction, NULL = unchanged, all or nothing, throttled work resumes. */
TEST(set_rate_limiters_at_run_time)
{
	struct fake_clock fc = {.now = 0};
	struct rl_clock clk = {fake_now, &fc};
	struct virtio_net_opts o = {.id = "net0", .clock = &clk};
	struct rate_limiter_cfg one = {.ops = {.size = 1, .refill_time_ms = 1000}};
	struct rate_limiter_cfg none = {0};
	struct rate_limiter_cfg bad = {.ops = {1, 0, UINT64_MAX}};
	struct world w;
	struct err e = {0};
	int i;

	if (!world_init(&w, 12, 0, &o))
		return;
	world_start(&w, ALL);
	CHECK(!w.n.tx_limiter.enabled && !w.n.rx_limiter.enabled);
	CHECK(!w.n.tx_limiter.watched && !w.n.rx_limiter.watched);
	/* Transmit limited, receive left alone. */
	CHECK_EQ(virtio_net_set_rate_limiters(&w.n, NULL, &one, &e), 0);
	CHECK(w.n.tx_limiter.enabled && w.n.tx_limiter.watched);
	CHECK(!w.n.rx_limiter.enabled && !w.n.rx_limiter.watched);
	for (i = 0; i < 3; i++)
		add_tx(&w, 60, (uint8_t)i);
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	CHECK_EQ(w.n.st.tx_frames, 1);
	/* A valid receive limiter with an invalid transmit one: nothing changes. */
	CHECK_EQ(virtio_net_set_rate_limiters(&w.n, &one, &bad, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "virtio-net net0");
	CHECK_STR_CONTAINS(e.msg, "transmit");
	CHECK(!w.n.rx_limiter.enabled && !w.n.rx_limiter.watched);
	CHECK(w.n.tx_limiter.enabled);
	CHECK_EQ(w.n.tx_limiter.cfg.ops.size, 1);
	CHECK_EQ(w.n.st.tx_frames, 1);
	err_clear(&e);
	CHECK_EQ(virtio_net_set_rate_limiters(&w.n, &bad, NULL, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "receive");
	/* Transmit unlimited again: the two waiting frames go at once; the watch goes. */
	CHECK_EQ(virtio_net_set_rate_limiters(&w.n, NULL, &none, &e), 0);
	CHECK(!w.n.tx_limiter.enabled && !w.n.tx_limiter.watched);
	CHECK_EQ(w.n.st.tx_frames, 3);
	CHECK(!w.n.vdev.vq[VIRTIO_NET_TXQ].kicks_off);
	/* Both limited: fresh, full buckets. */
	CHECK_EQ(virtio_net_set_rate_limiters(&w.n, &one, &one, &e), 0);
	CHECK(w.n.rx_limiter.watched && w.n.tx_limiter.watched);
	CHECK(evloop_add(&w.g.loop, &w.n.rx_limiter.w[w.n.rx_limiter.cur], EPOLLIN) < 0);
	add_tx(&w, 60, 9);
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	CHECK_EQ(w.n.st.tx_frames, 4);
	world_fini(&w);
}

/* §5.1.4: mtu is offered with VIRTIO_NET_F_MTU, 68..65535. */
TEST(mtu_bounds)
{
	static const uint16_t ok[2] = {68, 65535};
	struct virtio_net_opts o = {.id = "net0", .mtu = 67};
	struct world w;
	struct err e = {0};
	struct virtio_net n;
	uint8_t cfg[12];
	int i;

	for (i = 0; i < 2; i++) {
		o.mtu = ok[i];
		if (!world_init(&w, 12, 0, &o))
			return;
		CHECK(w.n.vdev.features & F(VIRTIO_NET_F_MTU));
		fake_config_read(&w.n.vdev, 0, cfg, sizeof(cfg));
		CHECK_EQ(cfg[10] | cfg[11] << 8, ok[i]);
		world_start(&w, ALL);
		CHECK(w.n.mtu_neg);
		if (i == 0) {
			o.mtu = 67;
			o.backend = VIRTIO_NET_BACKEND_CUSTOM;
			o.custom = &w.be.nb;
			CHECK_EQ(virtio_net_init(&n, &o, &w.g.env, &e), -EINVAL);
			CHECK_STR_CONTAINS(e.msg, "mtu 67");
			err_clear(&e);
			/* A bad limiter fails cleanly too. */
			o.mtu = 1500;
			o.rx_rate_limiter.bandwidth = (struct token_bucket_cfg){1, 0, UINT64_MAX};
			CHECK_EQ(virtio_net_init(&n, &o, &w.g.env, &e), -EINVAL);
			CHECK_STR_CONTAINS(e.msg, "receive");
			err_clear(&e);
			o.rx_rate_limiter = (struct rate_limiter_cfg){0};
			o.tx_rate_limiter.ops = (struct token_bucket_cfg){1, 0, UINT64_MAX};
			CHECK_EQ(virtio_net_init(&n, &o, &w.g.env, &e), -EINVAL);
			CHECK_STR_CONTAINS(e.msg, "transmit");
			err_clear(&e);
			o = (struct virtio_net_opts){.id = "net0"};
		}
		world_fini(&w);
	}
}

/* ---- the real slirp backend ---- */

TEST(slirp_arp_round_trip)
{
	struct virtio_net_opts o = {
	    .id = "net0", .backend = VIRTIO_NET_BACKEND_SLIRP, .slirp = {.restricted = true}};
	struct fake_guest g;
	struct virtio_net n;
	struct fake_transport t;
	struct fake_vq q[2];
	struct err e = {0};
	uint64_t rb, tb;
	uint8_t *p;
	uint32_t id, len;
	int i;

	if (fake_guest_init(&g, 4u << 20) < 0)
		return;
	CHECK_EQ(virtio_net_init(&n, &o, &g.env, &e), 0);
	if (e.code) {
		printf("  %s\n", e.msg);
		fake_guest_fini(&g);
		return;
	}
	CHECK(!(n.vdev.features & tap_offloads));
	fake_vq_init(&q[0], &g, 256);
	fake_vq_init(&q[1], &g, 256);
	fake_start(&n.vdev, &t, ALL, q, 2);
	rb = fake_guest_alloc(&g, 2048, 16);
	fake_vq_add(&q[0], (struct fake_seg[]){{rb, 2048, true}}, 1);
	fake_kick(&n.vdev, VIRTIO_NET_RXQ);
	/* ARP who-has 10.0.2.2 tell 10.0.2.15, behind a zero virtio-net header. */
	tb = fake_guest_alloc(&g, 12 + 42, 16);
	p = fake_guest_ptr(&g, tb);
	memset(p, 0, 12 + 42);
	p += 12;
	memset(p, 0xff, 6);
	memcpy(p + 6, n.mac, 6);
	p[12] = 0x08, p[13] = 0x06;
	p[15] = 1, p[16] = 0x08, p[18] = 6, p[19] = 4, p[21] = 1;
	memcpy(p + 22, n.mac, 6);
	p[28] = 10, p[29] = 0, p[30] = 2, p[31] = 15;
	p[38] = 10, p[39] = 0, p[40] = 2, p[41] = 2;
	fake_vq_add(&q[1], (struct fake_seg[]){{tb, 12 + 42, false}}, 1);
	fake_kick(&n.vdev, VIRTIO_NET_TXQ);
	for (i = 0; i < 20 && !fake_vq_pending(&q[0]); i++) {
		struct epoll_event evs[8];
		int k, j;

		k = epoll_wait(g.loop.epfd, evs, 8, 10);
		for (j = 0; j < k; j++) {
			struct evloop_watch *wt = evs[j].data.ptr;

			wt->cb(wt, evs[j].events);
		}
	}
	CHECK(fake_vq_used(&q[0], &id, &len));
	CHECK(len >= 12 + 42);
	p = fake_guest_ptr(&g, rb);
	CHECK_EQ(p[0], 0);
	CHECK_EQ(p[1], 0);
	CHECK_EQ(p[10] | p[11] << 8, 1);
	CHECK_EQ(memcmp(p + 12, n.mac, 6), 0);
	CHECK_EQ(p[12 + 12] << 8 | p[12 + 13], 0x0806);
	CHECK_EQ(p[12 + 21], 2); /* ARP reply */
	CHECK_EQ(n.st.tx_frames, 1);
	CHECK_EQ(n.st.rx_frames, 1);
	virtio_net_destroy(&n);
	fake_guest_fini(&g);
}

/* ---- MMDS: frames for its address never reach the backend, answers wait for buffers ---- */

static uint32_t arp_request(uint8_t *p, uint32_t tpa)
{
	static const uint8_t mac[6] = {0x06, 0, 0xac, 0x10, 0, 2};

	memset(p, 0, 12 + 42);
	p += 12;
	memset(p, 0xff, 6);
	memcpy(p + 6, mac, 6);
	p[12] = 0x08;
	p[13] = 0x06;
	p[15] = 1;    /* htype */
	p[16] = 0x08; /* ptype */
	p[18] = 6;
	p[19] = 4;
	p[21] = 1; /* request */
	memcpy(p + 22, mac, 6);
	p[28] = 192, p[29] = 168, p[30] = 0, p[31] = 2;
	p[38] = (uint8_t)(tpa >> 24), p[39] = (uint8_t)(tpa >> 16);
	p[40] = (uint8_t)(tpa >> 8), p[41] = (uint8_t)tpa;
	return 12 + 42;
}

TEST(mmds_frames_answered_not_forwarded)
{
	struct mmds *m;
	struct virtio_net_opts o = {.id = "net0"};
	struct world w;
	uint8_t buf[256];
	uint64_t p, b;
	uint32_t id, len;
	uint8_t *r;

	CHECK_EQ(mmds_create(1000, &m), 0);
	o.mmds = m;
	o.mmds_ipv4 = MMDS_DEFAULT_IPV4;
	if (!world_init(&w, 0, 0, &o))
		return;
	world_start(&w, ALL);
	/* An ARP request for the MMDS address, no receive buffer yet. */
	p = fake_guest_alloc(&w.g, 64, 16);
	len = arp_request(fake_guest_ptr(&w.g, p), MMDS_DEFAULT_IPV4);
	fake_vq_add(&w.q[1], (struct fake_seg[]){{p, len, false}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	pump(&w, 10);
	CHECK(host_recv(&w, buf, sizeof(buf)) < 0); /* not the backend's */
	CHECK(fake_vq_used(&w.q[1], &id, &len));
	CHECK_EQ(w.n.st.tx_mmds_frames, 1);
	CHECK_EQ(w.n.st.tx_frames, 0);
	/* The reply waits for a buffer, then arrives with a plain header. */
	b = fake_guest_alloc(&w.g, 1526, 16);
	fake_vq_add(&w.q[0], (struct fake_seg[]){{b, 1526, true}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_RXQ);
	pump(&w, 10);
	CHECK(fake_vq_used(&w.q[0], &id, &len));
	CHECK_EQ(len, 12 + 42);
	r = (uint8_t *)fake_guest_ptr(&w.g, b) + 12;
	CHECK_EQ(r[12], 0x08);
	CHECK_EQ(r[13], 0x06);
	CHECK_EQ(r[21], 2); /* reply */
	CHECK_EQ(memcmp(r + 22, MMDS_MAC, 6), 0);
	CHECK_EQ(w.n.st.rx_mmds_frames, 1);
	/* An ARP request for another address goes to the backend as before. */
	p = fake_guest_alloc(&w.g, 64, 16);
	len = arp_request(fake_guest_ptr(&w.g, p), 0xc0a80001);
	fake_vq_add(&w.q[1], (struct fake_seg[]){{p, len, false}}, 1);
	fake_kick(&w.n.vdev, VIRTIO_NET_TXQ);
	pump(&w, 10);
	CHECK_EQ(host_recv(&w, buf, sizeof(buf)), 42);
	CHECK_EQ(w.n.st.tx_frames, 1);
	world_fini(&w);
	mmds_free(m);
}

int main(void)
{
	RUN(identity_and_config);
	RUN(mac_mtu_options);
	RUN(offloads_per_backend_and_negotiation);
	RUN(tx_header_passed_to_vnet_backend);
	RUN(tx_header_stripped_for_bare_backend);
	RUN(tx_bad_sizes_dropped_not_reset);
	RUN(tx_backend_error_counted);
	RUN(tx_bad_chain_needs_reset);
	RUN(tx_many_frames_ring_reuse);
	RUN(rx_one_buffer_without_mrg);
	RUN(rx_guest_csum_keeps_flags);
	RUN(rx_mrg_spreads_over_buffers);
	RUN(rx_mrg_frame_waits_for_buffers);
	RUN(rx_too_big_without_mrg_dropped);
	RUN(rx_tiny_buffer_returned_unused);
	RUN(rx_bare_backend_gets_device_header);
	RUN(rx_64k_frame_in_one_big_buffer);
	RUN(rx_mrg_64k_frame_over_many_buffers);
	RUN(rx_mrg_frame_larger_than_ring_dropped);
	RUN(rx_kick_suppression);
	RUN(rx_mtu_enforced_for_non_gso);
	RUN(rx_backend_error_retried_on_kick);
	RUN(rx_bad_chain_needs_reset);
	RUN(reset_and_restart);
	RUN(tx_rate_limit_ops_throttles_and_resumes);
	RUN(tx_rate_limit_bandwidth);
	RUN(rx_rate_limit_holds_frames_and_resumes);
	RUN(rx_rate_limit_bandwidth_and_reset);
	RUN(set_rate_limiters_at_run_time);
	RUN(mtu_bounds);
	RUN(slirp_arp_round_trip);
	RUN(mmds_frames_answered_not_forwarded);
	return test_summary();
}
