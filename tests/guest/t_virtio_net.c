/* t_virtio_net.c - virtio-net (virtio 1.2 §5.1): hand-built frames through slirp or a tap. */
#include "virtio.h"

/*
 * Command line (tests/integration/test_virtio.py sets it):
 *   test.virtio_net=pci|mmio
 *   test.net=slirp   DHCPDISCOVER must draw an OFFER of 10.0.2.15 from slirp's
 *                    server, and an ARP request for 10.0.2.2 a reply
 *   test.net=tap     the tap's far side (a network namespace) holds
 *                    test.net_peer=<ip>; the guest uses test.net_ip=<ip>:
 *                    ARP for the peer (answered by the namespace's kernel),
 *                    an ICMP echo to it, and an ethertype 0x88b5 frame
 *                    "ember-ping <test.net_token>" that a responder there
 *                    answers with "ember-pong <token>"
 */

#define RX_BUFS    32
#define RX_BUF_LEN 2048
#define TX_BUFS    8
#define HDR        VIRTIO_NET_HDR_LEN
#define ETH_HLEN   14
#define ETH_P_IP   0x0800
#define ETH_P_ARP  0x0806
#define ETH_P_TEST 0x88b5 /* IEEE 802 local experimental ethertype 1 */
#define TIMEOUT_MS 3000

struct net {
	struct virtio_dev *dev;
	struct vq *rx, *tx;
	u8 *rxbuf, *txbuf;
	u16 rx_head_buf[VQ_MAX_SIZE]; /* rx buffer index of an in-flight head */
	bool tx_busy[TX_BUFS];
	int tx_head_buf[VQ_MAX_SIZE];
	u8 mac[6];
	u32 rx_frames, rx_ignored, tx_frames, rx_bad_len;
};

/* ---- byte order ---- */

static void put16(u8 *p, u16 v)
{
	p[0] = (u8)(v >> 8);
	p[1] = (u8)v;
}

static void put32(u8 *p, u32 v)
{
	put16(p, (u16)(v >> 16));
	put16(p + 2, (u16)v);
}

static u16 get16(const u8 *p)
{
	return (u16)(p[0] << 8 | p[1]);
}

static u32 get32(const u8 *p)
{
	return (u32)get16(p) << 16 | get16(p + 2);
}

static u16 csum(const u8 *p, size_t n)
{
	u32 s = 0;
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += get16(p + i);
	if (n & 1)
		s += (u32)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (u16)~s;
}

static bool parse_ip(const char *key, u32 *ip)
{
	size_t len, i = 0, s;
	const char *v = cmdline_value(key, &len);
	u64 part;
	unsigned int k;

	if (!v)
		return false;
	*ip = 0;
	for (k = 0; k < 4; k++) {
		for (s = i; i < len && v[i] != '.'; i++)
			;
		if (!parse_u64(v + s, i - s, &part) || part > 255)
			return false;
		*ip = *ip << 8 | (u32)part;
		i++;
	}
	return i == len + 1;
}

/* ---- queues ---- */

static bool rx_post(struct net *n, unsigned int i)
{
	u8 *b = n->rxbuf + (u64)i * RX_BUF_LEN;
	struct vbuf v[2];
	unsigned int k = 1;
	bool ind = false;
	int head;

	/* Vary the layout: one buffer, or header and data apart (directly or indirectly). */
	v[0] = (struct vbuf){pa(b), RX_BUF_LEN, true};
	if (i % 3 == 1) {
		v[0].len = HDR;
		v[1] = (struct vbuf){pa(b) + HDR, RX_BUF_LEN - HDR, true};
		k = 2;
		ind = n->rx->indirect && (i & 1);
	}
	head = vq_add(n->rx, v, k, ind);
	if (head < 0)
		return false;
	n->rx_head_buf[head] = (u16)i;
	return true;
}

