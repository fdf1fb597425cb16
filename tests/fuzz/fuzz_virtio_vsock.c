/* fuzz_virtio_vsock.c - libFuzzer target: guest packets and host socket events vs virtio-vsock. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/vsock.h"
#include "util/evloop.h"
#include "util/gmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_SIZE   (4u << 20)
#define RING_BASE  0x10000u
#define RXBUF_BASE 0x100000u /* 64 rx buffers of 0x1000 (44 + 4052 bytes) */
#define TXBUF_BASE 0x200000u /* tx packets, 64 slots of 0x1000 */
#define CID        3
#define MAX_HOST   32

struct fq {
	uint64_t desc, avail, used;
	uint16_t avail_idx, used_seen, next_desc;
};

/* One process-wide harness, set up once (libFuzzer calls us many times). */
struct harness {
	uint8_t *ram;
	struct gmem gm;
	struct evloop loop;
	struct virtio_env env;
	struct virtio_vsock s;
	struct fq q[3];
	uint64_t now;
	struct rl_clock clk;
	char dir[64], path[96], lpath[2][112];
	int listener[2];
	int host[MAX_HOST]; /* host-side sockets the harness owns (clients, accepted) */
	unsigned int nhost, tx_slot, rx_next;
	int base_fds; /* sockets open after setup: the listeners and ember's */
};

static void nop_notify(void *t, unsigned int q)
{
	(void)t;
	(void)q;
}

static void nop_config(void *t)
{
	(void)t;
}

static const struct virtio_transport_ops tops = {nop_notify, nop_config};

/* Open sockets: what a leaked connection would leave (libFuzzer's own pipes do not count). */
static int count_sockets(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	struct stat st;
	int n = 0;

	if (!d)
		abort();
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, 0) == 0 &&
		    S_ISSOCK(st.st_mode))
			n++;
	closedir(d);
	return n;
}

static void add_desc(struct harness *h, unsigned int qi, uint64_t gpa, uint32_t len, uint16_t flags)
{
	struct fq *f = &h->q[qi];
	uint8_t *d = h->ram + f->desc + 16ull * f->next_desc;
	uint16_t next = (uint16_t)((f->next_desc + 1) % 256);

	memcpy(d, &gpa, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	f->next_desc = next;
}

static void publish(struct harness *h, unsigned int qi, uint16_t head)
{
	struct fq *f = &h->q[qi];
	uint16_t *ring = (uint16_t *)(h->ram + f->avail + 4);

	ring[f->avail_idx % 256] = head;
	f->avail_idx++;
	__atomic_store_n((uint16_t *)(h->ram + f->avail + 2), f->avail_idx, __ATOMIC_RELEASE);
}

static void kick(struct harness *h, unsigned int q)
{
	h->s.vdev.ops->queue_notify(&h->s.vdev, q);
}

static void bring_up(struct harness *h)
{
	struct virtio_dev *d = &h->s.vdev;
	unsigned int i;

	d->tops = &tops;
	pthread_mutex_lock(&d->lock);
	virtio_set_status(d, 0);
	virtio_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	virtio_set_driver_features(d, 0, virtio_get_features(d, 0));
	virtio_set_driver_features(d, 1, virtio_get_features(d, 1));
	virtio_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                         VIRTIO_STATUS_FEATURES_OK);
	for (i = 0; i < 3; i++) {
		uint64_t base = RING_BASE + i * 0x4000ull;

		h->q[i] = (struct fq){.desc = base, .avail = base + 0x1000, .used = base + 0x2000};
		memset(h->ram + base, 0, 0x4000);
		d->vq[i].size = 256;
		d->vq[i].desc_gpa = base;
		d->vq[i].avail_gpa = base + 0x1000;
		d->vq[i].used_gpa = base + 0x2000;
		d->vq[i].ready = true;
	}
	virtio_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                         VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	pthread_mutex_unlock(&d->lock);
}

