/* test_virtio_vsock.c - unit tests for virtio-vsock: a tiny guest driver, real host sockets. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/vsock.h"
#include "test.h"
#include "util/evloop.h"
#include "virtio_fake_driver.h"

#define CID 42

/* ---- guest RAM and split rings: the shared fake driver (virtio_fake_driver.h) ---- */

#define RAM_SIZE (8u << 20)
#define RXBUF_BASE                                                                                 \
	0x100000u /* rx buffer i: header at +i*0x2000, data at +0x100 (above the rings) */
#define RXBUF_DATA  4096u
#define NRXBUF      32
#define TXBUF_BASE  0x200000u /* tx slot i at +i*0x11000 */
#define TXBUF_SLOTS 64

/* ---- the guest-side vsock driver ---- */

struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

struct pkt {
	struct hdr h;
	uint32_t n; /* payload bytes */
	uint8_t data[RXBUF_DATA];
};

struct vg {
	struct fake_guest g;
	struct fake_transport ft;
	struct fake_vq q[3];
	struct virtio_vsock s;
	struct virtio_vsock_opts o;
	uint64_t now; /* the device's clock */
	struct rl_clock clk;
	int rxbuf_of[256]; /* rx head -> buffer index */
	unsigned int tx_slot;
	char dir[64], path[96];
};

static uint64_t vg_now(void *ctx)
{
	return ((struct vg *)ctx)->now;
}