/* Send one frame (padded to 60 bytes) and wait for the device to use the buffer. */
static bool net_send(struct net *n, const u8 *frame, u32 len, unsigned int variant)
{
	unsigned int i;
	u8 *b;
	struct vbuf v[3];
	unsigned int k;
	int head;
	u16 h;
	u32 ul;

	for (i = 0; i < TX_BUFS && n->tx_busy[i]; i++)
		;
	if (!expect(i < TX_BUFS, "no free transmit buffer"))
		return false;
	b = n->txbuf + (u64)i * RX_BUF_LEN;
	memset(b, 0, HDR); /* no checksum offload, no GSO */
	memcpy(b + HDR, frame, len);
	if (len < 60) {
		memset(b + HDR + len, 0, 60 - len);
		len = 60;
	}
	switch (variant % 3) {
	case 0: /* header and frame in one buffer */
		v[0] = (struct vbuf){pa(b), HDR + len, false};
		k = 1;
		break;
	case 1: /* header, then the frame */
		v[0] = (struct vbuf){pa(b), HDR, false};
		v[1] = (struct vbuf){pa(b) + HDR, len, false};
		k = 2;
		break;
	default: /* header, frame split in two */
		v[0] = (struct vbuf){pa(b), HDR, false};
		v[1] = (struct vbuf){pa(b) + HDR, 14, false};
		v[2] = (struct vbuf){pa(b) + HDR + 14, len - 14, false};
		k = 3;
		break;
	}
	head = vq_add(n->tx, v, k, n->tx->indirect && (variant & 1));
	if (!expect(head >= 0, "transmit ring full"))
		return false;
	n->tx_busy[i] = true;
	n->tx_head_buf[head] = (int)i;
	vq_kick(n->tx);
	if (!expect(vq_wait_get(n->tx, &h, &ul, TIMEOUT_MS), "transmit buffer never used"))
		return false;
	if (n->tx_head_buf[h] >= 0)
		n->tx_busy[n->tx_head_buf[h]] = false;
	n->tx_frames++;
	return true;
}

/* Receive one frame into `out` (at most `max` bytes); its length, 0 on timeout. */
static u32 net_recv(struct net *n, u8 *out, u32 max, u64 ms)
{
	u16 head;
	u32 len, i;

	if (!vq_wait_get(n->rx, &head, &len, ms))
		return 0;
	i = n->rx_head_buf[head];
	n->rx_frames++;
	if (len < HDR + ETH_HLEN || len > RX_BUF_LEN) {
		n->rx_bad_len++;
		len = HDR;
	}
	len -= HDR;
	if (len > max)
		len = max;
	memcpy(out, n->rxbuf + (u64)i * RX_BUF_LEN + HDR, len);
	rx_post(n, i);
	vq_kick(n->rx);
	return len;
}

typedef bool (*frame_match)(struct net *n, const u8 *f, u32 len, void *arg);

/* Receive frames until `match` accepts one or `ms` pass; others are counted and dropped. */
static bool net_expect(struct net *n, frame_match match, void *arg, u64 ms)
{
	u64 end = deadline_ms(ms), now;
	u8 f[RX_BUF_LEN];
	u32 len;

	while ((now = rdtsc()) < end) {
		len = net_recv(n, f, sizeof(f), (end - now) / tsc_per_ms() + 1);
		if (!len)
			break;
		if (match(n, f, len, arg))
			return true;
		n->rx_ignored++;
	}
	return false;
}

static u32 eth_header(u8 *f, const u8 *dst, const u8 *src, u16 type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	put16(f + 12, type);
	return ETH_HLEN;
}

static const u8 bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* IPv4 header at p (20 bytes), checksum filled in. */
static void ip_header(u8 *p, u32 src, u32 dst, u8 proto, u16 payload, u16 id)
{
	memset(p, 0, 20);
	p[0] = 0x45;
	put16(p + 2, (u16)(20 + payload));
	put16(p + 4, id);
	p[8] = 64;
	p[9] = proto;
	put32(p + 12, src);
	put32(p + 16, dst);
	put16(p + 10, csum(p, 20));
}

/* ---- ARP ---- */

struct arp_want {
	u32 ip;
	u8 mac[6];
};

static u32 build_arp_request(struct net *n, u8 *f, u32 sip, u32 tip)
{
	u8 *a = f + eth_header(f, bcast, n->mac, ETH_P_ARP);

	put16(a, 1);
	put16(a + 2, ETH_P_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, 1); /* request */
	memcpy(a + 8, n->mac, 6);
	put32(a + 14, sip);
	memset(a + 18, 0, 6);
	put32(a + 24, tip);
	return ETH_HLEN + 28;
}

