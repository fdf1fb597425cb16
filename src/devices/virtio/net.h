/* net.h - virtio-net (virtio 1.2 §5.1): one rx/tx queue pair on a tap or slirp backend. */
#ifndef EMBER_DEVICES_VIRTIO_NET_H
#define EMBER_DEVICES_VIRTIO_NET_H

/*
 * Queues (§5.1.2): receiveq1 = 0, transmitq1 = 1, VIRTQ_MAX_SIZE entries
 * each; no control queue (VIRTIO_NET_F_CTRL_VQ is not offered, so no MQ,
 * no RX filtering: the device passes every frame, like Firecracker).
 *
 * Features offered (§5.1.3): MAC, STATUS, MRG_RXBUF, MTU (when opts.mtu),
 * VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VERSION_1 (core), and the
 * backend's offloads: a tap whose kernel accepts them gets CSUM, GUEST_CSUM,
 * GUEST_TSO4/6, GUEST_ECN, HOST_TSO4/6, HOST_ECN (backends/tap.h); slirp
 * gets none.  At DRIVER_OK the negotiated GUEST_* bits program the tap
 * (TUNSETOFFLOAD), so the kernel only hands over what the driver can take.
 *
 * Configuration space (§5.1.4), 12 bytes, read-only: mac, status
 * (VIRTIO_NET_S_LINK_UP), max_virtqueue_pairs = 1, mtu.  Writes are ignored.
 * With F_MTU negotiated, received non-GSO frames longer than mtu + 18
 * (Ethernet + VLAN headers) are dropped (§5.1.4.1: the device "MUST NOT pass"
 * them); matching the host side's MTU is the user's job.
 *
 * Every packet on both queues starts with the 12-byte virtio_net_hdr_v1
 * (§5.1.6; VERSION_1 makes num_buffers always present).
 *
 * Transmit (§5.1.6.2): on a kick, pop each chain; its device-readable part
 * is header + frame.  A tap gets it as is (writev, header included); slirp
 * gets the frame without the header.  A chain whose readable part is
 * shorter than the header plus an Ethernet header (26 bytes) or longer than
 * NET_MAX_PACKET is dropped (returned
 * with used length 0, counted, logged at a limited rate): a bad *request*
 * never sets NEEDS_RESET; a malformed *chain* (virtq_pop -EINVAL) does.
 * Every tx chain is returned with used length 0 (the device writes nothing).
 * At most NET_TX_BUDGET chains per run; the rest are taken on the next loop
 * turn (a private eventfd), so one busy NIC cannot starve the VMM thread.
 *
 * Receive (§5.1.6.3, §5.1.6.4): the device pops receive chains into a small
 * stash and reads one frame at a time from the backend straight into their
 * writable segments (readv for tap), the part that does not fit landing in a
 * host bounce buffer.  Without MRG_RXBUF one chain carries one frame; a frame
 * longer than that chain is dropped and counted (§5.1.6.3.1 tells drivers to
 * post 65562-byte buffers with GUEST_TSO, 1526 bytes otherwise).  With
 * MRG_RXBUF a frame spreads over as many chains as it needs, each returned
 * with the bytes written into it, and num_buffers in the first one says how
 * many (§5.1.6.4); if the queue runs dry mid-frame, the frame waits in the
 * bounce buffer until the driver adds buffers (dropped only when even every
 * buffer the ring can hold would not take it).  Receive chains smaller than
 * the header are returned unused (length 0) and counted.  The device writes
 * num_buffers itself (tun leaves those 2 bytes alone); for slirp it writes
 * the whole header (no offload flags).  Without GUEST_CSUM the device
 * clears the header's flags (1.2 §5.1.6.4.1: "MUST set flags to zero"; tun
 * may set DATA_VALID, which a 2024 erratum allows, but 1.2 drivers may not
 * expect it).
 *
 * Rate limiting (Firecracker's rx_rate_limiter and tx_rate_limiter;
 * util/ratelimit.h): every frame costs one op and its bytes as they cross
 * the queue, the 12-byte virtio-net header included (as in Firecracker).
 * Transmit: the charge is taken after the size checks (a dropped frame costs
 * nothing) and before the frame goes to the backend; when refused, the chain
 * goes back to the ring (virtq_unpop: nothing lost or reordered), transmitq
 * kicks are suppressed and transmission stops until the transmit limiter's
 * timer fires on the VMM evloop.  Receive: a frame is read from the backend
 * into the stashed buffers as usual and charged before it is returned to the
 * driver; when refused, it is held in the bounce buffer as the pending frame
 * (never dropped for the limiter), the backend's fd is not watched, and the
 * receive limiter's timer delivers it and resumes.  While a limiter is
 * blocked, kicks and wake-ups of its direction are only counted
 * (tx/rx_rate_limiter_throttled).  Unlimited directions have no timer and no
 * watch and pay one branch per frame.  A reset keeps the limiters' state.
 *
 * MMDS (mmds/stack.h; opts.mmds): before a transmitted frame goes to the backend, its
 * first bytes are looked at; an ARP request for or an IPv4 packet to the MMDS address is
 * copied out (at most MMDS_FRAME_MAX bytes, NEEDS_CSUM completed there) and answered by the
 * interface's MMDS stack instead, after the transmit limiter's charge.  The stack's frames
 * for the guest take the receive path's pending slot (rx_bounce, a plain header) ahead of
 * the backend's, so they wait for receive buffers like any frame and are never dropped for
 * lack of them.
 *
 * Flow control: while the device holds receive buffers, it watches the
 * backend's rx fd on the VMM evloop and asks the driver not to kick
 * receiveq; when it runs out, it stops watching (frames wait in the tap's
 * queue or in slirp's bounded queue) and enables kicks; the next receiveq
 * kick resumes it.
 *
 * Threads and locking (virtio.h): queue work, the backend and its fds run on
 * the VMM thread under vdev.lock; activate/reset run on vCPU threads (status
 * writes) under vdev.lock and only change watches and state, never call the
 * backend's send/recv.  Interrupts are sent after the lock is dropped.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "backends/net_backend.h"
#include "backends/slirp.h"
#include "mmds/stack.h"
#include "util/err.h"
#include "util/evloop.h"
#include "util/ratelimit.h"
#include "virtio/virtio.h"

#define VIRTIO_NET_RXQ        0
#define VIRTIO_NET_TXQ        1
#define VIRTIO_NET_QUEUE_SIZE VIRTQ_MAX_SIZE

#define VIRTIO_NET_S_LINK_UP   1
#define VIRTIO_NET_CONFIG_SIZE 12 /* mac[6], status, max_virtqueue_pairs, mtu */

