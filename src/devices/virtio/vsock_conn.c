/* vsock_conn.c - virtio-vsock connections: host sockets, state machine, credit, timeouts.
 *
 * About 950 lines in one file on purpose: a connection's state (virtio 1.2 §5.10.6.6), its
 * credit (§5.10.6.3), its host socket and its timeouts change together on every packet; the
 * sections below are the seams, and each reads the others' fields under the same lock. */
#include "devices/virtio/vsock_priv.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"

#define CONN_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)
#define SHUT_BOTH   (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)

static void conn_event(struct evloop_watch *w, uint32_t events);

/* ---- the table: slots, hash by (local_port, peer_port), free list, rx FIFO ---- */

int vsock_conns_init(struct virtio_vsock *s, unsigned int max_conns, struct err *e)
{
	unsigned int i, nh = 1;

	while (nh < 2 * max_conns)
		nh <<= 1;
	s->conns = calloc(max_conns, sizeof(*s->conns));
	s->hash = malloc(nh * sizeof(*s->hash));
	s->rsts = calloc(VSOCK_RST_QUEUE, sizeof(*s->rsts));
	if (!s->conns || !s->hash || !s->rsts) {
		vsock_conns_fini(s);
		return err_set(e, ENOMEM, "vsock: out of memory for %u connections", max_conns);
	}
	s->max_conns = max_conns;
	s->hash_mask = nh - 1;
	for (i = 0; i < nh; i++)
		s->hash[i] = -1;
	s->free_head = -1;
	for (i = max_conns; i-- > 0;) {
		s->conns[i].idx = (int)i;
		s->conns[i].w.fd = -1;
		s->conns[i].hnext = s->free_head;
		s->free_head = (int)i;
	}
	s->rx_head = s->rx_tail = -1;
	s->next_local_port = VSOCK_LOCAL_PORT_LO;
	return 0;
}

void vsock_conns_fini(struct virtio_vsock *s)
{
	free(s->conns);
	free(s->hash);
	free(s->rsts);
	s->conns = NULL;
	s->hash = NULL;
	s->rsts = NULL;
}

/* A connection has a vsock identity (and sits in the hash) in these states. */
static bool conn_hashed(const struct vsock_conn *c)
{
	return c->state != VS_FREE && c->state != VS_HOST_CMD;
}

static unsigned int hkey(const struct virtio_vsock *s, uint32_t lp, uint32_t pp)
{
	uint32_t h = lp * 0x9e3779b1u ^ (pp + 0x7f4a7c15u) * 0x85ebca77u;

	return (h ^ h >> 15) & s->hash_mask;
}

static struct vsock_conn *conn_find(struct virtio_vsock *s, uint32_t lp, uint32_t pp)
{
	int i;

	for (i = s->hash[hkey(s, lp, pp)]; i >= 0; i = s->conns[i].hnext)
		if (s->conns[i].local_port == lp && s->conns[i].peer_port == pp)
			return &s->conns[i];
	return NULL;
}

static void hash_insert(struct virtio_vsock *s, struct vsock_conn *c)
{
	unsigned int k = hkey(s, c->local_port, c->peer_port);

	c->hnext = s->hash[k];
	s->hash[k] = c->idx;
}

static void hash_remove(struct virtio_vsock *s, struct vsock_conn *c)
{
	int *p = &s->hash[hkey(s, c->local_port, c->peer_port)];

	while (*p >= 0 && *p != c->idx)
		p = &s->conns[*p].hnext;
	if (*p == c->idx)
		*p = c->hnext;
	c->hnext = -1;
}

static void rx_append(struct virtio_vsock *s, struct vsock_conn *c)
{
	if (c->in_rx)
		return;
	c->in_rx = true;
	c->rx_next = -1;
	c->rx_prev = s->rx_tail;
	if (s->rx_tail >= 0)
		s->conns[s->rx_tail].rx_next = c->idx;
	else
		s->rx_head = c->idx;
	s->rx_tail = c->idx;
}

