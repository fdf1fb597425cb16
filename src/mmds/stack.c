/* stack.c - ARP replies and a minimal TCP server for MMDS inside virtio-net (see stack.h). */
#include "mmds/stack.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mmds/guest_http.h"

const uint8_t MMDS_MAC[6] = {0x06, 0x01, 0x23, 0x45, 0x67, 0x01};

#define ETH_LEN        14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP  0x0806
#define ARP_LEN        28
#define IP_LEN         20
#define TCP_LEN        20
#define PROTO_TCP      6

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

#define MSS_DEFAULT 536  /* RFC 9293 §3.7.1: without the option */
#define MSS_MAX     1460 /* what fits MMDS_OUT_MAX */

#define VNET_F_NEEDS_CSUM 1
#define VNET_GSO_NONE     0

struct conn {
	bool used;
	uint32_t rip;
	uint16_t rport;
	uint8_t rmac[6];
	bool estab;
	uint32_t iss, snd_una, snd_nxt, rcv_nxt;
	uint32_t rwnd;
	uint16_t mss;
	unsigned int dupacks;
	bool synack_due, ack_due, fin_rcvd, fin_sent;
	uint32_t fin_seq;
	uint64_t last_ms;
	const char *resp; /* the answer being sent (in this slot's out buffer), from resp_seq */
	size_t resp_len;
	uint32_t resp_seq;
	size_t rlen;
	uint8_t rbuf[MMDS_RCV_BUF];
};

struct rst {
	uint8_t rmac[6];
	uint32_t rip;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
};

struct mmds_stack {
	struct mmds *m;
	uint32_t ip;
	bool arp_due;
	uint8_t arp_mac[6];
	uint32_t arp_ip;
	struct rst rsts[MMDS_MAX_RSTS];
	unsigned int nrst;
	unsigned int rr; /* next connection to look at for output */
	uint16_t ip_id;
	uint64_t rng;
	struct mmds_stack_stats st;
	struct conn conns[MMDS_MAX_CONNS];
	char *out;       /* MMDS_MAX_CONNS response buffers of out_size bytes, one per slot */
	size_t out_size; /* mmds_http_out_size(m) */
};

/* ---- bytes -------------------------------------------------------------------------------- */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* RFC 1071: the one's complement sum of 16-bit words, not yet folded. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* The TCP pseudo header's sum (RFC 9293 §3.1). */
static uint32_t pseudo(uint32_t src, uint32_t dst, size_t tcp_len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + PROTO_TCP +
	       (uint32_t)tcp_len;
}

static bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static uint32_t rnd32(struct mmds_stack *s)
{
	/* xorshift64*: initial sequence numbers need only be hard to guess from the guest. */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return (uint32_t)((s->rng * 0x2545F4914F6CDD1Dull) >> 32);
}

/* ---- setup -------------------------------------------------------------------------------- */

struct mmds_stack *mmds_stack_new(struct mmds *m, uint32_t ipv4)
{
	struct mmds_stack *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->m = m;
	s->ip = ipv4;
	/* Untouched pages cost nothing: only as much as the longest answer sent is ever used. */
	s->out_size = mmds_http_out_size(m);
	s->out = malloc(MMDS_MAX_CONNS * s->out_size);
	if (!s->out) {
		free(s);
		return NULL;
	}
	if (getrandom(&s->rng, sizeof(s->rng), GRND_NONBLOCK) != (ssize_t)sizeof(s->rng))
		s->rng = (uintptr_t)s ^ 0x9e3779b97f4a7c15ull;
	s->rng |= 1;
	return s;
}

static void conn_free(struct mmds_stack *s, struct conn *c)
{
	(void)s;
	c->resp = NULL;
	c->used = false;
}

void mmds_stack_free(struct mmds_stack *s)
{
	unsigned int i;

	if (!s)
		return;
	for (i = 0; i < MMDS_MAX_CONNS; i++)
		if (s->conns[i].used)
			conn_free(s, &s->conns[i]);
	free(s->out);
	free(s);
}

