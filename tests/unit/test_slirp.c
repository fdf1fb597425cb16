/* test_slirp.c - unit tests for the slirp backend: ARP, DHCP, ICMP, frame queue, TCP via evloop. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/slirp.h"
#include "test.h"
#include "util/evloop.h"

/*
 * ARP, DHCP and ICMP to 10.0.2.2 are answered inside libslirp, in-process:
 * no host socket is involved (the stack runs `restricted`, so it could not
 * reach out anyway).  The TCP test needs a host socket: it forks and runs in
 * a fresh network namespace that holds only a loopback interface, so the
 * connection never leaves it.
 */

static const uint8_t guest_mac[6] = {0x06, 0x00, 0xac, 0x10, 0x00, 0x02};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

struct frame {
	uint8_t b[2048];
	size_t len;
};

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += be16(p + i);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static size_t eth(uint8_t *f, const uint8_t *dst, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, guest_mac, 6);
	put16(f + 12, type);
	return 14;
}

/* IPv4 header at f (20 bytes) for `payload` bytes of `proto` from src to dst (host order). */
static void ipv4(uint8_t *f, uint8_t proto, uint32_t src, uint32_t dst, size_t payload)
{
	memset(f, 0, 20);
	f[0] = 0x45;
	put16(f + 2, (uint16_t)(20 + payload));
	put16(f + 4, 0x1234);
	f[8] = 64;
	f[9] = proto;
	put16(f + 12, (uint16_t)(src >> 16));
	put16(f + 14, (uint16_t)src);
	put16(f + 16, (uint16_t)(dst >> 16));
	put16(f + 18, (uint16_t)dst);
	put16(f + 10, csum_fold(csum_add(0, f, 20)));
}

