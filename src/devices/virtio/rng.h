/* rng.h - virtio-rng (virtio 1.2 §5.4): the entropy device, fed by getrandom(2). */
#ifndef EMBER_DEVICES_VIRTIO_RNG_H
#define EMBER_DEVICES_VIRTIO_RNG_H

/*
 * One queue, requestq (§5.4.2), no device-specific features (§5.4.3) and no
 * configuration space (§5.4.4).  ember offers VIRTIO_F_EVENT_IDX and
 * VIRTIO_F_INDIRECT_DESC (and VERSION_1, added by the core).
 *
 * Each request is filled with bytes from getrandom(2) without GRND_NONBLOCK:
 * the call only blocks before the host's entropy pool is initialised, which
 * happens early in the host's boot, long before a VMM runs (recent kernels
 * seed it from CPU jitter within seconds of boot).  Short reads and EINTR are
 * retried.
 *
 * Only the device-writable part of a request is filled; device-readable
 * segments are ignored (§5.4.6.1: "The driver MUST NOT place driver-readable
 * buffers into the queue"; ignoring them is the lenient reading, and a
 * request with no writable byte is answered with length 0).  A request is
 * served with at most VIRTIO_RNG_MAX_REQUEST bytes: §5.4.6.2 "The device MUST
 * place one or more random bytes into the buffer, but it MAY use less than
 * the entire buffer length", and the driver reads the used length (§5.4.6.1).
 *
 * Rate limiting (Firecracker's entropy device): each request costs one op and
 * its byte count.  When the limiter refuses, the device keeps the request,
 * stops, and resumes when the limiter's timer fires on the VMM evloop (or on
 * the next kick, whichever comes first).
 *
 * Threads: kicks and the timer run on the VMM thread; the transport's
 * register accesses (reset) on vCPU threads; vdev.lock serialises them.
 */

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "util/evloop.h"
#include "util/ratelimit.h"
#include "virtio/virtio.h"

#define VIRTIO_RNG_QUEUE_SIZE  256
#define VIRTIO_RNG_MAX_REQUEST (64u * 1024) /* bytes served per request at most */

struct virtio_rng_opts {
	struct rate_limiter_cfg rate_limiter; /* zeroed: unlimited */
	const struct rl_clock *clock;         /* NULL: monotonic (tests inject a fake one) */
};

struct virtio_rng {
	struct virtio_dev vdev; /* the transport drives this */
	struct rate_limiter rl;
	struct evloop_watch rl_watch; /* the limiter's timerfd, when limiting */
	bool rl_watched;

	/* A popped request waiting for the limiter (vdev.lock). */
	struct virtq_chain chain;
	bool held;

	/* Statistics (vdev.lock). */
	uint64_t requests, bytes, throttled;
};

/*
 * Set up the device (VIRTIO_ID_RNG, one queue) on `env` (guest memory, the
 * VMM evloop for the limiter's timer, the platform).  The transport then
 * attaches to r->vdev.  -errno with `e` filled: bad rate limiter, timerfd or
 * evloop failure.  On failure nothing is left to undo.
 */
int virtio_rng_init(struct virtio_rng *r, const struct virtio_rng_opts *o,
                    const struct virtio_env *env, struct err *e);

/* Undo virtio_rng_init (after the transport has detached). */
void virtio_rng_destroy(struct virtio_rng *r);

#endif