static void rx_remove(struct virtio_vsock *s, struct vsock_conn *c)
{
	if (!c->in_rx)
		return;
	if (c->rx_prev >= 0)
		s->conns[c->rx_prev].rx_next = c->rx_next;
	else
		s->rx_head = c->rx_next;
	if (c->rx_next >= 0)
		s->conns[c->rx_next].rx_prev = c->rx_prev;
	else
		s->rx_tail = c->rx_prev;
	c->in_rx = false;
}

static struct vsock_conn *conn_alloc(struct virtio_vsock *s, int fd)
{
	struct vsock_conn *c;
	int i = s->free_head;

	if (i < 0)
		return NULL;
	c = &s->conns[i];
	s->free_head = c->hnext;
	memset(c, 0, sizeof(*c));
	c->idx = i;
	c->hnext = c->rx_prev = c->rx_next = -1;
	c->w = (struct evloop_watch){fd, conn_event, s};
	s->nconns++;
	return c;
}

static void conn_close_fd(struct virtio_vsock *s, struct vsock_conn *c)
{
	if (c->w.fd < 0)
		return;
	evloop_del(s->env->loop, &c->w);
	close(c->w.fd);
	c->w.fd = -1;
}

/*
 * Back to the free list.  The slot's memory stays (the evloop may still hold
 * an event for its watch in the batch it is dispatching); conn_event ignores
 * events on free slots.
 */
static void conn_free(struct virtio_vsock *s, struct vsock_conn *c)
{
	if (c->state == VS_FREE)
		return;
	conn_close_fd(s, c);
	free(c->buf);
	c->buf = NULL;
	c->buf_len = 0;
	if (conn_hashed(c))
		hash_remove(s, c);
	rx_remove(s, c);
	c->state = VS_FREE;
	c->pending = 0;
	c->deadline = 0;
	c->hnext = s->free_head;
	s->free_head = c->idx;
	s->nconns--;
}

/* ---- credit (§5.10.6.3) ---- */

/* peer_free = peer_buf_alloc - (tx_cnt - peer_fwd_cnt); a guest claiming more than it can is 0. */
static uint32_t peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->rx_cnt - c->peer_fwd_cnt;

	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* Does the guest's view of our free buffer warrant an update (Linux's rule: under 64 KiB)? */
static bool guest_needs_credit(const struct virtio_vsock *s, const struct vsock_conn *c)
{
	uint32_t seen_used = c->tx_cnt - c->last_fwd_sent;
	uint32_t seen_free = seen_used > s->buf_alloc ? 0 : s->buf_alloc - seen_used;

	return c->fwd_cnt != c->last_fwd_sent && seen_free < VSOCK_CREDIT_THRESHOLD;
}

/* May bytes move host -> guest on this connection at all? */
static bool rw_wanted(const struct vsock_conn *c)
{
	return c->state == VS_ESTABLISHED && !(c->peer_shut & VSOCK_SHUTDOWN_RCV) &&
	       !(c->local_shut & VSOCK_SHUTDOWN_SEND);
}

static bool conn_producible(const struct vsock_conn *c)
{
	if (c->pending & (P_RST | P_RESPONSE | P_REQUEST | P_CREDIT_REQUEST | P_CREDIT_UPDATE))
		return true;
	return (c->pending & P_RW) && rw_wanted(c) && peer_credit(c) > 0;
}

/* Recompute what the connection owes the guest and its place in the rx FIFO. */
static void conn_sched(struct virtio_vsock *s, struct vsock_conn *c)
{
	if (c->state == VS_FREE)
		return;
	if ((c->pending & P_RW) && c->state == VS_ESTABLISHED && !rw_wanted(c))
		c->pending &= ~P_RW; /* nothing will be read any more */
	/* Out of credit with bytes waiting: ask once (§5.10.6.3 OP_CREDIT_REQUEST). */
	if ((c->pending & P_RW) && rw_wanted(c) && peer_credit(c) == 0 && !c->credit_requested) {
		c->pending |= P_CREDIT_REQUEST;
		c->credit_requested = true;
	}
	if (conn_producible(c))
		rx_append(s, c);
	else
		rx_remove(s, c);
}

/* ---- timeouts ---- */