#define NET_RX_SEGS   1023 /* stashed receive segments; + the bounce buffer = IOV_MAX */
#define NET_TX_BUDGET 256  /* tx chains per run before yielding the VMM thread */
#define NET_RX_BUDGET 256  /* rx frames per run */

enum virtio_net_backend_kind {
	VIRTIO_NET_BACKEND_TAP,
	VIRTIO_NET_BACKEND_SLIRP,
	VIRTIO_NET_BACKEND_CUSTOM, /* a caller-owned backend: tests, fuzzers */
};

struct virtio_net_opts {
	const char *id; /* "net0": names logs; NULL: "net" */
	enum virtio_net_backend_kind backend;
	const char *tap_name;        /* TAP: interface to open or create */
	struct net_slirp_opts slirp; /* SLIRP */
	struct net_backend *custom;  /* CUSTOM: not owned, must outlive the device */
	bool has_mac;                /* false: the default MAC below */
	uint8_t mac[6];
	unsigned int
	    index;    /* NIC number: default MAC 06:00:AC:10:00:(index+2), Firecracker style */
	uint16_t mtu; /* 0: VIRTIO_NET_F_MTU not offered; else 68..65535 */
	struct rate_limiter_cfg rx_rate_limiter; /* zeroed: unlimited */
	struct rate_limiter_cfg tx_rate_limiter; /* zeroed: unlimited */
	const struct rl_clock *clock;            /* NULL: monotonic (tests inject a fake one) */
	struct mmds *mmds;  /* answer MMDS on this NIC (mmds/stack.h; borrowed), or NULL */
	uint32_t mmds_ipv4; /* MMDS's address, host order */
};

