/* vsock.h - virtio-vsock (virtio 1.2 §5.10): guest AF_VSOCK streams to host Unix sockets. */
#ifndef EMBER_DEVICES_VIRTIO_VSOCK_H
#define EMBER_DEVICES_VIRTIO_VSOCK_H

/*
 * Firecracker's model (its docs/vsock.md), so the same host tools work:
 *
 *   host-initiated   a host program connects to the Unix socket `uds_path`
 *                    and writes "CONNECT <port>\n"; ember picks a host port
 *                    (from 1 << 30 up), sends OP_REQUEST to the guest's
 *                    <port>; on OP_RESPONSE it writes "OK <host port>\n" to
 *                    the program and the socket carries the stream; on OP_RST
 *                    (nobody listening) it closes the program's socket.
 *   guest-initiated  OP_REQUEST to host CID 2, port P: ember connects to the
 *                    Unix socket "<uds_path>_<P>"; OP_RESPONSE on success,
 *                    OP_RST if nobody listens there.
 *
 * Queues (§5.10.2): rx 0 (device to driver), tx 1, event 2.  Config (§5.10.4):
 * le64 guest_cid, read-only.  No device feature bit is offered: stream only
 * (§5.10.3 "If no feature bit is set, only stream socket type is supported");
 * ember offers VIRTIO_F_EVENT_IDX and VIRTIO_F_INDIRECT_DESC.  The event
 * queue's buffers are kept for the one event ember sends: a transport reset after
 * the VM is restored from a snapshot (virtio_vsock_transport_reset).
 *
 * Everything in a packet from the guest is validated (header §5.10.6, 44
 * bytes): a chain shorter than a header is dropped (it has no address to
 * answer); a bad type (§5.10.6.4 "A VIRTIO_VSOCK_OP_RST reply MUST be sent if
 * a packet is received with an unknown type value"), a wrong source or
 * destination CID, a len larger than the chain or than 64 KiB, an unknown op,
 * an op the connection's state does not allow, data beyond the credit ember
 * advertised, or a packet for no connection are answered with OP_RST (never
 * an RST for an RST), and the connection, if any, is closed.  Nothing a
 * guest sends can abort ember.
 *
 * Flow control (§5.10.6.3): ember never sends more payload than the guest's
 * buf_alloc - (bytes sent - guest fwd_cnt); when that is 0 it asks once with
 * OP_CREDIT_REQUEST and holds the host's bytes in the host socket until a
 * packet brings credit.  It advertises buf_alloc bytes per connection for
 * guest->host data it cannot write to the host socket at once, and sends
 * OP_CREDIT_UPDATE when the guest's view of that space falls under 64 KiB (or
 * on OP_CREDIT_REQUEST).
 *
 * Shutdown (§5.10.6.5): the guest's OP_SHUTDOWN SEND half-closes the host
 * socket (shutdown(SHUT_WR)) once buffered bytes are written; RECEIVE stops
 * reading the host socket; both: ember flushes and answers OP_RST (the clean
 * disconnect).  The host closing its write side maps to OP_SHUTDOWN SEND, a
 * full close to SEND|RECEIVE; the guest's OP_RST then ends the connection, or
 * ember sends one itself after conn_timeout_ms.  A host-initiated request the
 * guest does not answer, or a host client that sends no complete CONNECT line,
 * also ends after conn_timeout_ms.
 *
 * Threads and resources: host sockets are non-blocking, each watched on the
 * VMM evloop (edge-triggered) through its own evloop_watch; kicks, socket
 * events and the timeout timer run on the VMM thread; vdev.lock serialises
 * them with the transport's register accesses (a reset closes every
 * connection).  At most max_conns connections (accepted host clients
 * included), each buffering at most buf_alloc bytes; connection slots live in
 * one array for the device's life, so a stale socket event never touches freed
 * memory.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"
#include "util/evloop.h"
#include "util/ratelimit.h"
#include "virtio/virtio.h"

#define VIRTIO_VSOCK_QUEUE_SIZE 256
#define VIRTIO_VSOCK_RXQ        0
#define VIRTIO_VSOCK_TXQ        1
#define VIRTIO_VSOCK_EVQ        2

#define VSOCK_HOST_CID      2
#define VSOCK_HDR_SIZE      44           /* struct virtio_vsock_hdr, §5.10.6 */
#define VSOCK_MAX_PKT       (64u * 1024) /* payload per packet either way (Linux's limit) */
#define VSOCK_DEF_MAX_CONNS 1024
#define VSOCK_DEF_BUF_ALLOC (256u * 1024)
#define VSOCK_DEF_TIMEOUT   2000       /* ms (Firecracker's request and shutdown timeouts) */
#define VSOCK_LOCAL_PORT_LO (1u << 30) /* host ports of host-initiated connections */