static bool match_arp_reply(struct net *n, const u8 *f, u32 len, void *arg)
{
	struct arp_want *w = arg;
	const u8 *a = f + ETH_HLEN;

	if (len < ETH_HLEN + 28 || get16(f + 12) != ETH_P_ARP || get16(a + 6) != 2 ||
	    get32(a + 14) != w->ip)
		return false;
	expect(!memcmp(a + 18, n->mac, 6) && !memcmp(f, n->mac, 6),
	       "ARP reply not addressed to our MAC");
	memcpy(w->mac, a + 8, 6);
	return true;
}

static bool arp_resolve(struct net *n, u32 sip, u32 tip, u8 *mac_out)
{
	u8 f[64];
	struct arp_want w = {.ip = tip};
	unsigned int tries;

	for (tries = 0; tries < 3; tries++) {
		if (!net_send(n, f, build_arp_request(n, f, sip, tip), tries))
			return false;
		if (net_expect(n, match_arp_reply, &w, TIMEOUT_MS)) {
			printf("# ARP: %u.%u.%u.%u is at %02x:%02x:%02x:%02x:%02x:%02x\n",
			       tip >> 24, (tip >> 16) & 255, (tip >> 8) & 255, tip & 255, w.mac[0],
			       w.mac[1], w.mac[2], w.mac[3], w.mac[4], w.mac[5]);
			memcpy(mac_out, w.mac, 6);
			return true;
		}
	}
	fail("no ARP reply for %u.%u.%u.%u after 3 requests", tip >> 24, (tip >> 16) & 255,
	     (tip >> 8) & 255, tip & 255);
	return false;
}

/* ---- DHCP (RFC 2131 over BOOTP, RFC 951) ---- */

#define BOOTP_LEN 300

struct dhcp_want {
	u32 xid;
	u32 yiaddr, server;
};

static u32 build_discover(struct net *n, u8 *f, u32 xid)
{
	u8 *ip = f + eth_header(f, bcast, n->mac, ETH_P_IP);
	u8 *udp = ip + 20, *bp = udp + 8, *o;

	memset(bp, 0, BOOTP_LEN);
	bp[0] = 1; /* BOOTREQUEST */
	bp[1] = 1; /* Ethernet */
	bp[2] = 6;
	put32(bp + 4, xid);
	put16(bp + 10, 0x8000); /* broadcast reply */
	memcpy(bp + 28, n->mac, 6);
	put32(bp + 236, 0x63825363); /* magic cookie */
	o = bp + 240;
	*o++ = 53, *o++ = 1, *o++ = 1;                     /* DHCPDISCOVER */
	*o++ = 55, *o++ = 3, *o++ = 1, *o++ = 3, *o++ = 6; /* subnet, router, DNS */
	*o++ = 255;
	put16(udp, 68);
	put16(udp + 2, 67);
	put16(udp + 4, 8 + BOOTP_LEN);
	put16(udp + 6, 0); /* no UDP checksum (allowed over IPv4) */
	ip_header(ip, 0, 0xffffffffu, 17, 8 + BOOTP_LEN, 1);
	return ETH_HLEN + 20 + 8 + BOOTP_LEN;
}

static bool match_offer(struct net *n, const u8 *f, u32 len, void *arg)
{
	struct dhcp_want *w = arg;
	const u8 *ip = f + ETH_HLEN, *udp, *bp, *o, *end;
	unsigned int ihl;
	int type = -1;

	(void)n;
	if (len < ETH_HLEN + 20 || get16(f + 12) != ETH_P_IP || ip[9] != 17)
		return false;
	ihl = (ip[0] & 15) * 4u;
	udp = ip + ihl;
	bp = udp + 8;
	if (len < ETH_HLEN + ihl + 8 + 240 || get16(udp) != 67 || get16(udp + 2) != 68)
		return false;
	if (bp[0] != 2 || get32(bp + 4) != w->xid || get32(bp + 236) != 0x63825363)
		return false;
	expect(!csum(ip, ihl), "DHCP reply: bad IPv4 header checksum");
	w->yiaddr = get32(bp + 16);
	end = f + len;
	for (o = bp + 240; o < end && *o != 255;) {
		if (*o == 0) {
			o++;
			continue;
		}
		if (o + 2 > end || o + 2 + o[1] > end)
			break;
		if (o[0] == 53 && o[1] == 1)
			type = o[2];
		if (o[0] == 54 && o[1] == 4)
			w->server = get32(o + 2);
		o += 2 + o[1];
	}
	return expect(type == 2, "DHCP reply of type %d, want OFFER (2)", type);
}