static void timer_arm(struct virtio_vsock *s, uint64_t deadline)
{
	uint64_t now = vsock_now(s), ns = deadline > now ? deadline - now : 1;
	struct itimerspec its = {0};

	if (s->timer_at && s->timer_at <= deadline)
		return;
	s->timer_at = deadline;
	its.it_value.tv_sec = (time_t)(ns / 1000000000ull);
	its.it_value.tv_nsec = (long)(ns % 1000000000ull);
	timerfd_settime(s->timer_fd, 0, &its, NULL);
}

static void conn_deadline(struct virtio_vsock *s, struct vsock_conn *c)
{
	c->deadline = vsock_now(s) + (uint64_t)s->timeout_ms * 1000000ull;
	timer_arm(s, c->deadline);
}

/*
 * End the connection from our side: close the host socket now and owe the
 * guest an RST (§5.10.6.5 "The VIRTIO_VSOCK_OP_RST packet aborts the
 * connection process or forcibly disconnects a connected socket"); the slot
 * is freed once the RST is out.  A host client still typing CONNECT has
 * nothing on the guest side: it is just closed.
 */
static void conn_kill(struct virtio_vsock *s, struct vsock_conn *c)
{
	if (c->state == VS_HOST_CMD) {
		conn_free(s, c);
		return;
	}
	if (c->state == VS_FREE || c->state == VS_KILLED)
		return;
	conn_close_fd(s, c);
	free(c->buf);
	c->buf = NULL;
	c->buf_len = 0;
	c->state = VS_KILLED;
	c->pending = P_RST;
	c->deadline = 0;
	conn_sched(s, c);
}

void vsock_timeouts(struct virtio_vsock *s)
{
	uint64_t now = vsock_now(s), next = 0;
	unsigned int i;

	s->timer_at = 0;
	for (i = 0; i < s->max_conns; i++) {
		struct vsock_conn *c = &s->conns[i];

		if (c->state == VS_FREE || !c->deadline)
			continue;
		if (c->deadline <= now) {
			c->deadline = 0;
			log_debug("%s: connection %u -> %u timed out (state %d)", s->vdev.name,
			          c->local_port, c->peer_port, c->state);
			conn_kill(s, c);
		} else if (!next || c->deadline < next) {
			next = c->deadline;
		}
	}
	if (next)
		timer_arm(s, next);
}

void vsock_timer_event(struct evloop_watch *w, uint32_t events)
{
	struct virtio_vsock *s = w->opaque;
	uint64_t expirations;
	bool rx, tx;

	(void)events;
	if (read(s->timer_fd, &expirations, sizeof(expirations)) < 0) {
		/* EAGAIN: spurious (or a test's fake clock); the sweep below decides. */
	}
	pthread_mutex_lock(&s->vdev.lock);
	vsock_timeouts(s);
	vsock_process_locked(s, &rx, &tx);
	pthread_mutex_unlock(&s->vdev.lock);
	vsock_notify(s, rx, tx);
}

/* ---- RSTs for packets that match no connection ---- */

bool vsock_rst_full(const struct virtio_vsock *s)
{
	return s->rst_len >= VSOCK_RST_QUEUE;
}

bool vsock_rst_push(struct virtio_vsock *s, const struct vsock_hdr *h)
{
	struct vsock_rst *r;

	if (vsock_rst_full(s)) {
		s->dropped++;
		return false;
	}
	/* Mirror the offending packet's addressing so the guest finds the socket it came from. */
	r = &s->rsts[(s->rst_head + s->rst_len) % VSOCK_RST_QUEUE];
	r->src_cid = h->dst_cid;
	r->src_port = h->dst_port;
	r->dst_port = h->src_port;
	s->rst_len++;
	return true;
}

bool vsock_rx_pending(const struct virtio_vsock *s)
{
	return s->rst_len > 0 || s->rx_head >= 0;
}

/* ---- host sockets ---- */

/* iovecs for `len` bytes of one direction of a chain, from offset `off` of that direction. */
static int chain_iov(const struct virtq_chain *c, bool write, uint32_t off, uint32_t len,
                     struct iovec *iov)
{
	unsigned int i;
	int n = 0;