const struct mmds_stack_stats *mmds_stack_stats(const struct mmds_stack *s)
{
	return &s->st;
}

unsigned int mmds_stack_conns(const struct mmds_stack *s)
{
	unsigned int i, n = 0;

	for (i = 0; i < MMDS_MAX_CONNS; i++)
		n += s->conns[i].used;
	return n;
}

/* ---- input -------------------------------------------------------------------------------- */

bool mmds_stack_is_for_us(const struct mmds_stack *s, const uint8_t *f, size_t len)
{
	if (len < ETH_LEN + 20)
		return false;
	switch (get16(f + 12)) {
	case ETHERTYPE_ARP: /* target protocol address */
		return len >= ETH_LEN + ARP_LEN && get32(f + ETH_LEN + 24) == s->ip;
	case ETHERTYPE_IPV4: /* destination address */
		return get32(f + ETH_LEN + 16) == s->ip;
	default:
		return false;
	}
}

static void queue_rst(struct mmds_stack *s, const uint8_t *rmac, uint32_t rip, uint16_t sport,
                      uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags)
{
	struct rst *r;

	if (s->nrst == MMDS_MAX_RSTS)
		return; /* Firecracker's bounded queue: the peer retransmits and gets one later */
	r = &s->rsts[s->nrst++];
	memcpy(r->rmac, rmac, 6);
	r->rip = rip;
	r->sport = sport;
	r->dport = dport;
	r->seq = seq;
	r->ack = ack;
	r->flags = flags;
	s->st.conns_reset++;
}

/* RFC 9293 §3.10.7.1: the reset for a segment that has no connection. */
static void reset_for(struct mmds_stack *s, const uint8_t *rmac, uint32_t rip, uint16_t rport,
                      uint16_t lport, uint8_t flags, uint32_t seq, uint32_t ack, size_t plen)
{
	if (flags & TH_RST)
		return;
	if (flags & TH_ACK)
		queue_rst(s, rmac, rip, lport, rport, ack, 0, TH_RST);
	else
		queue_rst(s, rmac, rip, lport, rport, 0,
		          seq + (uint32_t)plen + !!(flags & TH_SYN) + !!(flags & TH_FIN),
		          TH_RST | TH_ACK);
}

static void conn_reset(struct mmds_stack *s, struct conn *c)
{
	queue_rst(s, c->rmac, c->rip, MMDS_PORT, c->rport, c->snd_nxt, c->rcv_nxt, TH_RST | TH_ACK);
	conn_free(s, c);
}

/* Parse the next request if the connection is free to answer it. */
static void conn_progress(struct mmds_stack *s, struct conn *c)
{
	if (c->resp && !seq_lt(c->snd_una, c->resp_seq + (uint32_t)c->resp_len)) {
		c->resp = NULL; /* fully acknowledged */
	}
	if (!c->resp && c->estab && c->rlen) {
		size_t hl = mmds_http_head_len((const char *)c->rbuf, c->rlen);

		if (hl) {
			char *out = s->out + (size_t)(c - s->conns) * s->out_size;

			if (mmds_http_respond(s->m, (const char *)c->rbuf, hl, out, s->out_size,
			                      &c->resp, &c->resp_len) < 0) {
				conn_reset(s, c);
				return;
			}
			memmove(c->rbuf, c->rbuf + hl, c->rlen - hl);
			c->rlen -= hl;
			c->resp_seq = c->snd_nxt;
			c->ack_due = true; /* the window opened */
		} else if (c->rlen == MMDS_RCV_BUF) {
			conn_reset(s, c); /* Firecracker: a full buffer without a request */
			return;
		}
	}
	/* Our FIN, after the peer's and once every answer is acknowledged (LAST-ACK). */
	if (c->fin_sent && c->fin_rcvd && !seq_lt(c->snd_una, c->fin_seq + 1)) {
		s->st.conns_closed++;
		conn_free(s, c);
	}
}