static void le_put(uint8_t *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t le_get(const uint8_t *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* §5.10.6 wire layout, written independently of the device's encoder. */
static void hdr_put(uint8_t *p, const struct hdr *h)
{
	le_put(p, h->src_cid, 8);
	le_put(p + 8, h->dst_cid, 8);
	le_put(p + 16, h->src_port, 4);
	le_put(p + 20, h->dst_port, 4);
	le_put(p + 24, h->len, 4);
	le_put(p + 28, h->type, 2);
	le_put(p + 30, h->op, 2);
	le_put(p + 32, h->flags, 4);
	le_put(p + 36, h->buf_alloc, 4);
	le_put(p + 40, h->fwd_cnt, 4);
}

static void hdr_get(const uint8_t *p, struct hdr *h)
{
	h->src_cid = le_get(p, 8);
	h->dst_cid = le_get(p + 8, 8);
	h->src_port = (uint32_t)le_get(p + 16, 4);
	h->dst_port = (uint32_t)le_get(p + 20, 4);
	h->len = (uint32_t)le_get(p + 24, 4);
	h->type = (uint16_t)le_get(p + 28, 2);
	h->op = (uint16_t)le_get(p + 30, 2);
	h->flags = (uint32_t)le_get(p + 32, 4);
	h->buf_alloc = (uint32_t)le_get(p + 36, 4);
	h->fwd_cnt = (uint32_t)le_get(p + 40, 4);
}

static void kick(struct vg *v, unsigned int q)
{
	v->s.vdev.ops->queue_notify(&v->s.vdev, q);
}

/* Make rx buffer i available: header and data in two descriptors (old Linux's layout). */
static void rx_post(struct vg *v, int i)
{
	struct fake_seg sg[2] = {{RXBUF_BASE + 0x2000ull * i, 44, true},
	                         {RXBUF_BASE + 0x2000ull * i + 0x100, RXBUF_DATA, true}};

	v->rxbuf_of[fake_vq_add(&v->q[0], sg, 2)] = i;
}

/* Negotiate every offered feature and set up three fresh queues, handed out in ring order. */
static void vg_bring_up(struct vg *v)
{
	unsigned int i;

	for (i = 0; i < 3; i++) {
		fake_vq_init(&v->q[i], &v->g, 256);
		v->q[i].round_robin = true;
	}
	fake_start(&v->s.vdev, &v->ft, ~0ull, v->q, 3);
}

static void vg_post_all(struct vg *v)
{
	int i;

	for (i = 0; i < NRXBUF; i++)
		rx_post(v, i);
	kick(v, VIRTIO_VSOCK_RXQ);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* Set up RAM, loop, a device with `o` (path and clock filled in), and bring the driver up. */
static int vg_init_opts(struct vg *v, const struct virtio_vsock_opts *o, bool up)
{
	struct err e = {0};
	int r;

	memset(v, 0, sizeof(*v));
	fake_guest_init(&v->g, RAM_SIZE);
	snprintf(v->dir, sizeof(v->dir), "/tmp/ember-vsock-XXXXXX");
	if (!mkdtemp(v->dir))
		return -errno;
	snprintf(v->path, sizeof(v->path), "%s/v.sock", v->dir);
	v->now = 1000000000ull;
	v->clk = (struct rl_clock){vg_now, v};
	v->o = o ? *o : (struct virtio_vsock_opts){0};
	if (!v->o.guest_cid)
		v->o.guest_cid = CID;
	v->o.uds_path = v->path;
	v->o.clock = &v->clk;
	r = virtio_vsock_init(&v->s, &v->o, &v->g.env, &e);
	if (r < 0) {
		printf("  init: %s\n", e.msg);
		return r;
	}
	if (up) {
		vg_bring_up(v);
		vg_post_all(v);
	}
	return 0;
}

static int vg_init(struct vg *v)
{
	return vg_init_opts(v, NULL, true);
}

static void vg_fini(struct vg *v)
{
	virtio_vsock_destroy(&v->s);
	fake_guest_fini(&v->g);
	rmdir(v->dir);
}

/* Dispatch ready host-socket events for up to `ms` milliseconds (the VMM thread's job). */
static void pump(struct vg *v, int ms)
{
	struct epoll_event evs[16];
	int i, n, rounds = 0;

	while ((n = epoll_wait(v->g.loop.epfd, evs, 16, rounds ? 0 : ms)) > 0 && rounds++ < 100) {
		for (i = 0; i < n; i++) {
			struct evloop_watch *w = evs[i].data.ptr;

			w->cb(w, evs[i].events);
		}
	}
}

/* Next packet the device put in an rx buffer (the buffer is reposted). */
static bool grecv_now(struct vg *v, struct pkt *p)
{
	uint32_t id, len;
	int b;

	if (!fake_vq_used(&v->q[0], &id, &len))
		return false;
	b = v->rxbuf_of[id % 256];
	memset(p, 0, sizeof(*p));
	CHECK(len >= 44);
	hdr_get(v->g.ram + RXBUF_BASE + 0x2000ull * b, &p->h);
	p->n = len > 44 ? len - 44 : 0;
	CHECK_EQ(p->n, p->h.len);
	if (p->n > RXBUF_DATA)
		p->n = RXBUF_DATA;
	memcpy(p->data, v->g.ram + RXBUF_BASE + 0x2000ull * b + 0x100, p->n);
	rx_post(v, b);
	kick(v, VIRTIO_VSOCK_RXQ);
	return true;
}

static bool grecv(struct vg *v, struct pkt *p, int timeout_ms)
{
	int t;

	for (t = 0; t <= timeout_ms; t += 5) {
		if (grecv_now(v, p))
			return true;
		pump(v, 5);
	}
	return false;
}

/* Queue one tx chain: `raw` bytes as the readable part, split in two descriptors at 44. */
static void gsend_raw(struct vg *v, const uint8_t *raw, uint32_t n)
{
	uint64_t gpa = TXBUF_BASE + 0x11000ull * (v->tx_slot++ % TXBUF_SLOTS);
	struct fake_seg sg[2] = {{gpa, n < 44 ? n : 44, false},
	                         {gpa + 44, n > 44 ? n - 44 : 0, false}};

	memcpy(v->g.ram + gpa, raw, n);
	fake_vq_add(&v->q[1], sg, n > 44 ? 2 : 1);
	kick(v, VIRTIO_VSOCK_TXQ);
}

static void gsend(struct vg *v, uint32_t sport, uint32_t dport, uint16_t op, uint32_t flags,
                  uint32_t buf_alloc, uint32_t fwd_cnt, const void *data, uint32_t len)
{
	static uint8_t raw[44 + 65536];
	struct hdr h = {CID, VSOCK_HOST_CID, sport,     dport,  len, VSOCK_TYPE_STREAM,
	                op,  flags,          buf_alloc, fwd_cnt};

	hdr_put(raw, &h);
	if (len)
		memcpy(raw + 44, data, len);
	gsend_raw(v, raw, 44 + len);
}

static unsigned int tx_used_all(struct vg *v)
{
	uint32_t id, len;
	unsigned int n = 0;

	while (fake_vq_used(&v->q[1], &id, &len)) {
		CHECK_EQ(len, 0);
		n++;
	}
	return n;
}

/* ---- host side ---- */

static int uds_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int uds_listen(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read from a host socket while pumping ember: up to n bytes; stops at EOF (*eof set). */
static size_t hread(struct vg *v, int fd, void *buf, size_t n, int timeout_ms, bool *eof)
{
	size_t got = 0;
	int t;

	if (eof)
		*eof = false;
	for (t = 0; t <= timeout_ms && got < n; t += 5) {
		ssize_t k = recv(fd, (uint8_t *)buf + got, n - got, MSG_DONTWAIT);

		if (k > 0) {
			got += (size_t)k;
			t = 0;
			continue;
		}
		if (k == 0) {
			if (eof)
				*eof = true;
			break;
		}
		pump(v, 5);
	}
	return got;
}

static bool host_eof(struct vg *v, int fd, int timeout_ms)
{
	uint8_t b[256];
	bool eof = false;

	while (hread(v, fd, b, sizeof(b), timeout_ms, &eof) == sizeof(b))
		;
	return eof;
}

static void fill(uint8_t *p, size_t n, unsigned int seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
}

/* Host-initiated connection to guest port `gport`: returns the client fd, *lport the host port. */
static int connect_host(struct vg *v, uint32_t gport, uint32_t gbuf, uint32_t *lport)
{
	struct pkt p;
	char line[64], want[64];
	int fd = uds_connect(v->path);
	size_t n;

	CHECK(fd >= 0);
	snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	CHECK_EQ(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	CHECK(grecv(v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_REQUEST);
	CHECK_EQ(p.h.src_cid, VSOCK_HOST_CID);
	CHECK_EQ(p.h.dst_cid, CID);
	CHECK_EQ(p.h.dst_port, gport);
	CHECK(p.h.src_port >= VSOCK_LOCAL_PORT_LO);
	CHECK_EQ(p.h.type, VSOCK_TYPE_STREAM);
	CHECK_EQ(p.h.len, 0);
	*lport = p.h.src_port;
	gsend(v, gport, *lport, VSOCK_OP_RESPONSE, 0, gbuf, 0, NULL, 0);
	snprintf(want, sizeof(want), "OK %u\n", *lport);
	n = hread(v, fd, line, strlen(want), 1000, NULL);
	line[n] = '\0';
	CHECK_EQ(n, strlen(want));
	CHECK(strcmp(line, want) == 0);
	return fd;
}

/* Guest-initiated connection from guest port `gport` to host port `hport` (listener `lfd`). */
static int connect_guest(struct vg *v, int lfd, uint32_t gport, uint32_t hport, uint32_t gbuf)
{
	struct pkt p;
	int fd;

	gsend(v, gport, hport, VSOCK_OP_REQUEST, 0, gbuf, 0, NULL, 0);
	CHECK(grecv(v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RESPONSE);
	CHECK_EQ(p.h.src_port, hport);
	CHECK_EQ(p.h.dst_port, gport);
	CHECK_EQ(p.h.src_cid, VSOCK_HOST_CID);
	CHECK_EQ(p.h.dst_cid, CID);
	CHECK_EQ(p.h.buf_alloc, v->s.buf_alloc);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

/* ---- tests ---- */

TEST(identity_and_config)
{
	struct vg v;
	uint8_t b[8];
	uint32_t lo = 0, hi = 0;
	struct stat st;

	CHECK_EQ(vg_init_opts(&v, &(struct virtio_vsock_opts){.guest_cid = 0x12345678}, false), 0);
	CHECK_EQ(v.s.vdev.type, VIRTIO_ID_VSOCK);
	CHECK_EQ(v.s.vdev.nqueues, 3);
	CHECK_EQ(v.s.vdev.config_size, 8);
	CHECK(v.s.vdev.features & (1ull << VIRTIO_F_VERSION_1));
	CHECK(v.s.vdev.features & (1ull << VIRTIO_F_EVENT_IDX));
	CHECK_EQ(v.s.vdev.features & 0xffffff, 0); /* §5.10.3: no device bits: stream only */
	virtio_config_access(&v.s.vdev, 0, b, 8, false);
	CHECK_EQ(le_get(b, 8), 0x12345678);
	virtio_config_access(&v.s.vdev, 0, &lo, 4, false);
	virtio_config_access(&v.s.vdev, 4, &hi, 4, false);
	CHECK_EQ(lo, 0x12345678);
	CHECK_EQ(hi, 0);
	le_put(b, 99, 8);
	virtio_config_access(&v.s.vdev, 0, b, 8, true); /* read-only: ignored */
	virtio_config_access(&v.s.vdev, 0, b, 8, false);
	CHECK_EQ(le_get(b, 8), 0x12345678);
	CHECK_EQ(stat(v.path, &st), 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	vg_fini(&v);
	CHECK(stat(v.path, &st) < 0); /* destroy removed the socket */
}

TEST(init_refusals)
{
	struct vg v;
	struct virtio_vsock s;
	struct virtio_vsock_opts o = {.guest_cid = 2, .uds_path = "/tmp/x"};
	struct err e = {0};
	char longp[120];
	int fd;

	CHECK_EQ(vg_init_opts(&v, NULL, false), 0);
	/* §5.10.4 reserved CIDs. */
	CHECK_EQ(virtio_vsock_init(&s, &o, &v.g.env, &e), -EINVAL);
	CHECK_STR_CONTAINS(e.msg, "guest_cid 2");
	err_clear(&e);
	o.guest_cid = 0xffffffffull;
	CHECK_EQ(virtio_vsock_init(&s, &o, &v.g.env, &e), -EINVAL);
	err_clear(&e);
	o.guest_cid = 1ull << 32;
	CHECK_EQ(virtio_vsock_init(&s, &o, &v.g.env, &e), -EINVAL);
	err_clear(&e);
	/* A path with no room for "_<port>". */
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[100] = '\0';
	o = (struct virtio_vsock_opts){.guest_cid = 3, .uds_path = longp};
	CHECK_EQ(virtio_vsock_init(&s, &o, &v.g.env, &e), -ENAMETOOLONG);
	CHECK_STR_CONTAINS(e.msg, "too long");
	err_clear(&e);
	/* The live one of v: a server answers. */
	o.uds_path = v.path;
	CHECK_EQ(virtio_vsock_init(&s, &o, &v.g.env, &e), -EADDRINUSE);
	CHECK_STR_CONTAINS(e.msg, "in use");
	err_clear(&e);
	vg_fini(&v);

	/* A regular file is never replaced. */
	CHECK_EQ(vg_init_opts(&v, NULL, false), 0);
	virtio_vsock_destroy(&v.s);
	fd = open(v.path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	o.uds_path = v.path;
	CHECK_EQ(virtio_vsock_init(&s, &o, &v.g.env, &e), -EEXIST);
	CHECK_STR_CONTAINS(e.msg, "not a socket");
	err_clear(&e);
	CHECK_EQ(access(v.path, F_OK), 0);
	unlink(v.path);

	/* A stale socket (its server died without unlinking) is replaced. */
	fd = uds_listen(v.path);
	close(fd);
	CHECK_EQ(virtio_vsock_init(&s, &o, &v.g.env, &e), 0);
	fd = uds_connect(v.path);
	CHECK(fd >= 0);
	close(fd);
	virtio_vsock_destroy(&s);
	fake_guest_fini(&v.g);
	rmdir(v.dir);
}

TEST(destroy_leaves_foreign_file)
{
	struct vg v;
	int fd;

	CHECK_EQ(vg_init_opts(&v, NULL, false), 0);
	/* Someone replaced the socket file meanwhile: not ours to remove. */
	unlink(v.path);
	fd = open(v.path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	virtio_vsock_destroy(&v.s);
	CHECK_EQ(access(v.path, F_OK), 0);
	unlink(v.path);
	fake_guest_fini(&v.g);
	rmdir(v.dir);
}

TEST(host_initiated_data_both_ways)
{
	static uint8_t big[200000], got[200000];
	struct vg v;
	struct pkt p;
	uint32_t lport, fwd = 0;
	size_t off, n;
	char buf[64];
	int fd, updates = 0, fds0 = count_fds();

	CHECK_EQ(vg_init(&v), 0);
	fd = connect_host(&v, 52, 256 * 1024, &lport);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 1);
	/* Host -> guest. */
	CHECK_EQ(write(fd, "hello from host", 15), 15);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RW);
	CHECK_EQ(p.h.src_port, lport);
	CHECK_EQ(p.h.dst_port, 52);
	CHECK_EQ(p.n, 15);
	CHECK(memcmp(p.data, "hello from host", 15) == 0);
	/* Guest -> host. */
	gsend(&v, 52, lport, VSOCK_OP_RW, 0, 256 * 1024, 15, "hello from guest", 16);
	CHECK_EQ(hread(&v, fd, buf, 16, 1000, NULL), 16);
	CHECK(memcmp(buf, "hello from guest", 16) == 0);
	/* 200 KB guest -> host in 4 KiB packets, within ember's credit. */
	fill(big, sizeof(big), 1);
	for (off = 0; off < sizeof(big); off += n) {
		n = sizeof(big) - off < 4096 ? sizeof(big) - off : 4096;
		gsend(&v, 52, lport, VSOCK_OP_RW, 0, 256 * 1024, 15, big + off, (uint32_t)n);
		CHECK_EQ(hread(&v, fd, got + off, n, 1000, NULL), n);
	}
	CHECK(memcmp(big, got, sizeof(big)) == 0);
	/* 200 KB host -> guest; the guest forwards it and says so now and then. */
	fill(big, sizeof(big), 2);
	off = 0;
	n = 0;
	while (off < sizeof(big)) {
		ssize_t k = send(fd, big + n, sizeof(big) - n, MSG_DONTWAIT);

		if (k > 0)
			n += (size_t)k;
		if (!grecv(&v, &p, 1000))
			break;
		if (p.h.op == VSOCK_OP_CREDIT_UPDATE) {
			updates++; /* for the 200 KB the guest sent */
			continue;
		}
		if (p.h.op == VSOCK_OP_CREDIT_REQUEST) {
			gsend(&v, 52, lport, VSOCK_OP_CREDIT_UPDATE, 0, 256 * 1024, fwd, NULL, 0);
			continue;
		}
		CHECK_EQ(p.h.op, VSOCK_OP_RW);
		CHECK(off + p.n <= sizeof(big));
		memcpy(got + off, p.data, p.n);
		off += p.n;
		fwd += p.n;
		if (fwd % (64 * 1024) < p.n)
			gsend(&v, 52, lport, VSOCK_OP_CREDIT_UPDATE, 0, 256 * 1024, fwd, NULL, 0);
	}
	CHECK_EQ(off, sizeof(big));
	CHECK(memcmp(big, got, sizeof(big)) == 0);
	CHECK(updates >= 1);
	close(fd);
	/* The host's close: SHUTDOWN both ways; the guest's RST ends it. */
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_SHUTDOWN);
	CHECK_EQ(p.h.flags, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	gsend(&v, 52, lport, VSOCK_OP_RST, 0, 0, 0, NULL, 0);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	CHECK(!grecv(&v, &p, 20));
	vg_fini(&v);
	CHECK_EQ(count_fds(), fds0);
}

TEST(host_initiated_bytes_after_connect_line)
{
	struct vg v;
	struct pkt p;
	int fd;

	CHECK_EQ(vg_init(&v), 0);
	fd = uds_connect(v.path);
	/* One write: the line and the first bytes of the stream. */
	CHECK_EQ(write(fd, "connect 7\nearly", 15), 15); /* any case (Firecracker) */
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_REQUEST);
	CHECK_EQ(p.h.dst_port, 7);
	gsend(&v, 7, p.h.src_port, VSOCK_OP_RESPONSE, 0, 4096, 0, NULL, 0);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RW);
	CHECK_EQ(p.n, 5);
	CHECK(memcmp(p.data, "early", 5) == 0);
	close(fd);
	vg_fini(&v);
}

TEST(host_initiated_refused_by_guest)
{
	struct vg v;
	struct pkt p;
	char buf[16];
	bool eof;
	int fd;

	CHECK_EQ(vg_init(&v), 0);
	fd = uds_connect(v.path);
	CHECK_EQ(write(fd, "CONNECT 99\n", 11), 11);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_REQUEST);
	/* Nobody listens on guest port 99. */
	gsend(&v, 99, p.h.src_port, VSOCK_OP_RST, 0, 0, 0, NULL, 0);
	CHECK_EQ(hread(&v, fd, buf, sizeof(buf), 1000, &eof), 0); /* no "OK": EOF */
	CHECK(eof);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	close(fd);
	vg_fini(&v);
}

TEST(host_initiated_timeout)
{
	struct vg v;
	struct pkt p;
	int fd;

	CHECK_EQ(vg_init(&v), 0);
	fd = uds_connect(v.path);
	CHECK_EQ(write(fd, "CONNECT 5\n", 10), 10);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_REQUEST);
	/* The guest never answers. */
	v.now += (uint64_t)(VSOCK_DEF_TIMEOUT - 1) * 1000000;
	v.s.timer_watch.cb(&v.s.timer_watch, EPOLLIN);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 1);
	v.now += 1000000;
	v.s.timer_watch.cb(&v.s.timer_watch, EPOLLIN);
	CHECK(host_eof(&v, fd, 1000));
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RST);
	CHECK_EQ(p.h.dst_port, 5);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	close(fd);
	vg_fini(&v);
}

TEST(bad_connect_lines)
{
	static const char *const bad[] = {
	    "HELLO 5\n",     "CONNECT\n",
	    "CONNECT x\n",   "CONNECT 4294967296\n",
	    "CONNECT -1\n",  "CONNECT 5 6\n",
	    "CONNECTED 5\n", "CONNECT 1234567890123456789012345678901\n",
	};
	struct vg v;
	struct pkt p;
	unsigned int i;
	int fd;

	CHECK_EQ(vg_init(&v), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = uds_connect(v.path);
		CHECK_EQ(write(fd, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
		CHECK(host_eof(&v, fd, 1000));
		close(fd);
	}
	/* A client that says nothing is closed after the timeout. */
	fd = uds_connect(v.path);
	CHECK_EQ(write(fd, "CONN", 4), 4);
	pump(&v, 20);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 1);
	v.now += (uint64_t)VSOCK_DEF_TIMEOUT * 1000000;
	v.s.timer_watch.cb(&v.s.timer_watch, EPOLLIN);
	CHECK(host_eof(&v, fd, 1000));
	close(fd);
	/* "CONNECT 5\r\n" (a telnet-style line) is fine. */
	fd = uds_connect(v.path);
	CHECK_EQ(write(fd, " CONNECT\t5 \r\n", 13), 13);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_REQUEST);
	CHECK_EQ(p.h.dst_port, 5);
	CHECK(!grecv(&v, &p, 20)); /* nothing from the bad ones reached the guest */
	close(fd);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 1);
	vg_fini(&v);
}

TEST(guest_initiated_data_both_ways)
{
	struct vg v;
	struct pkt p;
	char path[128], buf[64];
	int lfd, fd, fds0 = count_fds();

	CHECK_EQ(vg_init(&v), 0);
	snprintf(path, sizeof(path), "%s_1234", v.path);
	lfd = uds_listen(path);
	CHECK(lfd >= 0);
	fd = connect_guest(&v, lfd, 5000, 1234, 65536);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 1);
	gsend(&v, 5000, 1234, VSOCK_OP_RW, 0, 65536, 0, "ping", 4);
	CHECK_EQ(hread(&v, fd, buf, 4, 1000, NULL), 4);
	CHECK(memcmp(buf, "ping", 4) == 0);
	CHECK_EQ(write(fd, "pong!", 5), 5);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RW);
	CHECK_EQ(p.h.src_port, 1234);
	CHECK_EQ(p.h.dst_port, 5000);
	CHECK_EQ(p.h.fwd_cnt, 4); /* ember forwarded the guest's 4 bytes */
	CHECK_EQ(p.n, 5);
	CHECK(memcmp(p.data, "pong!", 5) == 0);
	/* The guest closes: SHUTDOWN both, ember answers RST and the host sees EOF. */
	gsend(&v, 5000, 1234, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND, 65536, 5,
	      NULL, 0);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RST);
	CHECK(host_eof(&v, fd, 1000));
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	close(fd);
	close(lfd);
	unlink(path);
	vg_fini(&v);
	CHECK_EQ(count_fds(), fds0);
}