	for (i = 0; i < c->nseg && len > 0; i++) {
		const struct virtq_seg *sg = &c->seg[i];
		uint32_t k;

		if (sg->write != write)
			continue;
		if (off >= sg->len) {
			off -= sg->len;
			continue;
		}
		k = sg->len - off < len ? sg->len - off : len;
		iov[n].iov_base = (uint8_t *)sg->hva + off;
		iov[n].iov_len = k;
		n++;
		len -= k;
		off = 0;
	}
	return n;
}

static ssize_t send_iov(int fd, struct iovec *iov, int n)
{
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	ssize_t k;

	do
		k = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (k < 0 && errno == EINTR);
	if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return k < 0 ? -errno : k;
}

static void conn_after_write(struct virtio_vsock *s, struct vsock_conn *c);

/* Write buffered guest bytes to the host socket. */
static void conn_flush(struct virtio_vsock *s, struct vsock_conn *c)
{
	while (c->buf_len > 0) {
		struct iovec iov[2];
		uint32_t first = s->buf_alloc - c->buf_head;
		int n = 1;
		ssize_t k;

		if (first > c->buf_len)
			first = c->buf_len;
		iov[0] = (struct iovec){c->buf + c->buf_head, first};
		if (first < c->buf_len)
			iov[n++] = (struct iovec){c->buf, c->buf_len - first};
		k = send_iov(c->w.fd, iov, n);
		if (k < 0) {
			log_debug("%s: host socket of %u -> %u: %s", s->vdev.name, c->local_port,
			          c->peer_port, strerror((int)-k));
			conn_kill(s, c);
			return;
		}
		if (k == 0)
			return; /* full: EPOLLOUT brings us back */
		c->buf_head = (uint32_t)((c->buf_head + (uint64_t)k) % s->buf_alloc);
		c->buf_len -= (uint32_t)k;
		c->fwd_cnt += (uint32_t)k;
	}
	conn_after_write(s, c);
}

/* After guest bytes went out (or were buffered): half-close, clean disconnect, credit. */
static void conn_after_write(struct virtio_vsock *s, struct vsock_conn *c)
{
	if (c->buf_len == 0) {
		/* §5.10.6.5: SEND = the guest "will not send any more data": pass on the EOF. */
		if ((c->peer_shut & VSOCK_SHUTDOWN_SEND) && !c->host_wr_shut) {
			shutdown(c->w.fd, SHUT_WR);
			c->host_wr_shut = true;
		}
		/* Both: all flushed, answer with the RST of a clean disconnect (§5.10.6.5). */
		if (c->peer_shut == SHUT_BOTH) {
			conn_kill(s, c);
			return;
		}
	}
	if (guest_needs_credit(s, c))
		c->pending |= P_CREDIT_UPDATE;
	conn_sched(s, c);
}

/* OP_RW payload: straight to the host socket, the rest into the buffer (within our credit). */
static int conn_write(struct virtio_vsock *s, struct vsock_conn *c, const struct virtq_chain *ch,
                      uint32_t len)
{
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint32_t done = 0, rest, tail, first;

	c->tx_cnt += len;
	if (c->buf_len == 0) {
		ssize_t k = send_iov(c->w.fd, iov, chain_iov(ch, false, VSOCK_HDR_SIZE, len, iov));

		if (k < 0)
			return (int)k;
		done = (uint32_t)k;
		c->fwd_cnt += done;
	}
	rest = len - done;
	if (rest == 0)
		return 0;
	/* §5.10.6.3: "VIRTIO_VSOCK_OP_RW data packets MUST only be transmitted when the peer
	 * has sufficient free buffer space for the payload." */
	if (rest > s->buf_alloc - c->buf_len)
		return -ENOBUFS;
	if (!c->buf) {
		c->buf = malloc(s->buf_alloc);
		if (!c->buf)
			return -ENOMEM;
	}
	tail = (uint32_t)(((uint64_t)c->buf_head + c->buf_len) % s->buf_alloc);
	first = s->buf_alloc - tail < rest ? s->buf_alloc - tail : rest;
	virtq_copy_from_chain(ch, VSOCK_HDR_SIZE + done, c->buf + tail, first);
	virtq_copy_from_chain(ch, VSOCK_HDR_SIZE + done + first, c->buf, rest - first);
	c->buf_len += rest;
	return 0;
}