static struct conn *conn_find(struct mmds_stack *s, uint32_t rip, uint16_t rport)
{
	unsigned int i;

	for (i = 0; i < MMDS_MAX_CONNS; i++)
		if (s->conns[i].used && s->conns[i].rip == rip && s->conns[i].rport == rport)
			return &s->conns[i];
	return NULL;
}

/* A free slot, or one idle long enough to be replaced; NULL when every one is busy. */
static struct conn *conn_slot(struct mmds_stack *s, uint64_t now)
{
	struct conn *oldest = NULL;
	unsigned int i;

	for (i = 0; i < MMDS_MAX_CONNS; i++) {
		struct conn *c = &s->conns[i];

		if (!c->used)
			return c;
		if (now - c->last_ms > MMDS_IDLE_MS && (!oldest || c->last_ms < oldest->last_ms))
			oldest = c;
	}
	if (oldest) {
		s->st.conns_closed++;
		conn_free(s, oldest);
	}
	return oldest;
}

/* The MSS option of a SYN (RFC 9293 §3.7.1), else the default; clamped to what we send. */
static uint16_t syn_mss(const uint8_t *opt, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t kind = opt[i];

		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (i + 1 >= len || opt[i + 1] < 2 || opt[i + 1] > len - i)
			break; /* malformed: ignore the rest */
		if (kind == 2 && opt[i + 1] == 4) {
			uint16_t mss = get16(opt + i + 2);

			if (mss < 64)
				mss = 64;
			return mss < MSS_MAX ? mss : MSS_MAX;
		}
		i += opt[i + 1];
	}
	return MSS_DEFAULT;
}

struct seg {
	const uint8_t *rmac;
	uint32_t rip;
	uint16_t rport, lport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t win;
	const uint8_t *opt, *data;
	size_t optlen, plen;
};

static void tcp_new(struct mmds_stack *s, const struct seg *g, uint64_t now)
{
	struct conn *c;

	if ((g->flags & (TH_SYN | TH_ACK | TH_RST | TH_FIN)) != TH_SYN) {
		s->st.rx_unusual++;
		reset_for(s, g->rmac, g->rip, g->rport, g->lport, g->flags, g->seq, g->ack,
		          g->plen);
		return;
	}
	c = conn_slot(s, now);
	if (!c) {
		reset_for(s, g->rmac, g->rip, g->rport, g->lport, g->flags, g->seq, g->ack,
		          g->plen);
		return;
	}
	memset(c, 0, offsetof(struct conn, rbuf));
	c->used = true;
	c->rip = g->rip;
	c->rport = g->rport;
	memcpy(c->rmac, g->rmac, 6);
	c->iss = rnd32(s);
	c->snd_una = c->snd_nxt = c->iss;
	c->rcv_nxt = g->seq + 1;
	c->rwnd = g->win;
	c->mss = syn_mss(g->opt, g->optlen);
	c->synack_due = true;
	c->last_ms = now;
	s->st.conns_opened++;
}

