/* kick.h - queue kicks for the virtio transports: one eventfd per queue, watched on the loop. */
#ifndef EMBER_TRANSPORT_KICK_H
#define EMBER_TRANSPORT_KICK_H

/*
 * Every available-buffer notification (virtio 1.2 §2.9, "driver
 * notifications") ends as a write to the queue's eventfd:
 *
 *   - the guest's write to the notify register is caught by a KVM ioeventfd
 *     bound to that eventfd (the transport registers it: virtio-mmio with a
 *     datamatch on the queue index, virtio-pci at the queue's own address);
 *   - a write that reaches the transport's handler anyway (ioeventfd not
 *     registered, refused by KVM, or a guest using the PCI configuration
 *     access window) is turned into the same eventfd write by
 *     virtio_kick_signal().
 *
 * The VMM thread's loop watches each eventfd; the callback drains it and,
 * if the device is live (virtio_live()) and the queue ready, calls the
 * device's ops->queue_notify(v, q) without v->lock.  Kicks for a queue that
 * is not ready, or before DRIVER_OK, are dropped: §3.1.1 forbids the driver
 * to notify before DRIVER_OK, and §4.2.2.1 forbids the device to touch a
 * queue whose ready bit is clear.
 *
 * Internal to transport/ (not for device models).
 */

#include <stdbool.h>

#include "util/err.h"
#include "util/evloop.h"
#include "virtio/virtio.h"

struct virtio_kick {
	struct evloop_watch w; /* w.fd: the eventfd; w.opaque: this struct */
	struct virtio_dev *v;
	unsigned int q;
	bool watched; /* w is on the loop */
};

struct virtio_kicks {
	struct virtio_kick k[VIRTIO_MAX_QUEUES];
	unsigned int n;      /* eventfds created: v->nqueues once init succeeded */
	struct evloop *loop; /* NULL: nothing watches the eventfds (--dump-pci, tests) */
};

/*
 * Create one non-blocking eventfd per queue of `v` (v->nqueues, at most
 * VIRTIO_MAX_QUEUES) and, when `loop` is not NULL, watch each for EPOLLIN on
 * it.  The loop must be initialised already.  -errno with a message in `e`;
 * nothing is left to undo on error.
 */
int virtio_kicks_init(struct virtio_kicks *ks, struct virtio_dev *v, struct evloop *loop,
                      struct err *e);

/* Stop watching and close every eventfd.  Call from the VMM thread.  Safe twice. */
void virtio_kicks_destroy(struct virtio_kicks *ks);

/* The eventfd of queue q (to bind as an ioeventfd), or -1 when q has none. */
int virtio_kick_fd(const struct virtio_kicks *ks, unsigned int q);

/*
 * Queue q's eventfd handed to another reader (take: ember stops watching it, with an epoll
 * modification only, so any thread may call this) or taken back (!take: watched again).
 * Returns the eventfd, or -1 when q has none or the watch could not be changed.
 */
int virtio_kick_handoff(struct virtio_kicks *ks, unsigned int q, bool take);

/*
 * Kick queue q from a register handler (any thread, any lock): one write to
 * its eventfd, handled later on the VMM thread.  False when q has no queue.
 */
bool virtio_kick_signal(struct virtio_kicks *ks, unsigned int q);

#endif
