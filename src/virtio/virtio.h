/* virtio.h - the transport-agnostic virtio device: features, status machine, queues, config. */
#ifndef EMBER_VIRTIO_VIRTIO_H
#define EMBER_VIRTIO_VIRTIO_H

/*
 * A `struct virtio_dev` is what every device model embeds and what every
 * transport (transport/mmio.h, transport/pci.h) drives.  Devices never know
 * their transport; transports never know the device type.
 *
 *   device model --ops--> virtio core <--register accesses-- transport
 *                  <--queue_notify--     --tops: notify/config_changed-->
 *
 * Status (§2.1, §3.1.1): the core implements the driver-side sequence
 * ACKNOWLEDGE -> DRIVER -> FEATURES_OK -> DRIVER_OK with these rules (the
 * full table is above virtio_set_status() in virtio.c):
 *   - writing 0 resets the device (ops->reset, queues reset, driver features
 *     and MSI-X vectors cleared; config_generation is kept);
 *   - bits may only be added, never removed, except by writing 0;
 *     a write that clears a set bit is ignored (logged); NEEDS_RESET in a
 *     written value is ignored (the bit is the device's), reserved bits are
 *     dropped;
 *   - one write may carry several steps: ACKNOWLEDGE|DRIVER (Asterinas does
 *     it; the spec says "set" each in order but does not forbid one write),
 *     even FEATURES_OK|DRIVER_OK; each new bit needs the previous step;
 *   - FEATURES_OK is accepted only if the driver's features are a subset of
 *     the offered ones and include VIRTIO_F_VERSION_1; otherwise the bit does
 *     not stick and reads back clear (§2.2.2, §3.1.1 step 6); driver feature
 *     writes after FEATURES_OK are ignored;
 *   - DRIVER_OK requires FEATURES_OK; then every ready queue gets
 *     event_idx/indirect from the negotiated features, its rings are checked
 *     (virtq_check_rings) and ops->activate runs; a bad ring or a failed
 *     activation sets NEEDS_RESET (DRIVER_OK stays set);
 *   - FAILED from the driver is recorded; the device stops using queues;
 *     after FAILED or NEEDS_RESET only a reset is accepted.
 * NEEDS_RESET (§2.1.2) is set by virtio_needs_reset() on any device error a
 * guest caused (bad chain): virtio_live() turns false so queues stop, a
 * configuration-change interrupt is due (sent as described below), and only a
 * reset clears it.
 *
 * Locking: `lock` protects everything here.  Transports take it around
 * register accesses (so virtio_set_status, the feature and config calls, and
 * through them ops->config_read/config_write/activate/reset, run with it
 * held); devices take it while processing queues.  Interrupt calls
 * (virtio_notify_queue, virtio_flush_irqs, virtio_config_changed) must be made
 * WITHOUT the lock held, because the transport may take the PCI host lock
 * (INTx); take the lock, pop/push, drop it, then notify.
 *
 * Pending configuration interrupt: virtio_needs_reset() runs with the lock
 * held (a device mid-queue, or activation inside virtio_set_status), so it
 * cannot call tops->config_changed.  It sets `config_irq_pending` instead
 * (only when DRIVER_OK is set, §2.1.2), and the interrupt is sent by the next
 * of these calls, all made without the lock:
 *   - virtio_notify_queue(v, q): sends the pending config interrupt, then the
 *     queue's used-buffer interrupt if the ring asks for one.  So a device
 *     that does  lock; pop -> -EINVAL -> virtio_needs_reset(v, q->err);
 *     unlock; virtio_notify_queue(v, q);  needs nothing more;
 *   - virtio_flush_irqs(v): sends only the pending config interrupt.
 *     Transports call it after dropping the lock following a status write
 *     (activation failure); devices may call it when they have no queue to
 *     notify.
 * A reset drops a pending interrupt.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/evloop.h"
#include "util/gmem.h"
#include "util/log.h"
#include "util/platform.h"
#include "virtio/virtq.h"

#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32
#define VIRTIO_F_RING_RESET    40

#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER      0x02
#define VIRTIO_STATUS_DRIVER_OK   0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED      0x80

/* Device IDs (§5). */
#define VIRTIO_ID_NET   1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG   4
#define VIRTIO_ID_VSOCK 19

#define VIRTIO_MAX_QUEUES 8
#define VIRTIO_NO_VECTOR  0xffff

/* What devices and transports need from the VM. */
struct virtio_env {
	const struct gmem *gm;
	struct evloop *loop;  /* VMM thread: kicks, backend completions */
	struct platform plat; /* ioeventfds, irqfds, resample watches */
};

struct virtio_dev;

struct virtio_dev_ops {
	/* Device configuration space (§4.x.4): bounds already checked against config_size. */
	void (*config_read)(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len);
	void (*config_write)(struct virtio_dev *v, uint32_t off, const void *buf, uint32_t len);
	/* DRIVER_OK with the final features: start serving queues.  <0 -> NEEDS_RESET. */
	int (*activate)(struct virtio_dev *v);
	/* The driver reset the device: stop, drop in-flight state, forget queues. */
	void (*reset)(struct virtio_dev *v);
	/* Queue q was kicked (VMM thread, lock NOT held). */
	void (*queue_notify)(struct virtio_dev *v, unsigned int q);
};