TEST(guest_initiated_no_listener)
{
	struct vg v;
	struct pkt p;

	CHECK_EQ(vg_init(&v), 0);
	gsend(&v, 5000, 7777, VSOCK_OP_REQUEST, 0, 65536, 0, NULL, 0);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RST); /* §5.10.6.5: no listening socket */
	CHECK_EQ(p.h.src_cid, VSOCK_HOST_CID);
	CHECK_EQ(p.h.dst_cid, CID);
	CHECK_EQ(p.h.src_port, 7777);
	CHECK_EQ(p.h.dst_port, 5000);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	CHECK(virtio_live(&v.s.vdev));
	vg_fini(&v);
}

TEST(credit_limits_respected)
{
	static uint8_t data[3000], got[3000];
	struct vg v;
	struct pkt p;
	char path[128];
	uint32_t total = 0;
	int lfd, fd;

	CHECK_EQ(vg_init(&v), 0);
	snprintf(path, sizeof(path), "%s_80", v.path);
	lfd = uds_listen(path);
	fd = connect_guest(&v, lfd, 6000, 80, 1000); /* the guest has 1000 bytes of buffer */
	fill(data, sizeof(data), 3);
	CHECK_EQ(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	/* Exactly 1000 bytes, then a credit request, then silence. */
	while (grecv(&v, &p, 100) && p.h.op == VSOCK_OP_RW) {
		memcpy(got + total, p.data, p.n);
		total += p.n;
		CHECK(total <= 1000);
	}
	CHECK_EQ(total, 1000);
	CHECK_EQ(p.h.op, VSOCK_OP_CREDIT_REQUEST);
	CHECK(!grecv(&v, &p, 50));
	/* A credit update that frees nothing changes nothing (and is not answered). */
	gsend(&v, 6000, 80, VSOCK_OP_CREDIT_UPDATE, 0, 1000, 0, NULL, 0);
	CHECK(!grecv(&v, &p, 50));
	/* The guest consumed 600: 600 more come. */
	gsend(&v, 6000, 80, VSOCK_OP_CREDIT_UPDATE, 0, 1000, 600, NULL, 0);
	while (total < 1600 && grecv(&v, &p, 100)) {
		CHECK_EQ(p.h.op, VSOCK_OP_RW);
		memcpy(got + total, p.data, p.n);
		total += p.n;
	}
	CHECK_EQ(total, 1600);
	CHECK(grecv(&v, &p, 100));
	CHECK_EQ(p.h.op, VSOCK_OP_CREDIT_REQUEST);
	/* A bigger buffer (buf_alloc grows): the rest. */
	gsend(&v, 6000, 80, VSOCK_OP_CREDIT_UPDATE, 0, 65536, 1600, NULL, 0);
	while (total < sizeof(data) && grecv(&v, &p, 100)) {
		CHECK_EQ(p.h.op, VSOCK_OP_RW);
		memcpy(got + total, p.data, p.n);
		total += p.n;
	}
	CHECK_EQ(total, sizeof(data));
	CHECK(memcmp(data, got, sizeof(data)) == 0);
	/* CREDIT_REQUEST from the guest is answered with our numbers. */
	gsend(&v, 6000, 80, VSOCK_OP_CREDIT_REQUEST, 0, 65536, 3000, NULL, 0);
	CHECK(grecv(&v, &p, 100));
	CHECK_EQ(p.h.op, VSOCK_OP_CREDIT_UPDATE);
	CHECK_EQ(p.h.buf_alloc, v.s.buf_alloc);
	close(fd);
	close(lfd);
	unlink(path);
	vg_fini(&v);
}

TEST(guest_over_credit_is_reset)
{
	static uint8_t chunk[65536];
	struct vg v;
	struct pkt p;
	char path[128];
	struct virtio_vsock_opts o = {.buf_alloc = 8192};
	unsigned int i;
	bool rst = false;
	int lfd, fd;

	CHECK_EQ(vg_init_opts(&v, &o, true), 0);
	snprintf(path, sizeof(path), "%s_81", v.path);
	lfd = uds_listen(path);
	fd = connect_guest(&v, lfd, 6001, 81, 65536);
	CHECK_EQ(v.s.buf_alloc, 8192);
	/* The host reads nothing; a guest ignoring ember's 8 KiB credit fills the socket, then
	 * ember's buffer, then is reset. */
	for (i = 0; i < 200 && !rst; i++) {
		gsend(&v, 6001, 81, VSOCK_OP_RW, 0, 65536, 0, chunk, sizeof(chunk));
		while (grecv_now(&v, &p))
			rst |= p.h.op == VSOCK_OP_RST;
	}
	CHECK(rst);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	CHECK(host_eof(&v, fd, 2000)); /* after whatever was written */
	CHECK(virtio_live(&v.s.vdev));
	close(fd);
	close(lfd);
	unlink(path);
	vg_fini(&v);
}

TEST(slow_host_buffered_then_credit_update)
{
	static uint8_t chunk[4096], sink[65536];
	struct vg v;
	struct pkt p;
	char path[128];
	struct virtio_vsock_opts o = {.buf_alloc = 16384};
	uint32_t sent = 0, credit_fwd = 0;
	bool update = false;
	int lfd, fd, sz = 4096;
	size_t drained = 0;

	CHECK_EQ(vg_init_opts(&v, &o, true), 0);
	snprintf(path, sizeof(path), "%s_82", v.path);
	lfd = uds_listen(path);
	fd = connect_guest(&v, lfd, 6002, 82, 65536);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	fill(chunk, sizeof(chunk), 4);
	/* A guest that respects credit: sends while buf_alloc - (sent - fwd_cnt) allows. */
	while (sent < 600000) {
		uint32_t room = 16384 - (sent - credit_fwd);

		if (room >= sizeof(chunk)) {
			gsend(&v, 6002, 82, VSOCK_OP_RW, 0, 65536, 0, chunk, sizeof(chunk));
			sent += sizeof(chunk);
		} else {
			/* Stalled: let the host drain some, and wait for ember's update. */
			drained += hread(&v, fd, sink, sizeof(sink), 20, NULL);
		}
		while (grecv_now(&v, &p)) {
			CHECK(p.h.op != VSOCK_OP_RST);
			if (p.h.op == VSOCK_OP_CREDIT_UPDATE)
				update = true;
			credit_fwd = p.h.fwd_cnt;
		}
		if (room < sizeof(chunk) && drained > 1000000)
			break;
	}
	CHECK(update);
	CHECK_EQ(sent, 600000 - 600000 % 4096 + (600000 % 4096 ? 4096 : 0));
	while (drained < sent) {
		size_t k = hread(&v, fd, sink, sizeof(sink), 200, NULL);

		if (!k)
			break;
		drained += k;
	}
	CHECK_EQ(drained, sent);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 1);
	close(fd);
	close(lfd);
	unlink(path);
	vg_fini(&v);
}