static int uds(const char *path, bool listen_it)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (listen_it) {
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0)
			abort();
	} else if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static struct harness *the_harness; /* for the exit handler only */

/* libFuzzer ends with exit(): remove the sockets and the directory. */
static void cleanup(void)
{
	struct harness *h = the_harness;
	int i;

	virtio_vsock_destroy(&h->s);
	for (i = 0; i < 2; i++) {
		close(h->listener[i]);
		unlink(h->lpath[i]);
	}
	rmdir(h->dir);
}

static struct harness *setup(void)
{
	static struct harness h;
	struct virtio_vsock_opts o = {.guest_cid = CID, .max_conns = 16, .buf_alloc = 8192};
	struct err e = {0};
	int i;

	h.ram = aligned_alloc(4096, RAM_SIZE);
	if (!h.ram || gmem_add(&h.gm, 0, RAM_SIZE, h.ram) || evloop_init(&h.loop, &e))
		abort();
	memset(h.ram, 0, RAM_SIZE);
	h.env.gm = &h.gm;
	h.env.loop = &h.loop;
	snprintf(h.dir, sizeof(h.dir), "/tmp/ember-fuzz-vsock-XXXXXX");
	if (!mkdtemp(h.dir))
		abort();
	snprintf(h.path, sizeof(h.path), "%s/v", h.dir);
	for (i = 0; i < 2; i++) {
		snprintf(h.lpath[i], sizeof(h.lpath[i]), "%s_%d", h.path, i + 1);
		h.listener[i] = uds(h.lpath[i], true); /* guest ports 1 and 2 reach these */
	}
	h.now = 1;
	h.clk = (struct rl_clock){NULL, NULL};
	o.uds_path = h.path;
	o.clock = &h.clk;
	if (virtio_vsock_init(&h.s, &o, &h.env, &e) < 0) {
		fprintf(stderr, "fuzz_virtio_vsock: %s\n", e.msg);
		abort();
	}
	h.base_fds = count_sockets();
	the_harness = &h;
	atexit(cleanup);
	return &h;
}

static uint64_t fake_now(void *ctx)
{
	return ((struct harness *)ctx)->now;
}

static void pump(struct harness *h)
{
	struct epoll_event evs[16];
	int i, n, rounds = 0;

	while (rounds++ < 8 && (n = epoll_wait(h->loop.epfd, evs, 16, 0)) > 0)
		for (i = 0; i < n; i++) {
			struct evloop_watch *w = evs[i].data.ptr;

			w->cb(w, evs[i].events);
		}
}

static void host_add(struct harness *h, int fd)
{
	if (fd < 0)
		return;
	if (h->nhost == MAX_HOST) {
		close(fd);
		return;
	}
	h->host[h->nhost++] = fd;
}

