/* vsock.c - virtio-vsock device: config, rx/tx queues, packet checks, the host listener. */
#include "devices/virtio/vsock_priv.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"

#define VSOCK_FEATURES ((1ull << VIRTIO_F_EVENT_IDX) | (1ull << VIRTIO_F_INDIRECT_DESC))

/* ---- header (§5.10.6: every field little-endian, 44 bytes packed) ---- */

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t out[VSOCK_HDR_SIZE])
{
	put64(out + 0, h->src_cid);
	put64(out + 8, h->dst_cid);
	put32(out + 16, h->src_port);
	put32(out + 20, h->dst_port);
	put32(out + 24, h->len);
	put16(out + 28, h->type);
	put16(out + 30, h->op);
	put32(out + 32, h->flags);
	put32(out + 36, h->buf_alloc);
	put32(out + 40, h->fwd_cnt);
}

void vsock_hdr_decode(const uint8_t in[VSOCK_HDR_SIZE], struct vsock_hdr *h)
{
	h->src_cid = get64(in + 0);
	h->dst_cid = get64(in + 8);
	h->src_port = get32(in + 16);
	h->dst_port = get32(in + 20);
	h->len = get32(in + 24);
	h->type = get16(in + 28);
	h->op = get16(in + 30);
	h->flags = get32(in + 32);
	h->buf_alloc = get32(in + 36);
	h->fwd_cnt = get32(in + 40);
}

uint64_t vsock_now(const struct virtio_vsock *s)
{
	return rl_clock_now(&s->clock);
}

/* ---- tx: packets from the guest ---- */

/*
 * One tx chain.  The header is copied out of guest memory once and only the
 * copy is used.  Rules, in order (vsock.h): too short for a header -> dropped
 * (nothing to address an answer to); wrong CIDs -> RST (the packet is not for
 * one of our connections, so none is touched); len beyond the chain or 64
 * KiB, or a type other than stream -> RST and the connection, if any, ends;
 * everything else goes to the connection layer.
 */
static void vsock_tx_packet(struct virtio_vsock *s, const struct virtq_chain *c)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	struct vsock_hdr h;

	s->tx_pkts++;
	if (c->out_len < VSOCK_HDR_SIZE ||
	    virtq_copy_from_chain(c, 0, raw, VSOCK_HDR_SIZE) != VSOCK_HDR_SIZE) {
		log_guest(&s->vdev.rl, LOG_WARN, "%s: tx packet of %u bytes, shorter than a header",
		          s->vdev.name, c->out_len);
		s->dropped++;
		return;
	}
	vsock_hdr_decode(raw, &h);
	/* §5.10.6.4 driver: "The guest_cid configuration field MUST be used as the source CID";
	 * ember is the only peer this device reaches: the host, CID 2. */
	if (h.src_cid != s->guest_cid || h.dst_cid != VSOCK_HOST_CID) {
		log_guest(&s->vdev.rl, LOG_WARN, "%s: tx packet from CID %llu to CID %llu: %s",
		          s->vdev.name, (unsigned long long)h.src_cid,
		          (unsigned long long)h.dst_cid,
		          h.op == VSOCK_OP_RST ? "dropped" : "reset");
		if (h.op != VSOCK_OP_RST)
			vsock_rst_push(s, &h);
		return;
	}
	if (h.len > VSOCK_MAX_PKT || h.len > c->out_len - VSOCK_HDR_SIZE) {
		log_guest(&s->vdev.rl, LOG_WARN,
		          "%s: tx packet len %u, chain holds %u payload bytes: reset", s->vdev.name,
		          h.len, c->out_len - VSOCK_HDR_SIZE);
		h.op = h.op == VSOCK_OP_RST ? VSOCK_OP_RST : 0; /* 0: invalid, answered with RST */
	} else if (h.type != VSOCK_TYPE_STREAM) {
		/* §5.10.6.4: "A VIRTIO_VSOCK_OP_RST reply MUST be sent if a packet is received
		 * with an unknown type value." */
		log_guest(&s->vdev.rl, LOG_WARN, "%s: tx packet of type %u: reset", s->vdev.name,
		          h.type);
		h.op = h.op == VSOCK_OP_RST ? VSOCK_OP_RST : 0;
	}
	vsock_conn_from_guest(s, &h, c);
}