TEST(shutdown_half_close_both_ways)
{
	struct vg v;
	struct pkt p;
	char path[128], buf[16];
	bool eof;
	int lfd, fd;

	CHECK_EQ(vg_init(&v), 0);
	snprintf(path, sizeof(path), "%s_90", v.path);
	lfd = uds_listen(path);
	fd = connect_guest(&v, lfd, 7000, 90, 65536);
	/* The host shuts down its write side: the guest hears SEND only. */
	CHECK_EQ(write(fd, "last", 4), 4);
	shutdown(fd, SHUT_WR);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RW);
	CHECK_EQ(p.n, 4);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_SHUTDOWN);
	CHECK_EQ(p.h.flags, VSOCK_SHUTDOWN_SEND);
	/* The guest still talks, and the host still hears. */
	gsend(&v, 7000, 90, VSOCK_OP_RW, 0, 65536, 4, "reply", 5);
	CHECK_EQ(hread(&v, fd, buf, 5, 1000, NULL), 5);
	CHECK(memcmp(buf, "reply", 5) == 0);
	/* The guest's SEND shutdown reaches the host as EOF; the connection lives on... */
	gsend(&v, 7000, 90, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND, 65536, 4, NULL, 0);
	CHECK_EQ(hread(&v, fd, buf, 1, 1000, &eof), 0);
	CHECK(eof);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 1);
	/* ...until the guest closes completely: RST. */
	gsend(&v, 7000, 90, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV, 65536, 4, NULL, 0);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RST);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	close(fd);
	close(lfd);
	unlink(path);
	vg_fini(&v);
}