static void accept_all(struct harness *h)
{
	int i, fd;

	for (i = 0; i < 2; i++)
		while ((fd = accept4(h->listener[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
		       0)
			host_add(h, fd);
}

static bool harness_fd(const struct harness *h, int fd)
{
	unsigned int k;

	if (fd == h->listener[0] || fd == h->listener[1])
		return true;
	for (k = 0; k < h->nhost; k++)
		if (h->host[k] == fd)
			return true;
	return false;
}

/*
 * Shrink the send buffer of every socket ember holds (any socket here that is
 * not the harness's), so its writes to the host come back short and it must
 * buffer the guest's bytes and flush them on EPOLLOUT.
 */
static void squeeze(struct harness *h)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int one = 1;

	if (!d)
		abort();
	while ((e = readdir(d))) {
		struct stat st;
		int fd = atoi(e->d_name);

		if (e->d_name[0] == '.' || fd == dirfd(d) || harness_fd(h, fd))
			continue;
		if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
	}
	closedir(d);
}

/* Every packet the device wrote must be well formed. */
static void drain_rx(struct harness *h)
{
	struct fq *f = &h->q[0];

	while (__atomic_load_n((uint16_t *)(h->ram + f->used + 2), __ATOMIC_ACQUIRE) !=
	       f->used_seen) {
		uint8_t *e = h->ram + f->used + 4 + 8ull * (f->used_seen % 256);
		uint32_t id, len, plen;
		uint16_t type;
		uint64_t dst;
		uint8_t *hdr;

		memcpy(&id, e, 4);
		memcpy(&len, e + 4, 4);
		f->used_seen++;
		if (id >= 256)
			abort();
		/* The harness posts each rx buffer as one descriptor; find its address. */
		{
			uint64_t gpa;

			memcpy(&gpa, h->ram + f->desc + 16ull * id, 8);
			hdr = h->ram + gpa;
		}
		if (len == 0)
			continue; /* a buffer returned unused */
		if (len < VSOCK_HDR_SIZE)
			abort();
		memcpy(&plen, hdr + 24, 4);
		memcpy(&type, hdr + 28, 2);
		memcpy(&dst, hdr + 8, 8);
		if (plen != len - VSOCK_HDR_SIZE || plen > VSOCK_MAX_PKT ||
		    type != VSOCK_TYPE_STREAM || dst != CID)
			abort();
	}
}

static void post_rx(struct harness *h, unsigned int n, uint32_t len)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint16_t head = h->q[0].next_desc;

		add_desc(h, 0, RXBUF_BASE + 0x1000ull * (h->rx_next++ % 64), len,
		         VIRTQ_DESC_F_WRITE);
		publish(h, 0, head);
	}
	kick(h, VIRTIO_VSOCK_RXQ);
}

/*
 * A tx packet from the next bytes: a flags byte, a control byte, two length
 * bytes, then (flags bit 7) header and payload, zero-padded when the input
 * ends first; without bit 7 the packet is zeros and takes no more input.
 * Flags repair header fields so short random inputs form valid traffic:
 * bit 0 the CIDs, bit 1 type = stream, bit 2 len = the payload size, bit 3
 * ports from the control byte (bit 5: source 1 or 2; bits 6-7: destination
 * 1 or 2, the harness's listeners, or the first two host ports ember gives
 * host-initiated connections), bit 4 op = control bits 0-2.  Control bits 3-4
 * split the chain into 1-4 descriptors.
 */