/* Guest-initiated (OP_REQUEST to host port P): connect to "<uds_path>_<P>". */
static void conn_peer_request(struct virtio_vsock *s, const struct vsock_hdr *h)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct vsock_conn *c;
	int fd;

	if (s->nconns >= s->max_conns) {
		log_guest(&s->vdev.rl, LOG_WARN, "%s: %u connections: request to port %u refused",
		          s->vdev.name, s->nconns, h->dst_port);
		vsock_rst_push(s, h);
		return;
	}
	/* Fits: init checked strlen(uds_path) + 11 < sizeof(sun_path). */
	snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", s->uds_path, h->dst_port);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		/* §5.10.6.5: RST "if a listening socket does not exist on the destination". */
		log_debug("%s: guest connect to %s: %s", s->vdev.name, a.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		vsock_rst_push(s, h);
		return;
	}
	c = conn_alloc(s, fd);
	c->state = VS_PEER_INIT;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->pending = P_RESPONSE;
	if (evloop_add(s->env->loop, &c->w, CONN_EVENTS) < 0) {
		close(fd);
		c->w.fd = -1;
		conn_free(s, c);
		vsock_rst_push(s, h);
		return;
	}
	hash_insert(s, c);
	s->conns_opened++;
	conn_sched(s, c);
}

/* A host client's first line: "CONNECT <port>" (Firecracker accepts any case), then '\n'. */
static bool parse_connect(const char *line, uint32_t *port)
{
	const char *p = line;
	unsigned long long v = 0;
	int digits = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "connect", 7) != 0 || (p[7] != ' ' && p[7] != '\t'))
		return false;
	p += 7;
	while (*p == ' ' || *p == '\t')
		p++;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long long)(*p - '0');
		if (v > UINT32_MAX || ++digits > 10)
			return false;
	}
	while (*p == ' ' || *p == '\t' || *p == '\r')
		p++;
	if (!digits || *p)
		return false;
	*port = (uint32_t)v;
	return true;
}

static bool local_port_used(const struct virtio_vsock *s, uint32_t port)
{
	unsigned int i;

	for (i = 0; i < s->max_conns; i++)
		if (conn_hashed(&s->conns[i]) && s->conns[i].local_port == port)
			return true;
	return false;
}

/* Host ports for host-initiated connections: round robin over [1 << 30, 1 << 31) (Firecracker's).
 */
static uint32_t alloc_local_port(struct virtio_vsock *s)
{
	for (;;) {
		uint32_t p = s->next_local_port++;

		if (s->next_local_port >= (1u << 31) || s->next_local_port < VSOCK_LOCAL_PORT_LO)
			s->next_local_port = VSOCK_LOCAL_PORT_LO;
		if (!local_port_used(s, p))
			return p;
	}
}

/* Read the CONNECT line one byte at a time, so nothing after '\n' is taken from the stream. */
static void conn_read_cmd(struct virtio_vsock *s, struct vsock_conn *c)
{
	uint32_t port;

	for (;;) {
		char ch;
		ssize_t k = read(c->w.fd, &ch, 1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (k <= 0) {
			conn_free(s, c); /* the client left (or failed) before asking */
			return;
		}
		if (ch == '\n')
			break;
		if (c->cmd_len >= VSOCK_CMD_MAX - 1) {
			if (ratelimit_allow(&s->host_rl))
				log_warn("%s: host client sent no CONNECT line: closed",
				         s->vdev.name);
			conn_free(s, c);
			return;
		}
		c->cmd[c->cmd_len++] = ch;
	}
	c->cmd[c->cmd_len] = '\0';
	if (!parse_connect(c->cmd, &port)) {
		if (ratelimit_allow(&s->host_rl))
			log_warn("%s: host client: \"%s\" is not \"CONNECT <port>\": closed",
			         s->vdev.name, c->cmd);
		conn_free(s, c);
		return;
	}
	c->state = VS_LOCAL_INIT;
	c->local_port = alloc_local_port(s);
	c->peer_port = port;
	c->pending = P_REQUEST;
	hash_insert(s, c);
	s->conns_opened++;
	conn_deadline(s, c); /* the guest answers in time or the client is closed */
	conn_sched(s, c);
}

void vsock_accept_all(struct virtio_vsock *s)
{
	/* While the driver is away, clients wait in the listen backlog (activation calls us). */
	while (virtio_live(&s->vdev)) {
		struct vsock_conn *c;
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK && ratelimit_allow(&s->host_rl))
				log_warn("%s: accept on %s: %s", s->vdev.name, s->uds_path,
				         strerror(errno));
			return;
		}
		c = conn_alloc(s, fd);
		if (!c) {
			if (ratelimit_allow(&s->host_rl))
				log_warn("%s: %u connections: host client refused", s->vdev.name,
				         s->max_conns);
			close(fd);
			continue;
		}
		c->state = VS_HOST_CMD;
		if (evloop_add(s->env->loop, &c->w, CONN_EVENTS) < 0) {
			close(fd);
			c->w.fd = -1;
			conn_free(s, c);
			continue;
		}
		conn_deadline(s, c); /* a client that never sends its line does not hold a slot */
	}
}