TEST(both_half_closed_times_out)
{
	struct vg v;
	struct pkt p;
	char path[128], buf[4];
	bool eof;
	int lfd, fd;

	CHECK_EQ(vg_init(&v), 0);
	snprintf(path, sizeof(path), "%s_92", v.path);
	lfd = uds_listen(path);
	fd = connect_guest(&v, lfd, 7002, 92, 65536);
	shutdown(fd, SHUT_WR);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_SHUTDOWN);
	CHECK_EQ(p.h.flags, VSOCK_SHUTDOWN_SEND);
	gsend(&v, 7002, 92, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND, 65536, 0, NULL, 0);
	CHECK_EQ(hread(&v, fd, buf, 1, 1000, &eof), 0);
	CHECK(eof);
	/* Nothing can flow either way; a guest that never finishes is reset after the timeout. */
	CHECK_EQ(virtio_vsock_nconns(&v.s), 1);
	v.now += (uint64_t)VSOCK_DEF_TIMEOUT * 1000000;
	v.s.timer_watch.cb(&v.s.timer_watch, EPOLLIN);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RST);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	close(fd);
	close(lfd);
	unlink(path);
	vg_fini(&v);
}

TEST(shutdown_guest_recv_only)
{
	struct vg v;
	struct pkt p;
	char path[128], buf[8];
	int lfd, fd;

	CHECK_EQ(vg_init(&v), 0);
	snprintf(path, sizeof(path), "%s_91", v.path);
	lfd = uds_listen(path);
	fd = connect_guest(&v, lfd, 7001, 91, 65536);
	/* The guest will not receive: host bytes stay in the host socket. */
	gsend(&v, 7001, 91, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV, 65536, 0, NULL, 0);
	CHECK_EQ(write(fd, "ignored", 7), 7);
	CHECK(!grecv(&v, &p, 50));
	/* It may still send. */
	gsend(&v, 7001, 91, VSOCK_OP_RW, 0, 65536, 0, "up", 2);
	CHECK_EQ(hread(&v, fd, buf, 2, 1000, NULL), 2);
	close(fd);
	close(lfd);
	unlink(path);
	vg_fini(&v);
}

