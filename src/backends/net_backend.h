/* net_backend.h - the host network backend interface of virtio-net (tap, slirp), and its header. */
#ifndef EMBER_BACKENDS_NET_BACKEND_H
#define EMBER_BACKENDS_NET_BACKEND_H

/*
 * A network backend moves whole Ethernet frames between the VMM and the host.
 * The virtio-net device (devices/virtio/net.h) only sees this interface, so it
 * never knows whether frames go to a tap interface or to libslirp.
 *
 * Frames travel with or without the 12-byte virtio_net_hdr_v1 in front
 * (`hdr_len`): tap speaks it natively (IFF_VNET_HDR, TUNSETVNETHDRSZ 12), so
 * the device passes guest headers straight through; slirp wants bare,
 * fully checksummed frames (`hdr_len` 0), so the device strips the header on
 * transmit and writes a plain one (no offloads) on receive.
 *
 * Threading: every op runs on the VMM thread (the evloop's), the device's
 * lock held.  `rx_fd` is level-triggered: readable while recv() may return a
 * frame.  The device watches it on the VMM loop only while the guest has
 * receive buffers, so frames wait in the backend (tap queue, slirp's bounded
 * queue) when the guest is slow.
 */

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* virtio-net feature bits (virtio 1.2 §5.1.3). */
#define VIRTIO_NET_F_CSUM       0 /* device handles partially checksummed tx */
#define VIRTIO_NET_F_GUEST_CSUM 1 /* driver handles partially checksummed rx */
#define VIRTIO_NET_F_MTU        3
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN  9
#define VIRTIO_NET_F_GUEST_UFO  10
#define VIRTIO_NET_F_HOST_TSO4  11
#define VIRTIO_NET_F_HOST_TSO6  12
#define VIRTIO_NET_F_HOST_ECN   13
#define VIRTIO_NET_F_HOST_UFO   14
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16

/* virtio_net_hdr flags and gso_type (§5.1.6). */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE     0
#define VIRTIO_NET_HDR_GSO_TCPV4    1
#define VIRTIO_NET_HDR_GSO_UDP      3
#define VIRTIO_NET_HDR_GSO_TCPV6    4
#define VIRTIO_NET_HDR_GSO_ECN      0x80

/*
 * struct virtio_net_hdr_v1 (§5.1.6): with VIRTIO_F_VERSION_1, which ember
 * always negotiates, num_buffers is always present, so the header is 12
 * bytes on both queues.  Little-endian (x86 only: host order).
 */
struct vnet_hdr_v1 {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};

#define VNET_HDR_LEN             12u
#define VNET_HDR_NUM_BUFFERS_OFF 10u

/*
 * Largest frame either direction, header included: 65562 bytes, the
 * "65562 bytes" of §5.1.6.3.1 (a 64 KiB GSO packet plus Ethernet, VLAN and
 * virtio-net headers); Linux's big-packet buffers and Firecracker use the same.
 */
#define NET_MAX_PACKET 65562u

struct net_backend;

struct net_backend_ops {
	/*
	 * Send one frame: `hdr_len` header bytes then the Ethernet frame, spread
	 * over iov (at most IOV_MAX entries).  Returns the bytes taken or -errno
	 * (-EAGAIN: the host cannot take it now; the caller drops the frame).
	 */
	ssize_t (*send)(struct net_backend *b, const struct iovec *iov, int iovcnt);
	/*
	 * Receive one frame (header first when `hdr_len`) into iov.  Returns its
	 * length, or -EAGAIN when none is waiting, or another -errno.  A frame
	 * longer than iov is truncated to it (callers pass NET_MAX_PACKET bytes).
	 */
	ssize_t (*recv)(struct net_backend *b, const struct iovec *iov, int iovcnt);
	/*
	 * Apply the offloads the driver accepted: `features` are the negotiated
	 * VIRTIO_NET_F_* bits; the backend programs what the host may hand it
	 * (tap: TUNSETOFFLOAD from the GUEST_* bits).  -errno.
	 */
	int (*set_offloads)(struct net_backend *b, uint64_t features);
	/* Close and free the backend (the device calls this for backends it opened). */
	void (*destroy)(struct net_backend *b);
};

struct net_backend {
	const struct net_backend_ops *ops;
	const char *kind;     /* "tap", "slirp": for logs */
	int rx_fd;            /* readable (level) while recv may return a frame */
	unsigned int hdr_len; /* VNET_HDR_LEN (header passed through) or 0 (bare frames) */
	uint64_t offloads;    /* VIRTIO_NET_F_* offload bits the backend can honour */
};

#endif