/* Consume tx chains.  Stops early while the RST ring is full (§5.10.6.1, see below). */
static bool vsock_tx_locked(struct virtio_vsock *s, bool *stalled)
{
	struct virtq *q = &s->vdev.vq[VIRTIO_VSOCK_TXQ];
	bool pushed = false;

	*stalled = false;
	while (virtio_live(&s->vdev)) {
		int k;

		/*
		 * §5.10.6.1: the device processes tx "even when the rx virtqueue is full so
		 * long as there are additional resources available to hold packets outside
		 * the rx virtqueue".  A tx packet owes at most one RST from the ring (a
		 * connection's own packets are flags in its slot), so stop while it is
		 * full; rx buffers from the guest drain it and restart tx.
		 */
		if (vsock_rst_full(s)) {
			*stalled = true;
			break;
		}
		k = virtq_pop(q, &s->tx_chain);
		if (k < 0) {
			virtio_needs_reset(&s->vdev, q->err ? q->err : "bad tx chain");
			break;
		}
		if (k == 0)
			break;
		vsock_tx_packet(s, &s->tx_chain);
		/* §2.7.8.2: len is what the device wrote, nothing for tx. */
		virtq_push(q, s->tx_chain.head, 0);
		pushed = true;
	}
	return pushed;
}

/* ---- rx: packets to the guest ---- */

static bool vsock_rx_locked(struct virtio_vsock *s)
{
	struct virtq *q = &s->vdev.vq[VIRTIO_VSOCK_RXQ];
	bool pushed = false;

	while (virtio_live(&s->vdev) && vsock_rx_pending(s)) {
		int n;

		if (!s->rx_held) {
			int k = virtq_pop(q, &s->rx_chain);

			if (k < 0) {
				virtio_needs_reset(&s->vdev, q->err ? q->err : "bad rx chain");
				break;
			}
			if (k == 0)
				break; /* wait for the guest's next rx buffers (its kick) */
			s->rx_held = true;
			if (s->rx_chain.in_len < VSOCK_HDR_SIZE) {
				log_guest(&s->vdev.rl, LOG_WARN,
				          "%s: rx buffer of %u writable bytes, shorter than a "
				          "header: returned empty",
				          s->vdev.name, s->rx_chain.in_len);
				virtq_push(q, s->rx_chain.head, 0);
				s->rx_held = false;
				pushed = true;
				continue;
			}
		}
		n = vsock_next_packet(s, &s->rx_chain);
		if (n == 0)
			break; /* nothing after all: keep the buffer for the next packet */
		virtq_push(q, s->rx_chain.head, n < 0 ? 0 : (uint32_t)n);
		s->rx_held = false;
		pushed = true;
		if (n > 0)
			s->rx_pkts++;
	}
	return pushed;
}

void vsock_process_locked(struct virtio_vsock *s, bool *rx, bool *tx)
{
	bool stalled;

	*rx = *tx = false;
	for (;;) {
		bool rxp, txp = vsock_tx_locked(s, &stalled);

		rxp = vsock_rx_locked(s);
		*rx |= rxp;
		*tx |= txp;
		if (!stalled || !rxp)
			break; /* tx stalled on a full RST ring: go again once rx drained some */
	}
}

void vsock_notify(struct virtio_vsock *s, bool rx, bool tx)
{
	/* These also deliver a NEEDS_RESET configuration interrupt owed (virtio.h). */
	if (rx)
		virtio_notify_queue(&s->vdev, VIRTIO_VSOCK_RXQ);
	if (tx)
		virtio_notify_queue(&s->vdev, VIRTIO_VSOCK_TXQ);
	if (!rx && !tx)
		virtio_flush_irqs(&s->vdev);
}