TEST(host_close_guest_silent_times_out)
{
	struct vg v;
	struct pkt p;
	uint32_t lport;
	int fd;

	CHECK_EQ(vg_init(&v), 0);
	fd = connect_host(&v, 53, 65536, &lport);
	close(fd);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_SHUTDOWN);
	CHECK_EQ(p.h.flags, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	/* §5.10.6.5: no RST from the guest in time: ember sends one. */
	v.now += (uint64_t)VSOCK_DEF_TIMEOUT * 1000000;
	v.s.timer_watch.cb(&v.s.timer_watch, EPOLLIN);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RST);
	CHECK_EQ(p.h.src_port, lport);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	vg_fini(&v);
}

/* Expect one RST addressed back to (sport, dport) of the offending packet. */
static void expect_rst(struct vg *v, uint64_t src_cid, uint32_t sport, uint32_t dport)
{
	struct pkt p;

	CHECK(grecv(v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RST);
	CHECK_EQ(p.h.src_cid, src_cid);
	CHECK_EQ(p.h.dst_cid, CID);
	CHECK_EQ(p.h.src_port, dport);
	CHECK_EQ(p.h.dst_port, sport);
	CHECK_EQ(p.h.type, VSOCK_TYPE_STREAM);
	CHECK_EQ(p.h.len, 0);
}

TEST(malformed_packets)
{
	struct vg v;
	struct pkt p;
	uint8_t raw[200] = {0};
	struct hdr h;
	char path[128];
	int lfd, fd;

	CHECK_EQ(vg_init(&v), 0);
	/* Short header: consumed, dropped, nothing to answer. */
	gsend_raw(&v, raw, 20);
	CHECK_EQ(tx_used_all(&v), 1);
	CHECK(!grecv(&v, &p, 20));
	gsend_raw(&v, raw, 0 + 43);
	CHECK(!grecv(&v, &p, 20));
	/* len larger than the chain. */
	h = (struct hdr){CID, 2, 100, 200, 100, 1, VSOCK_OP_RW, 0, 4096, 0};
	hdr_put(raw, &h);
	gsend_raw(&v, raw, 44 + 10);
	expect_rst(&v, 2, 100, 200);
	/* len above 64 KiB (even with a chain that long). */
	h.len = 70000;
	hdr_put(raw, &h);
	gsend_raw(&v, raw, 44);
	expect_rst(&v, 2, 100, 200);
	/* §5.10.6.4: unknown type. */
	h = (struct hdr){CID, 2, 101, 201, 0, 2, VSOCK_OP_REQUEST, 0, 4096, 0};
	hdr_put(raw, &h);
	gsend_raw(&v, raw, 44);
	expect_rst(&v, 2, 101, 201);
	/* Wrong destination CID: the RST comes "from" that CID. */
	h = (struct hdr){CID, 5, 102, 202, 0, 1, VSOCK_OP_REQUEST, 0, 4096, 0};
	hdr_put(raw, &h);
	gsend_raw(&v, raw, 44);
	expect_rst(&v, 5, 102, 202);
	/* Wrong source CID. */
	h = (struct hdr){CID + 1, 2, 103, 203, 0, 1, VSOCK_OP_RW, 0, 4096, 0};
	hdr_put(raw, &h);
	gsend_raw(&v, raw, 44);
	expect_rst(&v, 2, 103, 203);
	/* Upper CID bits set (§5.10.6: reserved, zero). */
	h = (struct hdr){CID | 1ull << 40, 2, 104, 204, 0, 1, VSOCK_OP_RW, 0, 4096, 0};
	hdr_put(raw, &h);
	gsend_raw(&v, raw, 44);
	expect_rst(&v, 2, 104, 204);
	/* Unknown op, op 0 (INVALID), data for no connection. */
	gsend(&v, 105, 205, 42, 0, 4096, 0, NULL, 0);
	expect_rst(&v, 2, 105, 205);
	gsend(&v, 106, 206, 0, 0, 4096, 0, NULL, 0);
	expect_rst(&v, 2, 106, 206);
	gsend(&v, 107, 207, VSOCK_OP_RW, 0, 4096, 0, "x", 1);
	expect_rst(&v, 2, 107, 207);
	gsend(&v, 108, 208, VSOCK_OP_SHUTDOWN, 3, 4096, 0, NULL, 0);
	expect_rst(&v, 2, 108, 208);
	gsend(&v, 109, 209, VSOCK_OP_RESPONSE, 0, 4096, 0, NULL, 0);
	expect_rst(&v, 2, 109, 209);
	/* An RST for nothing is not answered (no RST storms), nor a bad one. */
	gsend(&v, 110, 210, VSOCK_OP_RST, 0, 0, 0, NULL, 0);
	h = (struct hdr){CID, 9, 111, 211, 0, 7, VSOCK_OP_RST, 0, 0, 0};
	hdr_put(raw, &h);
	gsend_raw(&v, raw, 44);
	CHECK(!grecv(&v, &p, 20));

	/* Malformed packets on a live connection end it: RST to the guest, EOF to the host. */
	snprintf(path, sizeof(path), "%s_300", v.path);
	lfd = uds_listen(path);
	fd = connect_guest(&v, lfd, 8000, 300, 65536);
	h = (struct hdr){CID, 2, 8000, 300, 1000, 1, VSOCK_OP_RW, 0, 4096, 0};
	hdr_put(raw, &h);
	gsend_raw(&v, raw, 44 + 100); /* len beyond the chain */
	expect_rst(&v, 2, 8000, 300);
	CHECK(host_eof(&v, fd, 1000));
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	close(fd);
	fd = connect_guest(&v, lfd, 8001, 300, 65536);
	gsend(&v, 8001, 300, VSOCK_OP_REQUEST, 0, 4096, 0, NULL, 0); /* again: a violation */
	expect_rst(&v, 2, 8001, 300);
	CHECK(host_eof(&v, fd, 1000));
	close(fd);
	fd = connect_guest(&v, lfd, 8002, 300, 65536);
	gsend(&v, 8002, 300, 99, 0, 4096, 0, NULL, 0);
	expect_rst(&v, 2, 8002, 300);
	CHECK(host_eof(&v, fd, 1000));
	close(fd);
	/* The guest's own RST on a live connection: closed, no answer. */
	fd = connect_guest(&v, lfd, 8003, 300, 65536);
	gsend(&v, 8003, 300, VSOCK_OP_RST, 0, 0, 0, NULL, 0);
	CHECK(host_eof(&v, fd, 1000));
	CHECK(!grecv(&v, &p, 20));
	close(fd);

	CHECK(virtio_live(&v.s.vdev));
	CHECK_EQ(v.ft.config_changed, 0);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	close(lfd);
	unlink(path);
	vg_fini(&v);
}

TEST(rst_backpressure_without_rx_buffers)
{
	struct vg v;
	struct pkt p;
	unsigned int i, got = 0, used;

	CHECK_EQ(vg_init_opts(&v, NULL, false), 0);
	vg_bring_up(&v);
	/* No rx buffers: 300 packets for nobody; the RST ring (256) fills and tx stops. */
	for (i = 0; i < 300; i++)
		gsend(&v, 1000 + i, 9, VSOCK_OP_RW, 0, 0, 0, NULL, 0);
	used = tx_used_all(&v);
	CHECK_EQ(used, 256); /* §5.10.6.1: tx waits for resources, never drops */
	/* Rx buffers arrive: every RST is delivered, in order, and tx resumes. */
	vg_post_all(&v);
	while (grecv(&v, &p, 50)) {
		CHECK_EQ(p.h.op, VSOCK_OP_RST);
		CHECK_EQ(p.h.dst_port, 1000 + got);
		got++;
	}
	CHECK_EQ(got, 300);
	CHECK_EQ(tx_used_all(&v), 300 - 256);
	vg_fini(&v);
}

TEST(reset_closes_everything)
{
	struct vg v;
	struct pkt p;
	uint32_t lport;
	char path[128];
	int lfd, a, b, c, fds0 = count_fds();

	CHECK_EQ(vg_init(&v), 0);
	snprintf(path, sizeof(path), "%s_400", v.path);
	lfd = uds_listen(path);
	a = connect_host(&v, 60, 65536, &lport);
	b = connect_guest(&v, lfd, 9000, 400, 65536);
	c = uds_connect(v.path); /* still typing its CONNECT line */
	pump(&v, 20);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 3);
	pthread_mutex_lock(&v.s.vdev.lock);
	virtio_set_status(&v.s.vdev, 0);
	pthread_mutex_unlock(&v.s.vdev.lock);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	CHECK(host_eof(&v, a, 1000));
	CHECK(host_eof(&v, b, 1000));
	CHECK(host_eof(&v, c, 1000));
	close(a);
	close(b);
	close(c);
	/* While the driver is away, a client waits in the backlog; activation lets it in. */
	a = uds_connect(v.path);
	CHECK_EQ(write(a, "CONNECT 61\n", 11), 11);
	pump(&v, 20);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0);
	vg_bring_up(&v);
	vg_post_all(&v);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_REQUEST);
	CHECK_EQ(p.h.dst_port, 61);
	close(a);
	close(lfd);
	unlink(path);
	vg_fini(&v);
	CHECK_EQ(count_fds(), fds0);
}