#define IP(a, b, c, d)                                                                             \
	((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

static size_t make_arp_request(uint8_t *f, uint32_t sender_ip, uint32_t target_ip)
{
	size_t o = eth(f, bcast, 0x0806);

	put16(f + o, 1);          /* Ethernet */
	put16(f + o + 2, 0x0800); /* IPv4 */
	f[o + 4] = 6;
	f[o + 5] = 4;
	put16(f + o + 6, 1); /* request */
	memcpy(f + o + 8, guest_mac, 6);
	put16(f + o + 14, (uint16_t)(sender_ip >> 16));
	put16(f + o + 16, (uint16_t)sender_ip);
	memset(f + o + 18, 0, 6);
	put16(f + o + 24, (uint16_t)(target_ip >> 16));
	put16(f + o + 26, (uint16_t)target_ip);
	return o + 28;
}

/* A DHCP message (RFC 2131) of `type` (1 DISCOVER, 3 REQUEST) with xid. */
static size_t make_dhcp(uint8_t *f, uint8_t type, uint32_t xid)
{
	size_t o = eth(f, bcast, 0x0800), bootp = 236 + 312, k;
	uint8_t *u = f + o + 20, *b = u + 8;

	memset(u, 0, 8 + bootp);
	put16(u, 68);
	put16(u + 2, 67);
	put16(u + 4, (uint16_t)(8 + bootp));
	b[0] = 1; /* BOOTREQUEST */
	b[1] = 1;
	b[2] = 6;
	put16(b + 4, (uint16_t)(xid >> 16));
	put16(b + 6, (uint16_t)xid);
	put16(b + 10, 0x8000); /* broadcast reply */
	memcpy(b + 28, guest_mac, 6);
	k = 236;
	b[k++] = 99, b[k++] = 130, b[k++] = 83, b[k++] = 99; /* magic cookie */
	b[k++] = 53, b[k++] = 1, b[k++] = type;
	if (type == 3) {
		b[k++] = 50, b[k++] = 4, b[k++] = 10, b[k++] = 0, b[k++] = 2, b[k++] = 15;
		b[k++] = 54, b[k++] = 4, b[k++] = 10, b[k++] = 0, b[k++] = 2, b[k++] = 2;
	}
	b[k++] = 255;
	ipv4(f + o, 17, 0, 0xffffffffu, 8 + bootp);
	return o + 20 + 8 + bootp;
}

static ssize_t send_frame(struct net_backend *b, uint8_t *f, size_t n)
{
	struct iovec iov[2] = {{f, n / 2}, {f + n / 2, n - n / 2}}; /* split: exercises gathering */

	return b->ops->send(b, iov, 2);
}

static bool recv_frame(struct net_backend *b, struct frame *fr)
{
	struct iovec iov = {fr->b, sizeof(fr->b)};
	ssize_t n = b->ops->recv(b, &iov, 1);

	if (n < 0)
		return false;
	fr->len = (size_t)n;
	return true;
}

/* The DHCP option `code` in a BOOTP reply at b (length n), or NULL. */
static const uint8_t *dhcp_opt(const uint8_t *b, size_t n, uint8_t code)
{
	size_t k = 240;

	while (k + 1 < n && b[k] != 255) {
		if (b[k] == 0) {
			k++;
			continue;
		}
		if (b[k] == code && k + 2 + b[k + 1] <= n)
			return b + k + 2;
		k += 2u + b[k + 1];
	}
	return NULL;
}

/*
 * Check a DHCP reply of `type` (2 OFFER, 5 ACK) for 10.0.2.15 with the user network's options;
 * a restricted stack announces no router and no DNS server (the guest can reach neither).
 */
static void check_dhcp_reply(const struct frame *fr, uint8_t type, uint32_t xid, bool restricted)
{
	const uint8_t *ip = fr->b + 14, *u = ip + 20, *b = u + 8, *o;
	size_t blen;

	CHECK(fr->len > 14 + 20 + 8 + 240);
	if (fr->len <= 14 + 20 + 8 + 240)
		return;
	blen = fr->len - (14 + 20 + 8);
	CHECK_EQ(be16(fr->b + 12), 0x0800);
	CHECK_EQ(memcmp(fr->b, bcast, 6) == 0 || memcmp(fr->b, guest_mac, 6) == 0, 1);
	CHECK_EQ(ip[9], 17);
	CHECK_EQ(be16(ip + 12) << 16 | be16(ip + 14), IP(10, 0, 2, 2));
	CHECK_EQ(be16(u), 67);
	CHECK_EQ(be16(u + 2), 68);
	CHECK_EQ(b[0], 2); /* BOOTREPLY */
	CHECK_EQ((uint32_t)be16(b + 4) << 16 | be16(b + 6), xid);
	CHECK_EQ((uint32_t)be16(b + 16) << 16 | be16(b + 18), IP(10, 0, 2, 15)); /* yiaddr */
	CHECK_EQ(memcmp(b + 28, guest_mac, 6), 0);
	o = dhcp_opt(b, blen, 53);
	CHECK(o && o[0] == type);
	o = dhcp_opt(b, blen, 1); /* subnet mask */
	CHECK(o && o[0] == 255 && o[1] == 255 && o[2] == 255 && o[3] == 0);
	o = dhcp_opt(b, blen, 3); /* router */
	if (restricted)
		CHECK(o == NULL);
	else
		CHECK(o && o[0] == 10 && o[1] == 0 && o[2] == 2 && o[3] == 2);
	o = dhcp_opt(b, blen, 6); /* DNS */
	if (restricted)
		CHECK(o == NULL);
	else
		CHECK(o && o[0] == 10 && o[1] == 0 && o[2] == 2 && o[3] == 3);
}

struct fixture {
	struct evloop loop;
	struct net_slirp *s;
	struct net_backend *b;
};

static bool fixture_init(struct fixture *fx, bool restricted)
{
	struct net_slirp_opts o = {.restricted = restricted};
	struct err e = {0};

	memset(fx, 0, sizeof(*fx));
	if (evloop_init(&fx->loop, &e) < 0)
		return false;
	CHECK_EQ(net_slirp_open(&o, &fx->loop, &fx->s, &e), 0);
	if (!fx->s) {
		printf("  %s\n", e.msg);
		evloop_destroy(&fx->loop);
		return false;
	}
	fx->b = net_slirp_backend(fx->s);
	return true;
}

static void fixture_fini(struct fixture *fx)
{
	net_slirp_close(fx->s);
	evloop_destroy(&fx->loop);
}

/* Dispatch the loop's ready watches, waiting up to ms for the first. */
static void pump(struct evloop *l, int ms)
{
	struct epoll_event evs[16];
	int i, n = epoll_wait(l->epfd, evs, 16, ms);

	for (i = 0; i < n; i++) {
		struct evloop_watch *w = evs[i].data.ptr;

		w->cb(w, evs[i].events);
	}
}

static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, 0) == 1;
}

/* Whether a file whose name contains `lib` is mapped into this process. */
static bool mapped(const char *lib)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, lib) != NULL;
	fclose(f);
	return found;
}

