/* fuzz_vhost_user.c - libFuzzer target: a vhost-user backend's replies, as ember's frontend reads
 * them. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/vhost_user.h"

/*
 * Input: the whole byte stream a backend sends.  It is written into one end of a socket
 * pair whose write side is then shut, so the frontend on the other end reads exactly these
 * bytes and then end-of-file (never a wait).  The frontend runs what a vhost-user drive
 * does: the handshake (SET_OWNER, GET_FEATURES, GET/SET_PROTOCOL_FEATURES), GET_CONFIG,
 * SET_FEATURES, SET_MEM_TABLE (a descriptor with SCM_RIGHTS), SET_VRING_NUM/ADDR/BASE,
 * SET_VRING_CALL/KICK, SET_VRING_ENABLE and GET_VRING_BASE, stopping at the first failure.
 * Invariants: no crash or leak; a failure leaves the connection dead and every later call
 * fails at once; a success returns only what was checked (GET_CONFIG's offset and size).
 * The same bytes also go to vhost_user_check_reply() for every request.
 */

static const uint32_t reqs[] = {
    VHOST_USER_GET_FEATURES,
    VHOST_USER_SET_FEATURES,
    VHOST_USER_SET_OWNER,
    VHOST_USER_SET_MEM_TABLE,
    VHOST_USER_SET_VRING_NUM,
    VHOST_USER_SET_VRING_ADDR,
    VHOST_USER_SET_VRING_BASE,
    VHOST_USER_GET_VRING_BASE,
    VHOST_USER_SET_VRING_KICK,
    VHOST_USER_SET_VRING_CALL,
    VHOST_USER_GET_PROTOCOL_FEATURES,
    VHOST_USER_SET_PROTOCOL_FEATURES,
    VHOST_USER_SET_VRING_ENABLE,
    VHOST_USER_GET_CONFIG,
};

static int run(struct vhost_user *vu, int fd)
{
	struct vhost_user_region reg = {.gpa = 0, .size = 1 << 20, .hva = 0x10000, .fd = fd};
	uint64_t features = 0;
	uint8_t cfg[60];
	uint32_t base = 0;
	struct err e = {0};
	int r;

	r = vhost_user_handshake(
	    vu, 1ull << VHOST_USER_PROTOCOL_F_CONFIG | 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK,
	    &features, &e);
	if (r == 0)
		r = vhost_user_get_config(vu, 0, cfg, sizeof(cfg), &e);
	if (r == 0)
		r = vhost_user_set_features(vu, features, &e);
	if (r == 0)
		r = vhost_user_set_mem_table(vu, &reg, 1, &e);
	if (r == 0)
		r = vhost_user_set_vring_num(vu, 0, 256, &e);
	if (r == 0)
		r = vhost_user_set_vring_addr(vu, 0, 0x10000, 0x12000, 0x11000, &e);
	if (r == 0)
		r = vhost_user_set_vring_base(vu, 0, 0, &e);
	if (r == 0)
		r = vhost_user_set_vring_fd(vu, VHOST_USER_SET_VRING_CALL, 0, fd, &e);
	if (r == 0)
		r = vhost_user_set_vring_fd(vu, VHOST_USER_SET_VRING_KICK, 0, -1, &e);
	if (r == 0)
		r = vhost_user_set_vring_enable(vu, 0, true, &e);
	if (r == 0)
		r = vhost_user_get_vring_base(vu, 0, &base, &e);
	if (r < 0) {
		assert(e.msg[0]);
		assert(vu->dead || vu->fd < 0);
		/* Dead stays dead: nothing is sent or read any more. */
		assert(vhost_user_set_vring_num(vu, 0, 256, &e) == -EPIPE);
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhost_user vu = {.fd = -1, .timeout_ms = 1000};
	const uint8_t *p;
	int sv[2], pfd[2];
	struct err e;

	for (unsigned int i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		memset(&e, 0, sizeof(e));
		if (vhost_user_check_reply(reqs[i], data, size, 8, &p, &e) == 0)
			assert(p == data + VHOST_USER_HDR_SIZE && size == VHOST_USER_HDR_SIZE + 8);
		else
			assert(!p && e.msg[0]);
	}
	if (size > 64 * 1024)
		return 0; /* more than a socket buffer holds without a reader */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (pipe(pfd) < 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	if (size && write(sv[1], data, size) != (ssize_t)size)
		goto out;
	shutdown(sv[1], SHUT_WR);
	vu.fd = sv[0];
	run(&vu, pfd[0]);
out:
	if (vu.fd < 0)
		close(sv[0]);
	else
		vhost_user_close(&vu);
	close(sv[1]);
	close(pfd[0]);
	close(pfd[1]);
	return 0;
}
