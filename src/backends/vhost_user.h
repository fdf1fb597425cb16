/* vhost_user.h - the frontend side of the vhost-user protocol: a backend process over a Unix
 * socket. */
#ifndef EMBER_BACKENDS_VHOST_USER_H
#define EMBER_BACKENDS_VHOST_USER_H

/*
 * vhost-user (QEMU's docs/interop/vhost-user.rst) moves a virtio device's data path into
 * another process, the backend: ember (the frontend) shares the guest's RAM with it
 * (SET_MEM_TABLE: one file descriptor per region, passed with SCM_RIGHTS), tells it where
 * each queue's rings are (SET_VRING_NUM/ADDR/BASE) and hands it two eventfds per queue:
 * "kick" (the driver made buffers available) and "call" (the backend used some).
 *
 * Every message is a 12-byte header (request, flags, payload size; native endian) and a
 * payload.  Every reply is checked (vhost_user_check_reply): its request must be the one
 * sent, its flags version 1 with the reply bit, its size the one the request calls for.
 * With REPLY_ACK negotiated every message that has no reply of its own asks for an ack
 * (NEED_REPLY) and a non-zero ack is the backend's refusal.
 *
 * A backend that does not answer within VHOST_USER_TIMEOUT_MS, answers wrongly, closes the
 * socket or refuses is "dead": every later call fails at once with -EPIPE.  Nothing here
 * aborts or blocks for longer than the timeout; writes never raise SIGPIPE.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define VHOST_USER_TIMEOUT_MS  3000
#define VHOST_USER_MAX_REGIONS 8 /* without CONFIGURE_MEM_SLOTS */

/* Requests (vhost-user.rst, "Front-end message types"). */
enum vhost_user_req {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_GET_CONFIG = 24,
};

#define VHOST_USER_VERSION      0x1
#define VHOST_USER_VERSION_MASK 0x3
#define VHOST_USER_REPLY_MASK   (1u << 2)
#define VHOST_USER_NEED_REPLY   (1u << 3)
#define VHOST_USER_HDR_SIZE     12u
#define VHOST_USER_MAX_PAYLOAD  256u /* the largest ember sends or accepts */
#define VHOST_USER_VRING_NOFD   (1ull << 8)

/* The virtio feature bit that says the backend speaks protocol features (not virtio's). */
#define VHOST_USER_F_PROTOCOL_FEATURES 30
/* Protocol features (vhost-user.rst, "Protocol features"). */
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG    9

struct vhost_user {
	int fd;                  /* the connection; -1 when closed */
	bool dead;               /* the backend failed once: every call returns -EPIPE */
	bool reply_ack;          /* REPLY_ACK negotiated */
	int timeout_ms;          /* per reply */
	uint64_t acked_protocol; /* protocol features both sides have */
};

/* One guest RAM region as SET_MEM_TABLE describes it. */
struct vhost_user_region {
	uint64_t gpa, size;
	uint64_t hva;    /* where ember maps it (the backend translates ring addresses with it) */
	uint64_t offset; /* of gpa in fd */
	int fd;          /* shareable: a memfd mapped MAP_SHARED */
};

/*
 * Connect to the backend's socket `path` (blocking, close-on-exec).  -errno with the
 * reason in `e`: "Failed to connect to UDS Unix stream: <strerror> (os error N)", as
 * Firecracker words it.
 */
int vhost_user_connect(struct vhost_user *vu, const char *path, struct err *e);
void vhost_user_close(struct vhost_user *vu);

/*
 * The handshake (Firecracker's order): SET_OWNER, GET_FEATURES; if the backend offers
 * VHOST_USER_F_PROTOCOL_FEATURES: GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES with what
 * both have of `want_protocol`.  *features gets the backend's virtio features.
 */
int vhost_user_handshake(struct vhost_user *vu, uint64_t want_protocol, uint64_t *features,
                         struct err *e);

int vhost_user_set_features(struct vhost_user *vu, uint64_t features, struct err *e);
/* GET_CONFIG: `len` bytes of the device's configuration space from `off` (needs CONFIG). */
int vhost_user_get_config(struct vhost_user *vu, uint32_t off, void *buf, uint32_t len,
                          struct err *e);
int vhost_user_set_mem_table(struct vhost_user *vu, const struct vhost_user_region *r,
                             unsigned int n, struct err *e);
int vhost_user_set_vring_num(struct vhost_user *vu, unsigned int q, unsigned int num,
                             struct err *e);
/* Ring addresses are ember's host addresses (the backend maps them through the table). */
int vhost_user_set_vring_addr(struct vhost_user *vu, unsigned int q, uint64_t desc, uint64_t used,
                              uint64_t avail, struct err *e);
int vhost_user_set_vring_base(struct vhost_user *vu, unsigned int q, unsigned int base,
                              struct err *e);
/* Stops the ring in the backend; *base: where it was in the avail ring. */
int vhost_user_get_vring_base(struct vhost_user *vu, unsigned int q, uint32_t *base, struct err *e);
/* SET_VRING_KICK or SET_VRING_CALL (req) with eventfd `fd`. */
int vhost_user_set_vring_fd(struct vhost_user *vu, enum vhost_user_req req, unsigned int q, int fd,
                            struct err *e);
int vhost_user_set_vring_enable(struct vhost_user *vu, unsigned int q, bool on, struct err *e);

/*
 * Check a reply to request `req` (no I/O: the parser the fuzz target feeds).  `msg` holds
 * `len` bytes: the header and its payload.  `want` is the payload size the request calls
 * for.  0 and the payload in *payload, or -EPROTO with the reason in `e`.
 */
int vhost_user_check_reply(uint32_t req, const uint8_t *msg, size_t len, uint32_t want,
                           const uint8_t **payload, struct err *e);

/* The name of a request, for messages ("GET_FEATURES"). */
const char *vhost_user_req_name(uint32_t req);

#endif