/* ---- transport reset (after a restore) ---- */

bool virtio_vsock_transport_reset(struct virtio_vsock *s)
{
	struct virtq *q = &s->vdev.vq[VIRTIO_VSOCK_EVQ];
	/* struct virtio_vsock_event (§5.10.6.6): le32 id, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET = 0 */
	static const uint8_t event[4] = {0, 0, 0, 0};
	bool pushed = false, sent = false;
	int k;

	pthread_mutex_lock(&s->vdev.lock);
	/* The host side starts afresh: no connection the guest had is known here any more. */
	vsock_conns_reset(s);
	if (virtio_live(&s->vdev)) {
		/* tx_chain is scratch under the lock: no tx packet is being parsed now. */
		k = virtq_pop(q, &s->tx_chain);
		if (k < 0) {
			virtio_needs_reset(&s->vdev, q->err ? q->err : "bad event chain");
		} else if (k == 0) {
			log_guest(&s->vdev.rl, LOG_WARN,
			          "%s: no event buffer for the transport reset: the guest's "
			          "connections are not told they ended",
			          s->vdev.name);
		} else if (s->tx_chain.in_len < sizeof(event)) {
			log_guest(&s->vdev.rl, LOG_WARN,
			          "%s: event buffer of %u writable bytes, shorter than an event: "
			          "returned empty",
			          s->vdev.name, s->tx_chain.in_len);
			virtq_push(q, s->tx_chain.head, 0);
			pushed = true;
		} else {
			virtq_copy_to_chain(&s->tx_chain, 0, event, sizeof(event));
			virtq_push(q, s->tx_chain.head, sizeof(event));
			pushed = sent = true;
		}
	}
	pthread_mutex_unlock(&s->vdev.lock);
	if (pushed)
		virtio_notify_queue(&s->vdev, VIRTIO_VSOCK_EVQ);
	else
		virtio_flush_irqs(&s->vdev);
	return sent;
}

/* ---- virtio device ops ---- */

static void vsock_queue_notify(struct virtio_dev *v, unsigned int q)
{
	struct virtio_vsock *s = v->opaque;
	bool rx, tx;

	if (q == VIRTIO_VSOCK_EVQ)
		return; /* event buffers wait for a transport reset (virtio_vsock_transport_reset)
		         */
	pthread_mutex_lock(&v->lock);
	vsock_process_locked(s, &rx, &tx);
	pthread_mutex_unlock(&v->lock);
	vsock_notify(s, rx, tx);
}

/* §5.10.4: le64 guest_cid; the core has bounded off/len to config_size (8). */
static void vsock_config_read(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_vsock *s = v->opaque;

	memcpy(buf, s->config + off, len);
}

static void vsock_config_write(struct virtio_dev *v, uint32_t off, const void *buf, uint32_t len)
{
	(void)buf;
	log_guest(&v->rl, LOG_WARN, "%s: write of %u bytes at config offset %u: read-only", v->name,
	          len, off);
}

/* Lock held (vCPU thread): host clients that queued up while the driver was away get in now. */
static int vsock_activate(struct virtio_dev *v)
{
	vsock_accept_all(v->opaque);
	return 0;
}

/* Lock held: every connection ends (the guest's sockets are gone with its driver). */
static void vsock_reset(struct virtio_dev *v)
{
	struct virtio_vsock *s = v->opaque;

	vsock_conns_reset(s);
	s->rx_held = false;
}

static const struct virtio_dev_ops vsock_ops = {
    .config_read = vsock_config_read,
    .config_write = vsock_config_write,
    .activate = vsock_activate,
    .reset = vsock_reset,
    .queue_notify = vsock_queue_notify,
};

/* ---- host listener ---- */

static int uds_addr(const char *path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path))
		return -ENAMETOOLONG;
	memcpy(a->sun_path, path, strlen(path));
	return 0;
}

