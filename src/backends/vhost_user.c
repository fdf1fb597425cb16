/* vhost_user.c - vhost-user frontend: messages to a backend, every reply checked, timeouts. */
#include "backends/vhost_user.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

struct hdr {
	uint32_t req, flags, size;
};
_Static_assert(sizeof(struct hdr) == VHOST_USER_HDR_SIZE, "vhost-user header");

/* vhost-user.rst: "A vring state description", "A vring address description", ... */
struct vring_state {
	uint32_t index, num;
};
struct vring_addr {
	uint32_t index, flags;
	uint64_t desc, used, avail, log;
};
struct mem_region {
	uint64_t gpa, size, uaddr, offset;
};
struct mem_table {
	uint32_t n, padding;
	struct mem_region r[VHOST_USER_MAX_REGIONS];
};
struct config_hdr {
	uint32_t offset, size, flags;
};

const char *vhost_user_req_name(uint32_t req)
{
	switch (req) {
	case VHOST_USER_GET_FEATURES:
		return "GET_FEATURES";
	case VHOST_USER_SET_FEATURES:
		return "SET_FEATURES";
	case VHOST_USER_SET_OWNER:
		return "SET_OWNER";
	case VHOST_USER_SET_MEM_TABLE:
		return "SET_MEM_TABLE";
	case VHOST_USER_SET_VRING_NUM:
		return "SET_VRING_NUM";
	case VHOST_USER_SET_VRING_ADDR:
		return "SET_VRING_ADDR";
	case VHOST_USER_SET_VRING_BASE:
		return "SET_VRING_BASE";
	case VHOST_USER_GET_VRING_BASE:
		return "GET_VRING_BASE";
	case VHOST_USER_SET_VRING_KICK:
		return "SET_VRING_KICK";
	case VHOST_USER_SET_VRING_CALL:
		return "SET_VRING_CALL";
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		return "GET_PROTOCOL_FEATURES";
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		return "SET_PROTOCOL_FEATURES";
	case VHOST_USER_SET_VRING_ENABLE:
		return "SET_VRING_ENABLE";
	case VHOST_USER_GET_CONFIG:
		return "GET_CONFIG";
	default:
		return "request";
	}
}

int vhost_user_check_reply(uint32_t req, const uint8_t *msg, size_t len, uint32_t want,
                           const uint8_t **payload, struct err *e)
{
	const char *name = vhost_user_req_name(req);
	struct hdr h;

	*payload = NULL;
	if (len < sizeof(h))
		return err_set(e, EPROTO,
		               "vhost-user backend: %s: reply of %zu bytes, short of a header",
		               name, len);
	memcpy(&h, msg, sizeof(h));
	if (h.req != req)
		return err_set(e, EPROTO, "vhost-user backend: %s: the reply is to request %u",
		               name, h.req);
	if ((h.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
	    !(h.flags & VHOST_USER_REPLY_MASK))
		return err_set(
		    e, EPROTO,
		    "vhost-user backend: %s: reply flags %#x (want version 1 and the reply "
		    "bit)",
		    name, h.flags);
	if (h.size != want || len - sizeof(h) != h.size)
		return err_set(e, EPROTO,
		               "vhost-user backend: %s: reply payload of %u bytes (%zu received), "
		               "want %u",
		               name, h.size, len - sizeof(h), want);
	*payload = msg + sizeof(h);
	return 0;
}

/* The backend failed: note it once, record why, and close nothing (the owner does). */
static int dead(struct vhost_user *vu, int r)
{
	vu->dead = true;
	return r;
}

int vhost_user_connect(struct vhost_user *vu, const char *path, struct err *e)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv;
	int fd, r;

	*vu = (struct vhost_user){.fd = -1, .timeout_ms = VHOST_USER_TIMEOUT_MS};
	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(
		    e, ENAMETOOLONG,
		    "Failed to connect to UDS Unix stream: File name too long (os error %d)",
		    ENAMETOOLONG);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(e, errno, "vhost-user: socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = errno;
		close(fd);
		return err_set(e, r, "Failed to connect to UDS Unix stream: %s (os error %d)",
		               strerror(r), r);
	}
	/* Nothing waits on the backend for longer than this (a hung backend is a dead one). */
	tv.tv_sec = vu->timeout_ms / 1000;
	tv.tv_usec = (vu->timeout_ms % 1000) * 1000;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		r = errno;
		close(fd);
		return err_sys(e, r, "vhost-user: socket timeouts");
	}
	vu->fd = fd;
	return 0;
}

void vhost_user_close(struct vhost_user *vu)
{
	if (vu->fd >= 0)
		close(vu->fd);
	vu->fd = -1;
}