static void net_slirp(struct net *n)
{
	static u8 f[RX_BUF_LEN];
	struct dhcp_want w = {.xid = (u32)rdtsc() ^ 0x454d4252u};
	unsigned int tries;
	u8 gw[6];
	bool got = false;

	for (tries = 0; tries < 3 && !got; tries++) {
		if (!net_send(n, f, build_discover(n, f, w.xid), tries))
			return;
		got = net_expect(n, match_offer, &w, TIMEOUT_MS);
	}
	if (!expect(got, "no DHCP OFFER after 3 DISCOVERs (%u frames ignored)", n->rx_ignored))
		return;
	printf("# DHCP: offered %u.%u.%u.%u by %u.%u.%u.%u\n", w.yiaddr >> 24,
	       (w.yiaddr >> 16) & 255, (w.yiaddr >> 8) & 255, w.yiaddr & 255, w.server >> 24,
	       (w.server >> 16) & 255, (w.server >> 8) & 255, w.server & 255);
	expect(w.yiaddr == 0x0a00020f, "DHCP offered 0x%08x, want 10.0.2.15", w.yiaddr);
	arp_resolve(n, 0x0a00020f, 0x0a000202, gw);
}

/* ---- tap: ICMP echo and the test ethertype ---- */

struct echo_want {
	u32 peer;
	u16 id, seq;
};

static bool match_icmp_reply(struct net *n, const u8 *f, u32 len, void *arg)
{
	struct echo_want *w = arg;
	const u8 *ip = f + ETH_HLEN, *ic;
	unsigned int ihl;

	(void)n;
	if (len < ETH_HLEN + 28 || get16(f + 12) != ETH_P_IP || ip[9] != 1 ||
	    get32(ip + 12) != w->peer)
		return false;
	ihl = (ip[0] & 15) * 4u;
	ic = ip + ihl;
	return ic[0] == 0 && get16(ic + 4) == w->id && get16(ic + 6) == w->seq;
}

static void net_ping(struct net *n, const u8 *peer_mac, u32 sip, u32 peer)
{
	u8 f[128], *ip, *ic;
	struct echo_want w = {.peer = peer, .id = 0xeb01, .seq = 1};
	unsigned int i;

	ip = f + eth_header(f, peer_mac, n->mac, ETH_P_IP);
	ic = ip + 20;
	ic[0] = 8; /* echo request */
	ic[1] = 0;
	put16(ic + 2, 0);
	put16(ic + 4, w.id);
	put16(ic + 6, w.seq);
	for (i = 0; i < 32; i++)
		ic[8 + i] = (u8)('a' + i % 26);
	put16(ic + 2, csum(ic, 40));
	ip_header(ip, sip, peer, 1, 40, 2);
	if (!net_send(n, f, ETH_HLEN + 20 + 40, 1))
		return;
	expect(net_expect(n, match_icmp_reply, &w, TIMEOUT_MS), "no ICMP echo reply from the peer");
}

struct pong_want {
	const char *token;
	size_t len;
};

static bool match_pong(struct net *n, const u8 *f, u32 len, void *arg)
{
	struct pong_want *w = arg;

	if (len < ETH_HLEN + 11 + w->len || get16(f + 12) != ETH_P_TEST)
		return false;
	expect(!memcmp(f, n->mac, 6), "test frame not addressed to our MAC");
	return expect(!memcmp(f + ETH_HLEN, "ember-pong ", 11) &&
	                  !memcmp(f + ETH_HLEN + 11, w->token, w->len),
	              "test frame payload is not \"ember-pong <token>\"");
}

