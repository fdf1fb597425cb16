/* t_virtio_vsock.c - virtio-vsock (virtio 1.2 §5.10): a stream to the host and one from it. */
#include "virtio.h"

/*
 * Command line (tests/integration/test_virtio.py sets it):
 *   test.virtio_vsock=pci|mmio
 *   test.vsock_cid=N        the guest CID ember was given (config space must match)
 *   test.vsock_port=P       guest-initiated: connect to host port P (the host side
 *                           listens on <uds>_P), send "hello-from-guest <token>\n",
 *                           expect "hello-from-host <token>\n", shut down
 *   test.vsock_listen=Q     host-initiated: print "# vsock: listening on port Q",
 *                           accept the host's connection (CONNECT Q on <uds>),
 *                           expect "ping <token>\n", answer "pong <token>\n",
 *                           then expect the host's shutdown
 *   test.vsock_token=T
 */

#define RX_BUFS    16
#define RX_DATA    4096
#define RX_LEN     (HLEN + RX_DATA)
#define TX_BUFS    4
#define EV_BUFS    4
#define HLEN       44
#define BUF_ALLOC  (64 * 1024)
#define LOCAL_PORT 50000
#define TIMEOUT_MS 5000

#define OP_REQUEST        1
#define OP_RESPONSE       2
#define OP_RST            3
#define OP_SHUTDOWN       4
#define OP_RW             5
#define OP_CREDIT_UPDATE  6
#define OP_CREDIT_REQUEST 7
#define TYPE_STREAM       1
#define SHUTDOWN_RCV      1
#define SHUTDOWN_SEND     2