void vsock_listen_event(struct evloop_watch *w, uint32_t events)
{
	struct virtio_vsock *s = w->opaque;

	(void)events;
	pthread_mutex_lock(&s->vdev.lock);
	vsock_accept_all(s);
	pthread_mutex_unlock(&s->vdev.lock);
}

/* Host socket readiness (edge-triggered: each flag stays set until the socket says EAGAIN). */
static void conn_event(struct evloop_watch *w, uint32_t events)
{
	struct vsock_conn *c = (struct vsock_conn *)((char *)w - offsetof(struct vsock_conn, w));
	struct virtio_vsock *s = w->opaque;
	bool rx, tx;

	pthread_mutex_lock(&s->vdev.lock);
	if (c->state == VS_FREE || c->state == VS_KILLED || c->w.fd < 0) {
		pthread_mutex_unlock(&s->vdev.lock); /* stale: the connection ended meanwhile */
		return;
	}
	if (c->state == VS_HOST_CMD) {
		if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			conn_read_cmd(s, c);
	} else {
		if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			c->pending |= P_RW; /* data or EOF: the next rx buffer finds out */
		if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && c->buf_len)
			conn_flush(s, c);
		conn_sched(s, c);
	}
	vsock_process_locked(s, &rx, &tx);
	pthread_mutex_unlock(&s->vdev.lock);
	vsock_notify(s, rx, tx);
}

/* ---- packets from the guest ---- */