struct virtio_net_stats {
	uint64_t rx_frames, rx_bytes; /* delivered to the guest (bytes without the header) */
	uint64_t rx_dropped;          /* frames lost: too big for the buffers, runts */
	uint64_t rx_errors;           /* backend recv failures */
	uint64_t rx_bad_buffers;      /* receive chains returned unused */
	uint64_t tx_frames, tx_bytes; /* handed to the backend */
	uint64_t tx_dropped;          /* bad size, or the backend had no room (-EAGAIN) */
	uint64_t tx_errors;           /* backend send failures (e.g. tun refusing a bad header) */
	uint64_t
	    tx_rate_limiter_throttled; /* frames refused + transmit runs skipped while blocked */
	uint64_t rx_rate_limiter_throttled; /* frames held + receive runs skipped while blocked */
	uint64_t tx_mmds_frames;            /* transmitted frames MMDS took (never the backend's) */
	uint64_t rx_mmds_frames;            /* MMDS's frames delivered to the guest */
};

/* A popped receive chain in the stash; its writable segments are in rx_seg order. */
struct net_rx_buf {
	uint16_t head;
	uint16_t nseg;
	uint32_t cap; /* in_len */
};

struct virtio_net {
	struct virtio_dev vdev; /* the transport drives this */
	char name[48];
	struct net_backend *be;
	bool own_be;
	uint8_t mac[6];
	uint16_t mtu;
	struct ratelimit rl;

	/* Everything below: vdev.lock. */
	bool mrg;                 /* MRG_RXBUF negotiated (fixed at DRIVER_OK) */
	bool guest_csum;          /* GUEST_CSUM negotiated (fixed at DRIVER_OK) */
	bool mtu_neg;             /* VIRTIO_NET_F_MTU negotiated: longer rx frames dropped */
	struct evloop_watch rx_w; /* be->rx_fd */
	bool rx_watched;
	bool rx_backend_err; /* recv failed: unwatch until the next rx kick */
	struct net_rx_buf rxb[VIRTIO_NET_QUEUE_SIZE];
	unsigned int nrxb;
	struct iovec rx_seg[NET_RX_SEGS];
	unsigned int nrx_seg;
	uint64_t rx_cap; /* sum of rxb[].cap */
	struct iovec rx_iov[NET_RX_SEGS + 1];
	uint8_t *rx_bounce;  /* NET_MAX_PACKET bytes */
	uint32_t rx_pending; /* a frame (header included) waiting in rx_bounce; 0: none */

	struct iovec tx_iov[VIRTQ_MAX_SEGS];
	struct virtq_chain chain; /* scratch for virtq_pop */

	int resched_fd; /* eventfd: "run the queues again" on the VMM thread */
	struct evloop_watch resched_w;
	bool resched_watched;

	struct rl_watched rx_limiter, tx_limiter; /* rate limiters and their timer watches */

	struct mmds_stack *mmds; /* MMDS's frames (mmds/stack.h), or NULL; vdev.lock */
	uint8_t *mmds_buf;       /* MMDS_FRAME_MAX bytes: a transmitted frame, linear */

	struct virtio_net_stats st;
};

/*
 * Set up the device: open the backend (tap or slirp on env->loop; or take
 * opts->custom), build the feature set from it, register the device with
 * the virtio core (VIRTIO_ID_NET, 2 queues).  The transport then attaches
 * to n->vdev.  env->loop is required.  -errno with `e` filled (the tap's
 * errors are spelled out in backends/tap.h; an mtu below 68; an invalid
 * rate limiter); nothing is left to undo.
 */
int virtio_net_init(struct virtio_net *n, const struct virtio_net_opts *o,
                    const struct virtio_env *env, struct err *e);

/* Undo virtio_net_init (after the transport has detached; VMM thread or loop stopped). */
void virtio_net_destroy(struct virtio_net *n);

/*
 * Replace the receive and/or transmit rate limiter (the API's PATCH
 * /network-interfaces): NULL leaves that direction's limiter as it is; a
 * zeroed cfg makes it unlimited.  New buckets start full; timer watches are
 * added or removed as needed; a direction that was throttled resumes at once
 * under the new limits.  All or nothing: -errno with `e` naming the NIC and
 * direction (invalid bucket, timerfd or evloop failure), and both old
 * limiters stay.  Call on the VMM thread, without vdev.lock.
 */
int virtio_net_set_rate_limiters(struct virtio_net *n, const struct rate_limiter_cfg *rx,
                                 const struct rate_limiter_cfg *tx, struct err *e);

/* The default MAC of NIC number `index`: 06:00:AC:10:(index+2)>>8:(index+2)&0xff. */
void virtio_net_default_mac(unsigned int index, uint8_t mac[6]);

#endif