static void tcp_input(struct mmds_stack *s, const struct seg *g, uint64_t now)
{
	struct conn *c = conn_find(s, g->rip, g->rport);

	if (!c) {
		tcp_new(s, g, now);
		return;
	}
	c->last_ms = now;
	memcpy(c->rmac, g->rmac, 6);
	if (g->flags & TH_RST) {
		/* RFC 5961 §3.2: only an exact match resets; else a challenge ACK. */
		if (g->seq == c->rcv_nxt) {
			s->st.conns_reset++;
			conn_free(s, c);
		} else {
			c->ack_due = true;
		}
		return;
	}
	if (g->flags & TH_SYN) {
		if (!c->estab && g->seq + 1 == c->rcv_nxt)
			c->synack_due = true; /* our SYN-ACK was not seen: again */
		else
			c->ack_due = true; /* RFC 5961 §4.2: challenge ACK */
		return;
	}
	if (!(g->flags & TH_ACK)) {
		s->st.rx_unusual++;
		return; /* RFC 9293 §3.10.7.4, fifth check: no ACK, drop */
	}
	if (!c->estab) {
		if (g->ack != c->iss + 1) {
			reset_for(s, g->rmac, g->rip, g->rport, g->lport, g->flags, g->seq, g->ack,
			          g->plen);
			return;
		}
		c->estab = true;
	}
	if (seq_lt(c->snd_una, g->ack) && !seq_lt(c->snd_nxt, g->ack)) {
		c->snd_una = g->ack;
		c->dupacks = 0;
	} else if (seq_lt(c->snd_nxt, g->ack)) {
		c->ack_due = true; /* acknowledges what was never sent */
		return;
	} else if (g->ack == c->snd_una && !g->plen && !(g->flags & TH_FIN) &&
	           c->snd_nxt != c->snd_una && ++c->dupacks == 3) {
		c->dupacks = 0;
		c->snd_nxt = c->snd_una; /* go back to the first unacknowledged byte */
		if (c->fin_sent && !seq_lt(c->fin_seq, c->snd_una))
			c->fin_sent = false;
	}
	c->rwnd = g->win;
	if (g->plen || (g->flags & TH_FIN)) {
		c->ack_due = true;
		if (g->seq == c->rcv_nxt && !c->fin_rcvd) {
			size_t room = MMDS_RCV_BUF - c->rlen;
			size_t take = g->plen < room ? g->plen : room;

			memcpy(c->rbuf + c->rlen, g->data, take);
			c->rlen += take;
			c->rcv_nxt += (uint32_t)take;
			if ((g->flags & TH_FIN) && take == g->plen) {
				c->fin_rcvd = true;
				c->rcv_nxt++;
			}
		}
	}
	conn_progress(s, c);
}

/* Complete a partial checksum as a device does (virtio 1.2 §5.1.6.2.1). */
static bool complete_csum(uint8_t *f, size_t end, uint16_t start, uint16_t off)
{
	if (start > end || (size_t)start + off + 2 > end)
		return false;
	put16(f + start + off, (uint16_t)~csum_fold(csum_add(0, f + start, end - start)));
	return true;
}

static void arp_input(struct mmds_stack *s, const uint8_t *f, size_t len)
{
	const uint8_t *a = f + ETH_LEN;

	/* RFC 826 request for Ethernet/IPv4: htype 1, ptype 0x0800, hlen 6, plen 4, op 1. */
	if (len < ETH_LEN + ARP_LEN || get16(a) != 1 || get16(a + 2) != ETHERTYPE_IPV4 ||
	    a[4] != 6 || a[5] != 4 || get16(a + 6) != 1) {
		s->st.rx_bad++;
		return;
	}
	memcpy(s->arp_mac, a + 8, 6);
	s->arp_ip = get32(a + 14);
	s->arp_due = true;
}