void vsock_conn_from_guest(struct virtio_vsock *s, const struct vsock_hdr *h,
                           const struct virtq_chain *ch)
{
	struct vsock_conn *c = conn_find(s, h->dst_port, h->src_port);
	const char *why = NULL;
	char ok[24];
	int n, r;

	if (!c) {
		if (h->op == VSOCK_OP_REQUEST)
			conn_peer_request(s, h);
		else if (h->op != VSOCK_OP_RST) /* never answer an RST with an RST */
			vsock_rst_push(s, h);
		return;
	}
	if (c->state == VS_KILLED) {
		/* Our RST is on its way; the guest's own RST settles it now. */
		if (h->op == VSOCK_OP_RST)
			conn_free(s, c);
		return;
	}
	/* §5.10.6.3: every packet of a flow carries the sender's buf_alloc and fwd_cnt. */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (peer_credit(c) > 0)
		c->credit_requested = false;

	switch (h->op) {
	case VSOCK_OP_RST:
		conn_free(s, c); /* the host client sees EOF (and, if it was waiting, no "OK") */
		return;
	case VSOCK_OP_RESPONSE:
		if (c->state != VS_LOCAL_INIT) {
			why = "response to no request";
			break;
		}
		c->state = VS_ESTABLISHED;
		c->deadline = 0;
		n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
		if (send(c->w.fd, ok, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
			log_debug("%s: host client of port %u left before OK", s->vdev.name,
			          c->local_port);
			conn_kill(s, c);
			return;
		}
		c->pending |= P_RW; /* bytes the client sent after CONNECT */
		break;
	case VSOCK_OP_RW:
		if (c->state != VS_ESTABLISHED || (c->peer_shut & VSOCK_SHUTDOWN_SEND)) {
			why = "data outside an open stream";
			break;
		}
		if (h->len == 0)
			break;
		r = conn_write(s, c, ch, h->len);
		if (r == -ENOBUFS) {
			why = "data beyond the advertised credit";
			break;
		}
		if (r < 0) {
			log_debug("%s: host socket of %u -> %u: %s", s->vdev.name, c->local_port,
			          c->peer_port, strerror(-r));
			conn_kill(s, c);
			return;
		}
		conn_after_write(s, c);
		return;
	case VSOCK_OP_SHUTDOWN:
		if (c->state != VS_ESTABLISHED) {
			why = "shutdown outside an open stream";
			break;
		}
		/* §5.10.6.5: "These hints are permanent once sent". */
		c->peer_shut |= (uint8_t)(h->flags & SHUT_BOTH);
		/* Both: flush what we hold within the timeout.  SEND after the host's EOF:
		 * nothing can flow either way; the guest's final SHUTDOWN or ours ends it. */
		if ((c->peer_shut == SHUT_BOTH && c->buf_len) ||
		    ((c->peer_shut & VSOCK_SHUTDOWN_SEND) && (c->local_shut & VSOCK_SHUTDOWN_SEND)))
			conn_deadline(s, c);
		conn_after_write(s, c);
		return;
	case VSOCK_OP_CREDIT_UPDATE:
		break; /* the credit above is all it says */
	case VSOCK_OP_CREDIT_REQUEST:
		c->pending |= P_CREDIT_UPDATE;
		break;
	case VSOCK_OP_REQUEST:
		why = "request for a connection that exists";
		break;
	default:
		why = "invalid packet";
		break;
	}
	if (why) {
		log_guest(&s->vdev.rl, LOG_WARN, "%s: op %u on %u -> %u: %s: reset", s->vdev.name,
		          h->op, h->src_port, h->dst_port, why);
		conn_kill(s, c);
		return;
	}
	conn_sched(s, c);
}

/* ---- packets to the guest ---- */

static int emit(struct virtio_vsock *s, struct vsock_conn *c, const struct virtq_chain *ch,
                struct vsock_hdr *h)
{
	uint8_t raw[VSOCK_HDR_SIZE];

	h->src_cid = VSOCK_HOST_CID;
	h->dst_cid = s->guest_cid;
	h->src_port = c->local_port;
	h->dst_port = c->peer_port;
	h->type = VSOCK_TYPE_STREAM;
	/* §5.10.6.3: our buffer and what we forwarded, in every packet. */
	h->buf_alloc = s->buf_alloc;
	h->fwd_cnt = c->fwd_cnt;
	c->last_fwd_sent = c->fwd_cnt;
	c->pending &= ~P_CREDIT_UPDATE;
	vsock_hdr_encode(h, raw);
	virtq_copy_to_chain(ch, 0, raw, VSOCK_HDR_SIZE);
	return VSOCK_HDR_SIZE + (int)h->len;
}

/* Has the host closed both directions (not only its write side)? */
static bool host_hung_up(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/* The connection's next packet into rx chain `ch` (see vsock_next_packet). */
static int conn_produce(struct virtio_vsock *s, struct vsock_conn *c, const struct virtq_chain *ch)
{
	struct vsock_hdr h = {0};
	uint32_t room = ch->in_len - VSOCK_HDR_SIZE;

	if (c->pending & P_RST) {
		h.op = VSOCK_OP_RST;
		emit(s, c, ch, &h);
		s->rsts_sent++;
		conn_free(s, c);
		return VSOCK_HDR_SIZE;
	}
	if (c->pending & P_RESPONSE) {
		c->pending &= ~P_RESPONSE;
		c->state = VS_ESTABLISHED;
		h.op = VSOCK_OP_RESPONSE;
		return emit(s, c, ch, &h);
	}
	if (c->pending & P_REQUEST) {
		c->pending &= ~P_REQUEST;
		h.op = VSOCK_OP_REQUEST;
		return emit(s, c, ch, &h);
	}
	if (c->pending & P_CREDIT_REQUEST) {
		c->pending &= ~P_CREDIT_REQUEST;
		h.op = VSOCK_OP_CREDIT_REQUEST;
		return emit(s, c, ch, &h);
	}
	while ((c->pending & P_RW) && rw_wanted(c) && peer_credit(c) > 0) {
		struct iovec iov[VIRTQ_MAX_SEGS];
		uint32_t max = room;
		ssize_t k;

		if (room == 0)
			return -1;
		/* §5.10.6.3: never more than the guest's free space. */
		if (max > peer_credit(c))
			max = peer_credit(c);
		if (max > VSOCK_MAX_PKT)
			max = VSOCK_MAX_PKT;
		k = readv(c->w.fd, iov, chain_iov(ch, true, VSOCK_HDR_SIZE, max, iov));
		if (k > 0) {
			/* P_RW stays: edge-triggered, read until EAGAIN. */
			h.op = VSOCK_OP_RW;
			h.len = (uint32_t)k;
			c->rx_cnt += (uint32_t)k;
			return emit(s, c, ch, &h);
		}
		if (k == 0) {
			/* Host EOF: it sends no more; if it also hung up, it receives no more. */
			c->pending &= ~P_RW;
			c->local_shut |= VSOCK_SHUTDOWN_SEND;
			if (host_hung_up(c->w.fd))
				c->local_shut |= VSOCK_SHUTDOWN_RCV;
			/* Nothing more either way: the guest's RST ends it, or ours after the
			 * timeout. */
			if (c->local_shut == SHUT_BOTH || (c->peer_shut & VSOCK_SHUTDOWN_SEND))
				conn_deadline(s, c);
			h.op = VSOCK_OP_SHUTDOWN;
			h.flags = c->local_shut;
			return emit(s, c, ch, &h);
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->pending &= ~P_RW;
			break;
		}
		log_debug("%s: host socket of %u -> %u: %s", s->vdev.name, c->local_port,
		          c->peer_port, strerror(errno));
		conn_kill(s, c);
		return conn_produce(s, c, ch); /* the RST, now */
	}
	if (c->pending & P_CREDIT_UPDATE) {
		h.op = VSOCK_OP_CREDIT_UPDATE;
		return emit(s, c, ch, &h);
	}
	return 0;
}

int vsock_next_packet(struct virtio_vsock *s, const struct virtq_chain *ch)
{
	if (s->rst_len > 0) {
		const struct vsock_rst *r = &s->rsts[s->rst_head];
		struct vsock_hdr h = {
		    .src_cid = r->src_cid,
		    .dst_cid = s->guest_cid,
		    .src_port = r->src_port,
		    .dst_port = r->dst_port,
		    .type = VSOCK_TYPE_STREAM,
		    .op = VSOCK_OP_RST,
		};
		uint8_t raw[VSOCK_HDR_SIZE];

		s->rst_head = (s->rst_head + 1) % VSOCK_RST_QUEUE;
		s->rst_len--;
		vsock_hdr_encode(&h, raw);
		virtq_copy_to_chain(ch, 0, raw, VSOCK_HDR_SIZE);
		s->rsts_sent++;
		return VSOCK_HDR_SIZE;
	}
	while (s->rx_head >= 0) {
		struct vsock_conn *c = &s->conns[s->rx_head];
		int n = conn_produce(s, c, ch);

		if (c->state != VS_FREE) {
			/* To the back of the line if it owes more: connections take turns. */
			rx_remove(s, c);
			if (n != 0)
				conn_sched(s, c);
		}
		if (n != 0)
			return n;
	}
	return 0;
}

void vsock_conns_reset(struct virtio_vsock *s)
{
	unsigned int i;

	for (i = 0; i < s->max_conns; i++)
		conn_free(s, &s->conns[i]);
	s->rst_head = s->rst_len = 0;
	/* No connection is left to collide with: host ports start over (deterministic after reset).
	 */
	s->next_local_port = VSOCK_LOCAL_PORT_LO;
}
