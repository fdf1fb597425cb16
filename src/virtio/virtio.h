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
 * ACKNOWLEDGE -> DRIVER -> FEATURES_OK -> DRIVER_OK with these rules:
 *   - writing 0 resets the device (ops->reset, queues reset, features cleared);
 *   - bits may only be added, never removed, except by writing 0;
 *     a write that clears a set bit is ignored (logged);
 *   - ACKNOWLEDGE and DRIVER may be set in one write (Asterinas does it; the
 *     spec says "set" each in order but does not forbid one write);
 *   - FEATURES_OK is accepted only if the driver's features are a subset of
 *     the offered ones and include VIRTIO_F_VERSION_1; otherwise the bit does
 *     not stick and reads back clear (§3.1.1 step 6);
 *   - DRIVER_OK requires FEATURES_OK; then ops->activate; if activation fails
 *     the device sets NEEDS_RESET;
 *   - FAILED from the driver is recorded; the device stops using queues.
 * NEEDS_RESET (§2.1.2) is set by virtio_needs_reset() on any device error a
 * guest caused (bad chain): queues stop, a configuration-change interrupt is
 * sent, and only a reset clears it.
 *
 * Locking: `lock` protects everything here.  Transports take it around
 * register accesses; devices take it while processing queues.  Interrupt
 * calls (virtio_notify_queue, virtio_config_changed) must be made WITHOUT the
 * lock held, because the transport may take the PCI host lock (INTx); take
 * the lock, pop/push, drop it, then notify.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/evloop.h"
#include "util/gmem.h"
#include "util/log.h"
#include "pci/platform.h"
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
	struct evloop *loop;      /* VMM thread: kicks, backend completions */
	struct pci_platform plat; /* ioeventfds, irqfds, resample watches */
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
};

struct virtio_dev {
	uint32_t type;             /* device ID */
	const char *name;          /* for logs: "virtio-blk vda" */
	uint64_t features;         /* offered */
	uint64_t driver_features;  /* written by the driver */
	uint8_t status;
	uint8_t config_generation;
	uint32_t config_size;
	unsigned int nqueues;
	struct virtq vq[VIRTIO_MAX_QUEUES];
	uint16_t config_msix_vector; /* virtio-pci msix_config */

	const struct virtio_dev_ops *ops;
	void *opaque;                /* the device model */
	const struct virtio_transport_ops *tops;
	void *topaque;               /* the transport */
	const struct virtio_env *env;

	pthread_mutex_t lock;
	struct ratelimit rl;
};

/* Set up the common part; VERSION_1 is added to `features`.  -errno. */
int virtio_dev_init(struct virtio_dev *v, uint32_t type, const char *name, uint64_t features,
		    unsigned int nqueues, uint16_t queue_size, uint32_t config_size,
		    const struct virtio_dev_ops *ops, void *opaque, const struct virtio_env *env);
void virtio_dev_destroy(struct virtio_dev *v);

/* Called by transports, with v->lock held. */
uint8_t virtio_get_status(struct virtio_dev *v);
void virtio_set_status(struct virtio_dev *v, uint8_t status);
uint32_t virtio_get_features(struct virtio_dev *v, unsigned int sel);  /* 32-bit word `sel` */
void virtio_set_driver_features(struct virtio_dev *v, unsigned int sel, uint32_t val);
void virtio_config_access(struct virtio_dev *v, uint32_t off, void *buf, uint32_t len, bool write);

/* Whether a feature bit was negotiated (valid once FEATURES_OK). */
bool virtio_has_feature(const struct virtio_dev *v, unsigned int bit);

/* Interrupt the driver for queue q if the ring says so (lock NOT held). */
void virtio_notify_queue(struct virtio_dev *v, unsigned int q);
/* Bump the config generation and send a configuration-change interrupt (lock NOT held). */
void virtio_config_changed(struct virtio_dev *v);
/* A guest error: set NEEDS_RESET, stop queues, log (rate limited); notify after dropping the lock. */
void virtio_needs_reset(struct virtio_dev *v, const char *why);

/* True when DRIVER_OK is set and NEEDS_RESET/FAILED are not: queues may be used. */
bool virtio_live(const struct virtio_dev *v);

#endif