/* Send one message with up to VHOST_USER_MAX_REGIONS descriptors. */
static int send_msg(struct vhost_user *vu, uint32_t req, uint32_t flags, const void *payload,
                    uint32_t size, const int *fds, unsigned int nfds, struct err *e)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_REGIONS)];
		struct cmsghdr align;
	} ctl;
	struct hdr h = {.req = req, .flags = VHOST_USER_VERSION | flags, .size = size};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, size}};
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = size ? 2 : 1};
	ssize_t n;

	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(vu->fd, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return dead(vu, err_sys(e, errno, "vhost-user backend: sending %s",
		                        vhost_user_req_name(req)));
	if ((size_t)n != sizeof(h) + size)
		return dead(vu, err_set(e, EPIPE, "vhost-user backend: %s: sent %zd of %zu bytes",
		                        vhost_user_req_name(req), n, sizeof(h) + size));
	return 0;
}

/* Read exactly len bytes (the socket's timeout bounds each wait). */
static int recv_all(struct vhost_user *vu, uint8_t *buf, size_t len, uint32_t req, struct err *e)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(vu->fd, buf + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return dead(vu, err_set(e, ETIMEDOUT,
			                        "vhost-user backend: no reply to %s within %d ms",
			                        vhost_user_req_name(req), vu->timeout_ms));
		if (n < 0)
			return dead(vu, err_sys(e, errno, "vhost-user backend: reply to %s",
			                        vhost_user_req_name(req)));
		if (n == 0)
			return dead(
			    vu, err_set(e, EPIPE,
			                "vhost-user backend: closed the connection (reply to %s)",
			                vhost_user_req_name(req)));
		got += (size_t)n;
	}
	return 0;
}

/* Receive and check the reply to `req`; its payload (want bytes) into out. */
static int recv_reply(struct vhost_user *vu, uint32_t req, void *out, uint32_t want, struct err *e)
{
	uint8_t msg[VHOST_USER_HDR_SIZE + VHOST_USER_MAX_PAYLOAD];
	const uint8_t *p;
	struct hdr h;
	int r;

	r = recv_all(vu, msg, sizeof(h), req, e);
	if (r < 0)
		return r;
	memcpy(&h, msg, sizeof(h));
	if (h.size > VHOST_USER_MAX_PAYLOAD)
		return dead(vu,
		            err_set(e, EPROTO,
		                    "vhost-user backend: %s: reply payload of %u bytes, want %u",
		                    vhost_user_req_name(req), h.size, want));
	r = recv_all(vu, msg + sizeof(h), h.size, req, e);
	if (r < 0)
		return r;
	r = vhost_user_check_reply(req, msg, sizeof(h) + h.size, want, &p, e);
	if (r < 0)
		return dead(vu, r);
	memcpy(out, p, want);
	return 0;
}

/*
 * One request: send it; then its reply (want > 0), or, with REPLY_ACK, the ack (a u64,
 * 0 for success).
 */
static int request(struct vhost_user *vu, uint32_t req, const void *payload, uint32_t size,
                   const int *fds, unsigned int nfds, void *out, uint32_t want, struct err *e)
{
	bool ack = !want && vu->reply_ack;
	uint64_t status = 0;
	int r;

	if (vu->dead || vu->fd < 0)
		return err_set(e, EPIPE, "vhost-user backend: %s: the backend failed before",
		               vhost_user_req_name(req));
	r = send_msg(vu, req, ack ? VHOST_USER_NEED_REPLY : 0, payload, size, fds, nfds, e);
	if (r < 0)
		return r;
	if (want)
		return recv_reply(vu, req, out, want, e);
	if (!ack)
		return 0;
	r = recv_reply(vu, req, &status, sizeof(status), e);
	if (r < 0)
		return r;
	if (status)
		return dead(vu, err_set(e, EIO, "vhost-user backend: %s refused (status %llu)",
		                        vhost_user_req_name(req), (unsigned long long)status));
	return 0;
}

static int get_u64(struct vhost_user *vu, uint32_t req, uint64_t *v, struct err *e)
{
	return request(vu, req, NULL, 0, NULL, 0, v, sizeof(*v), e);
}

static int set_u64(struct vhost_user *vu, uint32_t req, uint64_t v, struct err *e)
{
	return request(vu, req, &v, sizeof(v), NULL, 0, NULL, 0, e);
}

int vhost_user_handshake(struct vhost_user *vu, uint64_t want_protocol, uint64_t *features,
                         struct err *e)
{
	uint64_t pf = 0;
	int r;

	r = request(vu, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, NULL, 0, e);
	if (r == 0)
		r = get_u64(vu, VHOST_USER_GET_FEATURES, features, e);
	if (r < 0 || !(*features & 1ull << VHOST_USER_F_PROTOCOL_FEATURES))
		return r;
	r = get_u64(vu, VHOST_USER_GET_PROTOCOL_FEATURES, &pf, e);
	if (r < 0)
		return r;
	pf &= want_protocol;
	r = set_u64(vu, VHOST_USER_SET_PROTOCOL_FEATURES, pf, e);
	if (r < 0)
		return r;
	vu->acked_protocol = pf;
	/* From here on every message without a reply of its own is acked (vhost-user.rst,
	 * "REPLY_ACK"). */
	vu->reply_ack = pf & 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK;
	return 0;
}