struct hdr {
	u64 src_cid, dst_cid;
	u32 src_port, dst_port;
	u32 len;
	u16 type, op;
	u32 flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

_Static_assert(sizeof(struct hdr) == HLEN, "virtio_vsock_hdr is 44 bytes");

struct conn {
	u32 local, peer;
	bool connected, reset;
	u32 peer_shutdown;
	u32 peer_buf_alloc, peer_fwd_cnt;
	u32 tx_cnt, fwd_cnt;
	char data[256];
	u32 datalen;
};

struct vsock {
	struct virtio_dev *dev;
	struct vq *rx, *tx, *ev;
	u8 *rxbuf, *txbuf, *evbuf;
	u16 rx_head_buf[VQ_MAX_SIZE];
	u64 cid;
	u32 rx_pkts, tx_pkts, stray;
};

static bool rx_post(struct vsock *v, unsigned int i)
{
	u8 *b = v->rxbuf + (u64)i * RX_LEN;
	struct vbuf s[2];
	unsigned int k = 1;
	int head;

	s[0] = (struct vbuf){pa(b), RX_LEN, true};
	if (i & 1) { /* header and payload apart, as older drivers post them */
		s[0].len = HLEN;
		s[1] = (struct vbuf){pa(b) + HLEN, RX_DATA, true};
		k = 2;
	}
	head = vq_add(v->rx, s, k, v->rx->indirect && (i & 2));
	if (head < 0)
		return false;
	v->rx_head_buf[head] = (u16)i;
	return true;
}

static bool send_pkt(struct vsock *v, struct conn *c, u16 op, u32 flags, const void *data, u32 len)
{
	struct hdr *h = (struct hdr *)v->txbuf;
	struct vbuf s[2];
	unsigned int k = 1;
	u16 head;
	u32 ul;

	memset(h, 0, HLEN);
	h->src_cid = v->cid;
	h->dst_cid = VSOCK_HOST_CID;
	h->src_port = c->local;
	h->dst_port = c->peer;
	h->len = len;
	h->type = TYPE_STREAM;
	h->op = op;
	h->flags = flags;
	h->buf_alloc = BUF_ALLOC;
	h->fwd_cnt = c->fwd_cnt;
	if (len)
		memcpy(v->txbuf + HLEN, data, len);
	s[0] = (struct vbuf){pa(h), HLEN + len, false};
	if (len && (v->tx_pkts & 1)) {
		s[0].len = HLEN;
		s[1] = (struct vbuf){pa(h) + HLEN, len, false};
		k = 2;
	}
	if (!expect(vq_add(v->tx, s, k, v->tx->indirect && (v->tx_pkts & 2)) >= 0,
	            "transmit ring full"))
		return false;
	vq_kick(v->tx);
	if (!expect(vq_wait_get(v->tx, &head, &ul, TIMEOUT_MS), "op %u: transmit buffer never used",
	            op))
		return false;
	v->tx_pkts++;
	if (op == OP_RW)
		c->tx_cnt += len;
	return true;
}

/* A reset to whoever sent `h`, for packets that belong to no connection. */
static void send_rst_to(struct vsock *v, const struct hdr *h)
{
	struct conn c = {.local = h->dst_port, .peer = h->src_port};

	if (h->op != OP_RST)
		send_pkt(v, &c, OP_RST, 0, NULL, 0);
}

/* Receive one packet: header and up to RX_DATA payload bytes. */
static bool recv_pkt(struct vsock *v, struct hdr *h, u8 *data, u64 ms)
{
	u16 head;
	u32 len, i;
	u8 *b;

	if (!vq_wait_get(v->rx, &head, &len, ms))
		return false;
	i = v->rx_head_buf[head];
	b = v->rxbuf + (u64)i * RX_LEN;
	v->rx_pkts++;
	memcpy(h, b, HLEN);
	expect(len >= HLEN && len == HLEN + h->len,
	       "received packet: used length %u, header says %u + %u", len, HLEN, h->len);
	if (h->len > RX_DATA)
		h->len = RX_DATA;
	memcpy(data, b + HLEN, h->len);
	rx_post(v, i);
	vq_kick(v->rx);
	return true;
}

/* Handle one packet for connection c (or answer it with RST).  False if it was not c's. */
static bool handle(struct vsock *v, struct conn *c, const struct hdr *h, const u8 *data)
{
	if (h->src_cid != VSOCK_HOST_CID || h->dst_cid != v->cid || h->dst_port != c->local ||
	    (c->peer && h->src_port != c->peer) || h->type != TYPE_STREAM) {
		v->stray++;
		printf("# vsock: stray op %u %llu:%u -> %llu:%u\n", h->op, h->src_cid, h->src_port,
		       h->dst_cid, h->dst_port);
		send_rst_to(v, h);
		return false;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case OP_RESPONSE:
		c->connected = true;
		break;
	case OP_RW:
		if (c->datalen + h->len < sizeof(c->data)) {
			memcpy(c->data + c->datalen, data, h->len);
			c->datalen += h->len;
		}
		c->fwd_cnt += h->len;
		break;
	case OP_CREDIT_REQUEST:
		send_pkt(v, c, OP_CREDIT_UPDATE, 0, NULL, 0);
		break;
	case OP_SHUTDOWN:
		c->peer_shutdown |= h->flags;
		break;
	case OP_RST:
		c->reset = true;
		break;
	default:
		break;
	}
	return true;
}

typedef bool (*conn_cond)(const struct conn *c);

/* Process packets until cond(c) holds or `ms` pass. */
static bool pump(struct vsock *v, struct conn *c, conn_cond cond, u64 ms)
{
	static u8 data[RX_DATA];
	u64 end = deadline_ms(ms), now;
	struct hdr h;

	while (!cond(c) && (now = rdtsc()) < end) {
		if (!recv_pkt(v, &h, data, (end - now) / tsc_per_ms() + 1))
			break;
		handle(v, c, &h, data);
	}
	return cond(c);
}

static bool c_connected(const struct conn *c)
{
	return c->connected || c->reset;
}

static bool c_line(const struct conn *c)
{
	return c->reset || (c->datalen && c->data[c->datalen - 1] == '\n');
}

static bool c_reset(const struct conn *c)
{
	return c->reset;
}

static bool c_shutdown(const struct conn *c)
{
	return c->reset || c->peer_shutdown;
}

/* Send a line, asking for credit first if the peer's buffer is full. */
static bool send_line(struct vsock *v, struct conn *c, const char *s)
{
	u32 len = (u32)strlen(s);

	if (c->peer_buf_alloc - (c->tx_cnt - c->peer_fwd_cnt) < len) {
		send_pkt(v, c, OP_CREDIT_REQUEST, 0, NULL, 0);
		pump(v, c, c_reset, 500);
		if (!expect(c->peer_buf_alloc - (c->tx_cnt - c->peer_fwd_cnt) >= len,
		            "no credit to send %u bytes: peer buf_alloc %u, fwd_cnt %u, sent %u",
		            len, c->peer_buf_alloc, c->peer_fwd_cnt, c->tx_cnt))
			return false;
	}
	return send_pkt(v, c, OP_RW, 0, s, len);
}

static bool line_is(const struct conn *c, const char *want, const char *what)
{
	u32 n = (u32)strlen(want), i;
	char got[81];

	for (i = 0; i < c->datalen && i < 80; i++)
		got[i] = c->data[i] >= 0x20 && c->data[i] < 0x7f ? c->data[i] : '.';
	got[i] = '\0';
	return expect(c->datalen == n && !memcmp(c->data, want, n),
	              "%s: received %u bytes \"%s\", want \"%s\"", what, c->datalen, got, want);
}

static void guest_connect(struct vsock *v, u32 port, const char *token)
{
	struct conn c = {.local = LOCAL_PORT, .peer = port};
	char msg[128];

	if (!send_pkt(v, &c, OP_REQUEST, 0, NULL, 0))
		return;
	if (!expect(pump(v, &c, c_connected, TIMEOUT_MS) && c.connected,
	            "connect to host port %u: %s", port, c.reset ? "reset" : "no response"))
		return;
	printf("# vsock: connected to host port %u (peer buf_alloc %u)\n", port, c.peer_buf_alloc);
	snprintf(msg, sizeof(msg), "hello-from-guest %s\n", token);
	if (!send_line(v, &c, msg))
		return;
	if (expect(pump(v, &c, c_line, TIMEOUT_MS), "no reply line from the host (%u bytes%s)",
	           c.datalen, c.reset ? ", reset" : "")) {
		snprintf(msg, sizeof(msg), "hello-from-host %s\n", token);
		line_is(&c, msg, "guest-initiated");
	}
	send_pkt(v, &c, OP_SHUTDOWN, SHUTDOWN_RCV | SHUTDOWN_SEND, NULL, 0);
	expect(pump(v, &c, c_reset, TIMEOUT_MS), "no RST after our SHUTDOWN (§5.10.6.6)");
}

static void host_connect(struct vsock *v, u32 port, const char *token)
{
	static u8 data[RX_DATA];
	struct conn c = {.local = port};
	struct hdr h;
	u64 end = deadline_ms(20000), now;
	char msg[128];

	printf("# vsock: listening on port %u\n", port);
	while (!c.connected && (now = rdtsc()) < end) {
		if (!recv_pkt(v, &h, data, (end - now) / tsc_per_ms() + 1))
			break;
		if (h.op == OP_REQUEST && h.src_cid == VSOCK_HOST_CID && h.dst_port == port &&
		    h.dst_cid == v->cid) {
			c.peer = h.src_port;
			c.peer_buf_alloc = h.buf_alloc;
			c.peer_fwd_cnt = h.fwd_cnt;
			c.connected = true;
		} else {
			handle(v, &c, &h, data);
		}
	}
	if (!expect(c.connected, "no connection request for port %u in 20 s", port))
		return;
	printf("# vsock: host port %u connected\n", c.peer);
	if (!send_pkt(v, &c, OP_RESPONSE, 0, NULL, 0))
		return;
	if (!expect(pump(v, &c, c_line, TIMEOUT_MS), "no line from the host (%u bytes%s)",
	            c.datalen, c.reset ? ", reset" : ""))
		return;
	snprintf(msg, sizeof(msg), "ping %s\n", token);
	if (!line_is(&c, msg, "host-initiated"))
		return;
	snprintf(msg, sizeof(msg), "pong %s\n", token);
	c.datalen = 0;
	if (!send_line(v, &c, msg))
		return;
	if (expect(pump(v, &c, c_shutdown, 10000), "the host never shut the connection down"))
		if (!c.reset)
			send_pkt(v, &c, OP_RST, 0, NULL, 0);
}

void virtio_vsock_exercise(struct virtio_dev *d)
{
	static struct vsock v;
	u64 want_cid, port;
	size_t tlen;
	const char *token = cmdline_value("test.vsock_token", &tlen);
	char tok[64];
	unsigned int i;

	memset(&v, 0, sizeof(v));
	v.dev = d;
	if (!token) {
		token = "none";
		tlen = 4;
	}
	if (tlen >= sizeof(tok))
		tlen = sizeof(tok) - 1;
	memcpy(tok, token, tlen);
	tok[tlen] = '\0';
	v.rxbuf = dma_alloc((u64)RX_BUFS * RX_LEN + 2 * RX_LEN + EV_BUFS * 8, 4096);
	if (!v.rxbuf || !virtio_start(v.dev, 0))
		return;
	v.txbuf = v.rxbuf + (u64)RX_BUFS * RX_LEN;
	v.evbuf = v.txbuf + 2 * RX_LEN;
	if (!(v.rx = virtio_queue(v.dev, 0, 0, 4)) || !(v.tx = virtio_queue(v.dev, 1, 0, 4)) ||
	    !(v.ev = virtio_queue(v.dev, 2, 0, 0)))
		return;
	v.cid = virtio_cfg64(v.dev, 0);
	if (!virtio_ready(v.dev))
		return;
	virtio_describe(v.dev);
	printf("# vsock: guest cid %llu\n", v.cid);
	if (cmdline_u64("test.vsock_cid", &want_cid))
		expect(v.cid == want_cid, "guest_cid %llu, want %llu", v.cid, want_cid);
	for (i = 0; i < RX_BUFS; i++)
		if (!expect(rx_post(&v, i), "cannot post receive buffer %u", i))
			return;
	for (i = 0; i < EV_BUFS; i++) {
		struct vbuf e = {pa(v.evbuf) + 8 * i, 8, true};

		vq_add(v.ev, &e, 1, false);
	}
	vq_kick(v.rx);
	vq_kick(v.ev);

	if (cmdline_u64("test.vsock_port", &port))
		guest_connect(&v, (u32)port, tok);
	if (cmdline_u64("test.vsock_listen", &port))
		host_connect(&v, (u32)port, tok);

	printf("# vsock: %u packets received, %u sent, %u stray; rx irqs %u, tx irqs %u\n",
	       v.rx_pkts, v.tx_pkts, v.stray, vq_irqs(v.rx), vq_irqs(v.tx));
	vq_expect_clean(v.rx);
	vq_expect_clean(v.tx);
	expect(!(virtio_get_status(v.dev) & VIRTIO_STATUS_NEEDS_RESET), "NEEDS_RESET set");
}

GUEST_TEST(virtio_vsock)
{
	static struct virtio_dev d;
	u64 mark = dma_mark();

	if (!virtio_open(&d, VIRTIO_ID_VSOCK, "vsock", 0))
		return;
	virtio_vsock_exercise(&d);
	virtio_close(&d);
	dma_release(mark);
}
