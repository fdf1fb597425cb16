/* vhost_blk.h - a vhost-user block device: virtio-blk whose requests another process serves. */
#ifndef EMBER_DEVICES_VIRTIO_VHOST_BLK_H
#define EMBER_DEVICES_VIRTIO_VHOST_BLK_H

/*
 * Firecracker's vhost-user block drive (PUT /drives/{id} with "socket"): the guest sees a
 * virtio-blk device (virtio 1.2 §5.2); a backend process (qemu-storage-daemon, SPDK, ...)
 * serves its queue through the vhost-user protocol (backends/vhost_user.h).  ember keeps
 * the virtio transport, feature negotiation and status machine; the backend reads the
 * rings and the buffers straight from the guest's RAM, which ember shares with it (the VM's
 * RAM is a memfd mapped MAP_SHARED when a vhost-user drive is configured).
 *
 * At init (InstanceStart or a hot plug) ember connects, takes ownership (SET_OWNER), reads
 * the backend's features, negotiates protocol features (CONFIG, REPLY_ACK) and reads the
 * configuration space (GET_CONFIG, 60 bytes: the capacity, seg_max, ...).  The guest is
 * offered what the backend has of VERSION_1, RING_EVENT_IDX, INDIRECT_DESC, SIZE_MAX,
 * SEG_MAX, BLK_SIZE, TOPOLOGY and RO, and FLUSH unless the drive's cache_type is "Unsafe"
 * (Firecracker offers FLUSH only for "Writeback" the same way).  The backend must offer
 * VERSION_1 and CONFIG.
 *
 * At DRIVER_OK (ops->activate, vCPU thread, vdev.lock held): SET_FEATURES with the driver's
 * features, SET_MEM_TABLE with the RAM regions, and per ready queue SET_VRING_NUM, ADDR
 * (ember's host addresses of the rings), BASE, CALL, KICK and ENABLE.  At a reset or
 * teardown: GET_VRING_BASE per started queue, which stops it in the backend.
 *
 * Kicks go from KVM to the backend: its kick fd is the queue's eventfd that KVM's ioeventfd
 * writes, handed over by the transport (tops->kick_handoff), which stops reading it until a
 * reset gives it back; a kick ember read just before reaches ops->queue_notify and is
 * passed on.  A transport without the hand-off: the backend gets ember's own kick_fd, which
 * ops->queue_notify writes.  Used-buffer notifications travel through ember's VMM thread,
 * so that the transport stays in charge of them (MSI-X masking and the pending bits,
 * virtio-mmio's interrupt status register): the backend's writes to the queue's "call"
 * eventfd are watched on the loop and become the transport's used-buffer notification.
 *
 * A backend that fails a request, times out (VHOST_USER_TIMEOUT_MS), answers wrongly or
 * closes its socket is dead: the device goes NEEDS_RESET (logged) and stays so; ember carries
 * on.  The guest's requests the backend had are lost with it.
 *
 * Not supported: snapshots (the registry's nosave), reconnecting to a restarted backend,
 * multiple queues (VIRTIO_BLK_F_MQ), CONFIG_WCE.
 */

#include <stdbool.h>
#include <stdint.h>

#include "backends/vhost_user.h"
#include "util/err.h"
#include "virtio/virtio.h"

#define VHOST_BLK_CONFIG_SIZE 60 /* struct virtio_blk_config up to write_zeroes_may_unmap */
#define VHOST_BLK_QUEUE_SIZE  256

struct vhost_blk_opts {
	const char *socket;   /* the backend's Unix socket */
	const char *drive_id; /* for logs */
	bool cache_unsafe;    /* no VIRTIO_BLK_F_FLUSH */
	/* The guest's RAM as the backend maps it (copied). */
	const struct vhost_user_region *regions;
	unsigned int nregions;
};

struct vhost_blk {
	struct virtio_dev vdev;
	struct vhost_user vu;
	char name[96];
	uint64_t backend_features;
	uint8_t config[VHOST_BLK_CONFIG_SIZE];
	struct vhost_user_region regions[VHOST_USER_MAX_REGIONS];
	unsigned int nregions;
	int kick_fd; /* ember's own eventfd, for a transport without kick_handoff */
	/* What the backend reads its kicks from (vdev.lock): the transport's queue eventfd,
	 * which KVM's ioeventfd writes (kick_taken), else kick_fd. */
	int backend_kick_fd;
	bool kick_taken;
	struct evloop_watch call_w; /* eventfd: the backend writes, ember's loop reads */
	struct evloop_watch hup_w;  /* the socket: the backend going away */
	bool call_watched, hup_watched;
	bool started; /* the backend has the queue (SET_VRING_KICK sent, no GET_VRING_BASE yet) */
	/* Counters (vdev.lock): kicks passed on, used-buffer notifications from the backend. */
	uint64_t kicks, calls;
};

/*
 * Connect to the backend and set the device up.  -errno with the reason in `e`, prefixed
 * as Firecracker's errors are ("Unable to create the virtio block device: Vhost user
 * backend error: ..."); nothing is left open then.
 */
int vhost_blk_init(struct vhost_blk *b, const struct vhost_blk_opts *o,
                   const struct virtio_env *env, struct err *e);
/*
 * Read the configuration space again (GET_CONFIG; the backend's disk was resized) and send
 * the guest a configuration-change notification.  Any thread but a vCPU's.  -errno with the
 * reason; a backend failing here is dead (NEEDS_RESET).
 */
int vhost_blk_update_config(struct vhost_blk *b, struct err *e);
/* Stop the backend's queue (GET_VRING_BASE), close everything.  VMM thread. */
void vhost_blk_destroy(struct vhost_blk *b);

#endif