TEST(connection_limit)
{
	struct vg v;
	struct pkt p;
	char path[128];
	struct virtio_vsock_opts o = {.max_conns = 2};
	int lfd, a, b, c;

	CHECK_EQ(vg_init_opts(&v, &o, true), 0);
	snprintf(path, sizeof(path), "%s_500", v.path);
	lfd = uds_listen(path);
	a = connect_guest(&v, lfd, 9100, 500, 65536);
	b = uds_connect(v.path);
	pump(&v, 20);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 2);
	/* A third host client is closed at once; a third guest request is refused. */
	c = uds_connect(v.path);
	CHECK(host_eof(&v, c, 1000));
	gsend(&v, 9101, 500, VSOCK_OP_REQUEST, 0, 65536, 0, NULL, 0);
	CHECK(grecv(&v, &p, 1000));
	CHECK_EQ(p.h.op, VSOCK_OP_RST);
	CHECK_EQ(p.h.dst_port, 9101);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 2);
	close(a);
	close(b);
	close(c);
	close(lfd);
	unlink(path);
	vg_fini(&v);
}

TEST(bad_ring_needs_reset)
{
	struct vg v;
	struct fake_seg out = {RAM_SIZE - 8, 64, false};

	CHECK_EQ(vg_init(&v), 0);
	fake_vq_add(&v.q[1], &out, 1);
	kick(&v, VIRTIO_VSOCK_TXQ);
	CHECK(!virtio_live(&v.s.vdev));
	CHECK_EQ(v.ft.config_changed, 1);
	vg_fini(&v);
}