/* Runs first: nothing has opened a slirp backend yet, so none of its libraries is mapped. */
TEST(nothing_mapped_before_first_open)
{
	CHECK(!mapped("/libslirp.so"));
	CHECK(!mapped("/libglib-2.0.so"));
	CHECK(!mapped("/libpcre2-8.so"));
}

/*
 * Each backend holds its own reference to libslirp: it stays loaded while
 * one is open and is unloaded by the last close.  glib is marked NODELETE,
 * so it (and pcre2) stay once loaded.
 */
TEST(loaded_while_open_unloaded_after_last_close)
{
	struct fixture a, b;

	if (!fixture_init(&a, true))
		return;
	CHECK(mapped("/libslirp.so"));
	CHECK(mapped("/libglib-2.0.so"));
	if (!fixture_init(&b, true)) {
		fixture_fini(&a);
		return;
	}
	fixture_fini(&a);
	CHECK(mapped("/libslirp.so"));
	fixture_fini(&b);
	CHECK(!mapped("/libslirp.so"));
}

TEST(backend_shape)
{
	struct fixture fx;

	if (!fixture_init(&fx, true))
		return;
	CHECK_EQ(fx.b->hdr_len, 0);
	CHECK_EQ(fx.b->offloads, 0);
	CHECK_STR_CONTAINS(fx.b->kind, "slirp");
	CHECK(fx.b->rx_fd >= 0);
	CHECK(!readable(fx.b->rx_fd));
	CHECK_EQ(fx.b->ops->set_offloads(fx.b, 0), 0);
	{
		uint8_t x[16];
		struct iovec iov = {x, sizeof(x)};

		CHECK_EQ(fx.b->ops->recv(fx.b, &iov, 1), -EAGAIN);
	}
	fixture_fini(&fx);
	net_slirp_close(NULL);
}

TEST(arp_for_gateway_and_dns)
{
	struct fixture fx;
	struct frame f, r;
	uint32_t targets[2] = {IP(10, 0, 2, 2), IP(10, 0, 2, 3)};
	int i;

	if (!fixture_init(&fx, true))
		return;
	for (i = 0; i < 2; i++) {
		f.len = make_arp_request(f.b, IP(10, 0, 2, 15), targets[i]);
		CHECK_EQ(send_frame(fx.b, f.b, f.len), (ssize_t)f.len);
		/* Answered synchronously inside slirp_input, through send_packet. */
		CHECK(readable(fx.b->rx_fd));
		CHECK(recv_frame(fx.b, &r));
		CHECK(r.len >= 42);
		CHECK_EQ(memcmp(r.b, guest_mac, 6), 0);
		CHECK_EQ(be16(r.b + 12), 0x0806);
		CHECK_EQ(be16(r.b + 20), 2); /* reply */
		CHECK_EQ((uint32_t)be16(r.b + 28) << 16 | be16(r.b + 30), targets[i]);
		CHECK_EQ(memcmp(r.b + 22, r.b + 6, 6), 0); /* sender MAC = frame source */
		CHECK_EQ(memcmp(r.b + 32, guest_mac, 6), 0);
		CHECK_EQ((uint32_t)be16(r.b + 38) << 16 | be16(r.b + 40), IP(10, 0, 2, 15));
		CHECK(!readable(fx.b->rx_fd));
	}
	fixture_fini(&fx);
}

/* DHCP is answered inside slirp (no host socket), so the unrestricted stack is safe here. */
TEST(dhcp_discover_offer_request_ack)
{
	struct fixture fx;
	struct frame f, r;
	int restricted;

	for (restricted = 0; restricted < 2; restricted++) {
		if (!fixture_init(&fx, restricted))
			return;
		f.len = make_dhcp(f.b, 1, 0xdeadbeef);
		CHECK_EQ(send_frame(fx.b, f.b, f.len), (ssize_t)f.len);
		CHECK(recv_frame(fx.b, &r));
		check_dhcp_reply(&r, 2, 0xdeadbeef, restricted);
		f.len = make_dhcp(f.b, 3, 0xdeadbeef);
		CHECK_EQ(send_frame(fx.b, f.b, f.len), (ssize_t)f.len);
		CHECK(recv_frame(fx.b, &r));
		check_dhcp_reply(&r, 5, 0xdeadbeef, restricted);
		CHECK(!recv_frame(fx.b, &r));
		fixture_fini(&fx);
	}
}