struct virtio_transport_ops {
	/* Used-buffer notification for queue q (MSI-X vector, or ISR bit 0 + line). */
	void (*notify)(void *t, unsigned int q);
	/* Configuration-change notification (config vector, or ISR bit 1 + line). */
	void (*config_changed)(void *t);
	/*
	 * Queue q's kick eventfd, the one KVM's ioeventfd writes on the driver's notify, for
	 * another process to read (a vhost-user backend): take = true stops ember watching it
	 * and returns it (-1: q has none); take = false watches it again.  Any thread, v->lock
	 * held.  A kick ember had already seen still reaches ops->queue_notify.
	 */
	int (*kick_handoff)(void *t, unsigned int q, bool take);
};

struct virtio_dev {
	uint32_t type;            /* device ID */
	const char *name;         /* for logs: "virtio-blk vda" */
	uint64_t features;        /* offered */
	uint64_t driver_features; /* written by the driver */
	uint8_t status;
	uint8_t config_generation;
	uint32_t config_size;
	unsigned int nqueues;
	struct virtq vq[VIRTIO_MAX_QUEUES];
	uint16_t config_msix_vector; /* virtio-pci msix_config */

	const struct virtio_dev_ops *ops;
	void *opaque; /* the device model */
	const struct virtio_transport_ops *tops;
	void *topaque; /* the transport */
	const struct virtio_env *env;

	pthread_mutex_t lock;
	struct ratelimit rl;
	bool config_irq_pending; /* a NEEDS_RESET config interrupt is owed (see above) */
	bool paused;             /* kicks wait (virtio_pause) */
	uint32_t kicks_deferred; /* queues kicked while paused, a bit each */
};

/*
 * Set up the common part: zeroes *v first (so attach the transport -- tops,
 * topaque -- afterwards), adds VERSION_1 to `features`, resets every queue
 * with max_size = queue_size (queues >= nqueues get max_size 0: not
 * available), vectors VIRTIO_NO_VECTOR.  -EINVAL for nqueues >
 * VIRTIO_MAX_QUEUES, queue_size not a power of two <= VIRTQ_MAX_SIZE, or no
 * ops (each op may be NULL); -errno from pthread_mutex_init.
 */
int virtio_dev_init(struct virtio_dev *v, uint32_t type, const char *name, uint64_t features,
                    unsigned int nqueues, uint16_t queue_size, uint32_t config_size,
                    const struct virtio_dev_ops *ops, void *opaque, const struct virtio_env *env);
void virtio_dev_destroy(struct virtio_dev *v);

/*
 * Called by transports, with v->lock held.  Config accesses outside config_size
 * read zeros / are dropped (logged, rate limited).
 */
uint8_t virtio_get_status(struct virtio_dev *v);
void virtio_set_status(struct virtio_dev *v, uint8_t status);
uint32_t virtio_get_features(struct virtio_dev *v, unsigned int sel); /* 32-bit word `sel` */
void virtio_set_driver_features(struct virtio_dev *v, unsigned int sel, uint32_t val);
void virtio_config_access(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len, bool write);

/* Whether a feature bit was negotiated (valid once FEATURES_OK). */
bool virtio_has_feature(const struct virtio_dev *v, unsigned int bit);

/*
 * Lock NOT held.  Send a pending configuration interrupt (see above), then
 * interrupt the driver for queue q if DRIVER_OK is set, q is ready and the
 * ring says so (virtq_needs_interrupt, evaluated under the lock, so call this
 * once per batch of pushes).
 */
void virtio_notify_queue(struct virtio_dev *v, unsigned int q);
/* Lock NOT held.  Send a pending configuration interrupt, if any. */
void virtio_flush_irqs(struct virtio_dev *v);
/*
 * Lock NOT held.  Bump the config generation and, if DRIVER_OK is set, send a
 * configuration-change interrupt (it also covers a pending one).
 */
void virtio_config_changed(struct virtio_dev *v);
/*
 * Lock held.  A guest error: set NEEDS_RESET (virtio_live() turns false), log
 * `why` (rate limited, once per reset), and owe a configuration interrupt if
 * DRIVER_OK is set; it leaves with the next virtio_notify_queue or
 * virtio_flush_irqs, after the caller drops the lock.
 */
void virtio_needs_reset(struct virtio_dev *v, const char *why);

/* True when DRIVER_OK is set and NEEDS_RESET/FAILED are not: queues may be used.  Any thread. */
bool virtio_live(const struct virtio_dev *v);

/*
 * Pause and resume (the device registry's ops; VMM thread, lock NOT held).  While paused the
 * guest's kicks are noted, not served (the transports ask virtio_kick_deferred()); resume
 * serves each noted queue once, through ops->queue_notify, if it may still be used.  What
 * the device itself has in flight is the device's to complete (virtio_blk_drain).
 */
void virtio_pause(struct virtio_dev *v);
void virtio_resume(struct virtio_dev *v);
/* Lock held: true (and the kick noted) when `v` is paused. */
bool virtio_kick_deferred(struct virtio_dev *v, unsigned int q);

/*
 * Saved state (snapshots; util/snap.h): a "VIRT" section with the negotiated features,
 * status, configuration generation and vector, and every queue (size, rings, vector, where
 * the device is in its avail and used rings, notification suppression state).  Save with the
 * device quiet (nothing in flight).  virtio_restore() needs a device just built the same way
 * (same type, offered features and queues; status 0), puts the state in and, when the saved
 * device was running, activates it as DRIVER_OK would, with its queues where they were.
 * -EINVAL with the reason for another device's, a short or corrupted state (the device is
 * unchanged then), -EBUSY for a device already in use.  Transports add their own registers.
 */
struct snap_w;
struct snap_r;
void virtio_save(struct virtio_dev *v, struct snap_w *w);
int virtio_restore(struct virtio_dev *v, struct snap_r *r, struct err *e);

#endif