int vhost_user_set_features(struct vhost_user *vu, uint64_t features, struct err *e)
{
	return set_u64(vu, VHOST_USER_SET_FEATURES, features, e);
}

int vhost_user_get_config(struct vhost_user *vu, uint32_t off, void *buf, uint32_t len,
                          struct err *e)
{
	uint8_t msg[VHOST_USER_MAX_PAYLOAD];
	struct config_hdr h = {.offset = off, .size = len, .flags = 0}, got;
	uint32_t size = (uint32_t)sizeof(h) + len;
	int r;

	if (len > sizeof(msg) - sizeof(h))
		return err_set(e, EINVAL, "vhost-user: GET_CONFIG of %u bytes", len);
	/* vhost-user.rst: the frontend sends the whole buffer; the reply has the same size. */
	memset(msg, 0, sizeof(msg));
	memcpy(msg, &h, sizeof(h));
	r = request(vu, VHOST_USER_GET_CONFIG, msg, size, NULL, 0, msg, size, e);
	if (r < 0)
		return r;
	memcpy(&got, msg, sizeof(got));
	if (got.offset != off || got.size != len)
		return dead(vu,
		            err_set(e, EPROTO,
		                    "vhost-user backend: GET_CONFIG answered offset %u size %u, "
		                    "asked %u and %u",
		                    got.offset, got.size, off, len));
	memcpy(buf, msg + sizeof(h), len);
	return 0;
}

int vhost_user_set_mem_table(struct vhost_user *vu, const struct vhost_user_region *r,
                             unsigned int n, struct err *e)
{
	struct mem_table t;
	int fds[VHOST_USER_MAX_REGIONS];

	if (n == 0 || n > VHOST_USER_MAX_REGIONS)
		return err_set(e, EINVAL, "vhost-user: %u memory regions", n);
	memset(&t, 0, sizeof(t));
	t.n = n;
	for (unsigned int i = 0; i < n; i++) {
		t.r[i] = (struct mem_region){r[i].gpa, r[i].size, r[i].hva, r[i].offset};
		fds[i] = r[i].fd;
	}
	/* The payload is the header and the regions in use (vhost-user.rst, "Multiple Memory
	 * Regions Description"). */
	return request(vu, VHOST_USER_SET_MEM_TABLE, &t,
	               (uint32_t)(8 + n * sizeof(struct mem_region)), fds, n, NULL, 0, e);
}

static int vring_state(struct vhost_user *vu, uint32_t req, unsigned int q, unsigned int num,
                       struct err *e)
{
	struct vring_state s = {q, num};

	return request(vu, req, &s, sizeof(s), NULL, 0, NULL, 0, e);
}

int vhost_user_set_vring_num(struct vhost_user *vu, unsigned int q, unsigned int num, struct err *e)
{
	return vring_state(vu, VHOST_USER_SET_VRING_NUM, q, num, e);
}

int vhost_user_set_vring_base(struct vhost_user *vu, unsigned int q, unsigned int base,
                              struct err *e)
{
	return vring_state(vu, VHOST_USER_SET_VRING_BASE, q, base, e);
}

int vhost_user_set_vring_enable(struct vhost_user *vu, unsigned int q, bool on, struct err *e)
{
	return vring_state(vu, VHOST_USER_SET_VRING_ENABLE, q, on, e);
}

int vhost_user_get_vring_base(struct vhost_user *vu, unsigned int q, uint32_t *base, struct err *e)
{
	struct vring_state s = {q, 0}, got;
	int r =
	    request(vu, VHOST_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &got, sizeof(got), e);

	if (r < 0)
		return r;
	if (got.index != q)
		return dead(vu, err_set(e, EPROTO,
		                        "vhost-user backend: GET_VRING_BASE answered for queue %u, "
		                        "asked %u",
		                        got.index, q));
	*base = got.num;
	return 0;
}

int vhost_user_set_vring_addr(struct vhost_user *vu, unsigned int q, uint64_t desc, uint64_t used,
                              uint64_t avail, struct err *e)
{
	struct vring_addr a = {.index = q, .desc = desc, .used = used, .avail = avail};

	return request(vu, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL, 0, e);
}

int vhost_user_set_vring_fd(struct vhost_user *vu, enum vhost_user_req req, unsigned int q, int fd,
                            struct err *e)
{
	uint64_t v = (q & 0xff) | (fd < 0 ? VHOST_USER_VRING_NOFD : 0);

	return request(vu, req, &v, sizeof(v), &fd, fd < 0 ? 0 : 1, NULL, 0, e);
}