TEST(ping_gateway)
{
	struct fixture fx;
	struct frame f, r;
	size_t o;
	uint8_t *ic;

	if (!fixture_init(&fx, true))
		return;
	/* Let slirp learn our MAC first (it answers to the ARP table). */
	f.len = make_arp_request(f.b, IP(10, 0, 2, 15), IP(10, 0, 2, 2));
	send_frame(fx.b, f.b, f.len);
	CHECK(recv_frame(fx.b, &r));
	memcpy(f.b, r.b + 6, 6); /* to the gateway's MAC */
	memcpy(f.b + 6, guest_mac, 6);
	put16(f.b + 12, 0x0800);
	o = 14;
	ic = f.b + o + 20;
	memset(ic, 0, 8 + 32);
	ic[0] = 8; /* echo request */
	put16(ic + 4, 0x4242);
	put16(ic + 6, 7);
	memset(ic + 8, 0x5a, 32);
	put16(ic + 2, csum_fold(csum_add(0, ic, 40)));
	ipv4(f.b + o, 1, IP(10, 0, 2, 15), IP(10, 0, 2, 2), 40);
	f.len = o + 20 + 40;
	CHECK_EQ(send_frame(fx.b, f.b, f.len), (ssize_t)f.len);
	CHECK(recv_frame(fx.b, &r));
	CHECK_EQ(be16(r.b + 12), 0x0800);
	CHECK_EQ(r.b[14 + 9], 1);
	CHECK_EQ(r.b[14 + 20], 0); /* echo reply */
	CHECK_EQ(be16(r.b + 14 + 20 + 4), 0x4242);
	CHECK_EQ(memcmp(r.b + 14 + 28, ic + 8, 32), 0);
	fixture_fini(&fx);
}

TEST(queue_is_bounded)
{
	struct fixture fx;
	struct frame f, r;
	unsigned int i, got = 0;

	if (!fixture_init(&fx, true))
		return;
	f.len = make_arp_request(f.b, IP(10, 0, 2, 15), IP(10, 0, 2, 2));
	for (i = 0; i < NET_SLIRP_RXQ_MAX + 10; i++)
		send_frame(fx.b, f.b, f.len);
	CHECK_EQ(net_slirp_rx_queued(fx.s), NET_SLIRP_RXQ_MAX);
	CHECK_EQ(net_slirp_rx_dropped(fx.s), 10);
	/* A short iovec truncates the frame and still consumes it. */
	{
		uint8_t small[20];
		struct iovec iov = {small, sizeof(small)};

		CHECK_EQ(fx.b->ops->recv(fx.b, &iov, 1), 20);
		got++;
	}
	while (readable(fx.b->rx_fd) && recv_frame(fx.b, &r))
		got++;
	CHECK_EQ(got, NET_SLIRP_RXQ_MAX);
	CHECK(!readable(fx.b->rx_fd));
	CHECK_EQ(net_slirp_rx_queued(fx.s), 0);
	/* Oversized input is refused, not truncated. */
	{
		static uint8_t big[NET_MAX_PACKET + 1];
		struct iovec iov = {big, sizeof(big)};

		CHECK_EQ(fx.b->ops->send(fx.b, &iov, 1), -EMSGSIZE);
	}
	fixture_fini(&fx);
}

/* ---- TCP to a host listener, in a private network namespace ---- */

struct tcp_ctx {
	uint8_t gw_mac[6];
	uint32_t seq, ack; /* guest's next seq, next expected from the host */
	uint16_t sport, dport;
};

static size_t make_tcp(uint8_t *f, struct tcp_ctx *c, uint8_t flags, const void *data, size_t n)
{
	uint8_t *ip = f + 14, *t = ip + 20, pseudo[12];
	uint32_t sum;

	memcpy(f, c->gw_mac, 6);
	memcpy(f + 6, guest_mac, 6);
	put16(f + 12, 0x0800);
	memset(t, 0, 20);
	put16(t, c->sport);
	put16(t + 2, c->dport);
	put16(t + 4, (uint16_t)(c->seq >> 16));
	put16(t + 6, (uint16_t)c->seq);
	put16(t + 8, (uint16_t)(c->ack >> 16));
	put16(t + 10, (uint16_t)c->ack);
	t[12] = 0x50;
	t[13] = flags;
	put16(t + 14, 65535);
	if (n)
		memcpy(t + 20, data, n);
	ipv4(ip, 6, IP(10, 0, 2, 15), IP(10, 0, 2, 2), 20 + n);
	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = 6;
	put16(pseudo + 10, (uint16_t)(20 + n));
	sum = csum_add(csum_add(0, pseudo, 12), t, 20 + n);
	put16(t + 16, csum_fold(sum));
	return 14 + 20 + 20 + n;
}