/*
 * Is there a socket file at path, and does a server answer on it?  0 when the path is free or
 * holds a socket nobody answers on (*stale then says which), -errno otherwise.
 */
static int probe_existing(const char *path, bool *stale, struct err *e)
{
	struct sockaddr_un a;
	struct stat st;
	int fd, r;

	*stale = false;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : err_sys(e, errno, "vsock: %s", path);
	if (!S_ISSOCK(st.st_mode))
		return err_set(e, EEXIST, "vsock: %s exists and is not a socket", path);
	uds_addr(path, &a);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(e, errno, "vsock: socket");
	r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	r = r == 0 ? 0 : errno;
	close(fd);
	if (r == 0 || r == EAGAIN || r == EINPROGRESS)
		return err_set(e, EADDRINUSE, "vsock: %s is in use: a server answers on it", path);
	if (r != ECONNREFUSED)
		return err_sys(e, r, "vsock: probing %s", path);
	*stale = true;
	return 0;
}

static int check_existing(const char *path, struct err *e)
{
	bool stale;
	int r = probe_existing(path, &stale, e);

	/* A socket file nobody listens on: left by a process that died.  Replace it. */
	if (r == 0 && stale && unlink(path) < 0 && errno != ENOENT)
		return err_sys(e, errno, "vsock: removing stale %s", path);
	return r;
}

int virtio_vsock_check_path(const char *path, struct err *e)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *slash = strrchr(path, '/');
	struct stat st;
	bool stale;

	if (strlen(path) >= sizeof(dir))
		return err_set(e, ENAMETOOLONG, "vsock: the socket path %s is too long", path);
	if (slash && slash != path) {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		if (stat(dir, &st) < 0)
			return err_sys(e, errno, "vsock: the folder %s of the socket path", dir);
		if (!S_ISDIR(st.st_mode))
			return err_set(e, ENOTDIR, "vsock: %s is not a folder", dir);
	}
	return probe_existing(path, &stale, e);
}

static int listen_uds(struct virtio_vsock *s, struct err *e)
{
	struct sockaddr_un a;
	struct stat st;
	int r;

	r = check_existing(s->uds_path, e);
	if (r < 0)
		return r;
	uds_addr(s->uds_path, &a);
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0)
		return err_sys(e, errno, "vsock: socket");
	if (bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		r = err_sys(e, errno, "vsock: bind %s", s->uds_path);
		goto fail;
	}
	if (stat(s->uds_path, &st) == 0) {
		s->sock_dev = st.st_dev;
		s->sock_ino = st.st_ino;
	}
	if (listen(s->listen_fd, 128) < 0) {
		r = err_sys(e, errno, "vsock: listen %s", s->uds_path);
		unlink(s->uds_path);
		goto fail;
	}
	return 0;
fail:
	close(s->listen_fd);
	s->listen_fd = -1;
	return r;
}

/* Remove uds_path only if it is still the socket we bound (not someone's replacement). */
static void unlink_ours(struct virtio_vsock *s)
{
	struct stat st;

	if (lstat(s->uds_path, &st) == 0 && st.st_dev == s->sock_dev && st.st_ino == s->sock_ino)
		unlink(s->uds_path);
}

/* ---- lifecycle ---- */