bool mmds_stack_input(struct mmds_stack *s, uint8_t *f, size_t len, uint8_t vnet_flags,
                      uint8_t gso_type, uint16_t csum_start, uint16_t csum_offset)
{
	const uint8_t *ip = f + ETH_LEN, *tcp;
	size_t ihl, tot, tlen, doff;
	struct seg g;

	if (!mmds_stack_is_for_us(s, f, len))
		return false;
	s->st.rx_frames++;
	if (get16(f + 12) == ETHERTYPE_ARP) {
		arp_input(s, f, len);
		return true;
	}
	/* IPv4 (RFC 791): version, header length, total length, no fragments, checksum. */
	ihl = (size_t)(ip[0] & 15) * 4;
	tot = get16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < IP_LEN || tot < ihl || tot > len - ETH_LEN ||
	    (get16(ip + 6) & 0x3fff) || csum_fold(csum_add(0, ip, ihl)) != 0xffff ||
	    gso_type != VNET_GSO_NONE) {
		s->st.rx_bad++;
		return true;
	}
	if (ip[9] != PROTO_TCP) {
		s->st.rx_unusual++;
		return true;
	}
	if ((vnet_flags & VNET_F_NEEDS_CSUM) &&
	    !complete_csum(f, ETH_LEN + tot, csum_start, csum_offset)) {
		s->st.rx_bad++;
		return true;
	}
	tcp = ip + ihl;
	tlen = tot - ihl;
	doff = tlen >= TCP_LEN ? (size_t)(tcp[12] >> 4) * 4 : 0;
	if (tlen < TCP_LEN || doff < TCP_LEN || doff > tlen ||
	    csum_fold(csum_add(pseudo(get32(ip + 12), s->ip, tlen), tcp, tlen)) != 0xffff) {
		s->st.rx_bad++;
		return true;
	}
	g = (struct seg){
	    .rmac = f + 6,
	    .rip = get32(ip + 12),
	    .rport = get16(tcp),
	    .lport = get16(tcp + 2),
	    .seq = get32(tcp + 4),
	    .ack = get32(tcp + 8),
	    .flags = tcp[13],
	    .win = get16(tcp + 14),
	    .opt = tcp + TCP_LEN,
	    .optlen = doff - TCP_LEN,
	    .data = tcp + doff,
	    .plen = tlen - doff,
	};
	if (g.lport != MMDS_PORT) {
		s->st.rx_unusual++;
		reset_for(s, g.rmac, g.rip, g.rport, g.lport, g.flags, g.seq, g.ack, g.plen);
		return true;
	}
	tcp_input(s, &g, s->m->now_ms());
	return true;
}

/* ---- output ------------------------------------------------------------------------------- */

static bool conn_has_output(const struct conn *c)
{
	if (!c->used)
		return false;
	if (c->synack_due || c->ack_due)
		return true;
	if (!c->estab)
		return false;
	if (c->resp) {
		uint32_t off = c->snd_nxt - c->resp_seq;
		uint32_t inflight = c->snd_nxt - c->snd_una;

		return off < c->resp_len && inflight < c->rwnd;
	}
	return c->fin_rcvd && !c->fin_sent;
}

bool mmds_stack_pending(const struct mmds_stack *s)
{
	unsigned int i;

	if (s->arp_due || s->nrst)
		return true;
	for (i = 0; i < MMDS_MAX_CONNS; i++)
		if (conn_has_output(&s->conns[i]))
			return true;
	return false;
}

static size_t eth_head(uint8_t *buf, const uint8_t *dst, uint16_t type)
{
	memcpy(buf, dst, 6);
	memcpy(buf + 6, MMDS_MAC, 6);
	put16(buf + 12, type);
	return ETH_LEN;
}

static size_t build_tcp(struct mmds_stack *s, uint8_t *buf, const uint8_t *rmac, uint32_t rip,
                        uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                        uint16_t win, uint16_t mss_opt, const void *data, size_t plen)
{
	uint8_t *ip = buf + ETH_LEN, *tcp = ip + IP_LEN;
	size_t tcplen = TCP_LEN + (mss_opt ? 4 : 0), tot = IP_LEN + tcplen + plen;

	eth_head(buf, rmac, ETHERTYPE_IPV4);
	memset(ip, 0, IP_LEN + tcplen);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)tot);
	put16(ip + 4, s->ip_id++);
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = PROTO_TCP;
	put32(ip + 12, s->ip);
	put32(ip + 16, rip);
	put16(ip + 10, (uint16_t)~csum_fold(csum_add(0, ip, IP_LEN)));
	put16(tcp, sport);
	put16(tcp + 2, dport);
	put32(tcp + 4, seq);
	put32(tcp + 8, ack);
	tcp[12] = (uint8_t)((tcplen / 4) << 4);
	tcp[13] = flags;
	put16(tcp + 14, win);
	if (mss_opt) {
		tcp[20] = 2;
		tcp[21] = 4;
		put16(tcp + 22, mss_opt);
	}
	if (plen)
		memcpy(tcp + tcplen, data, plen);
	put16(tcp + 16, (uint16_t)~csum_fold(
	                    csum_add(pseudo(s->ip, rip, tcplen + plen), tcp, tcplen + plen)));
	return ETH_LEN + tot;
}