static void net_tap(struct net *n)
{
	u32 sip, peer;
	u8 peer_mac[6], f[128];
	struct pong_want w;
	u32 len;

	w.token = cmdline_value("test.net_token", &w.len);
	if (!expect(parse_ip("test.net_ip", &sip) && parse_ip("test.net_peer", &peer) && w.token &&
	                w.len < 64,
	            "test.net=tap needs test.net_ip, test.net_peer and test.net_token"))
		return;
	if (!arp_resolve(n, sip, peer, peer_mac))
		return;
	net_ping(n, peer_mac, sip, peer);
	len = eth_header(f, bcast, n->mac, ETH_P_TEST);
	memcpy(f + len, "ember-ping ", 11);
	memcpy(f + len + 11, w.token, w.len);
	if (!net_send(n, f, len + 11 + (u32)w.len, 2))
		return;
	expect(net_expect(n, match_pong, &w, TIMEOUT_MS),
	       "no \"ember-pong\" frame from the responder");
}

void virtio_net_exercise(struct virtio_dev *d)
{
	static struct net n;
	static const u8 fallback_mac[6] = {0x52, 0x54, 0x00, 0xeb, 0x00, 0x01};
	size_t len;
	const char *mode = cmdline_value("test.net", &len);
	unsigned int i;

	memset(&n, 0, sizeof(n));
	n.dev = d;
	if (!expect(mode && ((len == 5 && !memcmp(mode, "slirp", 5)) ||
	                     (len == 3 && !memcmp(mode, "tap", 3))),
	            "test.net=slirp|tap missing"))
		return;
	n.rxbuf = dma_alloc((u64)(RX_BUFS + TX_BUFS) * RX_BUF_LEN, 4096);
	if (!n.rxbuf)
		return;
	n.txbuf = n.rxbuf + (u64)RX_BUFS * RX_BUF_LEN;
	if (!virtio_start(n.dev, BIT64(VIRTIO_NET_F_MAC) | BIT64(VIRTIO_NET_F_STATUS)))
		return;
	if (!(n.rx = virtio_queue(n.dev, 0, 0, 4)) || !(n.tx = virtio_queue(n.dev, 1, 0, 4)))
		return;
	if (virtio_has(n.dev, VIRTIO_NET_F_MAC))
		for (i = 0; i < 6; i++)
			n.mac[i] = virtio_cfg8(n.dev, i);
	else
		memcpy(n.mac, fallback_mac, 6);
	if (!virtio_ready(n.dev))
		return;
	virtio_describe(n.dev);
	printf("# MAC %02x:%02x:%02x:%02x:%02x:%02x%s\n", n.mac[0], n.mac[1], n.mac[2], n.mac[3],
	       n.mac[4], n.mac[5], virtio_has(n.dev, VIRTIO_NET_F_MAC) ? "" : " (ours: no F_MAC)");
	if (virtio_has(n.dev, VIRTIO_NET_F_STATUS))
		expect(virtio_cfg16(n.dev, 6) & 1, "link down (config status 0x%x)",
		       virtio_cfg16(n.dev, 6));
	for (i = 0; i < RX_BUFS; i++)
		if (!expect(rx_post(&n, i), "cannot post receive buffer %u", i))
			return;
	vq_kick(n.rx);

	if (mode[0] == 's')
		net_slirp(&n);
	else
		net_tap(&n);

	printf("# frames: %u sent, %u received (%u ignored); rx irqs %u, tx irqs %u\n", n.tx_frames,
	       n.rx_frames, n.rx_ignored, vq_irqs(n.rx), vq_irqs(n.tx));
	expect(!n.rx_bad_len, "%u received buffers with a bad used length", n.rx_bad_len);
	vq_expect_clean(n.rx);
	vq_expect_clean(n.tx);
	expect(!(virtio_get_status(n.dev) & VIRTIO_STATUS_NEEDS_RESET), "NEEDS_RESET set");
}

GUEST_TEST(virtio_net)
{
	static struct virtio_dev d;
	u64 mark = dma_mark();

	if (!virtio_open(&d, VIRTIO_ID_NET, "net", 0))
		return;
	virtio_net_exercise(&d);
	virtio_close(&d);
	dma_release(mark);
}
