/* rng.c - virtio-rng: fill requestq buffers with getrandom(2) bytes, optionally rate limited. */
#include "devices/virtio/rng.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>

#include "util/log.h"

#define RNG_FEATURES ((1ull << VIRTIO_F_EVENT_IDX) | (1ull << VIRTIO_F_INDIRECT_DESC))

/*
 * Fill up to `want` bytes of the chain's writable segments with random bytes.
 * Returns the bytes written (less than `want` only if getrandom fails).
 */
static uint32_t rng_fill(struct virtio_rng *r, const struct virtq_chain *c, uint32_t want)
{
	uint32_t done = 0;
	unsigned int i;

	for (i = 0; i < c->nseg && done < want; i++) {
		const struct virtq_seg *s = &c->seg[i];
		uint32_t n = s->len < want - done ? s->len : want - done, got = 0;

		if (!s->write)
			continue; /* §5.4.6.1: readable segments are not ours to fill; ignored */
		while (got < n) {
			ssize_t k = getrandom((uint8_t *)s->hva + got, n - got, 0);

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				log_guest(&r->vdev.rl, LOG_ERROR, "%s: getrandom: %s", r->vdev.name,
				          k < 0 ? strerror(errno) : "no bytes");
				return done + got;
			}
			got += (uint32_t)k; /* short reads (signals, > 32 MiB) are retried */
		}
		done += n;
	}
	return done;
}

/*
 * Serve requests until the queue is empty or the limiter refuses.  Runs with
 * vdev.lock held; returns true when something was pushed (the caller
 * notifies after dropping the lock).
 */
static bool rng_process_locked(struct virtio_rng *r)
{
	struct virtq *q = &r->vdev.vq[0];
	bool pushed = false;

	while (virtio_live(&r->vdev)) {
		uint32_t want, got;

		if (!r->held) {
			int k = virtq_pop(q, &r->chain);

			if (k < 0) {
				virtio_needs_reset(&r->vdev, q->err ? q->err : "bad request chain");
				break;
			}
			if (k == 0)
				break;
			r->held = true;
		}
		want = r->chain.in_len < VIRTIO_RNG_MAX_REQUEST ? r->chain.in_len
		                                                : VIRTIO_RNG_MAX_REQUEST;
		if (want > 0 && !rate_limiter_consume(&r->rl, 1, want)) {
			/* Keep the request; the limiter's timer (or a kick) brings us back. */
			r->throttled++;
			break;
		}
		got = want ? rng_fill(r, &r->chain, want) : 0;
		if (got < want)
			rate_limiter_replenish(&r->rl, 0, want - got);
		virtq_push(q, r->chain.head, got);
		r->held = false;
		r->requests++;
		r->bytes += got;
		pushed = true;
	}
	return pushed;
}

static void rng_run(struct virtio_rng *r)
{
	bool pushed;

	pthread_mutex_lock(&r->vdev.lock);
	pushed = rng_process_locked(r);
	pthread_mutex_unlock(&r->vdev.lock);
	/* Also sends a NEEDS_RESET configuration interrupt owed by a bad chain (virtio.h). */
	if (pushed)
		virtio_notify_queue(&r->vdev, 0);
	else
		virtio_flush_irqs(&r->vdev);
}

static void rng_queue_notify(struct virtio_dev *v, unsigned int q)
{
	if (q == 0)
		rng_run(v->opaque);
}

static void rng_timer(struct evloop_watch *w, uint32_t events)
{
	struct virtio_rng *r = w->opaque;

	(void)events;
	pthread_mutex_lock(&r->vdev.lock);
	rate_limiter_timer_event(&r->rl);
	pthread_mutex_unlock(&r->vdev.lock);
	rng_run(r);
}

/* Called with vdev.lock held.  The limiter keeps its state: a reset must not refill it. */
static void rng_reset(struct virtio_dev *v)
{
	struct virtio_rng *r = v->opaque;

	r->held = false;
}

/* §5.4.4: no configuration space (config_size 0: the core answers every access). */
static const struct virtio_dev_ops rng_ops = {
    .reset = rng_reset,
    .queue_notify = rng_queue_notify,
};

int virtio_rng_init(struct virtio_rng *r, const struct virtio_rng_opts *o,
                    const struct virtio_env *env, struct err *e)
{
	static const struct virtio_rng_opts defaults;
	int ret;

	if (!o)
		o = &defaults;
	*r = (struct virtio_rng){0};
	ret = rate_limiter_init(&r->rl, &o->rate_limiter, o->clock, e);
	if (ret < 0) {
		err_prefix(e, "virtio-rng");
		return ret;
	}
	ret = virtio_dev_init(&r->vdev, VIRTIO_ID_RNG, "virtio-rng", RNG_FEATURES, 1,
	                      VIRTIO_RNG_QUEUE_SIZE, 0, &rng_ops, r, env);
	if (ret < 0) {
		err_sys(e, -ret, "virtio-rng: device setup");
		goto fail_rl;
	}
	if (rate_limiter_enabled(&r->rl)) {
		if (!env || !env->loop) {
			ret = err_set(e, EINVAL,
			              "virtio-rng: a rate limiter needs the VMM event loop");
			goto fail_dev;
		}
		r->rl_watch = (struct evloop_watch){rate_limiter_fd(&r->rl), rng_timer, r};
		ret = evloop_add(env->loop, &r->rl_watch, EPOLLIN);
		if (ret < 0) {
			err_sys(e, -ret, "virtio-rng: watching the rate limiter timer");
			goto fail_dev;
		}
		r->rl_watched = true;
	}
	return 0;

fail_dev:
	virtio_dev_destroy(&r->vdev);
fail_rl:
	rate_limiter_destroy(&r->rl);
	return ret;
}

void virtio_rng_destroy(struct virtio_rng *r)
{
	if (r->rl_watched)
		evloop_del(r->vdev.env->loop, &r->rl_watch);
	r->rl_watched = false;
	virtio_dev_destroy(&r->vdev);
	rate_limiter_destroy(&r->rl);
}