static size_t conn_output(struct mmds_stack *s, struct conn *c, uint8_t *buf)
{
	uint16_t win = (uint16_t)(MMDS_RCV_BUF - c->rlen);
	uint8_t flags = TH_ACK;
	const void *data = NULL;
	size_t n = 0, len;
	uint32_t seq;

	if (c->synack_due) {
		c->synack_due = false;
		c->snd_nxt = c->iss + 1;
		return build_tcp(s, buf, c->rmac, c->rip, MMDS_PORT, c->rport, c->iss, c->rcv_nxt,
		                 TH_SYN | TH_ACK, win, MSS_MAX, NULL, 0);
	}
	seq = c->snd_nxt;
	if (c->estab && c->resp) {
		uint32_t off = c->snd_nxt - c->resp_seq, inflight = c->snd_nxt - c->snd_una;

		if (off < c->resp_len && inflight < c->rwnd) {
			n = c->resp_len - off;
			if (n > c->mss)
				n = c->mss;
			if (n > c->rwnd - inflight)
				n = c->rwnd - inflight;
			data = c->resp + off;
			flags |= TH_PSH;
			c->snd_nxt += (uint32_t)n;
		}
	} else if (c->estab && c->fin_rcvd && !c->fin_sent) {
		flags |= TH_FIN;
		c->fin_sent = true;
		c->fin_seq = c->snd_nxt;
		c->snd_nxt++;
	}
	if (!n && flags == TH_ACK && !c->ack_due)
		return 0;
	c->ack_due = false;
	len = build_tcp(s, buf, c->rmac, c->rip, MMDS_PORT, c->rport, seq, c->rcv_nxt, flags, win,
	                0, data, n);
	return len;
}

size_t mmds_stack_output(struct mmds_stack *s, uint8_t *buf, size_t cap)
{
	unsigned int i;

	if (cap < MMDS_OUT_MAX)
		return 0;
	if (s->arp_due) {
		uint8_t *a = buf + ETH_LEN;

		s->arp_due = false;
		eth_head(buf, s->arp_mac, ETHERTYPE_ARP);
		put16(a, 1);
		put16(a + 2, ETHERTYPE_IPV4);
		a[4] = 6;
		a[5] = 4;
		put16(a + 6, 2); /* reply */
		memcpy(a + 8, MMDS_MAC, 6);
		put32(a + 14, s->ip);
		memcpy(a + 18, s->arp_mac, 6);
		put32(a + 24, s->arp_ip);
		s->st.tx_frames++;
		return ETH_LEN + ARP_LEN;
	}
	if (s->nrst) {
		struct rst r = s->rsts[0];

		memmove(s->rsts, s->rsts + 1, (--s->nrst) * sizeof(s->rsts[0]));
		s->st.tx_frames++;
		return build_tcp(s, buf, r.rmac, r.rip, r.sport, r.dport, r.seq, r.ack, r.flags, 0,
		                 0, NULL, 0);
	}
	for (i = 0; i < MMDS_MAX_CONNS; i++) {
		struct conn *c = &s->conns[(s->rr + i) % MMDS_MAX_CONNS];
		size_t len;

		if (!conn_has_output(c))
			continue;
		len = conn_output(s, c, buf);
		if (!len)
			continue;
		s->rr = (s->rr + i + 1) % MMDS_MAX_CONNS;
		s->st.tx_frames++;
		return len;
	}
	return 0;
}