#define EVBUF_BASE 0x7f0000u /* above the tx slots */

/*
 * After a restore: the host side's connections end and the guest gets
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (id 0, 4 bytes, virtio 1.2 §5.10.6.6) in its next event
 * buffer with a notification; without a buffer, or before DRIVER_OK, nothing is sent, and a
 * buffer too short for the event comes back empty.
 */
TEST(transport_reset_event)
{
	struct vg v;
	uint32_t lport, id, len;
	uint8_t *ev;
	int fd;

	CHECK_EQ(vg_init_opts(&v, NULL, false), 0);
	CHECK(!virtio_vsock_transport_reset(&v.s)); /* no driver yet */
	vg_fini(&v);

	CHECK_EQ(vg_init(&v), 0);
	fd = connect_host(&v, 5000, 65536, &lport);
	CHECK_EQ(virtio_vsock_nconns(&v.s), 1u);
	/* No event buffer posted: the connections end all the same, no event, no interrupt. */
	CHECK(!virtio_vsock_transport_reset(&v.s));
	CHECK_EQ(virtio_vsock_nconns(&v.s), 0u);
	CHECK(host_eof(&v, fd, 1000));
	CHECK_EQ(v.ft.notified[VIRTIO_VSOCK_EVQ], 0u);
	close(fd);

	ev = fake_guest_ptr(&v.g, EVBUF_BASE);
	memset(ev, 0xff, 16);
	fake_vq_add(&v.q[VIRTIO_VSOCK_EVQ], (struct fake_seg[]){{EVBUF_BASE, 2, true}}, 1);
	fake_vq_add(&v.q[VIRTIO_VSOCK_EVQ], (struct fake_seg[]){{EVBUF_BASE + 8, 8, true}}, 1);
	kick(&v, VIRTIO_VSOCK_EVQ); /* kept, not used */
	CHECK_EQ(fake_vq_pending(&v.q[VIRTIO_VSOCK_EVQ]), 0u);
	/* Too short for an event: returned empty, untouched. */
	CHECK(!virtio_vsock_transport_reset(&v.s));
	CHECK(fake_vq_used(&v.q[VIRTIO_VSOCK_EVQ], &id, &len));
	CHECK_EQ(len, 0u);
	CHECK_EQ(ev[0], 0xff);
	/* The event: le32 0 in the next buffer, 4 bytes used, the queue notified. */
	CHECK(virtio_vsock_transport_reset(&v.s));
	CHECK(fake_vq_used(&v.q[VIRTIO_VSOCK_EVQ], &id, &len));
	CHECK_EQ(len, 4u);
	CHECK(!memcmp(ev + 8, "\0\0\0\0\xff\xff\xff\xff", 8));
	CHECK(v.ft.notified[VIRTIO_VSOCK_EVQ] >= 1u);
	CHECK(virtio_live(&v.s.vdev));
	vg_fini(&v);
}

int main(void)
{
	RUN(identity_and_config);
	RUN(init_refusals);
	RUN(destroy_leaves_foreign_file);
	RUN(host_initiated_data_both_ways);
	RUN(host_initiated_bytes_after_connect_line);
	RUN(host_initiated_refused_by_guest);
	RUN(host_initiated_timeout);
	RUN(bad_connect_lines);
	RUN(guest_initiated_data_both_ways);
	RUN(guest_initiated_no_listener);
	RUN(credit_limits_respected);
	RUN(guest_over_credit_is_reset);
	RUN(slow_host_buffered_then_credit_update);
	RUN(shutdown_half_close_both_ways);
	RUN(both_half_closed_times_out);
	RUN(shutdown_guest_recv_only);
	RUN(host_close_guest_silent_times_out);
	RUN(malformed_packets);
	RUN(rst_backpressure_without_rx_buffers);
	RUN(reset_closes_everything);
	RUN(connection_limit);
	RUN(bad_ring_needs_reset);
	RUN(transport_reset_event);
	return test_summary();
}