static size_t tx_packet(struct harness *h, const uint8_t *d, size_t n)
{
	uint8_t flags, ctl, *p;
	uint32_t total, plen, u32;
	uint16_t u16, head;
	uint64_t gpa, u64;
	unsigned int i, nseg;
	size_t used;

	if (n < 4)
		return n;
	flags = d[0];
	ctl = d[1];
	total = d[2] | (uint32_t)(d[3] & 0x0f) << 8; /* up to 4095 bytes */
	/* Bit 7: the packet's bytes come from the input; else zeros (then the repairs below). */
	used = 4 + ((flags & 0x80) ? (total < n - 4 ? total : n - 4) : 0);
	gpa = TXBUF_BASE + 0x1000ull * (h->tx_slot++ % 64);
	p = h->ram + gpa;
	memset(p, 0, total);
	memcpy(p, d + 4, used - 4);
	plen = total > VSOCK_HDR_SIZE ? total - VSOCK_HDR_SIZE : 0;
	if (total >= VSOCK_HDR_SIZE) {
		if (flags & 1) {
			u64 = CID;
			memcpy(p, &u64, 8);
			u64 = VSOCK_HOST_CID;
			memcpy(p + 8, &u64, 8);
		}
		if (flags & 2) {
			u16 = VSOCK_TYPE_STREAM;
			memcpy(p + 28, &u16, 2);
		}
		if (flags & 4)
			memcpy(p + 24, &plen, 4);
		if (flags & 8) {
			u32 = 1 + ((ctl >> 5) & 1);
			memcpy(p + 16, &u32, 4);
			/* Host ports 1, 2 (listeners) or ember's first two ephemeral ports. */
			u32 = ((ctl >> 6) & 1 ? VSOCK_LOCAL_PORT_LO : 1) + ((ctl >> 7) & 1);
			memcpy(p + 20, &u32, 4);
		}
		if (flags & 16) {
			u16 = ctl & 7;
			memcpy(p + 30, &u16, 2);
		}
	}
	nseg = 1 + ((ctl >> 3) & 3);
	head = h->q[1].next_desc;
	for (i = 0; i < nseg; i++) {
		uint32_t from = total * i / nseg, to = total * (i + 1) / nseg;

		add_desc(h, 1, gpa + from, to - from, i + 1 < nseg ? VIRTQ_DESC_F_NEXT : 0);
	}
	publish(h, 1, head);
	kick(h, VIRTIO_VSOCK_TXQ);
	return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct harness *h;
	size_t i = 0;
	unsigned int k;

	if (!h)
		h = setup();
	h->clk = (struct rl_clock){fake_now, h};
	h->s.clock = h->clk;
	h->now = 1000000000ull;
	bring_up(h);
	post_rx(h, 16, 0x1000);

	while (i < size) {
		uint8_t op = data[i++], arg = i < size ? data[i] : 0;
		char line[32];
		int fd;

		switch (op % 8) {
		case 0:
		case 1:
		case 2:
			i += tx_packet(h, data + i, size - i);
			break;
		case 3: /* rx buffers, some too small for a header */
			i++;
			post_rx(h, 1 + arg % 8, (arg & 0x80) ? 44 + (arg & 0x3f) : 0x1000);
			break;
		case 4: /* a host client asks for guest port 1 or 2 (or says something odd) */
			i++;
			fd = uds(h->path, false);
			if (fd >= 0) {
				int len = (arg & 4)
				              ? snprintf(line, sizeof(line), "bogus %u\n", arg)
				              : snprintf(line, sizeof(line), "CONNECT %u\n",
				                         1 + (arg & 1));
				if (send(fd, line, (size_t)len, MSG_NOSIGNAL) < 0) {
					/* the device may refuse it: fine */
				}
				host_add(h, fd);
			}
			break;
		case 5: /* host sockets: write, half-close, close */
			i++;
			accept_all(h);
			if (h->nhost) {
				unsigned int j = arg % h->nhost;
				static const char junk[300] = "host bytes";

				if ((arg >> 5) == 0) {
					close(h->host[j]);
					h->host[j] = h->host[--h->nhost];
				} else if ((arg >> 5) == 1) {
					shutdown(h->host[j], SHUT_WR);
				} else if (send(h->host[j], junk, 1 + arg % sizeof(junk),
				                MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
					/* full or closed: fine */
				}
			}
			break;
		case 6: /* time passes: timeouts fire */
			i++;
			h->now += (uint64_t)arg * 50000000ull;
			h->s.timer_watch.cb(&h->s.timer_watch, EPOLLIN);
			break;
		case 7: /* host back-pressure: ember's sockets take little at a time */
			squeeze(h);
			break;
		}
		pump(h);
		accept_all(h);
		drain_rx(h);
	}

	/* Teardown: the driver resets, the host lets go; nothing may stay open. */
	pthread_mutex_lock(&h->s.vdev.lock);
	virtio_set_status(&h->s.vdev, 0);
	pthread_mutex_unlock(&h->s.vdev.lock);
	if (virtio_vsock_nconns(&h->s) != 0)
		abort();
	pump(h);
	accept_all(h);
	for (k = 0; k < h->nhost; k++)
		close(h->host[k]);
	h->nhost = 0;
	if (count_sockets() != h->base_fds) {
		fprintf(stderr, "fuzz_virtio_vsock: %d sockets open, %d before\n", count_sockets(),
		        h->base_fds);
		abort();
	}
	return 0;
}
