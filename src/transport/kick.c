/* kick.c - queue kicks shared by the virtio transports: eventfds, loop watches, dispatch. */
#include "transport/kick.h"

#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/*
 * The queue's eventfd turned readable on the VMM thread: drain it (KVM or
 * virtio_kick_signal() may have written it several times; one pass over
 * the ring serves them all), then hand the kick to the device if the queue
 * may be used now.
 */
static void kick_cb(struct evloop_watch *w, uint32_t events)
{
	struct virtio_kick *k = w->opaque;
	struct virtio_dev *v = k->v;
	uint64_t n;
	bool go;

	(void)events;
	if (read(w->fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return; /* nothing pending (EAGAIN): a stale readiness report */
	pthread_mutex_lock(&v->lock);
	go = k->q < v->nqueues && v->vq[k->q].ready && virtio_live(v);
	if (go && virtio_kick_deferred(v, k->q)) {
		pthread_mutex_unlock(&v->lock);
		return; /* served by virtio_resume() */
	}
	pthread_mutex_unlock(&v->lock);
	if (!go) {
		log_guest(&v->rl, LOG_DEBUG,
		          "%s: kick of queue %u dropped (queue not ready or device not live)",
		          v->name ? v->name : "virtio", k->q);
		return;
	}
	if (v->ops && v->ops->queue_notify)
		v->ops->queue_notify(v, k->q);
}

int virtio_kicks_init(struct virtio_kicks *ks, struct virtio_dev *v, struct evloop *loop,
                      struct err *e)
{
	unsigned int q;
	int r;

	*ks = (struct virtio_kicks){.loop = loop};
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++)
		ks->k[q].w.fd = -1;
	if (v->nqueues > VIRTIO_MAX_QUEUES)
		return err_set(e, EINVAL, "%s: %u queues (at most %u)",
		               v->name ? v->name : "virtio", v->nqueues, VIRTIO_MAX_QUEUES);
	for (q = 0; q < v->nqueues; q++) {
		struct virtio_kick *k = &ks->k[q];
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

		if (fd < 0) {
			r = -errno;
			err_sys(e, errno, "%s: eventfd for queue %u", v->name ? v->name : "virtio",
			        q);
			goto fail;
		}
		k->w = (struct evloop_watch){.fd = fd, .cb = kick_cb, .opaque = k};
		k->v = v;
		k->q = q;
		ks->n = q + 1;
		if (!loop)
			continue;
		r = evloop_add(loop, &k->w, EPOLLIN);
		if (r < 0) {
			err_sys(e, -r, "%s: watching the kicks of queue %u",
			        v->name ? v->name : "virtio", q);
			goto fail;
		}
		k->watched = true;
	}
	return 0;

fail:
	virtio_kicks_destroy(ks);
	return r;
}

void virtio_kicks_destroy(struct virtio_kicks *ks)
{
	for (unsigned int q = 0; q < ks->n; q++) {
		struct virtio_kick *k = &ks->k[q];

		if (k->watched)
			evloop_del(ks->loop, &k->w);
		k->watched = false;
		if (k->w.fd >= 0)
			close(k->w.fd);
		k->w.fd = -1;
	}
	ks->n = 0;
}

int virtio_kick_fd(const struct virtio_kicks *ks, unsigned int q)
{
	return q < ks->n ? ks->k[q].w.fd : -1;
}

int virtio_kick_handoff(struct virtio_kicks *ks, unsigned int q, bool take)
{
	struct virtio_kick *k;

	if (q >= ks->n || ks->k[q].w.fd < 0)
		return -1;
	k = &ks->k[q];
	/* No events: epoll keeps the registration and reports nothing for an eventfd. */
	if (k->watched && evloop_mod(ks->loop, &k->w, take ? 0 : EPOLLIN) < 0)
		return -1;
	return k->w.fd;
}

bool virtio_kick_signal(struct virtio_kicks *ks, unsigned int q)
{
	static const uint64_t one = 1;

	if (q >= ks->n || ks->k[q].w.fd < 0)
		return false;
	/* EAGAIN means the counter is saturated: a kick is pending anyway. */
	if (write(ks->k[q].w.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return false;
	return true;
}