/* Pump the loop until a TCP segment arrives for the guest (ARP replies are skipped). */
static bool wait_tcp(struct fixture *fx, struct frame *r, int ms)
{
	int i;

	for (i = 0; i < ms / 10; i++) {
		while (recv_frame(fx->b, r))
			if (be16(r->b + 12) == 0x0800 && r->b[14 + 9] == 6)
				return true;
		pump(&fx->loop, 10);
	}
	return false;
}

static void do_tcp(void)
{
	struct fixture fx;
	struct frame f, r;
	struct tcp_ctx c = {.seq = 1000, .sport = 40000};
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	struct ifreq ifr = {0};
	int ls, cs = -1, s, i;
	char buf[64];

	/* Loopback is down in a new namespace. */
	s = socket(AF_INET, SOCK_DGRAM, 0);
	strcpy(ifr.ifr_name, "lo");
	ioctl(s, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP;
	CHECK_EQ(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
	close(s);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_EQ(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	CHECK_EQ(listen(ls, 1), 0);
	CHECK_EQ(getsockname(ls, (struct sockaddr *)&a, &al), 0);
	c.dport = ntohs(a.sin_port);

	if (!fixture_init(&fx, false))
		return;
	f.len = make_arp_request(f.b, IP(10, 0, 2, 15), IP(10, 0, 2, 2));
	send_frame(fx.b, f.b, f.len);
	CHECK(recv_frame(fx.b, &r));
	memcpy(c.gw_mac, r.b + 6, 6);

	/* SYN: slirp connects to 127.0.0.1:port, non-blocking; only the evloop completes it. */
	f.len = make_tcp(f.b, &c, 0x02, NULL, 0);
	CHECK_EQ(send_frame(fx.b, f.b, f.len), (ssize_t)f.len);
	c.seq++;
	CHECK(wait_tcp(&fx, &r, 3000));
	CHECK_EQ(r.b[14 + 20 + 13] & 0x12, 0x12); /* SYN|ACK */
	c.ack = ((uint32_t)be16(r.b + 14 + 24) << 16 | be16(r.b + 14 + 26)) + 1;
	cs = accept(ls, NULL, NULL);
	CHECK(cs >= 0);

	/* Guest -> host data. */
	f.len = make_tcp(f.b, &c, 0x18, "hello", 5);
	CHECK_EQ(send_frame(fx.b, f.b, f.len), (ssize_t)f.len);
	c.seq += 5;
	for (i = 0; i < 100; i++) {
		struct pollfd p = {.fd = cs, .events = POLLIN};

		if (poll(&p, 1, 0) == 1)
			break;
		pump(&fx.loop, 10);
	}
	CHECK_EQ(recv(cs, buf, sizeof(buf), MSG_DONTWAIT), 5);
	CHECK_EQ(memcmp(buf, "hello", 5), 0);

	/* Host -> guest data: slirp sees the socket readable through its private epoll. */
	CHECK_EQ(send(cs, "world!", 6, 0), 6);
	for (i = 0; i < 10; i++) {
		if (!wait_tcp(&fx, &r, 1000))
			break;
		if (r.len > 14 + 40)
			break; /* skip pure ACKs */
	}
	{
		size_t ihl = (size_t)(r.b[14] & 15) * 4,
		       thl = (size_t)(r.b[14 + ihl + 12] >> 4) * 4;
		size_t plen = be16(r.b + 16) - ihl - thl;

		CHECK_EQ(plen, 6);
		CHECK_EQ(memcmp(r.b + 14 + ihl + thl, "world!", 6), 0);
	}
	close(cs);
	close(ls);
	fixture_fini(&fx);
}

TEST(tcp_through_evloop)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0) {
			printf("  # skip: unshare(CLONE_NEWNET): %s\n", strerror(errno));
			fflush(stdout);
			_exit(0);
		}
		do_tcp();
		fflush(stdout);
		_exit(test_st.cur_failed ? 1 : 0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
	RUN(nothing_mapped_before_first_open);
	RUN(loaded_while_open_unloaded_after_last_close);
	RUN(backend_shape);
	RUN(arp_for_gateway_and_dns);
	RUN(dhcp_discover_offer_request_ack);
	RUN(ping_gateway);
	RUN(queue_is_bounded);
	RUN(tcp_through_evloop);
	return test_summary();
}