/* §5.10.6 ops, type, shutdown flags. */
#define VSOCK_OP_REQUEST        1
#define VSOCK_OP_RESPONSE       2
#define VSOCK_OP_RST            3
#define VSOCK_OP_SHUTDOWN       4
#define VSOCK_OP_RW             5
#define VSOCK_OP_CREDIT_UPDATE  6
#define VSOCK_OP_CREDIT_REQUEST 7
#define VSOCK_TYPE_STREAM       1
#define VSOCK_SHUTDOWN_RCV      1u /* VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE (bit 0) */
#define VSOCK_SHUTDOWN_SEND     2u /* VIRTIO_VSOCK_SHUTDOWN_F_SEND (bit 1) */

struct virtio_vsock_opts {
	/* 3 .. 0xfffffffe (§5.10.4: 0, 1, 2 and 0xffffffff are reserved, upper 32 bits 0) */
	uint64_t guest_cid;
	const char *uds_path;     /* host socket; "<uds_path>_<port>" for guest-initiated */
	unsigned int max_conns;   /* 0: VSOCK_DEF_MAX_CONNS */
	uint32_t buf_alloc;       /* per-connection guest->host buffer; 0: VSOCK_DEF_BUF_ALLOC */
	uint32_t conn_timeout_ms; /* request, shutdown, CONNECT line; 0: VSOCK_DEF_TIMEOUT */
	const struct rl_clock *clock; /* NULL: monotonic (tests inject a fake one) */
};

struct vsock_conn; /* private: vsock_priv.h */
struct vsock_rst;

struct virtio_vsock {
	struct virtio_dev vdev; /* the transport drives this */
	const struct virtio_env *env;
	uint64_t guest_cid;
	uint8_t config[8]; /* le64 guest_cid */
	char *uds_path;
	uint32_t buf_alloc, timeout_ms;
	struct rl_clock clock;

	/* Host listener at uds_path; the socket file's identity, to unlink only ours. */
	int listen_fd;
	struct evloop_watch listen_watch;
	dev_t sock_dev;
	ino_t sock_ino;

	/* Timeouts: one timerfd armed for the earliest connection deadline. */
	int timer_fd;
	struct evloop_watch timer_watch;
	uint64_t timer_at; /* armed deadline (clock ns), 0: disarmed */

	/* Connections (all below under vdev.lock). */
	struct vsock_conn *conns; /* max_conns slots, stable for the device's life */
	unsigned int max_conns, nconns;
	int free_head; /* free slot list */
	int *hash;     /* (local_port, peer_port) -> slot chains */
	unsigned int hash_mask;
	int rx_head, rx_tail; /* connections with a packet for the guest, FIFO */
	uint32_t next_local_port;

	/* RSTs for packets that match no connection (bounded ring). */
	struct vsock_rst *rsts;
	unsigned int rst_head, rst_len;

	/* A popped rx buffer nothing could be written to yet; scratch tx chain. */
	struct virtq_chain rx_chain;
	bool rx_held;
	struct virtq_chain tx_chain;

	struct ratelimit host_rl; /* log limiter for host clients' mistakes */

	/* Statistics. */
	uint64_t rx_pkts, tx_pkts, rsts_sent, dropped, conns_opened;
};

/*
 * Will virtio_vsock_init() be able to listen on `path`?  Checks without changing anything:
 * its folder exists, and nothing but a stale socket is there (a server answering on it, or a
 * file that is not a socket, is refused).  0, or -errno with `e` filled.
 */
int virtio_vsock_check_path(const char *path, struct err *e);

/*
 * Set up the device (VIRTIO_ID_VSOCK, 3 queues, 8 bytes of config) and the
 * host side: create, bind and listen on o->uds_path (a stale socket file,
 * one nobody answers on, is replaced; a live one or a file that is not a
 * socket is refused), watched on env->loop.  -errno with `e` filled: bad CID,
 * path too long for "<uds_path>_<port>", socket in use, system failures.  On
 * failure nothing is left to undo.
 */
int virtio_vsock_init(struct virtio_vsock *s, const struct virtio_vsock_opts *o,
                      const struct virtio_env *env, struct err *e);

/* Close every connection and the listener, remove uds_path (if it is still ours). */
void virtio_vsock_destroy(struct virtio_vsock *s);

/*
 * After a restore (docs/snapshot.md), as Firecracker does: every host-side connection is
 * dropped and, when the driver is live, the guest is sent VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
 * (virtio 1.2 §5.10.6.6: "the driver ... will shut down established connections") in its
 * next event queue buffer, with the queue's interrupt.  Whether the event was sent: no
 * buffer posted, or one too short for the event (returned empty), is logged and not.  Takes
 * vdev.lock; a restored VM's vCPUs must have their interrupt state back already.
 */
bool virtio_vsock_transport_reset(struct virtio_vsock *s);

/* Live connections (accepted host clients waiting for CONNECT included).  Takes vdev.lock. */
unsigned int virtio_vsock_nconns(struct virtio_vsock *s);

#endif