int virtio_vsock_init(struct virtio_vsock *s, const struct virtio_vsock_opts *o,
                      const struct virtio_env *env, struct err *e)
{
	struct sockaddr_un a;
	int r;

	memset(s, 0, sizeof(*s));
	s->listen_fd = s->timer_fd = -1;
	if (!o || !env || !env->loop || !env->gm)
		return err_set(e, EINVAL, "vsock: missing options or environment");
	/* §5.10.4: CIDs 0, 1, 2 (host) and 0xffffffff are reserved, the upper 32 bits zero. */
	if (o->guest_cid < 3 || o->guest_cid >= 0xffffffffull)
		return err_set(e, EINVAL, "vsock: guest_cid %llu: must be 3 .. 4294967294",
		               (unsigned long long)o->guest_cid);
	if (!o->uds_path || !o->uds_path[0])
		return err_set(e, EINVAL, "vsock: uds_path is empty");
	/* "<uds_path>_<port>" must fit too, for every port (10 digits). */
	if (strlen(o->uds_path) + 11 >= sizeof(a.sun_path))
		return err_set(e, ENAMETOOLONG,
		               "vsock: uds_path \"%s\" is too long (at most %zu bytes)",
		               o->uds_path, sizeof(a.sun_path) - 12);
	s->env = env;
	s->guest_cid = o->guest_cid;
	put64(s->config, o->guest_cid);
	s->buf_alloc = o->buf_alloc ? o->buf_alloc : VSOCK_DEF_BUF_ALLOC;
	s->timeout_ms = o->conn_timeout_ms ? o->conn_timeout_ms : VSOCK_DEF_TIMEOUT;
	if (o->clock)
		s->clock = *o->clock;
	s->uds_path = strdup(o->uds_path);
	if (!s->uds_path)
		return err_set(e, ENOMEM, "vsock: out of memory");

	r = virtio_dev_init(&s->vdev, VIRTIO_ID_VSOCK, "virtio-vsock", VSOCK_FEATURES, 3,
	                    VIRTIO_VSOCK_QUEUE_SIZE, sizeof(s->config), &vsock_ops, s, env);
	if (r < 0) {
		err_sys(e, -r, "vsock: device setup");
		goto fail_path;
	}
	r = vsock_conns_init(s, o->max_conns ? o->max_conns : VSOCK_DEF_MAX_CONNS, e);
	if (r < 0)
		goto fail_dev;
	s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->timer_fd < 0) {
		r = err_sys(e, errno, "vsock: timerfd_create");
		goto fail_conns;
	}
	r = listen_uds(s, e);
	if (r < 0)
		goto fail_timer;
	s->listen_watch = (struct evloop_watch){s->listen_fd, vsock_listen_event, s};
	r = evloop_add(env->loop, &s->listen_watch, EPOLLIN | EPOLLET);
	if (r < 0) {
		err_sys(e, -r, "vsock: watching %s", s->uds_path);
		goto fail_listen;
	}
	s->timer_watch = (struct evloop_watch){s->timer_fd, vsock_timer_event, s};
	r = evloop_add(env->loop, &s->timer_watch, EPOLLIN);
	if (r < 0) {
		err_sys(e, -r, "vsock: watching the timeout timer");
		goto fail_watch;
	}
	return 0;

fail_watch:
	evloop_del(env->loop, &s->listen_watch);
fail_listen:
	close(s->listen_fd);
	unlink_ours(s);
fail_timer:
	close(s->timer_fd);
fail_conns:
	vsock_conns_fini(s);
fail_dev:
	virtio_dev_destroy(&s->vdev);
fail_path:
	free(s->uds_path);
	s->uds_path = NULL;
	return r;
}

void virtio_vsock_destroy(struct virtio_vsock *s)
{
	if (!s->uds_path)
		return;
	pthread_mutex_lock(&s->vdev.lock);
	vsock_conns_reset(s);
	pthread_mutex_unlock(&s->vdev.lock);
	evloop_del(s->env->loop, &s->timer_watch);
	evloop_del(s->env->loop, &s->listen_watch);
	close(s->timer_fd);
	close(s->listen_fd);
	unlink_ours(s);
	vsock_conns_fini(s);
	virtio_dev_destroy(&s->vdev);
	free(s->uds_path);
	s->uds_path = NULL;
	s->listen_fd = s->timer_fd = -1;
}

unsigned int virtio_vsock_nconns(struct virtio_vsock *s)
{
	unsigned int n;

	pthread_mutex_lock(&s->vdev.lock);
	n = s->nconns;
	pthread_mutex_unlock(&s->vdev.lock);
	return n;
}
